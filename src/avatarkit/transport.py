"""The WebSocket client, behind one small interface.

:class:`Transport` is all the session needs: connect with headers, send a
binary message, close, and a :class:`TransportListener` told of each
incoming message and of the end of the connection. The default,
:class:`PicowsTransport`, uses picows: its callback-per-frame design puts
nothing (no queue, no task, no per-message object) between the socket and
the protocol core, and it measured cheapest per received frame here (see
BENCHMARKS.md). picows offers no permessage-deflate, which the benchmarks
show costs CPU on every frame for small protobuf messages; the service does
not need it, so compression is off.

picows can run its sockets on aiofastnet's transports instead of the event
loop's own. We let it do so on asyncio's default loop, where they cost ~10%
less CPU per received frame, but not on uvloop: there the loop's transport
costs the same per frame, holds ~5 KiB less memory per connection and sets a
connection up faster (figures in BENCHMARKS.md, "Transport choice").

Another library can be plugged in by implementing :class:`Transport` and
passing ``transport_factory`` to :class:`avatarkit.AvatarSession`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from collections.abc import Callable
from typing import Any, Protocol

import picows

from ._advice import check_endpoint
from ._closecodes import NOT_ON_WIRE, WsClose
from ._redact import redact_text as _redact
from ._redact import redact_url
from .errors import AvatarSDKError, AvatarSDKErrorCode, ErrorPhase, classify_http_rejection

__all__ = [
    "AiohttpTransport",
    "PicowsTransport",
    "Transport",
    "TransportFactory",
    "TransportListener",
]

logger = logging.getLogger("avatarkit.transport")


class _RedactingAdapter(logging.LoggerAdapter):  # type: ignore[type-arg, unused-ignore]
    """picows's logger for our connections, with session tokens masked.

    picows logs the whole upgrade request at its lowest level (9); this
    adapter formats such records itself and masks ``sessionKey`` and
    ``X-Session-Key`` before they reach any handler. (An adapter, not a
    filter: picows would otherwise log through per-connection child loggers.)
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        self.logger.log(level, _redact(text), **kwargs)


#: picows writes its records for our connections here (logger ``avatarkit.picows``).
picows_logger = _RedactingAdapter(logging.getLogger("avatarkit.picows"), {})
_BINARY = picows.WSMsgType.BINARY
_HEADROOM = 14  # the largest client frame header picows writes in front


#: Largest incoming message (whole, or reassembled from fragments): 16 MiB.
#: The service sends animation frames well under 1 MiB; a larger message
#: ends the session with close code 1009 instead of growing client memory.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024

#: Reported as the close code when the server's close frame carried none (RFC 6455).
NO_STATUS_CODE = WsClose.NO_STATUS


def _parse_close(payload: bytes) -> tuple[int, str | None]:
    """``(code, reason)`` of a close frame's payload, however malformed.

    No code (an empty payload, or a single byte, which cannot hold one) is
    :data:`NO_STATUS_CODE`; a reason that is not UTF-8 is decoded with
    replacement characters rather than losing the code with it.
    """
    if len(payload) < 2:
        return NO_STATUS_CODE, None
    code = int.from_bytes(payload[:2], "big")
    reason = payload[2:].decode("utf-8", "replace") or None
    return code, reason


def _use_aiofastnet(loop: asyncio.AbstractEventLoop) -> bool | None:
    """``False`` on uvloop (its transports are as fast and lighter), else picows's default."""
    return False if type(loop).__module__.startswith("uvloop") else None


class TransportListener(Protocol):
    """What a transport reports to its owner."""

    def on_message(self, data: bytes) -> None:
        """One complete binary message arrived."""

    def on_text(self) -> None:
        """A text frame arrived (not part of the protocol)."""

    def on_closed(self, close_code: int | None, close_reason: str | None) -> None:
        """The connection ended; ``close_code`` is ``None`` when no close frame came."""


