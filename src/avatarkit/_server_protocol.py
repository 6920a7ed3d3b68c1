"""Server side of the protocol core: is a session configuration acceptable?

:func:`check_configure` decides, without I/O, what a service answers to a
``ClientConfigureSession``: :class:`ConfigureAccepted` (format, sample rate,
bitrate, egress), or :class:`ConfigureRejected` with the ``ServerError`` code,
its text and the close code that follows. The codes and texts are the ones
both published clients classify as PROTOCOL.md sections 5 and 6 describe:
``unsupported sample rate`` carries code 400 (not 3, which avatarkit 0.1.7
reads as an invalid request before looking at the text); an invalid egress
configuration carries code 3 and a text naming ``livekit_egress`` or
``agora_egress``; every rejection closes with 1008. The local service
(:mod:`avatarkit.devserver._connection`) only does the I/O around it.

:class:`ServerProtocol` is the other half: what a client may send in which
state (configure first, then audio and controls), with the hosted service's
wording for a violation.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from ._closecodes import CloseCode, WsClose
from ._egress_check import EgressConfigError, EgressSettings, check_egress
from ._facts import OGG_OPUS_SAMPLE_RATES, PCM_SAMPLE_RATES
from .proto import avatarkit_wire_pb2 as pb

__all__ = [
    "CLOSE_CONCURRENCY_LIMIT",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_SESSION_DURATION",
    "CLOSE_TOO_BIG",
    "CLOSE_UNSUPPORTED_DATA",
    "CODE_BAD_REQUEST",
    "CODE_IDLE",
    "CODE_INTERNAL",
    "CODE_INVALID_ARGUMENT",
    "ClientAudio",
    "ClientControl",
    "ConfigureAccepted",
    "ConfigureRejected",
    "ProtocolViolation",
    "ServerProtocol",
    "check_configure",
]

# ServerError codes the service uses (gRPC or HTTP-like numbers).
CODE_INVALID_ARGUMENT = 3  # bad request (or egress config, when the text names it)
CODE_INTERNAL = 13
CODE_BAD_REQUEST = 400  # protocol violations, unsupported sample rate (see PROTOCOL.md 6)
CODE_IDLE = 408

# WebSocket close codes the local service sends (names kept for its code).
CLOSE_NORMAL = WsClose.NORMAL
CLOSE_GOING_AWAY = WsClose.GOING_AWAY
CLOSE_UNSUPPORTED_DATA = WsClose.UNSUPPORTED_DATA
CLOSE_POLICY = WsClose.POLICY
CLOSE_TOO_BIG = WsClose.TOO_BIG
CLOSE_INTERNAL = WsClose.INTERNAL
CLOSE_SESSION_DURATION = int(CloseCode.SESSION_DURATION_EXCEEDED)
CLOSE_CONCURRENCY_LIMIT = int(CloseCode.CONCURRENCY_LIMIT)

_FORMATS = {0: ("pcm_s16le", PCM_SAMPLE_RATES), 1: ("ogg_opus", OGG_OPUS_SAMPLE_RATES)}


@dataclass(frozen=True, slots=True)
class ConfigureAccepted:
    """The configuration is valid: confirm the session with these settings."""

    audio_format: str  # "pcm_s16le" or "ogg_opus"
    sample_rate: int
    bitrate: int
    egress: EgressSettings | None  # None: frames go over the WebSocket


@dataclass(frozen=True, slots=True)
class ConfigureRejected:
    """The configuration is refused: send ``ServerError(code, detail)``, then close."""

    code: int
    detail: str
    close_code: int = CLOSE_POLICY


def check_configure(
    cfg: pb.ClientConfigureSession, *, now: float | None = None
) -> ConfigureAccepted | ConfigureRejected:
    """Accept or reject one ``ClientConfigureSession`` (``now``: unix time for JWT expiry)."""
    fmt = _FORMATS.get(int(cfg.audio_format))
    if fmt is None:
        return ConfigureRejected(
            CODE_INVALID_ARGUMENT,
            f"invalid audio_format {cfg.audio_format}: use PCM_S16LE (0) or OGG_OPUS (1)",
        )
    name, rates = fmt
    if cfg.sample_rate not in rates:
        return ConfigureRejected(
            CODE_BAD_REQUEST,
            f"unsupported sample rate {cfg.sample_rate} Hz for {name}; "
            f"supported: {', '.join(map(str, rates))}",
        )
    if cfg.bitrate < 0:
        return ConfigureRejected(
            CODE_INVALID_ARGUMENT, f"invalid bitrate {cfg.bitrate}: must be >= 0"
        )
    if cfg.transport_compression != 0:
        return ConfigureRejected(
            CODE_INVALID_ARGUMENT,
            f"unsupported transport_compression {cfg.transport_compression}: use NONE (0)",
        )
    try:
        egress = check_egress(cfg, now=now)
    except EgressConfigError as exc:
        return ConfigureRejected(CODE_INVALID_ARGUMENT, str(exc))
    return ConfigureAccepted(name, cfg.sample_rate, cfg.bitrate, egress)


# --------------------------------------------------------------------------
# What a client may send in which state
# --------------------------------------------------------------------------


class ProtocolViolation(Exception):
    """What a client sent breaks the protocol; ``message`` is what to answer."""

    def __init__(self, message: str, code: int = CODE_BAD_REQUEST) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class ClientAudio:
    """A ``ClientAudioInput`` as the server sees it."""

    req_id: str
    end: bool
    audio: bytes


@dataclass(frozen=True, slots=True)
class ClientControl:
    """A ``ClientInterrupt`` / ``ClientPause`` / ``ClientResume``."""

    kind: int
    req_id: str


class ServerProtocol:
    """Server half: the first message must configure, then audio and controls.

    ``receive()`` returns the parsed ``ClientConfigureSession`` once, then
    :class:`ClientAudio` / :class:`ClientControl` events, ``None`` for
    messages to ignore, and raises :class:`ProtocolViolation` with the
    hosted service's wording for anything else.
    """

    __slots__ = ("configured",)

    def __init__(self) -> None:
        self.configured = False

    def receive(
        self, data: bytes
    ) -> pb.ClientConfigureSession | ClientAudio | ClientControl | None:
        """Interpret one binary message from the client."""
        try:
            msg = pb.Message.FromString(data)
        except DecodeError:
            if not self.configured:
                raise ProtocolViolation(
                    "failed during websocket handshake: invalid protobuf payload"
                ) from None
            raise ProtocolViolation("invalid protobuf payload") from None
        kind = msg.type
        if not self.configured:
            if kind != pb.MESSAGE_CLIENT_CONFIGURE_SESSION:
                raise ProtocolViolation(
                    f"expected ClientConfigureSession message, got message type {kind}"
                )
            if not msg.HasField("client_configure_session"):
                raise ProtocolViolation("ClientConfigureSession message is nil")
            self.configured = True
            return msg.client_configure_session
        if kind == pb.MESSAGE_CLIENT_AUDIO_INPUT:
            a = msg.client_audio_input
            return ClientAudio(a.req_id, a.end, a.audio)
        if kind == pb.MESSAGE_CLIENT_INTERRUPT:
            return ClientControl(kind, msg.client_interrupt.req_id)
        if kind == pb.MESSAGE_CLIENT_PAUSE:
            return ClientControl(kind, msg.client_pause.req_id)
        if kind == pb.MESSAGE_CLIENT_RESUME:
            return ClientControl(kind, msg.client_resume.req_id)
        if kind == pb.MESSAGE_CLIENT_CONFIGURE_SESSION:
            raise ProtocolViolation("unexpected message type: session is already configured")
        if kind in (
            pb.MESSAGE_SERVER_CONFIRM_SESSION,
            pb.MESSAGE_SERVER_ERROR,
            pb.MESSAGE_SERVER_RESPONSE_ANIMATION,
            pb.MESSAGE_SERVER_PLAYBACK_STATE,
        ):
            raise ProtocolViolation(f"unexpected message type {kind} from a client")
        return None  # unknown (newer) message types are ignored
