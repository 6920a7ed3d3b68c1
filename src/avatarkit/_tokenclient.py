"""A small keep-alive HTTP/1.1 client for the one POST the SDK makes.

The session-token call is on the critical path of every session set-up. With
aiohttp it cost ~0.17 ms of client CPU per call on loopback (request and
response objects, a writer task, timers, cookie and header machinery built
for general use); this client sends one pre-formatted request on a pooled
connection and parses the answer with httptools (Node.js's llhttp parser, the
one uvicorn uses; aiohttp's own C parser is llhttp too), for a fraction of
that (figures in BENCHMARKS.md, "Session set-up").

What it does, and deliberately does not:

- ``http`` and ``https`` (TLS with the system's default verification),
  HTTP/1.1 with keep-alive; idle connections are pooled per event loop and
  origin, at most :data:`MAX_IDLE` each.
- A pooled connection that turns out closed before any answer arrived (the
  server timed it out meanwhile) is retried once on a new connection.
- Answers with ``Content-Length``, chunked or close-delimited bodies, up to
  :data:`MAX_BODY` bytes.
- No redirects, no proxies, no cookies, no compression: the token route
  needs none of them (a 3xx answer is reported as an HTTP error with its
  status), and aiohttp as used before did not read proxy settings either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from functools import lru_cache
from urllib.parse import quote, urlsplit

import httptools

__all__ = ["IDLE_SECONDS", "MAX_BODY", "MAX_IDLE", "TokenClient", "TokenClientError"]

#: Idle connections kept per origin and event loop.
MAX_IDLE = 16
#: Seconds an idle connection is kept (less when the server's ``Keep-Alive``
#: header says so): a NAT or load balancer may drop a quiet connection
#: without a word, and a request on it would wait for its whole timeout.
IDLE_SECONDS = 15.0
#: Largest answer body read (the token answer is a few hundred bytes).
MAX_BODY = 1 << 20


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"avatarkit-python/{version('avatarkit')}"
    except Exception:  # not installed as a distribution (a source checkout)
        return "avatarkit-python"


USER_AGENT = _user_agent()


class TokenClientError(Exception):
    """The request could not be completed (connection, timeout or a malformed answer)."""


@lru_cache(maxsize=64)
def _target(url: str) -> tuple[str, str, int, bool, str, str]:
    """``(origin key, host, port, tls, request target, Host header)`` of ``url``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise TokenClientError(f"unsupported URL {url!r}: use http:// or https://")
    tls = scheme == "https"
    default_port = 443 if tls else 80
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise TokenClientError(f"bad port in {url!r}") from exc
    if parts.username is not None or parts.password is not None:
        raise TokenClientError(
            "credentials in console_endpoint_url are not supported; the API key is the credential"
        )
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if port != default_port:
        host_header += f":{port}"
    # Percent-encode what cannot go in a request line (spaces, non-ASCII);
    # what is already encoded stays as it is.
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~?")
    return f"{scheme}://{host_header}", host, port, tls, path, host_header


