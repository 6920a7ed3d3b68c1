"""A fault-injecting TCP proxy for chaos tests: :class:`ChaosProxy`.

Put it between a client and the local avatar service (or any TCP server) and
it forwards bytes both ways, with the network's bad days on demand:

* ``latency`` and ``jitter``: every chunk is held ``latency`` plus a random
  ``[0, jitter)`` seconds (seeded), in order (TCP never reorders);
* ``bandwidth``: bytes per second per direction and connection;
* :meth:`ChaosProxy.cut_mid_frame`: the next server->client WebSocket frame
  is cut after ``after_bytes`` of it, then the connection is closed (FIN);
* :meth:`ChaosProxy.reset`: every WebSocket connection is reset (RST, as
  ``SO_LINGER`` 0 makes the kernel send) on both sides;
* :meth:`ChaosProxy.half_open`: every WebSocket connection stops forwarding
  both ways and stops reading, without closing (a peer frozen or gone behind
  a NAT): only a keepalive or a timeout notices.

Cut, reset and half-open hit only connections that were upgraded to a
WebSocket (the proxy reads the server's answer head), so the session-token
HTTP calls through the same proxy keep working. The WebSocket framing is
followed by :class:`~avatarkit._wsscan.FrameScanner`, which does no I/O.

It lives in the package (``avatarkit.testing.ChaosProxy``) rather than in the
test suite so that users can run their own application's chaos tests against
``DevServer`` the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from ._wsscan import FrameScanner

__all__ = ["ChaosProxy", "ChaosStats", "FrameScanner"]

_READ_SIZE = 64 * 1024
_QUEUE_CHUNKS = 64  # per direction: at most 64 reads (4 MiB) held for latency
_CLOSE_TIMEOUT = 2.0  # flushing a cut connection's last bytes


@dataclass(frozen=True)
class ChaosStats:
    """What a :class:`ChaosProxy` did so far (:attr:`ChaosProxy.stats`)."""

    connections: int
    """Connections accepted."""
    websockets: int
    """Of those, upgraded to a WebSocket."""
    open: int
    """Connections still open."""
    open_websockets: int
    """Of those, WebSocket connections (HTTP keep-alive ones stay open, idle)."""
    bytes_up: int
    """Bytes forwarded client -> server."""
    bytes_down: int
    """Bytes forwarded server -> client."""
    cuts: int
    """Connections cut mid-frame."""
    resets: int
    """Connections reset."""
    frozen: int
    """Connections made half-open."""


_CUT = object()  # queue marker: close both sides after the bytes before it
_EOF = object()  # queue marker: the reading side ended (FIN)

Item = tuple[float, "bytes | object"]


class _Link:
    """One proxied connection: a client side, a server side, four tasks."""

    def __init__(
        self,
        proxy: ChaosProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client_reader, self.client_writer = client
        self.server_reader, self.server_writer = server
        self.scanner = FrameScanner()
        self.frozen = asyncio.Event()  # set: half-open, nothing moves
        self.dead = False
        self.eofs = 0
        self.cut_at: int | None = None  # stream offset (server->client) to cut at
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        up: asyncio.Queue[Item] = asyncio.Queue(_QUEUE_CHUNKS)
        down: asyncio.Queue[Item] = asyncio.Queue(_QUEUE_CHUNKS)
        loop = asyncio.get_running_loop()
        for coro, name in (
            (self._read(self.client_reader, up, "up"), "up-read"),
            (self._write(up, self.server_writer, "up"), "up-write"),
            (self._read(self.server_reader, down, "down"), "down-read"),
            (self._write(down, self.client_writer, "down"), "down-write"),
        ):
            self.tasks.append(loop.create_task(coro, name=f"avatarkit-chaos-{name}"))

    async def _read(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[Item], way: str
    ) -> None:
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        last_due = 0.0
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if self.frozen.is_set():
                    await asyncio.Future()  # half-open: hold it, read no more, until closed
                if not data:
                    await queue.put((last_due, _EOF))
                    return
                cut_at = None
                if way == "down":
                    cut_at = self._scan(data)
                due = max(loop.time() + proxy.latency + proxy._jitter(), last_due)
                last_due = due
                if cut_at is not None:
                    await queue.put((due, data[:cut_at]))
                    await queue.put((due, _CUT))
                    return
                await queue.put((due, data))
        except (ConnectionError, OSError):
            self.kill(reset=False)

    def _scan(self, data: bytes) -> int | None:
        """Follow the server's frames in ``data``; where to cut it, if a cut is due."""
        scanner = self.scanner
        was_websocket = scanner.websocket
        chunk_start = scanner.position
        starts = scanner.feed(data)
        if scanner.websocket and not was_websocket:
            self.proxy._websockets += 1
        if self.cut_at is None:
            self.cut_at = self.proxy._claim_cut(starts)
        if self.cut_at is None or self.cut_at >= chunk_start + len(data):
            return None
        # A frame header split over reads (rare): cut where this chunk starts.
        return max(0, self.cut_at - chunk_start)

    async def _write(
        self, queue: asyncio.Queue[Item], writer: asyncio.StreamWriter, way: str
    ) -> None:
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        free_at = 0.0  # bandwidth: when the next byte may go
        try:
            while True:
                due, item = await queue.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if self.frozen.is_set():
                    await asyncio.Future()
                if item is _EOF:
                    if writer.can_write_eof():
                        writer.write_eof()
                    self.eofs += 1
                    if self.eofs == 2:  # both sides ended: close once all is flushed
                        await self.shut()
                    return
                if item is _CUT:
                    proxy._cuts += 1
                    await self.shut()
                    return
                assert isinstance(item, bytes)
                for piece in _pieces(item, proxy.bandwidth):
                    rate = proxy.bandwidth
                    if rate:
                        free_at = max(free_at, loop.time())
                        if free_at > loop.time():
                            await asyncio.sleep(free_at - loop.time())
                        free_at += len(piece) / rate
                    writer.write(piece)
                    proxy._count(way, len(piece))
                    await writer.drain()
        except (ConnectionError, OSError):
            self.kill(reset=False)

    async def shut(self) -> None:
        """Close both sides after flushing what was written (a cut: FIN, not RST)."""
        self.dead = True
        for writer in (self.client_writer, self.server_writer):
            writer.close()
        for writer in (self.client_writer, self.server_writer):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
            writer.transport.abort()  # a peer that reads nothing: drop what is left
        self._cancel_tasks()

    def kill(self, *, reset: bool) -> None:
        """Drop both sides now; with ``reset`` the kernel sends RST (``SO_LINGER`` 0)."""
        self.dead = True
        for writer in (self.client_writer, self.server_writer):
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
            writer.transport.abort()
        self._cancel_tasks()

    def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


