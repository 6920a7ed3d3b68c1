"""A deeply nested token answer served over loopback HTTP is the SDK's own
protocol error, not a RecursionError.

Split from tests/unit/test_dropin_json.py (the same bodies parsed without a
server), which opens no socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from avatarkit import AvatarSDKErrorCode, SessionTokenError, new_avatar_session

DEEP_LIST = b"[" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000


@pytest.fixture
async def hostile_console() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    """A real loopback HTTP server answering token calls with whatever the test sets."""
    answer: dict[str, bytes] = {"body": b"{}"}

    async def token(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer["body"], content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/console/session-tokens", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1/console", answer
    finally:
        await runner.cleanup()


async def test_a_deeply_nested_token_answer_over_http_is_a_protocol_error(
    hostile_console: tuple[str, dict[str, bytes]],
) -> None:
    from datetime import datetime, timedelta, timezone

    console, answer = hostile_console
    session = new_avatar_session(
        api_key="key",
        app_id="app",
        avatar_id="avatar",
        console_endpoint_url=console,
        ingress_endpoint_url="ws://127.0.0.1:9/v2/driveningress",
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
    )
    try:
        for body in (DEEP_LIST, DEEP_OBJECT, b'{"sessionToken": ' + b"[" * 50_000 + b"}"):
            answer["body"] = body
            with pytest.raises(SessionTokenError) as info:
                await session.init()
            assert info.value.code is AvatarSDKErrorCode.protocolError
            assert info.value.http_status == 200
    finally:
        await session.close()
