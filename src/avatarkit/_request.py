"""``session.stream()``'s request handle: :class:`AvatarRequest` and its feeder.

One request streams at a time per session. The handle owns one feeder task
(``avatarkit-stream``) that reads the source (:mod:`avatarkit._audio_source`),
paces it (:mod:`avatarkit._pacing`) and sends it; once the end is sent it arms
a timer that bounds the wait for the end frame, and returns.
The session routes the request's frames, its ``ServerError`` and the end of
the connection to the handle (``_on_animation``, ``_on_server_error``,
``_abort``). Whatever happens, the feeder ends and the handle resolves within
a bounded time: see the table in docs/stream-design.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._framebuffer import FrameBuffer, Received, frame_event
from ._logctx import scope
from ._pacing import Pacer
from ._request_end import _CONTROL_TIMEOUT, RequestEnd, _uncancel, _until_done, logger
from ._request_types import (
    DEFAULT_END_TIMEOUT,
    RequestInProgressError,
    RequestSummary,
    RequestTimeoutError,
)
from .errors import AvatarSDKError, AvatarSDKErrorCode, ErrorPhase
from .events import AnimationFrameEvent

if TYPE_CHECKING:
    from ._audio_source import AudioSource
    from ._feed import AudioFeed
    from .session import AvatarSession

__all__ = [
    "DEFAULT_END_TIMEOUT",
    "AvatarRequest",
    "RequestInProgressError",
    "RequestSummary",
    "RequestTimeoutError",
]


class AvatarRequest(RequestEnd):
    """One streamed request, made by :meth:`AvatarSession.stream`.

    ``async for frame in req`` yields its frames in order and stops after
    the end frame (frames are kept from the first until read, so a late
    iterator misses none; iterate once). ``await req.done()`` returns a
    :class:`RequestSummary` or raises the request's error; it always
    resolves within a bounded time. Cancelling a task awaiting ``done()``
    does not cancel the request.
    """

    def __init__(
        self,
        session: AvatarSession,
        source: AudioSource,
        pacer: Pacer,
        end_timeout: float,
        raw_ogg: bool,
        lazy: bool = False,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._session = session
        self._source = source
        self._pacer = pacer
        self._end_timeout = end_timeout
        self._raw_ogg = raw_ogg
        self._frames: FrameBuffer[Received] = FrameBuffer()  # messages, parsed when read
        self._loop = loop
        self._result: asyncio.Future[RequestSummary] = loop.create_future()
        self._started: asyncio.Future[str] = loop.create_future()
        self.req_id: str | None = None
        self._frame_count = 0
        self._first_sent: float | None = None
        self._last_sent: float | None = None
        self._first_frame: float | None = None
        self._last_frame: float | None = None
        self._ended_at: float | None = None
        self._interrupting = False
        self._running = False  # the feeder's first step ran (a cancel can be caught)
        self._stop_pending = False  # stop asked before that
        self._fed = False  # the end was sent: only the end frame is awaited
        self._end_timer: asyncio.TimerHandle | None = None  # the end bound, once fed
        # _task is what close() and done() wait for: the feeder, the idle stand-in,
        # or a task the end phase started (_interrupt_fed, _time_out); _feeder is
        # the feeder alone (the one task a stop cancels). Lazy: see _start_feeder.
        self._task: asyncio.Future[None]
        self._feeder: asyncio.Task[None] | None = None
        self._idle: asyncio.Future[None] | None = None
        # The AudioFeed this request reads, if any (AudioFeed._attach). The feed
        # points back here while the request runs; _finish() cuts that link so
        # that a finished request is freed by reference counting, not left to
        # the cyclic garbage collector (whose pauses grow with its garbage).
        self._audio_feed: AudioFeed | None = None
        if lazy:
            self._task = self._idle = loop.create_future()
        else:
            with scope(session):  # the feeder's records (its own, sends, the source's) carry ids
                self._task = self._feeder = loop.create_task(self._run(), name="avatarkit-stream")

    def __repr__(self) -> str:
        state = "done" if self._result.done() else "streaming"
        return f"<AvatarRequest req_id={self.req_id!r} frames={self._frame_count} {state}>"

    # -- public --------------------------------------------------------------

    @property
    def audio_sent(self) -> float:
        """Seconds of audio sent so far (for progress reports)."""
        return self._pacer.audio_s

    async def started(self) -> str:
        """The request id, once its first message is under way (raises its error if none)."""
        # _task is looked at again after each wake-up: an idle request's stand-in
        # wakes this when a feeder replaces it.
        while not self._started.done() and not self._task.done():
            waits: set[asyncio.Future[Any]] = {self._started, self._task}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if self._started.done() and not self._started.cancelled():
            return self._started.result()  # or raises the request's error
        await self.done()  # raises the request's error
        raise AvatarSDKError(  # resolved without sending anything (an empty source)
            AvatarSDKErrorCode.invalidRequest,
            "the request ended before any audio was sent (the source was empty)",
            phase=ErrorPhase.WEBSOCKET_SEND,
        )

    async def done(self) -> RequestSummary:
        """Wait until the request resolves; its summary, or raise its error.

        Waits for the result (an end frame resolves it while the feeder still
        winds down), then briefly for the feeder. Only the caller's own
        cancellation raises ``CancelledError`` here, never the feeder's.
        """
        while not self._result.done():
            if not self._task.done():
                waits: set[asyncio.Future[Any]] = {self._result, self._task}
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            elif self._end_timer is not None:  # fed, the feeder gone: the timer bounds this
                await _until_done(self._loop, self._result)
            else:
                break  # the feeder ended without resolving it: _settle() fails it
        await self._wind_down()
        return self._result.result()

    async def interrupt(self) -> None:
        """Interrupt this request (a no-op once it resolved); it resolves as interrupted."""
        if self._result.done() and self._task.done():
            return
        if self._task.done():
            # The end was sent and only the end timer runs: interrupt from a task of
            # its own, kept as the feeder is, so that close() and done() wait for it.
            self._interrupting = True
            self._cancel_end_timer()
            with scope(self._session):
                self._task = self._loop.create_task(self._interrupt_fed(), name="avatarkit-stream")
        elif not self._result.done():
            self._interrupting = True
            self._stop()
        await self._wind_down()

    def __aiter__(self) -> AsyncIterator[AnimationFrameEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[AnimationFrameEvent]:
        buffer = self._frames
        frames = buffer.items
        while True:
            while frames:
                frame = frame_event(frames.popleft())
                yield frame
                if frame.end:
                    return
            if buffer.closed:
                break
            await buffer.sleeper(self._loop)
        await self.done()  # raises the request's error, or returns (interrupted)

    # -- from the session ------------------------------------------------------

    async def _stopped(self) -> None:
        """Wait for the feeder task to end (``close()``: no task left behind)."""
        if self._task is not asyncio.current_task():
            await asyncio.wait({self._task})
        self._settle()

    async def _wind_down(self) -> None:
        """Wait for the feeder, bounded by its own bounded steps (interrupt, ``aclose``).

        ``asyncio.wait`` never re-raises the feeder's cancellation to the caller.
        """
        if not self._task.done() and self._task is not asyncio.current_task():
            if self._fed and self._result.done():
                # The feeder sent the end and its source closed itself: what is left
                # is returning, or an interrupt under its own 2 s bound. No timer.
                await asyncio.wait({self._task})
            else:
                await asyncio.wait({self._task}, timeout=3 * _CONTROL_TIMEOUT)
        if self._task.done():
            self._settle()

    def _settle(self) -> None:
        """The feeder ended: make sure the request resolved (even if it ended cancelled).

        Not while the end timer runs: the feeder returned after the end was sent.
        """
        if not self._result.done() and self._end_timer is None:
            self._fail(self._session._close_error_for_send("stream", self.req_id))

    @property
    def _resolved(self) -> bool:
        return self._result.done()

    def _on_animation(self, anim: Any, data: bytes) -> None:
        """An animation message (``ServerResponseAnimation``); kept when it is ours.

        The per-frame path of ``async for frame in req``: each field is read
        once, the frame is appended and the iterator woken only when it sleeps.
        """
        req_id = anim.req_id
        if req_id != self.req_id:
            return
        end = anim.end
        now = self._loop.time()
        self._frame_count += 1
        if self._first_frame is None:
            self._first_frame = now
        self._last_frame = now
        buffer = self._frames
        # The event is made when read (see _framebuffer); the end frame as a 1-tuple.
        buffer.items.append((data,) if end else data)
        if buffer.waiters:
            buffer.wake()
        if end:
            self._ended_at = now
            self._resolve()  # wakes a feeder waiting for the end frame
            if not self._fed:
                self._stop()  # the service ended it early: stop feeding a finished request

    def _on_server_error(self, error: AvatarSDKError) -> None:
        """A run-time ``ServerError``: fails the request when it carries its req_id."""
        if not error.req_id or error.req_id != self.req_id:
            return
        self._fail(error)
        self._stop()

    def _on_interrupted(self) -> None:
        """``session.interrupt()`` was sent for this request."""
        self._resolve(interrupted=True)
        self._stop()

    def _abort(self, error: AvatarSDKError) -> None:
        """The session closed or the connection ended: fail and stop the feeder."""
        err = copy.copy(error)
        if err.req_id is None:
            err.req_id = self.req_id
        self._fail(err)
        self._stop()

    def _stop(self) -> None:
        """Stop the feeder wherever it waits (a task not yet started stops on its first step)."""
        if self._idle is not None:
            with scope(self._session):  # called from the user's code too: records carry ids
                self._stop_idle()
            return
        task = self._task
        if task is asyncio.current_task() or task.done():
            return
        if task is not self._feeder:
            # An interrupt or time-out task of the end phase: it resolves the
            # request itself, within its bound. Cut short only once the request
            # is resolved anyway (close() fails it first); cancelled before its
            # first step it would never send or resolve anything.
            if self._result.done():
                task.cancel()
            return
        if self._running:
            task.cancel()
        else:
            self._stop_pending = True

    def _stop_idle(self) -> None:
        """Stop a request that has no feeder: what a stopped feeder does, at once.

        The interrupt that closes the request on the wire (when one is due)
        goes out now if the socket takes it; then the request resolves and the
        feed refuses more audio, with no task. Only an interrupt that has to
        wait for the socket starts a feeder, which sends it at its first step.
        """
        if self._interrupt_due() and not self._interrupt_now():
            self._stop_pending = True
            self._start_feeder()
            return
        self._leave_idle()
        self._resolve_stopped()
        self._source.close_unread()
        if not self._started.done():
            self._started.cancel()

    def _interrupt_due(self) -> bool:
        """A stopped request must be closed on the wire: ``interrupt()`` asked for
        it, or the request is still open there (stopped mid-stream by a ServerError)."""
        return (not self._result.done() and self._interrupting) or (
            self._session._protocol.current_req_id == self.req_id is not None
        )

    def _resolve_stopped(self) -> None:
        """After a stop (and its interrupt): interrupted if asked, else failed with
        the close error (cancelled from outside, e.g. at loop shutdown)."""
        if not self._result.done() and self._interrupting:
            self._resolve(interrupted=True)
        if not self._result.done():
            self._fail(self._session._close_error_for_send("stream", self.req_id))

    # -- resolution --------------------------------------------------------------

    def _resolve(self, *, interrupted: bool = False) -> None:
        if self._result.done():
            return
        audio = self._pacer.audio_s
        rtf = None
        if not interrupted and audio > 0 and self._first_sent is not None:
            rtf = ((self._ended_at or self._loop.time()) - self._first_sent) / audio
        ttff = None
        if self._first_frame is not None and self._first_sent is not None:
            ttff = self._first_frame - self._first_sent
        self._result.set_result(
            RequestSummary(self.req_id, self._frame_count, audio, ttff, rtf, interrupted)
        )
        self._finish()

    def _fail(self, error: BaseException) -> None:
        if self._result.done():
            return
        self._result.set_exception(error)
        self._result.exception()  # retrieved: done() may never be awaited
        if not self._started.done():
            self._started.set_exception(error)
            self._started.exception()
        self._finish()

    def _finish(self) -> None:
        self._cancel_end_timer()
        self._frames.close()
        self._session._release_request(self)
        feed, self._audio_feed = self._audio_feed, None
        if feed is not None:
            feed._detach()

    # -- the feeder ----------------------------------------------------------------

    async def _run(self) -> None:
        self._running = True
        try:
            if self._stop_pending:
                raise asyncio.CancelledError
            await self._feed()
            self._arm_end_timer()
        except asyncio.CancelledError:
            if not self._stop_pending:
                _uncancel()
            if self._interrupt_due():
                await self._send_interrupt()
            self._resolve_stopped()
        except AvatarSDKError as err:  # a send failed: the connection is gone
            self._fail(err)
        except Exception as exc:  # the source raised: interrupt on the wire, then fail
            logger.info(
                "avatarkit: stream source raised %s; interrupting request %s "
                "(connection_id=%s req_id=%s)",
                type(exc).__name__,
                self.req_id,
                self._session.connection_id,
                self.req_id,
                extra={"connection_id": self._session.connection_id, "req_id": self.req_id},
            )
            if not self._result.done():
                await self._send_interrupt()
            self._fail(exc)
        finally:
            if not self._source.finished:  # a source that ran to its end closed itself
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(self._source.aclose(), _CONTROL_TIMEOUT)
            if not self._started.done():
                self._started.cancel()
            if not self._result.done() and self._end_timer is None:  # never left unresolved
                self._fail(self._session._close_error_for_send("stream", self.req_id))

    async def _feed(self) -> None:
        session = self._session
        pacer = self._pacer
        loop = self._loop
        realtime = pacer.pace == "realtime"
        async for chunk in self._source:
            if realtime:
                await pacer.wait(chunk.duration_s)
            else:  # nothing to wait for: no coroutine per chunk
                pacer.advance(chunk.duration_s)
            self._begin()
            await session._send_for_request(chunk.data, False, raw=self._raw_ogg)
            self._last_sent = loop.time()
        if self._fed:  # AudioFeed.push(..., end=True) sent the end with its last chunk
            return
        self._begin()
        await session._send_for_request(b"", True, raw=self._raw_ogg)
        self._last_sent = loop.time()
        self._fed = True

    def _send_now(self, data: bytes, end: bool = False, parked: bool = False) -> bool | None:
        """Send one whole chunk from the producer's call (:meth:`AudioFeed.push`),
        with the request's end when ``end`` (the feeder then sends none).

        Only while the feeder is parked at the feed with nothing before this
        chunk (the feed checks that) and the socket takes writes; ``None``
        and nothing done otherwise, and the feed queues the chunk for the
        feeder. ``True``: sent. ``False``: the send failed, which fails the
        request as in the feeder (the chunk is dropped with the request).
        """
        if self._result.done() or self._stop_pending:
            return None
        if self._idle is None and not (parked and self._running):
            return None
        session = self._session
        if not session._can_send_now():
            return None
        self._pacer.advance(len(data) / 2 / session._config.sample_rate)
        self._begin()
        try:
            session._send_audio_now(data, end)
        except AvatarSDKError as err:  # the connection is gone
            self._fail(err)
            self._stop()
            return False
        self._last_sent = self._loop.time()
        if end:
            self._fed = True
            if self._idle is not None:  # the end went out with no feeder: none is needed
                self._leave_idle()
                with scope(self._session):  # the timer's records carry the ids
                    self._arm_end_timer()
        return True

    # -- lazy: no feeder task until one is needed ----------------------------------

    def _wake_feeder(self) -> None:
        """The feed has audio queued, or its end: a feeder must send it (start one if idle)."""
        if self._idle is not None:
            self._start_feeder()

    def _start_feeder(self) -> None:
        """Start the feeder task of a lazy request; it takes over from the idle state.

        A request on an :class:`~avatarkit.AudioFeed` whose chunks all go out
        from ``push()`` needs no task: it starts idle, its audio and end sent
        by the producer's calls and the end frame bounded by a timer. A
        feeder starts only for what a call cannot do at once (a chunk to queue,
        a separate ``end()``, a stop), reading the feed from where the direct
        sends left it (they only ever send whole chunks: the shaper holds
        nothing). Anything waiting for the idle stand-in wakes and looks again.
        """
        self._leave_idle()
        with scope(self._session):
            self._task = self._feeder = self._loop.create_task(self._run(), name="avatarkit-stream")

    def _leave_idle(self) -> None:
        idle, self._idle = self._idle, None
        if idle is not None and not idle.done():
            idle.set_result(None)

    def _begin(self) -> None:
        if self.req_id is None:
            self.req_id = self._session._protocol.begin_request()
            self._first_sent = self._loop.time()
            self._started.set_result(self.req_id)
