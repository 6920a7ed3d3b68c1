"""JSON:API error bodies, as the hosted service sends on rejected HTTP calls."""

from __future__ import annotations

import json
import uuid

from aiohttp import web

__all__ = ["error_body", "error_response"]


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
