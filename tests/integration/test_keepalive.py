"""Keepalive: a frozen or silent service is detected, on both transports.

The session pings a service that sent nothing for ``keepalive_interval``
seconds; no pong within ``keepalive_timeout`` ends it with a retryable
``connectionClosed`` (close code 1011, reason ``keepalive ping timeout``:
what avatarkit 0.1.7, on ``websockets``, reports), ``on_error`` once and
``on_close`` once. Servers here: an aiohttp WebSocket server written for the
test that confirms the session and then never answers a ping (it counts
them), the local service in process (answers pings), and ``avatarkit serve``
frozen with SIGSTOP and resumed with SIGCONT. The pool drops and replaces a
session that failed keepalive while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from avatarkit import (
    AvatarSDKError,
    AvatarSDKErrorCode,
    SessionClosedError,
    SessionPool,
    new_avatar_session,
)
from avatarkit.devserver import DevServer
from avatarkit.protocol import encode_confirm
from tests._helpers import Recorder, ServeProcess, make_session, speech_pcm

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP/SIGCONT")

TRANSPORTS = [pytest.param(False, id="picows"), pytest.param(True, id="aiohttp")]
FAST = dict(keepalive_interval=0.3, keepalive_timeout=0.3)


class SilentServer:
    """Confirms the session, then reads everything and answers no ping."""

    def __init__(self, *, answer_pings: bool = False, pong_delay: float = 0.0) -> None:
        self.answer_pings = answer_pings
        self.pong_delay = pong_delay
        self.pings = 0
        self.pinged_thrice = asyncio.Event()
        self.connections = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self.connections += 1
        confirmed = False
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.BINARY:
                if not confirmed:  # the ClientConfigureSession
                    confirmed = True
                    await ws.send_bytes(encode_confirm(f"silent-{self.connections}"))
            elif msg.type is aiohttp.WSMsgType.PING:
                self.pings += 1
                if self.pings >= 3:
                    self.pinged_thrice.set()
                if self.answer_pings:
                    await asyncio.sleep(self.pong_delay)
                    await ws.pong(msg.data)
        return ws

    async def __aenter__(self) -> SilentServer:
        app = web.Application()
        app.router.add_get("/v2/driveningress/websocket", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def session_kwargs(self, **overrides: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(
            api_key="k",
            app_id="app",
            avatar_id="avatar",
            console_endpoint_url="http://127.0.0.1:1/v1/console",
            ingress_endpoint_url=f"ws://127.0.0.1:{self.port}/v2/driveningress",
            expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        )
        kwargs.update(overrides)
        return kwargs


def assert_keepalive_error(error: BaseException) -> None:
    assert isinstance(error, AvatarSDKError), repr(error)
    assert error.code is AvatarSDKErrorCode.connectionClosed
    assert error.phase == "websocket_runtime"
    assert (error.close_code, error.close_reason) == (1011, "keepalive ping timeout")
    assert error.retryable


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_a_server_that_never_answers_pings_fails_the_session(compression: bool) -> None:
    async with SilentServer() as server:
        rec = Recorder()
        session = new_avatar_session(
            **server.session_kwargs(**rec.kwargs(), **FAST, websocket_compression=compression)
        )
        session.use_session_token("token")
        await session.start()
        # 0.3 s idle + 0.3 s for the pong: well within 5 s.
        await asyncio.wait_for(rec.closed.wait(), 5)
        await session.wait_closed()
        assert server.pings >= 1
        assert len(rec.errors) == 1 and rec.closes == 1
        assert_keepalive_error(rec.errors[0])
        assert not session.is_open
        with pytest.raises(SessionClosedError) as info:
            await session.send_audio(b"\0\0", end=True)
        assert info.value.close_code == 1011 and info.value.retryable
        await session.close()
        assert rec.closes == 1


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_a_server_that_answers_pings_keeps_the_session(compression: bool) -> None:
    async with SilentServer(answer_pings=True) as server:
        rec = Recorder()
        session = new_avatar_session(
            **server.session_kwargs(**rec.kwargs(), **FAST, websocket_compression=compression)
        )
        session.use_session_token("token")
        await session.start()
        # Three pings answered: well past one timeout.
        await asyncio.wait_for(server.pinged_thrice.wait(), 5)
        assert session.is_open and not rec.errors and rec.closes == 0
        await session.close()
        assert rec.closes == 1


@contextlib.contextmanager
def answering_server_in_a_thread(pong_delay: float) -> Iterator[SilentServer]:
    """A :class:`SilentServer` that answers pings (after ``pong_delay``) on its
    own loop: it keeps answering while the test's loop is blocked."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        async with SilentServer(answer_pings=True, pong_delay=pong_delay) as server:
            box.update(server=server, loop=asyncio.get_running_loop(), stop=asyncio.Event())
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5), "the server thread did not start"
    try:
        yield box["server"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(5)


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_a_stalled_loop_does_not_fail_a_healthy_connection(compression: bool) -> None:
    # Our loop blocks past keepalive_timeout right after a ping; the pong
    # arrives meanwhile (0.1 s after the ping). When the loop wakes, the pong
    # and the pong deadline are due in the same turn: the pong must win.
    with answering_server_in_a_thread(pong_delay=0.1) as server:
        rec = Recorder()
        session = new_avatar_session(
            **server.session_kwargs(**rec.kwargs(), **FAST, websocket_compression=compression)
        )
        session.use_session_token("token")
        await session.start()
        try:
            for _ in range(3):
                pings = server.pings
                deadline = time.monotonic() + 5
                while server.pings == pings:  # until the next ping reached the server
                    assert time.monotonic() < deadline, "no ping sent"
                    await asyncio.sleep(0.001)
                time.sleep(0.5)  # noqa: ASYNC251  (the stall under test)
                await asyncio.sleep(0.05)
                assert session.is_open, rec.errors
        finally:
            await session.close()
        assert not rec.errors and rec.closes == 1


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_the_pong_timeout_is_the_configured_one(compression: bool) -> None:
    """A pong 0.35 s late is in time for keepalive_timeout=0.5 (aiohttp's own
    rule, half the interval, would be 0.3 s and fail the session)."""
    async with SilentServer(answer_pings=True, pong_delay=0.35) as server:
        rec = Recorder()
        kwargs = server.session_kwargs(
            **rec.kwargs(),
            keepalive_interval=0.6,
            keepalive_timeout=0.5,
            websocket_compression=compression,
        )
        session = new_avatar_session(**kwargs)
        session.use_session_token("token")
        await session.start()
        await asyncio.wait_for(server.pinged_thrice.wait(), 10)
        assert session.is_open and not rec.errors
        await session.close()
        assert rec.closes == 1


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_keepalive_can_be_turned_off(compression: bool) -> None:
    async with SilentServer() as server:
        session = new_avatar_session(
            **server.session_kwargs(
                keepalive_interval=None, keepalive_timeout=0.2, websocket_compression=compression
            )
        )
        session.use_session_token("token")
        await session.start()
        await asyncio.sleep(0.8)  # four intervals of the FAST setting
        assert server.pings == 0 and session.is_open
        await session.close()


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_the_local_service_answers_pings(compression: bool, avatar_server: DevServer) -> None:
    rec = Recorder()
    async with make_session(avatar_server, rec, **FAST, websocket_compression=compression) as s:
        await asyncio.sleep(1.2)  # idle: several ping rounds
        assert s.is_open and not rec.errors
        await s.send_audio(speech_pcm(seconds=0.3), end=True)
        await asyncio.wait_for(rec.ended.wait(), 10)
    assert rec.closes == 1 and not rec.errors


@contextlib.asynccontextmanager
async def serve_process(*args: str) -> AsyncIterator[ServeProcess]:
    proc = await ServeProcess.start("--pace", "fast", *args)
    try:
        yield proc
    finally:
        await proc.stop()


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_a_frozen_service_is_detected_and_a_resumed_one_serves_again(
    compression: bool,
) -> None:
    async with serve_process() as service:
        rec = Recorder()
        kwargs = service.session_kwargs(**rec.kwargs(), **FAST, websocket_compression=compression)
        session = new_avatar_session(**kwargs)
        await session.init()
        await session.start()
        service.freeze()
        try:
            await asyncio.wait_for(rec.closed.wait(), 5)
        finally:
            service.resume()
        await session.wait_closed()
        assert len(rec.errors) == 1 and rec.closes == 1
        assert_keepalive_error(rec.errors[0])
        # Resumed: a new session works.
        again = Recorder()
        async with new_avatar_session(**{**kwargs, **again.kwargs()}) as fresh:
            await fresh.send_audio(speech_pcm(seconds=0.3), end=True)
            await asyncio.wait_for(again.ended.wait(), 10)
        assert again.closes == 1 and not again.errors


async def test_the_pool_replaces_a_session_that_failed_keepalive_while_idle() -> None:
    async with serve_process() as service:
        lost = asyncio.Event()
        kwargs = service.session_kwargs(**FAST, open_timeout=3, on_close=lost.set)
        del kwargs["expire_at"]
        async with SessionPool(1, session_ttl=300, backoff_initial=0.05, **kwargs) as pool:
            first = next(iter(pool._members)).session
            assert first is not None and first.is_open
            service.freeze()
            try:
                await asyncio.wait_for(lost.wait(), 5)  # idle in the pool; keepalive ends it
                assert not first.is_open
                # Not handed out while frozen: no open session to lease.
                with pytest.raises(TimeoutError):
                    await pool.acquire(timeout=0.3)
            finally:
                service.resume()
            await pool.wait_ready(timeout=10)
            stats = pool.stats
            assert stats.replacements == 1
            assert stats.failures.get("connectionClosed") == 1
            assert dict(stats.close_codes) == {1011: 1}
            frames = await pool.request(speech_pcm(seconds=0.3), timeout=10)
            assert frames and frames[-1].end
            async with pool.session(timeout=5) as lease:
                assert lease._session is not first
