"""AvatarSession: the asyncio shell around the protocol core.

The session owns the token call, the WebSocket and the callbacks; what each
message means and the connection's state are asked of
:class:`avatarkit.protocol.ClientProtocol` (the session keeps none). Mixins:
receiving (``_receiving``), ``stream()`` (``_streaming``), sending
(``_sending``), callbacks (``_callbacks``), ``frames()``. Frames are
handled in the transport's receive callback: no reader task, no queue, no
task per frame. Callbacks run in order of arrival: plain functions inline,
coroutine functions one after another on one dispatcher task. A callback
that raises is logged with its traceback (logger ``avatarkit.session``) and
the session carries on.

Errors:

* failures of a call (``init``, ``start``, ``send_audio``, ``interrupt``,
  ``pause``, ``resume``) are raised from that call and not also passed to
  ``on_error``;
* what happens in the background (a ``ServerError`` at run time, which does
  not end the session, or an unexpected disconnect, reported as
  ``connectionClosed`` with the close code and reason) goes to ``on_error``;
* ``on_close`` is called exactly once, whatever ends the session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import _logctx, _loopguard, _metrics, _tls
from ._callbacks import logger
from ._closecodes import NORMAL_CLOSES
from ._endpoints import check_session_token
from ._framebuffer import FrameBuffer, FrameStreams, Received
from ._receiving import SessionReceiving
from ._redact import mask_in
from .config import SessionConfig
from .errors import AvatarSDKError, AvatarSDKErrorCode, ErrorPhase, classify_close
from .protocol import (
    ClientProtocol,
    ClientState,
    SessionConfirmed,
    build_websocket_url,
)
from .transport import (
    AiohttpTransport,
    PicowsTransport,
    Transport,
    TransportFactory,
    hand_keepalive,
)

__all__ = ["AvatarSession", "new_avatar_session"]


class AvatarSession(SessionReceiving, FrameStreams):
    """One avatar session: token, WebSocket, audio out, animation in.

    Typical use::

        session = new_avatar_session(api_key=..., app_id=..., avatar_id=..., ...)
        await session.init()                 # session token
        connection_id = await session.start()  # WebSocket + handshake
        req_id = await session.send_audio(pcm, end=True)
        ...
        await session.close()

    ``async with session:`` runs ``init()`` and ``start()`` on entry and
    ``close()`` on exit.
    """

    # Slots: a process may hold a thousand sessions. The instance dict (the
    # mixins have no slots) is made only when a mock or subclass needs it.
    __slots__ = (
        "_cb_animation",
        "_cb_close",
        "_cb_encoded",
        "_cb_error",
        "_cb_frames",
        "_cb_playback",
        "_cb_state",
        "_close_error",
        "_config",
        "_confirm",
        "_disconnected",
        "_dispatch_queue",
        "_dispatch_task",
        "_dispatch_wakeup",
        "_encoded",
        "_encoder",
        "_encoder_lock",
        "_frame_queues",
        "_metrics",
        "_protocol",
        "_token",
        "_transport",
        "_transport_factory",
        "_wants_events",
    )

    def __init__(
        self, config: SessionConfig, *, transport_factory: TransportFactory | None = None
    ) -> None:
        self._config = config
        self._transport_factory: TransportFactory | None = transport_factory
        self._protocol = ClientProtocol()
        self._token: str | None = None
        self._transport: Transport | None = None
        self._confirm: asyncio.Future[SessionConfirmed] | None = None
        self._encoder_lock: asyncio.Lock | None = None
        self._close_error: AvatarSDKError | None = None
        self._encoder: Any = None
        self._encoded: bytearray | None = None
        # Made on first use (most sessions never call an async callback).
        self._dispatch_queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None
        self._dispatch_wakeup: asyncio.Event | None = None
        self._dispatch_task: asyncio.Task[None] | None = None
        self._frame_queues: list[FrameBuffer[Received]] | None = None  # made by frames()
        self._disconnected: asyncio.Event | None = None  # made when someone waits
        self._metrics = _metrics.for_session(self)  # None without on_metrics
        self._bind_callbacks()

    # -- callbacks -----------------------------------------------------------

    def _bind_callbacks(self) -> None:
        # The user's functions as they are: no wrapper object per callback
        # (memory per session); _call() and the frame path add the guard.
        cfg = self._config
        self._cb_frames = cfg.transport_frames
        self._cb_playback = cfg.on_playback
        self._cb_state = cfg.on_playback_state
        self._cb_animation = cfg.on_animation
        self._cb_error = cfg.on_error
        self._cb_encoded = cfg.on_encoded_audio
        self._cb_close = cfg.on_close
        if self._metrics is not None:  # report to on_metrics, then call the user's
            self._cb_error = self._metrics.wrap_on_error(cfg.on_error, logger.warning)
            self._cb_close = self._metrics.wrap_on_close(cfg.on_close)
        self._update_wants_events()

    def _update_wants_events(self) -> None:
        """Whether animation messages need ``_on_animation`` (callbacks, metrics).

        ``frames()`` iterators are fed in ``on_message`` itself.
        """
        cbs = (self._cb_playback, self._cb_animation, self._metrics)
        self._wants_events = any(c is not None for c in cbs)

    # -- public properties ---------------------------------------------------

    @property
    def config(self) -> SessionConfig:
        """The session's configuration."""
        return self._config

    @property
    def capabilities(self) -> tuple[str, ...]:
        """Capabilities the server declared (e.g. ``playback_control``)."""
        return self._protocol.capabilities

    @property
    def is_open(self) -> bool:
        """Whether audio can be sent now."""
        return (
            self._protocol.state is ClientState.OPEN
            and self._transport is not None
            and self._transport.is_open
        )

    def __repr__(self) -> str:
        state = self._protocol.state.value
        return (
            f"<AvatarSession avatar_id={self._config.avatar_id!r} "
            f"connection_id={self.connection_id!r} state={state}>"
        )

    # -- lifecycle -------------------------------------------------------------

    @_metrics.observe_init
    async def init(self) -> None:
        """Get a session token from the console (``POST .../session-tokens``).

        Raises :class:`~avatarkit.SessionTokenError` when the call fails and
        ``ValueError`` for configuration that can never work (all of it is
        checked here, before the network is touched).
        """
        from . import _http  # loads on first use: keeps `import avatarkit` light

        cfg = self._config
        cfg.validate()  # everything, before the first network call
        assert cfg.expire_at is not None
        self._token = await _http.request_session_token(
            cfg.console_endpoint_url, cfg.api_key, cfg.expire_at, cfg.ssl_context
        )

    def use_session_token(self, token: str) -> None:
        """Use a session token obtained elsewhere instead of calling ``init()``.

        For apps whose backend mints tokens (keeping the API key off the
        client). The token is never shown in ``repr()``, logs or errors.
        """
        check_session_token(token)
        self._token = token

    @_metrics.observe_start
    async def start(self) -> str:
        """Open the WebSocket, configure the session, return the connection id.

        Raises :class:`~avatarkit.AvatarSDKError` with phase
        ``websocket_connect`` (upgrade refused, network) or
        ``websocket_handshake`` (configuration refused), and ``ValueError``
        when called out of order or with configuration that cannot work.
        """
        protocol = self._protocol
        protocol.connecting()  # ProtocolStateError (a ValueError) when out of order
        try:
            if self._token is None:
                raise ValueError(
                    "session not initialized: call init() (or use_session_token()) first"
                )
            self._config.validate_for_connect()
            return await self._start()
        finally:
            if protocol.state is ClientState.CONNECTING:  # the socket never opened
                protocol.connect_failed()

    async def _start(self) -> str:
        cfg = self._config
        assert self._token is not None
        if cfg.ogg_opus_encoder is not None:
            self._encoder = self._make_encoder()
        url, headers = build_websocket_url(
            cfg.ingress_endpoint_url,
            avatar_id=cfg.avatar_id,
            app_id=cfg.app_id,
            token=self._token,
            use_query_auth=cfg.use_query_auth,
        )
        loop = asyncio.get_running_loop()
        self._confirm = loop.create_future()
        factory = self._transport_factory
        if factory is None:
            factory = AiohttpTransport if cfg.websocket_compression else PicowsTransport
        transport = factory()
        _tls.hand_to(transport, cfg.ssl_context)
        hand_keepalive(transport, cfg.keepalive_interval, cfg.keepalive_timeout)
        deadline = loop.time() + cfg.open_timeout
        try:
            await transport.connect(url, headers, cfg.open_timeout, self)
        except BaseException:
            self._confirm = None
            raise
        if self._metrics is not None:
            self._metrics.connected()
        if self._protocol.state is not ClientState.CONNECTING:
            # close() ran while the socket was opening: don't leave it open.
            await transport.close()
            raise self._closed_error(ErrorPhase.WEBSOCKET_CONNECT)
        self._transport = transport
        _loopguard.track(self)
        try:
            transport.send(self._protocol.configure(cfg))
            # A timer on the future itself: no extra task per set-up (wait_for
            # would wrap it).
            confirm = self._confirm
            timer = loop.call_at(deadline, _expire, confirm)
            try:
                confirmed = await confirm
            finally:
                timer.cancel()
        except (asyncio.TimeoutError, TimeoutError):
            failure: AvatarSDKError = AvatarSDKError(
                AvatarSDKErrorCode.connectionFailed,
                f"the server did not confirm the session within {cfg.open_timeout:g} s",
                phase=ErrorPhase.WEBSOCKET_HANDSHAKE,
            )
        except AvatarSDKError as err:
            failure = err
        except ConnectionError:
            failure = self._close_error or self._closed_error(ErrorPhase.WEBSOCKET_HANDSHAKE)
        except BaseException:
            await self._close(max(0.0, deadline - loop.time()))
            raise
        else:
            self._confirm = None  # done with; not kept for the session's life
            # Connected (a session connects once): drop our copy of the secret
            # (a token can be a ~1 KB JWT; a process may hold a thousand).
            self._token = None
            return confirmed.connection_id
        # What is left of open_timeout bounds the close handshake: start()
        # never takes longer than open_timeout (a silent server is dropped).
        await self._close(max(0.0, deadline - loop.time()))
        raise failure

    @_logctx.scoped
    async def close(self) -> None:
        """Close the WebSocket politely and end the session.

        Idempotent, and safe to call from inside a callback. ``on_close``
        fires exactly once. Bounded: it waits at most 2 s in all for queued
        audio, the server's close answer and async callbacks, then drops the
        socket. A ``send_audio()`` blocked on backpressure then raises
        ``connectionClosed``; callbacks still queued run in the background
        (``on_close`` last) and ``wait_closed()`` waits for them.
        """
        await self._close(_CLOSE_TIMEOUT)

    async def _close(self, timeout: float) -> None:
        """:meth:`close`, waiting at most ``timeout`` for the close handshake."""
        protocol = self._protocol
        if protocol.state in (ClientState.CLOSING, ClientState.CLOSED):
            await self._wait_disconnected()  # returns at once when closed
            return
        protocol.start_closing()
        deadline = asyncio.get_running_loop().time() + timeout
        await self._end_request_for_close(deadline)  # resolved, feeder ended, before the socket
        transport = self._transport
        try:
            if transport is not None:
                await transport.close(timeout=timeout)
        finally:
            self._finish()
        await self._wait_callbacks(deadline - asyncio.get_running_loop().time())

    def _finish(self) -> None:
        """Mark closed; fire ``on_close`` once; wake everything waiting."""
        if self._protocol.state is ClientState.CLOSED:
            return
        self._protocol.closed()
        with contextlib.suppress(RuntimeError):  # no running loop: nothing tracked
            _loopguard.untrack(self)
        if self._confirm is not None and not self._confirm.done():
            failure = self._close_error or self._closed_error(ErrorPhase.WEBSOCKET_HANDSHAKE)
            self._confirm.set_exception(failure)
            self._confirm.exception()  # mark retrieved: start() may be gone
        for buffer in self._frame_queues or ():
            buffer.close()
        self._abort_request()  # the connection ended under a streamed request
        if self._disconnected is not None:
            self._disconnected.set()
        if self._cb_close is not None:
            self._call(self._cb_close, "on_close")
        if self._dispatch_wakeup is not None:
            self._dispatch_wakeup.set()

    def _abort_for_loop_shutdown(self) -> None:
        """The event loop is shutting down with this session open: drop the socket."""
        self._protocol.start_closing()
        if self._transport is not None:
            self._transport.abort()

    async def __aenter__(self) -> AvatarSession:
        if self._token is None:  # not when use_session_token() or init() came first
            await self.init()
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- receiving (TransportListener): on_message/on_text in _receiving --------

    def on_closed(self, close_code: int | None, close_reason: str | None) -> None:
        """Transport callback: the connection ended.

        An unexpected close is kept for later send errors and reported to
        ``on_error`` once the session was confirmed (before that, ``start()``
        raises it). A normal close by the server (1000, 1001, or a close frame
        without a code, reported as 1005) only ends the session, as in
        avatarkit 0.1.7. ``close_code`` is ``None`` only when no close frame
        came at all (the connection dropped).
        """
        protocol = self._protocol
        if self._metrics is not None:
            self._metrics.closing(close_code, protocol.state is ClientState.CLOSING)
        if protocol.state not in (ClientState.CLOSING, ClientState.CLOSED):
            err = classify_close(
                close_code,
                mask_in(close_reason, self._token),  # the server's text: it may quote it
                phase=protocol.phase,
                connection_id=self.connection_id,
            )
            self._close_error = err
            if self._confirm is not None and not self._confirm.done():
                self._confirm.set_exception(err)
            elif self._protocol.state is ClientState.OPEN and close_code not in NORMAL_CLOSES:
                if self._cb_error is not None:
                    self._call(self._cb_error, "on_error", err)
                else:
                    logger.warning("avatarkit: %s", err)
        self._finish()

    def _closed_error(self, phase: ErrorPhase) -> AvatarSDKError:
        return AvatarSDKError(
            AvatarSDKErrorCode.connectionClosed,
            "the connection closed before the session was confirmed",
            phase=phase,
        )

    # -- streaming ------------------------------------------------------------------

    async def _wait_disconnected(self) -> None:
        if self._protocol.state is ClientState.CLOSED:
            return
        if self._disconnected is None:
            self._disconnected = asyncio.Event()
        await self._disconnected.wait()

    async def wait_closed(self) -> None:
        """Wait until the session ended and its queued callbacks (on_close last) ran."""
        await self._wait_disconnected()
        await self._wait_callbacks(None)


#: Seconds close() waits for queued messages and the server's close frame.
_CLOSE_TIMEOUT = 2.0


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


# Last: it builds AvatarSession from this module.
from ._newsession import new_avatar_session  # noqa: E402  (re-export)
