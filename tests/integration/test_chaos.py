"""Chaos on the wire: the SDK against the local service through a fault-injecting proxy.

Every session here reaches the service (token call and WebSocket) through
``avatarkit.testing.ChaosProxy``, a real TCP proxy on loopback. Nothing is
mocked. The claim under test (issue 14): under latency, jitter and a
bandwidth cap every request completes with all its frames once, in order,
``end`` once; under a cut mid-frame, a reset or a half-open connection every
request either completes like that or fails with a retryable error within a
bounded time, without hanging or leaking, and the pool keeps serving.

"Once and in order" is checked against the service's own numbering: each
animation payload of the local service carries its 0-based ``frame_index``
within the request, and the service's count of frames sent per request is
in ``session_summaries()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from avatarkit import (
    AnimationFrameEvent,
    AvatarSDKError,
    AvatarSDKErrorCode,
    AvatarSession,
    new_avatar_session,
)
from avatarkit.devserver import DevServer, decode_animation
from avatarkit.pool import SessionPool
from avatarkit.testing import ChaosProxy
from tests._helpers import speech_pcm

AUDIO = speech_pcm(16000, 1.0)  # 25 frames
FRAMES = 25
SHORT = speech_pcm(16000, 0.4)
FAULT_BOUND = 5.0  # seconds from a fault to the request's error (the SDK's bounds are ~1-2 s)


@pytest.fixture
async def proxy(avatar_server: DevServer) -> AsyncIterator[ChaosProxy]:
    async with ChaosProxy("127.0.0.1", avatar_server.port, seed=14) as chaos:
        yield chaos
    assert chaos.stats.open == 0


@pytest.fixture(autouse=True)
async def no_leaks_nothing_escapes() -> AsyncIterator[None]:
    """No SDK task left running and no exception reaching the event loop's handler."""
    loop = asyncio.get_running_loop()
    escaped: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))
    try:
        yield
    finally:
        loop.set_exception_handler(previous)
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    # the per-loop clean-up guard lives as long as the loop, by design
    names = [
        n
        for t in left
        if (n := t.get_name()).startswith("avatarkit") and n != "avatarkit-loop-guard"
    ]
    assert names == [], names
    assert escaped == [], escaped


def via(server: DevServer, proxy: ChaosProxy, **more: Any) -> dict[str, Any]:
    """Session keywords reaching ``server`` through ``proxy`` (token call and WebSocket)."""
    return server.session_kwargs(
        console_endpoint_url=proxy.url(server.console_url),
        ingress_endpoint_url=proxy.url(server.ingress_url),
        **more,
    )


def service_frames(server: DevServer, req_id: str | None) -> int:
    """Frames the service sent for ``req_id`` (its own count)."""
    for session in server.session_summaries():
        for request in session["requests"]:
            if request["req_id"] == req_id:
                return int(request["frames"])
    raise AssertionError(f"the service has no request {req_id}")


def indices(frames: list[AnimationFrameEvent]) -> list[int]:
    return [decode_animation(f.payload)["frame_index"] for f in frames]


def check_complete(server: DevServer, frames: list[AnimationFrameEvent]) -> None:
    """All the frames the service sent for the request, once, in order, ``end`` once, last."""
    assert frames, "no frames"
    req_ids = {f.req_id for f in frames}
    assert len(req_ids) == 1, req_ids
    sent = service_frames(server, frames[0].req_id)
    assert indices(frames) == list(range(sent))
    assert [f.end for f in frames] == [False] * (sent - 1) + [True]


def check_prefix(frames: list[AnimationFrameEvent]) -> None:
    """A request cut short: a prefix of its frames, in order, no duplicate, no ``end``."""
    assert len({f.req_id for f in frames}) <= 1
    assert indices(frames) == list(range(len(frames)))
    assert not any(f.end for f in frames)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def no_live_sessions(server: DevServer, proxy: ChaosProxy) -> None:
    """Nothing left open: the service and the proxy see every connection closed."""
    try:
        await wait_until(lambda: not server.sessions and proxy.stats.open_websockets == 0)
    except AssertionError:
        raise AssertionError(f"left open: {server.sessions}, {proxy.stats}") from None


# -- a slow, jittery, thin network: everything completes, exactly once ------------------

SLOW_NETS = {
    "latency+jitter": {"latency": 0.03, "jitter": 0.05},
    "bandwidth 80 kB/s": {"bandwidth": 80_000},
}