class Transport(Protocol):
    """A connected (or connecting) WebSocket, as the session sees it."""

    async def connect(
        self, url: str, headers: dict[str, str], timeout: float, listener: TransportListener
    ) -> None:
        """Open the connection; raise :class:`AvatarSDKError` (phase websocket_connect)."""

    def send(self, data: bytes) -> None:
        """Queue one binary message; raise ``ConnectionError`` when closed."""

    async def drain(self) -> None:
        """Wait while the socket's write buffer is over its high-water mark.

        Raise ``ConnectionError`` when the connection ends while waiting (what
        was queued may not have been sent).
        """

    async def close(
        self, code: int = WsClose.NORMAL, reason: str = "", timeout: float = 2.0
    ) -> None:
        """Close politely (close frame, wait for the peer), then drop the socket.

        Returns within about ``timeout`` seconds whatever the peer does: a
        peer that stopped reading (so the close frame cannot even be written)
        gets its connection dropped without a handshake.
        """

    def abort(self) -> None:
        """Drop the connection at once."""

    @property
    def is_open(self) -> bool:
        """Whether messages can still be sent."""


TransportFactory = Callable[[], Transport]


def _connect_error(message: str, url: str) -> AvatarSDKError:
    return AvatarSDKError(
        AvatarSDKErrorCode.connectionFailed,
        f"{_redact(message)} ({redact_url(url)})" + check_endpoint("ingress_endpoint_url"),
        phase=ErrorPhase.WEBSOCKET_CONNECT.value,
    )


def _redirect_error(status: int, url: str) -> AvatarSDKError:
    """A 3xx answer to the upgrade: never followed.

    Following it would send the session token (header or query) to whatever
    address the answer names; the configured endpoint must be the final one.
    """
    return AvatarSDKError(
        AvatarSDKErrorCode.connectionFailed,
        f"the server answered the WebSocket upgrade with a redirect (HTTP {status}) "
        f"({redact_url(url)}); redirects are not followed, so the session token never "
        "goes to another address: set ingress_endpoint_url to the final address",
        phase=ErrorPhase.WEBSOCKET_CONNECT.value,
        http_status=status,
    )


