"""The sending half of a session: audio, interrupt, pause, resume.

A mixin of :class:`~avatarkit.AvatarSession` (its state lives in the
session's slots, declared here for the type checker). Every send asks the
protocol core for the bytes and the state, then waits for the transport to
take them (backpressure), so a closed connection is reported from the call
that hit it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._callbacks import CallbackRunner
from ._logctx import scope, scoped
from ._metrics import MetricsRecorder, observe_interrupt
from .config import AudioFormat, SessionConfig
from .errors import AvatarSDKError, AvatarSDKErrorCode, ErrorPhase, SessionClosedError
from .protocol import ClientState
from .transport import Transport

if TYPE_CHECKING:
    from ._request import AvatarRequest

__all__ = ["SessionSending"]

_OPEN = ClientState.OPEN  # read once: an enum member lookup is not free per chunk


class SessionSending(CallbackRunner):
    """Mixin: the session's sending methods."""

    _config: SessionConfig
    _transport: Transport | None
    _encoder: Any
    _encoder_lock: asyncio.Lock | None
    _encoded: bytearray | None
    _cb_encoded: Callable[[str, bytes], Any] | None
    _close_error: AvatarSDKError | None
    _metrics: MetricsRecorder | None
    _active_request: AvatarRequest | None
    #: The request ``pause()`` holds (``None``: not paused), since when (loop
    #: time), and how long the last held request was held by finished pauses:
    #: a request's ``end_timeout`` does not run while it is held. Class
    #: defaults, kept in the instance dict once set.
    _paused_req: str | None = None
    _paused_since: float = 0.0
    _held: tuple[str | None, float] = (None, 0.0)

    @property
    def connection_id(self) -> str | None:
        """Connection id the server confirmed, once ``start()`` returned."""
        return self._protocol.connection_id

    def _make_encoder(self) -> Any:
        from .audio.opus import OggOpusEncoder

        cfg = self._config
        enc = cfg.ogg_opus_encoder
        assert enc is not None
        try:
            return OggOpusEncoder(
                cfg.sample_rate,
                bitrate=cfg.bitrate,
                frame_duration_ms=enc.frame_duration_ms,
                application=enc.application,
            )
        except ImportError as exc:
            from .errors import OptionalDependencyError

            raise OptionalDependencyError("the built-in Ogg Opus encoder", "opus") from exc

    async def send_audio(self, audio: bytes, end: bool = False) -> str:
        """Send a chunk of the current request's audio; return its request id.

        PCM chunks must hold whole 16-bit samples. With the built-in encoder
        configured, PCM is encoded to Ogg Opus page by page and a chunk that
        completes no Opus frame sends nothing yet. ``end=True`` ends the
        request; the next call starts a new request id. Raises
        :class:`~avatarkit.RequestInProgressError` while a request started by
        :meth:`stream` is unresolved.
        """
        # The per-chunk path of every session, so it is written out flat: no
        # log-scope wrapper (nothing here logs; the metrics call, which may,
        # runs in the session's scope) and one state check.
        if audio.__class__ is bytes:
            data = audio
        elif isinstance(audio, (bytearray, memoryview)):
            data = bytes(audio)
        else:
            raise TypeError(
                f"audio must be bytes (16-bit PCM or Ogg Opus), not {type(audio).__name__}"
            )
        if self._active_request is not None:
            from ._request import RequestInProgressError

            raise RequestInProgressError(self._active_request.req_id, self.connection_id)
        encoder = self._encoder
        if len(data) % 2 and (
            encoder is not None or self._config.audio_format is AudioFormat.PCM_S16LE
        ):
            raise ValueError(
                f"PCM audio must hold whole 16-bit samples; got {len(data)} bytes (odd). "
                "Keep the odd byte for the next chunk."
            )
        protocol = self._protocol
        if protocol.state is not _OPEN:
            self._require_open("send_audio")
        if encoder is not None:
            with scope(self):
                if self._encoder_lock is None:
                    self._encoder_lock = asyncio.Lock()
                async with self._encoder_lock:  # one Ogg stream at a time, in call order
                    return await self._send_encoded(data, end)
        req_id, message = protocol.audio(data, end)
        if self._metrics is not None:
            with scope(self):
                self._metrics.audio_sent(req_id, len(data), end)
        await self._send(message, req_id, "send audio")
        return req_id

    async def _send_encoded(self, pcm: bytes, end: bool) -> str:
        req_id = self._protocol.begin_request()
        pages: bytes = self._encoder.encode(pcm)
        if end:
            pages += self._encoder.finish()
        if self._cb_encoded is not None and pages:
            if self._encoded is None:
                self._encoded = bytearray()
            self._encoded += pages
        stream = None
        if end:  # finish() already began a fresh stream for the next request
            stream, self._encoded = self._encoded, None
        if self._metrics is not None:
            self._metrics.audio_sent(req_id, len(pcm), end)
        if pages or end:
            _, message = self._protocol.audio(pages, end)
            await self._send(message, req_id, "send audio")
        if stream and self._cb_encoded is not None:
            self._call(self._cb_encoded, "on_encoded_audio", req_id, bytes(stream))
        return req_id

    @observe_interrupt
    async def interrupt(self) -> str:
        """Stop the most recent request, even one whose audio already ended.

        Returns the interrupted request id. The next ``send_audio`` starts a
        new request. A request from :meth:`stream` it interrupts resolves as
        interrupted, as does one that has sent nothing yet.
        """
        req_id = await self._interrupt_last()
        request = self._active_request
        if request is not None and request.req_id in (req_id, None):
            request._on_interrupted()  # None: it had sent nothing yet
        return req_id

    async def _interrupt_last(self) -> str:
        req_id, message = self._interrupt_message()
        await self._send(message, req_id, "send interrupt")
        return req_id

    def _interrupt_message(self) -> tuple[str, bytes]:
        """``ClientInterrupt`` for the most recent request; the encoder starts afresh."""
        self._require_open("interrupt")
        req_id, message = self._protocol.interrupt()
        if self._encoder is not None:
            self._encoder.reset()
            self._encoded = None
        return req_id, message

    @scoped
    async def pause(self) -> str:
        """Hold the output of the most recent request (``playback_control``).

        The server keeps ingesting audio meanwhile. Returns the request id.
        """
        self._require_open("pause")
        req_id, message = self._protocol.pause()
        await self._send(message, req_id, "send pause")
        if self._paused_req != req_id:
            self._paused_req, self._paused_since = req_id, asyncio.get_running_loop().time()
        return req_id

    @scoped
    async def resume(self) -> str:
        """Continue the output held by :meth:`pause`. Returns the request id."""
        self._require_open("resume")
        req_id, message = self._protocol.resume()
        await self._send(message, req_id, "send resume")
        self._note_resumed()
        return req_id

    def _note_resumed(self) -> None:
        """Add the pause that ends now to its request's held time (``_end_remaining`` reads it)."""
        held_req, self._paused_req = self._paused_req, None
        if held_req is not None:
            before = self._held[1] if self._held[0] == held_req else 0.0
            now = asyncio.get_running_loop().time()
            self._held = (held_req, before + now - self._paused_since)

    def _require_open(self, action: str) -> None:
        state = self._protocol.state
        if state is ClientState.OPEN:
            return
        if state in (ClientState.CLOSING, ClientState.CLOSED):
            raise self._close_error_for_send(action)
        raise ValueError(f"{action}(): the session is not connected; call init() and start() first")

    def _close_error_for_send(self, action: str, req_id: str | None = None) -> SessionClosedError:
        # A ValueError too: what 0.1.7 raises once its connection is gone.
        base = self._close_error
        return SessionClosedError(
            AvatarSDKErrorCode.connectionClosed,
            f"cannot {action.replace('_', ' ')}: the session is closed"
            + (f" ({base.message})" if base is not None else "")
            + "; open a new session",
            phase=ErrorPhase.WEBSOCKET_SEND,
            connection_id=self.connection_id,
            req_id=req_id,
            close_code=base.close_code if base is not None else None,
            close_reason=base.close_reason if base is not None else None,
        )

    async def _send(self, message: bytes, req_id: str, action: str) -> None:
        transport = self._transport
        if transport is None or self._protocol.state is ClientState.CLOSED:
            raise self._close_error_for_send(action, req_id)
        try:
            transport.send(message)
            await transport.drain()  # raises when the connection ends while blocked
        except ConnectionError:
            raise self._close_error_for_send(action, req_id) from None
