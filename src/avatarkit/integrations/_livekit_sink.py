"""The LiveKit Agents audio sink: TTS audio into one avatar request per segment.

Imports livekit-agents at module level: only :mod:`avatarkit.integrations.livekit`
imports this (through ``_livekit_avatar``), after checking that it is installed.

livekit-agents cuts the agent's speech into *segments*: ``capture_frame()``
calls up to a ``flush()``. It waits (with no bound of its own) until the sink
reports each segment's ``playback_finished``, so the sink must report one for
every segment whatever happens, and one ``playback_started`` before it (the
transcript synchronizer starts the text on it). :class:`AvatarAudioSink` does
exactly that; see its docstring for where each signal comes from.

Unlike the first-party avatar plugins' ``DataStreamAudioOutput`` (audio sent
by data streams to an avatar worker already in the room), the audio goes to
the avatar service over the SDK's WebSocket, and the service joins the room
itself with the egress token and publishes on the agent's behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from livekit import rtc
from livekit.agents.voice.io import AudioOutput, AudioOutputCapabilities

from .._audio_source import downmix_s16le
from .._request import AvatarRequest
from ..errors import AvatarSDKError
from ..events import PlaybackState, PlaybackStateEvent

if TYPE_CHECKING:
    from ..session import AvatarSession as _SDKSession

__all__ = ["AvatarAudioSink"]

logger = logging.getLogger("avatarkit.livekit")

CAPABILITY_PLAYBACK_STATE = "playback_state"
CAPABILITY_PLAYBACK_CONTROL = "playback_control"

_INTERRUPT_STATE_WAIT = 1.0
"""After an interrupt, how long to wait for the service's INTERRUPTED state (its position)."""

_CONTROL_BOUND = 5.0
"""Bound on one pause/resume control (the SDK's own sends are bounded too)."""

_FINAL_STATES = (PlaybackState.ENDED, PlaybackState.INTERRUPTED)


class _Segment:
    """One segment of the agent's speech: its audio queue and one ``stream()`` request."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False  # flushed: the end of the audio is queued
        self.cancelled = False  # clear_buffer()/aclose(): no (more) output wanted
        self.cancel_event = asyncio.Event()  # set with ``cancelled``: stops a reconnect wait
        self.audio_s = 0.0  # seconds of audio captured
        self.request: AvatarRequest | None = None
        self.task: asyncio.Task[None] | None = None
        self.started_at: float | None = None  # time.time() of playback_started
        self.finished = False
        self.playing = asyncio.Event()  # PLAYING came
        self.final: asyncio.Future[PlaybackStateEvent] = asyncio.get_running_loop().create_future()

    async def audio(self) -> AsyncIterator[bytes]:
        """The request's source: the queued audio until the end marker."""
        while True:
            chunk = await self.queue.get()
            if chunk is None:
                return
            yield chunk

    def put(self, audio: bytes) -> None:
        if not self.closed and audio:
            self.queue.put_nowait(audio)

    def close(self) -> None:
        """Queue the end of the audio (once)."""
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)

    def cancel(self) -> None:
        """No (more) output wanted: end the audio and wake whatever waits for the session."""
        self.cancelled = True
        self.cancel_event.set()
        self.close()

    def on_state(self, event: PlaybackStateEvent) -> None:
        if event.state is PlaybackState.PLAYING:
            self.playing.set()
        elif event.state in _FINAL_STATES and not self.final.done():
            self.final.set_result(event)

    def estimate(self) -> float:
        """Seconds played, when the service did not say: audio given, capped by time playing."""
        if self.started_at is None:
            return 0.0
        return max(0.0, min(self.audio_s, time.time() - self.started_at))


