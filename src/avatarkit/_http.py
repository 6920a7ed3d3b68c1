"""The session-token HTTP call, over a client shared per event loop.

Every session on a loop shares one :class:`~avatarkit._tokenclient.TokenClient`
(see :mod:`avatarkit._loopguard`), so consecutive token calls reuse a
kept-alive connection instead of paying for a new client and TCP connection
each time.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from ._loopguard import http_client
from ._tokenclient import TokenClientError
from .errors import AvatarSDKErrorCode, ErrorPhase, SessionTokenError
from .protocol import build_token_request, parse_token_response, token_urls

__all__ = ["request_session_token"]


async def request_session_token(
    console_endpoint_url: str, api_key: str, expire_at: datetime
) -> str:
    """POST for a session token; raise :class:`SessionTokenError` on any failure.

    Tries :func:`~avatarkit.protocol.token_urls` in order, moving on only when
    a route answers 404.
    """
    _, headers, body = build_token_request(console_endpoint_url, api_key, expire_at)
    urls = token_urls(console_endpoint_url)
    for index, url in enumerate(urls):
        try:
            status, payload = await http_client().post(url, headers, body)
        except (TokenClientError, OSError, asyncio.TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise SessionTokenError(
                AvatarSDKErrorCode.connectionFailed,
                f"session token request to {url} failed: {detail}; check console_endpoint_url "
                "and the network",
                phase=ErrorPhase.SESSION_TOKEN.value,
            ) from None
        if status == 404 and index + 1 < len(urls):
            continue
        break
    return parse_token_response(status, payload)
