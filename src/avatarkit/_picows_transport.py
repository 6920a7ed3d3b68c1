"""The default WebSocket client, on picows: one callback per frame, no reader task or queue."""

from __future__ import annotations

import asyncio
import ssl

import picows

from ._closecodes import NOT_ON_WIRE, WsClose
from ._redact import scrub_error, url_secrets
from ._tls import certificate_error, client_context, describe
from .errors import AvatarSDKError, ErrorPhase, classify_http_rejection
from .transport import (
    _BINARY,
    _HEADROOM,
    KEEPALIVE_CLOSE,
    KEEPALIVE_INTERVAL,
    KEEPALIVE_TIMEOUT,
    MAX_MESSAGE_SIZE,
    TransportListener,
    _connect_error,
    _parse_close,
    _redirect_error,
    _use_aiofastnet,
    logger,
    picows_logger,
)


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
        "keepalive_interval",
        "keepalive_timeout",
        "ssl_context",
    )

    def __init__(
        self,
        *,
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
        """Open the WebSocket; map every failure to an :class:`AvatarSDKError`.

        ``timeout`` bounds the whole open: TCP connect, TLS handshake and
        upgrade (picows's own handshake timeout covers only the upgrade;
        asyncio's TLS timeout is 60 s and a TCP connect may never finish).
        """
        self._listener = listener
        ssl_context = client_context(self.ssl_context) if url.startswith("wss:") else None
        interval, reply_timeout = self.keepalive_interval, self.keepalive_timeout
        failure: AvatarSDKError | None = None
        try:
            connecting = picows.ws_connect(
                lambda: _PicowsListener(self, listener),
                url,
                ssl_context=ssl_context,
                websocket_handshake_timeout=timeout,
                extra_headers=headers,
                max_frame_size=MAX_MESSAGE_SIZE,  # larger: picows closes with 1009
                # Pongs are ours (_PicowsListener.on_ws_frame): picows's own
                # answer every ping even while the peer does not read.
                enable_auto_pong=False,
                # Keepalive is picows's: a ping after `interval` seconds with
                # nothing received, then, without a pong within
                # `reply_timeout`, a close frame and the socket dropped
                # (_PicowsListener reports it as KEEPALIVE_CLOSE). picows
                # wants reply_timeout <= idle timeout.
                enable_auto_ping=interval is not None,
                auto_ping_idle_timeout=max(interval or reply_timeout, reply_timeout),
                auto_ping_reply_timeout=reply_timeout,
                auto_ping_strategy=picows.WSAutoPingStrategy.PING_WHEN_IDLE,
                max_redirects=0,  # a 3xx is an error: the token stays with this host
                # Frames are ~0.1-1 KB; start small (picows grows the buffer
                # for larger messages) to keep memory per session low.
                read_buffer_init_size=2048,
                use_aiofastnet=_use_aiofastnet(asyncio.get_running_loop()),
                logger_name=picows_logger,
            )
            ws, ws_listener = await asyncio.wait_for(connecting, timeout)
        except picows.WSHandshakeError as exc:
            response = exc.response
            status = int(response.status) if response is not None else None
            if status is None:
                failure = _connect_error(f"WebSocket handshake failed: {exc}", url)
            elif 300 <= status < 400:
                failure = _redirect_error(status, url)
            else:
                failure = scrub_error(
                    classify_http_rejection(
                        status, exc.raw_body, phase=ErrorPhase.WEBSOCKET_CONNECT
                    ),
                    url_secrets(url, headers),
                )
        except (asyncio.TimeoutError, TimeoutError):
            self._abandon()
            failure = _connect_error(f"WebSocket did not open within {timeout:g} s", url)
        except asyncio.CancelledError:
            self._abandon()
            raise
        except (OSError, picows.WSError) as exc:
            cert = certificate_error(exc)
            if cert is not None:
                failure = _connect_error(describe(cert), url)
            else:
                failure = _connect_error(f"cannot connect: {exc}", url)
        except ValueError as exc:  # an address that cannot be looked up (IDNA, port)
            failure = _connect_error(f"unusable address: {exc}", url)
        if failure is not None:
            # Raised here, not in the except blocks: there it would keep picows's
            # exception (the answer's body, which may echo the URL and its
            # session token) as __context__.
            raise failure
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

    def _abandon(self) -> None:
        """Drop a connection whose open was cancelled or timed out.

        picows finishes an upgrade already under way even when cancelled:
        make sure that connection is dropped and reports nothing.
        """
        self._abandoned = True
        if self._ws is not None:  # the upgrade completed just before the cancel
            self._ws.disconnect(graceful=False)  # type: ignore[attr-defined]

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

    def can_send_now(self) -> bool:
        """Whether :meth:`send` would succeed and :meth:`drain` return at once."""
        ws = self._ws
        return (
            ws is not None
            and not self._closed
            and self._drained is None
            and not ws.is_close_frame_sent  # type: ignore[attr-defined]
        )

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

    __slots__ = ("close_info", "fragments", "listener", "on_message", "owner", "ping_pending")

    def __init__(self, owner: PicowsTransport, listener: TransportListener) -> None:
        self.owner = owner
        self.close_info: tuple[int, str | None] | None = None  # the peer's close frame
        self.listener = listener
        self.on_message = listener.on_message  # bound once: called per frame
        self.fragments: bytearray | None = None
        self.ping_pending = False  # a keepalive ping is waiting for its pong

    def send_user_specific_ping(self, transport: picows.WSTransport) -> None:
        # picows's keepalive ping; noted to tell its timeout from other ends.
        self.ping_pending = True
        transport.send_ping()

    def is_user_specific_pong(self, frame: picows.WSFrame) -> bool:
        if frame.msg_type is picows.WSMsgType.PONG:
            self.ping_pending = False
            return True
        return False

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        if self.owner._abandoned:
            transport.disconnect(graceful=False)
        else:
            self.owner._ws = transport  # known before ws_connect() returns

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.payload_size > MAX_MESSAGE_SIZE:
            # picows failed the connection on this frame's header (close
            # 1009) but drops the socket only 10 ms later and keeps reading
            # meanwhile: on a loaded machine the whole frame arrives first
            # and is handed over anyway. It must not reach the session (it
            # would be a second error, without a close code).
            return
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
        if not owner._close_called and self.ping_pending and _keepalive_gave_up(transport):
            # picows's keepalive gave up: no pong within the reply timeout.
            # (It sent a 1001 close frame and drops the socket; a peer that
            # still reads may answer that close, which changes nothing.)
            code, reason = KEEPALIVE_CLOSE
        elif self.close_info is not None:
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
                # picows keeps the protocol error for wait_disconnected();
                # retrieve it, or asyncio logs "exception never retrieved".
                _reap(transport)
        owner._closed = True
        waiter = owner._closed_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if owner._drained is not None:
            owner._drained.set()
        # Reported once; nothing comes after this callback. Drop the
        # references between the transport, this listener and the session:
        # a closed session is then freed by reference counting, without the
        # cyclic collector (issue 15).
        owner._listener = None
        owner._ws_listener = None
        self.listener.on_closed(code, reason)

    def pause_writing(self) -> None:
        self.owner._drained = asyncio.Event()

    def resume_writing(self) -> None:
        drained = self.owner._drained
        if drained is not None:
            drained.set()
            self.owner._drained = None


def _keepalive_gave_up(transport: picows.WSTransport) -> bool:
    """Whether the client side opened the close with 1001, as picows's keepalive does.

    Only asked when our own ``close()`` was not called and a keepalive ping
    is unanswered; an echo of the server's close does not count.
    """
    handshake = transport.close_handshake
    sent = handshake.sent if handshake is not None else None
    return (
        sent is not None
        and sent.code == picows.WSCloseCode.GOING_AWAY
        and not handshake.recv_then_sent
    )


_reapers: set[asyncio.Task[None]] = set()


def _reap(transport: picows.WSTransport) -> None:
    """Collect the error picows stored for a connection it failed itself."""

    async def reap() -> None:
        try:
            await transport.wait_disconnected()
        except Exception as exc:  # already reported as the close code and reason
            logger.debug("picows ended the connection: %r", exc)

    task = asyncio.get_running_loop().create_task(reap(), name="avatarkit-picows-reap")
    _reapers.add(task)
    task.add_done_callback(_reapers.discard)
