"""HTTP handlers of the local service apart from the WebSocket: tokens, admission, refusals.

Moved out of :mod:`avatarkit.devserver._server` to keep it readable; each
function takes the :class:`~avatarkit.devserver.DevServer` whose state it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web

from .._server_protocol import CLOSE_CONCURRENCY_LIMIT
from ..protocol import encode_server_error
from ._auth import Rejection
from ._connection import IngressWebSocket
from ._faults import FaultRule
from ._jsonapi import error_response
from ._state import SessionState

if TYPE_CHECKING:
    from ._server import DevServer

__all__ = [
    "CLOSE_CONCURRENCY_LIMIT",
    "authenticate",
    "fault_response",
    "refuse_concurrency",
    "token_route",
]

log = logging.getLogger("avatarkit.devserver")


def _reject(rej: Rejection) -> web.Response:
    return error_response(rej.status, rej.code, rej.title, rej.detail)


def fault_response(rule: FaultRule, what: str) -> web.Response:
    """The HTTP answer of an injected ``reject_token``/``reject_upgrade`` fault."""
    if rule.body is not None:
        body = rule.body
        content_type = "application/json" if body[:1] in (b"{", b"[") else "text/plain"
        return web.Response(status=rule.status, body=body, content_type=content_type)
    return error_response(
        rule.status,
        "injectedFault",
        f"Injected fault: {what} rejected",
        f"{what} rejected with HTTP {rule.status} by an injected fault",
    )


async def token_route(server: DevServer, request: web.Request) -> web.Response:
    rule = server.faults.take_rejection("reject_token")
    if rule is not None:
        return fault_response(rule, "session token request")
    api_key = request.headers.get("X-Api-Key", "")
    if not api_key:
        return error_response(
            401,
            "missingApiKey",
            "Missing API key",
            "missing api key: send the X-Api-Key header",
        )
    app_id = server.credentials.app_for_key(api_key)
    if app_id is None:
        return error_response(401, "invalidApiKey", "Invalid API key", "invalid api key")
    try:
        raw = await asyncio.wait_for(request.read(), server.read_timeout)
    except asyncio.TimeoutError:
        resp = error_response(
            408,
            "requestTimeout",
            "Request timeout",
            f"the request body did not arrive within {server.read_timeout:g} seconds",
        )
        resp.force_close()
        return resp
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):  # malformed, not UTF-8, or nested too deep
        body = None
    if not isinstance(body, dict):
        return error_response(
            400,
            "invalidRequest",
            "Invalid request body",
            'the body must be a JSON object like {"expireAt": <unix seconds>}',
        )
    expire_at = body.get("expireAt")
    if not isinstance(expire_at, int) or isinstance(expire_at, bool):
        return error_response(
            400,
            "invalidExpireAt",
            "Invalid expireAt",
            f"expireAt must be an integer number of unix seconds, got {expire_at!r}",
        )
    now = time.time()
    if expire_at <= now:
        return error_response(
            400, "invalidExpireAt", "Invalid expireAt", "expireAt is not in the future"
        )
    if expire_at > now + server.max_token_ttl:
        return error_response(
            400,
            "invalidExpireAt",
            "Invalid expireAt",
            f"expireAt is more than {server.max_token_ttl:g} seconds ahead",
        )
    token = server._signer.issue(app_id, expire_at)
    return web.json_response({"sessionToken": token, "session_token": token})


def authenticate(server: DevServer, request: web.Request) -> tuple[str, str] | web.Response:
    """``(app_id, auth_style)`` of an upgrade request, or its rejection."""
    headers, query = request.headers, request.query
    if "X-Session-Key" in headers or "X-App-ID" in headers:
        token = headers.get("X-Session-Key", "")
        app_id = headers.get("X-App-ID", "")
        style = "header"
    else:
        token = query.get("sessionKey", "")
        app_id = query.get("appId", "")
        style = "query"
    claims = server._signer.verify(token)
    if isinstance(claims, Rejection):
        return _reject(claims)
    if app_id != claims.app_id:
        if not server.credentials.has_app(app_id):
            return error_response(
                404,
                "appIDUnrecognized",
                "App id unrecognized",
                f"app id unrecognized: {app_id!r}",
            )
        return error_response(
            400,
            "appIDMismatch",
            "App id mismatch",
            "app id mismatch: the session token was issued for another app",
        )
    return app_id, style


async def refuse_concurrency(server: DevServer, ws: IngressWebSocket, app_id: str) -> None:
    """Over the per-app limit: read the configure, answer 4003, close 4003."""
    text = (
        f"concurrency limit reached: app {app_id!r} already has "
        f"{server.max_sessions_per_app} sessions open"
    )
    log.info(
        "avatarkit devserver: websocket upgrade rejected: app %r over its concurrency "
        "limit of %d sessions, close code %d",
        app_id,
        server.max_sessions_per_app,
        CLOSE_CONCURRENCY_LIMIT,
    )
    with contextlib.suppress(Exception):
        await ws.receive(timeout=2.0)
    with contextlib.suppress(Exception):
        await ws.send_bytes(encode_server_error("", "", CLOSE_CONCURRENCY_LIMIT, text))
        await ws.close(code=CLOSE_CONCURRENCY_LIMIT, message=b"concurrency limit reached")


def admit_upgrade(server: DevServer, request: web.Request) -> tuple[str, str, str] | web.Response:
    """``(app_id, auth_style, avatar_id)`` of an ingress upgrade, or its rejection.

    In order: an injected ``reject_upgrade`` fault, the session token and app
    id (:func:`authenticate`), the avatar id.
    """
    rule = server.faults.take_rejection("reject_upgrade")
    if rule is not None:
        return fault_response(rule, "websocket upgrade")
    auth = authenticate(server, request)
    if isinstance(auth, web.Response):
        return auth
    app_id, style = auth
    avatar_id = request.query.get("id", "")
    if not server.credentials.has_avatar(avatar_id):
        return error_response(
            404, "avatarNotFound", "Avatar not found", f"avatar not found: {avatar_id!r}"
        )
    return app_id, style, avatar_id


def log_closed(key: int, state: SessionState) -> None:
    """The INFO line of a closed session (close code, requests, frames; no secret)."""
    reason = f" ({state.close_reason[:120]})" if state.close_reason else ""
    log.info(
        "avatarkit devserver: session #%d closed: close code %s%s%s, %d requests, %d frames sent",
        key,
        state.close_code,
        reason,
        ", connection aborted" if state.aborted else "",
        state.request_count,
        state.frames_sent,
    )
