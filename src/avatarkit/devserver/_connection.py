"""One ingress WebSocket connection: handshake, audio in, paced animation out.

Two coroutines per connection and nothing per frame, over five modules:

* the **reader** (:class:`Connection`, this module: the aiohttp glue, run by
  the aiohttp handler itself) parses each client message with
  :class:`~avatarkit.protocol.ServerProtocol`, answers the configure as
  :func:`avatarkit._server_protocol.check_configure` decides, and hands audio
  to its request, once :class:`~avatarkit.devserver._admission.AudioAdmission`
  has checked it against the limits;
* each request's runtime state (:mod:`avatarkit.devserver._request`) decodes
  audio and runs its :class:`~avatarkit.devserver._animation.AnimationAnalyzer`
  lazily, just ahead of the output;
* the **pacer** (one task, :mod:`avatarkit.devserver._output`) sends frames
  when they are due and watches the connection's deadlines (idle, session
  duration, pause timeout), doing what the pure
  :func:`~avatarkit.devserver._pacing.next_step` says. It sleeps on one future
  woken either by a single ``loop.call_at`` timer or by the reader when
  something changes;
* what both share (state, sending, closing, faults) is
  :class:`~avatarkit.devserver._core.ConnectionCore`.

State changes are made synchronously before any ``await`` so that a message
arriving mid-send (an interrupt, say) always sees a consistent request.

Output rules (see :class:`~avatarkit.devserver.DevServer` for the whole
behaviour): frame ``k`` of a request is due at ``start + k * 40 ms`` in
``realtime`` pace (``start`` = arrival of the request's first audio, shifted by
time spent paused or stalled by a fault), at once in ``fast`` pace. The newest
computed frame is held back until more audio or the request's ``end=true``
arrives, so the last frame is the one that carries ``end=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import WSMsgType

from .._encode import AnimationEnvelope
from .._server_protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED_DATA,
    CODE_BAD_REQUEST,
    CODE_INTERNAL,
    CODE_INVALID_ARGUMENT,
    ConfigureRejected,
    check_configure,
)
from ..events import PlaybackState
from ..protocol import (
    ClientAudio,
    ClientControl,
    MessageType,
    ProtocolViolation,
    encode_confirm,
)
from ._admission import AudioAdmission
from ._animation import AnimationAnalyzer
from ._core import (
    _BATCH_FAST,
    _BATCH_REALTIME,
    CAPABILITIES,
    MAX_REQ_ID_BYTES,
    IngressWebSocket,
    ServiceSettings,
)
from ._egress import egress_state
from ._output import OutputPacer
from ._request import RequestRuntime
from ._state import RequestState

if TYPE_CHECKING:
    from ..proto import avatarkit_wire_pb2 as pb


__all__ = ["MAX_REQ_ID_BYTES", "Connection", "IngressWebSocket", "ServiceSettings"]

log = logging.getLogger("avatarkit.devserver")

_HANDLED = object()  # _receive_now: the message was handled synchronously


class Connection(OutputPacer, AudioAdmission):
    """The service side of one ingress WebSocket, after the upgrade: the aiohttp glue.

    :meth:`run` is the reader: it receives each client message, parses it
    with :class:`~avatarkit.protocol.ServerProtocol`, answers the configure
    (checked by :func:`avatarkit._server_protocol.check_configure`), feeds
    audio to its request and applies controls; the pacer
    (:class:`~avatarkit.devserver._output.OutputPacer`) sends the output.
    """

    # -- lifecycle --------------------------------------------------------------
    #
    # Every close runs in the reader task. aiohttp's close() called from another
    # task while the reader waits in receive() shuts the TCP connection right
    # after the close frame, so the client cannot answer it; from the reader it
    # waits for the client's close frame (up to close_timeout), as RFC 6455 wants.
    # Other tasks (the pacer, server shutdown) call _end(), which records the
    # close and, if the reader is idle in receive(), cancels that wait.

    async def run(self) -> None:
        """Serve the connection until it closes (runs in the aiohttp handler)."""
        self._reader = asyncio.current_task()
        self.ws.on_protocol_close = self._on_protocol_close
        self._pacer = self._loop.create_task(self._pace(), name=f"avatarkit-pacer-{self.key}")
        try:
            while not self._closing:
                if self._close_request is not None:
                    await self._close(*self._close_request)
                    break
                self._in_receive = True
                try:
                    msg = await self.ws.receive()
                except asyncio.CancelledError:
                    if self._close_request is None or not _own_cancel(self._reader):
                        raise
                    continue  # woken to close
                finally:
                    self._in_receive = False
                if msg.type is WSMsgType.BINARY:
                    self.state.messages_received += 1
                    try:
                        event = self._receive_now(msg.data)
                        if event is not _HANDLED:
                            await self._on_event(event)
                    except Exception:
                        log.exception("avatarkit devserver: error handling a client message")
                        await self._internal_error()
                elif msg.type is WSMsgType.TEXT:
                    self.state.messages_received += 1
                    await self._on_text()
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    break
        finally:
            await self._finish()

    async def _finish(self) -> None:
        self._closing = True
        if self._limit_timer is not None:
            self._limit_timer.cancel()
            self._limit_timer = None
        pacer = self._pacer
        try:
            if pacer is not None:
                if not pacer.done():
                    pacer.cancel()
                await asyncio.wait({pacer})
                if not pacer.cancelled() and pacer.exception() is not None:
                    log.error("avatarkit devserver: pacer failed", exc_info=pacer.exception())
        finally:
            # Let go of what points back here: the pacer task (cancelled, it keeps
            # its CancelledError, whose traceback holds the pacer's frames) and
            # the hook on the WebSocket. A closed connection is then freed by
            # reference counting, not left to the cyclic garbage collector, whose
            # pauses would make every live session late.
            self._pacer = None
            self.ws.on_protocol_close = None
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close(code=CLOSE_NORMAL)
        self._active.clear()
        self._queue.clear()
        st = self.state
        st.closed_at = time.time()
        if st.close_code is None:
            st.close_code = self.ws.close_code
        # aiohttp keeps the error that ended a broken socket (ws.exception());
        # its traceback holds the frames it went through, this handler's among
        # them, which refer to this connection and the WebSocket: another cycle.
        error = self.ws.exception()
        for _ in range(8):  # the error and what it was raised while handling
            if error is None:
                break
            error.__traceback__ = None
            error = error.__context__
        self._done.set()

    async def shutdown(self, code: int = CLOSE_GOING_AWAY, reason: str = "") -> None:
        """Close the connection from outside (server shutdown) and wait until it is closed."""
        self._end(code, reason)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._done.wait(), self._settings.close_timeout + 1.0)

    async def _on_protocol_close(self, code: int) -> None:
        if code == CLOSE_TOO_BIG:
            text = (
                f"message too big: messages are limited to {self._settings.max_message_size} "
                "bytes on this server"
            )
        else:
            text = "invalid WebSocket frame"
        self.state.close_code = code
        self.state.close_reason = text
        await self._send_error(CODE_BAD_REQUEST, text)

    # -- receiving --------------------------------------------------------------

    async def _on_text(self) -> None:
        if self._proto.configured:
            text = "expected binary protobuf message, got a text frame"
        else:
            text = "failed during websocket handshake: expected binary protobuf message"
        await self._fatal(CODE_BAD_REQUEST, text, CLOSE_UNSUPPORTED_DATA)

    def _receive_now(self, data: bytes) -> Any:
        """Parse one binary message and handle it here if it is plain PCM audio
        (:meth:`_pcm_now`); otherwise return what :meth:`_on_event` handles (the
        event, or the ``ProtocolViolation``). ``_HANDLED`` when done: the
        per-frame message costs no coroutine."""
        try:
            event = self._proto.receive(data)
        except ProtocolViolation as exc:
            return exc
        if type(event) is ClientAudio and self._pcm_now(event):
            return _HANDLED
        return event

    async def _on_event(self, event: Any) -> None:
        if isinstance(event, ProtocolViolation):
            await self._fatal(event.code, event.message, CLOSE_POLICY)
            return
        if event is None:
            return  # unknown (newer) message type: ignored
        if not isinstance(event, (ClientAudio, ClientControl)):
            await self._on_configure(event)
        elif not self.state.configured:
            return  # a handshake fault left the session unconfirmed: nothing to serve
        elif isinstance(event, ClientAudio):
            await self._on_audio(event)
        else:
            await self._on_control(event)

    # -- handshake --------------------------------------------------------------

    async def _on_configure(self, cfg: pb.ClientConfigureSession) -> None:
        handshake_faults = self._faults.take_actions(self.key, "", 0, "handshake")
        for rule in handshake_faults:
            await self._apply_fault(rule, handshake=True)
        if handshake_faults:
            return  # the fault answered the configure instead of a confirm
        verdict = check_configure(cfg)
        if isinstance(verdict, ConfigureRejected):
            await self._fatal(verdict.code, verdict.detail, verdict.close_code)
            return
        fmt = verdict.audio_format
        egress = egress_state(verdict.egress) if verdict.egress is not None else None
        if fmt == "ogg_opus":
            try:
                from ..audio.opus import OggOpusDecoder, import_av

                import_av()
            except ImportError as exc:
                await self._fatal(
                    CODE_INTERNAL,
                    f"the local avatar service cannot decode Ogg Opus: {exc}",
                    CLOSE_INTERNAL,
                )
                return
            self._decoder_cls = OggOpusDecoder
        st = self.state
        st.audio_format = fmt
        st.sample_rate = verdict.sample_rate
        st.bitrate = verdict.bitrate
        st.egress = egress
        st.connection_id = str(uuid.uuid4())
        st.configured = True
        self._on_confirmed(self)
        log.info(
            "avatarkit devserver: session #%d configured: connection %s, %s %d Hz, egress %s",
            self.key,
            st.connection_id,
            fmt,
            st.sample_rate,
            egress.kind if egress is not None else "none",
        )
        if not await self._send(encode_confirm(st.connection_id, CAPABILITIES)):
            return
        await self._run_faults()

    # -- audio ------------------------------------------------------------------

    def _pcm_now(self, audio: ClientAudio) -> bool:
        """Handle ``audio`` synchronously if it is the common case: more PCM for
        the request already playing, within every limit, no viewer watching.
        ``False`` (nothing changed) sends it the general way, :meth:`_on_audio`,
        which answers everything else (errors, a new request, Ogg Opus)."""
        st = self.state
        if not st.configured or self._decoder_cls is not None or st.viewer_tap is not None:
            return False
        req_id = audio.req_id
        req = self._active.get(req_id)
        if req is None or len(req_id) > MAX_REQ_ID_BYTES // 4 or req.carry:
            return False  # (a short str is short in UTF-8 too: at most 4 bytes a character)
        info = req.info
        data = audio.audio
        size = len(data)
        if info.end_received or size & 1:
            return False
        if size:
            settings = self._settings
            if req.buffered + size > settings.max_request_audio_bytes:
                return False
            if len(self._active) > 1 or req.buffered + size > settings.max_connection_audio_bytes:
                return False  # (the connection's sum over its requests: the general way)
        self._last_activity = self._loop.time()
        info.audio_messages += 1
        info.audio_bytes += size
        self._accept_pcm(req, req.decode_pcm(data) if size else None, audio.end)
        return True

    async def _on_audio(self, audio: ClientAudio) -> None:
        now = self._loop.time()
        self._last_activity = now
        req_id = audio.req_id
        if not req_id:
            await self._send_error(CODE_INVALID_ARGUMENT, "ClientAudioInput.req_id is empty")
            return
        if not await self._check_req_id("ClientAudioInput", req_id):
            return
        req = self._active.get(req_id)
        if req is None:
            known = self.state.requests.get(req_id)
            if known is not None:
                if known.state is PlaybackState.ENDED:
                    await self._send_error(
                        CODE_INVALID_ARGUMENT,
                        f"request {req_id} already ended; send new audio with a new req_id",
                        req_id,
                    )
                # interrupted or failed: audio still in flight is dropped quietly
                return
            req = await self._new_request(req_id, now)
        info = req.info
        if info.end_received:
            await self._send_error(
                CODE_INVALID_ARGUMENT,
                f"request {req_id} already ended; send new audio with a new req_id",
                req_id,
            )
            return
        info.audio_messages += 1
        info.audio_bytes += len(audio.audio)
        if self._decoder_cls is None:
            pcm = req.decode_pcm(audio.audio)
        else:
            decoded = await self._decode_ogg(req, audio)
            if decoded is None:
                return
            pcm = decoded
        if pcm.size and not await self._check_buffer(req, pcm.nbytes):
            return
        self._accept_pcm(req, pcm, audio.end)

    def _accept_pcm(
        self, req: RequestRuntime, pcm: np.ndarray[Any, np.dtype[np.int16]] | None, end: bool
    ) -> None:
        """Queue an accepted message's decoded audio for playback (both the
        reader's fast path and :meth:`_on_audio` end here)."""
        info = req.info
        if pcm is not None and pcm.size:
            tap = self.state.viewer_tap
            if tap is not None:  # a viewer page watches this session
                tap.audio(info.req_id, self.state.sample_rate, info.audio_samples, pcm)
            info.audio_samples += int(pcm.size)
            req.raw.append(pcm)
            req.buffered += pcm.nbytes
        if end:
            info.end_received = True
        if self._park_token < 0:  # parked: the frame wheel takes the new audio as it comes
            self._wake()

    async def _new_request(self, req_id: str, now: float) -> RequestRuntime:
        # A new request preempts one still playing. In fast pace a request whose
        # audio has ended is only waiting for the pacer: it is let through first.
        for other in tuple(self._queue):
            if self._realtime or not other.info.end_received or other.info.paused:
                await self._interrupt(other, "preempted")
        info = RequestState(req_id, self.state.sample_rate)
        self.state.add_request(info)
        analyzer = AnimationAnalyzer(self.state.sample_rate, seed=self.state.avatar_id)
        batch = _BATCH_REALTIME if self._realtime else _BATCH_FAST
        req = RequestRuntime(info, analyzer, now if self._realtime else 0.0, batch)
        req.envelope = AnimationEnvelope(self.state.connection_id, req_id, self.state.avatar_id)
        self._active[req_id] = req
        self._queue.append(req)
        return req

    # -- controls ---------------------------------------------------------------

    async def _on_control(self, control: ClientControl) -> None:
        req_id = control.req_id
        if not await self._check_req_id("control message", req_id):
            return
        req = self._active.get(req_id)
        info = req.info if req is not None else self.state.requests.get(req_id)
        kind = control.kind
        if req is None:
            if info is not None:  # finished: report how it finished
                await self._send_state(info, info.reason)
            elif kind == MessageType.CLIENT_INTERRUPT:
                # Nothing of it arrived (e.g. an encoder that had not sent a page
                # yet): remember it as interrupted so late audio is dropped.
                info = RequestState(
                    req_id,
                    self.state.sample_rate or 16000,
                    state=PlaybackState.INTERRUPTED,
                    reason="explicit",
                )
                self.state.add_request(info)
                await self._send_state(info, "explicit")
            else:
                what = "pause" if kind == MessageType.CLIENT_PAUSE else "resume"
                await self._send_error(
                    CODE_INVALID_ARGUMENT, f"{what}: no request with req_id {req_id!r}", req_id
                )
            return
        info = req.info
        now = self._loop.time()
        if kind == MessageType.CLIENT_INTERRUPT:
            await self._interrupt(req, "explicit")
        elif kind == MessageType.CLIENT_PAUSE:
            if not info.paused:
                info.paused = True
                req.pause_started = now
                info.state = PlaybackState.PAUSED
                self._wake()
            await self._send_state(info)
        else:  # resume
            if info.paused:
                info.paused = False
                req.t0 += now - req.pause_started
                self._wake()
            info.state = PlaybackState.PLAYING
            req.started = True
            await self._send_state(info)


def _own_cancel(task: asyncio.Task[Any] | None) -> bool:
    """Whether the cancellation just caught was only ours (see ``Connection._end``)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is None:  # Python 3.10: no way to tell; a close was requested anyway
        return True
    remaining: int = uncancel()
    return remaining == 0
