"""The session-token HTTP call, over connections shared per event loop.

Every session on a loop shares one aiohttp client, so consecutive token calls
reuse a kept-alive connection instead of paying for a new client and a new
TCP connection each time (the set-up benchmark measures this). The client is
closed by a small guard task when the loop shuts down (``asyncio.run`` and
``asyncio.Runner`` cancel leftover tasks, which runs the guard's cleanup), or
explicitly by :func:`aclose_shared_http`.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import datetime

import aiohttp

from .errors import AvatarSDKErrorCode, ErrorPhase, SessionTokenError
from .protocol import build_token_request, parse_token_response

__all__ = ["aclose_shared_http", "request_session_token"]

_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=10)


class _SharedClient:
    __slots__ = ("client", "guard")

    def __init__(self, client: aiohttp.ClientSession, guard: asyncio.Task[None]) -> None:
        self.client = client
        self.guard = guard


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedClient] = (
    weakref.WeakKeyDictionary()
)


async def _guard(client: aiohttp.ClientSession) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await client.close()


def _shared_client() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    shared = _clients.get(loop)
    if shared is None or shared.client.closed or shared.guard.done():
        client = aiohttp.ClientSession(timeout=_TIMEOUT, auto_decompress=True)
        guard = loop.create_task(_guard(client), name="avatarkit-http-guard")
        shared = _clients[loop] = _SharedClient(client, guard)
    return shared.client


async def aclose_shared_http() -> None:
    """Close this loop's shared HTTP client now (it is reopened on demand)."""
    shared = _clients.pop(asyncio.get_running_loop(), None)
    if shared is not None:
        shared.guard.cancel()
        await asyncio.gather(shared.guard, return_exceptions=True)
        await shared.client.close()


async def request_session_token(
    console_endpoint_url: str, api_key: str, expire_at: datetime
) -> str:
    """POST for a session token; raise :class:`SessionTokenError` on any failure."""
    url, headers, body = build_token_request(console_endpoint_url, api_key, expire_at)
    try:
        async with _shared_client().post(url, data=body, headers=headers) as response:
            payload = await response.read()
            status = response.status
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        raise SessionTokenError(
            AvatarSDKErrorCode.connectionFailed,
            f"session token request to {url} failed: {detail}; check console_endpoint_url "
            "and the network",
            phase=ErrorPhase.SESSION_TOKEN.value,
        ) from None
    return parse_token_response(status, payload)
