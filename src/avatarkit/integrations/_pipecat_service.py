"""The Pipecat ``AvatarService`` (public home: :mod:`avatarkit.integrations.pipecat`).

Imports Pipecat at module level: only :mod:`avatarkit.integrations.pipecat`
imports this, after checking that Pipecat is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    DataFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from .._audio_source import _Resampler, downmix_s16le
from .._newsession import new_avatar_session, open_session
from .._request import AvatarRequest
from .._request_types import check_end_timeout
from ..errors import AvatarSDKError
from ..session import AvatarSession

__all__ = ["AvatarAnimationFrame", "AvatarService"]

logger = logging.getLogger("avatarkit.pipecat")

_CLOSE_BOUND = 5.0
"""Bound on closing the session at ``EndFrame``/``CancelFrame`` (``close()`` itself waits 2 s)."""

_END_SLACK = 5.0
"""Added to the request's ``end_timeout`` to bound the wait at ``EndFrame``."""


@dataclass
class AvatarAnimationFrame(DataFrame):  # type: ignore[misc, unused-ignore]
    """One animation frame of the avatar, pushed downstream in animation mode.

    A data frame, so Pipecat drops the queued ones on an interruption like
    other output. ``payload`` is the opaque animation bytes
    (:attr:`avatarkit.AnimationFrameEvent.payload`); ``end`` is true on the
    request's last frame.
    """

    req_id: str
    end: bool
    payload: bytes

    def __str__(self) -> str:
        return f"{self.name}(req_id: {self.req_id}, end: {self.end}, size: {len(self.payload)})"


class _Utterance:
    """One TTS utterance: the queue its audio goes through into one ``stream()`` request."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.resamplers: dict[int, _Resampler] = {}
        self.closed = False  # the end of the audio was queued
        self.cancelled = False  # interrupted: no (more) request
        self.request: AvatarRequest | None = None
        self.task: asyncio.Task[None] | None = None

    async def audio(self) -> AsyncIterator[bytes]:
        """The request's source: the queued audio until the end marker."""
        while True:
            chunk = await self.queue.get()
            if chunk is None:
                return
            yield chunk

    def put(self, audio: bytes, rate: int) -> None:
        """Queue PCM at ``rate`` (another rate than the request's is resampled here)."""
        if self.closed:
            return
        if rate != self.rate:
            resampler = self.resamplers.get(rate)
            if resampler is None:
                resampler = self.resamplers[rate] = _Resampler(rate, self.rate)
            audio = resampler.feed(audio)
        if audio:
            self.queue.put_nowait(audio)

    def close(self) -> None:
        """Queue the end of the audio (once)."""
        if self.closed:
            return
        for resampler in self.resamplers.values():
            tail = resampler.flush()
            if tail:
                self.queue.put_nowait(tail)
        self.closed = True
        self.queue.put_nowait(None)


