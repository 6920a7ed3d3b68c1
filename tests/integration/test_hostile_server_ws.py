"""The session's WebSocket against hostile servers, over real loopback sockets.

Each server here is a raw asyncio server written for the test: it speaks
just enough HTTP and WebSocket framing to misbehave in one precise way (stop
reading, redirect, reset mid-upgrade, never confirm, send odd close frames,
flood). Every case runs on both transports: picows (the default) and
aiohttp (``websocket_compression=True``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import gc
import hashlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from avatarkit import AvatarSDKError, AvatarSDKErrorCode, SessionTokenError, new_avatar_session
from avatarkit.protocol import encode_confirm

TOKEN = "hostile-secret-token"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

TRANSPORTS = [
    pytest.param(False, id="picows"),
    pytest.param(True, id="aiohttp"),
]


class RawWsServer:
    """A loopback server running ``script(reader, writer)`` per connection."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.server: asyncio.base_events.Server | None = None
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.transport.abort()

    async def start(self) -> RawWsServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def raw_server(script: Script) -> AsyncIterator[RawWsServer]:
    server = await RawWsServer(script).start()
    try:
        yield server
    finally:
        await server.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def upgrade_answer(head: bytes, extra: bytes = b"") -> bytes:
    key = b""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extra + b"\r\n"
    )


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A server (unmasked) frame."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One client (masked) frame: ``(opcode, payload)``."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytearray(await reader.readexactly(n))
    for i in range(n):
        data[i] ^= mask[i % 4]
    return b0 & 0x0F, bytes(data)


