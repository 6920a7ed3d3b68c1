"""AvatarSession: the asyncio shell around the protocol core.

The session owns the token call, the WebSocket and the callbacks; what each
message means is asked of :class:`avatarkit.protocol.ClientProtocol`.
Incoming frames are handled in the transport's receive callback: no reader
task, no queue and no task per frame. Callbacks run in order of arrival:
plain functions inline, coroutine functions one after another on a single
dispatcher task of the session. A callback that raises is logged with its
traceback (logger ``avatarkit.session``) and the session carries on.

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
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

from google.protobuf.message import DecodeError

from . import _loopguard
from .config import AudioFormat, SessionConfig
from .errors import (
    AvatarSDKError,
    AvatarSDKErrorCode,
    ErrorPhase,
    SessionClosedError,
    classify_close,
)
from .events import AnimationFrameEvent, PlaybackSignal
from .protocol import (
    ANIMATION_TYPE,
    AnimationReceived,
    ClientProtocol,
    ClientState,
    PlaybackStateReceived,
    ServerErrorReceived,
    SessionConfirmed,
    build_websocket_url,
    parse_message,
)
from .transport import AiohttpTransport, PicowsTransport, Transport, TransportFactory

__all__ = ["AvatarSession", "new_avatar_session"]

logger = logging.getLogger("avatarkit.session")


class AvatarSession:
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

    # Slots: a process may hold a thousand sessions; the instance dict exists
    # only once something (a test's mock, a subclass) sets an attribute.
    __slots__ = (
        "__dict__",  # made on first use only: lets tests patch methods on a session
        "__weakref__",
        "_cb_animation",
        "_cb_close",
        "_cb_encoded",
        "_cb_error",
        "_cb_frames",
        "_cb_playback",
        "_cb_state",
        "_close_error",
        "_close_notified",
        "_closed",
        "_closing",
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
        "_open",
        "_protocol",
        "_starting",
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
        self._starting = False
        self._open = False  # confirmed, not yet closed
        self._encoder_lock: asyncio.Lock | None = None
        self._closing = False
        self._closed = False
        self._close_notified = False
        self._close_error: AvatarSDKError | None = None
        self._encoder: Any = None
        self._encoded: bytearray | None = None
        # Made on first use (most sessions never call an async callback).
        self._dispatch_queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None
        self._dispatch_wakeup: asyncio.Event | None = None
        self._dispatch_task: asyncio.Task[None] | None = None
        self._frame_queues: list[_FrameBuffer] | None = None  # made by frames()
        self._disconnected: asyncio.Event | None = None  # made when someone waits
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
        self._update_wants_events()

    def _update_wants_events(self) -> None:
        """Whether animation messages need parsed event objects at all."""
        self._wants_events = bool(
            self._cb_playback is not None or self._cb_animation is not None or self._frame_queues
        )

    def _call(self, func: Callable[..., Any], name: str, *args: Any) -> None:
        """Call a user callback: never raises, keeps callbacks in order.

        A plain function runs now, unless async callbacks are still pending,
        then it waits its turn on the dispatcher task. A coroutine function
        (or any callback returning an awaitable) is awaited on that task.
        """
        if self._dispatch_queue:
            self._enqueue(func, args)
            return
        try:
            result = func(*args)
        except Exception:
            logger.exception("avatarkit: %s callback raised; the session goes on", name)
            return
        if result is not None and inspect.isawaitable(result):
            self._enqueue(_await_result, (result, name))

    def _enqueue(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Run ``func(*args)`` on the dispatcher task, after what is queued."""
        queue = self._dispatch_queue
        if queue is None:
            queue = self._dispatch_queue = deque()
        queue.append((func, args))
        self._wake_dispatcher()

    def _wake_dispatcher(self) -> None:
        if self._dispatch_task is None or self._dispatch_task.done():
            self._dispatch_wakeup = asyncio.Event()
            self._dispatch_task = asyncio.get_running_loop().create_task(
                self._dispatch(), name="avatarkit-callbacks"
            )
        assert self._dispatch_wakeup is not None
        self._dispatch_wakeup.set()

    async def _dispatch(self) -> None:
        queue = self._dispatch_queue
        wakeup = self._dispatch_wakeup
        assert queue is not None and wakeup is not None
        try:
            while True:
                while queue:
                    func, args = queue[0]
                    try:
                        result = func(*args)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        name = args[1] if func is _await_result else _name(func)
                        logger.exception("avatarkit: %s callback raised; the session goes on", name)
                    finally:
                        queue.popleft()
                if self._closed:
                    return
                wakeup.clear()
                await wakeup.wait()
        finally:
            # Cancelled (the loop is shutting down): coroutines of async
            # callbacks that never got their turn are closed, not left to
            # warn "never awaited".
            while queue:
                func, args = queue.popleft()
                if func is _await_result and inspect.iscoroutine(args[0]):
                    args[0].close()

    # -- public properties ---------------------------------------------------

    @property
    def config(self) -> SessionConfig:
        """The session's configuration."""
        return self._config

    @property
    def connection_id(self) -> str | None:
        """Connection id the server confirmed, once ``start()`` returned."""
        return self._protocol.connection_id

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
        state = "closed" if self._closed else self._protocol.state.value
        return (
            f"<AvatarSession avatar_id={self._config.avatar_id!r} "
            f"connection_id={self.connection_id!r} state={state}>"
        )

    # -- lifecycle -------------------------------------------------------------

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
            cfg.console_endpoint_url, cfg.api_key, cfg.expire_at
        )

    def use_session_token(self, token: str) -> None:
        """Use a session token obtained elsewhere instead of calling ``init()``.

        For apps whose backend mints tokens (keeping the API key off the
        client). The token is never shown in ``repr()``, logs or errors.
        """
        if not isinstance(token, str) or not token:
            raise ValueError("session token must be a non-empty string")
        self._token = token

    async def start(self) -> str:
        """Open the WebSocket, configure the session, return the connection id.

        Raises :class:`~avatarkit.AvatarSDKError` with phase
        ``websocket_connect`` (upgrade refused, network) or
        ``websocket_handshake`` (configuration refused), and ``ValueError``
        when called out of order or with configuration that cannot work.
        """
        cfg = self._config
        if self._closed or self._closing:
            raise ValueError("session is closed; create a new session")
        if self._starting or self._protocol.state is not ClientState.IDLE:
            raise ValueError("session already started")
        if self._token is None:
            raise ValueError("session not initialized: call init() (or use_session_token()) first")
        cfg.validate_for_connect()
        self._starting = True
        try:
            return await self._start()
        finally:
            self._starting = False

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
        deadline = loop.time() + cfg.open_timeout
        try:
            await transport.connect(url, headers, cfg.open_timeout, self)
        except BaseException:
            self._confirm = None
            raise
        if self._closing or self._closed:
            # close() ran while the socket was opening: don't leave it open.
            await transport.close()
            raise self._closed_error(ErrorPhase.WEBSOCKET_CONNECT.value)
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
                phase=ErrorPhase.WEBSOCKET_HANDSHAKE.value,
            )
        except AvatarSDKError as err:
            failure = err
        except ConnectionError:
            failure = self._close_error or self._closed_error(ErrorPhase.WEBSOCKET_HANDSHAKE.value)
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

    async def close(self) -> None:
        """Close the WebSocket politely and end the session.

        Idempotent, and safe to call from inside a callback. ``on_close``
        fires exactly once. Bounded: it waits at most 2 s for queued audio
        and the server's answer to the close frame, then drops the socket (a
        server that stopped reading cannot hold it). A ``send_audio()``
        blocked on backpressure then raises ``connectionClosed``.
        """
        await self._close(_CLOSE_TIMEOUT)

    async def _close(self, timeout: float) -> None:
        """:meth:`close`, waiting at most ``timeout`` for the close handshake."""
        if self._closed or self._closing:
            if not self._closed:
                await self._wait_disconnected()
            return
        self._closing = True
        transport = self._transport
        try:
            if transport is not None:
                await transport.close(timeout=timeout)
        finally:
            self._finish()
        task = self._dispatch_task
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _finish(self) -> None:
        """Mark closed; fire ``on_close`` once; wake everything waiting."""
        if self._closed:
            return
        self._closed = True
        self._protocol.closed()
        with contextlib.suppress(RuntimeError):  # no running loop: nothing tracked
            _loopguard.untrack(self)
        if self._confirm is not None and not self._confirm.done():
            failure = self._close_error or self._closed_error(ErrorPhase.WEBSOCKET_HANDSHAKE.value)
            self._confirm.set_exception(failure)
            self._confirm.exception()  # mark retrieved: start() may be gone
        for buffer in self._frame_queues or ():
            buffer.close()
        if self._disconnected is not None:
            self._disconnected.set()
        if not self._close_notified:
            self._close_notified = True
            if self._cb_close is not None:
                self._call(self._cb_close, "on_close")
        if self._dispatch_wakeup is not None:
            self._dispatch_wakeup.set()

    def _abort_for_loop_shutdown(self) -> None:
        """The event loop is shutting down with this session open: drop the socket."""
        self._closing = True
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

    # -- sending -----------------------------------------------------------------

    async def send_audio(self, audio: bytes, end: bool = False) -> str:
        """Send a chunk of the current request's audio; return its request id.

        PCM chunks must hold whole 16-bit samples. With the built-in encoder
        configured, PCM is encoded to Ogg Opus page by page and a chunk that
        completes no Opus frame sends nothing yet. ``end=True`` ends the
        request; the next call starts a new request id.
        """
        if not isinstance(audio, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"audio must be bytes (16-bit PCM or Ogg Opus), not {type(audio).__name__}"
            )
        data = bytes(audio)
        cfg = self._config
        raw_pcm = cfg.audio_format is AudioFormat.PCM_S16LE or self._encoder is not None
        if raw_pcm and len(data) % 2:
            raise ValueError(
                f"PCM audio must hold whole 16-bit samples; got {len(data)} bytes (odd). "
                "Keep the odd byte for the next chunk."
            )
        self._require_open("send_audio")
        if self._encoder is not None:
            if self._encoder_lock is None:
                self._encoder_lock = asyncio.Lock()
            async with self._encoder_lock:  # one Ogg stream at a time, in call order
                return await self._send_encoded(data, end)
        req_id, message = self._protocol.audio(data, end)
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
        if pages or end:
            _, message = self._protocol.audio(pages, end)
            await self._send(message, req_id, "send audio")
        if stream and self._cb_encoded is not None:
            self._call(self._cb_encoded, "on_encoded_audio", req_id, bytes(stream))
        return req_id

    async def interrupt(self) -> str:
        """Stop the most recent request, even one whose audio already ended.

        Returns the interrupted request id. The next ``send_audio`` starts a
        new request.
        """
        self._require_open("interrupt")
        req_id, message = self._protocol.interrupt()
        if self._encoder is not None:
            self._encoder.reset()
            self._encoded = None
        await self._send(message, req_id, "send interrupt")
        return req_id

    async def pause(self) -> str:
        """Hold the output of the most recent request (``playback_control``).

        The server keeps ingesting audio meanwhile. Returns the request id.
        """
        self._require_open("pause")
        req_id, message = self._protocol.pause()
        await self._send(message, req_id, "send pause")
        return req_id

    async def resume(self) -> str:
        """Continue the output held by :meth:`pause`. Returns the request id."""
        self._require_open("resume")
        req_id, message = self._protocol.resume()
        await self._send(message, req_id, "send resume")
        return req_id

    def _require_open(self, action: str) -> None:
        state = self._protocol.state
        if state is ClientState.OPEN and not self._closed:
            return
        if self._closed or state is ClientState.CLOSED:
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
            phase=ErrorPhase.WEBSOCKET_SEND.value,
            connection_id=self.connection_id,
            req_id=req_id,
            close_code=base.close_code if base is not None else None,
            close_reason=base.close_reason if base is not None else None,
        )

    async def _send(self, message: bytes, req_id: str, action: str) -> None:
        transport = self._transport
        if transport is None or self._closed:
            raise self._close_error_for_send(action, req_id)
        try:
            transport.send(message)
            await transport.drain()  # raises when the connection ends while blocked
        except ConnectionError:
            raise self._close_error_for_send(action, req_id) from None

    # -- receiving (TransportListener) -----------------------------------------

    def on_message(self, data: bytes) -> None:
        """Transport callback: one binary message from the server.

        This is the per-frame path: one parse, then the user's
        ``transport_frames`` called directly (no wrapper, no allocation) when
        it is a plain function and no async callback is pending.
        """
        protocol = self._protocol
        try:
            msg = parse_message(data)
        except DecodeError as exc:
            self._on_protocol_error(protocol.decode_error(exc))
            return
        if msg.type == ANIMATION_TYPE and self._open:
            anim = msg.server_response_animation
            frames = self._cb_frames
            if frames is not None:
                # _call() inlined: this runs for every frame.
                if self._dispatch_queue:
                    self._enqueue(frames, (data, anim.end))
                else:
                    try:
                        result = frames(data, anim.end)
                    except Exception:
                        logger.exception(
                            "avatarkit: transport_frames callback raised; the session goes on"
                        )
                    else:
                        if result is not None and inspect.isawaitable(result):
                            self._enqueue(_await_result, (result, "transport_frames"))
            if self._wants_events:
                self._on_animation(anim, data)
            return
        try:
            event = protocol.handle(msg)
        except AvatarSDKError as err:
            self._on_protocol_error(err)
            return
        if type(event) is SessionConfirmed:
            self._open = True  # before any later message of the same read
            if self._confirm is not None and not self._confirm.done():
                self._confirm.set_result(event)
        elif type(event) is ServerErrorReceived:
            if event.fatal:
                if self._confirm is not None and not self._confirm.done():
                    self._confirm.set_exception(event.error)
            elif self._cb_error is not None:
                self._call(self._cb_error, "on_error", event.error)
            else:
                logger.warning("avatarkit: server error: %s", event.error)
        elif type(event) is PlaybackStateReceived and self._cb_state is not None:
            self._call(self._cb_state, "on_playback_state", event.event)

    def _on_animation(self, event: AnimationReceived, data: bytes) -> None:
        if self._cb_playback is not None:
            self._call(
                self._cb_playback,
                "on_playback",
                PlaybackSignal(
                    event.req_id,
                    event.end,
                    event.connection_id,
                    event.avatar_id,
                    bool(event.animation),
                ),
            )
        if self._cb_animation is not None or self._frame_queues:
            frame = AnimationFrameEvent(
                event.req_id,
                event.end,
                event.animation,
                data,
                event.connection_id,
                event.avatar_id,
            )
            if self._cb_animation is not None:
                self._call(self._cb_animation, "on_animation", frame)
            for buffer in self._frame_queues or ():
                buffer.put(frame)

    def _on_protocol_error(self, err: AvatarSDKError) -> None:
        if self._confirm is not None and not self._confirm.done():
            self._confirm.set_exception(err)
        elif self._cb_error is not None:
            self._call(self._cb_error, "on_error", err)
        else:
            logger.warning("avatarkit: %s", err)

    def on_text(self) -> None:
        """Transport callback: a text frame, which the protocol does not allow."""
        err = AvatarSDKError(
            AvatarSDKErrorCode.protocolError,
            "failed during websocket handshake: expected binary protobuf message"
            if not self._open
            else "server sent a text frame; the protocol is binary protobuf only",
            phase=self._protocol_phase(),
            connection_id=self.connection_id,
        )
        self._on_protocol_error(err)

    def _protocol_phase(self) -> str:
        if self._open:
            return ErrorPhase.WEBSOCKET_RUNTIME.value
        return ErrorPhase.WEBSOCKET_HANDSHAKE.value

    def on_closed(self, close_code: int | None, close_reason: str | None) -> None:
        """Transport callback: the connection ended.

        An unexpected close is kept for later send errors and reported to
        ``on_error`` once the session was confirmed (before that, ``start()``
        raises it). A normal close by the server (1000, 1001, or a close frame
        without a code, reported as 1005) only ends the session, as in
        avatarkit 0.1.7. ``close_code`` is ``None`` only when no close frame
        came at all (the connection dropped).
        """
        self._open = False
        if not self._closing:
            err = classify_close(
                close_code,
                close_reason,
                phase=self._protocol_phase()
                if self._protocol.state is not ClientState.OPEN
                else ErrorPhase.WEBSOCKET_RUNTIME.value,
                connection_id=self.connection_id,
            )
            self._close_error = err
            if self._confirm is not None and not self._confirm.done():
                self._confirm.set_exception(err)
            elif self._protocol.state is ClientState.OPEN and close_code not in _NORMAL_CLOSES:
                if self._cb_error is not None:
                    self._call(self._cb_error, "on_error", err)
                else:
                    logger.warning("avatarkit: %s", err)
        self._finish()

    def _closed_error(self, phase: str) -> AvatarSDKError:
        return AvatarSDKError(
            AvatarSDKErrorCode.connectionClosed,
            "the connection closed before the session was confirmed",
            phase=phase,
        )

    # -- streaming ------------------------------------------------------------------

    async def frames(self) -> AsyncIterator[AnimationFrameEvent]:
        """Iterate over animation frames as they arrive, until the session ends.

        Each iterator gets every frame from the moment it starts; several may
        run at once. Ends cleanly when the session closes; a frame is never
        dropped (the queue is unbounded, so consume promptly).
        """
        if self._closed:
            return
        buffer = _FrameBuffer()
        if self._frame_queues is None:
            self._frame_queues = []
        self._frame_queues.append(buffer)
        self._update_wants_events()
        frames = buffer.frames
        try:
            while True:
                while frames:
                    yield frames.popleft()
                if buffer.closed:
                    return
                await buffer.wait()
        finally:
            self._frame_queues.remove(buffer)
            self._update_wants_events()

    async def _wait_disconnected(self) -> None:
        if self._closed:
            return
        if self._disconnected is None:
            self._disconnected = asyncio.Event()
        await self._disconnected.wait()

    async def wait_closed(self) -> None:
        """Wait until the session has ended (by ``close()`` or the server)."""
        await self._wait_disconnected()


