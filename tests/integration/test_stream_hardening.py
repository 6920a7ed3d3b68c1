"""``session.stream()`` under hostile timing, over real sockets (issue 11 review).

Each case reproduces a reviewer finding against the local avatar service:
a second cancel while the feeder interrupts under backpressure, a pool lease
released before its stream sent anything, an end frame while the source still
feeds, metrics and log context of streamed requests.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from avatarkit import (
    AudioFeed,
    AvatarSDKError,
    PlaybackState,
    RequestDone,
    SessionPool,
    new_avatar_session,
)
from avatarkit._callbacks import logger as _callbacks_logger
from avatarkit._logctx import EXTRA_CONNECTION_ID, EXTRA_REQ_ID
from avatarkit.devserver import DevServer
from avatarkit.protocol import parse_message
from tests._helpers import FIXTURES

PCM16 = (FIXTURES / "speech_16000.pcm").read_bytes()[: 16000 * 2 * 2]  # 2 s

BOUND = 10.0  # "does not hang": far above every configured bound used here


def feeders() -> list[asyncio.Task[Any]]:
    """The stream feeder tasks still alive."""
    return [t for t in asyncio.all_tasks() if t.get_name() == "avatarkit-stream" and not t.done()]


async def never() -> AsyncIterator[bytes]:
    """A TTS source still thinking: yields nothing for an hour."""
    await asyncio.sleep(3600)
    yield b""


def _server_connection(server: DevServer, connection_id: str | None) -> Any:
    return next(c for c in server._connections if c.state.connection_id == connection_id)


async def test_close_during_interrupt_under_backpressure_raises_no_cancel(
    avatar_server: DevServer,
) -> None:
    session = new_avatar_session(**avatar_server.session_kwargs())
    await session.init()
    await session.start()
    conn = _server_connection(avatar_server, session.connection_id)
    conn._request.transport.pause_reading()  # the service stops reading: sends block
    try:
        req = session.stream(PCM16 * 200)  # 400 s, "fast": fills the socket buffers
        await asyncio.wait_for(req.started(), BOUND)
        await asyncio.sleep(0.5)

        async def closer() -> None:
            await asyncio.sleep(0.3)
            await session.close()

        closing = asyncio.ensure_future(closer())
        outcomes: list[object] = []
        for step in (req.interrupt, req.done):
            try:
                outcomes.append(await asyncio.wait_for(step(), BOUND))
            except AvatarSDKError as err:  # closed: a typed error, never CancelledError
                outcomes.append(err)
        await asyncio.wait_for(closing, BOUND)  # close() returns, no CancelledError
        assert closing.exception() is None
        assert session._protocol.state.name == "CLOSED"
        assert req._resolved
        assert feeders() == []
    finally:
        conn._request.transport.resume_reading()
        await session.close()


async def test_lease_released_before_the_first_chunk_interrupts_its_stream(
    avatar_server: DevServer,
) -> None:
    async with SessionPool(1, **avatar_server.session_kwargs()) as pool:
        lease = await pool.acquire(timeout=BOUND)
        req = lease.stream(never())
        await asyncio.sleep(0.05)
        await asyncio.wait_for(lease.release(), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.interrupted and summary.req_id is None
        lease2 = await pool.acquire(timeout=BOUND)
        assert (await asyncio.wait_for(lease2.stream(PCM16[:3200]).done(), BOUND)).frames > 0
        await lease2.release()
        assert feeders() == []


async def test_session_interrupt_before_the_first_chunk_resolves_the_stream(
    avatar_server: DevServer,
) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        await session.stream(PCM16[:3200]).done()  # a previous request id exists
        req = session.stream(never())
        await asyncio.sleep(0.05)
        await asyncio.wait_for(session.interrupt(), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.interrupted
        assert feeders() == []
        assert (await asyncio.wait_for(session.stream(PCM16[:3200]).done(), BOUND)).frames > 0


async def test_end_frame_while_the_source_feeds_stops_the_feeder(
    avatar_server: DevServer,
) -> None:
    ends: list[bytes] = []
    kwargs = avatar_server.session_kwargs(
        transport_frames=lambda data, end: ends.append(data) if end else None
    )
    async with new_avatar_session(**kwargs) as session:
        await session.stream(PCM16[:3200]).done()
        template = ends[-1]

        async def stalls_after_one() -> AsyncIterator[bytes]:
            yield PCM16[:3200]
            await asyncio.sleep(3600)  # a stalled TTS source
            yield b""

        req = session.stream(stalls_after_one())
        req_id = await asyncio.wait_for(req.started(), BOUND)
        await asyncio.sleep(0.1)
        msg = parse_message(template)
        msg.server_response_animation.req_id = req_id
        session.on_message(msg.SerializeToString())  # the service ended the request
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert not summary.interrupted
        # The request is closed on the wire: the service saw the interrupt.
        state = avatar_server.sessions[session.connection_id].requests[req_id]
        for _ in range(100):
            if state.state is PlaybackState.INTERRUPTED:
                break
            await asyncio.sleep(0.01)
        assert (state.state, state.reason) == (PlaybackState.INTERRUPTED, "explicit")
        await asyncio.wait_for(req.interrupt(), BOUND)  # a no-op, does not block
        await asyncio.sleep(0.05)
        assert feeders() == []
        assert (await asyncio.wait_for(session.stream(PCM16[:3200]).done(), BOUND)).frames > 0


async def test_on_metrics_reports_streamed_requests(avatar_server: DevServer) -> None:
    events: list[Any] = []
    kwargs = avatar_server.session_kwargs(on_metrics=events.append)
    async with new_avatar_session(**kwargs) as session:
        summary = await asyncio.wait_for(session.stream(PCM16).done(), BOUND)
        req = session.stream(PCM16 * 5, pace="realtime")
        stopped_id = await asyncio.wait_for(req.started(), BOUND)
        await asyncio.sleep(0.2)
        await asyncio.wait_for(req.interrupt(), BOUND)
    done = {e.req_id: e for e in events if isinstance(e, RequestDone)}
    assert done[summary.req_id].frames == summary.frames
    assert done[summary.req_id].audio_seconds == pytest.approx(2.0)
    assert not done[summary.req_id].interrupted
    assert done[stopped_id].interrupted


async def test_feeder_log_records_carry_the_session_ids(
    avatar_server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="avatarkit")

    async def fails_after_one() -> AsyncIterator[bytes]:
        _callbacks_logger.info("session logger inside the source")
        yield PCM16[:3200]
        raise ValueError("tts failed")

    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(fails_after_one())
        with pytest.raises(ValueError, match="tts failed"):
            await asyncio.wait_for(req.done(), BOUND)
        connection_id = session.connection_id
    inside = [r for r in caplog.records if "session logger inside" in r.getMessage()]
    assert [getattr(r, EXTRA_CONNECTION_ID) for r in inside] == [connection_id]
    stream_records = [r for r in caplog.records if r.name == "avatarkit.stream"]
    assert stream_records
    for record in stream_records:
        assert getattr(record, EXTRA_CONNECTION_ID) == connection_id
        assert getattr(record, EXTRA_REQ_ID) == req.req_id


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"Host": "evil.example:{port}"}, 403),  # DNS rebinding: a foreign name
        ({"Origin": "http://evil.example"}, 403),  # another site's page
        ({"Host": "localhost:{port}", "Origin": "http://localhost:{port}"}, 200),
    ],
)
async def test_sessions_api_refuses_foreign_origins_like_the_viewer(
    avatar_server: DevServer, headers: dict[str, str], status: int
) -> None:
    port = avatar_server.port
    sent = {name: value.format(port=port) for name, value in headers.items()}
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            avatar_server.api_root + "/v1/dev/sessions",
            headers=sent,
            timeout=aiohttp.ClientTimeout(5),
        ) as resp,
    ):
        assert resp.status == status
        if status == 403:
            assert "same origin" in await resp.text()


class _LoopLog:
    """Records the tasks and the timers the SDK makes on the loop (not the
    local service's own, which runs on the same loop): a task factory, and
    ``call_at``/``call_later`` wrapped on the loop instance for the window."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tasks: list[str] = []
        self.timers: list[str] = []

    def _factory(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        self.tasks.append(getattr(coro, "__qualname__", repr(coro)))
        return asyncio.Task(coro, loop=loop, **kwargs)

    def _wrap(self, name: str) -> None:
        original = getattr(self.loop, name)

        def timer(*args: Any, **kwargs: Any) -> Any:
            stack = traceback.extract_stack(limit=12)[:-1]
            nested = any(f.name == "timer" and f.filename == __file__ for f in stack)
            if not nested and not any("devserver" in frame.filename for frame in stack):
                self.timers.append(" <- ".join(f.name for f in reversed(stack[-4:])))
            return original(*args, **kwargs)

        setattr(self.loop, name, timer)

    def __enter__(self) -> _LoopLog:
        self._previous = self.loop.get_task_factory()
        self.loop.set_task_factory(self._factory)
        self._wrap("call_at")
        self._wrap("call_later")
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.set_task_factory(self._previous)
        for name in ("call_at", "call_later"):
            delattr(self.loop, name)  # the class's methods again


@pytest.mark.parametrize("early", [False, True], ids=["end-after-audio", "end-while-feeding"])
async def test_the_end_of_a_fed_request_makes_no_task_and_no_timer(
    avatar_server: DevServer, early: bool
) -> None:
    """A request's end (the end frame, the interrupt when it came early, the
    feeder winding down, ``done()``) runs in the tasks that exist already and
    arms no timer: with thousands of sessions whose requests end together,
    each one would delay the end frames of the others."""
    ends: list[bytes] = []
    kwargs = avatar_server.session_kwargs(
        transport_frames=lambda data, end: ends.append(data) if end else None
    )
    loop = asyncio.get_running_loop()
    async with new_avatar_session(**kwargs) as session:
        await session.stream(PCM16[:3200]).done()
        template = ends[-1]
        avatar_server.faults.delay_frames(60.0)  # the service's own end frame never comes
        feed = AudioFeed()
        req = session.stream(feed)
        feed.push(PCM16[:1280])
        req_id = await asyncio.wait_for(req.started(), BOUND)
        if not early:
            feed.end()
            for _ in range(100):
                if req._fed:  # the end went out: the feeder waits for the end frame
                    break
                await asyncio.sleep(0.01)
            assert req._fed
        with _LoopLog(loop) as log:
            msg = parse_message(template)
            msg.server_response_animation.req_id = req_id
            session.on_message(msg.SerializeToString())  # the end frame
            summary = await req.done()  # (bounded by the test timeout)
            await asyncio.sleep(0)
        assert not summary.interrupted
        assert feeders() == []
        assert log.tasks == []
        if early:
            # Only done()'s bound on a feeder stopped inside its source (a user's
            # source could swallow the cancel); nothing per end in the feeder.
            assert all(t.endswith("_wind_down <- done") for t in log.timers), log.timers
        else:
            assert log.timers == []
        if early:
            # All of it ran in this task, at once: the service may not even have
            # read the audio yet, let alone the interrupt.
            requests = avatar_server.sessions[session.connection_id].requests
            for _ in range(100):
                state = requests.get(req_id)
                if state is not None and state.state is PlaybackState.INTERRUPTED:
                    break
                await asyncio.sleep(0.01)
            assert state is not None and state.reason == "explicit"
