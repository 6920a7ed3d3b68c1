"""Local avatar service: limits, fault injection, shutdown, many sessions at once."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from avatarkit.config import SessionConfig
from avatarkit.devserver import NEXT, DevServer
from avatarkit.devserver._rawclient import Collected, RawClient, fetch_token
from avatarkit.errors import (
    AvatarSDKError,
    AvatarSDKErrorCode,
    ErrorPhase,
    classify_close,
    classify_server_error,
)
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import ClientProtocol, MessageType, parse_token_response
from tests._helpers import FIXTURES

SPEECH = (FIXTURES / "speech_16000.pcm").read_bytes()
RUNTIME = ErrorPhase.WEBSOCKET_RUNTIME.value


def seconds(s: float) -> bytes:
    return SPEECH[: int(s * 16000) * 2]


async def open_client(
    server: DevServer, http: aiohttp.ClientSession, *, configure: bool = True, app: str = ""
) -> RawClient:
    if app:
        token = await fetch_token(http, server.api_root, api_key=f"key-{app}")
        client = await RawClient.connect(http, server.ingress_url, token=token, app_id=app)
    else:
        token = await fetch_token(http, server.api_root)
        client = await RawClient.connect(http, server.ingress_url, token=token)
    if configure:
        await client.configure()
    return client


async def frames_then(client: RawClient, n: int) -> tuple[Collected, pb.Message | None]:
    """Receive ``n`` animations, then return the next non-animation message (None: closed)."""
    got = Collected()
    while True:
        msg = await client.recv(timeout=5)
        if msg is None:
            return got, None
        client.sort(msg, got, 0.0)
        if len(got.animations) >= n and msg.type in (
            MessageType.SERVER_ERROR,
            MessageType.SERVER_CONFIRM_SESSION,
        ):
            return got, msg


# -- limits -----------------------------------------------------------------------


@pytest.mark.avatar_server(idle_timeout=0.3)
async def test_idle_timeout(avatar_server: DevServer, http: aiohttp.ClientSession) -> None:
    client = await open_client(avatar_server, http)
    got = await client.drain_until_closed()
    assert [(e.code, e.message) for e in got.errors] == [(408, "no audio input for 0.3 seconds")]
    err = classify_server_error(got.errors[0].code, got.errors[0].message, phase=RUNTIME)
    assert err.code is AvatarSDKErrorCode.idleTimeout
    assert client.close_code == 1000


@pytest.mark.avatar_server(pace="realtime", idle_timeout=0.3)
async def test_idle_timeout_does_not_fire_while_output_plays(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("r", seconds(1.0), end=True)
    got = await client.drain_until_closed()
    assert got.ends == 1 and len(got.animations) == 25  # 1 s of output > the 0.3 s timeout
    assert "no audio input" in got.errors[0].message


@pytest.mark.avatar_server(max_session_seconds=0.4)
async def test_max_session_duration_closes_4002(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    got = await client.drain_until_closed()
    assert client.close_code == 4002
    assert [e.code for e in got.errors] == [4002]
    assert "maximum session duration" in got.errors[0].message
    error = classify_close(4002, "maximum session duration reached")
    assert error.retryable
    sdk = classify_server_error(4002, got.errors[0].message, phase=RUNTIME)
    assert sdk.code is AvatarSDKErrorCode.sessionDurationExceeded
    await avatar_server.wait_closed_sessions(1)
    state = avatar_server.closed_sessions[-1]
    assert (state.close_code, state.close_reason) == (4002, "maximum session duration reached")


@pytest.mark.avatar_server(max_sessions_per_app=2, api_keys={"key-other": "other"})
async def test_concurrency_limit_per_app_closes_4003(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    one = await open_client(avatar_server, http)
    two = await open_client(avatar_server, http)
    three = await open_client(avatar_server, http, configure=False)
    reply = await three.configure(expect_confirm=False)
    assert reply.type == MessageType.SERVER_ERROR and reply.server_error.code == 4003
    assert "concurrency limit" in reply.server_error.message
    assert await three.recv() is None and three.close_code == 4003
    # avatarkit 0.1.7's code (drop-in); the successor contract shows in retryable
    err = classify_server_error(4003, "", phase=RUNTIME)
    assert err.code is AvatarSDKErrorCode.serverError and not err.retryable
    other_app = await open_client(avatar_server, http, app="other")  # its own quota
    await one.close()
    await avatar_server.wait_closed_sessions(1)
    four = await open_client(avatar_server, http)  # room again
    for c in (two, other_app, four):
        await c.close()


# -- faults -----------------------------------------------------------------------


async def test_send_error_after_frames_is_not_fatal(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    rule = avatar_server.faults.send_error(14, "failed to create egress connection", after_frames=5)
    client = await open_client(avatar_server, http)
    await client.audio("r", seconds(1.0), end=True)
    got, msg = await frames_then(client, 5)
    assert len(got.animations) == 5
    assert msg is not None and msg.type == MessageType.SERVER_ERROR
    assert (msg.server_error.code, msg.server_error.req_id) == (14, "r")
    rest = await client.collect("r")
    assert len(got.animations) + len(rest.animations) == 25 and rest.ends == 1
    assert rule.fired == 1 and not avatar_server.faults.rules  # one-shot
    await client.close()


async def test_send_error_right_after_confirm(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    avatar_server.faults.send_error(13, "driven server request failed")
    client = await open_client(avatar_server, http)
    msg = await client.recv()
    assert msg is not None and msg.type == MessageType.SERVER_ERROR
    sdk = classify_server_error(msg.server_error.code, msg.server_error.message, phase=RUNTIME)
    assert sdk.code is AvatarSDKErrorCode.upstreamError
    await client.close()


@pytest.mark.parametrize("code", [4001, 4010, 4503, 1011])
async def test_close_fault_after_frames(
    avatar_server: DevServer, http: aiohttp.ClientSession, code: int
) -> None:
    avatar_server.faults.close(code, "injected", after_frames=3)
    client = await open_client(avatar_server, http)
    await client.audio("r", seconds(1.0), end=True)
    got = await client.drain_until_closed()
    assert len(got.animations) == 3 and client.close_code == code
    await avatar_server.wait_closed_sessions(1)
    assert avatar_server.closed_sessions[-1].close_code == code


async def test_drop_connection_fault_aborts_without_close_frame(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    avatar_server.faults.drop_connection(after_frames=4)
    client = await open_client(avatar_server, http)
    await client.audio("r", seconds(1.0), end=True)
    got = await client.drain_until_closed()
    assert len(got.animations) == 4
    assert client.close_code == 1006  # abnormal closure: no close frame was received
    await avatar_server.wait_closed_sessions(1)
    state = avatar_server.closed_sessions[-1]
    assert state.aborted
    # the server goes on serving
    again = await open_client(avatar_server, http)
    await again.audio("r", seconds(0.2), end=True)
    assert (await again.collect("r")).ends == 1
    await again.close()


async def test_delay_frames_one_shot_and_persistent(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    avatar_server.faults.delay_frames(0.4, after_frames=5)
    client = await open_client(avatar_server, http)
    loop = asyncio.get_running_loop()
    await client.audio("r", seconds(0.4), end=True)
    got = await client.collect("r")
    gaps = [b - a for a, b in zip(got.arrival, got.arrival[1:], strict=False)]
    # the delayed frame waits; the others are not held (compared with the delay,
    # not with a wall-clock bound, so a loaded machine cannot fail it)
    assert gaps[4] >= 0.35 and sum(gaps[:4] + gaps[5:]) < gaps[4] * 4
    rule = avatar_server.faults.delay_frames(0.05, persistent=True)
    start = loop.time()
    await client.audio("r2", seconds(0.4), end=True)
    got = await client.collect("r2")
    assert len(got.animations) == 10 and loop.time() - start >= 10 * 0.05 - 0.01
    assert rule.fired == 10
    avatar_server.faults.remove(rule)
    await client.close()


async def test_targeted_faults_next_and_connection_id(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    first = await open_client(avatar_server, http)
    avatar_server.faults.send_error(4001, "credits exhausted", target=NEXT, after_frames=1)
    second = await open_client(avatar_server, http)
    avatar_server.faults.close(4010, "auth revoked", target=first.connection_id, after_frames=2)
    await second.audio("r", seconds(0.2), end=True)
    got = await second.collect("r")
    assert [e.code for e in got.errors] == [4001]
    await first.audio("r", seconds(0.2), end=True)
    got = await first.drain_until_closed()
    assert len(got.animations) == 2 and first.close_code == 4010 and not got.errors
    await second.close()


async def test_handshake_faults(avatar_server: DevServer, http: aiohttp.ClientSession) -> None:
    avatar_server.faults.send_error(4001, "credits exhausted", phase="handshake")
    client = await open_client(avatar_server, http, configure=False)
    reply = await client.configure(expect_confirm=False)
    assert reply.type == MessageType.SERVER_ERROR and reply.server_error.code == 4001
    sdk = classify_server_error(
        reply.server_error.code,
        reply.server_error.message,
        phase=ErrorPhase.WEBSOCKET_HANDSHAKE.value,
    )
    assert sdk.code is AvatarSDKErrorCode.creditsExhausted
    assert await client.recv() is None and client.close_code == 4001
    avatar_server.faults.close(4503, "upstream unavailable", phase="handshake")
    client = await open_client(avatar_server, http, configure=False)
    await client.send(
        pb.Message(
            type=pb.MESSAGE_CLIENT_CONFIGURE_SESSION,
            client_configure_session=pb.ClientConfigureSession(sample_rate=16000),
        ).SerializeToString()
    )
    assert await client.recv() is None and client.close_code == 4503
    assert not avatar_server.sessions


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (4001, "credits exhausted", AvatarSDKErrorCode.creditsExhausted),
        (14, "failed to create egress connection", AvatarSDKErrorCode.egressUnavailable),
        (16, "unauthorized", AvatarSDKErrorCode.invalidEgressConfig),
        (0, "driven server returned non-200 status code", AvatarSDKErrorCode.upstreamError),
        (13, "boom", AvatarSDKErrorCode.serverError),
        (0, "session denied", AvatarSDKErrorCode.billingRequired),
        (0, "app id unrecognized", AvatarSDKErrorCode.appIDUnrecognized),
    ],
)
async def test_injected_errors_reach_every_sdk_code(
    avatar_server: DevServer,
    http: aiohttp.ClientSession,
    code: int,
    message: str,
    expected: AvatarSDKErrorCode,
) -> None:
    avatar_server.faults.send_error(code, message)
    client = await open_client(avatar_server, http)
    msg = await client.recv()
    assert msg is not None and msg.type == MessageType.SERVER_ERROR
    err = msg.server_error
    assert (err.code, err.message, err.connection_id) == (code, message, client.connection_id)
    assert classify_server_error(err.code, err.message, phase=RUNTIME).code is expected
    await client.close()


# -- robustness and shutdown -----------------------------------------------------------


async def test_a_client_vanishing_mid_stream_does_not_disturb_others(
    http: aiohttp.ClientSession,
) -> None:
    async with DevServer(pace="realtime") as server:
        gone = await open_client(server, http)
        stays = await open_client(server, http)
        await gone.audio("r", seconds(2.0), end=True)
        await stays.audio("r", seconds(0.6), end=True)
        await asyncio.sleep(0.1)
        transport = gone.ws._response.connection.transport  # type: ignore[union-attr]
        assert transport is not None
        transport.abort()
        got = await stays.collect("r")
        assert got.ends == 1 and len(got.animations) == 15
        await server.wait_closed_sessions(1)
        assert len(server.sessions) == 1
        await stays.close()
        await gone.close()


async def test_shutdown_closes_every_session_with_1001(http: aiohttp.ClientSession) -> None:
    server = await DevServer(pace="realtime").start()
    clients = [await open_client(server, http) for _ in range(3)]
    await clients[0].audio("r", seconds(3.0), end=True)
    await asyncio.sleep(0.2)
    readers = [asyncio.create_task(c.drain_until_closed()) for c in clients]
    loop = asyncio.get_running_loop()
    start = loop.time()
    await server.close()
    assert loop.time() - start < 1.5  # the clients answered the close frames
    await asyncio.gather(*readers)
    assert [c.close_code for c in clients] == [1001] * 3
    assert [(s.close_code, s.close_reason) for s in server.closed_sessions] == [
        (1001, "server shutting down")
    ] * 3
    assert not server.sessions
    await server.close()  # idempotent
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"http://127.0.0.1:{server.port}/healthz"):
            pass


async def test_200_concurrent_sessions(http: aiohttp.ClientSession) -> None:
    audio = seconds(0.4)

    async def one(server: DevServer, i: int) -> int:
        client = await open_client(server, http)
        await client.audio(f"r{i}", audio, end=True)
        got = await client.collect(f"r{i}", timeout=60)
        await client.close()
        assert got.ends == 1 and not got.errors
        return len(got.animations)

    connector = aiohttp.TCPConnector(limit=0)
    async with DevServer(pace="fast") as server, aiohttp.ClientSession(connector=connector) as http:
        counts = await asyncio.gather(*(one(server, i) for i in range(200)))
    assert counts == [10] * 200


async def test_send_raw_fault_for_client_protocol_errors(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    # instead of the confirm: bytes that are no protobuf Message
    avatar_server.faults.send_raw(b"\xff\xfe garbage", phase="handshake")
    client = await open_client(avatar_server, http, configure=False)
    await client.send(
        pb.Message(
            type=pb.MESSAGE_CLIENT_CONFIGURE_SESSION,
            client_configure_session=pb.ClientConfigureSession(sample_rate=16000),
        ).SerializeToString()
    )
    msg = await client.ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.BINARY and msg.data == b"\xff\xfe garbage"
    proto = ClientProtocol()
    proto.configure(SessionConfig(sample_rate=16000))
    with pytest.raises(AvatarSDKError) as info:
        proto.receive(msg.data)
    assert info.value.code is AvatarSDKErrorCode.protocolError
    await client.audio("r", seconds(0.2), end=True)  # unconfirmed: ignored, no crash
    await client.close()
    # at runtime, a text frame
    avatar_server.faults.send_raw('{"not": "protobuf"}', text=True, after_frames=2)
    client = await open_client(avatar_server, http)
    await client.audio("r", seconds(0.4), end=True)
    kinds = []
    while True:
        raw = await client.ws.receive(timeout=5)
        kinds.append(raw.type)
        if raw.type is aiohttp.WSMsgType.TEXT:
            assert raw.data == '{"not": "protobuf"}'
            break
    assert kinds.count(aiohttp.WSMsgType.BINARY) >= 3  # PLAYING + 2 frames
    await client.close()


async def test_token_answer_without_token(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    avatar_server.faults.reject_token(200, "{}")
    async with http.post(
        avatar_server.api_root + "/v1/console/session-tokens",
        json={"expireAt": 4_000_000_000},
        headers={"X-Api-Key": "dev-api-key"},
    ) as resp:
        status, body = resp.status, await resp.read()
    with pytest.raises(AvatarSDKError) as info:
        parse_token_response(status, body)
    assert info.value.code is AvatarSDKErrorCode.protocolError