class _FrameBuffer:
    """Frames waiting for one ``frames()`` iterator: a deque and one wake-up.

    Cheaper per frame than an ``asyncio.Queue`` (no waiter bookkeeping per
    item): the producer appends and wakes the consumer only when it sleeps.
    """

    __slots__ = ("closed", "frames", "waiter")

    def __init__(self) -> None:
        self.frames: deque[AnimationFrameEvent] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def put(self, frame: AnimationFrameEvent) -> None:
        self.frames.append(frame)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter


#: Close codes that end a session normally (1005: a close frame without a code).
_NORMAL_CLOSES = frozenset({1000, 1001, 1005})

#: Seconds close() waits for queued messages and the server's close frame.
_CLOSE_TIMEOUT = 2.0


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", type(func).__name__)


async def _await_result(result: Awaitable[Any], name: str) -> None:
    """Await what an async callback ``name`` returned (on the dispatcher task)."""
    await result


_SESSION_FIELDS = frozenset(f for f in SessionConfig.__dataclass_fields__)


def new_avatar_session(**kwargs: Any) -> AvatarSession:
    """Create an :class:`AvatarSession` from :class:`SessionConfig` keywords.

    An unknown keyword raises ``TypeError`` naming it (a typo would otherwise
    be silently ignored).
    """
    transport_factory = kwargs.pop("transport_factory", None)
    unknown = sorted(set(kwargs) - _SESSION_FIELDS)
    if unknown:
        raise TypeError(
            f"new_avatar_session() got unknown keyword argument(s): {', '.join(unknown)}; "
            f"valid ones are the SessionConfig fields"
        )
    return AvatarSession(SessionConfig(**kwargs), transport_factory=transport_factory)
