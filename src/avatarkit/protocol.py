"""The wire protocol as plain code: bytes in, events out; commands in, bytes out.

No sockets and no asyncio live here, so the rules of PROTOCOL.md can be tested
with byte strings alone. Two users drive it from opposite sides:

* :class:`ClientProtocol` (used by :class:`avatarkit.AvatarSession`): the
  handshake state, the request-id lifecycle and what each server message
  means;
* :class:`ServerProtocol` (used by the local avatar service): what a client
  may send in which state, and the texts the hosted service answers with.

The URL and token helpers at the bottom build the HTTP and WebSocket requests
byte-exactly as avatarkit 0.1.7 does (minus its query-string bug, see
:func:`build_websocket_url`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from google.protobuf.message import DecodeError

from ._redact import redact_url
from .errors import (
    MAX_JSON_BODY,
    AvatarSDKError,
    AvatarSDKErrorCode,
    ErrorPhase,
    SessionTokenError,
    classify_http_rejection,
    classify_server_error,
    load_json_body,
)
from .events import PlaybackState, PlaybackStateEvent
from .ids import generate_log_id
from .proto import avatarkit_wire_pb2 as pb

if TYPE_CHECKING:
    from .config import AgoraEgressConfig, LiveKitEgressConfig, SessionConfig

__all__ = [
    "CAPABILITY_PLAYBACK_CONTROL",
    "CAPABILITY_PLAYBACK_STATE",
    "AnimationReceived",
    "ClientProtocol",
    "ClientState",
    "MessageType",
    "PlaybackStateReceived",
    "ProtocolStateError",
    "ServerErrorReceived",
    "SessionConfirmed",
    "build_token_request",
    "build_websocket_url",
    "parse_token_response",
    "redact_url",
]

CAPABILITY_PLAYBACK_CONTROL = "playback_control"
CAPABILITY_PLAYBACK_STATE = "playback_state"


class MessageType:
    """Short names for the generated ``MessageType`` enum (PROTOCOL.md section 3).

    The numbers are defined once, in ``avatarkit_wire.proto``; this only names
    them without the ``MESSAGE_`` prefix for the local service's code (a test
    checks it mirrors the generated enum exactly). New code may use
    ``pb.MESSAGE_*`` directly.
    """

    UNSPECIFIED = pb.MESSAGE_UNSPECIFIED
    CLIENT_CONFIGURE_SESSION = pb.MESSAGE_CLIENT_CONFIGURE_SESSION
    SERVER_CONFIRM_SESSION = pb.MESSAGE_SERVER_CONFIRM_SESSION
    CLIENT_AUDIO_INPUT = pb.MESSAGE_CLIENT_AUDIO_INPUT
    SERVER_ERROR = pb.MESSAGE_SERVER_ERROR
    SERVER_RESPONSE_ANIMATION = pb.MESSAGE_SERVER_RESPONSE_ANIMATION
    CLIENT_INTERRUPT = pb.MESSAGE_CLIENT_INTERRUPT
    CLIENT_PAUSE = pb.MESSAGE_CLIENT_PAUSE
    CLIENT_RESUME = pb.MESSAGE_CLIENT_RESUME
    SERVER_PLAYBACK_STATE = pb.MESSAGE_SERVER_PLAYBACK_STATE


#: ``MessageType`` of ``ServerResponseAnimation``, for the per-frame path.
ANIMATION_TYPE: int = pb.MESSAGE_SERVER_RESPONSE_ANIMATION

_STATE_FROM_WIRE = {
    0: PlaybackState.UNSPECIFIED,
    1: PlaybackState.PLAYING,
    2: PlaybackState.PAUSED,
    3: PlaybackState.ENDED,
    4: PlaybackState.INTERRUPTED,
}
_STATE_TO_WIRE = {v: k for k, v in _STATE_FROM_WIRE.items()}
#: Parse one serialized ``Message`` (raises ``DecodeError``).
parse_message = pb.Message.FromString

# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------


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


def encode_animation(
    connection_id: str, req_id: str, end: bool, animation: bytes, avatar_id: str
) -> bytes:
    """``ServerResponseAnimation`` (server side)."""
    return _serialize(
        pb.Message(
            type=pb.MESSAGE_SERVER_RESPONSE_ANIMATION,
            server_response_animation=pb.ServerResponseAnimation(
                connection_id=connection_id,
                req_id=req_id,
                end=end,
                animation=animation,
                avatar_id=avatar_id,
            ),
        )
    )


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


# --------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------


class ClientState(Enum):
    """Where a client connection is in its life.

    ``IDLE -> CONNECTING -> AWAITING_CONFIRM -> OPEN -> CLOSING -> CLOSED``;
    ``CONNECTING`` falls back to ``IDLE`` when the socket could not be opened
    (a retry is allowed), and any state may go to ``CLOSING`` or ``CLOSED``.
    """

    IDLE = "idle"
    CONNECTING = "connecting"
    AWAITING_CONFIRM = "awaiting_confirm"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ProtocolStateError(ValueError):
    """A step that is not legal in the connection's current state.

    A ``ValueError`` because that is what the session raised for calls out of
    order (``start()`` twice, audio before ``start()``). The message says
    what to do instead.
    """


@dataclass(frozen=True, slots=True)
class SessionConfirmed:
    """The server accepted the configuration."""

    connection_id: str
    capabilities: tuple[str, ...]


#: An animation message is returned as the parsed ``ServerResponseAnimation``
#: itself (fields ``req_id``, ``end``, ``animation``, ``connection_id``,
#: ``avatar_id``): no wrapper object and no field is copied until read, since
#: this is the per-frame path.
AnimationReceived = pb.ServerResponseAnimation


@dataclass(frozen=True, slots=True)
class ServerErrorReceived:
    """A ``ServerError``; ``fatal`` when it ended the handshake."""

    error: AvatarSDKError
    fatal: bool


@dataclass(frozen=True, slots=True)
class PlaybackStateReceived:
    """A ``ServerPlaybackState``."""

    event: PlaybackStateEvent


ClientEvent = SessionConfirmed | AnimationReceived | ServerErrorReceived | PlaybackStateReceived


class ClientProtocol:
    """Client half of the protocol: state, request ids, message meaning.

    ``receive()`` takes one WebSocket message's bytes and returns the event it
    carries, or ``None`` for messages a client ignores (unknown types, client
    messages echoed back). Unknown fields are ignored by protobuf itself.
    """

    __slots__ = (
        "_current_req_id",
        "_last_req_id",
        "capabilities",
        "connection_id",
        "state",
        "streaming",
    )

    def __init__(self) -> None:
        self.state = ClientState.IDLE
        #: Whether animation messages are delivered now: from the confirm
        #: until the connection is gone (also while our close is under way,
        #: for frames already in flight). The per-frame fast path reads
        #: only this flag; it is kept in step with ``state`` here.
        self.streaming = False
        self.connection_id: str | None = None
        self.capabilities: tuple[str, ...] = ()
        self._current_req_id: str | None = None  # open request (no end=True yet)
        self._last_req_id: str | None = None  # most recent request, ended or not

    # -- handshake ---------------------------------------------------------

    def connecting(self) -> None:
        """The socket is being opened (``IDLE -> CONNECTING``)."""
        state = self.state
        if state is not ClientState.IDLE:
            if state in (ClientState.CLOSING, ClientState.CLOSED):
                raise ProtocolStateError("session is closed; create a new session")
            raise ProtocolStateError(
                f"session already started (state {state.value}); use a new session "
                "for a second connection"
            )
        self.state = ClientState.CONNECTING

    def connect_failed(self) -> None:
        """The socket could not be opened (``CONNECTING -> IDLE``: a retry is legal)."""
        if self.state is not ClientState.CONNECTING:
            raise ProtocolStateError(
                f"connect_failed() in state {self.state.value}; only a connection being "
                "opened can fail to open"
            )
        self.state = ClientState.IDLE

    def configure(self, config: SessionConfig) -> bytes:
        """Bytes of the opening ``ClientConfigureSession`` (``-> AWAITING_CONFIRM``).

        Legal once, from ``CONNECTING`` (or ``IDLE`` for a caller that tracks
        no socket, such as a test driving the core with bytes).
        """
        if self.state not in (ClientState.IDLE, ClientState.CONNECTING):
            raise ProtocolStateError(
                f"configure() in state {self.state.value}; a connection is configured "
                "once, right after it opens"
            )
        data = encode_configure(config)
        self.state = ClientState.AWAITING_CONFIRM
        return data

    def start_closing(self) -> None:
        """Our close has begun (``-> CLOSING``); idempotent, a no-op once closed."""
        if self.state is not ClientState.CLOSED:
            self.state = ClientState.CLOSING

    def closed(self) -> None:
        """The connection is gone; nothing more may be sent (``-> CLOSED``)."""
        self.state = ClientState.CLOSED
        self.streaming = False

    @property
    def phase(self) -> ErrorPhase:
        """The phase of an error now: handshake until the session was confirmed."""
        if self.connection_id is None:
            return ErrorPhase.WEBSOCKET_HANDSHAKE
        return ErrorPhase.WEBSOCKET_RUNTIME

    def receive(self, data: bytes) -> ClientEvent | None:
        """Interpret one binary message from the server."""
        return self.handle(self.parse(data))

    def parse(self, data: bytes) -> pb.Message:
        """Parse one message's bytes (once); :class:`AvatarSDKError` if it is not protobuf."""
        try:
            return parse_message(data)
        except DecodeError as exc:
            raise self.decode_error(exc) from None

    def decode_error(self, exc: Exception) -> AvatarSDKError:
        """The error for bytes that are not a protobuf ``Message``."""
        return AvatarSDKError(
            AvatarSDKErrorCode.protocolError,
            f"server sent a message that is not a valid protobuf Message ({exc})",
            phase=self._phase(),
        )

    def handle(self, msg: pb.Message) -> ClientEvent | None:
        """The event a parsed server message carries (``None``: ignore it).

        Callers on the per-frame path may test ``msg.type ==
        ANIMATION_TYPE`` themselves and take ``msg.server_response_animation``
        directly; this method gives the same answer.
        """
        kind = msg.type
        if kind == ANIMATION_TYPE:
            if self.state is ClientState.AWAITING_CONFIRM:
                raise AvatarSDKError(
                    AvatarSDKErrorCode.protocolError,
                    "server sent animation before confirming the session",
                    phase=ErrorPhase.WEBSOCKET_HANDSHAKE.value,
                )
            return msg.server_response_animation
        if kind == pb.MESSAGE_SERVER_CONFIRM_SESSION:
            return self._on_confirm(msg.server_confirm_session)
        if kind == pb.MESSAGE_SERVER_ERROR:
            err = msg.server_error
            fatal = self.state is ClientState.AWAITING_CONFIRM
            error = classify_server_error(
                err.code,
                err.message,
                phase=self._phase(),
                connection_id=err.connection_id or self.connection_id,
                req_id=err.req_id,
            )
            return ServerErrorReceived(error, fatal)
        if kind == pb.MESSAGE_SERVER_PLAYBACK_STATE:
            ps = msg.server_playback_state
            return PlaybackStateReceived(
                PlaybackStateEvent(
                    req_id=ps.req_id,
                    state=_STATE_FROM_WIRE.get(ps.state, PlaybackState.UNSPECIFIED),
                    played_ms=ps.played_ms,
                    reason=ps.reason,
                    connection_id=ps.connection_id,
                )
            )
        if self.state is ClientState.AWAITING_CONFIRM:
            raise AvatarSDKError(
                AvatarSDKErrorCode.protocolError,
                f"expected ServerConfirmSession during the handshake, got message type {kind}",
                phase=ErrorPhase.WEBSOCKET_HANDSHAKE.value,
            )
        return None

    def _on_confirm(self, confirm: pb.ServerConfirmSession) -> SessionConfirmed | None:
        if self.state is not ClientState.AWAITING_CONFIRM:
            return None  # a repeated confirm changes nothing
        if not confirm.connection_id:
            raise AvatarSDKError(
                AvatarSDKErrorCode.protocolError,
                "server confirmed the session without a connection id",
                phase=ErrorPhase.WEBSOCKET_HANDSHAKE.value,
            )
        self.state = ClientState.OPEN
        self.streaming = True
        self.connection_id = confirm.connection_id
        self.capabilities = tuple(confirm.capabilities)
        return SessionConfirmed(self.connection_id, self.capabilities)

    def _phase(self) -> str:
        if self.state is ClientState.AWAITING_CONFIRM:
            return ErrorPhase.WEBSOCKET_HANDSHAKE.value
        return ErrorPhase.WEBSOCKET_RUNTIME.value

    # -- requests ----------------------------------------------------------

    @property
    def current_req_id(self) -> str | None:
        """The request audio is being sent for (``None`` after ``end=True``)."""
        return self._current_req_id

    @property
    def last_req_id(self) -> str | None:
        """The most recent request, whether its audio ended or not."""
        return self._last_req_id

    def audio(self, audio: bytes, end: bool) -> tuple[str, bytes]:
        """Bytes of one ``ClientAudioInput``; returns ``(req_id, message)``.

        The same id is reused until a message with ``end=True``; the next call
        then starts a new one.
        """
        req_id = self.begin_request()
        if end:
            self._current_req_id = None
        return req_id, encode_audio_input(req_id, audio, end)

    def begin_request(self) -> str:
        """The id of the open request, starting a new one if none is open."""
        req_id = self._current_req_id
        if req_id is None:
            if self.connection_id is None:
                raise ProtocolStateError(
                    f"audio in state {self.state.value}: the session is not open yet; "
                    "call start() first"
                )
            req_id = self._current_req_id = self._last_req_id = generate_log_id()
        return req_id

    def end_request(self) -> None:
        """Close the open request without sending (used by the encoder path)."""
        self._current_req_id = None

    def interrupt(self) -> tuple[str, bytes]:
        """``ClientInterrupt`` for the most recent request, even an ended one.

        Afterwards the next ``audio()`` starts a new request id.
        """
        req_id = self._require_request("interrupt")
        self._current_req_id = None
        return req_id, encode_interrupt(req_id)

    def pause(self) -> tuple[str, bytes]:
        """``ClientPause`` for the most recent request."""
        return self._control("pause", encode_pause)

    def resume(self) -> tuple[str, bytes]:
        """``ClientResume`` for the most recent request."""
        return self._control("resume", encode_resume)

    def _control(self, action: str, encode: Any) -> tuple[str, bytes]:
        if CAPABILITY_PLAYBACK_CONTROL not in self.capabilities:
            raise AvatarSDKError(
                AvatarSDKErrorCode.invalidRequest,
                f"{action}() needs a server that declares the '{CAPABILITY_PLAYBACK_CONTROL}' "
                f"capability; this one declared {list(self.capabilities)}",
                phase=ErrorPhase.WEBSOCKET_SEND.value,
                connection_id=self.connection_id,
            )
        req_id = self._require_request(action)
        data: bytes = encode(req_id)
        return req_id, data

    def _require_request(self, action: str) -> str:
        if self._last_req_id is None:
            raise ValueError(f"{action}(): no request yet; send audio first")
        return self._last_req_id


