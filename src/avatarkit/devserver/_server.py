"""The local avatar service: :class:`DevServer`.

HTTP routes and the ingress WebSocket share one aiohttp server and one port:

=======================================  ======================================
``GET  /healthz``                        200 ``{"status": "ok"}`` once serving
``POST /v1/console/session-tokens``      session token (legacy route)
``POST /v1/auth/session-token``          session token (successor route)
``GET  /v2/driveningress/websocket``     the ingress WebSocket (PROTOCOL.md)
``GET  /v1/dev/sessions``                live and recent sessions (JSON, no secrets; same-origin)
``GET  /``, ``/sessions/<id>``           the live viewer (:mod:`.viewer`)
=======================================  ======================================

Both token routes answer ``{"sessionToken": t, "session_token": t}`` so each
published client finds its own key.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections import deque
from dataclasses import replace
from types import TracebackType
from typing import Any

from aiohttp import web

from .._server_protocol import CLOSE_GOING_AWAY
from ._addresses import ServerAddresses
from ._auth import DEV_API_KEY, DEV_APP_ID, DEV_AVATAR_ID, Credentials, TokenSigner
from ._connection import Connection, IngressWebSocket, ServiceSettings
from ._core import check_options
from ._faults import Faults
from ._handlers import admit_upgrade, log_closed, refuse_concurrency, token_route
from ._jsonapi import MAX_BODY_BYTES, error_response, jsonapi_errors
from ._malformed import AppRunner
from ._sessions_api import sessions_document
from ._state import SessionState
from ._viewer import ViewerHub, add_viewer_routes
from ._wheel import FrameWheel

__all__ = ["DevServer"]

log = logging.getLogger("avatarkit.devserver")

_MAX_CLOSED_SESSIONS = 1000
_PACES = ("realtime", "fast")


class DevServer(ServerAddresses):
    """A faithful local stand-in for the hosted avatar service.

    Use it as an async context manager (or call :meth:`start` and
    :meth:`close`)::

        async with DevServer(pace="fast") as server:
            session = new_avatar_session(**server.session_kwargs())

    It speaks the whole protocol of PROTOCOL.md on one port: session tokens,
    the WebSocket handshake, PCM and Ogg Opus audio, 25 fps animation computed
    from the audio (:mod:`avatarkit.devserver._animation`), interrupt, pause and
    resume with ``ServerPlaybackState``, and LiveKit/Agora egress mode.

    Pace: ``"realtime"`` sends frame ``k`` of a request ``k * 40 ms`` after its
    first audio arrived (as a live avatar plays it; time spent paused shifts
    the schedule); ``"fast"`` sends each frame as soon as it is computed. The
    last frame of a request (the one with ``end=true``) is only sent once the
    request's ``end=true`` audio arrived. A request whose ``end=true`` came with
    no audio at all gets one animation message with an empty payload and
    ``end=true``. A request with a new ``req_id`` interrupts the one still
    playing (``INTERRUPTED``, reason ``preempted``); in fast pace a request
    whose audio already ended is let finish first.

    Playback states: ``PLAYING`` when a request's output starts, ``ENDED``
    after its last frame, ``INTERRUPTED`` (reason ``explicit``, ``preempted``,
    ``pause_timeout``, or ``error`` when its Ogg stream broke), ``PAUSED`` /
    ``PLAYING`` in answer to pause/resume. ``played_ms`` is 40 ms per frame
    sent (the audio's duration once ended) and does not advance while paused.
    Controls naming a finished request are answered with its final state; an
    interrupt naming an unknown request is answered ``INTERRUPTED``.

    Egress mode (a ``livekit_egress`` or ``agora_egress`` in the configure):
    there is **no LiveKit or Agora server** here. The configuration is checked
    (a LiveKit ``api_token`` JWT is decoded but its signature cannot be
    verified without the LiveKit secret), frames are paced as they would be
    published and recorded in ``SessionState.egress``; the WebSocket carries
    only empty-payload progress signals (at the start and then once per second
    of audio) and each request's ``end``.

    Limits (``None`` disables one):

    * ``idle_timeout``: no audio in and no frame out for that long ->
      ``ServerError`` (code 408) ``no audio input for N seconds``, close 1000;
    * ``max_session_seconds``: ``ServerError`` 4002 then close 4002
      ``maximum session duration reached``;
    * ``max_sessions_per_app``: a connection over the limit is upgraded, then
      gets ``ServerError`` 4003 and close 4003 (after reading its first message,
      so the client's configure never fails to send);
    * ``pause_timeout``: a request paused that long is interrupted with reason
      ``pause_timeout``;
    * ``max_message_size``: bigger client messages get a ``ServerError`` and
      close 1009. Messages the server sends stay far below 1 MiB;
    * ``read_timeout`` (default 10 s): a connection must deliver a whole
      request head within that long of being accepted (or of its previous
      response), and a token request its body within that long again;
      otherwise it is closed (408 JSON:API when the head had arrived). Idle
      keep-alive connections are closed after it too. It does not apply to
      an upgraded WebSocket (``idle_timeout`` does);
    * token request bodies over 1 MiB get 413;
    * ``req_id`` (audio and controls): at most 128 UTF-8 bytes, longer ones
      get ``ServerError`` code 3 and the message is ignored (the session goes
      on); the last 256 requests, errors and 3000 egress frames of a session
      are remembered, no more;
    * ``max_request_audio_bytes`` (64 MiB, about 11 minutes at 48 kHz) and
      ``max_connection_audio_bytes`` (128 MiB): decoded audio waiting to be
      played, per request and summed over a connection's requests (Ogg
      Opus is weighed by its packets' declared durations before it is
      decoded, then decoded in slices). Audio that would go over fails its
      request: ``ServerError`` code 3 (an invalid request for both published
      clients), ``INTERRUPTED`` reason ``error`` if it had started; the
      session and other sessions go on.

    Errors: protocol violations get a ``ServerError`` with the hosted
    service's text, then a close (1003 text frame, 1008 otherwise); an
    unsupported sample rate is code 400, an invalid egress config code 3
    (message naming ``livekit_egress``/``agora_egress``). Upgrade rejections
    are JSON:API bodies: 401 ``invalid session token``, 401 ``session token
    expired``, 400 ``app id mismatch``, 404 ``app id unrecognized``, 404
    ``avatar not found``. Everything else can be injected with
    :attr:`faults`. On :meth:`close` every session gets close code 1001.

    ``compress=True`` accepts permessage-deflate when a client offers it (as
    avatarkit 0.1.7 always does, and this SDK with ``websocket_compression``);
    off by default, so clients that offer it get uncompressed frames, the
    cheapest for both sides.

    ``ssl_context`` (a server-side :class:`ssl.SSLContext` holding the
    certificate) serves HTTPS and WSS on the same port; the URL properties
    then say ``https://`` and ``wss://``. The TLS handshake is bounded by
    asyncio's default (60 s).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        pace: str = "realtime",
        api_keys: dict[str, str] | None = None,
        avatars: list[str] | tuple[str, ...] | None = None,
        dev_credentials: bool = True,
        idle_timeout: float | None = 60.0,
        pause_timeout: float | None = None,
        max_session_seconds: float | None = None,
        max_sessions_per_app: int | None = None,
        max_message_size: int = 16 * 1024 * 1024,
        max_request_audio_bytes: int = 64 * 1024 * 1024,
        max_connection_audio_bytes: int = 128 * 1024 * 1024,
        max_token_ttl: float = 24 * 3600,
        close_timeout: float = 2.0,
        read_timeout: float = 10.0,
        compress: bool = False,
        secret: bytes | None = None,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        check_options(
            pace=pace,
            timeouts={
                "idle_timeout": idle_timeout,
                "pause_timeout": pause_timeout,
                "max_session_seconds": max_session_seconds,
                "read_timeout": read_timeout,
            },
            max_sessions_per_app=max_sessions_per_app,
            max_message_size=max_message_size,
            sizes={
                "max_request_audio_bytes": max_request_audio_bytes,
                "max_connection_audio_bytes": max_connection_audio_bytes,
            },
            ssl_context=ssl_context,
        )
        self.host = host
        self._requested_port = port
        self.reuse_port = reuse_port  # SO_REUSEPORT: `serve --workers` processes share the port
        self.worker: dict[str, Any] | None = None  # {"index", "workers", "pid", "url"} in one
        self.ssl_context = ssl_context
        """TLS for the whole port (token routes and WebSocket), or None for plain HTTP/WS."""
        self._settings = ServiceSettings(
            pace=pace,
            idle_timeout=idle_timeout,
            pause_timeout=pause_timeout,
            max_session_seconds=max_session_seconds,
            close_timeout=close_timeout,
            max_message_size=max_message_size,
            max_request_audio_bytes=max_request_audio_bytes,
            max_connection_audio_bytes=max_connection_audio_bytes,
        )
        self.max_sessions_per_app = max_sessions_per_app
        self.max_token_ttl = max_token_ttl
        self.read_timeout = read_timeout
        self.compress = compress
        self.credentials = Credentials()
        if dev_credentials:
            self.credentials.add_api_key(DEV_API_KEY, DEV_APP_ID)
            self.credentials.add_avatar(DEV_AVATAR_ID)
        for key, app_id in (api_keys or {}).items():
            self.credentials.add_api_key(key, app_id)
        for avatar in avatars or ():
            self.credentials.add_avatar(avatar)
        self.faults = Faults()
        self.sessions: dict[str, SessionState] = {}
        self.closed_sessions: deque[SessionState] = deque(maxlen=_MAX_CLOSED_SESSIONS)
        self.rejected_upgrades = 0
        self._signer = TokenSigner(secret)
        self._connections: set[Connection] = set()
        self._keys = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = False
        self._last_session: SessionState | None = None
        self._wheel: FrameWheel | None = None
        self.viewers = ViewerHub(self)
        """Pages of the live viewer (:mod:`avatarkit.devserver._viewer`)."""

    # -- configuration ------------------------------------------------------------

    @property
    def settings(self) -> ServiceSettings:
        """Pace and limits applied to new connections."""
        return self._settings

    @property
    def pace(self) -> str:
        return self._settings.pace

    @pace.setter
    def pace(self, value: str) -> None:
        """Change the pace of connections opened from now on."""
        if value not in _PACES:
            raise ValueError(f"pace must be 'realtime' or 'fast', not {value!r}")
        self._settings = replace(self._settings, pace=value)

    def add_api_key(self, api_key: str, app_id: str) -> None:
        """Accept ``api_key`` on the token routes, issuing tokens for ``app_id``."""
        self.credentials.add_api_key(api_key, app_id)

    def add_avatar(self, avatar_id: str) -> None:
        """Accept ``avatar_id`` on the WebSocket."""
        self.credentials.add_avatar(avatar_id)

    # -- sessions -------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """Open WebSocket connections (configured or not)."""
        return len(self._connections)

    @property
    def last_session(self) -> SessionState | None:
        """The state of the most recently opened connection, live or closed."""
        return self._last_session

    def find_session(self, connection_id: str) -> SessionState | None:
        """A live or recently closed session by connection id."""
        state = self.sessions.get(connection_id)
        if state is not None:
            return state
        for closed in reversed(self.closed_sessions):
            if closed.connection_id == connection_id:
                return closed
        return None

    def session_summaries(self) -> list[dict[str, Any]]:
        """What ``GET /v1/dev/sessions`` lists under ``"sessions"``, in process.

        Live sessions then the last 100 closed ones, each a dict with
        ``connection_id``, ``app_id``, ``avatar_id``, ``state`` (``"open"`` or
        ``"closed"``), ``egress`` (``"livekit"``, ``"agora"`` or ``None``),
        ``close_code`` and ``requests`` (``req_id``, ``frames``,
        ``audio_seconds``, ``ended``, ``interrupted``, ``paused``). No token,
        API key or egress secret (see :mod:`avatarkit.devserver._sessions_api`).
        """
        return sessions_document(list(self.sessions.values()), list(self.closed_sessions))

    async def wait_closed_sessions(self, count: int, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` sessions have closed (for tests)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.closed_sessions) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{len(self.closed_sessions)} of {count} sessions closed")
            await asyncio.sleep(0.01)

    def _live_for_app(self, app_id: str) -> int:
        return sum(1 for c in self._connections if c.state.app_id == app_id)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> DevServer:
        """Bind and serve; returns ``self``."""
        if self._runner is not None:
            raise RuntimeError("DevServer is already started")
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[jsonapi_errors])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post("/v1/console/session-tokens", self._token)
        app.router.add_post("/v1/auth/session-token", self._token)
        add_viewer_routes(app, self.viewers)  # and GET /v1/dev/sessions
        app.router.add_get("/v2/driveningress/websocket", self._websocket)
        app.on_shutdown.append(self._on_shutdown)
        # keepalive_timeout also runs from the moment a connection is accepted
        # until a whole request head arrived: a client that sends half a
        # request line, or nothing, is closed after read_timeout. Bodies are
        # bounded in _read_body; an unread rest is drained for at most
        # read_timeout too (lingering_time) before the connection is closed.
        runner = AppRunner(  # malformed HTTP: one redacted INFO line, JSON:API 400
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
            keepalive_timeout=self.read_timeout,
            lingering_time=self.read_timeout,
        )
        await runner.setup()
        try:
            port, reuse = self._requested_port, self.reuse_port or None
            site = web.TCPSite(
                runner, self.host, port, ssl_context=self.ssl_context, reuse_port=reuse
            )
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._wheel = FrameWheel(asyncio.get_running_loop())
        self._port = int(runner.addresses[0][1])
        self._closing = False
        return self

    async def close(self) -> None:
        """Close every session (close code 1001) and stop serving. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing = True
        try:
            await runner.cleanup()
        finally:
            if self._wheel is not None:
                self._wheel.close()

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.viewers.close_all()
        conns = list(self._connections)
        if conns:
            await asyncio.gather(
                *(c.shutdown(CLOSE_GOING_AWAY, "server shutting down") for c in conns),
                return_exceptions=True,
            )

    async def __aenter__(self) -> DevServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        where = self.api_root if self._port is not None else "not started"
        return f"<DevServer {where} pace={self.pace} sessions={len(self.sessions)}>"

    # -- HTTP routes ----------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        if self._closing:
            return web.json_response({"status": "shutting down"}, status=503)
        return web.json_response({"status": "ok"})

    async def _token(self, request: web.Request) -> web.Response:
        return await token_route(self, request)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        admitted = admit_upgrade(self, request)
        if isinstance(admitted, web.Response):
            self.rejected_upgrades += 1
            return admitted
        app_id, style, avatar_id = admitted
        settings = self._settings
        ws = IngressWebSocket(
            max_msg_size=settings.max_message_size,
            compress=self.compress,
            timeout=settings.close_timeout,
        )
        if not ws.can_prepare(request).ok:
            self.rejected_upgrades += 1
            return error_response(
                400,
                "invalidRequest",
                "WebSocket upgrade expected",
                "this endpoint only accepts WebSocket upgrades",
            )
        if self._closing:
            return error_response(
                503, "shuttingDown", "Service shutting down", "the local service is shutting down"
            )
        limit = self.max_sessions_per_app
        over_limit = limit is not None and self._live_for_app(app_id) >= limit
        await ws.prepare(request)
        if over_limit:
            await refuse_concurrency(self, ws, app_id)
            return ws
        key = next(self._keys)
        self.faults.bind_connection(key)
        state = SessionState(app_id=app_id, avatar_id=avatar_id, auth_style=style)
        log.info(
            "avatarkit devserver: session #%d connected from %s (app %r, avatar %r, %s auth)",
            key,
            request.remote,
            app_id,
            avatar_id,
            style,
        )
        self._last_session = state
        conn = Connection(
            ws=ws,
            request=request,
            state=state,
            settings=settings,
            faults=self.faults,
            key=key,
            on_confirmed=self._on_confirmed,
            wheel=self._wheel,
        )
        self._connections.add(conn)
        try:
            await conn.run()
        except Exception:
            log.exception("avatarkit devserver: connection %s failed", state.connection_id or key)
        finally:
            self._connections.discard(conn)
            if state.connection_id:
                self.sessions.pop(state.connection_id, None)
            self.closed_sessions.append(state)
            log_closed(key, state)
        return ws

    def _on_confirmed(self, conn: Connection) -> None:
        self.sessions[conn.state.connection_id] = conn.state
