"""Local avatar service, HTTP side: health, session tokens, upgrade rejections.

Real loopback sockets, an aiohttp client, no SDK session.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from avatarkit.devserver import DevServer
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.errors import AvatarSDKErrorCode, ErrorPhase, classify_http_rejection
from avatarkit.protocol import build_websocket_url

TOKEN_ROUTES = ("/v1/console/session-tokens", "/v1/auth/session-token")


async def post_token(
    http: aiohttp.ClientSession,
    server: DevServer,
    route: str = "/v1/auth/session-token",
    *,
    api_key: str | None = "dev-api-key",
    body: Any = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"X-Api-Key": api_key} if api_key is not None else {}
    if raw is not None:
        kwargs: dict[str, Any] = {"data": raw}
    else:
        kwargs = {"json": body if body is not None else {"expireAt": int(time.time()) + 600}}
    async with http.post(server.api_root + route, headers=headers, **kwargs) as resp:
        return resp.status, json.loads(await resp.read())


async def upgrade_status(
    http: aiohttp.ClientSession,
    server: DevServer,
    *,
    token: str,
    app_id: str = "dev-app-id",
    avatar_id: str = "dev-avatar",
    query_auth: bool = False,
) -> tuple[int, bytes]:
    """Status and body of a rejected upgrade (fails if it was accepted)."""
    url, headers = build_websocket_url(
        server.ingress_url,
        avatar_id=avatar_id,
        app_id=app_id,
        token=token,
        use_query_auth=query_auth,
    )
    # The upgrade request a WebSocket client sends, made by hand so that the
    # rejection's body can be read (aiohttp's handshake error drops it).
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        **headers,
    }
    async with http.get(url, headers=upgrade) as resp:
        assert resp.status != 101, "the upgrade was accepted"
        return resp.status, await resp.read()


def first_error(body: bytes) -> dict[str, Any]:
    data = json.loads(body)
    assert isinstance(data["errors"], list) and data["errors"]
    err: dict[str, Any] = data["errors"][0]
    assert set(err) >= {"id", "status", "code", "title", "detail"}
    return err


# -- health and tokens ------------------------------------------------------------


async def test_healthz_and_urls(avatar_server: DevServer, http: aiohttp.ClientSession) -> None:
    async with http.get(avatar_server.api_root + "/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"
    port = avatar_server.port
    assert avatar_server.console_url == f"http://127.0.0.1:{port}/v1/console"
    assert avatar_server.ingress_url == f"ws://127.0.0.1:{port}/v2/driveningress"
    assert avatar_server.api_root == f"http://127.0.0.1:{port}"
    assert (avatar_server.api_key, avatar_server.app_id, avatar_server.avatar_id) == (
        "dev-api-key",
        "dev-app-id",
        "dev-avatar",
    )


@pytest.mark.parametrize("route", TOKEN_ROUTES)
async def test_token_routes_answer_both_keys(
    avatar_server: DevServer, http: aiohttp.ClientSession, route: str
) -> None:
    status, body = await post_token(http, avatar_server, route)
    assert status == 200
    assert body["sessionToken"] == body["session_token"]
    assert body["sessionToken"].count(".") == 2


@pytest.mark.parametrize(
    ("api_key", "code", "detail"),
    [("wrong", "invalidApiKey", "invalid api key"), (None, "missingApiKey", "missing api key")],
)
async def test_bad_api_key_is_401_with_specific_title(
    avatar_server: DevServer,
    http: aiohttp.ClientSession,
    api_key: str | None,
    code: str,
    detail: str,
) -> None:
    status, body = await post_token(http, avatar_server, api_key=api_key)
    assert status == 401
    err = body["errors"][0]
    assert err["status"] == "401" and err["code"] == code
    assert err["detail"].startswith(detail)
    assert "unauthorized" not in (err["title"] + err["detail"]).lower()
    # The project's classifier keeps 0.1.7's 401 mapping, not an egress error.
    sdk = classify_http_rejection(status, json.dumps(body), phase=ErrorPhase.SESSION_TOKEN.value)
    assert sdk.code is AvatarSDKErrorCode.sessionTokenExpired


@pytest.mark.parametrize(
    ("payload", "raw"),
    [
        ({"expireAt": 1000}, None),  # in the past
        ({"expireAt": 0}, None),
        ({"expireAt": int(time.time()) + 3 * 24 * 3600}, None),  # absurd: days ahead
        ({"expireAt": "soon"}, None),
        ({"expireAt": 1.5e9}, None),
        ({"expireAt": True}, None),
        ({}, None),
        (None, b"not json"),
        (None, b"[1, 2]"),
    ],
)
async def test_bad_expire_at_is_400(
    avatar_server: DevServer, http: aiohttp.ClientSession, payload: Any, raw: bytes | None
) -> None:
    status, body = await post_token(http, avatar_server, body=payload, raw=raw)
    assert status == 400
    err = body["errors"][0]
    assert err["status"] == "400" and err["detail"]
    sdk = classify_http_rejection(status, json.dumps(body), phase=ErrorPhase.SESSION_TOKEN.value)
    assert sdk.code is AvatarSDKErrorCode.invalidRequest


async def test_added_api_key_issues_tokens_for_its_app(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    avatar_server.add_api_key("other-key", "other-app")
    avatar_server.add_avatar("other-avatar")
    token = await fetch_token(http, avatar_server.api_root, api_key="other-key")
    client = await RawClient.connect(
        http, avatar_server.ingress_url, token=token, app_id="other-app", avatar_id="other-avatar"
    )
    await client.configure()
    state = avatar_server.sessions[client.connection_id]
    assert (state.app_id, state.avatar_id) == ("other-app", "other-avatar")
    await client.close()


async def test_tokens_are_server_specific(http: aiohttp.ClientSession) -> None:
    async with DevServer(pace="fast") as one, DevServer(pace="fast") as two:
        token = await fetch_token(http, one.api_root)
        status, body = await upgrade_status(http, two, token=token)
        assert status == 401
        assert first_error(body)["detail"] == "invalid session token"


# -- upgrade: auth styles and rejections ----------------------------------------


@pytest.mark.parametrize("query_auth", [False, True])
async def test_upgrade_accepts_header_and_query_auth(
    avatar_server: DevServer, http: aiohttp.ClientSession, query_auth: bool
) -> None:
    token = await fetch_token(http, avatar_server.api_root)
    client = await RawClient.connect(
        http, avatar_server.ingress_url, token=token, query_auth=query_auth
    )
    await client.configure()
    assert avatar_server.sessions[client.connection_id].auth_style == (
        "query" if query_auth else "header"
    )
    await client.close()


def _tamper(token: str) -> str:
    head, _, sig = token.rpartition(".")
    return head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]


@pytest.mark.parametrize(
    ("make_token", "detail"),
    [
        (lambda s, t: "", "invalid session token: empty token"),
        (lambda s, t: "garbage", "invalid session token"),
        (lambda s, t: _tamper(t), "invalid session token"),
        (lambda s, t: s.issue_token(expire_at=int(time.time()) - 5), "session token expired"),
    ],
    ids=["empty", "garbage", "tampered", "expired"],
)
async def test_upgrade_rejects_bad_tokens_with_401(
    avatar_server: DevServer, http: aiohttp.ClientSession, make_token: Any, detail: str
) -> None:
    good = await fetch_token(http, avatar_server.api_root)
    status, body = await upgrade_status(http, avatar_server, token=make_token(avatar_server, good))
    assert status == 401
    err = first_error(body)
    assert err["detail"] == detail
    sdk = classify_http_rejection(status, body, phase=ErrorPhase.WEBSOCKET_CONNECT.value)
    expected = (
        AvatarSDKErrorCode.sessionTokenExpired
        if "expired" in detail
        else AvatarSDKErrorCode.sessionTokenInvalid
    )
    assert sdk.code is expected


async def test_upgrade_rejects_app_mismatch_unknown_app_and_unknown_avatar(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    avatar_server.add_api_key("k2", "app-two")
    token = await fetch_token(http, avatar_server.api_root)
    cases: list[tuple[dict[str, Any], int, str, AvatarSDKErrorCode]] = [
        ({"app_id": "app-two"}, 400, "app id mismatch", AvatarSDKErrorCode.appIDMismatch),
        ({"app_id": "nobody"}, 404, "app id unrecognized", AvatarSDKErrorCode.appIDUnrecognized),
        ({"avatar_id": "ghost"}, 404, "avatar not found", AvatarSDKErrorCode.avatarNotFound),
    ]
    for kwargs, want_status, text, code in cases:
        status, body = await upgrade_status(http, avatar_server, token=token, **kwargs)
        assert status == want_status, kwargs
        err = first_error(body)
        assert err["detail"].startswith(text)
        sdk = classify_http_rejection(status, body, phase=ErrorPhase.WEBSOCKET_CONNECT.value)
        assert sdk.code is code
    assert not avatar_server.sessions
    assert avatar_server.rejected_upgrades >= 3


async def test_plain_get_on_the_websocket_route_is_400(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    token = await fetch_token(http, avatar_server.api_root)
    url = avatar_server.websocket_url + "?id=dev-avatar"
    headers = {"X-App-ID": "dev-app-id", "X-Session-Key": token}
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 400
        assert "WebSocket" in first_error(await resp.read())["detail"]


# -- faults on the HTTP side ----------------------------------------------------


async def test_reject_upgrade_fault_one_shot_and_persistent(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    token = await fetch_token(http, avatar_server.api_root)
    billing = {
        "errors": [{"status": "402", "title": "Payment required", "detail": "session denied"}]
    }
    rule = avatar_server.faults.reject_upgrade(402, billing)
    status, body = await upgrade_status(http, avatar_server, token=token)
    assert (status, json.loads(body)) == (402, billing)
    sdk = classify_http_rejection(status, body, phase=ErrorPhase.WEBSOCKET_CONNECT.value)
    assert sdk.code is AvatarSDKErrorCode.billingRequired
    assert rule.fired == 1 and rule not in avatar_server.faults.rules
    # one-shot: the next upgrade goes through
    client = await RawClient.connect(http, avatar_server.ingress_url, token=token)
    await client.configure()
    await client.close()
    # persistent, default body naming the fault; 5xx -> serverError
    rule = avatar_server.faults.reject_upgrade(503, persistent=True)
    for _ in range(2):
        status, body = await upgrade_status(http, avatar_server, token=token)
        assert status == 503
        assert "injected fault" in first_error(body)["detail"]
        sdk = classify_http_rejection(status, body, phase=ErrorPhase.WEBSOCKET_CONNECT.value)
        assert sdk.code is AvatarSDKErrorCode.serverError
    assert rule.fired >= 2
    avatar_server.faults.clear()
    client = await RawClient.connect(http, avatar_server.ingress_url, token=token)
    await client.configure()
    await client.close()


async def test_reject_token_fault(avatar_server: DevServer, http: aiohttp.ClientSession) -> None:
    avatar_server.faults.reject_token(429, "slow down")
    async with http.post(
        avatar_server.api_root + "/v1/auth/session-token",
        json={"expireAt": int(time.time()) + 60},
        headers={"X-Api-Key": "dev-api-key"},
    ) as resp:
        assert resp.status == 429
        assert await resp.text() == "slow down"
    status, _ = await post_token(http, avatar_server)
    assert status == 200
