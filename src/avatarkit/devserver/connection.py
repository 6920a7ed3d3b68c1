"""One ingress WebSocket connection: handshake, audio in, paced animation out.

Two coroutines per connection and nothing per frame:

* the **reader** (the aiohttp handler itself) parses each client message with
  :class:`~avatarkit.protocol.ServerProtocol`, decodes audio, runs the
  request's :class:`~avatarkit.devserver.animation.AnimationAnalyzer` and
  queues the frames it returns;
* the **pacer** (one task) sends queued frames when they are due and watches
  the connection's deadlines (idle, session duration, pause timeout). It sleeps
  on one future woken either by a single ``loop.call_at`` timer or by the
  reader when something changes.

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
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .._server_protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_SESSION_DURATION,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED_DATA,
    CODE_BAD_REQUEST,
    CODE_IDLE,
    CODE_INTERNAL,
    CODE_INVALID_ARGUMENT,
    ConfigureRejected,
    check_configure,
)
from ..events import PlaybackState
from ..protocol import (
    CAPABILITY_PLAYBACK_CONTROL,
    CAPABILITY_PLAYBACK_STATE,
    ClientAudio,
    ClientControl,
    MessageType,
    ProtocolViolation,
    ServerProtocol,
    encode_animation,
    encode_confirm,
    encode_playback_state,
    encode_server_error,
)
from ._request import HAND_ENVELOPE, AnimationEnvelope, RequestRuntime
from .animation import FRAME_MS, AnimationAnalyzer, encode_frame
from .egress import egress_state
from .faults import FaultRule, Faults
from .pacing import PacerView, StepKind, next_step
from .state import RequestState, SessionState

if TYPE_CHECKING:
    from ..proto import avatarkit_wire_pb2 as pb

__all__ = ["Connection", "IngressWebSocket", "ServiceSettings"]

log = logging.getLogger("avatarkit.devserver")

CAPABILITIES = (CAPABILITY_PLAYBACK_CONTROL, CAPABILITY_PLAYBACK_STATE)
_PROGRESS_EVERY = 1000 // FRAME_MS  # egress mode: one progress signal per second of audio
_FAIR_BATCH = 32  # fast pace: yield to other connections after this many frames
_BATCH_REALTIME = 10  # frames analysed at a time, just ahead of the output
_BATCH_FAST = 50
_MAX_TEXT = 1000  # ServerError messages are cut to this many characters
MAX_REQ_ID_BYTES = 128
"""Longest ``req_id`` accepted (UTF-8 bytes); longer ones are refused with code 3."""


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Per-server behaviour shared by its connections."""

    pace: str = "realtime"
    idle_timeout: float | None = 60.0
    pause_timeout: float | None = None
    max_session_seconds: float | None = None
    close_timeout: float = 2.0
    max_message_size: int = 16 * 1024 * 1024
    max_request_audio_bytes: int = 64 * 1024 * 1024
    max_connection_audio_bytes: int = 128 * 1024 * 1024


class IngressWebSocket(web.WebSocketResponse):
    """aiohttp's WebSocket response, telling the client why before a protocol close.

    aiohttp closes by itself (1009 for a message over ``max_msg_size``, 1002
    or 1007 for broken frames). The hook lets the connection send a
    ``ServerError`` first, so the client learns what happened.
    """

    on_protocol_close: Callable[[int], Awaitable[None]] | None = None

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        hook = self.on_protocol_close
        if hook is not None and code in (1002, 1007, CLOSE_TOO_BIG) and not self.closed:
            self.on_protocol_close = None
            with contextlib.suppress(Exception):  # the close must happen whatever the hook did
                await hook(code)
            if not message:
                message = b"message too big" if code == CLOSE_TOO_BIG else b"protocol error"
        return await super().close(code=code, message=message, drain=drain)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _close_reason(text: str) -> bytes:
    """A close reason within the 123-byte limit of a close frame."""
    data = text.encode()
    if len(data) <= 120:
        return data
    return data[:117].decode("utf-8", "ignore").encode() + b"..."