def _pieces(data: bytes, rate: float | None) -> list[bytes]:
    """``data`` in slices of about 20 ms at ``rate`` bytes/s (whole without a rate)."""
    if not rate:
        return [data]
    step = max(512, int(rate / 50))
    return [data[i : i + step] for i in range(0, len(data), step)]


class ChaosProxy:
    """A TCP proxy that injects network faults (see the module docs).

    ``ChaosProxy(upstream_host, upstream_port)`` listens on ``host``/``port``
    (loopback, a free port by default) once started; use it as an async
    context manager. :meth:`url` rewrites a URL of the upstream to go through
    the proxy::

        async with DevServer(pace="fast") as server, ChaosProxy(server.host, server.port) as proxy:
            kwargs = server.session_kwargs(
                console_endpoint_url=proxy.url(server.console_url),
                ingress_endpoint_url=proxy.url(server.ingress_url),
            )

    ``latency``, ``jitter`` (seconds) and ``bandwidth`` (bytes per second,
    ``None``: unlimited) are attributes: a change applies to bytes read after
    it. ``seed`` makes the jitter repeatable. Every wait of the proxy is
    bounded by the client's and the server's own behaviour; :meth:`close`
    drops whatever is left (no task or socket outlives it).
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        jitter: float = 0.0,
        bandwidth: float | None = None,
        seed: int | None = None,
    ) -> None:
        if latency < 0 or jitter < 0:
            raise ValueError("latency and jitter must be >= 0 seconds")
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError("bandwidth must be > 0 bytes per second (or None for no cap)")
        self.upstream = (upstream_host, upstream_port)
        self.latency = latency
        self.jitter = jitter
        self.bandwidth = bandwidth
        self._rng = random.Random(seed)
        self._bind = (host, port)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self._cut: tuple[int, int] | None = None  # (after_bytes, frames to let pass)
        self._connections = self._websockets = 0
        self._up = self._down = 0
        self._cuts = self._resets = self._frozen = 0

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> ChaosProxy:
        """Start listening (returns the proxy)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, *self._bind)
        return self

    async def close(self) -> None:
        """Stop listening and drop every connection (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._pending):
            task.cancel()
        tasks = [t for link in self._links for t in link.tasks] + list(self._pending)
        for link in list(self._links):
            link.kill(reset=False)
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT)
        self._links.clear()
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> ChaosProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the proxy listens on (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the proxy is not started: await proxy.start() first")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        host, port = self.address
        return urlunsplit(parts._replace(netloc=f"{host}:{port}"))

    @property
    def stats(self) -> ChaosStats:
        return ChaosStats(
            self._connections,
            self._websockets,
            len(self._links),
            sum(1 for link in self._links if link.scanner.websocket),
            self._up,
            self._down,
            self._cuts,
            self._resets,
            self._frozen,
        )

    # -- faults ----------------------------------------------------------------

    def cut_mid_frame(self, after_bytes: int = 8, *, after_frames: int = 0) -> None:
        """Cut the next server->client WebSocket frame longer than ``after_bytes``.

        Its first ``after_bytes`` bytes (header included) go through, then
        both sides are closed (FIN). ``after_frames`` frames are let through
        first. Applies once, to whichever WebSocket connection gets that frame.
        """
        if after_bytes < 1 or after_frames < 0:
            raise ValueError("after_bytes must be >= 1 and after_frames >= 0")
        self._cut = (after_bytes, after_frames)

    def reset(self) -> int:
        """Reset every open WebSocket connection now (RST both ways); how many."""
        links = self._select()
        for link in links:
            link.kill(reset=True)
            self._links.discard(link)
        self._resets += len(links)
        return len(links)

    def half_open(self) -> int:
        """Freeze every open WebSocket connection (no forwarding, no reading); how many."""
        links = self._select()
        for link in links:
            link.frozen.set()
        self._frozen += len(links)
        return len(links)

    def _select(self) -> list[_Link]:
        return [
            link
            for link in self._links
            if link.scanner.websocket and not link.dead and not link.frozen.is_set()
        ]

    # -- inner workings --------------------------------------------------------

    def _claim_cut(self, starts: list[tuple[int, int]]) -> int | None:
        """The stream offset to cut at, if the armed cut hits one of these frames."""
        cut = self._cut
        if cut is None:
            return None
        after_bytes, skip = cut
        for start, size in starts:
            if size <= after_bytes:
                continue
            if skip:
                skip -= 1
                continue
            self._cut = None
            return start + after_bytes
        self._cut = (after_bytes, skip)
        return None

    def _jitter(self) -> float:
        return self._rng.uniform(0.0, self.jitter) if self.jitter else 0.0

    def _count(self, way: str, n: int) -> None:
        if way == "up":
            self._up += n
        else:
            self._down += n

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pending.add(task)
        self._connections += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), _CLOSE_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
            return
        finally:
            self._pending.discard(task)
        link = _Link(self, (reader, writer), (up_reader, up_writer))
        self._links.add(link)
        link.start()
        for t in link.tasks:
            t.add_done_callback(_forget(self._links, link))


def _forget(links: set[_Link], link: _Link) -> Callable[[asyncio.Task[None]], None]:
    def done(_task: asyncio.Task[None]) -> None:
        if all(t.done() for t in link.tasks):
            links.discard(link)

    return done
