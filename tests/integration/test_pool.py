"""SessionPool against the local avatar service over real loopback sockets.

Nothing is mocked: every pool opens real sessions (token call, WebSocket,
handshake) on the DevServer started by the ``avatar_server`` fixture, and the
faults are the service's own (``server.faults``) or its real limits.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from avatarkit import (
    AnimationFrameEvent,
    AvatarSDKError,
    AvatarSDKErrorCode,
    AvatarSession,
    PlaybackState,
    SessionConfigBuilder,
    SessionTokenError,
    new_avatar_session,
)
from avatarkit.devserver import DevServer, decode_animation
from avatarkit.pool import PoolClosedError, PoolStats, SessionLease, SessionPool
from tests._helpers import FIXTURES, speech_pcm

SPEECH_16K = (FIXTURES / "speech_16000.pcm").read_bytes()
FRAME_BYTES = 640 * 2  # 40 ms of 16 kHz PCM: one animation frame
AVATAR_NOT_FOUND = {
    "errors": [
        {
            "status": "404",
            "code": "avatarNotFound",
            "title": "Avatar not found",
            "detail": "avatar not found: 'dev-avatar'",
        }
    ]
}


def speech(seconds: float) -> bytes:
    return speech_pcm(16000, seconds)


def frames_for(pcm: bytes) -> int:
    return math.ceil(len(pcm) / 2 * 25 / 16000)


def pool_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("avatarkit-pool")]


@pytest.fixture(autouse=True)
async def no_leaked_pool_tasks() -> AsyncIterator[None]:
    yield
    assert pool_tasks() == []


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def collect(lease: SessionLease) -> list[AnimationFrameEvent]:
    """Every frame the lease gets, up to the first ``end``."""
    frames = []
    async for frame in lease.frames():
        frames.append(frame)
        if frame.end:
            break
    return frames


def check_request(frames: list[AnimationFrameEvent], req_id: str, expected: int) -> None:
    """Exactly the request's own frames, in order, with one ``end`` (the last)."""
    assert [f.req_id for f in frames] == [req_id] * expected
    assert [f.end for f in frames] == [False] * (expected - 1) + [True]
    assert [decode_animation(f.payload)["frame_index"] for f in frames] == list(range(expected))


# ---------------------------------------------------------------------------
# leasing
# ---------------------------------------------------------------------------


