"""``session.stream()``: the session's half of streamed requests (issue 11).

A mixin of :class:`~avatarkit.AvatarSession` on top of the sending mixin: it
checks the arguments, claims the session's one request slot and starts the
:class:`~avatarkit.AvatarRequest` (whose feeder lives in
:mod:`avatarkit._request`), and gives the feeder the sends it needs.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ._callbacks import logger
from ._feed import AudioFeed
from ._pacing import DEFAULT_CHUNK_MS, Pace, Pacer
from ._redact import scrub_error
from ._request import AvatarRequest
from ._request_types import DEFAULT_END_TIMEOUT, RequestInProgressError, check_end_timeout
from ._sending import SessionSending
from .config import AudioFormat
from .errors import AvatarSDKError
from .protocol import ClientState

__all__ = ["SessionStreaming"]


def _audio_sources() -> Any:
    """``open_source``, imported on the first ``stream()`` (it loads numpy and soxr).

    Kept after that: an import statement inside ``stream()`` cost about a
    microsecond per request even once loaded.
    """
    global _open_source
    if _open_source is None:
        from ._audio_source import open_source

        _open_source = open_source
    return _open_source


_open_source: Any = None


class SessionStreaming(SessionSending):
    """Mixin: ``stream()`` and the hooks its request handle uses."""

    #: The unresolved request of ``stream()``. A class default, not a slot:
    #: kept in the instance dict of sessions that stream only.
    _active_request: AvatarRequest | None = None
    _token: str | None  # the session token (set by AvatarSession)

    def stream(
        self,
        source: Any,
        *,
        sample_rate: int | None = None,
        pace: Pace | None = None,
        chunk_ms: int = DEFAULT_CHUNK_MS,
        end_timeout: float = DEFAULT_END_TIMEOUT,
    ) -> AvatarRequest:
        """Stream ``source`` as one request in the background; return its handle at once.

        ``source``: PCM s16le bytes at ``sample_rate`` (default: the
        session's rate); a path to a WAV, raw PCM (needs ``sample_rate``) or
        Ogg Opus file; or a sync or async iterable of PCM chunks of any sizes.
        Other rates are resampled on the fly. ``pace``: ``"realtime"`` (each
        chunk at its playback time, 80 ms ahead), ``"source"`` (as the
        iterable yields; the default for iterables) or ``"fast"`` (the
        default for bytes and files). ``end_timeout``: seconds to wait for
        the end frame after the audio should have played out (and after the
        last frame received) before the request fails with
        :class:`~avatarkit.RequestTimeoutError`.

        One request streams at a time: while one is unresolved, ``stream()``
        and ``send_audio()`` raise :class:`~avatarkit.RequestInProgressError`
        (await ``req.done()`` or ``req.interrupt()`` first). Bad arguments
        raise ``TypeError``/``ValueError`` here, in the caller.
        """
        self._require_open("stream")
        active = self._active_request
        if active is not None:
            raise RequestInProgressError(active.req_id, self.connection_id)
        if self._protocol.current_req_id is not None:
            raise RequestInProgressError(
                self._protocol.current_req_id,
                self.connection_id,
                "a request sent with send_audio() is still open; end it with "
                "send_audio(b'', end=True) or interrupt() before stream()",
            )
        timeout = check_end_timeout(end_timeout)
        if isinstance(source, AudioFeed):
            source._check_free()  # before the request exists: a refused feed leaves no trace
        if pace is None:
            fixed = isinstance(source, (bytes, bytearray, memoryview, str, os.PathLike))
            pace = "fast" if fixed else "source"
        pacer = Pacer(pace)
        open_source = _audio_sources()
        cfg = self._config
        ogg = cfg.audio_format is AudioFormat.OGG_OPUS
        audio = open_source(
            source,
            session_rate=cfg.sample_rate,
            session_format="ogg_opus" if ogg else "pcm",
            sample_rate=sample_rate,
            chunk_ms=chunk_ms,
        )
        if ogg and audio.kind == "pcm" and self._encoder is None:
            raise TypeError(
                "this session sends Ogg Opus but has no built-in encoder, so a PCM source "
                "cannot be streamed: configure ogg_opus_encoder, or pass an Ogg Opus file"
            )
        # An AudioFeed gets direct sends from push() only for whole PCM chunks
        # that need no resampling, encoding or pacing (else everything goes
        # through the feeder); with them its request starts without a feeder
        # task (lazy: see AvatarRequest._start_feeder).
        direct = isinstance(source, AudioFeed) and (
            pace != "realtime"
            and audio.kind == "pcm"
            and self._encoder is None
            and (sample_rate is None or sample_rate == cfg.sample_rate)
        )
        raw_ogg = audio.kind == "ogg"
        request = AvatarRequest(self, audio, pacer, timeout, raw_ogg, lazy=direct)  # type: ignore[arg-type]
        self._active_request = request
        if isinstance(source, AudioFeed):
            chunk_bytes = 2 * max(1, cfg.sample_rate * chunk_ms // 1000)
            source._attach(request, chunk_bytes if direct else 0)
        return request

    def _can_send_now(self) -> bool:
        """Whether a message can go out synchronously (open, not under backpressure)."""
        transport = self._transport
        if self._protocol.state is not ClientState.OPEN or transport is None:
            return False
        ready = getattr(transport, "can_send_now", None)
        return ready is not None and bool(ready())

    def _send_audio_now(self, data: bytes, end: bool = False) -> None:
        """Send one chunk of the streamed request now (after :meth:`_can_send_now`)."""
        req_id, message = self._protocol.audio(data, end)
        if self._metrics is not None:  # as send_audio(): on_metrics sees RequestDone
            self._metrics.audio_sent(req_id, len(data), end)
        try:
            self._transport.send(message)  # type: ignore[union-attr]
        except ConnectionError:
            raise self._close_error_for_send("stream", req_id) from None

    async def _send_for_request(self, data: bytes, end: bool, *, raw: bool) -> None:
        """Send one piece of the streamed request (``raw``: Ogg pages, never encoded)."""
        self._require_open("stream")
        if self._encoder is not None and not raw:
            if self._encoder_lock is None:
                self._encoder_lock = asyncio.Lock()
            async with self._encoder_lock:
                await self._send_encoded(data, end)
            return
        req_id, message = self._protocol.audio(data, end)
        if self._metrics is not None:  # as send_audio(): on_metrics sees RequestDone
            self._metrics.audio_sent(req_id, len(data), end)
        await self._send(message, req_id, "send audio")

    async def _interrupt_request(self, req_id: str) -> None:
        """Send ``ClientInterrupt`` for ``req_id`` unless a later request exists."""
        if self._protocol.last_req_id != req_id:
            return
        await self._interrupt_last()
        if self._metrics is not None:  # as session.interrupt(): RequestDone(interrupted)
            self._metrics.interrupted(req_id)

    def _interrupt_request_now(self, req_id: str) -> bool:
        """:meth:`_interrupt_request` without waiting, when the socket takes writes now.

        ``True`` when nothing was left to do or the interrupt was handed to
        the transport (best effort, as the awaited path: a connection lost
        afterwards fails the session, not this call); ``False``: use the
        awaited path. Saves the end of a request a task and a timer.
        """
        if self._protocol.last_req_id != req_id:
            return True
        if not self._can_send_now():
            return False
        _, message = self._interrupt_message()
        try:
            self._transport.send(message)  # type: ignore[union-attr]
        except ConnectionError as exc:  # the connection is gone: the request resolves anyway
            logger.info(
                "avatarkit: could not interrupt request %s (%s)",
                req_id,
                exc,
                extra={"connection_id": self.connection_id, "req_id": req_id},
            )
            return True
        if self._metrics is not None:
            self._metrics.interrupted(req_id)
        return True

    def _release_request(self, request: AvatarRequest) -> None:
        """The request resolved: free the slot (before ``done()`` returns)."""
        if self._active_request is request:
            self._active_request = None

    async def _end_request_for_close(self, deadline: float) -> None:
        """``close()`` began: resolve the streamed request and wait for its feeder.

        The feeder is cancelled; the wait for it ends at ``close()``'s deadline
        even if the user's source swallows the cancellation (logged then).
        """
        request = self._active_request
        if request is not None:
            request._abort(self._close_error_for_send("stream", request.req_id))
            remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
            try:
                await asyncio.wait_for(request._stopped(), remaining)
            except asyncio.TimeoutError:
                logger.warning(
                    "close(): the stream() feeder of request %s did not stop within the close "
                    "timeout (does its audio source swallow cancellation?)",
                    request.req_id,
                )

    def _abort_request(self) -> None:
        """The connection ended: the streamed request fails with the close error."""
        request = self._active_request
        if request is not None:
            request._abort(self._close_error or self._close_error_for_send("stream"))

    def _route_server_error(self, error: AvatarSDKError, fatal: bool) -> None:
        """A run-time ``ServerError`` with the streamed request's req_id fails it.

        Every ``ServerError`` passes here first: its text is the server's, so
        the session token is masked in it should the server quote it.
        """
        scrub_error(error, (self._token or "",))
        request = self._active_request
        if request is not None and not fatal:
            request._on_server_error(error)
