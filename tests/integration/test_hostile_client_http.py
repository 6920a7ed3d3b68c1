"""Local avatar service against hostile HTTP clients (issue 9).

Raw asyncio sockets on loopback: bytes no polite client would send (headers
that are not UTF-8, JSON nested 100000 deep, bodies over the limit, uploads
cut short). The service must answer 4xx with a JSON:API body, or close
quietly, never 500 and never an ERROR traceback in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import pytest

from avatarkit.devserver import DevServer

TOKEN_ROUTE = "/v1/auth/session-token"
WS_PATH = "/v2/driveningress/websocket"
UPGRADE = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


async def raw_exchange(server: DevServer, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the service closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def parse_response(raw: bytes) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of one HTTP/1.1 response (asserts it is JSON:API)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    data = json.loads(body)
    err = data["errors"][0]
    assert set(err) >= {"id", "status", "code", "title", "detail"}
    assert err["status"] == str(status)
    return status, data


def token_request(headers: bytes, body: bytes) -> bytes:
    return (
        f"POST {TOKEN_ROUTE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        + headers
        + b"\r\n"
        + body
    )


def upgrade_request(query: str, headers: bytes) -> bytes:
    return f"GET {WS_PATH}?{query} HTTP/1.1\r\nHost: x\r\n".encode() + UPGRADE + headers + b"\r\n"


def good_body() -> bytes:
    return json.dumps({"expireAt": int(time.time()) + 600}).encode()


@pytest.fixture
def errors_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


@pytest.mark.parametrize(
    "api_key", [b"\xff\xfe\xfd", b"dev-api-key\x80", b"\xc3\x28", "ключ".encode()]
)
async def test_token_route_non_utf8_api_key_is_401(
    avatar_server: DevServer, errors_logged: pytest.LogCaptureFixture, api_key: bytes
) -> None:
    raw = await raw_exchange(
        avatar_server, token_request(b"X-Api-Key: " + api_key + b"\r\n", good_body())
    )
    status, data = parse_response(raw)
    assert status == 401
    assert data["errors"][0]["code"] == "invalidApiKey"
    assert_no_error_logged(errors_logged)


@pytest.mark.parametrize(
    ("query", "headers", "status", "code"),
    [
        (
            "id=dev-avatar",
            b"X-Session-Key: \xff\xfe\r\nX-App-ID: dev-app-id\r\n",
            401,
            "sessionTokenInvalid",
        ),
        (
            "id=dev-avatar",
            b"X-Session-Key: v1.\xff.\xfe\r\nX-App-ID: dev-app-id\r\n",
            401,
            "sessionTokenInvalid",
        ),
        ("id=dev-avatar", b"X-Session-Key: abc\r\nX-App-ID: \xff\r\n", 401, "sessionTokenInvalid"),
        ("id=dev-avatar&appId=dev-app-id&sessionKey=%FF%FE", b"", 401, "sessionTokenInvalid"),
        ("id=%FF&appId=%FE&sessionKey=v1.%FF.%FE", b"", 401, "sessionTokenInvalid"),
    ],
)
async def test_upgrade_non_utf8_auth_is_4xx(
    avatar_server: DevServer,
    errors_logged: pytest.LogCaptureFixture,
    query: str,
    headers: bytes,
    status: int,
    code: str,
) -> None:
    raw = await raw_exchange(
        avatar_server, upgrade_request(query, headers + b"Connection: close\r\n")
    )
    got, data = parse_response(raw)
    assert (got, data["errors"][0]["code"]) == (status, code)
    assert_no_error_logged(errors_logged)


async def test_upgrade_non_utf8_app_id_with_valid_token_is_4xx(
    avatar_server: DevServer, errors_logged: pytest.LogCaptureFixture
) -> None:
    token = avatar_server.issue_token().encode()
    for app_id, avatar in ((b"\xff\xfe", b"dev-avatar"), (b"dev-app-id", b"%FF")):
        headers = b"X-Session-Key: " + token + b"\r\nX-App-ID: " + app_id + b"\r\n"
        raw = await raw_exchange(
            avatar_server,
            upgrade_request("id=" + avatar.decode(), headers + b"Connection: close\r\n"),
        )
        status, _ = parse_response(raw)
        assert 400 <= status < 500
    assert_no_error_logged(errors_logged)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 100_000,
        b'{"expireAt": ',
        b"\xff\xfe{}",
        b'{"expireAt": 1e999999}',
        b'{"expireAt": NaN}',
        b"",
    ],
    ids=[
        "nested-list",
        "nested-object",
        "unclosed",
        "truncated",
        "not-utf8",
        "huge-number",
        "nan",
        "empty",
    ],
)
async def test_token_route_malformed_json_is_400(
    avatar_server: DevServer, errors_logged: pytest.LogCaptureFixture, body: bytes
) -> None:
    raw = await raw_exchange(avatar_server, token_request(b"X-Api-Key: dev-api-key\r\n", body))
    status, data = parse_response(raw)
    assert status == 400
    assert data["errors"][0]["detail"]
    assert_no_error_logged(errors_logged)


async def test_token_route_huge_body_is_413_json_api(
    avatar_server: DevServer, errors_logged: pytest.LogCaptureFixture
) -> None:
    body = b'{"expireAt": 1, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    raw = await raw_exchange(avatar_server, token_request(b"X-Api-Key: dev-api-key\r\n", body))
    status, data = parse_response(raw)
    assert status == 413
    assert "bytes" in data["errors"][0]["detail"]
    assert_no_error_logged(errors_logged)


async def test_aborted_upload_closes_quietly(
    avatar_server: DevServer, errors_logged: pytest.LogCaptureFixture
) -> None:
    head = (
        f"POST {TOKEN_ROUTE} HTTP/1.1\r\nHost: x\r\nX-Api-Key: dev-api-key\r\n"
        f"Content-Type: application/json\r\nContent-Length: {1024 * 1024}\r\n\r\n"
    ).encode()
    for _ in range(3):
        _reader, writer = await asyncio.open_connection("127.0.0.1", avatar_server.port)
        writer.write(head + b'{"expireAt')
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        await writer.wait_closed()
    # The service is still serving, and nothing was logged as an error.
    raw = await raw_exchange(
        avatar_server, token_request(b"X-Api-Key: dev-api-key\r\n", good_body())
    )
    assert raw.startswith(b"HTTP/1.1 200")
    await asyncio.sleep(0.1)  # let the aborted handlers finish
    assert_no_error_logged(errors_logged)


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        ("GET /nowhere HTTP/1.1", 404),
        ("DELETE /v1/auth/session-token HTTP/1.1", 405),
        ("PUT /v2/driveningress/websocket HTTP/1.1", 405),
    ],
)
async def test_unknown_routes_and_methods_get_json_api(
    avatar_server: DevServer, request_line: str, status: int
) -> None:
    raw = await raw_exchange(
        avatar_server, f"{request_line}\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    got, data = parse_response(raw)
    assert got == status and data["errors"][0]["detail"]