# --------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------


class ProtocolViolation(Exception):
    """What a client sent breaks the protocol; ``message`` is what to answer."""

    def __init__(self, message: str, code: int = 400) -> None:
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
        msg = pb.Message()
        try:
            msg.ParseFromString(data)
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


# --------------------------------------------------------------------------
# HTTP token call and WebSocket URL
# --------------------------------------------------------------------------

_CONSOLE_SUFFIX = "/v1/console"


def token_urls(console_endpoint_url: str) -> tuple[str, ...]:
    """Where to ask for a session token, in order.

    ``{console}/session-tokens`` first, byte-identical to avatarkit 0.1.7. A
    base that does not end in ``/v1/console`` may be an API root of a newer
    service, so ``{root}/v1/auth/session-token`` is tried next when the first
    answers 404.
    """
    base = console_endpoint_url.rstrip("/")
    legacy = base + "/session-tokens"
    if base.endswith(_CONSOLE_SUFFIX):
        return (legacy,)
    return (legacy, base + "/v1/auth/session-token")


def token_url(console_endpoint_url: str) -> str:
    """The first URL of :func:`token_urls` (what avatarkit 0.1.7 calls)."""
    return token_urls(console_endpoint_url)[0]


def expire_at_seconds(expire_at: datetime) -> int:
    """Unix seconds of ``expire_at``.

    A naive datetime is local time, as ``datetime.timestamp()`` (and so
    avatarkit 0.1.7) reads it; pass an aware one to be explicit.
    """
    return int(expire_at.timestamp())