class _RedirectRefused(Exception):
    """Raised from aiohttp's redirect hook to stop it following a 3xx."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _refuse_redirect(session: Any, context: Any, params: Any) -> None:
    """aiohttp ``on_request_redirect`` hook: release the answer, stop there."""
    params.response.close()
    raise _RedirectRefused(int(params.response.status))


class PicowsTransport:
    """:class:`Transport` on picows."""

    __slots__ = (
        "_abandoned",
        "_close_called",
        "_closed",
        "_closed_waiter",
        "_drained",
        "_listener",
        "_ws",
        "_ws_listener",
    )

    def __init__(self) -> None:
        self._ws: object | None = None
        self._listener: TransportListener | None = None
        self._ws_listener: object | None = None
        self._closed = False
        self._closed_waiter: asyncio.Future[None] | None = None  # made by close()
        self._drained: asyncio.Event | None = None
        self._abandoned = False
        self._close_called = False

    async def connect(
        self, url: str, headers: dict[str, str], timeout: float, listener: TransportListener
    ) -> None:
        """Open the WebSocket; map every failure to an :class:`AvatarSDKError`."""
        self._listener = listener
        ssl_context = ssl.create_default_context() if url.startswith("wss:") else None
        try:
            ws, ws_listener = await picows.ws_connect(
                lambda: _PicowsListener(self, listener),
                url,
                ssl_context=ssl_context,
                websocket_handshake_timeout=timeout,
                extra_headers=headers,
                max_frame_size=MAX_MESSAGE_SIZE,  # larger: picows closes with 1009
                # Pongs are ours (_PicowsListener.on_ws_frame): picows's own
                # answer every ping even while the peer does not read.
                enable_auto_pong=False,
                max_redirects=0,  # a 3xx is an error: the token stays with this host
                # Frames are ~0.1-1 KB; start small (picows grows the buffer
                # for larger messages) to keep memory per session low.
                read_buffer_init_size=2048,
                use_aiofastnet=_use_aiofastnet(asyncio.get_running_loop()),
                logger_name=picows_logger,
            )
        except picows.WSHandshakeError as exc:
            response = exc.response
            status = int(response.status) if response is not None else None
            if status is None:
                raise _connect_error(f"WebSocket handshake failed: {exc}", url) from None
            if 300 <= status < 400:
                raise _redirect_error(status, url) from None
            raise classify_http_rejection(
                status, exc.raw_body, phase=ErrorPhase.WEBSOCKET_CONNECT.value
            ) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise _connect_error(f"WebSocket did not open within {timeout:g} s", url) from None
        except asyncio.CancelledError:
            # picows finishes an upgrade already under way even when cancelled:
            # make sure that connection is dropped and reports nothing.
            self._abandoned = True
            if self._ws is not None:  # the upgrade completed just before the cancel
                self._ws.disconnect(graceful=False)  # type: ignore[attr-defined]
            raise
        except (OSError, picows.WSError) as exc:
            raise _connect_error(f"cannot connect: {exc}", url) from None
        if self._ws is None:
            # picows returns normally when the connection is lost before the
            # upgrade answer is complete; our listener was never connected.
            raise _connect_error("connection lost during the WebSocket upgrade", url)
        self._ws = ws
        self._ws_listener = ws_listener
        # picows keeps the upgrade request and response for the connection's
        # life; nothing reads them after the handshake. Their header maps are
        # ~2.5 KiB per connection (and the request's holds the session
        # token), so empty them.
        for message in (ws.request, ws.response):
            upgrade_headers = getattr(message, "headers", None)
            if upgrade_headers is not None:
                upgrade_headers.clear()
        request = ws.request
        if request is not None and b"?" in request.path:
            # With query auth the path holds the token: keep only the route.
            request.path = request.path.partition(b"?")[0]

    @property
    def is_open(self) -> bool:
        """Whether messages can still be sent."""
        ws = self._ws
        return ws is not None and not self._closed and not ws.is_close_frame_sent  # type: ignore[attr-defined]

    def send(self, data: bytes) -> None:
        """Queue one binary message."""
        ws = self._ws
        if ws is None or self._closed or ws.is_close_frame_sent:  # type: ignore[attr-defined]
            raise ConnectionError("WebSocket is closed")
        # picows's send() copies the message into a per-connection buffer that
        # keeps its largest size for the connection's life (an audio chunk
        # grows it by ~0.8 KiB, a whole clip by its size). One throw-away copy
        # with room for the frame header in front costs the same copy and
        # leaves nothing behind; picows masks it in place and copies only what
        # the socket did not take at once.
        framed = bytearray(_HEADROOM)
        framed += data
        ws.send_reuse_external_bytearray(_BINARY, framed, _HEADROOM)  # type: ignore[attr-defined]

    async def drain(self) -> None:
        """Wait while the write buffer is over its high-water mark.

        Raise ``ConnectionError`` when the connection ended meanwhile.
        """
        drained = self._drained
        if drained is not None:
            await drained.wait()
            if self._closed:
                raise ConnectionError("WebSocket closed before the message was sent")

    async def close(
        self, code: int = WsClose.NORMAL, reason: str = "", timeout: float = 2.0
    ) -> None:
        """Send a close frame, wait up to ``timeout`` for the peer, then drop.

        When the peer answers, the connection is already closed by then;
        otherwise (silence, or a peer that stopped reading, so even the close
        frame sits in the write buffer) the socket is aborted: a graceful
        close would wait for that buffer to drain, i.e. forever.
        """
        ws = self._ws
        if ws is None or self._closed:
            return
        self._close_called = True
        try:
            if not ws.is_close_frame_sent:  # type: ignore[attr-defined]
                ws.send_close(picows.WSCloseCode(code), reason.encode())  # type: ignore[attr-defined]
            try:
                self._closed_waiter = asyncio.get_running_loop().create_future()
                await asyncio.wait_for(self._closed_waiter, timeout)
            except (asyncio.TimeoutError, TimeoutError):
                logger.debug("peer did not answer the close frame in %.1f s", timeout)
        finally:
            if not self._closed:
                ws.disconnect(graceful=False)  # type: ignore[attr-defined]
            await ws.wait_disconnected()  # type: ignore[attr-defined]

    def abort(self) -> None:
        """Drop the connection without a close handshake."""
        ws = self._ws
        if ws is not None:
            ws.disconnect(graceful=False)  # type: ignore[attr-defined]


class _PicowsListener(picows.WSListener):
    """Feeds frames straight into the session; reassembles fragments."""

    __slots__ = ("close_info", "fragments", "listener", "on_message", "owner")

    def __init__(self, owner: PicowsTransport, listener: TransportListener) -> None:
        self.owner = owner
        self.close_info: tuple[int, str | None] | None = None  # the peer's close frame
        self.listener = listener
        self.on_message = listener.on_message  # bound once: called per frame
        self.fragments: bytearray | None = None

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        if self.owner._abandoned:
            transport.disconnect(graceful=False)
        else:
            self.owner._ws = transport  # known before ws_connect() returns

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is _BINARY:
            if frame.fin:
                self.on_message(frame.get_payload_as_bytes())
            else:
                self.fragments = bytearray(frame.get_payload_as_memoryview())
        elif msg_type is picows.WSMsgType.CONTINUATION:
            if self.fragments is None:
                return
            if len(self.fragments) + frame.payload_size > MAX_MESSAGE_SIZE:
                self.fragments = None
                self.close_info = (WsClose.TOO_BIG, f"message larger than {MAX_MESSAGE_SIZE} bytes")
                transport.send_close(picows.WSCloseCode.MESSAGE_TOO_BIG)
                transport.disconnect(graceful=False)
                return
            self.fragments += frame.get_payload_as_memoryview()
            if frame.fin:
                data, self.fragments = bytes(self.fragments), None
                self.on_message(data)
        elif msg_type is picows.WSMsgType.CLOSE:
            code, reason = _parse_close(frame.get_payload_as_bytes())
            self.close_info = (code, reason)
            # Echo the code (1000 for a code-less close: picows always writes
            # two code bytes, and 0 or 1005 must not go on the wire).
            if not transport.is_close_frame_sent:  # else it answers our close()
                echo = code if 1000 <= code < 5000 and code not in NOT_ON_WIRE else WsClose.NORMAL
                transport.send_close(picows.WSCloseCode(echo))
            transport.disconnect()
        elif msg_type is picows.WSMsgType.PING:
            # Answered only while the socket takes our writes: a peer that
            # floods pings without reading cannot pile pongs up in memory
            # (RFC 6455 lets an endpoint answer only the latest ping).
            if self.owner._drained is None:
                transport.send_pong(frame.get_payload_as_bytes())
        elif msg_type is picows.WSMsgType.TEXT:
            self.listener.on_text()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        if self.owner._abandoned:
            return
        # None when no close frame came (the connection dropped); our own
        # parse of the close frame otherwise (picows's drops the code when
        # the reason is not UTF-8).
        code: int | None = None
        reason: str | None = None
        owner = self.owner
        if self.close_info is not None:
            code, reason = self.close_info
        elif not owner._close_called:
            # picows failed the connection on a malformed frame (a close
            # frame with a 1-byte payload or a reason that is not UTF-8,
            # RFC 6455 7.1.7) before handing it over: report the code it
            # closed with (1002/1007) rather than no code at all.
            handshake = transport.close_handshake
            sent = handshake.sent if handshake is not None else None
            if sent is not None:
                code = int(sent.code.value)
                reason = f"invalid frame from the server: {sent.reason}"
        owner._closed = True
        waiter = owner._closed_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if owner._drained is not None:
            owner._drained.set()
        self.listener.on_closed(code, reason)

    def pause_writing(self) -> None:
        self.owner._drained = asyncio.Event()

    def resume_writing(self) -> None:
        drained = self.owner._drained
        if drained is not None:
            drained.set()
            self.owner._drained = None


class AiohttpTransport:
    """:class:`Transport` on aiohttp's WebSocket client, with permessage-deflate.

    What ``SessionConfig.websocket_compression=True`` selects: picows has no
    permessage-deflate, aiohttp does. It costs more client CPU per received
    frame than :class:`PicowsTransport` (the library's per-message machinery
    plus inflating every frame; figures in BENCHMARKS.md, "Compression") and
    saves bandwidth; pick it for thin links, not for many sessions per core.

    Differences from picows, by aiohttp's design: one reader task and one
    writer task per connection (``send()`` queues, the writer keeps the
    order and ``drain()`` waits for it); a refused upgrade is classified from
    its HTTP status alone, as aiohttp does not hand over the answer's body.
    Connections share one aiohttp client per event loop.
    """

    def __init__(self, *, compress: bool = True) -> None:
        self._compress = 15 if compress else 0
        self._ws: Any = None  # aiohttp.ClientWebSocketResponse, imported on use
        self._listener: TransportListener | None = None
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._outbox: collections.deque[bytes] = collections.deque()
        self._wake_writer: asyncio.Event | None = None
        self._drained: asyncio.Event | None = None
        self._closed = False
        self._close_code: int | None = None
        self._close_reason: str | None = None

    @property
    def compression_negotiated(self) -> bool:
        """Whether the server accepted permessage-deflate."""
        return bool(self._ws is not None and self._ws.compress)

    async def connect(
        self, url: str, headers: dict[str, str], timeout: float, listener: TransportListener
    ) -> None:
        """Open the WebSocket; map every failure to an :class:`AvatarSDKError`."""
        import aiohttp

        from ._loopguard import ws_client

        self._listener = listener
        try:
            ws = await asyncio.wait_for(
                ws_client().ws_connect(
                    url,
                    headers=headers,
                    compress=self._compress,
                    max_msg_size=MAX_MESSAGE_SIZE,  # larger: aiohttp closes with 1009
                    autoclose=False,  # _answer_close() does it (bounded)
                    autoping=True,
                ),
                timeout,
            )
        except _RedirectRefused as exc:
            raise _redirect_error(exc.status, url) from None
        except aiohttp.WSServerHandshakeError as exc:
            if 300 <= exc.status < 400:
                raise _redirect_error(exc.status, url) from None
            if not exc.status or exc.status == 101:
                raise _connect_error(f"WebSocket handshake failed: {exc.message}", url) from None
            raise classify_http_rejection(
                exc.status, None, phase=ErrorPhase.WEBSOCKET_CONNECT.value
            ) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise _connect_error(f"WebSocket did not open within {timeout:g} s", url) from None
        except (aiohttp.ClientError, OSError) as exc:
            # aiohttp's text can hold the URL; _connect_error masks the token.
            raise _connect_error(f"cannot connect: {exc}", url) from None
        self._ws = ws
        loop = asyncio.get_running_loop()
        self._wake_writer = asyncio.Event()
        self._reader = loop.create_task(self._read(), name="avatarkit-ws-reader")
        self._writer = loop.create_task(self._write(), name="avatarkit-ws-writer")

    async def _read(self) -> None:
        import aiohttp

        ws, listener = self._ws, self._listener
        assert ws is not None and listener is not None
        try:
            while True:
                msg = await ws.receive()
                kind = msg.type
                if kind is aiohttp.WSMsgType.BINARY:
                    listener.on_message(msg.data)
                elif kind is aiohttp.WSMsgType.TEXT:
                    listener.on_text()
                elif kind is aiohttp.WSMsgType.CLOSE:
                    self._close_code = int(msg.data) if msg.data else NO_STATUS_CODE
                    self._close_reason = msg.extra or None
                    await self._answer_close(ws, self._close_code)
                    break
                elif kind is aiohttp.WSMsgType.CLOSING:
                    break  # our close() runs the handshake from here
                elif kind is aiohttp.WSMsgType.ERROR:
                    # A malformed frame (e.g. a close frame with a 1-byte
                    # payload or a reason that is not UTF-8): aiohttp fails
                    # the connection with 1002/1007 and drops the frame;
                    # report that code rather than none.
                    logger.debug("WebSocket error: %r", msg.data)
                    error_code = getattr(msg.data, "code", None)
                    if isinstance(error_code, int) and self._close_code is None:
                        self._close_code = error_code
                    self._close_reason = f"invalid frame from the server: {msg.data}"
                    break
                elif kind is aiohttp.WSMsgType.CLOSED:
                    break
        except asyncio.CancelledError:
            # The event loop is shutting down with this connection open: drop
            # it (this task may be cancelled before the loop guard gets to the
            # session) and end it as "going away", not as a lost connection.
            self._close_code, self._close_reason = WsClose.GOING_AWAY, "event loop shutting down"
            self.abort()
            raise
        finally:
            self._finish()

    async def _answer_close(self, ws: Any, code: int) -> None:
        """Echo the server's close frame and drop the connection.

        Done here rather than by aiohttp's autoclose: for a close frame
        without a code aiohttp (which notes it as code 0) would wait up to
        10 s for a second close frame before dropping the connection.
        """
        if ws.closed:
            return
        # aiohttp's close() drops the connection right after the echo when
        # it knows the peer's code; "no code" (0) would make it wait.
        ws._close_code = code
        echo = code if 1000 <= code < 5000 and code not in NOT_ON_WIRE else WsClose.NORMAL
        try:
            await ws.close(code=echo)
        except (ConnectionError, RuntimeError, OSError):  # gone already: nothing to answer
            logger.debug("could not answer the server's close frame", exc_info=True)

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._wake_writer is not None:
            self._wake_writer.set()
        if self._drained is not None:
            self._drained.set()
        assert self._listener is not None
        self._listener.on_closed(self._close_code, self._close_reason)

    async def _write(self) -> None:
        ws, outbox, wake = self._ws, self._outbox, self._wake_writer
        assert ws is not None and wake is not None
        while True:
            while outbox and not self._closed:
                try:
                    await ws.send_bytes(outbox[0])
                except (ConnectionError, RuntimeError):
                    # The reader reports the end of the connection; what is
                    # left in the outbox was not sent (drain() raises).
                    break
                except Exception:
                    logger.exception("avatarkit: sending on the WebSocket failed; dropping it")
                    self.abort()
                    break
                outbox.popleft()
            if self._drained is not None:
                self._drained.set()
            if self._closed:  # checked after every send: the end may come during one
                return
            wake.clear()
            await wake.wait()

    @property
    def is_open(self) -> bool:
        """Whether messages can still be sent."""
        return self._ws is not None and not self._closed and not self._ws.closed

    def send(self, data: bytes) -> None:
        """Queue one binary message (the writer task sends it, in order)."""
        if not self.is_open:
            raise ConnectionError("WebSocket is closed")
        self._outbox.append(data)
        assert self._wake_writer is not None
        self._wake_writer.set()

    async def drain(self) -> None:
        """Wait until the writer task has handed every queued message to aiohttp.

        Raise ``ConnectionError`` when the connection ended with messages unsent.
        """
        while self._outbox and not self._closed:
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            await self._drained.wait()
        if self._closed and self._outbox:
            raise ConnectionError("WebSocket closed before the message was sent")

    async def close(
        self, code: int = WsClose.NORMAL, reason: str = "", timeout: float = 2.0
    ) -> None:
        """Send what is queued and a close frame, wait up to ``timeout`` in all
        for the peer, then drop the connection."""
        ws = self._ws
        if ws is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            try:  # what send() queued goes out before the close frame
                if self._outbox:
                    await asyncio.wait_for(self.drain(), timeout)
            except ConnectionError:
                pass  # already gone; the reader reports how
            except (asyncio.TimeoutError, TimeoutError):
                logger.warning(
                    "avatarkit: %d queued message(s) not sent within %.1f s of close()",
                    len(self._outbox),
                    timeout,
                )
            if not ws.closed:
                try:
                    await asyncio.wait_for(
                        ws.close(code=code, message=reason.encode()),
                        max(0.0, deadline - loop.time()),
                    )
                except (asyncio.TimeoutError, TimeoutError):
                    logger.debug("peer did not answer the close frame in %.1f s", timeout)
        finally:
            self.abort()
            tasks = [t for t in (self._reader, self._writer) if t is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    def abort(self) -> None:
        """Drop the connection at once; the reader then reports the end.

        The socket is aborted, not closed: a close waits for the write
        buffer to drain, which never happens when the peer stopped reading.
        """
        ws = self._ws
        if ws is None:
            return
        conn = ws._conn  # aiohttp's connection of this WebSocket
        sock = conn.transport if conn is not None else None
        if sock is not None:
            sock.abort()
        ws._response.close()  # aiohttp's own way to release a WebSocket's connection
        if self._wake_writer is not None:
            self._wake_writer.set()
