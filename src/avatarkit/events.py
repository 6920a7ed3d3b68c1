"""Typed events the session hands to callbacks and iterators."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

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


@dataclass(slots=True)
class AnimationFrameEvent:
    """One animation message, parsed once.

    ``payload`` is the opaque animation bytes (the local service's payload
    decodes with :func:`avatarkit.devserver.decode_animation`); ``message``
    is the whole serialized envelope, the same bytes ``transport_frames``
    gets. Treat it as read-only (it is not frozen only because a frozen
    dataclass costs about a microsecond more to build, on every frame).
    """

    req_id: str
    end: bool
    payload: bytes
    message: bytes
    connection_id: str = ""
    avatar_id: str = ""
