"""``_pacing.Pacer`` with a fake clock: realtime schedule, no drift, source/fast never wait."""

from __future__ import annotations

import random

import pytest

from avatarkit._pacing import REALTIME_LEAD_S, LoopClock, Pacer


class FakeClock:
    """Time moves only when the code under test sleeps or the test says a send took time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds


CHUNK_S = 0.04
CHUNKS = 15_000  # 10 minutes of 40 ms chunks


async def test_ten_minute_realtime_stream_ends_within_50ms_of_ten_minutes() -> None:
    clock = FakeClock()
    pacer = Pacer("realtime", clock=clock)
    rng = random.Random(11)
    t0 = clock.now()
    send_starts, send_ends = [], [t0]
    for _ in range(CHUNKS):
        await pacer.wait(CHUNK_S)
        send_starts.append(clock.now())
        clock.advance(rng.uniform(0.0, 0.005))  # the send itself takes 0-5 ms
        send_ends.append(clock.now())
    # each chunk goes out at its playback time minus the lead (or right after the previous
    # send when that ran past it): never early, never drifting
    for i, started in enumerate(send_starts):
        due = t0 + i * CHUNK_S - REALTIME_LEAD_S
        assert max(due, send_ends[i]) - 1e-9 <= started <= max(due, send_ends[i]) + 1e-9, i
    # the stream's audio ends playing (last send + lead + its 40 ms) within 50 ms of 10 min
    end = send_starts[-1] + REALTIME_LEAD_S + CHUNK_S
    assert abs((end - t0) - 600.0) < 0.05
    assert pacer.playback_end == pytest.approx(t0 + 600.0)
    assert pacer.audio_s == pytest.approx(600.0)


async def test_naive_last_send_plus_duration_pacing_would_fail_the_same_check() -> None:
    """The check above is sensitive: pacing from the last send adds up the send times."""
    clock = FakeClock()
    rng = random.Random(11)
    t0 = clock.now()
    last = t0
    for i in range(CHUNKS):
        if i:
            await clock.sleep(CHUNK_S)  # "chunk duration after the last send"
        last = clock.now()
        clock.advance(rng.uniform(0.0, 0.005))
    assert (last + REALTIME_LEAD_S + CHUNK_S) - t0 - 600.0 > 0.05


async def test_first_lead_of_audio_goes_out_at_once_then_on_schedule() -> None:
    clock = FakeClock()
    pacer = Pacer("realtime", clock=clock, lead_s=0.08)
    times = []
    for _ in range(5):
        await pacer.wait(0.04)
        times.append(round(clock.now() - 1000.0, 9))
    assert times == [0.0, 0.0, 0.0, 0.04, 0.08]


async def test_late_chunk_goes_at_once_and_the_schedule_is_kept() -> None:
    clock = FakeClock()
    pacer = Pacer("realtime", clock=clock, lead_s=0.0)
    await pacer.wait(0.04)
    clock.advance(0.5)  # the source stalled for half a second
    await pacer.wait(0.04)  # due at +0.04: late, no wait
    assert clock.sleeps == []
    for _ in range(11):  # due at +0.08 .. +0.48: all already late
        await pacer.wait(0.04)
    assert clock.sleeps == []
    await pacer.wait(0.04)  # due at +0.52: waits 20 ms, back on the original schedule
    assert clock.sleeps == [pytest.approx(0.02)]


@pytest.mark.parametrize("pace", ["source", "fast"])
async def test_source_and_fast_never_wait(pace: str) -> None:
    clock = FakeClock()
    pacer = Pacer(pace, clock=clock)  # type: ignore[arg-type]
    for _ in range(1000):
        await pacer.wait(0.04)
    assert clock.sleeps == []
    assert pacer.audio_s == pytest.approx(40.0)
    assert pacer.due() is None


@pytest.mark.parametrize("pace", ["source", "fast", "realtime"])
def test_advance_accounts_a_chunk_without_waiting(pace: str) -> None:
    """The feeder's per-chunk call for the paces that never wait (no coroutine)."""
    clock = FakeClock()
    pacer = Pacer(pace, clock=clock)  # type: ignore[arg-type]
    pacer.advance(0.04)
    clock.advance(1.0)
    pacer.advance(0.02)
    assert pacer.started_at == 1000.0  # the first call fixes the start
    assert pacer.audio_s == pytest.approx(0.06)
    assert pacer.playback_end == pytest.approx(1000.06)
    assert clock.sleeps == []
    for bad in (float("nan"), float("inf"), -0.04):
        with pytest.raises(ValueError, match="chunk duration"):
            pacer.advance(bad)
    assert pacer.audio_s == pytest.approx(0.06)  # a refused duration is not counted


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="'realtime', 'source', 'fast'"):
        Pacer("slow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lead_s"):
        Pacer("realtime", lead_s=-1)
    with pytest.raises(TypeError, match="lead_s"):
        Pacer("realtime", lead_s="0.1")  # type: ignore[arg-type]


async def test_bad_duration_is_a_clear_error() -> None:
    pacer = Pacer("realtime", clock=FakeClock())
    with pytest.raises(ValueError, match="chunk duration"):
        await pacer.wait(float("nan"))
    with pytest.raises(ValueError, match="chunk duration"):
        await pacer.wait(-0.04)


async def test_loop_clock_paces_a_short_stream_without_hanging() -> None:
    import asyncio

    pacer = Pacer("realtime", clock=LoopClock(), lead_s=0.0)

    async def run() -> None:
        for _ in range(5):
            await pacer.wait(0.01)

    await asyncio.wait_for(run(), 5.0)  # 40 ms of waiting; the bound only proves no hang
    assert pacer.audio_s == pytest.approx(0.05)
    assert pacer.started_at is not None
