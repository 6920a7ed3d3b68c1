"""Inspectable state of the local service's sessions (read it, don't write it).

Every WebSocket connection of a :class:`~avatarkit.devserver.DevServer` has one
:class:`SessionState`, kept up to date while it runs and kept (frozen in its
last state) after it closes, so a test can check what the service saw and did:
the configuration it accepted, every request with its audio and frames, the
playback state, and, in egress mode, what would have been published to the
LiveKit room or Agora channel.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from ..events import PlaybackState

__all__ = ["EgressState", "RequestState", "SessionState"]

MAX_PUBLISHED_KEPT = 3000
"""Egress frames remembered per session (two minutes at 25 frames per second)."""

MAX_REQUESTS_KEPT = 256
"""Requests remembered per session (the oldest are forgotten beyond this)."""
MAX_ERRORS_KEPT = 256
"""``ServerError`` messages remembered per session."""


@dataclass
class RequestState:
    """One request (one ``req_id``) of a session.

    ``frames_computed`` counts frames analysed so far: analysis runs just
    ahead of the output, so it trails ``audio_samples`` while a request plays.
    ``state`` is the playback state last reported for it
    (``UNSPECIFIED`` until its output starts); ``reason`` is set when it was
    interrupted (``explicit``, ``preempted``, ``pause_timeout``, or ``error``
    when its audio could not be decoded, see ``error``).
    """

    req_id: str
    sample_rate: int
    state: PlaybackState = PlaybackState.UNSPECIFIED
    reason: str = ""
    audio_messages: int = 0
    audio_bytes: int = 0
    audio_samples: int = 0
    end_received: bool = False
    frames_computed: int = 0
    frames_sent: int = 0
    end_sent: bool = False
    paused: bool = False
    error: str | None = None

    @property
    def audio_ms(self) -> int:
        """Duration of the audio received so far, in milliseconds."""
        return self.audio_samples * 1000 // self.sample_rate

    @property
    def played_ms(self) -> int:
        """Position of the output in the request's content (40 ms per frame sent)."""
        if self.end_sent:
            return self.audio_ms
        return min(self.frames_sent * 40, self.audio_ms)

    @property
    def finished(self) -> bool:
        """Ended (last frame sent) or interrupted: no more output will come."""
        return self.state in (PlaybackState.ENDED, PlaybackState.INTERRUPTED)


@dataclass
class EgressState:
    """What a session in egress mode would publish to its room or channel.

    There is no LiveKit or Agora server here: the local service validates the
    egress configuration, paces the output exactly as it would publish it, and
    records it here instead; the WebSocket carries only empty progress signals
    and each request's ``end``.
    """

    kind: str  # "livekit" or "agora"
    url: str = ""
    room_name: str = ""  # LiveKit room
    channel_name: str = ""  # Agora channel
    publisher_id: str = ""
    uid: int = 0
    extra_attributes: dict[str, str] = field(default_factory=dict)
    idle_timeout: int = 0
    token_claims: dict[str, object] | None = None  # decoded LiveKit JWT claims, if any
    api_token: str = field(default="", repr=False)
    """The LiveKit ``api_token`` as received, for tests that verify its signature with
    their LiveKit secret (never in ``repr()`` or the sessions API)."""
    frames_published: int = 0
    audio_ms_published: int = 0
    requests_published: int = 0
    progress_signals_sent: int = 0
    last_frame: bytes = b""  # the last animation payload that would have been published
    published: deque[tuple[str, bytes]] = field(
        default_factory=lambda: deque(maxlen=MAX_PUBLISHED_KEPT)
    )
    """``(req_id, animation payload)`` of the frames that would have been
    published, oldest first (the most recent ``MAX_PUBLISHED_KEPT``)."""

    @property
    def target(self) -> str:
        """The room (LiveKit) or channel (Agora) name."""
        return self.room_name if self.kind == "livekit" else self.channel_name


@dataclass
class SessionState:
    """One WebSocket connection to the ingress, from upgrade to close.

    ``connection_id`` is empty until the session is confirmed. ``requests``
    holds the most recent requests by ``req_id`` (in arrival order).
    """

    app_id: str
    avatar_id: str
    auth_style: str  # "header" or "query"
    connection_id: str = ""
    configured: bool = False
    audio_format: str = ""  # "pcm_s16le" or "ogg_opus"
    sample_rate: int = 0
    bitrate: int = 0
    egress: EgressState | None = None
    requests: OrderedDict[str, RequestState] = field(default_factory=OrderedDict)
    request_count: int = 0  # every request of the session (``requests`` keeps the latest)
    messages_received: int = 0
    frames_sent: int = 0
    messages_sent: int = 0
    errors_sent: deque[tuple[int, str]] = field(
        default_factory=lambda: deque(maxlen=MAX_ERRORS_KEPT)
    )  # (code, message) of the ServerErrors sent, most recent last
    opened_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    close_code: int | None = None
    close_reason: str = ""
    aborted: bool = False
    viewer_tap: Any = field(default=None, repr=False, compare=False)
    """Set by the live viewer while a page watches this session
    (:class:`avatarkit.devserver._viewer.SessionTap`), else ``None``."""

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def last_request(self) -> RequestState | None:
        """The most recent request, if any."""
        if not self.requests:
            return None
        return self.requests[next(reversed(self.requests))]

    @property
    def playback_state(self) -> PlaybackState:
        """Playback state of the most recent request (``UNSPECIFIED`` if none)."""
        last = self.last_request
        return last.state if last is not None else PlaybackState.UNSPECIFIED

    def add_request(self, request: RequestState) -> None:
        self.request_count += 1
        self.requests[request.req_id] = request
        while len(self.requests) > MAX_REQUESTS_KEPT:
            self.requests.popitem(last=False)
