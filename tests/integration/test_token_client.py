"""The token call on aiohttp's client, against real loopback servers.

The local avatar service covers the ordinary answers (see the session and
e2e tests); the small servers here are raw asyncio servers that answer in
the ways a real deployment might and the local service never does: chunked
or close-delimited bodies, kept-alive connections closed between calls,
silence, garbage, huge bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest

from avatarkit import SessionTokenError, new_avatar_session
from avatarkit._http import MAX_BODY, TokenCallError, new_client, post

OK_BODY = b'{"sessionToken": "tok"}'


def answer(body: bytes = OK_BODY, *, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


#: What ``reply`` returns to close the connection without answering.
HANG_UP = b"<hang up>"


class RawServer:
    """Counts connections and requests; ``reply(n)`` says what request n gets
    (bytes to send, ``None`` to stay silent, :data:`HANG_UP` to close)."""

    def __init__(self, reply: Callable[[int], bytes | None], close_after: bool = False) -> None:
        self.reply = reply
        self.close_after = close_after
        self.connections = 0
        self.requests = 0
        self.heads: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None
        self.stop = asyncio.Event()
        self.handlers: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.requests += 1
                self.heads.append(head)
                data = self.reply(self.requests)
                if data is None:  # stay silent until the test ends
                    await self.stop.wait()
                    break
                if data == HANG_UP:
                    break
                writer.write(data)
                await writer.drain()
                if self.close_after or b"\r\nconnection: close" in head.lower():
                    break  # as HTTP/1.1 asks of a server (RFC 9112 section 9.6)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/console/session-tokens"


@contextlib.asynccontextmanager
async def serve(reply: Callable[[int], bytes | None], **kw: bool) -> AsyncIterator[RawServer]:
    raw = RawServer(reply, **kw)
    raw.server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    try:
        yield raw
    finally:
        raw.server.close()
        raw.stop.set()
        for writer in raw.writers:
            writer.close()
        await asyncio.gather(*raw.handlers)
        await raw.server.wait_closed()


@contextlib.asynccontextmanager
async def client(**kw: float) -> AsyncIterator[aiohttp.ClientSession]:
    c = new_client(**kw)
    try:
        yield c
    finally:
        await c.close()


HEADERS = {"X-Api-Key": "k", "Content-Type": "application/json"}


def session_for(console_url: str) -> object:
    return new_avatar_session(
        api_key="k",
        app_id="a",
        avatar_id="av",
        console_endpoint_url=console_url,
        ingress_endpoint_url="ws://127.0.0.1:1/v2/driveningress",
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
    )


async def test_connection_is_kept_alive() -> None:
    async with serve(lambda n: answer()) as server, client() as c:
        for _ in range(5):
            assert await post(c, server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert (server.connections, server.requests) == (1, 5)


async def test_a_burst_keeps_at_most_max_idle_connections() -> None:
    """32 concurrent token calls (a pool starting up) leave at most
    MAX_IDLE_CONNECTIONS connections open for reuse: the others ask for
    ``Connection: close`` (the server closes them, as HTTP/1.1 servers must)
    instead of being kept for 15 s (memory per process, BENCHMARKS.md)."""
    from avatarkit._http import MAX_IDLE_CONNECTIONS

    async with serve(lambda n: answer()) as server, client() as c:
        results = await asyncio.gather(*(post(c, server.url, HEADERS, b"{}") for _ in range(32)))
        assert results == [(200, OK_BODY)] * 32
        closing = [h for h in server.heads if b"\r\nconnection: close" in h.lower()]
        assert len(closing) == 32 - MAX_IDLE_CONNECTIONS
        for _ in range(100):  # the server sees the closes shortly after
            open_now = sum(1 for w in server.writers if not w.is_closing())
            if open_now <= MAX_IDLE_CONNECTIONS:
                break
            await asyncio.sleep(0.02)
        open_handlers = sum(1 for t in server.handlers if not t.done())
        assert open_handlers <= MAX_IDLE_CONNECTIONS, (server.connections, open_handlers)
        # and what is kept is reused
        before = server.connections
        assert await post(c, server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert server.connections == before


async def test_sessions_on_one_loop_share_the_client_and_its_connection() -> None:
    async with serve(lambda n: answer()) as server:
        for _ in range(3):
            session = session_for(server.url.removesuffix("/session-tokens"))
            await session.init()  # type: ignore[attr-defined]
        assert (server.connections, server.requests) == (1, 3)
    # The per-loop client is closed by the loop guard when this test's loop
    # shuts down; warnings are errors here, so a leak would fail the test.


async def test_a_pooled_connection_found_closed_is_replaced() -> None:
    # The server answers and then closes: the pooled connection is stale
    # before the next call starts.
    async with serve(lambda n: answer(), close_after=True) as server, client() as c:
        assert (await post(c, server.url, HEADERS, b"{}"))[0] == 200
        await asyncio.sleep(0.05)  # the close arrives
        assert (await post(c, server.url, HEADERS, b"{}"))[0] == 200
        assert server.connections == 2


async def test_a_pooled_connection_lost_after_the_request_fails_clearly() -> None:
    # Request 2 goes out on the kept-alive connection, which the server then
    # closes without answering: a POST is not idempotent, so no retry.
    async with serve(lambda n: HANG_UP if n == 2 else answer()) as server, client() as c:
        assert (await post(c, server.url, HEADERS, b"{}"))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await post(c, server.url, HEADERS, b"{}")
        assert server.requests == 2
        assert (await post(c, server.url, HEADERS, b"{}"))[0] == 200  # a new connection


async def test_a_timeout_on_a_pooled_connection_is_not_retried() -> None:
    async with (
        serve(lambda n: answer() if n == 1 else None) as server,
        client(total_timeout=0.3) as c,
    ):
        assert (await post(c, server.url, HEADERS, b"{}"))[0] == 200
        with pytest.raises(asyncio.TimeoutError):
            await post(c, server.url, HEADERS, b"{}")
        assert (server.connections, server.requests) == (1, 2)


async def test_idle_connections_expire() -> None:
    async with serve(lambda n: answer()) as server, client(idle_seconds=0.1) as c:
        assert (await post(c, server.url, HEADERS, b"{}"))[0] == 200
        assert (await post(c, server.url, HEADERS, b"{}"))[0] == 200
        assert server.connections == 1
        await asyncio.sleep(0.5)
        assert (await post(c, server.url, HEADERS, b"{}"))[0] == 200
        assert server.connections == 2


async def test_request_line_and_headers() -> None:
    async with serve(lambda n: answer()) as server, client() as c:
        url = server.url.replace("/session-tokens", "/a b/é/session-tokens")
        assert (await post(c, url, HEADERS, b"{}"))[0] == 200
        head = server.heads[0].decode("latin-1")
        assert head.startswith("POST /v1/console/a%20b/%C3%A9/session-tokens HTTP/1.1\r\n")
        assert "\r\nUser-Agent: avatarkit-python" in head
        assert "\r\nAccept: application/json\r\n" in head
        assert "\r\nX-Api-Key: k\r\n" in head
        assert "\r\nContent-Length: 2\r\n" in head
        assert "cookie" not in head.lower()
        with pytest.raises(TokenCallError, match="credentials in console_endpoint_url"):
            await post(c, url.replace("http://", "http://user:pw@"), HEADERS, b"{}")
        with pytest.raises(TokenCallError, match="use http:// or https://"):
            await post(c, "ftp://example.com/x", HEADERS, b"{}")
        assert server.requests == 1


async def test_connection_close_answer_is_not_pooled() -> None:
    async with serve(lambda n: answer(extra=b"Connection: close\r\n")) as server, client() as c:
        for _ in range(3):
            assert (await post(c, server.url, HEADERS, b"{}"))[0] == 200
        assert server.connections == 3


async def test_chunked_body() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n"
        + OK_BODY[:5]
        + b"\r\n"
        + f"{len(OK_BODY) - 5:x}".encode()
        + b"\r\n"
        + OK_BODY[5:]
        + b"\r\n0\r\n\r\n"
    )
    async with serve(lambda n: chunked) as server, client() as c:
        assert await post(c, server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert await post(c, server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert server.connections == 1


async def test_body_delimited_by_close() -> None:
    old_style = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + OK_BODY
    async with serve(lambda n: old_style, close_after=True) as server, client() as c:
        assert await post(c, server.url, HEADERS, b"{}") == (200, OK_BODY)


async def test_interim_answer_is_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    async with serve(lambda n: interim + answer()) as server, client() as c:
        assert await post(c, server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert await post(c, server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert server.connections == 1


async def test_error_status_and_body_are_returned() -> None:
    body = b'{"errors":[{"status":"401","code":"unauthorized"}]}'
    reply = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: " + str(len(body)).encode()
    async with serve(lambda n: reply + b"\r\n\r\n" + body) as server, client() as c:
        assert await post(c, server.url, HEADERS, b"{}") == (401, body)


async def test_silent_server_times_out() -> None:
    async with serve(lambda n: None) as server, client(total_timeout=0.2) as c:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(post(c, server.url, HEADERS, b"{}"), 5)


async def test_server_closing_without_answer_fails_without_looping() -> None:
    async with serve(lambda n: HANG_UP) as server, client() as c:
        with pytest.raises(aiohttp.ClientError):
            await post(c, server.url, HEADERS, b"{}")
        assert server.requests == 1


async def test_garbage_answer_fails_clearly() -> None:
    async with serve(lambda n: b"NOT HTTP AT ALL\r\n\r\n") as server, client() as c:
        with pytest.raises(aiohttp.ClientError):
            await post(c, server.url, HEADERS, b"{}")


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close-delimited"])
async def test_oversized_answer_is_refused(framing: str) -> None:
    big = b"x" * (MAX_BODY + 10)
    if framing == "content-length":
        reply = answer(big)
    elif framing == "chunked":
        reply = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(big):x}".encode()
            + b"\r\n"
            + big
            + b"\r\n0\r\n\r\n"
        )
    else:
        reply = b"HTTP/1.0 200 OK\r\n\r\n" + big
    async with serve(lambda n: reply, close_after=True) as server, client() as c:
        with pytest.raises(TokenCallError, match="larger than"):
            await post(c, server.url, HEADERS, b"{}")


@pytest.mark.parametrize("shape", ["long-line", "many-headers"])
async def test_endless_headers_are_refused(shape: str) -> None:
    if shape == "long-line":
        filler = b"X-Filler: " + b"a" * (4 << 20) + b"\r\n"
    else:
        filler = b"".join(b"X-H%d: v\r\n" % i for i in range(100_000))
    reply = b"HTTP/1.1 200 OK\r\n" + filler + b"Content-Length: 2\r\n\r\n{}"
    async with serve(lambda n: reply) as server, client() as c:
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(post(c, server.url, HEADERS, b"{}"), 10)


async def test_redirect_to_another_port_is_not_followed() -> None:
    async with serve(lambda n: answer()) as other:
        moved = (
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: "
            + other.url.encode()
            + b"\r\nContent-Length: 0\r\n\r\n"
        )
        async with serve(lambda n: moved) as server:
            session = session_for(server.url.removesuffix("/session-tokens"))
            with pytest.raises(SessionTokenError) as info:
                await session.init()  # type: ignore[attr-defined]
        assert other.connections == 0 and other.requests == 0
    err = info.value
    assert err.code.value == "connectionFailed"
    assert err.http_status == 307
    assert "redirects are not followed" in err.message


async def test_closed_client_refuses() -> None:
    c = new_client()
    await c.close()
    with pytest.raises(RuntimeError, match="closed"):
        await post(c, "http://127.0.0.1:1/x", HEADERS, b"{}")


async def test_sdk_maps_failures_to_session_token_errors() -> None:
    async with serve(lambda n: b"garbage\r\n\r\n") as server:
        session = session_for(server.url.removesuffix("/session-tokens"))
        with pytest.raises(SessionTokenError) as info:
            await session.init()  # type: ignore[attr-defined]
        assert info.value.code.value == "connectionFailed"
        assert info.value.phase == "session_token"
        assert "session token request to" in str(info.value)


async def test_sdk_timeout_is_a_session_token_error() -> None:
    from avatarkit import _loopguard

    async with serve(lambda n: None) as server:
        # This loop's shared client, with a short timeout for the test.
        resources = _loopguard._resources()
        resources.client = new_client(total_timeout=0.2)
        session = session_for(server.url.removesuffix("/session-tokens"))
        with pytest.raises(SessionTokenError, match="timed out") as info:
            await asyncio.wait_for(session.init(), 5)  # type: ignore[attr-defined]
        assert info.value.code.value == "connectionFailed"
        assert server.requests == 1  # not retried


@pytest.mark.parametrize("bad_key", ["key\r\nX-Evil: 1", "kéy", "key\x00"])
async def test_api_key_that_cannot_be_a_header_is_refused_before_the_network(
    bad_key: str,
) -> None:
    session = new_avatar_session(
        api_key=bad_key,
        app_id="a",
        avatar_id="av",
        console_endpoint_url="http://127.0.0.1:1/v1/console",
        ingress_endpoint_url="ws://127.0.0.1:1/v2/driveningress",
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
    )
    with pytest.raises(ValueError, match="api_key holds characters") as info:
        await session.init()
    assert bad_key not in str(info.value)


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (made with openssl)."""
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_is_verified_by_default(self_signed: tuple[Path, Path]) -> None:
    """A self-signed server certificate is refused: the key never goes out."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*self_signed)
    raw = RawServer(lambda n: answer())
    raw.server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=context)
    try:
        url = raw.url.replace("http://", "https://")
        async with client() as c:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await post(c, url, HEADERS, b"{}")
        assert raw.requests == 0
    finally:
        raw.server.close()
        raw.stop.set()
        for writer in raw.writers:
            writer.close()
        await asyncio.gather(*raw.handlers)
        await raw.server.wait_closed()


@pytest.mark.parametrize(
    "console",
    [
        "http://a..b/v1/console",
        "http://" + "a" * 300 + ".com/v1/console",
        "http://127.0.0.1:99999/v1/console",
    ],
    ids=["empty-label", "label-too-long", "bad-port"],
)
async def test_unusable_console_url_is_a_clear_session_token_error(console: str) -> None:
    session = session_for(console)
    with pytest.raises(SessionTokenError) as info:
        await asyncio.wait_for(session.init(), 5)  # type: ignore[attr-defined]
    assert info.value.code.value == "connectionFailed"
    assert "console_endpoint_url" in info.value.message
