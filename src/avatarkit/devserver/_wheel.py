"""The frame wheel: one timer for the real-time frames of every session of a service.

A connection's pacer (:mod:`avatarkit.devserver._output`) decides everything
about its output, but waking one task per frame per session (a timer, a
future, a task step, then one analysis and one send each) is what limited the
service to a few hundred sessions on a core. So in ``realtime`` pace, once a
request is playing and its next frame is ready, the pacer *parks* the
connection in the wheel with that frame's due time and sleeps with no timer.
The wheel runs one ``loop.call_at`` for all parked connections: each tick
takes every connection whose frame is due (never early), analyses the audio
their next frames need in one numpy block
(:func:`~avatarkit.devserver._animation.analyze_blocks`), sends each due
frame synchronously and parks the connection again at its next due time.

Only plain frames go this way: a request's first frame (its ``PLAYING``
state) and last frame (``end``, ``ENDED``), pause, interrupt, faults, egress,
a compressed or backed-up socket and every deadline wake the pacer, which
does what it always did. Ticks are at least ``TICK_S`` apart, so a frame
leaves at most that much after its due time plus the tick's own work, and a
tick handles many frames at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import TYPE_CHECKING, Any

from ._animation import Block, analyze_blocks

if TYPE_CHECKING:
    from ._output import OutputPacer

__all__ = ["TICK_S", "FrameWheel"]

TICK_S = 0.004
"""Shortest time between two ticks: frames due meanwhile go together."""


class FrameWheel:
    """Parked connections by due time, and the one timer that serves them
    (one per :class:`~avatarkit.devserver.DevServer`, on its event loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int, OutputPacer]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._last_tick = 0.0
        self.ticks = 0
        """Ticks run so far (for tests and benchmarks)."""
        self.frames = 0
        """Frames sent by ticks so far."""
        self.handbacks = 0
        """Times a connection was handed back to its pacer (not a plain frame)."""

    def __len__(self) -> int:
        return len(self._heap)

    def close(self) -> None:
        """Forget every parked connection and stop the timer (server shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()

    def park(self, conn: OutputPacer, due: float) -> int:
        """Hold ``conn`` until ``due``; returns the token the connection keeps
        (a connection whose token changed since is skipped: it was woken)."""
        token = next(self._seq)
        heapq.heappush(self._heap, (due, token, conn))
        self._arm()
        return token

    def _arm(self) -> None:
        heap = self._heap
        if not heap:
            return
        when = max(heap[0][0], self._last_tick + TICK_S)
        timer = self._timer
        if timer is not None:
            if self._timer_at <= when:
                return
            timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._tick)

    def _tick(self) -> None:
        self._timer = None
        loop = self.loop
        now = loop.time()
        self._last_tick = now
        heap = self._heap
        due: list[OutputPacer] = []
        while heap and heap[0][0] <= now:
            _, token, conn = heapq.heappop(heap)
            if conn._park_token == token:
                conn._park_token = -1
                due.append(conn)
        try:
            if due:
                self.ticks += 1
                self._serve(due, now)
        finally:
            self._arm()

    def _serve(self, due: list[OutputPacer], now: float) -> None:
        # 1. The audio the due frames' successors need, analysed as one block.
        ready: list[Any] = []
        blocks: list[Block] = []
        owners: list[Any] = []
        for conn in due:
            req = conn._plain_head(ready=False)
            if req is None:
                self.handbacks += 1
                conn._wake()  # anything but a plain frame: the pacer decides
                continue
            ready.append((conn, req))
            if len(req.pending) < 3 and req.raw:
                block = req.take_block()
                if block is not None:
                    blocks.append(block)
                    owners.append(req)
        if blocks:
            for req, frames in zip(owners, analyze_blocks(blocks, lazy=True), strict=True):
                req.info.frames_computed += len(frames)
                req.pending.extend(frames)
        # 2. Send, and park again where the next frame is plain and ready.
        sent = 0
        for conn, req in ready:
            try:
                # (nothing ran since phase 1 but the analysis: only its outcome matters)
                if len(req.pending) >= 2 and conn._emit_plain(req, now):
                    sent += 1
                    nxt = conn._plain_next(req)
                    if nxt is not None:
                        conn._park_token = self.park(conn, nxt)
                        continue
            except Exception:  # never let one session stop the others' frames
                conn._fail_plain()
                continue
            self.handbacks += 1
            conn._wake()
        self.frames += sent
