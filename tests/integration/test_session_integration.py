"""AvatarSession against the local avatar service over real loopback sockets.

Nothing is mocked: the SDK's picows transport and aiohttp token client talk to
a DevServer (aiohttp) started per test by the ``avatar_server`` fixture.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from avatarkit import (
    AudioFormat,
    AvatarSDKError,
    AvatarSDKErrorCode,
    AvatarSession,
    OggOpusEncoderConfig,
    PlaybackState,
    SessionTokenError,
    new_avatar_session,
)
from avatarkit.config import PCM_SAMPLE_RATES
from avatarkit.devserver import DevServer, decode_animation
from tests._helpers import FIXTURES, SPEECH_16K, Recorder, make_session


def expected_frames(n_samples: int, rate: int) -> int:
    return math.ceil(n_samples * 25 / rate)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# -- lifecycle and callbacks ----------------------------------------------------


async def test_full_request_every_callback(avatar_server: DevServer) -> None:
    rec = Recorder()
    session = make_session(avatar_server, rec)
    await session.init()
    connection_id = await session.start()
    assert connection_id and session.connection_id == connection_id
    assert "playback_control" in session.capabilities
    assert "playback_state" in session.capabilities
    audio = SPEECH_16K[: 16000 * 2 * 2]  # 2 s
    req_id = await session.send_audio(audio, end=True)
    await asyncio.wait_for(rec.ended.wait(), 10)
    await wait_for(lambda: any(s.state is PlaybackState.ENDED for s in rec.states))
    await session.close()
    assert len(rec.frames) == expected_frames(len(audio) // 2, 16000) == 50
    assert [last for _, last in rec.frames].count(True) == 1
    assert rec.frames[-1][1]
    # transport_frames gets the whole envelope; on_animation the parsed payload
    assert rec.animations[0].message == rec.frames[0][0]
    decoded = [decode_animation(a.payload) for a in rec.animations]
    assert [d["frame_index"] for d in decoded] == list(range(50))
    assert [d["timestamp_ms"] for d in decoded[:3]] == [0, 40, 80]
    assert all(a.req_id == req_id and a.connection_id == connection_id for a in rec.animations)
    assert all(s.has_animation for s in rec.signals) and rec.signals[-1].end
    assert (
        rec.states[0].state is PlaybackState.PLAYING and rec.states[-1].state is PlaybackState.ENDED
    )
    assert rec.errors == []
    assert rec.closes == 1
    await session.close()  # idempotent
    assert rec.closes == 1


@pytest.mark.parametrize("use_query_auth", [False, True])
@pytest.mark.parametrize("route", ["console", "api_root"])
async def test_auth_styles_and_token_routes(
    avatar_server: DevServer, use_query_auth: bool, route: str
) -> None:
    rec = Recorder()
    console = avatar_server.console_url if route == "console" else avatar_server.api_root
    async with make_session(
        avatar_server, rec, use_query_auth=use_query_auth, console_endpoint_url=console
    ) as session:
        await session.send_audio(SPEECH_16K[:6400], end=True)
        await asyncio.wait_for(rec.ended.wait(), 5)
    assert len(rec.frames) == 5
    assert rec.closes == 1


@pytest.mark.parametrize("rate", PCM_SAMPLE_RATES)
async def test_pcm_every_rate(avatar_server: DevServer, rate: int) -> None:
    audio = (FIXTURES / f"speech_{rate}.pcm").read_bytes()[: rate * 2]  # 1 s
    audio = audio[: len(audio) - 6]  # not a whole number of frames
    rec = Recorder()
    async with make_session(avatar_server, rec, sample_rate=rate) as session:
        chunk = rate // 25 * 2 + 2  # odd-sized chunks across frame boundaries
        for start in range(0, len(audio), chunk):
            await session.send_audio(audio[start : start + chunk])
        await session.send_audio(b"", end=True)
        await asyncio.wait_for(rec.ended.wait(), 5)
    assert len(rec.frames) == expected_frames(len(audio) // 2, rate)


async def test_ogg_opus_passthrough(avatar_server: DevServer) -> None:
    ogg = (FIXTURES / "speech_24000.ogg").read_bytes()
    rec = Recorder()
    async with make_session(
        avatar_server, rec, sample_rate=24000, bitrate=32000, audio_format=AudioFormat.OGG_OPUS
    ) as session:
        for start in range(0, len(ogg), 4096):
            await session.send_audio(ogg[start : start + 4096])
        await session.send_audio(b"", end=True)
        await asyncio.wait_for(rec.ended.wait(), 10)
    pcm_seconds = len((FIXTURES / "speech_24000.pcm").read_bytes()) / 2 / 24000
    assert abs(len(rec.frames) - pcm_seconds * 25) <= 3
    assert rec.encoded == []  # passthrough: nothing encoded by the SDK


@pytest.mark.parametrize("rate", [16000, 24000, 48000])
async def test_builtin_ogg_opus_encoder(avatar_server: DevServer, rate: int) -> None:
    av = pytest.importorskip("av")  # the [opus] extra, installed by .[dev]
    import io

    pcm = (FIXTURES / f"speech_{rate}.pcm").read_bytes()[: rate * 2 * 3]  # 3 s
    rec = Recorder()
    async with make_session(
        avatar_server,
        rec,
        sample_rate=rate,
        bitrate=32000,
        audio_format=AudioFormat.OGG_OPUS,
        ogg_opus_encoder=OggOpusEncoderConfig(frame_duration_ms=20),
    ) as session:
        req_id = ""
        for start in range(0, len(pcm), 3202):
            req_id = await session.send_audio(pcm[start : start + 3202])
        assert await session.send_audio(b"", end=True) == req_id
        await asyncio.wait_for(rec.ended.wait(), 10)
    assert len(rec.encoded) == 1 and rec.encoded[0][0] == req_id
    stream = rec.encoded[0][1]
    assert stream.startswith(b"OggS")
    with av.open(io.BytesIO(stream)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
        out_rate = container.streams.audio[0].rate
    assert abs(samples / out_rate - 3.0) < 0.03
    assert abs(len(rec.frames) - 75) <= 1


@pytest.mark.avatar_server(pace="realtime")
async def test_interrupt_stops_frames(avatar_server: DevServer) -> None:
    rec = Recorder()
    async with make_session(avatar_server, rec) as session:
        req_id = await session.send_audio(SPEECH_16K, end=True)  # ~13 s at real time
        await wait_for(lambda: len(rec.frames) >= 3)
        assert await session.interrupt() == req_id
        await wait_for(lambda: any(s.state is PlaybackState.INTERRUPTED for s in rec.states))
        count = len(rec.frames)
        await asyncio.sleep(0.3)
        assert len(rec.frames) <= count + 1
        interrupted = [s for s in rec.states if s.state is PlaybackState.INTERRUPTED]
        assert interrupted[0].req_id == req_id and interrupted[0].reason == "explicit"
        assert not any(last for _, last in rec.frames)
        # the next send starts a new request
        rec.ended.clear()
        new_id = await session.send_audio(SPEECH_16K[:3200], end=True)
        assert new_id != req_id
        await asyncio.wait_for(rec.ended.wait(), 5)


@pytest.mark.avatar_server(pace="realtime")
async def test_pause_and_resume(avatar_server: DevServer) -> None:
    rec = Recorder()
    async with make_session(avatar_server, rec) as session:
        req_id = await session.send_audio(SPEECH_16K[: 16000 * 2], end=True)  # 1 s
        await wait_for(lambda: len(rec.frames) >= 2)
        assert await session.pause() == req_id
        await wait_for(lambda: any(s.state is PlaybackState.PAUSED for s in rec.states))
        held = len(rec.frames)
        await asyncio.sleep(0.3)
        assert len(rec.frames) <= held + 1
        assert await session.resume() == req_id
        await asyncio.wait_for(rec.ended.wait(), 5)
    states = [s.state for s in rec.states]
    assert PlaybackState.PAUSED in states and states[-1] is PlaybackState.ENDED
    paused = next(s for s in rec.states if s.state is PlaybackState.PAUSED)
    assert 0 < paused.played_ms < 1000
    assert len(rec.frames) == 25


async def test_frames_iterator(avatar_server: DevServer) -> None:
    async with make_session(avatar_server) as session:
        await session.send_audio(SPEECH_16K[:16000], end=True)  # 0.5 s
        got = []
        async for frame in session.frames():
            got.append(frame)
            if frame.end:
                break
    assert len(got) == 13
    assert decode_animation(got[-1].payload)["frame_index"] == 12


async def test_async_callbacks_run_in_order(avatar_server: DevServer) -> None:
    order: list[int] = []
    done = asyncio.Event()

    async def on_frame(data: bytes, last: bool) -> None:
        await asyncio.sleep(0)
        order.append(len(order))
        if last:
            done.set()

    async with make_session(avatar_server, transport_frames=on_frame) as session:
        await session.send_audio(SPEECH_16K[:32000], end=True)
        await asyncio.wait_for(done.wait(), 5)
    assert order == list(range(25))


async def test_callback_exception_is_logged_and_session_goes_on(
    avatar_server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bool] = []
    done = asyncio.Event()

    def on_frame(data: bytes, last: bool) -> None:
        seen.append(last)
        if last:
            done.set()
        raise RuntimeError("user bug")

    with caplog.at_level(logging.ERROR, logger="avatarkit"):
        async with make_session(avatar_server, transport_frames=on_frame) as session:
            await session.send_audio(SPEECH_16K[:6400], end=True)
            await asyncio.wait_for(done.wait(), 5)
    assert len(seen) == 5
    records = [r for r in caplog.records if "transport_frames" in r.getMessage()]
    assert len(records) == 5
    assert records[0].exc_info is not None and "user bug" in str(records[0].exc_info[1])


async def test_close_from_inside_callback(avatar_server: DevServer) -> None:
    rec = Recorder()
    holder: dict[str, AvatarSession] = {}
    tasks: list[asyncio.Task[None]] = []

    def on_frame(data: bytes, last: bool) -> None:
        if not tasks:
            tasks.append(asyncio.ensure_future(holder["s"].close()))

    session = make_session(avatar_server, rec, transport_frames=on_frame)
    holder["s"] = session
    await session.init()
    await session.start()
    await session.send_audio(SPEECH_16K[:32000], end=True)
    await asyncio.wait_for(rec.closed.wait(), 5)
    await asyncio.gather(*tasks)
    await session.close()
    assert rec.closes == 1 and rec.errors == []


async def test_async_callback_can_close_session(avatar_server: DevServer) -> None:
    closes: list[int] = []

    async def on_frame(data: bytes, last: bool) -> None:
        await session.close()

    session = make_session(
        avatar_server, transport_frames=on_frame, on_close=lambda: closes.append(1)
    )
    await session.init()
    await session.start()
    await session.send_audio(SPEECH_16K[:6400], end=True)
    await asyncio.wait_for(session.wait_closed(), 5)
    await session.close()
    assert closes == [1]


# -- errors, by phase -----------------------------------------------------------------


async def test_session_token_phase_wrong_key(avatar_server: DevServer) -> None:
    session = make_session(avatar_server, api_key="wrong-key-SECRET")
    with pytest.raises(SessionTokenError) as info:
        await session.init()
    err = info.value
    assert err.phase == "session_token" and err.http_status == 401
    assert err.code in (
        AvatarSDKErrorCode.sessionTokenExpired,
        AvatarSDKErrorCode.sessionTokenInvalid,
    )
    assert "wrong-key-SECRET" not in str(err) and "wrong-key-SECRET" not in repr(err)
    await session.close()


async def test_session_token_phase_unreachable() -> None:
    session = new_avatar_session(
        api_key="k",
        app_id="a",
        avatar_id="v",
        console_endpoint_url="http://127.0.0.1:9/v1/console",
        ingress_endpoint_url="ws://127.0.0.1:9/v2/driveningress",
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
    )
    with pytest.raises(SessionTokenError) as info:
        await session.init()
    assert info.value.code is AvatarSDKErrorCode.connectionFailed
    await session.close()


async def test_websocket_connect_phase_unknown_avatar(avatar_server: DevServer) -> None:
    session = make_session(avatar_server, avatar_id="nobody")
    await session.init()
    with pytest.raises(AvatarSDKError) as info:
        await session.start()
    assert info.value.code is AvatarSDKErrorCode.avatarNotFound
    assert info.value.phase == "websocket_connect" and info.value.http_status == 404
    await session.close()


async def test_websocket_connect_phase_app_mismatch(avatar_server: DevServer) -> None:
    avatar_server.add_api_key("other-key", "other-app")
    session = make_session(avatar_server, api_key="other-key")  # token for other-app
    await session.init()
    with pytest.raises(AvatarSDKError) as info:
        await session.start()
    assert info.value.code is AvatarSDKErrorCode.appIDMismatch
    await session.close()


async def test_runtime_server_error_is_not_fatal(avatar_server: DevServer) -> None:
    rec = Recorder()
    async with make_session(avatar_server, rec) as session:
        avatar_server.faults.send_error(4002 + 1000, "driven server request failed", after_frames=2)
        await session.send_audio(SPEECH_16K[:16000], end=True)
        await asyncio.wait_for(rec.ended.wait(), 5)
        await wait_for(lambda: bool(rec.errors))
    err = rec.errors[0]
    assert isinstance(err, AvatarSDKError)
    assert err.code is AvatarSDKErrorCode.upstreamError and err.phase == "websocket_runtime"
    assert err.server_code == "5002"
    assert rec.closes == 1


# Both transports: picows (the default) and aiohttp (websocket_compression).
TRANSPORTS = pytest.mark.parametrize("compression", [False, True], ids=["picows", "aiohttp"])


@TRANSPORTS
async def test_runtime_close_code_reaches_on_error_once(
    avatar_server: DevServer, compression: bool
) -> None:
    rec = Recorder()
    session = make_session(avatar_server, rec, websocket_compression=compression)
    await session.init()
    await session.start()
    avatar_server.faults.close(4002, "session duration limit reached", after_frames=3)
    await session.send_audio(SPEECH_16K[:32000], end=True)
    await asyncio.wait_for(rec.closed.wait(), 5)
    err = rec.errors[0]
    assert isinstance(err, AvatarSDKError)
    assert err.code is AvatarSDKErrorCode.connectionClosed
    assert (err.close_code, err.retryable) == (4002, True)
    assert err.close_reason == "session duration limit reached"
    # send after the server closed: AvatarSDKError in phase websocket_send
    with pytest.raises(AvatarSDKError) as info:
        await session.send_audio(b"\x00\x00")
    assert info.value.code is AvatarSDKErrorCode.connectionClosed
    assert info.value.phase == "websocket_send" and info.value.close_code == 4002
    with pytest.raises(AvatarSDKError):
        await session.interrupt()
    await session.close()
    assert rec.closes == 1 and len(rec.errors) == 1


@TRANSPORTS
async def test_dropped_connection_is_retryable(avatar_server: DevServer, compression: bool) -> None:
    rec = Recorder()
    async with make_session(avatar_server, rec, websocket_compression=compression) as session:
        avatar_server.faults.drop_connection(after_frames=2)
        await session.send_audio(SPEECH_16K[:32000], end=True)
        await asyncio.wait_for(rec.closed.wait(), 5)
    err = rec.errors[0]
    assert isinstance(err, AvatarSDKError)
    assert err.code is AvatarSDKErrorCode.connectionClosed
    assert err.close_code is None and err.retryable
    assert rec.closes == 1


@pytest.mark.parametrize(
    ("status", "detail", "code"),
    [
        (401, "invalid session token", AvatarSDKErrorCode.sessionTokenInvalid),
        (401, "session token expired", AvatarSDKErrorCode.sessionTokenExpired),
        (402, "payment required", AvatarSDKErrorCode.billingRequired),
        (404, "app id unrecognized", AvatarSDKErrorCode.appIDUnrecognized),
        (503, "maintenance", AvatarSDKErrorCode.serverError),
    ],
)
async def test_upgrade_rejections(
    avatar_server: DevServer, status: int, detail: str, code: AvatarSDKErrorCode
) -> None:
    body = json.dumps({"errors": [{"status": str(status), "title": "Rejected", "detail": detail}]})
    avatar_server.faults.reject_upgrade(status, body)
    session = make_session(avatar_server)
    await session.init()
    with pytest.raises(AvatarSDKError) as info:
        await session.start()
    await session.close()
    assert info.value.code is code
    assert info.value.http_status == status
    assert info.value.raw_body == body


async def test_no_secret_in_logs(
    avatar_server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    with caplog.at_level(logging.DEBUG):
        session = make_session(avatar_server, rec, use_query_auth=True)
        await session.init()
        token = session._token
        async with session:  # a session with a token is not initialized again
            await session.send_audio(SPEECH_16K[:6400], end=True)
            await asyncio.wait_for(rec.ended.wait(), 5)
    assert token
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert avatar_server.api_key not in text
    assert token not in text


async def test_many_sessions_concurrently(avatar_server: DevServer) -> None:
    async def one() -> int:
        rec = Recorder()
        async with make_session(avatar_server, rec) as session:
            await session.send_audio(SPEECH_16K[:6400], end=True)
            await asyncio.wait_for(rec.ended.wait(), 10)
        return len(rec.frames)

    counts = await asyncio.gather(*(one() for _ in range(50)))
    assert counts == [5] * 50


async def test_close_while_start_is_connecting(avatar_server: DevServer) -> None:
    rec = Recorder()
    session = make_session(avatar_server, rec)
    await session.init()
    starting = asyncio.ensure_future(session.start())
    await asyncio.sleep(0)  # start() is now inside the connect
    await session.close()
    with pytest.raises(AvatarSDKError) as info:
        await starting
    assert info.value.code is AvatarSDKErrorCode.connectionClosed
    assert rec.closes == 1
    await avatar_server.wait_closed_sessions(0)
    await wait_for(lambda: avatar_server.connection_count == 0)
