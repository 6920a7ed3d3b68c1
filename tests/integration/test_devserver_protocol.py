"""Local avatar service, WebSocket side: handshake, audio formats, frames, robustness.

Driven with a raw aiohttp WebSocket and the protocol core's encoders.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import time

import aiohttp
import pytest

from avatarkit.config import OGG_OPUS_SAMPLE_RATES, PCM_SAMPLE_RATES
from avatarkit.devserver import DevServer, decode_animation
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.errors import AvatarSDKErrorCode, ErrorPhase, classify_server_error
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import MessageType, encode_audio_input
from tests._helpers import FIXTURES, speech_pcm

ENDED = pb.ServerPlaybackState.ENDED


async def connect(server: DevServer, http: aiohttp.ClientSession) -> RawClient:
    token = await fetch_token(http, server.api_root)
    return await RawClient.connect(http, server.ingress_url, token=token)


def frames_for(n_samples: int, rate: int) -> int:
    return math.ceil(n_samples * 25 / rate)


def speech(rate: int) -> bytes:
    return speech_pcm(rate)


def classify(err: pb.ServerError, phase: str = ErrorPhase.WEBSOCKET_HANDSHAKE.value) -> str:
    return classify_server_error(err.code, err.message, phase=phase).code.value


# -- handshake ------------------------------------------------------------------


async def test_confirm_has_fresh_connection_id_and_capabilities(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    one, two = await connect(avatar_server, http), await connect(avatar_server, http)
    await one.configure()
    await two.configure()
    assert one.connection_id and two.connection_id and one.connection_id != two.connection_id
    assert set(one.capabilities) == {"playback_control", "playback_state"}
    assert set(avatar_server.sessions) == {one.connection_id, two.connection_id}
    state = avatar_server.sessions[one.connection_id]
    assert (state.audio_format, state.sample_rate, state.egress) == ("pcm_s16le", 16000, None)
    await one.close()
    await two.close()
    await avatar_server.wait_closed_sessions(2)
    assert not avatar_server.sessions
    closed = avatar_server.find_session(one.connection_id)
    assert closed is not None and closed.closed and closed.close_code == 1000


@pytest.mark.parametrize("rate", PCM_SAMPLE_RATES)
async def test_every_pcm_rate_is_accepted(
    avatar_server: DevServer, http: aiohttp.ClientSession, rate: int
) -> None:
    client = await connect(avatar_server, http)
    await client.configure(rate)
    await client.close()


@pytest.mark.parametrize("rate", OGG_OPUS_SAMPLE_RATES)
async def test_every_ogg_opus_rate_is_accepted(
    avatar_server: DevServer, http: aiohttp.ClientSession, rate: int
) -> None:
    client = await connect(avatar_server, http)
    await client.configure(rate, audio_format=pb.AUDIO_FORMAT_OGG_OPUS, bitrate=24000)
    assert avatar_server.sessions[client.connection_id].audio_format == "ogg_opus"
    await client.close()


@pytest.mark.parametrize(
    ("rate", "fmt"),
    [(12000, 0), (11025, 0), (0, 0), (44100, 1), (22050, 1), (96000, 1)],
)
async def test_unsupported_sample_rate_is_code_400_then_close(
    avatar_server: DevServer, http: aiohttp.ClientSession, rate: int, fmt: int
) -> None:
    client = await connect(avatar_server, http)
    reply = await client.configure(rate, audio_format=fmt, expect_confirm=False)
    assert reply.type == MessageType.SERVER_ERROR
    err = reply.server_error
    assert err.code == 400
    assert "unsupported sample rate" in err.message
    assert classify(err) == AvatarSDKErrorCode.unsupportedSampleRate.value
    assert await client.recv() is None
    assert client.close_code == 1008
    assert not avatar_server.sessions


async def _expect_violation(
    client: RawClient, text: str, close_code: int = 1008, code: int = 400
) -> pb.ServerError:
    got = await client.drain_until_closed()
    assert len(got.errors) == 1, got
    err = got.errors[0]
    assert err.code == code
    assert text.lower() in err.message.lower()
    assert client.close_code == close_code
    return err


async def test_audio_before_configure(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    await client.audio("r", b"\0\0" * 100)
    err = await _expect_violation(client, "expected ClientConfigureSession message")
    assert classify(err) == AvatarSDKErrorCode.protocolError.value


async def test_malformed_protobuf_before_and_after_configure(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    await client.send(b"\xff\xff\xff\xff")
    err = await _expect_violation(client, "failed during websocket handshake: invalid protobuf")
    assert classify(err) == AvatarSDKErrorCode.protocolError.value
    client = await connect(avatar_server, http)
    await client.configure()
    await client.send(b"\x0a\x05ab")  # truncated length-delimited field
    await _expect_violation(client, "invalid protobuf payload")


async def test_text_frames_are_refused(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    await client.ws.send_str("hello")
    err = await _expect_violation(client, "expected binary protobuf message", close_code=1003)
    assert classify(err) == AvatarSDKErrorCode.protocolError.value
    client = await connect(avatar_server, http)
    await client.configure()
    await client.ws.send_str("{}")
    await _expect_violation(client, "text frame", close_code=1003)


async def test_second_configure_and_server_messages_from_client_are_refused(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    await client.configure()
    again = pb.Message(
        type=pb.MESSAGE_CLIENT_CONFIGURE_SESSION,
        client_configure_session=pb.ClientConfigureSession(sample_rate=16000),
    )
    await client.send(again.SerializeToString())
    await _expect_violation(client, "unexpected message type")
    client = await connect(avatar_server, http)
    await client.configure()
    await client.send(pb.Message(type=pb.MESSAGE_SERVER_ERROR).SerializeToString())
    await _expect_violation(client, "unexpected message type")


async def test_unknown_message_types_and_fields_are_ignored(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    await client.configure()
    await client.send(b"\x08\x63")  # type 99, no body
    await client.send(b"\x08\x63\xfa\x01\x03abc")  # type 99 with an unknown field 31
    # a known message with an unknown field appended
    await client.send(encode_audio_input("r1", b"\0\0" * 640, True) + b"\xfa\x01\x01x")
    got = await client.collect("r1")
    assert not got.errors and got.ends == 1 and len(got.animations) == 1
    await client.close()


async def test_oversized_message_gets_error_then_1009(http: aiohttp.ClientSession) -> None:
    async with DevServer(pace="fast", max_message_size=64 * 1024) as server:
        client = await connect(server, http)
        await client.configure()
        await client.audio("r1", b"\0" * (64 * 1024 + 10), True)
        got = await client.drain_until_closed()
        assert client.close_code == 1009
        assert [e.code for e in got.errors] == [400]
        assert "message too big" in got.errors[0].message
        # others are not affected
        other = await connect(server, http)
        await other.configure()
        await other.audio("r", b"\0\0" * 320, True)
        assert (await other.collect("r")).ends == 1
        await other.close()


async def test_default_limit_takes_a_whole_clip_in_one_message(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    pcm = speech(48000) * 3  # ~3.9 MB in one message
    client = await connect(avatar_server, http)
    await client.configure(48000)
    await client.audio("big", pcm, True)
    got = await client.collect("big", timeout=30)
    assert len(got.animations) == frames_for(len(pcm) // 2, 48000)
    assert got.ends == 1
    await client.close()


# -- egress configuration --------------------------------------------------------


def _jwt(claims: dict[str, object]) -> str:
    def enc(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc(claims)}.c2lnbmF0dXJl"


def livekit(**overrides: object) -> pb.LiveKitEgressConfig:
    fields: dict[str, object] = {
        "url": "wss://livekit.example.com",
        "room_name": "room-1",
        "publisher_id": "avatar-pub",
        "api_token": _jwt(
            {"video": {"room": "room-1", "roomJoin": True}, "exp": time.time() + 600}
        ),
    }
    fields.update(overrides)
    return pb.LiveKitEgressConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "config",
    [
        livekit(),
        livekit(api_token="opaque-token"),
        livekit(api_token="", api_key="key", api_secret="secret", url="https://lk.example.com"),
    ],
    ids=["jwt", "opaque", "key+secret"],
)
async def test_valid_livekit_egress(
    avatar_server: DevServer, http: aiohttp.ClientSession, config: pb.LiveKitEgressConfig
) -> None:
    client = await connect(avatar_server, http)
    await client.configure(livekit=config)
    egress = avatar_server.sessions[client.connection_id].egress
    assert egress is not None and egress.kind == "livekit" and egress.target == "room-1"
    await client.close()


async def test_valid_agora_egress(avatar_server: DevServer, http: aiohttp.ClientSession) -> None:
    client = await connect(avatar_server, http)
    await client.configure(agora=pb.AgoraEgressConfig(channel_name="chan", uid=7))
    egress = avatar_server.sessions[client.connection_id].egress
    assert egress is not None and (egress.kind, egress.target, egress.uid) == ("agora", "chan", 7)
    await client.close()


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"livekit": livekit(url="ftp://x")}, "livekit_egress.url"),
        ({"livekit": livekit(url="")}, "livekit_egress.url"),
        ({"livekit": livekit(room_name="")}, "livekit_egress.room_name"),
        ({"livekit": livekit(publisher_id="")}, "livekit_egress.publisher_id"),
        ({"livekit": livekit(api_token="")}, "provide api_token or both api_key and api_secret"),
        ({"livekit": livekit(api_token="", api_key="k")}, "missing livekit credentials"),
        (
            {"livekit": livekit(api_token=_jwt({"video": {"room": "other"}, "exp": 4e9}))},
            "grants room 'other'",
        ),
        (
            {"livekit": livekit(api_token=_jwt({"video": {"room": "room-1"}, "exp": 1000}))},
            "expired",
        ),
        ({"livekit": livekit(api_token=_jwt({"video": {"room": "room-1"}}))}, "no exp"),
        ({"agora": pb.AgoraEgressConfig(channel_name="")}, "agora_egress.channel_name"),
        (
            {"livekit": livekit(), "agora": pb.AgoraEgressConfig(channel_name="c")},
            "livekit_egress and agora_egress are both set",
        ),
        ({"egress_type": pb.EGRESS_TYPE_LIVEKIT}, "livekit_egress is missing"),
    ],
)
async def test_invalid_egress_is_code_3_naming_the_config(
    avatar_server: DevServer,
    http: aiohttp.ClientSession,
    kwargs: dict[str, object],
    text: str,
) -> None:
    client = await connect(avatar_server, http)
    reply = await client.configure(expect_confirm=False, **kwargs)  # type: ignore[arg-type]
    assert reply.type == MessageType.SERVER_ERROR
    err = reply.server_error
    assert err.code == 3
    assert text in err.message
    assert classify(err) == AvatarSDKErrorCode.invalidEgressConfig.value
    assert await client.recv() is None and client.close_code == 1008


# -- PCM audio and animation frames -------------------------------------------------


@pytest.mark.parametrize("rate", PCM_SAMPLE_RATES)
async def test_pcm_frame_count_is_ceil_of_25_per_second(
    avatar_server: DevServer, http: aiohttp.ClientSession, rate: int
) -> None:
    pcm = speech(rate)
    n = len(pcm) // 2
    # cut to a length that is not a multiple of a frame, in uneven (odd-byte) chunks
    pcm = pcm[: 2 * (n - n % (rate // 25) - 7)]
    client = await connect(avatar_server, http)
    await client.configure(rate)
    chunk = 4097  # odd on purpose: samples split across messages
    for i in range(0, len(pcm), chunk):
        await client.audio("req-1", pcm[i : i + chunk], end=i + chunk >= len(pcm))
    got = await client.collect("req-1")
    assert len(got.animations) == frames_for(len(pcm) // 2, rate)
    assert got.ends == 1 and got.animations[-1].end
    assert got.state_names == ["PLAYING", "ENDED"]
    assert got.states[-1].played_ms == (len(pcm) // 2) * 1000 // rate
    cid = client.connection_id
    for k, anim in enumerate(got.animations):
        assert (anim.connection_id, anim.req_id, anim.avatar_id) == (cid, "req-1", "dev-avatar")
        frame = decode_animation(anim.animation)
        assert frame["frame_index"] == k and frame["timestamp_ms"] == 40 * k
    request = avatar_server.sessions[cid].requests["req-1"]
    assert request.frames_sent == len(got.animations) and request.end_sent
    await client.close()


async def test_end_with_no_audio_gets_one_empty_end_frame(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    await client.configure()
    await client.audio("empty", b"", end=True)
    got = await client.collect("empty")
    assert len(got.animations) == 1
    assert got.animations[0].end and got.animations[0].animation == b""
    assert got.state_names == ["PLAYING", "ENDED"] and got.states[-1].played_ms == 0
    await client.close()


@pytest.mark.parametrize("rate", [16000, 48000])
async def test_ogg_end_with_no_audio_gets_one_empty_end_frame(
    avatar_server: DevServer, http: aiohttp.ClientSession, rate: int
) -> None:
    """An Ogg Opus request made only of an empty end=true message ends like PCM."""
    client = await connect(avatar_server, http)
    await client.configure(rate, audio_format=pb.AUDIO_FORMAT_OGG_OPUS)
    await client.audio("empty", b"", end=True)
    got = await client.collect("empty")
    assert got.errors == []
    assert len(got.animations) == 1
    assert got.animations[0].end and got.animations[0].animation == b""
    assert got.state_names == ["PLAYING", "ENDED"] and got.states[-1].played_ms == 0
    request = avatar_server.sessions[client.connection_id].requests["empty"]
    assert request.error is None and request.end_sent
    await client.close()


async def test_end_arrives_separately_from_the_audio(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    """The last frame waits for end=true: exactly one end, on the last frame."""
    client = await connect(avatar_server, http)
    await client.configure(16000)
    await client.audio("r", b"\1\0" * 6400)  # exactly 10 frames
    await client.audio("r", b"", end=True)
    got = await client.collect("r")
    assert len(got.animations) == 10
    assert [a.end for a in got.animations] == [False] * 9 + [True]
    await client.close()


async def test_audio_after_end_is_an_error_and_the_session_goes_on(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    await client.configure()
    await client.audio("r", b"\0\0" * 640, end=True)
    await client.collect("r")
    await client.audio("r", b"\0\0" * 640, end=True)
    await client.audio("", b"\0\0" * 640, end=True)
    await client.audio("r2", b"\0\0" * 640, end=True)
    got = await client.collect("r2")
    assert [e.code for e in got.errors] == [3, 3]
    assert "already ended" in got.errors[0].message
    assert got.ends == 1
    await client.close()


async def test_odd_total_length_drops_the_dangling_byte(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    await client.configure(8000)
    await client.audio("r", b"\0" * 641, end=True)  # 320 samples + 1 byte
    got = await client.collect("r")
    assert len(got.animations) == 1
    await client.close()


# -- Ogg Opus ---------------------------------------------------------------------


def ogg_expected_samples(data: bytes, rate: int) -> int:
    """(last granule - pre-skip) at ``rate``, read from the stream's pages."""
    pre_skip: int = struct.unpack_from("<H", data, data.index(b"OpusHead") + 10)[0]
    granule: int = struct.unpack_from("<q", data, data.rindex(b"OggS") + 6)[0]
    return (granule - pre_skip) * rate // 48000


