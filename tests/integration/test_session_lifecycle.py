"""Lifecycle edge cases of AvatarSession, over real sockets to the local service.

Each case here is a bug found in review: cancelled or concurrent start(),
handshake failures reported twice, normal server closes, secrets in
low-level logs, sessions never closed, configuration checked too late.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from avatarkit import (
    AudioFormat,
    AvatarSDKError,
    AvatarSDKErrorCode,
    AvatarSession,
    OggOpusEncoderConfig,
    new_avatar_session,
)
from avatarkit.devserver import DevServer


def make(server: DevServer, **overrides: Any) -> AvatarSession:
    return new_avatar_session(**server.session_kwargs(**overrides))


async def settle(server: DevServer) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while server.connection_count:
        assert asyncio.get_running_loop().time() < deadline, "a connection was left open"
        await asyncio.sleep(0.01)


async def test_cancelled_start_leaves_no_connection(avatar_server: DevServer) -> None:
    # Cancel start() at many points of the connect/handshake.
    for step in range(25):
        session = make(avatar_server)
        await session.init()
        task = asyncio.ensure_future(session.start())
        for _ in range(step):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except AvatarSDKError:
            pass
        await session.close()
        await settle(avatar_server)


async def test_concurrent_start_is_refused(avatar_server: DevServer) -> None:
    session = make(avatar_server)
    await session.init()
    first = asyncio.ensure_future(session.start())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="already started"):
        await session.start()
    assert await first
    await session.close()
    await settle(avatar_server)


async def test_handshake_failure_is_raised_not_also_sent_to_on_error(
    avatar_server: DevServer,
) -> None:
    errors: list[Exception] = []
    closes: list[int] = []
    avatar_server.faults.send_error(4001, "credits exhausted", phase="handshake")
    session = make(avatar_server, on_error=errors.append, on_close=lambda: closes.append(1))
    await session.init()
    with pytest.raises(AvatarSDKError) as info:
        await session.start()
    assert info.value.code is AvatarSDKErrorCode.creditsExhausted
    assert info.value.phase == "websocket_handshake"
    await asyncio.sleep(0.05)
    assert errors == [] and closes == [1]


async def test_text_frame_in_handshake_is_protocol_error_at_once(avatar_server: DevServer) -> None:
    avatar_server.faults.send_raw(b"hello", text=True, phase="handshake")
    session = make(avatar_server, open_timeout=5)
    await session.init()
    started = asyncio.get_running_loop().time()
    with pytest.raises(AvatarSDKError) as info:
        await session.start()
    assert info.value.code is AvatarSDKErrorCode.protocolError
    assert asyncio.get_running_loop().time() - started < 2
    await session.close()


@pytest.mark.parametrize("code", [1000, 1001])
async def test_normal_server_close_only_ends_the_session(
    avatar_server: DevServer, code: int
) -> None:
    errors: list[Exception] = []
    closed = asyncio.Event()
    session = make(avatar_server, on_error=errors.append, on_close=closed.set)
    await session.init()
    await session.start()
    avatar_server.faults.close(code, "bye", after_frames=1)
    await session.send_audio(b"\x00\x00" * 8000, end=True)
    await asyncio.wait_for(closed.wait(), 5)
    assert errors == []
    with pytest.raises(AvatarSDKError) as info:  # but sending afterwards says why
        await session.send_audio(b"\x00\x00")
    assert info.value.code is AvatarSDKErrorCode.connectionClosed
    assert info.value.close_code == code
    await session.close()


@pytest.mark.parametrize("use_query_auth", [False, True])
async def test_no_token_even_in_lowest_level_logs(
    avatar_server: DevServer, caplog: pytest.LogCaptureFixture, use_query_auth: bool
) -> None:
    # the level on our loggers too: another test (the CLI's --debug) may have set them
    with (
        caplog.at_level(1),
        caplog.at_level(1, "avatarkit"),
        caplog.at_level(1, "avatarkit.picows"),
    ):
        session = make(avatar_server, use_query_auth=use_query_auth)
        await session.init()
        token = session._token
        await session.start()
        await session.close()
    assert token
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Send upgrade request" in text  # picows's level-9 record is there...
    assert token not in text  # ...with the token masked
    assert "***" in text


async def test_init_checks_connect_settings_before_the_network() -> None:
    session = new_avatar_session(
        api_key="k",
        app_id="a",
        avatar_id="v",
        console_endpoint_url="http://127.0.0.1:9/v1/console",  # nothing listens there
        ingress_endpoint_url="ws://127.0.0.1:9/v2/driveningress",
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        sample_rate=0,  # certain locally (11025 is for the service to refuse)
    )
    with pytest.raises(ValueError, match="sample_rate"):
        await session.init()
    await session.close()


async def test_concurrent_sends_with_builtin_encoder_keep_streams_apart(
    avatar_server: DevServer,
) -> None:
    pytest.importorskip("av")
    encoded: list[tuple[str, bytes]] = []
    session = make(
        avatar_server,
        sample_rate=16000,
        audio_format=AudioFormat.OGG_OPUS,
        ogg_opus_encoder=OggOpusEncoderConfig(),
        on_encoded_audio=lambda req_id, data: encoded.append((req_id, data)),
    )
    await session.init()
    await session.start()
    one_second = b"\x00\x10" * 16000
    first, second = await asyncio.gather(
        session.send_audio(one_second, end=True), session.send_audio(one_second * 2, end=True)
    )
    await session.close()
    assert first != second
    assert [req for req, _ in encoded] == [first, second]
    from avatarkit.audio.ogg import OggOpusReader

    for (_, stream), seconds in zip(encoded, (1, 2), strict=True):
        reader = OggOpusReader()
        reader.feed(stream)
        assert reader.ended
        granule = reader.granule_position - (reader.head.pre_skip if reader.head else 0)
        assert abs(granule / 48000 - seconds) < 0.03


def test_unclosed_session_ends_without_warnings(avatar_server_subprocess_url: str) -> None:
    console, ingress = avatar_server_subprocess_url.split(" ")
    script = textwrap.dedent(
        f"""
        import asyncio
        from datetime import datetime, timedelta, timezone
        from avatarkit import new_avatar_session

        async def main():
            s = new_avatar_session(
                api_key="dev-api-key", app_id="dev-app-id", avatar_id="dev-avatar",
                console_endpoint_url="{console}", ingress_endpoint_url="{ingress}",
                expire_at=datetime.now(timezone.utc) + timedelta(minutes=5))
            await s.init()
            await s.start()
            await s.send_audio(b"\\x00\\x00" * 1600, end=True)
            # no close(): asyncio.run's shutdown must clean up

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "unclosed" not in result.stderr, result.stderr


