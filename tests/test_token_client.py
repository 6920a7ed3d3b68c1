"""The pooled HTTP/1.1 client of the token call, against real loopback servers.

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

import pytest

from avatarkit import SessionTokenError, new_avatar_session
from avatarkit._tokenclient import MAX_BODY, MAX_IDLE, TokenClient, TokenClientError

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
                if self.close_after:
                    break
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
async def client(**kw: float) -> AsyncIterator[TokenClient]:
    c = TokenClient(**kw)
    try:
        yield c
    finally:
        await c.close()


HEADERS = {"X-Api-Key": "k", "Content-Type": "application/json"}


async def test_connection_is_kept_alive() -> None:
    async with serve(lambda n: answer()) as server, client() as c:
        for _ in range(5):
            assert await c.post(server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert (server.connections, server.requests) == (1, 5)


async def test_a_pooled_connection_found_closed_is_replaced() -> None:
    # The server answers and then closes: the pooled connection is stale
    # before the next call starts.
    async with serve(lambda n: answer(), close_after=True) as server, client() as c:
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        await asyncio.sleep(0.05)  # the close arrives
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        assert server.connections == 2


async def test_a_pooled_connection_lost_after_the_request_is_retried_once() -> None:
    # Request 2 goes out on the kept-alive connection, which the server then
    # closes without answering (as one that timed it out at that moment
    # would): the client tries once more, on a new connection.
    async with serve(lambda n: HANG_UP if n == 2 else answer()) as server, client() as c:
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        assert (server.connections, server.requests) == (2, 3)


async def test_the_retry_happens_only_once() -> None:
    async with serve(lambda n: answer() if n == 1 else HANG_UP) as server, client() as c:
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        with pytest.raises(ConnectionError):
            await c.post(server.url, HEADERS, b"{}")
        assert (server.connections, server.requests) == (2, 3)


async def test_a_timeout_on_a_pooled_connection_is_not_retried() -> None:
    async with serve(lambda n: answer() if n == 1 else None) as server, client(
        total_timeout=0.3
    ) as c:
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        with pytest.raises(asyncio.TimeoutError):
            await c.post(server.url, HEADERS, b"{}")
        assert (server.connections, server.requests) == (1, 2)


async def test_idle_connections_expire() -> None:
    async with serve(lambda n: answer()) as server, client(idle_seconds=0.1) as c:
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        assert server.connections == 1
        await asyncio.sleep(0.2)
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        assert server.connections == 2


async def test_server_keep_alive_timeout_is_honoured() -> None:
    # "timeout=1": the client stops reusing a connection one second before.
    reply = answer(extra=b"Keep-Alive: timeout=1, max=100\r\n")
    async with serve(lambda n: reply) as server, client() as c:
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        assert server.connections == 2


async def test_request_line_and_headers() -> None:
    async with serve(lambda n: answer()) as server, client() as c:
        url = server.url.replace("/session-tokens", "/a b/é/session-tokens")
        assert (await c.post(url, HEADERS, b"{}"))[0] == 200
        head = server.heads[0].decode("latin-1")
        assert head.startswith("POST /v1/console/a%20b/%C3%A9/session-tokens HTTP/1.1\r\n")
        assert "\r\nUser-Agent: avatarkit-python" in head
        assert "\r\nAccept: application/json\r\n" in head
        assert "\r\nX-Api-Key: k\r\n" in head
        assert "\r\nContent-Length: 2\r\n" in head
        with pytest.raises(TokenClientError, match="credentials in console_endpoint_url"):
            await c.post(url.replace("http://", "http://user:pw@"), HEADERS, b"{}")


async def test_connection_close_answer_is_not_pooled() -> None:
    async with serve(lambda n: answer(extra=b"Connection: close\r\n")) as server, client() as c:
        for _ in range(3):
            assert (await c.post(server.url, HEADERS, b"{}"))[0] == 200
        assert server.connections == 3


async def test_chunked_body() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n" + OK_BODY[:5] + b"\r\n" + f"{len(OK_BODY) - 5:x}".encode() + b"\r\n"
        + OK_BODY[5:] + b"\r\n0\r\n\r\n"
    )
    async with serve(lambda n: chunked) as server, client() as c:
        assert await c.post(server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert await c.post(server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert server.connections == 1


async def test_body_delimited_by_close() -> None:
    old_style = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + OK_BODY
    async with serve(lambda n: old_style, close_after=True) as server, client() as c:
        assert await c.post(server.url, HEADERS, b"{}") == (200, OK_BODY)


async def test_interim_answer_is_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    async with serve(lambda n: interim + answer()) as server, client() as c:
        assert await c.post(server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert await c.post(server.url, HEADERS, b"{}") == (200, OK_BODY)
        assert server.connections == 1


async def test_error_status_and_body_are_returned() -> None:
    body = b'{"errors":[{"status":"401","code":"unauthorized"}]}'
    reply = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: " + str(len(body)).encode()
    async with serve(lambda n: reply + b"\r\n\r\n" + body) as server, client() as c:
        assert await c.post(server.url, HEADERS, b"{}") == (401, body)


async def test_silent_server_times_out() -> None:
    async with serve(lambda n: None) as server, client(total_timeout=0.2) as c:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await c.post(server.url, HEADERS, b"{}")
        assert loop.time() - t0 < 5


async def test_server_closing_without_answer_fails_without_looping() -> None:
    async with serve(lambda n: HANG_UP) as server, client() as c:
        with pytest.raises(ConnectionError):
            await c.post(server.url, HEADERS, b"{}")
        assert server.requests == 1


async def test_garbage_and_oversized_answers_fail_clearly() -> None:
    async with serve(lambda n: b"NOT HTTP AT ALL\r\n\r\n") as server, client() as c:
        with pytest.raises(TokenClientError, match="malformed HTTP answer"):
            await c.post(server.url, HEADERS, b"{}")
    big = answer(b"x" * (MAX_BODY + 10))
    async with serve(lambda n: big) as server, client() as c:
        with pytest.raises(TokenClientError, match="larger than"):
            await c.post(server.url, HEADERS, b"{}")


async def test_concurrent_calls_and_idle_limit() -> None:
    async with serve(lambda n: answer()) as server, client() as c:
        results = await asyncio.gather(*(c.post(server.url, HEADERS, b"{}") for _ in range(40)))
        assert all(r == (200, OK_BODY) for r in results)
        assert sum(len(v) for v in c._idle.values()) <= MAX_IDLE
        assert server.requests == 40


async def test_closed_client_refuses_and_unsupported_urls_are_named() -> None:
    c = TokenClient()
    await c.close()
    with pytest.raises(TokenClientError, match="closed"):
        await c.post("http://127.0.0.1:1/x", HEADERS, b"{}")
    async with client() as c2:
        with pytest.raises(TokenClientError, match="use http:// or https://"):
            await c2.post("ftp://example.com/x", HEADERS, b"{}")


async def test_sdk_maps_failures_to_session_token_errors() -> None:
    async with serve(lambda n: b"garbage\r\n\r\n") as server:
        session = new_avatar_session(
            api_key="k",
            app_id="a",
            avatar_id="av",
            console_endpoint_url=server.url.removesuffix("/session-tokens"),
            ingress_endpoint_url="ws://127.0.0.1:1/v2/driveningress",
            expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        )
        with pytest.raises(SessionTokenError) as info:
            await session.init()
        assert info.value.code.value == "connectionFailed"
        assert "malformed HTTP answer" in str(info.value)


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