async def test_ogg_opus_24k_in_chunks(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    ogg = (FIXTURES / "speech_24000.ogg").read_bytes()
    client = await connect(avatar_server, http)
    await client.configure(24000, audio_format=pb.AUDIO_FORMAT_OGG_OPUS)
    chunk = 1000  # pages split across messages
    for i in range(0, len(ogg), chunk):
        await client.audio("ogg", ogg[i : i + chunk], end=i + chunk >= len(ogg))
    got = await client.collect("ogg")
    assert not got.errors
    expected = frames_for(ogg_expected_samples(ogg, 24000), 24000)
    assert len(got.animations) == expected
    assert got.ends == 1 and got.animations[-1].end
    shapes = [decode_animation(a.animation)["blendshapes"] for a in got.animations]
    assert max(s["jawOpen"] for s in shapes) > 0.2
    await client.close()


async def test_broken_ogg_fails_the_request_not_the_session(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    ogg = (FIXTURES / "speech_24000.ogg").read_bytes()
    client = await connect(avatar_server, http)
    await client.configure(24000, audio_format=pb.AUDIO_FORMAT_OGG_OPUS)
    await client.audio("bad", b"this is not an ogg stream at all" * 10)
    broken = bytearray(ogg)
    broken[5000:5010] = b"\xaa" * 10  # corrupt a page: CRC mismatch
    await client.audio("bad", bytes(broken), end=True)  # late audio of the failed request
    await client.audio("good", ogg, end=True)
    got = await client.collect("good")
    assert len(got.errors) == 1
    err = got.errors[0]
    assert err.req_id == "bad" and err.code == 3 and "Ogg" in err.message
    assert classify(err, ErrorPhase.WEBSOCKET_RUNTIME.value) == "invalidRequest"
    assert {a.req_id for a in got.animations} == {"good"}
    assert got.ends == 1
    state = avatar_server.sessions[client.connection_id]
    assert state.requests["bad"].error and state.requests["bad"].reason == "error"
    await client.close()


async def test_corrupted_page_midway_is_reported(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    ogg = bytearray((FIXTURES / "speech_24000.ogg").read_bytes())
    ogg[20000:20004] = b"\0\0\0\0"
    client = await connect(avatar_server, http)
    await client.configure(24000, audio_format=pb.AUDIO_FORMAT_OGG_OPUS)
    await client.audio("r", bytes(ogg), end=True)
    msg = None
    for _ in range(1000):
        msg = await client.recv()
        assert msg is not None
        if msg.type == MessageType.SERVER_ERROR:
            break
    assert msg is not None and msg.server_error.req_id == "r"
    await client.close()


async def test_ogg_stream_ending_inside_a_page_fails_the_request(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    ogg = (FIXTURES / "speech_24000.ogg").read_bytes()
    client = await connect(avatar_server, http)
    await client.configure(24000, audio_format=pb.AUDIO_FORMAT_OGG_OPUS)
    await client.audio("cut", b"OggS" + b"\x00" * 10, end=True)  # half a page header
    await client.audio("good", ogg, end=True)  # the session stays usable
    got = await client.collect("good")
    assert len(got.errors) == 1
    err = got.errors[0]
    assert err.req_id == "cut" and err.code == 3 and "inside a page" in err.message
    assert got.ends == 1
    assert avatar_server.last_session is not None
    assert avatar_server.last_session.requests["cut"].error
    await client.close()
