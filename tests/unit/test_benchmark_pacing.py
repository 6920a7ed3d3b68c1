"""The benchmark's two pacers, run on a real event loop without sockets: the
flood server's one timer for every real-time session (``Pacer``) and the
measuring harness's one task for every session's audio (``paced_sends``)."""

from __future__ import annotations

import asyncio
import time
from array import array
from typing import Any

from benchmarks.clients.measure import SEND_EARLY, paced_sends
from benchmarks.common import FRAME_PERIOD
from benchmarks.servers.flood import Pacer


class _Stream:
    """A fake real-time session: records when each frame went out and how many
    timers the loop had pending then."""

    def __init__(self, loop: asyncio.AbstractEventLoop, t0: float, frames: int) -> None:
        self.loop, self.t0, self.frames, self.k = loop, t0, frames, 0
        self.sent: list[tuple[float, float]] = []
        self.timers: list[int] = []
        self.done: asyncio.Future[None] = loop.create_future()

    def send_due(self, due: float, now: float) -> float | None:
        assert due == self.t0 + self.k * FRAME_PERIOD
        self.sent.append((due, time.monotonic()))
        scheduled = getattr(self.loop, "_scheduled", [])  # asyncio's pending timers
        self.timers.append(sum(1 for h in scheduled if not h.cancelled()))
        self.k += 1
        if self.k == self.frames:
            self.done.set_result(None)
            return None
        return self.t0 + self.k * FRAME_PERIOD


async def test_the_flood_server_paces_every_session_with_one_timer_and_never_early() -> None:
    loop = asyncio.get_running_loop()
    pacer = Pacer(loop)
    start = time.monotonic() + 0.01
    streams = [_Stream(loop, start + FRAME_PERIOD * i / 40, 4) for i in range(40)]
    for s in streams:
        pacer.add(s.t0, s)
    await asyncio.wait_for(asyncio.gather(*(s.done for s in streams)), 5)
    for s in streams:
        assert len(s.sent) == 4
        assert all(now >= due - Pacer.EARLY for due, now in s.sent)  # never earlier than that
        # While it sends, the only timer pending is the test's own time-out (a timer
        # per session would leave the other 39 sessions' timers pending).
        assert max(s.timers) <= 1
    assert pacer.timer is None and not pacer.heap  # nothing left armed


class _Adapter:
    """A fake client: ``slow`` suspends in every send, ``broken`` fails at its
    second; each send records its handle, time, end flag and task."""

    name = "fake"

    def __init__(self) -> None:
        self.sent: list[tuple[str, float, bool, Any]] = []

    async def send_audio(self, handle: str, data: bytes, end: bool) -> None:
        if handle == "broken" and any(h == "broken" for h, *_ in self.sent):
            raise ConnectionError("peer gone")
        if handle == "slow":
            await asyncio.sleep(0.005)
        self.sent.append((handle, time.monotonic(), end, asyncio.current_task()))


async def test_one_task_sends_every_sessions_audio_in_order_and_a_blocked_send_waits_alone() -> (
    None
):
    adapter = _Adapter()
    names = ["a", "b", "slow", "broken"]
    frames = 4
    base = time.monotonic() + 0.02
    starts = [(base + FRAME_PERIOD * i / len(names), i, h) for i, h in enumerate(names)]
    lag = array("d", bytes(8 * len(names) * frames))
    failures, blocked = await asyncio.wait_for(
        paced_sends(adapter, starts, frames, b"\0\0", lag),  # type: ignore[arg-type]
        5,
    )
    assert (failures, blocked) == (1, frames)  # broken's second send; every slow send
    sender = adapter.sent[0][3]  # the task paced_sends runs in (wait_for's)
    for i, name in enumerate(["a", "b", "slow"]):
        sends = [s for s in adapter.sent if s[0] == name]
        assert [end for _, _, end, _ in sends] == [False, False, False, True]
        due = [base + FRAME_PERIOD * (i / len(names) + k) for k in range(frames)]
        assert all(t >= d - SEND_EARLY for (_, t, _, _), d in zip(sends, due, strict=True))
        if name != "slow":  # sent by paced_sends' own task: no task per session
            assert all(task is sender for *_, task in sends)
        else:  # each suspended send finished in a task of its own
            tasks = {task for *_, task in sends}
            assert len(tasks) == frames and sender not in tasks
    assert [s[0] for s in adapter.sent].count("broken") == 1  # nothing after its failure
    assert min(lag) >= -SEND_EARLY