class Connection:
    """The service side of one ingress WebSocket, after the upgrade."""

    def __init__(
        self,
        *,
        ws: IngressWebSocket,
        request: web.Request,
        state: SessionState,
        settings: ServiceSettings,
        faults: Faults,
        key: int,
        on_confirmed: Callable[[Connection], None],
    ) -> None:
        self.ws = ws
        self.state = state
        self.key = key
        self._request = request
        self._settings = settings
        self._faults = faults
        self._on_confirmed = on_confirmed
        self._loop = asyncio.get_running_loop()
        self._proto = ServerProtocol()
        self._realtime = settings.pace == "realtime"
        self._active: dict[str, RequestRuntime] = {}  # req_id -> runtime, while producing output
        self._queue: deque[RequestRuntime] = deque()  # output order; the head is playing
        self._closing = False  # a close frame was sent or the connection is gone
        self._close_request: tuple[int, str] | None = None  # see _end()
        self._in_receive = False
        self._done = asyncio.Event()
        self._reader: asyncio.Task[Any] | None = None
        self._pacer: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        # One long-lived timer for the far deadlines (idle timeout, session
        # duration), re-armed only when it fires or must fire earlier: the
        # pacer sleeps twice a frame and must not create and cancel a timer
        # for them each time.
        self._limit_timer: asyncio.TimerHandle | None = None
        self._limit_at = 0.0
        now = self._loop.time()
        self._last_activity = now
        self._deadline = (
            now + settings.max_session_seconds if settings.max_session_seconds else None
        )
        self._decoder_cls: Any = None
        ws.on_protocol_close = self._on_protocol_close

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
                        await self._on_binary(msg.data)
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
        if pacer is not None:
            if not pacer.done():
                pacer.cancel()
            await asyncio.wait({pacer})
            if not pacer.cancelled() and pacer.exception() is not None:
                log.error("avatarkit devserver: pacer failed", exc_info=pacer.exception())
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close(code=CLOSE_NORMAL)
        self._active.clear()
        self._queue.clear()
        st = self.state
        st.closed_at = time.time()
        if st.close_code is None:
            st.close_code = self.ws.close_code
        self._done.set()

    async def shutdown(self, code: int = CLOSE_GOING_AWAY, reason: str = "") -> None:
        """Close the connection from outside (server shutdown) and wait until it is closed."""
        self._end(code, reason)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._done.wait(), self._settings.close_timeout + 1.0)

    def _end(self, code: int, reason: str) -> None:
        """Ask the reader to close with ``code`` (from any task)."""
        if self._closing or self._close_request is not None:
            return
        self._close_request = (code, reason)
        self._wake()
        reader = self._reader
        if self._in_receive and reader is not None and reader is not asyncio.current_task():
            reader.cancel()

    async def _close(self, code: int, reason: str) -> None:
        """Send a close frame (once) and wait for the client's answer (reader task only)."""
        if self._closing:
            return
        self._closing = True
        self.ws.on_protocol_close = None
        self.state.close_code = code
        self.state.close_reason = reason
        self._wake()
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=_close_reason(reason))

    async def _close_or_end(self, code: int, reason: str) -> None:
        if asyncio.current_task() is self._reader:
            await self._close(code, reason)
        else:
            self._end(code, reason)

    def _abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self._closing = True
        self.state.aborted = True
        transport = self._request.transport
        if transport is not None:
            transport.abort()
        self._wake()

    # -- sending ----------------------------------------------------------------

    async def _send(self, data: bytes) -> bool:
        if self._closing or self._close_request is not None:
            return False
        try:
            await self.ws.send_bytes(data)
        except Exception:  # the peer went away; the reader sees it next
            self._closing = True
            self._wake()
            return False
        self.state.messages_sent += 1
        return True

    async def _send_error(self, code: int, message: str, req_id: str = "") -> bool:
        message = _cut(message, _MAX_TEXT)
        self.state.errors_sent.append((code, message))
        return await self._send(
            encode_server_error(self.state.connection_id, req_id, code, message)
        )

    async def _send_state(self, info: RequestState, reason: str = "") -> bool:
        return await self._send(
            encode_playback_state(
                self.state.connection_id, info.req_id, info.state, info.played_ms, reason
            )
        )

    async def _fatal(self, code: int, message: str, close_code: int) -> None:
        """ServerError, then close: the session cannot go on."""
        await self._send_error(code, message)
        await self._close_or_end(close_code, message)

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

    async def _on_binary(self, data: bytes) -> None:
        try:
            event = self._proto.receive(data)
        except ProtocolViolation as exc:
            await self._fatal(exc.code, exc.message, CLOSE_POLICY)
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
        try:
            pcm = req.decode(audio.audio, audio.end, self._decoder_cls, self.state.sample_rate)
        except ValueError as exc:  # OggError derives from ValueError
            await self._fail_request(req, f"invalid Ogg Opus stream for request {req_id}: {exc}")
            return
        if pcm.size:
            if not await self._check_buffer(req, pcm.nbytes):
                return
            info.audio_samples += int(pcm.size)
            req.raw.append(pcm)
            req.buffered += pcm.nbytes
        if audio.end:
            info.end_received = True
        self._wake()

    async def _check_req_id(self, what: str, req_id: str) -> bool:
        """Whether ``req_id`` is short enough; refuses it (code 3) if not.

        Every request is remembered by its id (up to ``MAX_REQUESTS_KEPT``),
        so the id's length bounds that memory. The id itself is not echoed.
        """
        size = len(req_id.encode())
        if size <= MAX_REQ_ID_BYTES:
            return True
        await self._send_error(
            CODE_INVALID_ARGUMENT,
            f"{what}.req_id is {size} bytes long; at most {MAX_REQ_ID_BYTES} bytes are "
            "accepted: use a shorter id",
        )
        return False

    async def _check_buffer(self, req: RequestRuntime, incoming: int) -> bool:
        """Whether ``incoming`` bytes of decoded audio may wait for playback.

        Audio runs ahead of the output (a whole clip may arrive at once); what
        is not analysed yet is held per request and per connection up to the
        server's limits. Over one, the request fails (code 3: the client
        sent too much too early, retrying as is would fail again); the
        session and its other requests go on.
        """
        settings = self._settings
        limit = settings.max_request_audio_bytes
        if req.buffered + incoming > limit:
            where = "for one request"
        else:
            limit = settings.max_connection_audio_bytes
            total = sum(r.buffered for r in self._active.values())
            if total + incoming <= limit:
                return True
            where = "across the requests of this connection"
        await self._fail_request(
            req,
            f"request {req.info.req_id}: more than {limit} bytes of decoded audio would be "
            f"buffered ahead of playback {where} (this server's limit); send audio closer "
            "to real time or split it into shorter requests",
        )
        return False

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
        if HAND_ENVELOPE:
            req.envelope = AnimationEnvelope(self.state.connection_id, req_id, self.state.avatar_id)
        self._active[req_id] = req
        self._queue.append(req)
        return req

    def _retire(self, req: RequestRuntime) -> None:
        req.drop()
        self._active.pop(req.info.req_id, None)
        with contextlib.suppress(ValueError):
            self._queue.remove(req)
        egress = self.state.egress
        if egress is not None and req.info.frames_sent:
            egress.requests_published += 1
            egress.audio_ms_published += req.info.played_ms

    async def _interrupt(self, req: RequestRuntime, reason: str) -> None:
        info = req.info
        info.state = PlaybackState.INTERRUPTED
        info.reason = reason
        info.paused = False
        self._retire(req)
        self._wake()
        await self._send_state(info, reason)

    async def _fail_request(self, req: RequestRuntime, message: str) -> None:
        info = req.info
        info.error = message
        info.state = PlaybackState.INTERRUPTED
        info.reason = "error"
        info.paused = False
        self._retire(req)
        self._wake()
        await self._send_error(CODE_INVALID_ARGUMENT, message, info.req_id)
        if req.started:
            await self._send_state(info, "error")

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

    # -- faults -----------------------------------------------------------------

    async def _run_faults(self) -> None:
        for rule in self._faults.take_actions(
            self.key, self.state.connection_id, self.state.frames_sent, "runtime"
        ):
            await self._apply_fault(rule, handshake=False)

    async def _apply_fault(self, rule: FaultRule, *, handshake: bool) -> None:
        if self._closing or self._close_request is not None:
            return
        if rule.kind == "send_error":
            current = self._queue[0].info.req_id if self._queue else ""
            await self._send_error(rule.code, rule.message, current)
            if handshake:
                close_code = rule.code if 4000 <= rule.code <= 4999 else CLOSE_POLICY
                await self._close_or_end(close_code, rule.message)
        elif rule.kind == "close":
            await self._close_or_end(rule.code, rule.message)
        elif rule.kind == "drop_connection":
            self._abort()
        elif rule.kind == "send_raw":
            data = rule.body or b""
            with contextlib.suppress(Exception):
                if rule.text:
                    await self.ws.send_str(data.decode("utf-8", "replace"))
                else:
                    await self.ws.send_bytes(data)

    # -- the pacer --------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep_until(self, when: float | None, limit: float | None = None) -> None:
        """Sleep until woken, ``when`` (a frame or pause deadline) or ``limit``.

        ``limit`` (the idle or session deadline) uses the connection's
        long-lived timer: an earlier armed one is kept (it wakes the pacer
        early, which then sleeps again), a later one is moved.
        """
        loop = self._loop
        if limit is not None and (self._limit_timer is None or self._limit_at > limit):
            if self._limit_timer is not None:
                self._limit_timer.cancel()
            self._limit_at = limit
            self._limit_timer = loop.call_at(limit, self._on_limit_timer)
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(when, _resolve, waiter) if when is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _on_limit_timer(self) -> None:
        self._limit_timer = None
        self._wake()

    async def _pace(self) -> None:
        try:
            await self._pace_loop()
        except Exception:
            log.exception("avatarkit devserver: error sending output")
            await self._internal_error()

    async def _internal_error(self) -> None:
        await self._fatal(
            CODE_INTERNAL,
            "internal error in the local avatar service (see its log)",
            CLOSE_INTERNAL,
        )

    def _view(self, now: float) -> PacerView:
        """The connection as :func:`~avatarkit.devserver.pacing.next_step` sees it."""
        settings = self._settings
        idle = settings.idle_timeout
        idle_at = self._last_activity + idle if idle else None
        req = self._queue[0] if self._queue else None
        if req is None:
            return PacerView(now, self._realtime, self._deadline, idle_at)
        paused = req.info.paused
        pause_timeout_at = None
        if paused and settings.pause_timeout:
            pause_timeout_at = req.pause_started + settings.pause_timeout
        return PacerView(
            now,
            self._realtime,
            self._deadline,
            idle_at,
            has_head=True,
            head_paused=paused,
            pause_timeout_at=pause_timeout_at,
            head_ready=not paused and req.can_emit(),
            delay_checked=req.delay_checked,
            t0=req.t0,
            frames_sent=req.info.frames_sent,
        )

    async def _pace_loop(self) -> None:
        """Do what :func:`~avatarkit.devserver.pacing.next_step` says until the end."""
        settings = self._settings
        loop = self._loop
        burst = 0
        while not self._closing and self._close_request is None:
            now = loop.time()
            step = next_step(self._view(now))
            kind = step.kind
            if kind is StepKind.SESSION_EXPIRED:
                limit = f"{settings.max_session_seconds:g}"
                await self._send_error(
                    CLOSE_SESSION_DURATION, f"maximum session duration reached ({limit} seconds)"
                )
                self._end(CLOSE_SESSION_DURATION, "maximum session duration reached")
                return
            if kind is StepKind.IDLE_TIMEOUT:
                text = f"no audio input for {settings.idle_timeout:g} seconds"
                await self._send_error(CODE_IDLE, text)
                self._end(CLOSE_NORMAL, text)
                return
            req = self._queue[0] if self._queue else None
            if kind is StepKind.PAUSE_TIMEOUT and req is not None:
                await self._interrupt(req, "pause_timeout")
                continue
            if kind is StepKind.CHECK_DELAY and req is not None:
                req.delay_checked = True
                delay = self._faults.take_delay(
                    self.key, self.state.connection_id, self.state.frames_sent
                )
                if delay:
                    req.t0 = req.t0 + delay if self._realtime else now + delay
                continue
            if kind is StepKind.EMIT and req is not None:
                req.delay_checked = False
                await self._emit(req, now)
                burst += 1
                if burst >= _FAIR_BATCH:
                    burst = 0
                    await asyncio.sleep(0)
                continue
            burst = 0
            await self._sleep_until(step.wake, step.limit)

    async def _emit(self, req: RequestRuntime, now: float) -> None:
        """Send the next frame of ``req`` (the head of the queue)."""
        st = self.state
        info = req.info
        frame = req.pending.popleft()
        last = req.flushed and not req.pending
        announce = not req.started
        if announce:
            req.started = True
            info.state = PlaybackState.PLAYING
        if frame is not None:
            info.frames_sent += 1
            st.frames_sent += 1
        self._last_activity = now
        if last:
            info.end_sent = True
            info.state = PlaybackState.ENDED
            self._retire(req)
        if announce:
            playing = RequestState(info.req_id, info.sample_rate, PlaybackState.PLAYING)
            await self._send_state(playing)
        envelope = req.envelope
        egress = st.egress
        if egress is None:
            payload = encode_frame(frame) if frame is not None else b""
            if envelope is not None:
                await self._send(envelope.encode(last, payload))
            else:
                cid, req_id, avatar = st.connection_id, info.req_id, st.avatar_id
                await self._send(encode_animation(cid, req_id, last, payload, avatar))
        else:
            if frame is not None:
                egress.frames_published += 1
                egress.last_frame = encode_frame(frame)
                egress.published.append((info.req_id, egress.last_frame))
            if last or (info.frames_sent - 1) % _PROGRESS_EVERY == 0:
                egress.progress_signals_sent += 1
                cid, req_id, avatar = st.connection_id, info.req_id, st.avatar_id
                await self._send(encode_animation(cid, req_id, last, b"", avatar))
        if last:
            await self._send_state(info)
        if frame is not None:
            # Fault rules due after this frame (none, nearly always: no coroutine then).
            for rule in self._faults.take_actions(
                self.key, st.connection_id, st.frames_sent, "runtime"
            ):
                await self._apply_fault(rule, handshake=False)


def _own_cancel(task: asyncio.Task[Any] | None) -> bool:
    """Whether the cancellation just caught was only ours (see ``Connection._end``)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is None:  # Python 3.10: no way to tell; a close was requested anyway
        return True
    remaining: int = uncancel()
    return remaining == 0


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
