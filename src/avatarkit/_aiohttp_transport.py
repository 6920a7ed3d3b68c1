"""The WebSocket client on aiohttp, with permessage-deflate (``websocket_compression=True``)."""

from __future__ import annotations

import asyncio
import collections
import ssl
import weakref
from typing import Any

from ._closecodes import NOT_ON_WIRE, WsClose, received_close_code
from ._redact import scrub_error, url_secrets
from ._tls import certificate_error, describe
from .errors import AvatarSDKError, ErrorPhase, classify_http_rejection
from .transport import (
    KEEPALIVE_CLOSE,
    KEEPALIVE_INTERVAL,
    KEEPALIVE_TIMEOUT,
    MAX_MESSAGE_SIZE,
    NO_STATUS_CODE,
    TransportListener,
    _connect_error,
    _redirect_error,
    _RedirectRefused,
    logger,
)


class AiohttpTransport:
    """:class:`Transport` on aiohttp's WebSocket client, with permessage-deflate.

    What ``SessionConfig.websocket_compression=True`` selects: picows has no
    permessage-deflate, aiohttp does. It costs more client CPU per received
    frame than :class:`PicowsTransport` (the library's per-message machinery
    plus inflating every frame; figures in BENCHMARKS.md as of commit 5095348, "Compression") and
    saves bandwidth; pick it for thin links, not for many sessions per core.

    Differences from picows, by aiohttp's design: one reader task and one
    writer task per connection (``send()`` queues, the writer keeps the
    order and ``drain()`` waits for it); a refused upgrade is classified from
    its HTTP status alone, as aiohttp does not hand over the answer's body.
    Connections share one aiohttp client per event loop.
    """

    def __init__(
        self,
        *,
        compress: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_interval: float | None = KEEPALIVE_INTERVAL,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
    ) -> None:
        #: TLS context for ``wss://`` (``None``: the default verified one); the
        #: session sets it from ``SessionConfig.ssl_context``.
        self.ssl_context = ssl_context
        #: Seconds of silence from the peer before a ping (``None``: no
        #: pings) and seconds to wait for its pong; set from ``SessionConfig``.
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
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
        # Each failure is mapped inside its except block but raised after it:
        # raised inside, the error would keep aiohttp's exception as its
        # __context__ (``from None`` only hides it from tracebacks), and that
        # text holds the URL, with the session token under query auth.
        failure: AvatarSDKError | None = None
        try:
            ws = await asyncio.wait_for(
                ws_client().ws_connect(
                    url,
                    headers=headers,
                    compress=self._compress,
                    max_msg_size=MAX_MESSAGE_SIZE,  # larger: aiohttp closes with 1009
                    autoclose=False,  # _answer_close() does it (bounded)
                    autoping=True,
                    # aiohttp's keepalive: a ping after `heartbeat` seconds
                    # with nothing received; no pong in time fails the
                    # connection with ServerTimeoutError (see _read).
                    heartbeat=self.keepalive_interval,
                    ssl=self.ssl_context if self.ssl_context is not None else True,
                ),
                timeout,
            )
        except _RedirectRefused as exc:
            failure = _redirect_error(exc.status, url)
        except aiohttp.WSServerHandshakeError as exc:
            if 300 <= exc.status < 400:
                failure = _redirect_error(exc.status, url)
            elif not exc.status or exc.status == 101:
                failure = _connect_error(f"WebSocket handshake failed: {exc.message}", url)
            else:
                failure = scrub_error(
                    classify_http_rejection(exc.status, None, phase=ErrorPhase.WEBSOCKET_CONNECT),
                    url_secrets(url, headers),
                )
        except (asyncio.TimeoutError, TimeoutError):
            failure = _connect_error(f"WebSocket did not open within {timeout:g} s", url)
        except (aiohttp.ClientError, OSError) as exc:
            cert = certificate_error(exc)
            if cert is not None:
                failure = _connect_error(describe(cert), url)
            else:
                # aiohttp's text can hold the URL; _connect_error masks the token.
                failure = _connect_error(f"cannot connect: {exc}", url)
        except ValueError as exc:  # an address that cannot be looked up (IDNA)
            failure = _connect_error(f"unusable address: {exc}", url)
        if failure is not None:
            raise failure
        if self.keepalive_interval is not None and hasattr(ws, "_pong_heartbeat"):
            # aiohttp waits heartbeat/2 for the pong and has no option for
            # it; our timeout is configured separately. (Set before the first
            # ping, which is `keepalive_interval` away.)
            ws._pong_heartbeat = self.keepalive_timeout
            _forgive_late_pong(ws)
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
                    self._close_code = (
                        received_close_code(int(msg.data)) if msg.data else NO_STATUS_CODE
                    )
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
                    if isinstance(msg.data, aiohttp.ServerTimeoutError):  # no pong in time
                        self._close_code, self._close_reason = KEEPALIVE_CLOSE
                        break
                    error_code = getattr(msg.data, "code", None)
                    if isinstance(error_code, int) and self._close_code is None:
                        self._close_code = error_code
                    self._close_reason = f"invalid frame from the server: {msg.data}"
                    break
                elif kind is aiohttp.WSMsgType.CLOSED:
                    # The keepalive can fail the connection while this task is
                    # not waiting in receive(): then it finds it closed.
                    if isinstance(ws.exception(), aiohttp.ServerTimeoutError):
                        self._close_code, self._close_reason = KEEPALIVE_CLOSE
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
        _release(self._ws)
        # The end is reported once: drop the listener (the session) so that a
        # closed session and its transport are freed by reference counting,
        # without the cyclic collector (issue 15).
        listener, self._listener = self._listener, None
        assert listener is not None
        listener.on_closed(self._close_code, self._close_reason)

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

    def can_send_now(self) -> bool:
        """Whether :meth:`send` would succeed and :meth:`drain` return at once."""
        return self.is_open and not self._outbox

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
            _release(ws)

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