def build_token_request(
    console_endpoint_url: str, api_key: str, expire_at: datetime
) -> tuple[str, dict[str, str], bytes]:
    """``(url, headers, body)`` of the session-token POST."""
    body = json.dumps({"expireAt": expire_at_seconds(expire_at)}).encode()
    headers = {"X-Api-Key": api_key, "Content-Type": "application/json"}
    return token_url(console_endpoint_url), headers, body


def parse_token_response(status: int, body: bytes) -> str:
    """The token from a token-call answer, or a :class:`SessionTokenError`.

    Reads ``sessionToken`` (legacy route) or ``session_token`` (successor).
    Never raises anything but :class:`SessionTokenError`: an answer larger
    than :data:`~avatarkit.errors.MAX_JSON_BODY`, nested deeper than
    :data:`~avatarkit.errors.MAX_JSON_DEPTH`, not UTF-8, not JSON or not a
    JSON object is ``protocolError`` (as 0.1.7 reports an undecodable answer).
    """
    phase = ErrorPhase.SESSION_TOKEN.value
    if status != 200:
        raise classify_http_rejection(status, body, phase=phase)
    data, problem = load_json_body(body)
    if problem is None and not isinstance(data, Mapping):
        problem = "not a JSON object"
    if problem is not None:
        raise SessionTokenError(
            AvatarSDKErrorCode.protocolError,
            f"session token response is {problem}",
            phase=phase,
            http_status=status,
            raw_body=bytes(body[:MAX_JSON_BODY]).decode("utf-8", "replace"),
        )
    assert isinstance(data, Mapping)
    if data.get("errors"):
        raise classify_http_rejection(status, body, phase=phase)
    token = data.get("sessionToken") or data.get("session_token")
    if not isinstance(token, str) or not token:
        raise SessionTokenError(
            AvatarSDKErrorCode.protocolError,
            "session token response has neither 'sessionToken' nor 'session_token'",
            phase=phase,
            http_status=status,
        )
    return token


def build_websocket_url(
    ingress_endpoint_url: str,
    *,
    avatar_id: str,
    app_id: str,
    token: str,
    use_query_auth: bool,
) -> tuple[str, dict[str, str]]:
    """``(url, headers)`` of the WebSocket upgrade.

    ``http``/``https`` become ``ws``/``wss``; the path gets ``/websocket``;
    an existing query is kept (an ``id`` in it is replaced, blank values are
    dropped) and ``id``, then ``appId`` and ``sessionKey`` for query auth,
    are appended. Header auth sends ``X-App-ID`` and ``X-Session-Key``.
    """
    parts = urlsplit(ingress_endpoint_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(
            f"ingress_endpoint_url has an unsupported scheme {parts.scheme!r}; "
            "use ws://, wss://, http:// or https://"
        )
    path = parts.path.rstrip("/") + "/websocket"
    replaced = ("id", "appId", "sessionKey") if use_query_auth else ("id",)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if v and k not in replaced
    ]
    query.append(("id", avatar_id))
    headers: dict[str, str] = {}
    if use_query_auth:
        query.extend((("appId", app_id), ("sessionKey", token)))
    else:
        headers = {"X-App-ID": app_id, "X-Session-Key": token}
    url = urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))
    return url, headers
