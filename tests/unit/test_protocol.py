"""The sans-I/O protocol core, driven with bytes alone."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from avatarkit import AudioFormat, AvatarSDKError, AvatarSDKErrorCode, PlaybackState
from avatarkit.config import AgoraEgressConfig, LiveKitEgressConfig, SessionConfig
from avatarkit.errors import SessionTokenError
from avatarkit.ids import generate_log_id
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import (
    AnimationReceived,
    ClientAudio,
    ClientControl,
    ClientProtocol,
    ClientState,
    MessageType,
    PlaybackStateReceived,
    ProtocolViolation,
    ServerErrorReceived,
    ServerProtocol,
    SessionConfirmed,
    build_token_request,
    build_websocket_url,
    encode_animation,
    encode_audio_input,
    encode_configure,
    encode_confirm,
    encode_interrupt,
    encode_pause,
    encode_playback_state,
    encode_resume,
    encode_server_error,
    parse_token_response,
    redact_url,
    token_url,
    token_urls,
)

REQ_ID = re.compile(r"^\d{14}_[A-Za-z0-9_-]{12}$")


def parse(data: bytes) -> pb.Message:
    msg = pb.Message()
    msg.ParseFromString(data)
    return msg


def open_client(
    capabilities: tuple[str, ...] = ("playback_control", "playback_state"),
) -> ClientProtocol:
    client = ClientProtocol()
    client.configure(SessionConfig())
    event = client.receive(encode_confirm("conn-1", capabilities))
    assert isinstance(event, SessionConfirmed)
    return client


@pytest.mark.parametrize(
    ("req_id", "audio", "end"),
    [
        ("20260101000000_abcdefghijkl", b"\x01\x02" * 400, True),
        ("r", b"", True),
        ("r", b"ab", False),
        ("r", b"", False),
        ("x" * 200, b"y" * 70000, False),
    ],
)
def test_audio_input_bytes_match_protobuf(req_id: str, audio: bytes, end: bool) -> None:
    reference = pb.Message(
        type=pb.MESSAGE_CLIENT_AUDIO_INPUT,
        client_audio_input=pb.ClientAudioInput(req_id=req_id, end=end, audio=audio),
    ).SerializeToString()
    assert encode_audio_input(req_id, audio, end) == reference


def test_configure_pcm_defaults() -> None:
    msg = parse(encode_configure(SessionConfig(sample_rate=24000, bitrate=0)))
    assert msg.type == MessageType.CLIENT_CONFIGURE_SESSION
    cfg = msg.client_configure_session
    assert cfg.sample_rate == 24000
    assert cfg.audio_format == pb.AUDIO_FORMAT_PCM_S16LE
    assert cfg.transport_compression == pb.TRANSPORT_COMPRESSION_NONE
    assert cfg.egress_type == pb.EGRESS_TYPE_UNSPECIFIED
    assert not cfg.HasField("livekit_egress")


def test_configure_opus_livekit() -> None:
    lk = LiveKitEgressConfig(
        url="wss://lk.example",
        api_token="tok",
        room_name="room",
        publisher_id="pub",
        extra_attributes={"a": "b"},
        idle_timeout=30,
    )
    cfg = SessionConfig(
        sample_rate=48000, bitrate=32000, audio_format=AudioFormat.OGG_OPUS, livekit_egress=lk
    )
    wire = parse(encode_configure(cfg)).client_configure_session
    assert wire.audio_format == pb.AUDIO_FORMAT_OGG_OPUS
    assert wire.bitrate == 32000
    assert wire.egress_type == pb.EGRESS_TYPE_LIVEKIT
    assert wire.livekit_egress.api_token == "tok"
    assert wire.livekit_egress.room_name == "room"
    assert dict(wire.livekit_egress.extra_attributes) == {"a": "b"}
    assert wire.livekit_egress.idle_timeout == 30


def test_configure_agora() -> None:
    cfg = SessionConfig(agora_egress=AgoraEgressConfig(channel_name="ch", token="t", uid=7))
    wire = parse(encode_configure(cfg)).client_configure_session
    assert wire.egress_type == pb.EGRESS_TYPE_AGORA
    assert (wire.agora_egress.channel_name, wire.agora_egress.uid) == ("ch", 7)


def test_control_messages() -> None:
    assert parse(encode_interrupt("r1")).client_interrupt.req_id == "r1"
    assert parse(encode_interrupt("r1")).type == MessageType.CLIENT_INTERRUPT
    assert parse(encode_pause("r2")).client_pause.req_id == "r2"
    assert parse(encode_pause("r2")).type == MessageType.CLIENT_PAUSE
    assert parse(encode_resume("r3")).client_resume.req_id == "r3"
    assert parse(encode_resume("r3")).type == MessageType.CLIENT_RESUME


def test_handshake_confirm_and_capabilities() -> None:
    client = ClientProtocol()
    assert client.state is ClientState.IDLE
    client.configure(SessionConfig())
    assert client.state is ClientState.AWAITING_CONFIRM
    event = client.receive(encode_confirm("c-9", ["playback_control"]))
    assert event == SessionConfirmed("c-9", ("playback_control",))
    assert client.state is ClientState.OPEN
    assert client.connection_id == "c-9"
    # a repeated confirm is ignored
    assert client.receive(encode_confirm("other")) is None
    assert client.connection_id == "c-9"


def test_confirm_without_connection_id_is_protocol_error() -> None:
    client = ClientProtocol()
    client.configure(SessionConfig())
    with pytest.raises(AvatarSDKError) as info:
        client.receive(encode_confirm(""))
    assert info.value.code is AvatarSDKErrorCode.protocolError
    assert info.value.phase == "websocket_handshake"


def test_handshake_server_error_is_fatal_and_classified() -> None:
    client = ClientProtocol()
    client.configure(SessionConfig())
    event = client.receive(encode_server_error("", "", 400, "unsupported sample rate"))
    assert isinstance(event, ServerErrorReceived)
    assert event.fatal
    assert event.error.code is AvatarSDKErrorCode.unsupportedSampleRate
    assert event.error.phase == "websocket_handshake"
    assert event.error.server_code == "400"


def test_unexpected_message_during_handshake() -> None:
    client = ClientProtocol()
    client.configure(SessionConfig())
    with pytest.raises(AvatarSDKError) as info:
        client.receive(encode_audio_input("r", b"", True))
    assert info.value.code is AvatarSDKErrorCode.protocolError


def test_garbage_is_protocol_error() -> None:
    client = open_client()
    with pytest.raises(AvatarSDKError) as info:
        client.receive(b"\xff\xff\xff\xff")
    assert info.value.code is AvatarSDKErrorCode.protocolError
    assert info.value.phase == "websocket_runtime"


def test_animation_event_carries_envelope() -> None:
    client = open_client()
    data = encode_animation("conn-1", "r1", True, b"payload", "av")
    event = client.receive(data)
    assert isinstance(event, AnimationReceived)
    assert (event.req_id, event.end, event.animation) == ("r1", True, b"payload")
    assert (event.connection_id, event.avatar_id) == ("conn-1", "av")


def test_runtime_server_error_not_fatal() -> None:
    client = open_client()
    event = client.receive(encode_server_error("conn-1", "r1", 0, "something broke"))
    assert isinstance(event, ServerErrorReceived)
    assert not event.fatal
    assert event.error.code is AvatarSDKErrorCode.serverError
    assert event.error.server_code == "0"
    assert event.error.req_id == "r1"


def test_playback_state_event() -> None:
    client = open_client()
    event = client.receive(
        encode_playback_state("conn-1", "r1", PlaybackState.INTERRUPTED, 1200, "explicit")
    )
    assert isinstance(event, PlaybackStateReceived)
    assert event.event.state is PlaybackState.INTERRUPTED
    assert event.event.played_ms == 1200
    assert event.event.reason == "explicit"


def test_unknown_message_types_and_fields_are_ignored() -> None:
    client = open_client()
    # type 42 with an unknown field 99 (varint)
    unknown = b"\x08\x2a" + b"\x98\x06\x01"
    assert client.receive(unknown) is None
    # known message with an extra unknown field still parses
    data = encode_animation("conn-1", "r1", False, b"x", "av") + b"\x98\x06\x01"
    event = client.receive(data)
    assert isinstance(event, AnimationReceived)
    assert event.animation == b"x"


def test_request_id_lifecycle() -> None:
    client = open_client()
    first, _msg1 = client.audio(b"\x00\x00", False)
    assert REQ_ID.match(first)
    again, _ = client.audio(b"\x00\x00", False)
    assert again == first
    ended, msg3 = client.audio(b"", True)
    assert ended == first
    assert parse(msg3).client_audio_input.end
    assert client.current_req_id is None
    assert client.last_req_id == first
    # interrupt targets the most recent request even after end=True
    interrupted, data = client.interrupt()
    assert interrupted == first
    assert parse(data).client_interrupt.req_id == first
    nxt, _ = client.audio(b"\x00\x00", False)
    assert nxt != first
    # interrupt of an open request closes it: the next send is a new id
    assert client.interrupt()[0] == nxt
    assert client.audio(b"\x00\x00", True)[0] not in (first, nxt)


def test_interrupt_before_any_request_is_value_error() -> None:
    client = open_client()
    with pytest.raises(ValueError, match="no request"):
        client.interrupt()


def test_pause_resume_need_capability() -> None:
    client = open_client(capabilities=())
    client.audio(b"\x00\x00", True)
    with pytest.raises(AvatarSDKError, match="playback_control"):
        client.pause()
    client = open_client()
    rid, _ = client.audio(b"\x00\x00", True)
    assert client.pause()[0] == rid
    assert client.resume()[0] == rid


def test_generate_log_id_format_and_utc() -> None:
    ids = {generate_log_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in list(ids)[:50]:
        assert REQ_ID.match(value)
    stamp = datetime.strptime(next(iter(ids))[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 5


# -- server side -----------------------------------------------------------


def test_server_requires_configure_first() -> None:
    server = ServerProtocol()
    with pytest.raises(ProtocolViolation, match="expected ClientConfigureSession"):
        server.receive(encode_audio_input("r", b"\x00\x00", False))


def test_server_invalid_protobuf_during_handshake() -> None:
    with pytest.raises(ProtocolViolation, match="invalid protobuf payload"):
        ServerProtocol().receive(b"\xff\xff\xff")


def test_server_flow() -> None:
    server = ServerProtocol()
    cfg = server.receive(encode_configure(SessionConfig(sample_rate=8000)))
    assert isinstance(cfg, pb.ClientConfigureSession)
    assert cfg.sample_rate == 8000
    assert server.receive(encode_audio_input("r", b"ab", True)) == ClientAudio("r", True, b"ab")
    assert server.receive(encode_interrupt("r")) == ClientControl(MessageType.CLIENT_INTERRUPT, "r")
    assert server.receive(encode_pause("r")) == ClientControl(MessageType.CLIENT_PAUSE, "r")
    assert server.receive(encode_resume("r")) == ClientControl(MessageType.CLIENT_RESUME, "r")
    assert server.receive(b"\x08\x2a") is None
    with pytest.raises(ProtocolViolation):
        server.receive(encode_configure(SessionConfig()))
    with pytest.raises(ProtocolViolation):
        server.receive(encode_confirm("x"))


# -- URLs and token call ------------------------------------------------------


def test_token_routes() -> None:
    assert (
        token_url("https://c.example/v1/console") == "https://c.example/v1/console/session-tokens"
    )
    assert (
        token_url("https://c.example/v1/console/") == "https://c.example/v1/console/session-tokens"
    )
    assert token_url("https://api.example") == "https://api.example/session-tokens"
    assert token_urls("https://api.example") == (
        "https://api.example/session-tokens",
        "https://api.example/v1/auth/session-token",
    )
    assert token_urls("https://c.example/v1/console") == (
        "https://c.example/v1/console/session-tokens",
    )


def test_token_request_body_and_headers() -> None:
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    url, headers, body = build_token_request("http://h/v1/console", "key-1", when)
    assert url == "http://h/v1/console/session-tokens"
    assert headers == {"X-Api-Key": "key-1", "Content-Type": "application/json"}
    assert json.loads(body) == {"expireAt": int(when.timestamp())}
    naive = datetime(2030, 1, 1)
    assert json.loads(build_token_request("http://h", "k", naive)[2])["expireAt"] == int(
        when.timestamp()
    )


def test_token_response_both_keys() -> None:
    assert parse_token_response(200, b'{"sessionToken": "a"}') == "a"
    assert parse_token_response(200, b'{"session_token": "b"}') == "b"


def test_token_response_errors() -> None:
    with pytest.raises(SessionTokenError) as info:
        parse_token_response(
            401, b'{"errors":[{"status":"401","title":"bad key","detail":"invalid api key"}]}'
        )
    assert info.value.code is AvatarSDKErrorCode.sessionTokenExpired
    assert info.value.http_status == 401
    assert info.value.phase == "session_token"
    with pytest.raises(SessionTokenError) as info:
        parse_token_response(200, b'{"errors":[{"status":"402","detail":"nope"}]}')
    assert info.value.code is AvatarSDKErrorCode.billingRequired
    assert info.value.http_status == 402
    with pytest.raises(SessionTokenError) as info:
        parse_token_response(200, b"not json")
    assert info.value.code is AvatarSDKErrorCode.protocolError
    with pytest.raises(SessionTokenError, match="neither"):
        parse_token_response(200, b"{}")


def test_websocket_url_header_auth() -> None:
    url, headers = build_websocket_url(
        "https://api.example/v2/driveningress",
        avatar_id="av",
        app_id="app",
        token="tok",
        use_query_auth=False,
    )
    assert url == "wss://api.example/v2/driveningress/websocket?id=av"
    assert headers == {"X-App-ID": "app", "X-Session-Key": "tok"}


def test_websocket_url_query_auth_keeps_query() -> None:
    url, headers = build_websocket_url(
        "http://h:1/v2/driveningress/?region=us&id=old&blank=",
        avatar_id="av",
        app_id="app",
        token="tok",
        use_query_auth=True,
    )
    assert url == "ws://h:1/v2/driveningress/websocket?region=us&id=av&appId=app&sessionKey=tok"
    assert headers == {}
    assert "tok" not in redact_url(url)


def test_websocket_url_bad_scheme() -> None:
    with pytest.raises(ValueError, match="scheme"):
        build_websocket_url("ftp://h/x", avatar_id="a", app_id="b", token="c", use_query_auth=False)


def test_expire_at_in_request_is_future() -> None:
    when = datetime.now(timezone.utc) + timedelta(minutes=5)
    assert json.loads(build_token_request("http://h", "k", when)[2])["expireAt"] > 0


@pytest.mark.parametrize(
    ("connection_id", "req_id", "end", "payload", "avatar_id"),
    [
        ("conn-1", "req-1", False, b"\x01" * 600, "avatar-1"),
        ("", "", True, b"", ""),
        ("c" * 200, "r", True, b"\x00" * 20000, ""),
        ("é-conn", "req-ü", False, b"\x7f", "a" * 130),
    ],
)
def test_hand_written_animation_envelope_equals_protobuf(
    connection_id: str, req_id: str, end: bool, payload: bytes, avatar_id: str
) -> None:
    """The one ServerResponseAnimation encoder (hand-written for the service's
    per-frame path) gives protobuf's bytes exactly."""
    from avatarkit._encode import AnimationEnvelope
    from avatarkit.proto import avatarkit_wire_pb2 as wire

    expected = wire.Message(
        type=wire.MESSAGE_SERVER_RESPONSE_ANIMATION,
        server_response_animation=wire.ServerResponseAnimation(
            connection_id=connection_id,
            req_id=req_id,
            end=end,
            animation=payload,
            avatar_id=avatar_id,
        ),
    ).SerializeToString(deterministic=True)
    envelope = AnimationEnvelope(connection_id, req_id, avatar_id)
    assert envelope.encode(end, payload) == expected
