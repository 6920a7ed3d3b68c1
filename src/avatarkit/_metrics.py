"""The metrics hook: typed events about a session for any metrics system.

Set ``on_metrics`` (a :class:`~avatarkit.SessionConfig` field, a builder
method, a keyword of ``new_avatar_session`` and of ``SessionPool``) to a
function (or coroutine function) taking one event; wire it to Prometheus,
OpenTelemetry, StatsD or a log line; the SDK depends on none of them. Events,
all frozen dataclasses exported from ``avatarkit``:

* :class:`SessionOpened`: ``start()`` succeeded; set-up time split into the
  token call, the WebSocket upgrade and the session handshake.
* :class:`RequestDone`: a request ended (its end frame arrived, it was
  interrupted, or the session ended first), with its summary. Built from the
  session's own bookkeeping, so it covers ``send_audio()`` requests.
* :class:`SessionError`: ``init()``/``start()`` failed, or an error went to
  ``on_error`` (a runtime ``ServerError``, an unexpected close); errors a
  call raises after the session opened are not repeated here.
* :class:`SessionClosed`: the session ended (once), with the close code and
  how long it was open.

The hook runs like the other callbacks: in order, on the event loop; one that
raises is logged with its traceback (logger ``avatarkit.session``) and the
session goes on. Times are seconds from the event loop's monotonic clock.
Without ``on_metrics`` nothing here runs (no cost per frame).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, Union, cast

from ._logctx import scope
from .errors import AvatarSDKError, AvatarSDKErrorCode, ErrorPhase

if TYPE_CHECKING:
    from .session import AvatarSession

__all__ = [
    "MetricsEvent",
    "MetricsRecorder",
    "RequestDone",
    "SessionClosed",
    "SessionError",
    "SessionOpened",
]


@dataclass(frozen=True, slots=True)
class SessionOpened:
    """``start()`` returned: the session is open.

    ``token_seconds`` is ``None`` when the token came from
    ``use_session_token()`` (no token call).
    """

    connection_id: str
    token_seconds: float | None
    websocket_seconds: float
    handshake_seconds: float

    @property
    def total_seconds(self) -> float:
        """Token call, WebSocket upgrade and handshake together."""
        return (self.token_seconds or 0.0) + self.websocket_seconds + self.handshake_seconds


@dataclass(frozen=True, slots=True)
class RequestDone:
    """A request ended: the summary of one request id.

    ``audio_seconds`` is the PCM sent (``None`` for Ogg Opus passed through,
    whose length the SDK does not decode); ``time_to_first_frame`` runs from
    its first audio sent to its first animation frame, ``end_latency`` from
    its last audio (``end=True``) to its end frame. ``interrupted`` is true
    when it was interrupted or the session ended before its end frame (then
    ``end_latency`` is ``None``).
    """

    connection_id: str | None
    req_id: str
    frames: int
    audio_seconds: float | None
    time_to_first_frame: float | None
    end_latency: float | None
    interrupted: bool


@dataclass(frozen=True, slots=True)
class SessionError:
    """An error of the session: the :class:`~avatarkit.AvatarSDKError`'s code, phase, retryable."""

    connection_id: str | None
    code: AvatarSDKErrorCode
    phase: ErrorPhase | str | None
    retryable: bool
    req_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session ended (reported once).

    ``close_code`` is the WebSocket close code (``None`` when the connection
    dropped without a close frame); ``duration`` the seconds since it opened.
    """

    connection_id: str | None
    close_code: int | None
    duration: float


MetricsEvent = Union[SessionOpened, RequestDone, SessionError, SessionClosed]  # noqa: UP007


class _Request:
    __slots__ = ("audio_bytes", "end_sent", "first_frame", "first_sent", "frames")

    def __init__(self, now: float) -> None:
        self.first_sent = now
        self.end_sent: float | None = None
        self.first_frame: float | None = None
        self.frames = 0
        self.audio_bytes = 0


class MetricsRecorder:
    """One session's bookkeeping for ``on_metrics`` (made only when it is set)."""

    __slots__ = (
        "_bytes_per_second",
        "_connected_at",
        "_opened_at",
        "_requests",
        "_session",
        "_started_at",
        "_token_seconds",
        "close_code",
    )

    def __init__(self, session: AvatarSession) -> None:
        cfg = session.config
        self._session = session
        pcm = cfg.audio_format.value == "pcm_s16le" or cfg.ogg_opus_encoder is not None
        self._bytes_per_second = 2.0 * cfg.sample_rate if pcm else None
        self._token_seconds: float | None = None
        self._started_at: float | None = None
        self._connected_at: float | None = None
        self._opened_at: float | None = None
        self._requests: dict[str, _Request] = {}
        self.close_code: int | None = None

    def _emit(self, event: MetricsEvent) -> None:
        hook = self._session.config.on_metrics
        if hook is not None:
            self._session._call(hook, "on_metrics", event)

    # -- set-up ------------------------------------------------------------------

    def closing(self, close_code: int | None, by_us: bool) -> None:
        """The connection ended with ``close_code`` (``None``: no close frame).

        When we closed it, the close was ours (1000) whatever the transport
        saw of the peer's answer.
        """
        self.close_code = close_code if close_code is not None or not by_us else 1000

    def token_done(self, started: float) -> None:
        self._token_seconds = _now() - started

    def starting(self) -> None:
        self._started_at = _now()

    def connected(self) -> None:
        """The WebSocket upgrade completed (the handshake begins)."""
        self._connected_at = _now()

    def opened(self, connection_id: str) -> None:
        now = self._opened_at = _now()
        started = self._started_at if self._started_at is not None else now
        connected = self._connected_at if self._connected_at is not None else now
        self._emit(
            SessionOpened(connection_id, self._token_seconds, connected - started, now - connected)
        )

    # -- requests ------------------------------------------------------------------

    def audio_sent(self, req_id: str, nbytes: int, end: bool) -> None:
        """Called as a request's audio message is queued (before any frame can answer it)."""
        now = _now()
        request = self._requests.get(req_id)
        if request is None:
            request = self._requests[req_id] = _Request(now)
        request.audio_bytes += nbytes
        if end:
            request.end_sent = now

    def frame(self, req_id: str, end: bool) -> None:
        request = self._requests.get(req_id)
        if request is None:  # interrupted or done already, or not ours
            return
        request.frames += 1
        if request.first_frame is None:
            request.first_frame = _now()
        if end:
            self._done(req_id, interrupted=False)

    def interrupted(self, req_id: str) -> None:
        if req_id in self._requests:
            self._done(req_id, interrupted=True)

    def _done(self, req_id: str, *, interrupted: bool) -> None:
        request = self._requests.pop(req_id)
        now = _now()
        rate = self._bytes_per_second
        self._emit(
            RequestDone(
                connection_id=self._session.connection_id,
                req_id=req_id,
                frames=request.frames,
                audio_seconds=request.audio_bytes / rate if rate else None,
                time_to_first_frame=(
                    request.first_frame - request.first_sent
                    if request.first_frame is not None
                    else None
                ),
                end_latency=(
                    now - request.end_sent
                    if request.end_sent is not None and not interrupted
                    else None
                ),
                interrupted=interrupted,
            )
        )

    # -- errors and the end ---------------------------------------------------------

    def error(self, err: BaseException) -> None:
        if isinstance(err, AvatarSDKError):
            self._emit(
                SessionError(
                    err.connection_id or self._session.connection_id,
                    err.code,
                    err.phase,
                    err.retryable,
                    err.req_id,
                )
            )

    def closed(self) -> None:
        for req_id in list(self._requests):  # cut off by the end of the session
            self._done(req_id, interrupted=True)
        opened = self._opened_at
        duration = _now() - opened if opened is not None else 0.0
        self._emit(SessionClosed(self._session.connection_id, self.close_code, duration))

    # -- wrapping the session's own callbacks -----------------------------------------

    def wrap_on_error(
        self, user: Callable[[Exception], Any] | None, log: Callable[..., None]
    ) -> Callable[[Exception], Any]:
        """``on_error`` that reports to the hook first (and logs when the user has none)."""

        def on_error(err: Exception) -> Any:
            self.error(err)
            if user is not None:
                return user(err)
            log("avatarkit: %s", err)
            return None

        return on_error

    def wrap_on_close(self, user: Callable[[], Any] | None) -> Callable[[], Any]:
        """``on_close`` that reports :class:`SessionClosed` first."""

        def on_close() -> Any:
            self.closed()
            return user() if user is not None else None

        return on_close


