"""The live viewer of the local service: pages at ``/`` and ``/sessions/<id>``.

``avatarkit serve`` (any :class:`~avatarkit.devserver.DevServer`) serves, on
its own port and address (loopback by default):

===================================  ===========================================
``GET /``                            the session list (updates live)
``GET /sessions/<connection_id>``    a 2D face driven by that session's frames
``GET /viewer/static/<file>``        the page's script and style (package data)
``GET /v1/dev/viewer/ws``            the pages' WebSocket (JSON + binary audio)
===================================  ===========================================

The WebSocket sends ``{"type": "sessions", "sessions": [...]}`` (the sessions
API, :mod:`avatarkit.devserver._sessions_api`) whenever the list changes, at
most every :data:`LIST_INTERVAL` seconds. With ``?session=<connection_id>`` it
also sends that session's frames as ``{"type": "frame", "req_id", "index",
"end", "viseme", "bs": {blendshape: weight}}`` and its decoded audio as binary
messages: a 4-byte little-endian header length, a JSON header ``{"type":
"audio", "req_id", "sample_rate", "offset"}`` (``offset``: samples of the
request before this chunk) and 16-bit little-endian mono PCM. The page sends
``{"type": "played", "req_id": ...}`` once it has shown a request's last
frame (``avatarkit demo --open`` waits for it).

Cost: a session is only tapped while a page watches it (``SessionState.
viewer_tap`` is ``None`` otherwise, one attribute test per frame). Each page
has a queue of :data:`MAX_QUEUED` messages; a page that cannot keep up loses
messages (counted in ``dropped``) instead of slowing the service. Nothing
secret is sent: identifiers, counters, blendshapes and the audio the client
itself sent; and only to pages of the service's own origin
(:func:`same_origin_refusal`), so another site open in the same browser
cannot read that audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import struct
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from ._state import SessionState

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ._animation import AnimationFrame
    from ._server import DevServer

__all__ = ["LIST_INTERVAL", "MAX_QUEUED", "SessionTap", "ViewerHub", "add_viewer_routes"]

log = logging.getLogger("avatarkit.devserver")

LIST_INTERVAL = 0.5
"""Seconds between checks of the session list sent to the pages."""
MAX_QUEUED = 2000
"""Messages waiting per page (80 s of frames); beyond, new ones are dropped."""
_STATIC = ("face.js", "live.js", "list.js", "viewer.css")
_PAGES = ("index.html", "session.html")


def static_text(name: str) -> str:
    """A file of the viewer's package data (``avatarkit/devserver/static``)."""
    return (files("avatarkit.devserver") / "static" / name).read_text(encoding="utf-8")


class _Watcher:
    """One page's WebSocket: a bounded queue drained by its writer task."""

    __slots__ = ("dropped", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue(MAX_QUEUED)
        self.dropped = 0

    def push(self, message: str | bytes) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1


class SessionTap:
    """Set on ``SessionState.viewer_tap`` while pages watch a session; fans out to them."""

    __slots__ = ("watchers",)

    def __init__(self) -> None:
        self.watchers: set[_Watcher] = set()

    def frame(self, req_id: str, index: int, end: bool, frame: AnimationFrame | None) -> None:
        """A frame the session sent (``frame`` ``None``: the empty end marker)."""
        msg: dict[str, Any] = {"type": "frame", "req_id": req_id, "index": index, "end": end}
        if frame is not None:
            msg["viseme"] = frame.viseme
            msg["bs"] = {k: round(float(v), 3) for k, v in frame.blendshapes.items()}
        text = json.dumps(msg, separators=(",", ":"))
        for w in self.watchers:
            w.push(text)

    def audio(self, req_id: str, sample_rate: int, offset: int, pcm: npt.NDArray[np.int16]) -> None:
        """Decoded audio of a request, ``offset`` samples into it."""
        head = json.dumps(
            {"type": "audio", "req_id": req_id, "sample_rate": sample_rate, "offset": offset},
            separators=(",", ":"),
        ).encode()
        data = struct.pack("<I", len(head)) + head + pcm.astype("<i2", copy=False).tobytes()
        for w in self.watchers:
            w.push(data)


class ViewerHub:
    """Pages watching the sessions of one server, and what they reported played."""

    def __init__(self, server: DevServer) -> None:
        self._server = server
        self._played: dict[str, set[str]] = {}
        self._watching: dict[str, int] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._list_cache: tuple[float, str] = (0.0, "")

    async def close_all(self) -> None:
        """Close every page's WebSocket (1001), so the server's shutdown need not wait."""
        sockets = list(self._sockets)
        if sockets:
            await asyncio.gather(
                *(ws.close(code=1001, message=b"server shutting down") for ws in sockets),
                return_exceptions=True,
            )

    @property
    def bound_host(self) -> str:
        """The address the service was bound to (accepted as a ``Host`` name)."""
        return self._server.host

    def watchers(self, connection_id: str) -> int:
        """Pages watching ``connection_id`` now."""
        return self._watching.get(connection_id, 0)

    def played(self, connection_id: str, req_id: str) -> bool:
        """Whether a page reported it showed the last frame of ``req_id``."""
        return req_id in self._played.get(connection_id, set())

    async def wait_for(self, check: Any, timeout: float) -> bool:
        """Poll ``check()`` every 50 ms for at most ``timeout`` seconds; its last value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _attach(self, state: SessionState, watcher: _Watcher) -> None:
        tap = state.viewer_tap
        if not isinstance(tap, SessionTap):
            tap = state.viewer_tap = SessionTap()
        tap.watchers.add(watcher)
        cid = state.connection_id
        self._watching[cid] = self._watching.get(cid, 0) + 1

    def _detach(self, state: SessionState, watcher: _Watcher) -> None:
        tap = state.viewer_tap
        if isinstance(tap, SessionTap):
            tap.watchers.discard(watcher)
            if not tap.watchers:
                state.viewer_tap = None
        cid = state.connection_id
        left = self._watching.get(cid, 1) - 1
        if left > 0:
            self._watching[cid] = left
        else:
            self._watching.pop(cid, None)

    def _note_played(self, connection_id: str, req_id: str) -> None:
        played = self._played.setdefault(connection_id, set())
        if len(played) < 1000:
            played.add(req_id)
        while len(self._played) > 200:
            self._played.pop(next(iter(self._played)))

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """The pages' WebSocket (see the module docstring)."""
        refusal = same_origin_refusal(request, self.bound_host)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
        await ws.prepare(request)
        self._sockets.add(ws)
        watcher = _Watcher()
        cid = request.query.get("session", "")
        state = self._server.find_session(cid) if cid else None
        if cid and state is None:
            watcher.push(json.dumps({"type": "unknown_session", "connection_id": cid}))
        if state is not None and not state.closed:
            self._attach(state, watcher)
        writer = asyncio.ensure_future(self._write(ws, watcher))
        lister = asyncio.ensure_future(self._list(watcher))
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT or state is None:
                    continue
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    data = json.loads(msg.data)
                    if data.get("type") == "played" and isinstance(data.get("req_id"), str):
                        self._note_played(state.connection_id, data["req_id"][:256])
        finally:
            self._sockets.discard(ws)
            if state is not None:
                self._detach(state, watcher)
            for task in (writer, lister):
                task.cancel()
            await asyncio.gather(writer, lister, return_exceptions=True)
        return ws

    def _list_text(self) -> str:
        """The session list message, computed at most once per interval for all pages."""
        now = asyncio.get_running_loop().time()
        at, text = self._list_cache
        if now - at >= LIST_INTERVAL * 0.9 or not text:
            text = json.dumps({"type": "sessions", "sessions": self._server.session_summaries()})
            self._list_cache = (now, text)
        return text

    async def _list(self, watcher: _Watcher) -> None:
        last = ""
        while True:
            text = self._list_text()
            if text != last:
                watcher.push(text)
                last = text
            await asyncio.sleep(LIST_INTERVAL)

    @staticmethod
    async def _write(ws: web.WebSocketResponse, watcher: _Watcher) -> None:
        queue = watcher.queue
        try:
            while not ws.closed:
                message = await queue.get()
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message)
        except (ConnectionError, RuntimeError):  # the page went away; the reader ends too
            pass


