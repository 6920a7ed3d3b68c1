"""The core of one ingress connection of the local service: state, sending, closing.

:class:`ConnectionCore` holds what both halves of a connection share: the
session and request state, the requests producing output (``_active``, and
``_queue`` in output order), sending (``ServerError``, playback states,
frames), asking for a close from any task (``_end``), failing or
interrupting a request, and injected faults. The pacer
(:mod:`avatarkit.devserver._output`) and the aiohttp reader
(:mod:`avatarkit.devserver._connection`) build on it.

Every close runs in the reader task: aiohttp's close() called from another
task while the reader waits in receive() shuts the TCP connection right after
the close frame, so the client could not answer it. Other tasks (the pacer,
server shutdown) call ``_end()``, which records the close and, if the reader
is idle in receive(), cancels that wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._server_protocol import (
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CODE_INTERNAL,
    CODE_INVALID_ARGUMENT,
)
from ..events import PlaybackState
from ..protocol import (
    CAPABILITY_PLAYBACK_CONTROL,
    CAPABILITY_PLAYBACK_STATE,
    ServerProtocol,
    encode_playback_state,
    encode_server_error,
)
from ._animation import FRAME_MS
from ._faults import FaultRule, Faults
from ._request import RequestRuntime
from ._state import RequestState, SessionState

if TYPE_CHECKING:
    from ._wheel import FrameWheel

__all__ = [
    "MAX_REQ_ID_BYTES",
    "ConnectionCore",
    "IngressWebSocket",
    "ServiceSettings",
    "check_options",
]

log = logging.getLogger("avatarkit.devserver")

CAPABILITIES = (CAPABILITY_PLAYBACK_CONTROL, CAPABILITY_PLAYBACK_STATE)
_PROGRESS_EVERY = 1000 // FRAME_MS  # egress mode: one progress signal per second of audio
_FAIR_BATCH = 32  # fast pace: yield to other connections after this many frames
_BATCH_REALTIME = 10  # frames analysed at a time, just ahead of the output
_BATCH_FAST = 50
_MAX_TEXT = 1000  # ServerError messages are cut to this many characters
MAX_REQ_ID_BYTES = 128
"""Longest ``req_id`` accepted (UTF-8 bytes); longer ones are refused with code 3."""
WRITE_HIGH_WATER = 64 * 1024
"""Bytes queued in a connection's socket above which frames go the awaited way
(which waits for the client to read) instead of the frame wheel's direct writes."""

_WS_HEAD1 = tuple(bytes((0x82, n)) for n in range(126))  # FIN + binary opcode, length
_WS_HEAD2 = struct.Struct("!BBH")  # FIN + binary opcode, 126, 16-bit length
_WS_HEAD8 = struct.Struct("!BBQ")  # FIN + binary opcode, 127, 64-bit length


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


def check_options(
    *,
    pace: str,
    timeouts: dict[str, float | None],
    max_sessions_per_app: int | None,
    max_message_size: int,
    sizes: dict[str, int],
    ssl_context: object,
) -> None:
    """Refuse :class:`~avatarkit.devserver.DevServer` options that cannot work,
    saying which and what is allowed (``ValueError``, ``TypeError``)."""
    if pace not in ("realtime", "fast"):
        raise ValueError(f"pace must be 'realtime' or 'fast', not {pace!r}")
    for name, value in timeouts.items():
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0 seconds (or None for no limit)")
    if max_sessions_per_app is not None and max_sessions_per_app < 0:
        raise ValueError("max_sessions_per_app must be >= 0 (or None for no limit)")
    if max_message_size < 1024:
        raise ValueError("max_message_size must be at least 1024 bytes")
    for name, size in sizes.items():
        if size <= 0:
            raise ValueError(f"{name} must be > 0 bytes")
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(
            "ssl_context must be an ssl.SSLContext (e.g. ssl.create_default_context"
            "(ssl.Purpose.CLIENT_AUTH) with load_cert_chain()), "
            f"not {type(ssl_context).__name__}"
        )


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


class ConnectionCore:
    """State and output primitives of one connection (see the module docstring)."""

    def __init__(
        self,
        *,
        ws: IngressWebSocket,
        request: web.Request,
        state: SessionState,
        settings: ServiceSettings,
        faults: Faults,
        key: int,
        on_confirmed: Callable[[Any], None],
        wheel: FrameWheel | None = None,
    ) -> None:
        self.ws = ws
        self.state = state
        self.key = key
        self._request = request
        # The connection's transport, read once (aiohttp's request.transport is
        # a property chain): the frame wheel writes to it for every frame. It
        # stays the same object for the connection's life; is_closing() tells
        # when it is gone.
        self._transport = request.transport
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
        # The frame wheel (see _wheel.py), and this connection's place in it
        # (-1: not parked).
        self._wheel = wheel if settings.pace == "realtime" else None
        self._park_token = -1

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

    def _send_now(self, data: bytes) -> bool:
        """Send one binary message synchronously (the frame wheel's path).

        Only used while the WebSocket is uncompressed and the socket's buffer
        is below ``WRITE_HIGH_WATER`` (checked by the caller): the frame goes
        straight to the transport, in order with aiohttp's own writes, which
        are synchronous for uncompressed messages too.
        """
        if self._closing or self._close_request is not None:
            return False
        transport = self._transport
        if transport is None or transport.is_closing() or self.ws.closed:
            self._closing = True
            self._wake()
            return False
        n = len(data)
        if n < 126:
            transport.write(_WS_HEAD1[n] + data)
        elif n < 65536:
            transport.write(_WS_HEAD2.pack(0x82, 126, n) + data)
        else:
            transport.write(_WS_HEAD8.pack(0x82, 127, n) + data)
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

    async def _internal_error(self) -> None:
        await self._fatal(
            CODE_INTERNAL,
            "internal error in the local avatar service (see its log)",
            CLOSE_INTERNAL,
        )

    def _wake(self) -> None:
        self._park_token = -1  # out of the frame wheel: the pacer decides
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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