_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.got_bytes = False
        self.status = 0
        self.body = bytearray()
        self.keep_alive = False
        self.idle_since = 0.0
        self.keep_alive_timeout: float | None = None  # from the server's Keep-Alive header
        self.framed = False  # the answer has Content-Length or is chunked
        self.until_close = False  # its body ends when the connection does
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.parser = httptools.HttpResponseParser(self)

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(TokenClientError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            # An error raised in one of our callbacks comes back wrapped.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, TokenClientError):
                self._fail(cause)
            else:
                self._fail(TokenClientError(f"malformed HTTP answer: {exc}"))
        except TokenClientError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.until_close and exc is None:
            # No Content-Length, not chunked: the body ended with the connection.
            self.keep_alive = False
            waiter.set_result((self.status, bytes(self.body)))
            return
        detail = f": {exc}" if exc else ""
        waiter.set_exception(ConnectionResetError(f"connection closed before the answer{detail}"))

    # -- httptools callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        self.body = bytearray()
        self.until_close = False
        self.framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (
            name == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self.framed = True
        elif name == b"keep-alive":
            for part in value.split(b","):
                key, _, number = part.strip().partition(b"=")
                if key.lower() == b"timeout":
                    with contextlib.suppress(ValueError):
                        self.keep_alive_timeout = float(number)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        # 1xx, 204 and 304 have no body; others without framing end at close.
        self.until_close = not self.framed and self.status >= 200 and self.status not in (204, 304)

    def on_body(self, body: bytes) -> None:
        if len(self.body) + len(body) > MAX_BODY:
            raise TokenClientError(f"answer body larger than {MAX_BODY} bytes")
        self.body += body

    def on_message_complete(self) -> None:
        self.until_close = False
        if 100 <= self.status < 200:
            return  # an interim answer (100 Continue): the real one follows
        self.keep_alive = bool(self.parser.should_keep_alive())
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, bytes(self.body)))

    # -- use -----------------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def usable(self) -> bool:
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()

    async def exchange(self, request: bytes, deadline: float) -> tuple[int, bytes]:
        """Send ``request``; return ``(status, body)`` of the answer."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        self.waiter = waiter
        self.got_bytes = False
        self.keep_alive = False
        self.transport.write(request)
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            # (status, body) as they were when the answer completed.
            return await waiter
        finally:
            timer.cancel()
            self.waiter = None


def _expire(waiter: asyncio.Future[tuple[int, bytes]]) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


class TokenClient:
    """Pooled connections for the token POST, for one event loop."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        total_timeout: float = 15.0,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.idle_seconds = idle_seconds
        self._idle: dict[str, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self.closed = False

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to ``url``; return ``(status, body)`` of the answer.

        Raises :class:`TokenClientError`, ``OSError`` or
        ``asyncio.TimeoutError`` when no answer could be had.
        """
        if self.closed:
            raise TokenClientError("the HTTP client is closed")
        key, host, port, tls, path, host_header = _target(url)
        request = _format_request(path, host_header, headers, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        idle = self._idle.get(key)
        now = loop.time()
        while idle:
            conn = idle.pop()
            limit = self.idle_seconds
            if conn.keep_alive_timeout is not None:
                limit = min(limit, conn.keep_alive_timeout - 1.0)
            if not conn.usable or now - conn.idle_since > limit:
                conn.abort()
                continue
            # A kept-alive connection may have been closed by the server
            # meanwhile: if it ends before any answer byte, try once more on
            # a new connection. (Not after a timeout: the deadline is spent.
            # At worst the server had handled the lost request and two
            # tokens were minted; an unused token is harmless.)
            try:
                return await self._exchange(key, conn, request, deadline)
            except ConnectionError:
                if conn.got_bytes:
                    raise
                break
        conn = await self._connect(host, port, tls, deadline)
        return await self._exchange(key, conn, request, deadline)

    async def _connect(self, host: str, port: int, tls: bool, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        timeout = min(self.connect_timeout, max(0.0, deadline - loop.time()))
        ssl_context = _default_ssl_context() if tls else None
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    _Connection, host, port, ssl=ssl_context, server_hostname=host if tls else None
                ),
                timeout,
            )
        except UnicodeError:  # a host name IDNA cannot encode
            raise TokenClientError(f"host name {host!r} cannot be encoded") from None
        return conn

    async def _exchange(
        self, key: str, conn: _Connection, request: bytes, deadline: float
    ) -> tuple[int, bytes]:
        self._busy.add(conn)
        try:
            result = await conn.exchange(request, deadline)
        except BaseException:
            conn.abort()
            raise
        finally:
            self._busy.discard(conn)
        if conn.keep_alive and conn.usable and not self.closed:
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE:
                conn.idle_since = asyncio.get_running_loop().time()
                idle.append(conn)
                return result
        conn.abort()
        return result

    async def close(self) -> None:
        """Close every connection (idle and in use)."""
        self.closed = True
        conns = [c for idle in self._idle.values() for c in idle] + list(self._busy)
        self._idle.clear()
        for conn in conns:
            conn.abort()
        # Let the transports run their connection_lost callbacks.
        await asyncio.sleep(0)


def _format_request(path: str, host_header: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host_header}",
        f"User-Agent: {USER_AGENT}",
        "Accept: application/json",
    ]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise TokenClientError(f"header {name} contains a line break; check the value")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: keep-alive")
    head = "\r\n".join(lines) + "\r\n\r\n"
    try:
        return head.encode("latin-1") + body
    except UnicodeEncodeError:
        raise TokenClientError(
            "a request header holds characters outside Latin-1; check the API key"
        ) from None