@pytest.mark.parametrize("net", list(SLOW_NETS.values()), ids=list(SLOW_NETS))
async def test_slow_network_every_request_completes_exactly_once(
    avatar_server: DevServer, proxy: ChaosProxy, net: dict[str, float]
) -> None:
    for name, value in net.items():
        setattr(proxy, name, value)
    # stream() handles
    async with new_avatar_session(**via(avatar_server, proxy)) as session:
        for _ in range(2):
            req = session.stream(AUDIO, chunk_ms=100)
            frames = [f async for f in req]
            summary = await asyncio.wait_for(req.done(), 10)
            assert summary.frames == FRAMES and not summary.interrupted
            check_complete(avatar_server, frames)
    # the callback API, audio in uneven chunks
    got: list[AnimationFrameEvent] = []
    ended = asyncio.Event()

    def on_animation(event: AnimationFrameEvent) -> None:
        got.append(event)
        if event.end:
            ended.set()

    closes: list[int] = []
    async with new_avatar_session(
        **via(avatar_server, proxy), on_animation=on_animation, on_close=lambda: closes.append(1)
    ) as session:
        for start in range(0, len(AUDIO), 3002):
            await session.send_audio(AUDIO[start : start + 3002])
        await session.send_audio(b"", end=True)
        await asyncio.wait_for(ended.wait(), 10)
    check_complete(avatar_server, got)
    assert closes == [1]
    # the pool
    async with SessionPool(1, **via(avatar_server, proxy)) as pool:
        check_complete(avatar_server, await pool.request(AUDIO, timeout=10))
    await no_live_sessions(avatar_server, proxy)


async def test_late_frames_of_a_released_lease_never_reach_the_next_one(
    avatar_server: DevServer, proxy: ChaosProxy
) -> None:
    """With 50 ms of latency, frames of a request released mid-way are still in
    flight when the same session is leased again: they must be dropped."""
    proxy.latency = 0.05
    async with SessionPool(1, **via(avatar_server, proxy)) as pool:
        for _ in range(3):
            lease = await pool.acquire(timeout=5)
            first = lease.stream(AUDIO)
            async for frame in first:
                if decode_animation(frame.payload)["frame_index"] == 1:
                    break
            await lease.release()  # interrupts it; the rest of its frames are late
            async with pool.session(timeout=5) as again:
                assert again.session is lease.session
                req = again.stream(SHORT)
                frames = [f async for f in req]
                await req.done()
                mixed = []
                async for frame in again.frames():
                    mixed.append(frame)
                    if frame.end:
                        break
            check_complete(avatar_server, frames)
            assert [f.req_id for f in mixed] == [req.req_id] * len(frames)
            assert indices(mixed) == indices(frames)
    await no_live_sessions(avatar_server, proxy)


# -- a connection broken mid-request: a retryable error, in bounded time -----------------


def arm(proxy: ChaosProxy, fault: str, after_bytes: int = 12) -> Callable[[], None]:
    """The fault to inject once a request has its first frames."""
    if fault == "cut":
        # the next frame the service sends is cut ``after_bytes`` in, then FIN
        return lambda: proxy.cut_mid_frame(after_bytes=after_bytes)
    if fault == "reset":
        return lambda: None if proxy.reset() else pytest.fail("no connection to reset")
    if fault == "half-open":
        return lambda: None if proxy.half_open() else pytest.fail("no connection to freeze")
    raise AssertionError(fault)


# A half-open connection is only noticed by keepalive pings (or a request's own
# end_timeout): short ones here, so that the test takes well under a second.
KEEPALIVE = {"keepalive_interval": 0.3, "keepalive_timeout": 0.3}


def options(fault: str) -> dict[str, Any]:
    return KEEPALIVE if fault == "half-open" else {}


def check_fault_fired(proxy: ChaosProxy, fault: str, connections: int = 1) -> None:
    """The fault hit: one connection cut, or every WebSocket open then reset or frozen."""
    stats = proxy.stats
    expected = {
        "cut": (1, 0, 0),
        "reset": (0, connections, 0),
        "half-open": (0, 0, connections),
    }[fault]
    assert (stats.cuts, stats.resets, stats.frozen) == expected


def check_error(error: BaseException, fault: str) -> None:
    """Retryable; a half-open connection is reported as keepalive's 1011."""
    assert isinstance(error, AvatarSDKError), error
    assert error.retryable, error
    assert error.code is AvatarSDKErrorCode.connectionClosed, error
    if fault == "half-open":
        assert (error.close_code, error.close_reason) == (1011, "keepalive ping timeout")


