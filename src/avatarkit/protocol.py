"""The wire protocol as plain code: bytes in, events out; commands in, bytes out.

No sockets and no asyncio live here, so the rules of PROTOCOL.md can be tested
with byte strings alone. Two users drive it from opposite sides:

* :class:`ClientProtocol` (used by :class:`avatarkit.AvatarSession`): the
  handshake state, the request-id lifecycle and what each server message
  means;
* :class:`ServerProtocol` (used by the local avatar service, defined in
  :mod:`avatarkit._server_protocol`): what a client may send in which state,
  and the texts the hosted service answers with.

The message encoders (:mod:`avatarkit._encode`) and the token/URL helpers
(:mod:`avatarkit._endpoints`) live in private modules and are re-exported
here, so this module stays the one import for the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from ._encode import (
    _STATE_FROM_WIRE,
    encode_animation,
    encode_audio_input,
    encode_configure,
    encode_confirm,
    encode_interrupt,
    encode_pause,
    encode_playback_state,
    encode_resume,
    encode_server_error,
    encode_varint,
)
from ._endpoints import (
    build_token_request,
    build_websocket_url,
    expire_at_seconds,
    parse_token_response,
    token_url,
    token_urls,
)
from ._redact import redact_url
from ._server_protocol import ClientAudio, ClientControl, ProtocolViolation, ServerProtocol
from .errors import (
    AvatarSDKError,
    AvatarSDKErrorCode,
    ErrorPhase,
    classify_server_error,
)
from .events import InterruptReason, PlaybackState, PlaybackStateEvent
from .ids import generate_log_id
from .proto import avatarkit_wire_pb2 as pb

if TYPE_CHECKING:
    from .config import SessionConfig

__all__ = [
    "CAPABILITY_PLAYBACK_CONTROL",
    "CAPABILITY_PLAYBACK_STATE",
    "AnimationReceived",
    "ClientAudio",
    "ClientControl",
    "ClientProtocol",
    "ClientState",
    "MessageType",
    "PlaybackStateReceived",
    "ProtocolStateError",
    "ProtocolViolation",
    "ServerErrorReceived",
    "ServerProtocol",
    "SessionConfirmed",
    "build_token_request",
    "build_websocket_url",
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
    "expire_at_seconds",
    "parse_message",
    "parse_token_response",
    "redact_url",
    "token_url",
    "token_urls",
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

_REASONS: dict[str, InterruptReason] = {reason.value: reason for reason in InterruptReason}

#: Parse one serialized ``Message`` (raises ``DecodeError``).
parse_message = pb.Message.FromString


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
            phase=self.phase,
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
                    phase=ErrorPhase.WEBSOCKET_HANDSHAKE,
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
                phase=self.phase,
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
                    reason=_REASONS.get(ps.reason, ps.reason),
                    connection_id=ps.connection_id,
                )
            )
        if self.state is ClientState.AWAITING_CONFIRM:
            raise AvatarSDKError(
                AvatarSDKErrorCode.protocolError,
                f"expected ServerConfirmSession during the handshake, got message type {kind}",
                phase=ErrorPhase.WEBSOCKET_HANDSHAKE,
            )
        return None

    def _on_confirm(self, confirm: pb.ServerConfirmSession) -> SessionConfirmed | None:
        if self.state is not ClientState.AWAITING_CONFIRM:
            return None  # a repeated confirm changes nothing
        if not confirm.connection_id:
            raise AvatarSDKError(
                AvatarSDKErrorCode.protocolError,
                "server confirmed the session without a connection id",
                phase=ErrorPhase.WEBSOCKET_HANDSHAKE,
            )
        self.state = ClientState.OPEN
        self.streaming = True
        self.connection_id = confirm.connection_id
        self.capabilities = tuple(confirm.capabilities)
        return SessionConfirmed(self.connection_id, self.capabilities)

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
                phase=ErrorPhase.WEBSOCKET_SEND,
                connection_id=self.connection_id,
            )
        req_id = self._require_request(action)
        data: bytes = encode(req_id)
        return req_id, data

    def _require_request(self, action: str) -> str:
        if self._last_req_id is None:
            raise ValueError(f"{action}(): no request yet; send audio first")
        return self._last_req_id
