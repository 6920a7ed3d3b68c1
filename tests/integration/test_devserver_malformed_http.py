"""Local avatar service: malformed HTTP is refused quietly, without secrets (issue 9).

aiohttp's parser refuses a request head with a stray control byte in a
header value or a raw non-ASCII byte in the target before any route runs,
and by default logs that at ERROR with a traceback quoting the offending
line, session token included. The service logs one redacted INFO line per
refused request instead, and nothing at ERROR; the client gets a JSON:API
400 that does not echo the line either.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from avatarkit.devserver import DevServer

TOKEN = "SESSIONTOKEN-SECRET-1234"


async def raw_exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


MALFORMED = {
    "control byte after the X-Session-Key value": (
        b"GET /v2/driveningress/websocket?id=a HTTP/1.1\r\nHost: x\r\nX-App-ID: app\r\n"
        b"X-Session-Key: " + TOKEN.encode() + b"\x01\r\n\r\n"
    ),
    "0xff after the sessionKey query value": (
        b"GET /v2/driveningress/websocket?id=a&appId=app&sessionKey="
        + TOKEN.encode()
        + b"\xff HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "bad Content-Length on the token route": (
        b"POST /v1/console/session-tokens HTTP/1.1\r\nHost: x\r\nX-Api-Key: "
        + TOKEN.encode()
        + b"\r\nContent-Length: -1\r\n\r\n"
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_request_is_one_redacted_info_line(
    avatar_server: DevServer, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await raw_exchange(avatar_server.port, MALFORMED[case])
    assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n")[0]
    assert TOKEN.encode() not in reply
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["errors"][0]
    assert (error["status"], error["code"]) == ("400", "malformedRequest")
    assert "not valid HTTP" in error["detail"]
    # Nothing logged carries the token, at any level, tracebacks included.
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert record.exc_info is None, record.getMessage()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    refused = [
        r.getMessage()
        for r in caplog.records
        if r.name == "avatarkit.devserver" and r.levelno == logging.INFO
    ]
    assert len(refused) == 1, refused
    assert "malformed HTTP request" in refused[0] and "400" in refused[0]
    # The service goes on.
    health = await raw_exchange(
        avatar_server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert health.startswith(b"HTTP/1.1 200")