def _now() -> float:
    return asyncio.get_running_loop().time()


def for_session(session: AvatarSession) -> MetricsRecorder | None:
    """The recorder for ``session``, or ``None`` when ``on_metrics`` is not set."""
    return MetricsRecorder(session) if session.config.on_metrics is not None else None


# -- decorators for the session's calls (cheap when on_metrics is not set) ---------------

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def observe_init(func: _F) -> _F:
    """Time the token call; report its failure (in the session's log scope)."""

    @functools.wraps(func)
    async def init(self: Any, *args: Any, **kwargs: Any) -> Any:
        with scope(self):
            return await _init(self, *args, **kwargs)

    async def _init(self: Any, *args: Any, **kwargs: Any) -> Any:
        metrics: MetricsRecorder | None = self._metrics
        if metrics is None:
            return await func(self, *args, **kwargs)
        started = _now()
        try:
            result = await func(self, *args, **kwargs)
        except AvatarSDKError as err:
            metrics.error(err)
            raise
        metrics.token_done(started)
        return result

    return cast("_F", init)


def observe_start(func: _F) -> _F:
    """Time ``start()``; report :class:`SessionOpened` or the failure (in the log scope)."""

    @functools.wraps(func)
    async def start(self: Any, *args: Any, **kwargs: Any) -> Any:
        with scope(self):  # what start() creates (tasks, socket callbacks) inherits it
            return await _start(self, *args, **kwargs)

    async def _start(self: Any, *args: Any, **kwargs: Any) -> Any:
        metrics: MetricsRecorder | None = self._metrics
        if metrics is None:
            return await func(self, *args, **kwargs)
        metrics.starting()
        try:
            connection_id = await func(self, *args, **kwargs)
        except AvatarSDKError as err:
            metrics.error(err)
            raise
        metrics.opened(connection_id)
        return connection_id

    return cast("_F", start)


def observe_interrupt(func: _F) -> _F:
    """Report the interrupted request as done (interrupted), in the session's log scope."""

    @functools.wraps(func)
    async def interrupt(self: Any, *args: Any, **kwargs: Any) -> Any:
        with scope(self):
            req_id = await func(self, *args, **kwargs)
        metrics: MetricsRecorder | None = self._metrics
        if metrics is not None:
            metrics.interrupted(req_id)
        return req_id

    return cast("_F", interrupt)