async def test_leases_are_exclusive_under_concurrency(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    # 20 requests of different lengths (3..22 frames) over 4 sessions: each
    # gets exactly its own frames, and no session is ever held twice.
    clips = [SPEECH_16K[: FRAME_BYTES * (i + 3)] for i in range(20)]
    held: set[str | None] = set()
    peak = 0

    async def one(pool: SessionPool, pcm: bytes) -> tuple[str, list[AnimationFrameEvent]]:
        nonlocal peak
        async with pool.session(timeout=10) as lease:
            assert lease.connection_id not in held
            held.add(lease.connection_id)
            peak = max(peak, len(held))
            try:
                await asyncio.sleep(0)  # let the others run while this lease is held
                req_id = await lease.send_audio(pcm, end=True)
                frames = []
                async for frame in lease.frames():
                    frames.append(frame)
                    if frame.end:
                        break
            finally:
                held.discard(lease.connection_id)
        return req_id, frames

    async with SessionPool(4, **avatar_session_kwargs) as pool:
        assert len(avatar_server.sessions) == 4
        results = await asyncio.gather(*(one(pool, pcm) for pcm in clips))
        for pcm, (req_id, frames) in zip(clips, results, strict=True):
            check_request(frames, req_id, frames_for(pcm))
        assert len({req_id for req_id, _ in results}) == 20
        assert peak == 4
        stats = pool.stats
        assert (stats.leases, stats.ready, stats.busy, stats.replacing) == (20, 4, 0, 0)
        assert stats.replacements == 0 and dict(stats.failures) == {}
        # every request played to its end: nothing was interrupted on release
        requests = [r for s in avatar_server.sessions.values() for r in s.requests.values()]
        assert len(requests) == 20
        assert {r.state for r in requests} == {PlaybackState.ENDED}
        assert len(avatar_server.sessions) == 4 and not avatar_server.closed_sessions
    await avatar_server.wait_closed_sessions(4)


async def test_request_helper_under_concurrency(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    clips = [SPEECH_16K[: FRAME_BYTES * (i + 1)] for i in range(12)]
    async with SessionPool(3, **avatar_session_kwargs) as pool:
        results = await asyncio.gather(*(pool.request(pcm, timeout=10) for pcm in clips))
        for pcm, frames in zip(clips, results, strict=True):
            check_request(frames, frames[-1].req_id, frames_for(pcm))
        assert pool.stats.leases == 12 and pool.stats.ready == 3


async def test_acquire_waits_times_out_and_is_fair(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    async with SessionPool(1, **avatar_session_kwargs) as pool:
        lease = await pool.acquire()
        with pytest.raises(TimeoutError, match=r"no pooled session became free within 0\.05 s"):
            await pool.acquire(timeout=0.05)

        # A waiter cancelled while waiting does not swallow the session.
        first = asyncio.create_task(pool.acquire())
        second = asyncio.create_task(pool.acquire())
        await wait_until(lambda: pool.stats.waiting == 2)
        first.cancel()
        await pool.release(lease)
        lease = await asyncio.wait_for(second, 2)
        assert first.cancelled()

        # Nor does one cancelled after the session was handed to it.
        first = asyncio.create_task(pool.acquire())
        second = asyncio.create_task(pool.acquire())
        await wait_until(lambda: pool.stats.waiting == 2)
        await pool.release(lease)  # hands the session to `first` ...
        first.cancel()  # ... which is cancelled before it runs: it passes it on
        lease = await asyncio.wait_for(second, 2)
        assert first.cancelled()
        frames = await lease.request(speech(0.2), timeout=5)
        assert len(frames) == 5
        await lease.release()
        await lease.release()  # idempotent
        assert pool.stats.ready == 1 and pool.stats.waiting == 0


async def test_a_released_lease_cannot_send(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    async with SessionPool(1, **avatar_session_kwargs) as pool:
        async with pool.session() as lease:
            pass
        assert lease.released
        with pytest.raises(RuntimeError, match="released"):
            await lease.send_audio(speech(0.1), end=True)
        with pytest.raises(RuntimeError, match="released"):
            await lease.interrupt()
        assert [f async for f in lease.frames()] == []  # iteration just stops
        async with pool.session() as again:
            assert again is not lease
            await again.send_audio(speech(0.1))
            with pytest.raises(ValueError, match="request is open"):
                await again.request(speech(0.1))


@pytest.mark.avatar_server(pace="realtime")
@pytest.mark.parametrize("end", [False, True], ids=["audio-open", "end-sent"])
async def test_release_mid_request_interrupts_and_drops_its_frames(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any], end: bool
) -> None:
    # One session, real-time pace: the first lease leaves after one frame of a
    # 2 s request. The pool interrupts it; the next lease sees only its own.
    async with SessionPool(1, **avatar_session_kwargs) as pool:
        async with pool.session() as lease:
            first = await lease.send_audio(speech(2.0), end=end)
            frame = await lease.frames().__anext__()
            assert frame.req_id == first
        state = avatar_server.last_session
        assert state is not None
        await wait_until(lambda: state.requests[first].state is PlaybackState.INTERRUPTED)
        assert state.requests[first].reason == "explicit"
        assert state.requests[first].frames_sent < frames_for(speech(2.0))

        async with pool.session() as lease:
            second = await lease.send_audio(speech(0.4), end=True)
            frames = await collect(lease)
        check_request(frames, second, 10)
        assert pool.stats.replacements == 0 and len(avatar_server.sessions) == 1


async def test_late_frames_of_a_released_request_never_reach_the_next_lease(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    # Fast pace: the whole 13.6 s clip's frames are on their way when the first
    # lease leaves after one frame; those arriving later are dropped.
    seen: list[AnimationFrameEvent] = []
    async with SessionPool(1, on_animation=seen.append, **avatar_session_kwargs) as pool:
        async with pool.session() as lease:
            first = await lease.send_audio(SPEECH_16K, end=True)
            await lease.frames().__anext__()
        released_at = len(seen)
        async with pool.session() as lease:
            second = await lease.send_audio(speech(0.4), end=True)
            frames = await collect(lease)
        check_request(frames, second, 10)
        late = [f for f in seen[released_at:] if f.req_id == first]
        assert late  # they did arrive (the session saw them) ...
        assert all(f.req_id == second for f in frames)  # ... but not the second lease


async def test_a_lease_that_waits_for_end_is_not_interrupted(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    async with SessionPool(1, **avatar_session_kwargs) as pool:
        async with pool.session() as lease:
            # two requests on one lease, then a third streamed in chunks
            a = await lease.request(speech(0.2), timeout=5)
            b = await lease.request(speech(0.3), timeout=5)
            pcm = speech(0.5)
            for offset in range(0, len(pcm), 3200):
                req = await lease.send_audio(pcm[offset : offset + 3200], end=False)
            await lease.send_audio(b"", end=True)
            c = []
            async for frame in lease.frames():
                c.append(frame)
                if frame.end:
                    break
        check_request(a, a[0].req_id, 5)
        check_request(b, b[0].req_id, 8)
        check_request(c, req, 13)
        state = avatar_server.last_session
        assert state is not None
        assert [r.state for r in state.requests.values()] == [PlaybackState.ENDED] * 3


async def test_a_request_error_reaches_the_leaseholder(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    # A ServerError about the lease's request ends lease.request() with it;
    # the session goes on (it is not replaced) and serves the next request.
    async with SessionPool(1, **avatar_session_kwargs) as pool:
        avatar_server.faults.send_error(13, "driven server request failed", after_frames=2)
        async with pool.session() as lease:
            with pytest.raises(AvatarSDKError) as info:
                await lease.request(speech(1.0), timeout=5)
        assert info.value.code is AvatarSDKErrorCode.upstreamError
        frames = await pool.request(speech(0.2), timeout=5)
        check_request(frames, frames[0].req_id, 5)
        assert pool.stats.replacements == 0 and dict(pool.stats.failures) == {}
        assert len(avatar_server.sessions) == 1


# ---------------------------------------------------------------------------
# replacement
# ---------------------------------------------------------------------------


async def test_a_dropped_session_is_replaced(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    async with SessionPool(2, backoff_initial=0.01, **avatar_session_kwargs) as pool:
        original = set(avatar_server.sessions)
        avatar_server.faults.drop_connection(after_frames=3)
        with pytest.raises(AvatarSDKError) as info:
            await pool.request(speech(1.0), timeout=5)
        error = info.value
        assert error.code is AvatarSDKErrorCode.connectionClosed
        assert error.close_code is None and error.retryable

        await pool.wait_ready(timeout=5)
        stats = pool.stats
        assert stats.ready == 2 and stats.replacements == 1 and stats.replacing == 0
        assert dict(stats.failures) == {"connectionClosed": 1}
        assert dict(stats.close_codes) == {}
        (dropped,) = avatar_server.closed_sessions
        assert dropped.aborted and dropped.connection_id in original
        assert len(set(avatar_server.sessions) - original) == 1

        results = await asyncio.gather(*(pool.request(speech(0.4), timeout=5) for _ in range(6)))
        for frames in results:
            check_request(frames, frames[0].req_id, 10)


async def test_request_retries_on_another_session(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    async with SessionPool(2, backoff_initial=0.01, **avatar_session_kwargs) as pool:
        avatar_server.faults.close(4002, "maximum session duration reached", after_frames=2)
        frames = await pool.request(speech(1.0), timeout=5, retries=1)
        check_request(frames, frames[0].req_id, 25)
        await wait_until(lambda: pool.stats.replacements == 1 and pool.stats.ready == 2)
        assert dict(pool.stats.close_codes) == {4002: 1}
        assert dict(pool.stats.failures) == {"connectionClosed": 1}


async def test_a_session_closed_with_4002_while_leased_is_replaced(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    async with SessionPool(1, backoff_initial=0.01, **avatar_session_kwargs) as pool:
        avatar_server.faults.close(4002, "maximum session duration reached", after_frames=2)
        async with pool.session() as lease:
            await lease.send_audio(speech(1.0), end=True)
            received = []
            with pytest.raises(AvatarSDKError) as info:
                async for frame in lease.frames():
                    received.append(frame)
            assert len(received) >= 2  # what arrived before the close comes first
            assert info.value.close_code == 4002 and info.value.retryable
            with pytest.raises(AvatarSDKError):  # and it stays failed
                await lease.frames().__anext__()
            with pytest.raises(AvatarSDKError) as sent:
                await lease.send_audio(speech(0.1), end=True)
            assert sent.value.phase == "websocket_send"
        lease2 = await pool.acquire(timeout=5)  # the replacement
        assert lease2.connection_id != lease.connection_id
        frames = await lease2.request(speech(0.2), timeout=5)
        await pool.release(lease2)
        check_request(frames, frames[0].req_id, 5)
        assert pool.stats.replacements == 1


@pytest.mark.avatar_server(max_session_seconds=0.3)
async def test_sessions_hitting_the_duration_limit_keep_being_replaced(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    # The service ends every session after 0.3 s (ServerError 4002, close 4002).
    async with SessionPool(
        2, backoff_initial=0.01, backoff_max=0.1, **avatar_session_kwargs
    ) as pool:
        deadline = time.monotonic() + 1.2
        served = 0
        while time.monotonic() < deadline:
            frames = await pool.request(speech(0.2), timeout=5, retries=3)
            check_request(frames, frames[0].req_id, 5)
            served += 1
            await asyncio.sleep(0.05)
        assert served >= 5
        stats = pool.stats
        assert stats.close_codes.get(4002, 0) >= 4
        assert stats.replacements >= 4 and not stats.failed


async def test_a_flapping_service_is_not_hammered(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    # Every connection is dropped right after the handshake: each replacement
    # dies young, so replacements back off instead of reconnecting at once.
    avatar_server.faults.drop_connection(after_frames=0, persistent=True)
    async with SessionPool(
        1, min_ready=0, backoff_initial=0.05, backoff_max=1.0, **avatar_session_kwargs
    ) as pool:
        await asyncio.sleep(1.0)
        attempts = len(avatar_server.closed_sessions)
        assert 3 <= attempts <= 15
        assert not pool.stats.failed


# ---------------------------------------------------------------------------
# failures a retry cannot fix
# ---------------------------------------------------------------------------


async def test_a_non_retryable_replacement_failure_surfaces_from_acquire(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    async with SessionPool(1, backoff_initial=0.01, **avatar_session_kwargs) as pool:
        lease = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await wait_until(lambda: pool.stats.waiting == 1)
        # the session drops mid-request, and its replacement is refused (404)
        avatar_server.faults.reject_upgrade(404, AVATAR_NOT_FOUND, persistent=True)
        avatar_server.faults.drop_connection(after_frames=2)
        with pytest.raises(AvatarSDKError) as dropped:
            await lease.request(speech(1.0), timeout=5)
        assert dropped.value.code is AvatarSDKErrorCode.connectionClosed

        with pytest.raises(AvatarSDKError) as woken:
            await asyncio.wait_for(waiter, 5)  # the waiting acquire is woken with it
        assert woken.value.code is AvatarSDKErrorCode.avatarNotFound
        assert not woken.value.retryable
        await pool.release(lease)
        for _ in range(2):
            with pytest.raises(AvatarSDKError) as again:
                await pool.acquire()
            assert again.value.code is AvatarSDKErrorCode.avatarNotFound
        with pytest.raises(AvatarSDKError):
            await pool.request(speech(0.2), retries=3)
        with pytest.raises(AvatarSDKError) as waited:
            await pool.wait_ready()
        assert waited.value.code is AvatarSDKErrorCode.avatarNotFound

        await asyncio.sleep(0.3)
        assert avatar_server.rejected_upgrades == 1  # tried once: no spinning
        stats = pool.stats
        assert stats.failed and stats.replacing == 0 and stats.ready == 0
        assert dict(stats.failures) == {"connectionClosed": 1, "avatarNotFound": 1}
        assert isinstance(pool.failure, AvatarSDKError)
        assert "failed (avatarNotFound)" in repr(pool)


async def test_a_non_retryable_close_stops_replacement(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    async with SessionPool(2, **avatar_session_kwargs) as pool:
        avatar_server.faults.close(4001, "credits exhausted", after_frames=1)
        with pytest.raises(AvatarSDKError) as info:
            await pool.request(speech(0.5), timeout=5, retries=5)
        assert info.value.close_code == 4001 and not info.value.retryable
        with pytest.raises(AvatarSDKError) as acquired:
            await pool.acquire()
        assert acquired.value.close_code == 4001
        await avatar_server.wait_closed_sessions(2)  # the idle one was closed too
        assert pool.stats.replacements == 0 and pool.stats.ready == 0
        assert dict(pool.stats.close_codes) == {4001: 1}


async def test_a_wrong_api_key_fails_start_without_retrying(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    pool = SessionPool(3, **{**avatar_session_kwargs, "api_key": "wrong-api-key"})
    with pytest.raises(SessionTokenError) as info:
        async with pool:
            pytest.fail("the pool should not start")
    assert not info.value.retryable and info.value.http_status == 401
    stats = pool.stats
    assert stats.closed and stats.failed and stats.replacing == 0
    assert 1 <= stats.failures[info.value.code.value] <= 3  # at most one try per session
    await asyncio.sleep(0.2)
    assert pool.stats.failures == stats.failures
    assert avatar_server.connection_count == 0 and not avatar_server.closed_sessions
    assert pool_tasks() == []
    with pytest.raises(PoolClosedError):
        await pool.acquire()


async def test_retryable_start_failures_are_retried(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    avatar_server.faults.reject_upgrade(503)
    avatar_server.faults.reject_upgrade(503)
    async with SessionPool(1, backoff_initial=0.01, **avatar_session_kwargs) as pool:
        assert dict(pool.stats.failures) == {"serverError": 2}
        assert pool.stats.replacements == 0 and pool.stats.ready == 1


async def test_max_retries_bounds_retryable_failures(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    avatar_server.faults.reject_upgrade(503, persistent=True)
    pool = SessionPool(1, max_retries=2, backoff_initial=0.01, **avatar_session_kwargs)
    with pytest.raises(AvatarSDKError) as info:
        await pool.start()
    assert info.value.code is AvatarSDKErrorCode.serverError and info.value.retryable
    assert avatar_server.rejected_upgrades == 3
    assert pool.closed and dict(pool.stats.failures) == {"serverError": 3}


# ---------------------------------------------------------------------------
# closing
# ---------------------------------------------------------------------------


async def test_close_cancels_pending_replacements(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    pool = SessionPool(2, backoff_initial=30.0, backoff_max=60.0, **avatar_session_kwargs)
    await pool.start()
    avatar_server.faults.reject_upgrade(503, persistent=True)
    avatar_server.faults.drop_connection(after_frames=1)
    with pytest.raises(AvatarSDKError):
        await pool.request(speech(0.5), timeout=5)
    # the first replacement attempt is refused; the next one is 15-30 s away
    await wait_until(lambda: pool.stats.failures.get("serverError") == 1)
    assert pool.stats.replacing == 1 and len(pool_tasks()) == 1
    with pytest.raises(TimeoutError, match=r"1 of 2 sessions open after 0\.1 s"):
        await pool.wait_ready(timeout=0.1)
    await pool.wait_ready(1)

    lease = await pool.acquire()  # the surviving session
    waiter = asyncio.create_task(pool.acquire())
    await wait_until(lambda: pool.stats.waiting == 1)
    started = time.monotonic()
    await pool.aclose()
    assert time.monotonic() - started < 2.0
    assert pool_tasks() == []
    stats = pool.stats
    assert stats.closed and stats.replacing == 0 and stats.ready == 0 and stats.busy == 0
    with pytest.raises(PoolClosedError):
        await waiter
    with pytest.raises(PoolClosedError):
        await lease.frames().__anext__()
    await pool.release(lease)
    with pytest.raises(PoolClosedError):
        await pool.acquire()
    await pool.aclose()  # idempotent
    await avatar_server.wait_closed_sessions(2)
    assert avatar_server.connection_count == 0


async def test_closing_while_starting(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    avatar_server.faults.reject_upgrade(503, persistent=True)
    pool = SessionPool(2, backoff_initial=5.0, **avatar_session_kwargs)
    with pytest.raises((asyncio.TimeoutError, TimeoutError)):
        await asyncio.wait_for(pool.start(), 0.3)
    assert pool.closed and pool_tasks() == []


# ---------------------------------------------------------------------------
# options, callbacks, stats
# ---------------------------------------------------------------------------


async def test_min_ready_returns_early(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    avatar_server.faults.reject_upgrade(503)
    avatar_server.faults.reject_upgrade(503)
    async with SessionPool(3, min_ready=1, backoff_initial=0.2, **avatar_session_kwargs) as pool:
        stats = pool.stats
        assert stats.ready >= 1 and stats.replacing >= 1
        frames = await pool.request(speech(0.2), timeout=5)
        assert len(frames) == 5
        await wait_until(lambda: pool.stats.ready == 3)
        assert pool.stats.replacements == 0  # first opens are not replacements


async def test_user_callbacks_are_chained(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    animations: list[AnimationFrameEvent] = []
    errors: list[Exception] = []
    closes = 0

    async def on_error(error: Exception) -> None:  # async ones are awaited too
        await asyncio.sleep(0)
        errors.append(error)

    def on_close() -> None:
        nonlocal closes
        closes += 1

    pool = SessionPool(
        2,
        backoff_initial=0.01,
        on_animation=animations.append,
        on_error=on_error,
        on_close=on_close,
        **avatar_session_kwargs,
    )
    async with pool:
        frames = await pool.request(speech(0.2), timeout=5)
        assert animations == frames
        avatar_server.faults.drop_connection(after_frames=1)
        with pytest.raises(AvatarSDKError):
            await pool.request(speech(0.5), timeout=5)
        await wait_until(lambda: pool.stats.replacements == 1 and bool(errors))
        assert closes == 1
        assert [type(e) for e in errors] == [AvatarSDKError]
        assert isinstance(errors[0], AvatarSDKError)
        assert errors[0].code is AvatarSDKErrorCode.connectionClosed
    assert closes == 3  # two originals and the replacement


async def test_session_factory(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    def built(**hooks: Any) -> AvatarSession:
        config = (
            SessionConfigBuilder()
            .with_avatar_id(avatar_server.avatar_id)
            .with_api_key(avatar_server.api_key)
            .with_app_id(avatar_server.app_id)
            .with_console_endpoint_url(avatar_server.console_url)
            .with_ingress_endpoint_url(avatar_server.ingress_url)
            .with_expire_at(avatar_session_kwargs["expire_at"])
            .with_on_animation(hooks["on_animation"])
            .with_on_error(hooks["on_error"])
            .with_on_close(hooks["on_close"])
            .build()
        )
        return AvatarSession(config)

    async def minted(**hooks: Any) -> AvatarSession:
        # a token from "your backend", and the factory starts the session itself
        session = new_avatar_session(**avatar_session_kwargs, **hooks)
        session.use_session_token(avatar_server.issue_token())
        await session.start()
        return session

    for factory in (built, minted):
        async with SessionPool(2, session_factory=factory) as pool:
            results = await asyncio.gather(
                *(pool.request(speech(0.2), timeout=5) for _ in range(4))
            )
            assert [len(f) for f in results] == [5] * 4

    def forgetful(**hooks: Any) -> AvatarSession:
        return new_avatar_session(**avatar_session_kwargs)

    with pytest.raises(TypeError, match="missing: on_animation, on_error, on_close"):
        async with SessionPool(1, session_factory=forgetful):
            pass


async def test_session_ttl_sets_expire_at_per_session(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    kwargs = {k: v for k, v in avatar_session_kwargs.items() if k != "expire_at"}
    with pytest.raises(ValueError, match="expire_at is required"):
        SessionPool(1, **kwargs)
    with pytest.raises(TypeError, match="session_ttl or expire_at"):
        SessionPool(1, session_ttl=60, **avatar_session_kwargs)
    async with SessionPool(1, session_ttl=60, **kwargs) as pool:
        assert len(await pool.request(speech(0.2), timeout=5)) == 5


async def test_stats_and_repr(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    pool = SessionPool(3, **avatar_session_kwargs)
    assert "not started" in repr(pool)
    with pytest.raises(RuntimeError, match="not started"):
        await pool.acquire()
    async with pool:
        assert pool.stats == PoolStats(
            size=3,
            ready=3,
            busy=0,
            replacing=0,
            waiting=0,
            leases=0,
            replacements=0,
            failures={},
            close_codes={},
            failed=False,
            closed=False,
        )
        async with pool.session() as a, pool.session() as b:
            assert isinstance(a, SessionLease) and a.connection_id != b.connection_id
            stats = pool.stats
            assert (stats.ready, stats.busy, stats.leases) == (1, 2, 2)
            text = repr(pool) + repr(a) + repr(stats)
            assert "size=3 ready=1 busy=2 replacing=0 avatar_id='dev-avatar' running" in text
            assert a.connection_id is not None and a.connection_id in repr(a)
        assert (pool.stats.ready, pool.stats.busy) == (3, 0)
    assert "closed" in repr(pool)
    for text in (repr(pool), repr(pool.stats), str(pool.stats)):
        assert avatar_server.api_key not in text


async def test_bad_arguments_fail_before_any_network_call(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    kwargs = avatar_session_kwargs
    with pytest.raises(ValueError, match="size"):
        SessionPool(0, **kwargs)
    with pytest.raises(ValueError, match="min_ready"):
        SessionPool(2, min_ready=3, **kwargs)
    with pytest.raises(ValueError, match="max_retries"):
        SessionPool(2, max_retries=-1, **kwargs)
    with pytest.raises(ValueError, match="backoff_initial"):
        SessionPool(2, backoff_initial=0, **kwargs)
    with pytest.raises(ValueError, match="backoff_max"):
        SessionPool(2, backoff_initial=2, backoff_max=1, **kwargs)
    with pytest.raises(TypeError, match="avatar_idd"):
        SessionPool(2, avatar_idd="x", **kwargs)
    with pytest.raises(TypeError, match="not both"):
        SessionPool(2, session_factory=lambda **h: new_avatar_session(**kwargs, **h), **kwargs)
    with pytest.raises(ValueError, match="sample_rate"):
        SessionPool(2, **{**kwargs, "sample_rate": 0})
    assert avatar_server.connection_count == 0 and avatar_server.last_session is None


async def test_a_concurrency_limit_close_is_retried(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    """4003 is usually the pool's own replaced session not yet released: retry, with backoff."""
    async with SessionPool(1, **avatar_session_kwargs) as pool:
        avatar_server.faults.close(4003, "concurrency limit", after_frames=1)
        with pytest.raises(AvatarSDKError) as info:
            await pool.request(speech(0.5), timeout=5)
        assert info.value.close_code == 4003
        frames = await pool.request(speech(0.5), timeout=10)
        assert frames[-1].end
        assert not pool.stats.failed and pool.stats.replacements >= 1