async def settle(server: DevServer, proxy: ChaosProxy, fault: str, confirmed: bool = True) -> None:
    """Nothing left open. The service cannot know of a half-open connection (as
    with a real frozen peer): its side stays open until the proxy drops it."""
    if fault == "half-open":
        assert bool(server.sessions) == confirmed  # (unconfirmed ones are not listed)
        await proxy.close()
    await no_live_sessions(server, proxy)


BREAKS = ["cut", "reset", "half-open"]


@pytest.mark.avatar_server(pace="realtime")  # 40 ms between frames: the fault lands mid-request
@pytest.mark.parametrize(
    ("fault", "after_bytes"),
    [("cut", 1), ("cut", 3), ("cut", 12), ("reset", 0), ("half-open", 0)],
    ids=["cut-in-header", "cut-in-length", "cut-in-payload", "reset", "half-open"],
)
async def test_broken_connection_fails_a_streamed_request_retryably(
    avatar_server: DevServer, proxy: ChaosProxy, fault: str, after_bytes: int
) -> None:
    inject = arm(proxy, fault, after_bytes)
    session = new_avatar_session(**via(avatar_server, proxy, **options(fault)))
    async with session:
        req = session.stream(AUDIO, end_timeout=2)
        frames: list[AnimationFrameEvent] = []
        injected = 0.0

        async def consume() -> None:
            nonlocal injected
            async for frame in req:
                frames.append(frame)
                if len(frames) == 3:
                    injected = time.monotonic()
                    inject()

        with pytest.raises(AvatarSDKError) as caught:
            await asyncio.wait_for(consume(), 10)
        assert time.monotonic() - injected < FAULT_BOUND
        check_error(caught.value, fault)
        assert caught.value.req_id == req.req_id
        check_prefix(frames)
        with pytest.raises(AvatarSDKError):
            await req.done()  # the same error again, at once
        assert not session.is_open
    check_fault_fired(proxy, fault)
    await settle(avatar_server, proxy, fault)


@pytest.mark.avatar_server(pace="realtime")
@pytest.mark.parametrize("fault", BREAKS)
async def test_broken_connection_reaches_the_callbacks_once(
    avatar_server: DevServer, proxy: ChaosProxy, fault: str
) -> None:
    inject = arm(proxy, fault)
    got: list[AnimationFrameEvent] = []
    errors: list[Exception] = []
    closes: list[float] = []
    closed = asyncio.Event()
    injected = 0.0

    def on_animation(event: AnimationFrameEvent) -> None:
        nonlocal injected
        got.append(event)
        if len(got) == 3:
            injected = time.monotonic()
            inject()

    def on_close() -> None:
        closes.append(time.monotonic())
        closed.set()

    session = new_avatar_session(
        **via(avatar_server, proxy, **options(fault)),
        on_animation=on_animation,
        on_error=errors.append,
        on_close=on_close,
    )
    async with session:
        await session.send_audio(AUDIO, end=True)
        await asyncio.wait_for(closed.wait(), 10)
        assert closes[0] - injected < FAULT_BOUND
        await asyncio.sleep(0.1)  # nothing more comes
    assert len(closes) == 1
    assert len(errors) == 1, errors
    check_error(errors[0], fault)
    check_prefix(got)
    check_fault_fired(proxy, fault)
    await settle(avatar_server, proxy, fault)


@pytest.mark.avatar_server(pace="realtime")
@pytest.mark.parametrize("fault", BREAKS)
async def test_the_pool_keeps_serving_after_a_broken_connection(
    avatar_server: DevServer, proxy: ChaosProxy, fault: str
) -> None:
    inject = arm(proxy, fault)
    kwargs = via(avatar_server, proxy, **options(fault))
    async with SessionPool(2, backoff_initial=0.05, **kwargs) as pool:
        lease = await pool.acquire(timeout=5)
        req = lease.stream(AUDIO, end_timeout=2)
        frames: list[AnimationFrameEvent] = []
        with pytest.raises(AvatarSDKError) as caught:
            async for frame in req:
                frames.append(frame)
                if len(frames) == 3:
                    inject()
        check_error(caught.value, fault)
        check_prefix(frames)
        await lease.release()
        # New leases work: each request completes, exactly once.
        for _ in range(2):
            check_complete(avatar_server, await pool.request(SHORT, timeout=10))
        await wait_until(lambda: pool.stats.replacements >= 1)
        assert pool.stats.failures.get("connectionClosed", 0) >= 1
    # a reset or a freeze hits both pooled sessions
    check_fault_fired(proxy, fault, connections=1 if fault == "cut" else 2)
    await settle(avatar_server, proxy, fault)


