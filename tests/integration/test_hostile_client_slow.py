"""Local avatar service against slow or idle clients (issue 9).

A client that sends half a request line and stops, or headers and then a body
one byte at a time, must be disconnected after ``read_timeout``, not held
open forever. Raw asyncio sockets on loopback; the bounds asserted are
generous (5 s for a 0.5 s timeout): they prove "does not hang".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time

import pytest

from avatarkit.devserver import DevServer


async def read_until_closed(reader: asyncio.StreamReader, bound: float = 5.0) -> bytes:
    """Everything the service sends until it closes (fails if it does not within ``bound``).

    Read as it arrives: a service that answers while the client is still
    sending may end with a reset once its lingering time is over (the unread
    bytes make the kernel send RST), and what was read before it is kept.
    """

    async def collect() -> bytes:
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                data += chunk
        return data

    return await asyncio.wait_for(collect(), bound)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.mark.avatar_server(read_timeout=0.5)
@pytest.mark.parametrize(
    "partial",
    [
        b"POST /v1/auth/sess",  # half a request line
        b"GET /v2/driveningress/websocket?id=dev-avatar HTTP/1.1\r\nHost: x\r\n",  # no blank line
        b"",  # connects and sends nothing
    ],
    ids=["half-request-line", "unfinished-headers", "silent"],
)
async def test_idle_or_partial_request_is_closed(avatar_server: DevServer, partial: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", avatar_server.port)
    try:
        writer.write(partial)
        await writer.drain()
        data = await read_until_closed(reader)
        assert not data.startswith(b"HTTP/1.1 2")
    finally:
        await close_writer(writer)


@pytest.mark.avatar_server(read_timeout=0.5)
async def test_trickled_body_is_cut_off(avatar_server: DevServer) -> None:
    body = json.dumps({"expireAt": int(time.time()) + 600}).encode()
    body += b" " * (200 - len(body))
    head = (
        "POST /v1/auth/session-token HTTP/1.1\r\nHost: x\r\nX-Api-Key: dev-api-key\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", avatar_server.port)

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            for i in range(len(body)):  # 200 bytes at 10 a second: 20 s if never cut off
                writer.write(body[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.1)

    sender = asyncio.create_task(trickle())
    try:
        data = await read_until_closed(reader)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        await close_writer(writer)
    assert data.startswith(b"HTTP/1.1 408"), data[:100]
    err = json.loads(data.partition(b"\r\n\r\n")[2])["errors"][0]
    assert err["status"] == "408" and "0.5" in err["detail"]


@pytest.mark.avatar_server(read_timeout=0.5)
async def test_a_prompt_client_is_unaffected(avatar_server: DevServer) -> None:
    """The timeout bounds reading a request, not a WebSocket session that lasts longer."""
    import aiohttp

    from avatarkit.devserver._rawclient import RawClient, fetch_token

    async with aiohttp.ClientSession() as http:
        token = await fetch_token(http, avatar_server.api_root)
        client = await RawClient.connect(http, avatar_server.ingress_url, token=token)
        await client.configure()
        await asyncio.sleep(1.0)  # twice the read timeout
        await client.audio("r", b"\0\0" * 1600, end=True)
        assert (await client.collect("r")).ends == 1
        await client.close()


def test_read_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="read_timeout"):
        DevServer(read_timeout=0)


async def test_serve_read_timeout_option() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "avatarkit.devserver",
        "--port",
        "0",
        "--read-timeout",
        "0.5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        port = 0
        while not port:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "serve exited"
            if "console URL:" in line:
                port = int(line.rsplit(":", 1)[1].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/auth/sess")
        await read_until_closed(reader)
        await close_writer(writer)
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
