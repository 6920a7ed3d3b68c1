"""The chaos proxy itself (``avatarkit.testing.ChaosProxy``), over loopback.

Behind it is a raw asyncio server written here: it answers any request head
with ``101`` (or ``200`` for ``GET /http``), then sends scripted WebSocket
frames and echoes whatever it reads. Each test checks one thing the proxy
promises: bytes arrive exactly, late by the latency, at the bandwidth, and
each fault does what it says.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import AsyncIterator

import pytest

from avatarkit.testing import ChaosProxy

HEAD_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
HEAD_200 = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x82, n]) + payload
    return bytes([0x82, 126]) + struct.pack("!H", n) + payload


class Backend:
    """A raw server: head answer, then ``frames``, then an echo of what it reads."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.received = bytearray()
        self.ended = asyncio.Event()  # the proxy closed or reset its side
        self.error: BaseException | None = None
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /http"):
                writer.write(HEAD_200)
            else:
                writer.write(HEAD_101 + b"".join(self.frames))
            await writer.drain()
            while data := await reader.read(65536):
                self.received += data
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.error = exc
        finally:
            self.ended.set()
            writer.transport.abort()


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    back = Backend([frame(bytes([i]) * (100 + i)) for i in range(10)])
    back.server = await asyncio.start_server(back.handle, "127.0.0.1", 0)
    yield back
    back.server.close()
    for w in back.writers:
        w.transport.abort()
    await back.server.wait_closed()


def port(back: Backend) -> int:
    assert back.server is not None
    return int(back.server.sockets[0].getsockname()[1])


async def connect(
    proxy: ChaosProxy, path: bytes = b"/ws"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Open a connection through the proxy, send a head, read the answer head."""
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return reader, writer, head


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until EOF (bounded: the test's proxy must close)."""
    return await asyncio.wait_for(reader.read(-1), 5)


async def test_bytes_are_forwarded_exactly_both_ways(backend: Backend) -> None:
    async with ChaosProxy("127.0.0.1", port(backend), latency=0.01, jitter=0.01, seed=1) as proxy:
        reader, writer, head = await connect(proxy)
        assert head == HEAD_101
        expected = b"".join(backend.frames)
        assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
        blob = os.urandom(300_000)
        for i in range(0, len(blob), 7001):
            writer.write(blob[i : i + 7001])
        assert await asyncio.wait_for(reader.readexactly(len(blob)), 10) == blob
        assert bytes(backend.received) == blob
        writer.write_eof()  # a half close is forwarded, and the echo's end too
        assert await read_all(reader) == b""
        writer.close()
        await writer.wait_closed()
        stats = proxy.stats
        assert stats.connections == 1 and stats.websockets == 1
        assert stats.bytes_up == len(blob) + len(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stats.bytes_down == len(HEAD_101) + len(expected) + len(blob)


async def test_latency_and_bandwidth_slow_the_bytes_down(backend: Backend) -> None:
    async with ChaosProxy("127.0.0.1", port(backend), latency=0.1) as proxy:
        reader, writer, _ = await connect(proxy)
        await reader.readexactly(len(b"".join(backend.frames)))
        start = time.monotonic()
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        assert time.monotonic() - start >= 0.2  # 100 ms each way, never less
        proxy.latency = 0.0
        proxy.bandwidth = 200_000  # bytes/s each way: 100 KB takes 0.5 s up and again down
        start = time.monotonic()
        writer.write(b"x" * 100_000)
        await asyncio.wait_for(reader.readexactly(100_000), 10)
        assert time.monotonic() - start >= 0.45  # both ways overlap (echo)
        writer.close()
        await writer.wait_closed()


async def test_cut_mid_frame_forwards_a_prefix_then_closes(backend: Backend) -> None:
    async with ChaosProxy("127.0.0.1", port(backend)) as proxy:
        proxy.cut_mid_frame(after_bytes=10, after_frames=3)
        reader, writer, _ = await connect(proxy)
        got = await read_all(reader)  # EOF after the cut
        frames = backend.frames
        assert got == b"".join(frames[:3]) + frames[3][:10]
        await asyncio.wait_for(backend.ended.wait(), 5)  # the server side closed too
        assert proxy.stats.cuts == 1
        writer.close()
        await writer.wait_closed()


async def test_reset_sends_rst_to_websockets_only(backend: Backend) -> None:
    async with ChaosProxy("127.0.0.1", port(backend)) as proxy:
        reader, writer, _ = await connect(proxy)
        await reader.readexactly(len(b"".join(backend.frames)))
        http_reader, http_writer, http_head = await connect(proxy, b"/http")
        assert http_head == HEAD_200
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), 5)
        await asyncio.wait_for(backend.ended.wait(), 5)
        assert isinstance(backend.error, ConnectionResetError)
        http_writer.write(b"still here")  # the plain HTTP connection is untouched
        assert await asyncio.wait_for(http_reader.readexactly(10), 5) == b"still here"
        for w in (writer, http_writer):
            w.close()
        assert proxy.stats.resets == 1


async def test_half_open_forwards_nothing_and_closes_nothing(backend: Backend) -> None:
    async with ChaosProxy("127.0.0.1", port(backend)) as proxy:
        reader, writer, _ = await connect(proxy)
        await reader.readexactly(len(b"".join(backend.frames)))
        assert proxy.half_open() == 1
        writer.write(b"lost")
        await writer.drain()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.5)  # no echo, and no EOF either
        assert bytes(backend.received) == b"" and not backend.ended.is_set()
        assert proxy.stats.open == 1 and proxy.stats.frozen == 1
    # Closing the proxy drops the frozen connection: both ends see it end.
    assert await read_all(reader) == b""
    await asyncio.wait_for(backend.ended.wait(), 5)
    writer.close()
    await writer.wait_closed()


async def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="latency"):
        ChaosProxy("127.0.0.1", 1, latency=-1)
    with pytest.raises(ValueError, match="bandwidth"):
        ChaosProxy("127.0.0.1", 1, bandwidth=0)
    proxy = ChaosProxy("127.0.0.1", 1)
    with pytest.raises(ValueError, match="after_bytes"):
        proxy.cut_mid_frame(0)
    with pytest.raises(RuntimeError, match="start"):
        proxy.address  # noqa: B018