class AvatarAudioSink(AudioOutput):  # type: ignore[misc, unused-ignore]
    """The agent's audio tail: each segment becomes one avatar request.

    Frames are taken at the TTS's own sample rate (``sample_rate`` is
    ``None``, so livekit-agents does not resample) and streamed into
    ``session.stream(..., pace="source")``, which resamples to the session's
    rate on the fly; multi-channel audio is mixed down to mono. Segments run
    one after the other (the session streams one request at a time).

    Signals, exactly one ``playback_started`` and one ``playback_finished``
    per segment (``_finish`` emits a missing ``playback_started`` first):

    * started: the service's ``PLAYING`` for the request when the session
      declares ``playback_state``, else its first progress message; at the
      latest with the finish;
    * natural end: the service's ``ENDED`` (``played_ms`` is the position)
      when the session declares ``playback_state``, else the request's end.
      If ``ENDED`` has not come ``playback_timeout`` seconds after the
      request's end, the segment finishes anyway (position: the audio sent)
      and a warning is logged;
    * ``clear_buffer()``: the segment in progress is interrupted once
      (``AvatarRequest.interrupt()``: one interrupt to the service), queued
      ones are dropped; finished ``interrupted=True`` with the service's
      ``played_ms`` (waited for at most 1 s) or an estimate. Nothing is sent
      when idle; a segment waiting for a reconnect finishes at once (position
      0) and that reconnect is dropped;
    * a request error (server error, connection lost, the request's own
      ``end_timeout``): finished ``interrupted=True``; the next segment opens
      a new session (bounded retries, see ``AvatarSession``);
    * ``aclose()``: finished ``interrupted=True``. A closed sink still in
      the chain (see ``AvatarSession.aclose``) finishes each later segment at
      its flush, ``interrupted=True`` at position 0, so the agent never waits.

    ``pause()``/``resume()`` use the service's playback control when the
    session declares ``playback_control``; otherwise ``pause()`` degrades to
    ``clear_buffer()`` (and ``can_pause`` is false, so livekit-agents
    interrupts instead of pausing).
    """

    def __init__(
        self,
        ready_session: Callable[[], Awaitable[_SDKSession]],
        current_session: Callable[[], _SDKSession | None],
        *,
        end_timeout: float,
        playback_timeout: float,
    ) -> None:
        super().__init__(
            label="avatarkit",
            capabilities=AudioOutputCapabilities(pause=True),
            sample_rate=None,
        )
        self._ready_session = ready_session
        self._current_session = current_session
        self._end_timeout = end_timeout
        self._playback_timeout = playback_timeout
        self._current: _Segment | None = None  # receiving audio
        self._pending: list[_Segment] = []  # not finished, in order
        self._capturing = False  # between the first capture_frame and flush()
        self._dropping = False  # cleared mid-segment: drop its audio until flush()
        self._paused = False
        self._closed = False
        self._controls: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"AvatarAudioSink(label={self.label!r}, pending={len(self._pending)})"

    # -- capabilities ---------------------------------------------------------------

    def _declares(self, capability: str) -> bool:
        session = self._current_session()
        return session is not None and capability in session.capabilities

    @property
    def can_pause(self) -> bool:
        """Whether the open session declares ``playback_control`` (pause/resume)."""
        return self._declares(CAPABILITY_PLAYBACK_CONTROL)

    # -- AudioOutput ------------------------------------------------------------------

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        """Queue one TTS frame into the current segment's request (starting one if needed)."""
        await super().capture_frame(frame)
        self._capturing = True
        if self._closed or self._dropping:
            return
        segment = self._current
        if segment is None:
            segment = self._current = _Segment(frame.sample_rate)
            previous = self._pending[-1].task if self._pending else None
            self._pending.append(segment)
            segment.task = asyncio.get_running_loop().create_task(
                self._run(segment, previous), name="avatarkit-livekit-segment"
            )
        if frame.sample_rate != segment.rate:  # a TTS changing rate mid-segment: rare
            logger.warning(
                "avatarkit: TTS sample rate changed mid-segment (%d -> %d Hz); frame dropped",
                segment.rate,
                frame.sample_rate,
            )
            return
        segment.audio_s += frame.samples_per_channel / frame.sample_rate
        segment.put(downmix_s16le(bytes(frame.data), frame.num_channels))

    def flush(self) -> None:
        """The segment's audio is complete: end its request's audio."""
        super().flush()
        # Left in the chain after aclose(): a null sink. Not for a segment aclose()
        # already finished (``_dropping``): that one was reported once.
        if self._closed and self._capturing and not self._dropping:
            self.on_playback_started(created_at=time.time())
            self.on_playback_finished(playback_position=0.0, interrupted=True)
        self._capturing = False
        self._dropping = False
        if self._current is not None:
            self._current.close()
            self._current = None

    def clear_buffer(self) -> None:
        """Stop now: interrupt the segment in progress once, drop queued ones."""
        if self._capturing and self._current is not None:
            self._dropping = True
        self._current = None
        for segment in self._pending:
            if not segment.cancelled:
                segment.cancel()
                if segment.request is not None:
                    self._spawn(segment.request.interrupt())

    def pause(self) -> None:
        """Hold the avatar (service playback control), else degrade to ``clear_buffer()``."""
        super().pause()
        if not self._pending:
            return
        if self._declares(CAPABILITY_PLAYBACK_CONTROL):
            self._paused = True
            self._spawn(self._control("pause"))
        else:
            logger.info("avatarkit: the service has no playback control; pause clears instead")
            self.clear_buffer()

    def resume(self) -> None:
        """Continue after :meth:`pause` (nothing when pause had to clear)."""
        super().resume()
        if self._paused:
            self._paused = False
            self._spawn(self._control("resume"))

    # -- from the AvatarSession -----------------------------------------------------

    def on_state(self, event: PlaybackStateEvent) -> None:
        """A ``ServerPlaybackState`` of the session: to the segment whose request it names."""
        for segment in self._pending:
            if segment.request is not None and segment.request.req_id == event.req_id:
                segment.on_state(event)
                return

    async def aclose(self) -> None:
        """Finish every segment (interrupted) and leave no task behind."""
        self._closed = True
        if self._capturing:  # the segment being captured is finished below, not at its flush
            self._dropping = True
        self._current = None
        pending, self._pending = self._pending, []
        for segment in pending:
            segment.cancel()
        tasks = [s.task for s in pending if s.task is not None] + list(self._controls)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for segment in pending:
            self._finish(segment, interrupted=True, position=segment.estimate())

    # -- segments ---------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="avatarkit-livekit-control")
        self._controls.add(task)
        task.add_done_callback(self._control_done)

    def _control_done(self, task: asyncio.Task[None]) -> None:
        self._controls.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("avatarkit: avatar control failed", exc_info=task.exception())

    async def _control(self, name: str) -> None:
        session = self._current_session()
        if session is None or not session.is_open:
            return
        method = session.pause if name == "pause" else session.resume
        await asyncio.wait_for(method(), _CONTROL_BOUND)

    def _start(self, segment: _Segment) -> None:
        if segment.started_at is None:
            segment.started_at = time.time()
            self.on_playback_started(created_at=segment.started_at)

    def _finish(self, segment: _Segment, *, interrupted: bool, position: float) -> None:
        """Report the segment's end to livekit-agents: once, after its start."""
        if segment.finished:
            return
        segment.finished = True
        self._start(segment)
        self.on_playback_finished(playback_position=position, interrupted=interrupted)

    async def _run(self, segment: _Segment, previous: asyncio.Task[None] | None) -> None:
        """One segment: after the previous one, stream it and report its playback."""
        try:
            if previous is not None:
                await asyncio.wait({previous})  # each one is bounded
            interrupted, position = await self._play(segment)
        except (AvatarSDKError, OSError, ValueError, TypeError, asyncio.TimeoutError) as exc:
            logger.warning("avatarkit: avatar request failed: %s", exc)
            interrupted, position = True, segment.estimate()
        except Exception:  # a bug: still finish the segment, or the agent waits forever
            logger.exception("avatarkit: avatar request failed unexpectedly")
            interrupted, position = True, segment.estimate()
        finally:
            with contextlib.suppress(ValueError):
                self._pending.remove(segment)
            if self._current is segment:  # failed while the TTS still sends: drop the rest
                self._current = None
                self._dropping = self._capturing
        self._finish(segment, interrupted=interrupted, position=position)

    async def _play(self, segment: _Segment) -> tuple[bool, float]:
        """Stream the segment; ``(interrupted, position)`` once it played (or failed)."""
        if segment.cancelled:
            return True, 0.0
        session = await self._session_unless_cancelled(segment)
        if session is None:  # cleared while the session opened: nothing was sent
            return True, 0.0
        with_state = CAPABILITY_PLAYBACK_STATE in session.capabilities
        request = segment.request = session.stream(
            segment.audio(), sample_rate=segment.rate, pace="source", end_timeout=self._end_timeout
        )
        watcher = None
        if with_state:
            watcher = asyncio.get_running_loop().create_task(self._watch_playing(segment))
        try:
            async for _frame in request:  # progress signals in egress mode, then the end
                if not with_state:
                    self._start(segment)
            summary = await request.done()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        if summary.interrupted or segment.cancelled:
            final = await self._final_state(segment, _INTERRUPT_STATE_WAIT) if with_state else None
            position = final.played_ms / 1000 if final is not None else segment.estimate()
            return True, position
        if not with_state:
            return False, summary.audio_seconds
        final = await self._final_state(segment, self._playback_timeout)
        if final is None:
            logger.warning(
                "avatarkit: no ENDED playback state for request %s within %.1f s of its end; "
                "reporting it finished",
                request.req_id,
                self._playback_timeout,
            )
            return False, summary.audio_seconds
        interrupted = final.state is PlaybackState.INTERRUPTED
        return interrupted, final.played_ms / 1000

    async def _session_unless_cancelled(self, segment: _Segment) -> _SDKSession | None:
        """The open session, or ``None`` as soon as the segment is cancelled.

        Opening may mean reconnecting (retries with backoff, each bounded by
        ``open_timeout``); a ``clear_buffer()`` meanwhile must finish the
        segment now, not when the retries end, so the wait is raced against
        the segment's cancel and the reconnect is cancelled (the next segment
        starts a new one).
        """
        opening = asyncio.ensure_future(self._ready_session())
        cancelled = asyncio.ensure_future(segment.cancel_event.wait())
        try:
            await asyncio.wait({opening, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (opening, cancelled):
                task.cancel()
            await asyncio.wait({opening, cancelled})
        if segment.cancelled:
            if not opening.cancelled() and opening.exception() is not None:
                logger.info("avatarkit: reconnect failed: %s", opening.exception())
            return None
        return opening.result()

    async def _watch_playing(self, segment: _Segment) -> None:
        await segment.playing.wait()
        self._start(segment)

    async def _final_state(self, segment: _Segment, timeout: float) -> PlaybackStateEvent | None:
        """The segment's ENDED/INTERRUPTED state, waited for at most ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(asyncio.shield(segment.final), timeout)
        except asyncio.TimeoutError:
            return None