def _hostname(host: str) -> str:
    """``host`` of a ``Host`` header value (``[::1]:80`` -> ``::1``)."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def same_origin_refusal(request: web.Request, bound_host: str) -> web.Response | None:
    """403 for a request another site's page makes, else ``None``.

    The viewer shows the sessions' audio, so a page of another site open in
    the same browser must not read it: a browser lets any page open a
    WebSocket to 127.0.0.1, sending its own ``Origin``, and DNS rebinding can
    make a foreign name resolve to 127.0.0.1 (then ``Host`` is that name).
    Accepted: ``Host`` an IP address, ``localhost`` or the address the service
    was bound to, and ``Origin`` absent (not a browser) or this very origin.
    """
    host = request.host
    name = _hostname(host).lower()
    ok = name in ("localhost", bound_host.lower())
    if not ok:
        try:
            ipaddress.ip_address(name)
            ok = True
        except ValueError:
            ok = False
    origin = request.headers.get("Origin")
    if ok and origin is not None:
        parts = urlsplit(origin)
        ok = parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
    if ok:
        return None
    return web.Response(
        status=403,
        text="the viewer and the sessions API only answer pages of their own origin "
        "(same origin as the service); "
        f"open it as http://{_hostname(host) if ok else '127.0.0.1'}:PORT/",
    )


def _page(name: str, bound_host: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        refusal = same_origin_refusal(request, bound_host)
        if refusal is not None:
            return refusal
        return web.Response(
            text=static_text(name),
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    return handler


def _static(bound_host: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        refusal = same_origin_refusal(request, bound_host)
        if refusal is not None:
            return refusal
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound(text=f"no viewer file {name!r}")
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(text=static_text(name), content_type=kind)

    return handler


def _sessions_api(hub: ViewerHub) -> Any:
    """``GET /v1/dev/sessions``: refused like the viewer (it lists the same sessions)."""

    async def handler(request: web.Request) -> web.Response:
        refusal = same_origin_refusal(request, hub.bound_host)
        if refusal is not None:
            return refusal
        doc: dict[str, Any] = {"sessions": hub._server.session_summaries()}
        if hub._server.worker is not None:  # avatarkit serve --workers: this worker's only
            doc["worker"] = hub._server.worker
        return web.json_response(doc)

    return handler


def add_viewer_routes(app: web.Application, hub: ViewerHub) -> None:
    """Register the pages, their static files, their WebSocket and the sessions API."""
    host = hub.bound_host
    app.router.add_get("/v1/dev/sessions", _sessions_api(hub))
    app.router.add_get("/", _page("index.html", host))
    app.router.add_get("/sessions/{connection_id}", _page("session.html", host))
    app.router.add_get("/viewer/static/{name}", _static(host))
    app.router.add_get("/v1/dev/viewer/ws", hub.websocket)
