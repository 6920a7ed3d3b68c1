"""Typed events the session hands to callbacks and iterators."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .proto import avatarkit_wire_pb2 as _pb

__all__ = [
    "AnimationFrameEvent",
    "InterruptReason",
    "PlaybackSignal",
    "PlaybackState",
    "PlaybackStateEvent",
]


@dataclass(slots=True)
class PlaybackSignal:
    """One ``ServerResponseAnimation`` seen as a playback signal.

    With frames returned over the WebSocket, ``has_animation`` is true and
    ``end`` marks the request's last frame. With LiveKit/Agora egress the
    messages are empty progress signals and ``end`` means the room's playout
    of the request drained; it can arrive more than once per request. Treat
    it as read-only (not frozen, to stay cheap on the per-frame path).
    """

    req_id: str
    end: bool
    connection_id: str = ""
    avatar_id: str = ""
    has_animation: bool = False


class PlaybackState(str, Enum):
    """Playback state the server reports in ``ServerPlaybackState``."""

    UNSPECIFIED = "unspecified"
    PLAYING = "playing"
    PAUSED = "paused"
    ENDED = "ended"
    INTERRUPTED = "interrupted"


class InterruptReason(str, Enum):
    """Why a request was interrupted (``PlaybackStateEvent.reason``)."""

    EXPLICIT = "explicit"
    PREEMPTED = "preempted"
    PAUSE_TIMEOUT = "pause_timeout"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return self.value.__format__(spec)


@dataclass(frozen=True, slots=True)
class PlaybackStateEvent:
    """A ``ServerPlaybackState``: the state of a request's output.

    Sent in answer to pause/resume and unprompted when a request starts
    playing, ends or is interrupted. ``played_ms`` is the position in the
    request's content and does not advance while paused; ``reason`` is set for
    ``INTERRUPTED``: an :class:`InterruptReason` (``explicit``, ``preempted``
    or ``pause_timeout``), or the service's text for a reason we do not know.
    """

    req_id: str
    state: PlaybackState
    played_ms: int = 0
    reason: InterruptReason | str = ""
    connection_id: str = ""


class AnimationFrameEvent:
    """One animation message: its request, ``end``, payload and the message itself.

    ``payload`` is the opaque animation bytes (the local service's payload
    decodes with :func:`avatarkit.devserver.decode_animation`); ``message``
    is the whole serialized envelope, the same bytes ``transport_frames``
    gets. Treat it as read-only; it compares equal field by field.

    The events of ``session.frames()`` and of a request's iterator are made
    when read from the received message and its ``end`` flag only
    (:func:`avatarkit._framebuffer.frame_event`): ``req_id``,
    ``payload``, ``connection_id`` and ``avatar_id`` are parsed out of
    ``message`` the first time one of them is read (once, for all four). A
    reader that needs only ``message`` and ``end`` (a renderer handed the
    envelope, a relay) pays for no second parse, and a backlog of unread frames
    holds no parsed objects.
    """

    # Unset slots mean "not parsed yet" (see _parse); message and end are always set.
    __slots__ = ("_avatar_id", "_connection_id", "_payload", "_req_id", "end", "message")
    __match_args__ = ("req_id", "end", "payload", "message", "connection_id", "avatar_id")
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value (as the dataclass was)

    end: bool
    message: bytes

    def __init__(
        self,
        req_id: str,
        end: bool,
        payload: bytes,
        message: bytes,
        connection_id: str = "",
        avatar_id: str = "",
    ) -> None:
        self._req_id = req_id
        self.end = end
        self._payload = payload
        self.message = message
        self._connection_id = connection_id
        self._avatar_id = avatar_id

    def _parse(self) -> None:
        """Fill the four parsed fields from ``message`` (a checked animation message)."""
        anim = _parse_message(self.message).server_response_animation
        self._req_id = anim.req_id
        self._payload = anim.animation
        self._connection_id = anim.connection_id
        self._avatar_id = anim.avatar_id

    @property
    def req_id(self) -> str:
        """The request this frame belongs to."""
        try:
            return self._req_id
        except AttributeError:
            self._parse()
            return self._req_id

    @req_id.setter
    def req_id(self, value: str) -> None:
        self._fill()
        self._req_id = value

    @property
    def payload(self) -> bytes:
        """The animation bytes (opaque; the local service's decode with ``decode_animation``)."""
        try:
            return self._payload
        except AttributeError:
            self._parse()
            return self._payload

    @payload.setter
    def payload(self, value: bytes) -> None:
        self._fill()
        self._payload = value

    @property
    def connection_id(self) -> str:
        """The connection the frame came on (as the service wrote it in the message)."""
        try:
            return self._connection_id
        except AttributeError:
            self._parse()
            return self._connection_id

    @connection_id.setter
    def connection_id(self, value: str) -> None:
        self._fill()
        self._connection_id = value

    @property
    def avatar_id(self) -> str:
        """The avatar (as the service wrote it in the message; often empty)."""
        try:
            return self._avatar_id
        except AttributeError:
            self._parse()
            return self._avatar_id

    @avatar_id.setter
    def avatar_id(self, value: str) -> None:
        self._fill()
        self._avatar_id = value

    def _fill(self) -> None:
        """Parse now if not yet: a field set by hand must not be overwritten later."""
        try:
            self._req_id  # noqa: B018  (is it set?)
        except AttributeError:
            self._parse()

    def _fields(self) -> tuple[str, bool, bytes, bytes, str, str]:
        return (
            self.req_id,
            self.end,
            self.payload,
            self.message,
            self.connection_id,
            self.avatar_id,
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, AnimationFrameEvent)
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        return (
            f"AnimationFrameEvent(req_id={self.req_id!r}, end={self.end!r}, "
            f"payload={self.payload!r}, message={self.message!r}, "
            f"connection_id={self.connection_id!r}, avatar_id={self.avatar_id!r})"
        )


_parse_message = _pb.Message.FromString
