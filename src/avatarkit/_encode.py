"""One encoder for each wire message: the only place ``Message`` envelopes are built.

Client messages (used by :class:`avatarkit.protocol.ClientProtocol`) and
server messages (used by the local avatar service) alike; re-exported by
:mod:`avatarkit.protocol`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .events import PlaybackState
from .proto import avatarkit_wire_pb2 as pb

if TYPE_CHECKING:
    from .config import AgoraEgressConfig, LiveKitEgressConfig, SessionConfig

__all__ = [
    "AnimationEnvelope",
    "encode_animation",
    "encode_audio_input",
    "encode_configure",
    "encode_confirm",
    "encode_interrupt",
    "encode_pause",
    "encode_playback_state",
    "encode_resume",
    "encode_server_error",
    "encode_varint",
]

_STATE_FROM_WIRE = {
    0: PlaybackState.UNSPECIFIED,
    1: PlaybackState.PLAYING,
    2: PlaybackState.PAUSED,
    3: PlaybackState.ENDED,
    4: PlaybackState.INTERRUPTED,
}
_STATE_TO_WIRE = {v: k for k, v in _STATE_FROM_WIRE.items()}


_SMALL_VARINTS = tuple(bytes((i,)) for i in range(0x80))


def encode_varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative ``value`` (shared by the hand encoders)."""
    if value < 0x80:
        return _SMALL_VARINTS[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_audio_input(req_id: str, audio: bytes, end: bool) -> bytes:
    """``Message{type=3, client_audio_input{req_id, end, audio}}``.

    Written by hand because it is the per-chunk send path: it gives the same
    bytes as protobuf's serializer (tests check this) without building two
    message objects and copying the audio into them.
    """
    rid = req_id.encode()
    inner = b"\x0a" + encode_varint(len(rid)) + rid
    if end:
        inner += b"\x10\x01"
    if audio:
        inner += b"\x1a" + encode_varint(len(audio))
        return b"\x08\x03\x22" + encode_varint(len(inner) + len(audio)) + inner + audio
    return b"\x08\x03\x22" + encode_varint(len(inner)) + inner


def _livekit_to_wire(cfg: LiveKitEgressConfig) -> pb.LiveKitEgressConfig:
    msg = pb.LiveKitEgressConfig(
        url=cfg.url,
        api_key=cfg.api_key,
        api_secret=cfg.api_secret,
        room_name=cfg.room_name,
        publisher_id=cfg.publisher_id,
        idle_timeout=cfg.idle_timeout,
        api_token=cfg.api_token,
    )
    for key, value in cfg.extra_attributes.items():
        msg.extra_attributes[key] = value
    return msg


def _agora_to_wire(cfg: AgoraEgressConfig) -> pb.AgoraEgressConfig:
    return pb.AgoraEgressConfig(
        channel_name=cfg.channel_name, token=cfg.token, uid=cfg.uid, publisher_id=cfg.publisher_id
    )


def encode_configure(config: SessionConfig) -> bytes:
    """The ``ClientConfigureSession`` the session opens with."""
    from .config import AudioFormat

    msg = pb.ClientConfigureSession(
        sample_rate=config.sample_rate,
        bitrate=config.bitrate,
        audio_format=(
            pb.AUDIO_FORMAT_OGG_OPUS
            if config.audio_format is AudioFormat.OGG_OPUS
            else pb.AUDIO_FORMAT_PCM_S16LE
        ),
        transport_compression=pb.TRANSPORT_COMPRESSION_NONE,
    )
    if config.livekit_egress is not None:
        msg.egress_type = pb.EGRESS_TYPE_LIVEKIT
        msg.livekit_egress.CopyFrom(_livekit_to_wire(config.livekit_egress))
    elif config.agora_egress is not None:
        msg.egress_type = pb.EGRESS_TYPE_AGORA
        msg.agora_egress.CopyFrom(_agora_to_wire(config.agora_egress))
    return _serialize(
        pb.Message(type=pb.MESSAGE_CLIENT_CONFIGURE_SESSION, client_configure_session=msg)
    )


def _serialize(msg: pb.Message) -> bytes:
    data: bytes = msg.SerializeToString()
    return data


def encode_interrupt(req_id: str) -> bytes:
    """``ClientInterrupt`` for ``req_id``."""
    return _serialize(
        pb.Message(
            type=pb.MESSAGE_CLIENT_INTERRUPT, client_interrupt=pb.ClientInterrupt(req_id=req_id)
        )
    )


def encode_pause(req_id: str) -> bytes:
    """``ClientPause`` for ``req_id``."""
    return _serialize(
        pb.Message(type=pb.MESSAGE_CLIENT_PAUSE, client_pause=pb.ClientPause(req_id=req_id))
    )


def encode_resume(req_id: str) -> bytes:
    """``ClientResume`` for ``req_id``."""
    return _serialize(
        pb.Message(type=pb.MESSAGE_CLIENT_RESUME, client_resume=pb.ClientResume(req_id=req_id))
    )


def encode_confirm(connection_id: str, capabilities: Iterable[str] = ()) -> bytes:
    """``ServerConfirmSession`` (server side)."""
    return _serialize(
        pb.Message(
            type=pb.MESSAGE_SERVER_CONFIRM_SESSION,
            server_confirm_session=pb.ServerConfirmSession(
                connection_id=connection_id, capabilities=list(capabilities)
            ),
        )
    )


def encode_server_error(connection_id: str, req_id: str, code: int, message: str) -> bytes:
    """``ServerError`` (server side)."""
    return _serialize(
        pb.Message(
            type=pb.MESSAGE_SERVER_ERROR,
            server_error=pb.ServerError(
                connection_id=connection_id, req_id=req_id, code=code, message=message
            ),
        )
    )


def _string_field(tag: int, text: str) -> bytes:
    """A length-delimited string field; nothing for an empty string (proto3)."""
    data = text.encode()
    return bytes((tag,)) + encode_varint(len(data)) + data if data else b""


class AnimationEnvelope:
    """The ``ServerResponseAnimation`` messages of one request (server side).

    The one encoder of that message, written by hand because it is the local
    service's per-frame path: only the payload and ``end`` change from frame
    to frame, so the request's fields are encoded once. The bytes equal
    protobuf's serializer (tests/unit/test_protocol.py compares them).
    Layout: ``Message{type=5 (field 1), server_response_animation (field 6)
    {connection_id=1, req_id=2, end=3, animation=4, avatar_id=5}}``.
    """

    __slots__ = ("head", "tail")

    _PREFIX = b"\x08" + bytes((pb.MESSAGE_SERVER_RESPONSE_ANIMATION,)) + b"\x32"

    def __init__(self, connection_id: str, req_id: str, avatar_id: str) -> None:
        self.head = _string_field(0x0A, connection_id) + _string_field(0x12, req_id)
        self.tail = _string_field(0x2A, avatar_id)

    def encode(self, end: bool, payload: bytes) -> bytes:
        """One frame's message: ``payload`` (may be empty) and the ``end`` flag."""
        body = self.head + b"\x18\x01" if end else self.head
        if payload:
            body += b"\x22" + encode_varint(len(payload)) + payload
        body += self.tail
        return self._PREFIX + encode_varint(len(body)) + body


def encode_animation(
    connection_id: str, req_id: str, end: bool, animation: bytes, avatar_id: str
) -> bytes:
    """``ServerResponseAnimation`` (server side), through :class:`AnimationEnvelope`."""
    return AnimationEnvelope(connection_id, req_id, avatar_id).encode(end, animation)


def encode_playback_state(
    connection_id: str, req_id: str, state: PlaybackState, played_ms: int, reason: str = ""
) -> bytes:
    """``ServerPlaybackState`` (server side)."""
    return _serialize(
        pb.Message(
            type=pb.MESSAGE_SERVER_PLAYBACK_STATE,
            server_playback_state=pb.ServerPlaybackState(
                connection_id=connection_id,
                req_id=req_id,
                state=_STATE_TO_WIRE[state],  # type: ignore[arg-type]
                played_ms=played_ms,
                reason=reason,
            ),
        )
    )