@pytest.fixture
def avatar_server_subprocess_url() -> Any:
    """`avatarkit serve` in its own process (the script under test runs in another)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "avatarkit", "serve", "--port", "0", "--pace", "fast"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    console = ingress = ""
    for line in proc.stdout:
        for word in line.split():
            if word.startswith("http://") and word.endswith("/v1/console"):
                console = word
            if word.startswith("ws://") and "driveningress" in word:
                ingress = word
        if console and ingress:
            break
    try:
        yield f"{console} {ingress}"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


async def test_confirm_timeout(avatar_server: DevServer) -> None:
    """A service that upgrades but never confirms: start() gives up after open_timeout."""
    from aiohttp import web

    async def silent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:  # read the configure, answer nothing
            pass
        return ws

    app = web.Application()
    app.router.add_get("/v2/driveningress/websocket", silent)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    closes: list[int] = []
    try:
        session = make(
            avatar_server,
            ingress_endpoint_url=f"ws://127.0.0.1:{port}/v2/driveningress",
            open_timeout=0.3,
            on_close=lambda: closes.append(1),
        )
        await session.init()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AvatarSDKError) as info:
            await session.start()
        assert 0.25 < loop.time() - started < 3
        assert info.value.code is AvatarSDKErrorCode.connectionFailed
        assert info.value.phase == "websocket_handshake"
        assert closes == [1]
    finally:
        await runner.cleanup()


async def test_send_while_close_is_under_way_is_session_closed(avatar_server: DevServer) -> None:
    # Nothing may follow our close frame: once close() has begun, every send
    # is refused by the core's CLOSING state, not attempted on the socket.
    from avatarkit import SessionClosedError

    session = make(avatar_server)
    await session.init()
    await session.start()
    closing = asyncio.ensure_future(session.close())
    await asyncio.sleep(0)  # close() has sent its close frame and waits for the answer
    assert "state=closing" in repr(session)
    with pytest.raises(SessionClosedError, match="closed"):
        await session.send_audio(b"\x00\x00" * 160)
    await asyncio.wait_for(closing, 5)
    assert "state=closed" in repr(session)
    await settle(avatar_server)


async def test_close_is_bounded_with_slow_async_callbacks() -> None:
    """close() returns within its 2 s bound even with a backlog of slow
    async callbacks; they keep running in the background, in order,
    on_close runs once after the last of them, and wait_closed() waits for
    them all."""
    order: list[str] = []
    flowing = asyncio.Event()

    async def on_frames(data: bytes, last: bool) -> None:
        order.append("frame")
        if len(order) >= 5:
            flowing.set()
        await asyncio.sleep(0.02)

    def on_close() -> None:
        order.append("close")

    async with DevServer(pace="fast") as srv:
        session = new_avatar_session(
            **srv.session_kwargs(transport_frames=on_frames, on_close=on_close)
        )
        await session.init()
        await session.start()
        await session.send_audio(b"\0\0" * 16000 * 12, end=True)  # ~300 frames: ~6 s of callbacks
        await asyncio.wait_for(flowing.wait(), 10)
        await asyncio.sleep(0.5)  # the service has sent its backlog by now
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(session.close(), 10)
        closed_after = loop.time() - started
        ran_at_close = len(order)
        await asyncio.wait_for(session.wait_closed(), 30)
    assert closed_after < 3.5, closed_after  # bound 2 s; the backlog takes ~6 s
    assert ran_at_close < len(order)  # callbacks went on after close() returned
    assert order.count("close") == 1 and order[-1] == "close"
    assert order.count("frame") > 100


def test_loop_shutdown_cancels_pending_callbacks_cleanly() -> None:
    """Callbacks still queued when the event loop ends are cancelled; the
    coroutines that never ran are closed (no "never awaited" warning) and
    nothing is logged as an unhandled error."""
    calls: list[int] = []
    unhandled: list[dict[str, Any]] = []

    flowing: list[asyncio.Event] = []

    async def on_frames(data: bytes, last: bool) -> None:
        calls.append(1)
        if len(calls) >= 3:
            flowing[0].set()
        await asyncio.sleep(0.05)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _l, c: unhandled.append(c))
        flowing.append(asyncio.Event())
        async with DevServer(pace="fast") as srv:
            session = new_avatar_session(**srv.session_kwargs(transport_frames=on_frames))
            await session.init()
            await session.start()
            await session.send_audio(b"\0\0" * 16000 * 8, end=True)
            await asyncio.wait_for(flowing[0].wait(), 10)
            await asyncio.sleep(0.3)
            await asyncio.wait_for(session.close(), 10)

    asyncio.run(main())
    assert 3 <= len(calls) < 150
    assert unhandled == []