@pytest.mark.parametrize("fault", ["reset", "half-open"])
async def test_a_send_blocked_on_a_full_link_fails_retryably(
    avatar_server: DevServer, proxy: ChaosProxy, fault: str
) -> None:
    """``send_audio()`` waiting for the socket to drain is released by the fault."""
    errors: list[Exception] = []
    closes: list[int] = []
    session = new_avatar_session(
        **via(avatar_server, proxy, **options(fault)),
        on_error=errors.append,
        on_close=lambda: closes.append(1),
    )
    async with session:
        if fault == "reset":
            proxy.bandwidth = 20_000  # 8 s for each 160 kB message: the sender blocks
        else:
            proxy.half_open()  # nothing read: the socket buffers fill, the sender blocks
        chunk = AUDIO * 5

        async def send() -> None:
            for _ in range(100):  # 16 MB: more than any socket buffer
                await session.send_audio(chunk)

        sender = asyncio.ensure_future(send())
        await asyncio.sleep(0.3)
        assert not sender.done()
        began = time.monotonic()
        if fault == "reset":
            proxy.reset()
        with pytest.raises(AvatarSDKError) as caught:
            await asyncio.wait_for(sender, 10)
        assert time.monotonic() - began < FAULT_BOUND
        check_error(caught.value, fault)
    assert len(errors) == 1 and closes == [1]
    check_error(errors[0], fault)
    await settle(avatar_server, proxy, fault)


@pytest.mark.parametrize("fault", ["cut-confirm", "reset-at-upgrade", "half-open-at-upgrade"])
async def test_a_connection_broken_during_the_handshake_fails_start_retryably(
    avatar_server: DevServer, proxy: ChaosProxy, fault: str
) -> None:
    if fault == "cut-confirm":
        proxy.cut_mid_frame(after_bytes=3)  # the service's first frame: the confirm
    else:
        proxy.latency = 0.2  # the upgrade answer is still on its way when the fault hits
    # open_timeout bounds start() when nothing comes back (half-open)
    session = new_avatar_session(**via(avatar_server, proxy), open_timeout=1)
    await session.init()
    start = asyncio.ensure_future(session.start())
    if fault != "cut-confirm":
        await wait_until(lambda: proxy.stats.websockets == 1)
        assert (proxy.reset() if fault == "reset-at-upgrade" else proxy.half_open()) == 1
    began = time.monotonic()
    with pytest.raises(AvatarSDKError) as caught:
        await asyncio.wait_for(start, 10)
    assert time.monotonic() - began < FAULT_BOUND
    assert caught.value.retryable, caught.value
    await session.close()
    # The same settings work again at once (nothing is left armed or broken).
    proxy.latency = 0.0
    async with new_avatar_session(**via(avatar_server, proxy)) as again:
        req = again.stream(SHORT)
        check_complete(avatar_server, [f async for f in req])
    if fault == "half-open-at-upgrade":
        await settle(avatar_server, proxy, "half-open", confirmed=False)
    else:
        await settle(avatar_server, proxy, fault)


# -- a half-open connection: nothing moves, nothing closes ---------------------------------


@pytest.mark.avatar_server(pace="realtime")
async def test_half_open_without_keepalive_times_a_streamed_request_out(
    avatar_server: DevServer, proxy: ChaosProxy
) -> None:
    """With pings off, the request's own ``end_timeout`` still bounds it."""
    session: AvatarSession = new_avatar_session(
        **via(avatar_server, proxy), keepalive_interval=None
    )
    async with session:
        req = session.stream(SHORT, end_timeout=1)
        frames: list[AnimationFrameEvent] = []
        with pytest.raises(AvatarSDKError) as caught:
            async for frame in req:
                frames.append(frame)
                if len(frames) == 3:
                    assert proxy.half_open() == 1
        # end_timeout after the audio's playback end (1 s): well within 5 s
        assert caught.value.retryable
        assert isinstance(caught.value, TimeoutError)
        check_prefix(frames)
    # The service cannot know (as with a real half-open peer): its side stays
    # open until the proxy drops it.
    assert len(avatar_server.sessions) == 1
    await proxy.close()
    await no_live_sessions(avatar_server, proxy)