async def accept_and_confirm(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Upgrade, read the client's configure message, confirm the session."""
    writer.write(upgrade_answer(await read_head(reader)))
    await read_frame(reader)
    writer.write(frame(0x2, encode_confirm("conn-hostile")))
    await writer.drain()


def session_for(port: int, compression: bool, **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "avatar_id": "avatar-1",
        "api_key": "key-1",
        "app_id": "app-1",
        "console_endpoint_url": f"http://127.0.0.1:{port}/v1/console",
        "ingress_endpoint_url": f"ws://127.0.0.1:{port}",
        "websocket_compression": compression,
    }
    kwargs.update(overrides)
    session = new_avatar_session(**kwargs)
    session.use_session_token(TOKEN)
    return session


# -- 1. close() while the server stopped reading ------------------------------------------


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_close_is_bounded_when_server_stops_reading(compression: bool) -> None:
    """A send blocked on backpressure does not hold close() past its bound,
    and that send then fails with connectionClosed."""
    stop = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_and_confirm(reader, writer)
        await stop.wait()  # never reads again

    async with raw_server(script) as server:
        session = session_for(server.port, compression)
        await session.start()
        sent = 0

        async def flood() -> None:
            nonlocal sent
            chunk = bytes(1 << 20)
            while True:
                await session.send_audio(chunk)
                sent += 1

        sender = asyncio.get_running_loop().create_task(flood())
        # Wait until the sender is stuck (no progress for a while).
        last = -1
        for _ in range(200):
            await asyncio.sleep(0.1)
            if sent == last:
                break
            last = sent
        assert not sender.done()
        stuck_at = sent
        # The documented close bound is 2 s; 8 s proves "does not hang".
        await asyncio.wait_for(session.close(), 8)
        with pytest.raises(AvatarSDKError) as info:
            await asyncio.wait_for(sender, 8)
        assert info.value.code is AvatarSDKErrorCode.connectionClosed
        assert sent == stuck_at  # the blocked call itself failed, not a later one
        stop.set()


# -- 2. redirects on the upgrade ------------------------------------------------------


@pytest.mark.parametrize("query_auth", [False, True], ids=["header-auth", "query-auth"])
@pytest.mark.parametrize("compression", TRANSPORTS)
@pytest.mark.parametrize("status", [302, 307])
async def test_upgrade_redirect_is_not_followed(
    compression: bool, query_auth: bool, status: int
) -> None:
    """A 3xx to another port: nothing reaches the other port, and the error
    says redirects are not followed (without the token)."""
    heads: list[bytes] = []

    async def elsewhere(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_head(reader))
        await accept_and_confirm(reader, writer)

    async with raw_server(elsewhere) as other:

        async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_head(reader)
            writer.write(
                f"HTTP/1.1 {status} Moved\r\nLocation: ws://127.0.0.1:{other.port}/websocket\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
            await writer.drain()
            await reader.read()

        async with raw_server(redirect) as server:
            session = session_for(server.port, compression, use_query_auth=query_auth)
            with pytest.raises(AvatarSDKError) as info:
                await asyncio.wait_for(session.start(), 8)
            await session.close()
        err = info.value
        assert err.code is AvatarSDKErrorCode.connectionFailed
        assert err.phase == "websocket_connect"
        assert err.http_status == status
        assert "redirects are not followed" in err.message
        assert TOKEN not in str(err) and TOKEN not in repr(err)
        assert other.connections == 0 and heads == []


# -- 3. a server that breaks the upgrade or never confirms --------------------------------

PARTIAL_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webso"


async def partial_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(PARTIAL_101)
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()


async def partial_then_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(PARTIAL_101)
    await reader.read()


async def never_confirms(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(upgrade_answer(await read_head(reader)))
    await read_frame(reader)  # the configure message; no answer ever
    await reader.read()


async def reset_before_confirm(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(upgrade_answer(await read_head(reader)))
    await read_frame(reader)
    writer.transport.abort()


@pytest.mark.parametrize("compression", TRANSPORTS)
@pytest.mark.parametrize(
    ("script", "code", "phase"),
    [
        pytest.param(
            partial_then_reset, "connectionFailed", "websocket_connect", id="partial-101-reset"
        ),
        pytest.param(
            partial_then_silence, "connectionFailed", "websocket_connect", id="partial-101-silent"
        ),
        pytest.param(never_confirms, "connectionFailed", "websocket_handshake", id="no-confirm"),
        pytest.param(
            reset_before_confirm, "connectionClosed", "websocket_handshake", id="reset-101"
        ),
    ],
)
async def test_start_fails_within_open_timeout(
    compression: bool, script: Script, code: str, phase: str
) -> None:
    """start() gives up within open_timeout (0.5 s here; the 2 s bound
    proves no close timeout is added on top), with the phase and code the
    failure belongs to, and leaves nothing open."""
    async with raw_server(script) as server:
        session = session_for(server.port, compression, open_timeout=0.5)
        with pytest.raises(AvatarSDKError) as info:
            await asyncio.wait_for(session.start(), 2.0)
        assert info.value.code.value == code
        assert info.value.phase == phase
        assert TOKEN not in str(info.value)
        assert not session.is_open


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # accepts TCP, never answers (not even a TLS ClientHello)


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_start_bounded_when_tls_handshake_never_completes(compression: bool) -> None:
    """wss:// to a server that accepts TCP but never speaks TLS: start()
    fails within open_timeout (asyncio's own TLS timeout is 60 s)."""
    async with raw_server(silent) as server:
        session = session_for(
            server.port,
            compression,
            open_timeout=0.5,
            ingress_endpoint_url=f"wss://127.0.0.1:{server.port}",
        )
        with pytest.raises(AvatarSDKError) as info:
            await asyncio.wait_for(session.start(), 5.0)
    assert info.value.code is AvatarSDKErrorCode.connectionFailed
    assert info.value.phase == "websocket_connect"
    assert TOKEN not in str(info.value)
    assert not session.is_open


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_start_bounded_when_tcp_connect_never_completes(compression: bool) -> None:
    """A listening socket whose accept queue is full: the TCP connect itself
    never completes; start() fails within open_timeout."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.1)
        session = session_for(port, compression, open_timeout=0.5)
        with pytest.raises(AvatarSDKError) as info:
            await asyncio.wait_for(session.start(), 5.0)
    finally:
        for sock in (*fillers, listener):
            sock.close()
    assert info.value.code is AvatarSDKErrorCode.connectionFailed
    assert info.value.phase == "websocket_connect"
    assert not session.is_open


INJECTED = "tok\r\nX-Injected: yes"


def token_answer_then_refuse(token: str, heads: list[bytes]) -> Script:
    """Answer the token call with ``token``; refuse (403) any upgrade, keeping its head."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        if head.startswith(b"POST"):
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            body = json.dumps({"sessionToken": token}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )
        else:
            heads.append(head)
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    return script


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_token_answer_with_line_breaks_is_refused(compression: bool) -> None:
    """A token answer whose token holds CR/LF (or other characters a header
    cannot carry) is a protocolError of the token call, not echoed; nothing
    reaches the ingress, so no header can be injected."""
    heads: list[bytes] = []
    async with raw_server(token_answer_then_refuse(INJECTED, heads)) as server:
        session = new_avatar_session(
            avatar_id="avatar-1",
            api_key="key-1",
            app_id="app-1",
            console_endpoint_url=f"http://127.0.0.1:{server.port}/v1/console",
            ingress_endpoint_url=f"ws://127.0.0.1:{server.port}",
            expire_at=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
            websocket_compression=compression,
            open_timeout=2,
        )
        with pytest.raises(SessionTokenError) as info:
            await session.init()
        with pytest.raises(ValueError):
            await session.start()  # no token was kept
    assert info.value.code is AvatarSDKErrorCode.protocolError
    assert info.value.phase == "session_token"
    assert "X-Injected" not in str(info.value) and "X-Injected" not in repr(info.value)
    assert heads == []


@pytest.mark.parametrize("compression", TRANSPORTS)
@pytest.mark.parametrize("token", [INJECTED, "tok en", "tok\x00", "tök"])
async def test_use_session_token_refuses_what_a_header_cannot_carry(
    compression: bool, token: str
) -> None:
    """use_session_token() refuses a token with line breaks, spaces, control
    or non-ASCII characters with a ValueError that does not echo it."""
    session = session_for(1, compression)
    with pytest.raises(ValueError) as info:
        session.use_session_token(token)
    assert token not in str(info.value)


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_app_id_with_line_breaks_never_reaches_a_header(compression: bool) -> None:
    """An app_id with CR/LF is refused before the upgrade (connectionFailed,
    websocket_connect, as 0.1.7 fails it) instead of injecting a header."""
    heads: list[bytes] = []
    async with raw_server(token_answer_then_refuse("tok", heads)) as server:
        session = session_for(server.port, compression, app_id="app\r\nX-Injected: yes")
        with pytest.raises(AvatarSDKError) as info:
            await asyncio.wait_for(session.start(), 5)
    assert info.value.code is AvatarSDKErrorCode.connectionFailed
    assert info.value.phase == "websocket_connect"
    assert "X-Injected" not in str(info.value)
    assert heads == []


# -- 4. close frames without a code, or with an invalid reason --------------------------


def close_then_wait(payload: bytes) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_and_confirm(reader, writer)
        writer.write(frame(0x8, payload))
        await writer.drain()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(), 5)

    return script


@pytest.mark.parametrize("compression", TRANSPORTS)
@pytest.mark.parametrize(
    ("payload", "code", "reported"),
    [
        pytest.param(b"", 1005, False, id="no-code"),
        pytest.param(struct.pack("!H", 4001), 4001, True, id="code-only"),
        pytest.param(struct.pack("!H", 4001) + "ünïcode".encode(), 4001, True, id="utf8-reason"),
        # Malformed: RFC 6455 says fail the connection, which both libraries
        # do before handing the frame over (1002 protocol error, 1007
        # invalid payload); the code reported is that one, never none or 0.
        pytest.param(b"\x03", 1002, True, id="one-byte"),
        pytest.param(struct.pack("!H", 4001) + b"\xff\xfe bad", 1007, True, id="bad-utf8"),
        pytest.param(struct.pack("!H", 4003) + b"\xc3", 1007, True, id="truncated-utf8"),
    ],
)
async def test_close_code_survives_odd_close_frames(
    compression: bool, payload: bytes, code: int, reported: bool
) -> None:
    """No code is 1005 (never 0 or a missing value); a malformed close frame
    still ends with a code. A code-less close is a normal end (as 0.1.7's
    websockets treats 1005), not an error for on_error."""
    errors: list[AvatarSDKError] = []
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    async with raw_server(close_then_wait(payload)) as server:
        session = session_for(server.port, compression, on_error=errors.append)
        await session.start()
        await asyncio.wait_for(session.wait_closed(), 5)
        with pytest.raises(AvatarSDKError) as info:
            await session.send_audio(b"\0\0")
        await session.close()
    failure = info.value
    await asyncio.sleep(0.05)
    del session, info
    failure.__traceback__ = None
    gc.collect()
    loop.set_exception_handler(None)
    assert unhandled == []  # e.g. no "Future exception was never retrieved"
    assert failure.code is AvatarSDKErrorCode.connectionClosed
    assert failure.close_code == code
    if reported:
        assert len(errors) == 1 and errors[0].close_code == code
    else:
        assert errors == []


@pytest.mark.parametrize("compression", TRANSPORTS)
@pytest.mark.parametrize("wire_code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
async def test_close_code_forbidden_on_the_wire_is_a_protocol_error(
    compression: bool, wire_code: int
) -> None:
    """A close frame carrying a code RFC 6455 (7.4) forbids on the wire is a
    protocol error: reported as 1002, as 0.1.7 (websockets) reports it, never
    as the raw number."""
    errors: list[AvatarSDKError] = []
    async with raw_server(close_then_wait(struct.pack("!H", wire_code))) as server:
        session = session_for(server.port, compression, on_error=errors.append)
        await session.start()
        await asyncio.wait_for(session.wait_closed(), 5)
        with pytest.raises(AvatarSDKError) as info:
            await session.send_audio(b"\0\0")
        await session.close()
    assert info.value.close_code == 1002
    assert [e.close_code for e in errors] == [1002]


# -- 5. limits: endless headers, oversized messages, ping floods --------------------------

MAX_MESSAGE = 16 * 1024 * 1024


@pytest.mark.parametrize("compression", TRANSPORTS)
@pytest.mark.parametrize("endless", ["one-line", "many-lines"])
async def test_endless_upgrade_headers_are_refused(compression: bool, endless: str) -> None:
    """A 101 whose header block never ends: the client gives up after a
    small bound (16 KiB on picows, 8 KiB a line on aiohttp), long before the
    server has written its 64 MiB."""
    written = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        writer.write(upgrade_answer(await read_head(reader))[:-2])  # no blank line
        chunk = b"X-Filler: " + b"a" * 1000 + (b"\r\n" if endless == "many-lines" else b"")
        while written < 64 * 1024 * 1024:
            writer.write(chunk)
            written += len(chunk)
            await writer.drain()

    async with raw_server(script) as server:
        session = session_for(server.port, compression, open_timeout=5)
        with pytest.raises(AvatarSDKError) as info:
            await asyncio.wait_for(session.start(), 10)
    assert info.value.code is AvatarSDKErrorCode.connectionFailed
    assert info.value.phase == "websocket_connect"
    assert written < 32 * 1024 * 1024  # the client hung up (socket buffers hold the rest)


def sends_after_confirm(*frames: bytes) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_and_confirm(reader, writer)
        for data in frames:
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(), 5)

    return script


BIG = bytes(MAX_MESSAGE + 1024)


@pytest.mark.parametrize("compression", TRANSPORTS)
@pytest.mark.parametrize(
    "frames",
    [
        pytest.param((frame(0x2, BIG),), id="one-frame"),
        pytest.param(
            tuple(
                frame(0x2 if i == 0 else 0x0, BIG[i : i + (1 << 20)], fin=i + (1 << 20) >= len(BIG))
                for i in range(0, len(BIG), 1 << 20)
            ),
            id="fragments",
        ),
    ],
)
async def test_oversized_message_ends_the_session_with_1009(
    compression: bool, frames: tuple[bytes, ...]
) -> None:
    """A message over 16 MiB (whole or in fragments) is refused: the session
    ends with close code 1009, reported to on_error; nothing is delivered."""
    errors: list[AvatarSDKError] = []
    delivered: list[int] = []
    async with raw_server(sends_after_confirm(*frames)) as server:
        session = session_for(
            server.port,
            compression,
            on_error=errors.append,
            transport_frames=lambda data, end: delivered.append(len(data)),
        )
        await session.start()
        await asyncio.wait_for(session.wait_closed(), 10)
        await session.close()
    assert delivered == []
    assert [e.close_code for e in errors] == [1009], errors
    assert errors[0].code is AvatarSDKErrorCode.connectionClosed


async def test_oversized_frame_is_reported_once_on_picows() -> None:
    """picows fails the connection on an oversized frame header (close 1009)
    but drops the socket only 10 ms later, and meanwhile keeps reading the
    frame: when the whole payload arrived first (a loaded machine) it was
    handed over as a message, decoded as garbage and reported as a second
    error without a close code. Repeated so that ordering comes up; each run
    must report exactly one error, 1009."""
    for _ in range(12):
        errors: list[AvatarSDKError] = []
        async with raw_server(sends_after_confirm(frame(0x2, BIG))) as server:
            session = session_for(server.port, False, on_error=errors.append)
            await session.start()
            await asyncio.wait_for(session.wait_closed(), 10)
            await session.close()
        assert [e.close_code for e in errors] == [1009], errors


def client_write_buffer(session: Any) -> int:
    """Bytes the client's socket has not yet written (its memory for output)."""
    transport = session._transport
    ws = getattr(transport, "_ws", None)
    sock = ws.underlying_transport if hasattr(ws, "underlying_transport") else ws._conn.transport
    return int(sock.get_write_buffer_size())


@pytest.mark.parametrize("compression", TRANSPORTS)
async def test_ping_flood_without_reading_keeps_client_memory_bounded(compression: bool) -> None:
    """A server that floods pings and never reads: pongs do not pile up in
    the client's write buffer (at most the high-water mark and one pong)."""
    stop = asyncio.Event()
    flooded = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_and_confirm(reader, writer)
        ping = frame(0x9, b"p" * 125)

        async def flood() -> None:
            for _ in range(200_000):  # 25 MB of pings, wanting 25 MB of pongs
                writer.write(ping)
                await writer.drain()

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(flood(), 3)  # the client may stop reading: fine
        flooded.set()
        await stop.wait()  # never reads

    async with raw_server(script) as server:
        session = session_for(server.port, compression)
        await session.start()
        await asyncio.wait_for(flooded.wait(), 10)
        await asyncio.sleep(0.2)  # let the client process what arrived
        assert client_write_buffer(session) < 1024 * 1024
        stop.set()
        await asyncio.wait_for(session.close(), 8)


@pytest.mark.parametrize("compression", TRANSPORTS)
@pytest.mark.parametrize(
    "ingress",
    ["ws://a..b", "ws://" + "a" * 300 + ".com", "ws://127.0.0.1:99999"],
    ids=["empty-label", "label-too-long", "bad-port"],
)
async def test_unusable_ingress_address_is_connection_failed(
    compression: bool, ingress: str
) -> None:
    """An address that cannot even be looked up fails like any other
    unreachable one (as in 0.1.7): connectionFailed, websocket_connect."""
    session = session_for(1, compression, ingress_endpoint_url=ingress)
    with pytest.raises(AvatarSDKError) as info:
        await asyncio.wait_for(session.start(), 5)
    assert info.value.code is AvatarSDKErrorCode.connectionFailed
    assert info.value.phase == "websocket_connect"
    assert "ingress_endpoint_url" in info.value.message
    assert TOKEN not in str(info.value)