class AvatarService(FrameProcessor):  # type: ignore[misc, unused-ignore]
    """An avatar for a Pipecat pipeline: put it between the TTS and the output transport.

    Built with the same keywords as :func:`avatarkit.new_avatar_session`
    (an unknown one raises ``TypeError``); ``end_timeout`` is passed to each
    request (see ``session.stream()``). The session opens in the background
    on ``StartFrame`` (and again for the next utterance after it was lost)
    and closes on ``EndFrame``/``CancelFrame``, leaving no task behind.

    Each ``TTSStartedFrame`` ... ``TTSStoppedFrame`` is one request: the
    ``TTSAudioRawFrame`` audio is streamed into ``session.stream()`` as the
    TTS yields it (``pace="source"``), resampled to the session's rate when
    the TTS's differs, and downmixed to mono. Audio outside such a pair
    starts a request too, except after an interruption (until the next
    ``TTSStartedFrame``). Requests run one after the other: an utterance
    that starts while the previous one still plays is queued (its audio is
    buffered) until that one ends. An ``InterruptionFrame`` interrupts the
    request in progress once and drops queued utterances (no interrupt is
    sent when idle). A request's error (the connection dropped, a service
    error) is pushed upstream as an ``ErrorFrame``; the next utterance opens
    a new session. Every other frame passes through in order. ``EndFrame``
    waits (bounded by ``end_timeout`` + 5 s per pending utterance) for the
    pending requests to end, so that their animation precedes the
    ``EndFrame``; ``CancelFrame`` does not wait.

    Animation mode (the default): the TTS audio passes downstream unchanged
    and every animation frame is pushed downstream as an
    :class:`AvatarAnimationFrame`.

    LiveKit egress mode (``livekit_egress=`` given): the service publishes
    the avatar's audio and video into the room, so the TTS audio is
    swallowed here, and since the output transport then never plays audio,
    **this processor emits ``BotStartedSpeakingFrame`` and
    ``BotStoppedSpeakingFrame`` itself** (downstream and upstream), when
    the request's first audio is sent and when the request ends (its end
    frame, an interruption or an error).
    """

    def __init__(self, *, end_timeout: float = 10.0, **session_kwargs: Any) -> None:
        super().__init__()
        # Checks every keyword now (TypeError/ValueError here, not mid-pipeline).
        config = new_avatar_session(**session_kwargs).config
        self._session_kwargs = dict(session_kwargs)
        self._sample_rate = config.sample_rate
        self._egress = config.livekit_egress is not None
        self._end_timeout = check_end_timeout(end_timeout)
        self._session: AvatarSession | None = None
        self._opening: asyncio.Task[AvatarSession] | None = None
        self._current: _Utterance | None = None  # receiving audio
        self._pending: list[_Utterance] = []  # not finished, in order
        self._interrupted = False
        self._closing = False

    def __repr__(self) -> str:  # no keyword values: they hold the API key
        mode = "livekit-egress" if self._egress else "animation"
        return f"<AvatarService {self.name} mode={mode} sample_rate={self._sample_rate}>"

    @property
    def session(self) -> AvatarSession | None:
        """The open avatar session (``None`` before ``StartFrame`` and after the end)."""
        return self._session

    # -- frames ------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Route one frame (see the class docstring)."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._closing = False
            self._begin_open()
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSStartedFrame):
            self._interrupted = False
            self._end_current()
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSAudioRawFrame):
            self._on_audio(frame)
            if not self._egress:
                await self.push_frame(frame, direction)
        elif isinstance(frame, TTSStoppedFrame):
            self._end_current()
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            self._interrupted = True
            await self._interrupt()
            await self.push_frame(frame, direction)
        elif isinstance(frame, EndFrame):
            self._end_current()
            await self._wait_pending()
            await self._shutdown()
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            await self._shutdown()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Pipecat's end of the processor: nothing may be left open."""
        await self._shutdown()
        await super().cleanup()  # type: ignore[no-untyped-call, unused-ignore]

    # -- the session ----------------------------------------------------------------

    def _begin_open(self) -> None:
        if self._opening is None and self._session is None:
            self._opening = asyncio.get_running_loop().create_task(
                self._open(), name="avatarkit-pipecat-open"
            )

    async def _open(self) -> AvatarSession:
        return await open_session(new_avatar_session(**self._session_kwargs))

    async def _ready_session(self) -> AvatarSession:
        """The open session; opens one (again) when there is none."""
        if self._session is not None and self._session.is_open:
            return self._session
        if self._session is not None:  # lost (the connection dropped): open anew
            old, self._session = self._session, None
            await asyncio.wait_for(old.close(), _CLOSE_BOUND)
        self._begin_open()
        opening = self._opening
        assert opening is not None
        try:
            self._session = await asyncio.shield(opening)
        finally:
            if opening.done():
                self._opening = None
        return self._session

    # -- utterances -------------------------------------------------------------------

    def _on_audio(self, frame: TTSAudioRawFrame) -> None:
        utterance = self._current
        if utterance is None:
            if self._interrupted or self._closing:
                return  # the rest of an interrupted utterance
            utterance = self._current = _Utterance(frame.sample_rate)
            previous = self._pending[-1].task if self._pending else None
            utterance.task = asyncio.get_running_loop().create_task(
                self._run(utterance, previous), name="avatarkit-pipecat-request"
            )
            self._pending.append(utterance)
        utterance.put(downmix_s16le(frame.audio, frame.num_channels), frame.sample_rate)

    def _end_current(self) -> None:
        """The TTS finished the utterance: end its audio."""
        if self._current is not None:
            self._current.close()
            self._current = None

    async def _run(self, utterance: _Utterance, previous: asyncio.Task[None] | None) -> None:
        """One utterance: after the previous one, stream it and push what comes back."""
        speaking = False
        try:
            if previous is not None:
                await asyncio.wait({previous})  # each one is bounded
            if utterance.cancelled:
                return
            session = await self._ready_session()
            request = session.stream(
                utterance.audio(),
                sample_rate=utterance.rate,
                pace="source",
                end_timeout=self._end_timeout,
            )
            utterance.request = request
            if self._egress:
                await request.started()
                speaking = True
                await self._push_both(BotStartedSpeakingFrame)
            async for event in request:
                if not self._egress:
                    await self.push_frame(
                        AvatarAnimationFrame(event.req_id, event.end, event.payload)
                    )
            await request.done()
        except (AvatarSDKError, OSError, ValueError, TypeError, asyncio.TimeoutError) as exc:
            await self._report(exc)
        finally:
            if self._current is utterance:
                self._current = None
                self._interrupted = True  # drop the rest of its audio
            with contextlib.suppress(ValueError):
                self._pending.remove(utterance)
            if speaking and not self._closing:
                await self._push_both(BotStoppedSpeakingFrame)

    async def _push_both(self, frame_type: type[Frame]) -> None:
        await self.push_frame(frame_type())
        await self.push_frame(frame_type(), FrameDirection.UPSTREAM)

    async def _wait_pending(self) -> None:
        tasks = {u.task for u in self._pending if u.task is not None}
        if tasks:
            bound = (self._end_timeout + _END_SLACK) * len(tasks)
            _, late = await asyncio.wait(tasks, timeout=bound)
            if late:
                logger.warning("avatarkit: %d avatar request(s) did not end by EndFrame", len(late))

    async def _interrupt(self) -> None:
        """Interrupt the request in progress once and drop queued ones; nothing when idle."""
        self._current = None
        for utterance in list(self._pending):
            utterance.cancelled = True
            utterance.close()
            if utterance.request is not None:
                await utterance.request.interrupt()  # a no-op once it resolved

    async def _shutdown(self) -> None:
        """Close everything: the requests, their tasks, the opening, the session."""
        self._closing = True
        self._current = None
        pending, self._pending = self._pending, []
        opening, self._opening = self._opening, None
        session, self._session = self._session, None
        if opening is not None:
            opening.cancel()
            with contextlib.suppress(BaseException):
                opened = await opening
                session = session or opened
        if session is not None:
            # close() resolves the request (SessionClosedError) and ends its feeder.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.close(), _CLOSE_BOUND)
        for utterance in pending:
            if utterance.task is not None:
                utterance.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await utterance.task

    async def _report(self, exc: Exception) -> None:
        """A request's or the session's error, upstream as an ``ErrorFrame``."""
        if self._closing:
            return  # shutting down: the close error is ours, not the pipeline's
        await self.push_error(f"avatarkit: {exc}", exception=exc)