def _release(ws: Any) -> None:
    """Let a WebSocket that ended be freed by reference counting, at once.

    aiohttp re-arms its heartbeat timer when data (the close answer) arrives
    after its own close began; left alone, the timer keeps the WebSocket
    (its response, headers, the session's log context) alive for up to the
    heartbeat interval. And its connection's protocol keeps the WebSocket's
    data-received callback while the WebSocket keeps the protocol (through
    its reader): a cycle only the garbage collector frees. Both are aiohttp
    internals; without them (another aiohttp version) nothing changes.
    """
    cancel = getattr(ws, "_cancel_heartbeat", None)
    if cancel is not None:
        cancel()
    protocol: Any = getattr(getattr(ws, "_reader", None), "_protocol", None)
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None


def _forgive_late_pong(ws: Any) -> None:
    """Do not fail a connection whose pong arrived in the same loop turn as its deadline.

    After the event loop stalls past ``keepalive_timeout``, the pong read
    during the stall and aiohttp's pong timer come due in the same loop turn;
    aiohttp runs the timer first and notices the data only on the next turn
    (``_need_heartbeat_reset`` is set meanwhile), so a healthy connection
    would fail with "no pong". Data received is a sign of life: then the
    timer does nothing and aiohttp's pending reset re-arms the heartbeat.
    Without those aiohttp internals (another aiohttp version), nothing changes.
    """
    fail = getattr(type(ws), "_pong_not_received", None)
    if fail is None or not hasattr(ws, "_need_heartbeat_reset"):
        return
    # A weak reference: the function is stored on the WebSocket itself, so a
    # strong one would make every closed WebSocket cyclic garbage.
    try:
        ws_ref = weakref.ref(ws)
    except TypeError:  # not weakly referenceable: keep aiohttp's own behaviour
        return

    def pong_not_received() -> None:
        live = ws_ref()
        if live is None or live._need_heartbeat_reset:  # data arrived: the peer is alive
            return
        fail(live)

    try:
        ws._pong_not_received = pong_not_received
    except AttributeError:  # slots: keep aiohttp's own behaviour
        return
