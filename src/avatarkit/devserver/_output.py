"""The output half of one connection of the local service: the pacer task.

One task per connection sends queued frames when they are due and watches the
connection's deadlines (idle, session duration, pause timeout). What to do
next is decided by the pure :func:`~avatarkit.devserver._pacing.next_step`;
this module only does it. The pacer sleeps on one future woken either by a
single ``loop.call_at`` timer or by the reader when something changes, so
there is no work per frame beyond the frame itself.
"""

from __future__ import annotations

import asyncio
import logging

from .._server_protocol import (
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_SESSION_DURATION,
    CODE_IDLE,
)
from ..events import PlaybackState
from ..protocol import (
    encode_animation,
)
from ._animation import encode_frame
from ._core import _FAIR_BATCH, _PROGRESS_EVERY, WRITE_HIGH_WATER, ConnectionCore
from ._pacing import FRAME_S, PacerView, StepKind, next_step
from ._request import RequestRuntime
from ._state import RequestState

log = logging.getLogger("avatarkit.devserver")

__all__ = ["OutputPacer"]


class OutputPacer(ConnectionCore):
    """Sends each request's frames on time (the pacer task) and enforces the deadlines."""

    async def _sleep_until(self, when: float | None, limit: float | None = None) -> None:
        """Sleep until woken, ``when`` (a frame or pause deadline) or ``limit``.

        ``limit`` (the idle or session deadline) uses the connection's
        long-lived timer: an earlier armed one is kept (it wakes the pacer
        early, which then sleeps again), a later one is moved.
        """
        loop = self._loop
        if limit is not None and (self._limit_timer is None or self._limit_at > limit):
            if self._limit_timer is not None:
                self._limit_timer.cancel()
            self._limit_at = limit
            self._limit_timer = loop.call_at(limit, self._on_limit_timer)
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(when, _resolve, waiter) if when is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _on_limit_timer(self) -> None:
        self._limit_timer = None
        self._wake()

    async def _pace(self) -> None:
        try:
            await self._pace_loop()
        except Exception:
            log.exception("avatarkit devserver: error sending output")
            await self._internal_error()

    def _view(self, now: float, analyse: bool = True) -> PacerView:
        """The connection as :func:`~avatarkit.devserver._pacing.next_step` sees it
        (``analyse=False``: without asking the head request for its next frame)."""
        settings = self._settings
        idle = settings.idle_timeout
        idle_at = self._last_activity + idle if idle else None
        req = self._queue[0] if self._queue else None
        if req is None:
            return PacerView(now, self._realtime, self._deadline, idle_at)
        paused = req.info.paused
        pause_timeout_at = None
        if paused and settings.pause_timeout:
            pause_timeout_at = req.pause_started + settings.pause_timeout
        return PacerView(
            now,
            self._realtime,
            self._deadline,
            idle_at,
            has_head=True,
            head_paused=paused,
            pause_timeout_at=pause_timeout_at,
            head_ready=analyse and not paused and req.can_emit(),
            delay_checked=req.delay_checked,
            t0=req.t0,
            frames_sent=req.info.frames_sent,
        )

    async def _pace_loop(self) -> None:
        """Do what :func:`~avatarkit.devserver._pacing.next_step` says until the end."""
        settings = self._settings
        loop = self._loop
        burst = 0
        while not self._closing and self._close_request is None:
            now = loop.time()
            wheel = self._wheel
            head = self._plain_head(ready=False) if wheel is not None else None
            if wheel is not None and head is not None:
                # The next frame is a plain one: the frame wheel analyses and
                # sends it (and the following ones) and wakes this task for
                # anything else; only the deadlines are checked here.
                step = next_step(self._view(now, analyse=False))
                if step.kind is StepKind.SLEEP:
                    due = head.t0 + head.info.frames_sent * FRAME_S
                    self._park_token = wheel.park(self, due)
                    try:
                        await self._sleep_until(None, step.limit)
                    finally:
                        self._park_token = -1
                    continue
            step = next_step(self._view(now))
            kind = step.kind
            if kind is StepKind.SESSION_EXPIRED:
                limit = f"{settings.max_session_seconds:g}"
                await self._send_error(
                    CLOSE_SESSION_DURATION, f"maximum session duration reached ({limit} seconds)"
                )
                self._end(CLOSE_SESSION_DURATION, "maximum session duration reached")
                return
            if kind is StepKind.IDLE_TIMEOUT:
                text = f"no audio input for {settings.idle_timeout:g} seconds"
                await self._send_error(CODE_IDLE, text)
                self._end(CLOSE_NORMAL, text)
                return
            req = self._queue[0] if self._queue else None
            if kind is StepKind.PAUSE_TIMEOUT and req is not None:
                await self._interrupt(req, "pause_timeout")
                continue
            if kind is StepKind.CHECK_DELAY and req is not None:
                req.delay_checked = True
                delay = self._faults.take_delay(
                    self.key, self.state.connection_id, self.state.frames_sent
                )
                if delay:
                    req.t0 = req.t0 + delay if self._realtime else now + delay
                continue
            if kind is StepKind.EMIT and req is not None:
                req.delay_checked = False
                await self._emit(req, now)
                burst += 1
                if burst >= _FAIR_BATCH:
                    burst = 0
                    await asyncio.sleep(0)
                continue
            burst = 0
            await self._sleep_until(step.wake, step.limit)

    async def _emit(self, req: RequestRuntime, now: float) -> None:
        """Send the next frame of ``req`` (the head of the queue)."""
        st = self.state
        info = req.info
        frame = req.pending.popleft()
        last = req.flushed and not req.pending
        announce = not req.started
        if announce:
            req.started = True
            info.state = PlaybackState.PLAYING
        if frame is not None:
            info.frames_sent += 1
            st.frames_sent += 1
        self._last_activity = now
        if last:
            info.end_sent = True
            info.state = PlaybackState.ENDED
            self._retire(req)
        if announce:
            playing = RequestState(info.req_id, info.sample_rate, PlaybackState.PLAYING)
            await self._send_state(playing)
        tap = st.viewer_tap
        if tap is not None:  # a viewer page watches this session
            tap.frame(info.req_id, info.frames_sent - 1, last, frame)
        envelope = req.envelope
        egress = st.egress
        if egress is None:
            payload = encode_frame(frame) if frame is not None else b""
            if envelope is not None:
                await self._send(envelope.encode(last, payload))
            else:
                cid, req_id, avatar = st.connection_id, info.req_id, st.avatar_id
                await self._send(encode_animation(cid, req_id, last, payload, avatar))
        else:
            if frame is not None:
                egress.frames_published += 1
                egress.last_frame = encode_frame(frame)
                egress.published.append((info.req_id, egress.last_frame))
            if last or (info.frames_sent - 1) % _PROGRESS_EVERY == 0:
                egress.progress_signals_sent += 1
                cid, req_id, avatar = st.connection_id, info.req_id, st.avatar_id
                await self._send(encode_animation(cid, req_id, last, b"", avatar))
        if last:
            await self._send_state(info)
        if frame is not None:
            # Fault rules due after this frame (none, nearly always: no coroutine then).
            for rule in self._faults.take_actions(
                self.key, st.connection_id, st.frames_sent, "runtime"
            ):
                await self._apply_fault(rule, handshake=False)

    # -- the frame wheel's fast path (see _wheel.py) ------------------------------

    def _plain_head(self, ready: bool = True) -> RequestRuntime | None:
        """The head request if its next frame may go the wheel's way: playing,
        neither its first nor its last frame, computed (``ready=False``: or
        its audio is there, to be analysed), no fault rule, no egress, an
        uncompressed socket that keeps up. ``None`` otherwise."""
        if self._closing or self._close_request is not None or not self._queue:
            return None
        req = self._queue[0]
        if not req.started or req.info.paused:
            return None
        have = len(req.pending)
        if have < 2 and (ready or have + req.buffered // req.frame_bytes < 2):
            return None
        if self.state.egress is not None or self._faults._rules or self.ws.compress:
            return None
        transport = self._transport
        if transport is None or transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            return None
        return req

    def _emit_plain(self, req: RequestRuntime, now: float) -> bool:
        """Send the next (plain) frame of ``req`` now, synchronously."""
        st = self.state
        info = req.info
        frame = req.pending.popleft()
        info.frames_sent += 1
        st.frames_sent += 1
        req.delay_checked = False
        self._last_activity = now
        tap = st.viewer_tap
        if tap is not None:  # a viewer page watches this session
            tap.frame(info.req_id, info.frames_sent - 1, False, frame)
        payload = encode_frame(frame) if frame is not None else b""
        envelope = req.envelope
        if envelope is not None:
            return self._send_now(envelope.encode(False, payload))
        cid, req_id, avatar = st.connection_id, info.req_id, st.avatar_id
        return self._send_now(encode_animation(cid, req_id, False, payload, avatar))

    def _plain_next(self, req: RequestRuntime) -> float | None:
        """Due time of the frame after the one just sent, unless the pacer must
        take over. Its audio need not be there yet: the newest frame is held
        back until the next audio arrives, which (with a client that keeps
        up) comes before that frame is due; the tick at the due time analyses
        it, and only a client that fell behind wakes the pacer."""
        if self._closing or self._close_request is not None:
            return None
        if req.info.end_received and not req.raw and len(req.pending) < 2:
            return None  # the last frame (with ENDED) comes next: the pacer sends it
        return req.t0 + req.info.frames_sent * FRAME_S

    def _fail_plain(self) -> None:
        log.exception("avatarkit devserver: error sending output")
        self._end(CLOSE_INTERNAL, "internal error in the local avatar service (see its log)")


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
