"""JSON:API error bodies, as the hosted service sends on rejected HTTP calls."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["MAX_BODY_BYTES", "error_body", "error_response", "jsonapi_errors"]

MAX_BODY_BYTES = 1024 * 1024
"""Largest HTTP request body the local service reads (token requests); 413 beyond."""

log = logging.getLogger("avatarkit.devserver")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(status: int, code: str, title: str, detail: str) -> dict[str, object]:
    """``{"errors": [{"id", "status", "code", "title", "detail"}]}``.

    Titles and details are specific on purpose (PROTOCOL.md section 6): a bare
    ``Unauthorized`` title would be read as an egress error by avatarkit 0.1.7.
    """
    return {
        "errors": [
            {
                "id": str(uuid.uuid4()),
                "status": str(status),
                "code": code,
                "title": title,
                "detail": detail,
            }
        ]
    }


def error_response(status: int, code: str, title: str, detail: str) -> web.Response:
    """An HTTP error response with a JSON:API body."""
    return web.Response(
        status=status,
        body=json.dumps(error_body(status, code, title, detail)).encode(),
        content_type="application/json",
    )


_HTTP_CODES = {
    400: ("invalidRequest", "Invalid request"),
    404: ("notFound", "Not found"),
    405: ("methodNotAllowed", "Method not allowed"),
    413: ("requestTooLarge", "Request body too large"),
}


@web.middleware
async def jsonapi_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every refusal as a JSON:API body; a client that hangs up mid-body, quietly.

    aiohttp raises its own HTTP exceptions (404 unknown route, 405, 413 body
    over ``client_max_size``) with a ``text/plain`` body, which clients
    following PROTOCOL.md section 5 cannot read: they become JSON:API
    errors here. A client that closes while its body is being read
    (``ConnectionError``) is not a service error: it is logged at DEBUG and
    answered with a 400 nobody will read (aiohttp drops it quietly), instead
    of aiohttp's ERROR traceback and 500.
    """
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code, title = _HTTP_CODES.get(exc.status, ("httpError", exc.reason))
        if exc.status == 413:
            detail = f"the request body is larger than {MAX_BODY_BYTES} bytes; send a smaller body"
        else:
            detail = f"{exc.reason}: {request.method} {request.path}"
        resp = error_response(exc.status, code, title, detail)
    except ConnectionError as exc:
        log.debug("avatarkit devserver: client went away during %s: %r", request.path, exc)
        return error_response(
            400, "connectionLost", "Connection lost", "the client closed the connection"
        )
    if resp.status >= 400:
        log_rejection(request, resp)
    return resp


def _error_code(resp: web.StreamResponse) -> str:
    """The JSON:API ``code`` of one of our error responses ("" for another body)."""
    body = getattr(resp, "body", None)
    if not isinstance(body, bytes) or not body.startswith(b"{"):
        return ""
    try:
        errors = json.loads(body).get("errors")
        code = errors[0].get("code", "")
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        return ""
    return code if isinstance(code, str) else ""


def log_rejection(request: web.Request, resp: web.StreamResponse) -> None:
    """One INFO line per refused HTTP call: what, status and error code, never credentials."""
    if request.path.endswith("/websocket"):
        what = "websocket upgrade"
    elif "token" in request.path:
        what = "session token request"
    else:
        what = f"{request.method} {request.path[:100]}"
    code = _error_code(resp)
    log.info(
        "avatarkit devserver: %s rejected from %s: HTTP %d%s",
        what,
        request.remote,
        resp.status,
        f" {code}" if code else "",
    )
