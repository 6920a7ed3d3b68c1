"""What the SDK keeps per event loop, and its cleanup when the loop shuts down.

Per loop there is one shared HTTP client (for token calls, so consecutive
sessions reuse a kept-alive connection) and the set of sessions whose
WebSocket is open. A small guard task owns them: ``asyncio.run()`` and
``asyncio.Runner`` (pytest-asyncio included) cancel leftover tasks before
closing the loop, and the guard then drops any socket a session left open and
closes the HTTP client, so a forgotten ``close()`` ends without
ResourceWarnings. Code that closes a loop by hand without cancelling its
tasks should cancel them first (as ``asyncio.run()`` does), or await
:func:`aclose`: deliberately private (``avatarkit._loopguard.aclose``), not
part of the public API, as the loop's own shutdown is the supported way.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import aiohttp


__all__ = ["aclose", "http_client", "track", "untrack"]


class _Abortable(Protocol):
    def _abort_for_loop_shutdown(self) -> None: ...


class _LoopResources:
    __slots__ = ("client", "guard", "sessions", "ws_client")

    def __init__(self) -> None:
        self.client: aiohttp.ClientSession | None = None  # token calls
        self.ws_client: aiohttp.ClientSession | None = None  # for AiohttpTransport
        # Strong references: an open session is reachable from its socket
        # anyway, and _finish() untracks it (a WeakSet costs a weakref each).
        self.sessions: set[_Abortable] = set()
        self.guard: asyncio.Task[None] | None = None

    async def close_clients(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.ws_client is not None:
            await self.ws_client.close()

    def release(self) -> None:
        for session in list(self.sessions):
            session._abort_for_loop_shutdown()
        self.sessions.clear()


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopResources] = (
    weakref.WeakKeyDictionary()
)


async def _guard(resources: _LoopResources) -> None:
    try:
        await asyncio.get_running_loop().create_future()
    except asyncio.CancelledError:
        resources.release()
        await resources.close_clients()
        raise


def _resources() -> _LoopResources:
    loop = asyncio.get_running_loop()
    resources = _per_loop.get(loop)
    if resources is None or resources.guard is None or resources.guard.done():
        resources = _per_loop[loop] = _LoopResources()
        resources.guard = loop.create_task(_guard(resources), name="avatarkit-loop-guard")
    return resources


def http_client() -> aiohttp.ClientSession:
    """This loop's shared token-call client (created on first use)."""
    from ._http import new_client

    resources = _resources()
    client = resources.client
    if client is None or client.closed:
        client = resources.client = new_client()
    return client


def ws_client() -> aiohttp.ClientSession:
    """This loop's shared aiohttp client for :class:`~avatarkit.transport.AiohttpTransport`."""
    import aiohttp

    resources = _resources()
    client = resources.ws_client
    if client is None or client.closed:
        from .transport import _refuse_redirect

        # No connection limit (each WebSocket holds its connection for the
        # session's life) and no cookie jar shared between sessions.
        # ws_connect() has no allow_redirects: a trace hook refuses every
        # redirect (the upgrade carries the session token).
        trace = aiohttp.TraceConfig()
        trace.on_request_redirect.append(_refuse_redirect)
        client = resources.ws_client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=[trace],
        )
    return client


def track(session: _Abortable) -> None:
    """Remember a session whose WebSocket is open on this loop."""
    _resources().sessions.add(session)


def untrack(session: _Abortable) -> None:
    """Forget a session (its WebSocket closed)."""
    loop = asyncio.get_running_loop()
    resources = _per_loop.get(loop)
    if resources is not None:
        resources.sessions.discard(session)


async def aclose() -> None:
    """Release this loop's SDK resources now: drop open sockets, close the client."""
    resources = _per_loop.pop(asyncio.get_running_loop(), None)
    if resources is None:
        return
    if resources.guard is not None:
        resources.guard.cancel()
        await asyncio.gather(resources.guard, return_exceptions=True)
    resources.release()
    await resources.close_clients()
