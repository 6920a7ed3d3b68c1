"""Closed sessions are freed by reference counting alone (issue 15).

Every object a session leaves in a reference cycle waits for the cyclic
garbage collector, whose pauses set the set-up p99 of a busy client. With the
collector disabled, each session must be gone as soon as the test drops its
own reference after ``close()``, and a collection afterwards must find no
client object (the SDK's own, picows's, aiohttp's client side) in a cycle:
both transports, with and without a ``stream()`` request and an
``AudioFeed``. Real sockets: the SDK runs against the local avatar service
(its server-side objects are not counted).
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

from avatarkit import AudioFeed, new_avatar_session
from avatarkit.devserver import DevServer
from tests._helpers import FIXTURES

PCM = (FIXTURES / "speech_16000.pcm").read_bytes()[: 16000 * 2 // 5]  # 0.2 s
SESSIONS = 3
BOUND = 10.0  # "does not hang"


async def chunks() -> AsyncIterator[bytes]:
    for pos in range(0, len(PCM), 3200):
        yield PCM[pos : pos + 3200]


def _is_client_object(obj: object) -> bool:
    """Whether ``obj`` belongs to the client (not to the local service in this process)."""
    module = getattr(type(obj), "__module__", "") or ""
    if module.startswith("avatarkit"):
        return not module.startswith(("avatarkit.devserver", "avatarkit._server_protocol"))
    if module.startswith("picows"):
        return True  # the local service is on aiohttp's server
    return type(obj).__name__ in ("ClientWebSocketResponse", "ClientSession", "ClientResponse")


def _describe(obj: object) -> str:
    """What still holds ``obj`` (types of its referrers), for the failure message."""
    holders = [type(r).__name__ for r in gc.get_referrers(obj)]
    return f"{type(obj).__name__} held by {holders}"


async def _use(session: Any, use: str, refs: list[weakref.ref[Any]]) -> None:
    if use == "send_audio":
        await session.send_audio(PCM, end=True)
    elif use == "stream":
        req = session.stream(chunks())
        refs.append(weakref.ref(req))
        await req.done()
    elif use == "feed":
        feed = AudioFeed()
        req = session.stream(feed)
        refs.append(weakref.ref(req))
        feed.push(PCM)
        feed.end()
        await req.done()


async def _open_use_close(server: DevServer, compression: bool, use: str) -> list[Any]:
    refs: list[weakref.ref[Any]] = []
    for _ in range(SESSIONS):
        session = new_avatar_session(**server.session_kwargs(websocket_compression=compression))
        refs.append(weakref.ref(session))
        await session.init()
        await session.start()
        await _use(session, use, refs)
        await session.close()
        await session.wait_closed()
        del session
    return refs


@pytest.mark.parametrize("compression", [False, True], ids=["picows", "aiohttp"])
@pytest.mark.parametrize("use", ["idle", "send_audio", "stream", "feed"])
async def test_closed_sessions_are_freed_without_the_collector(
    avatar_server: DevServer, compression: bool, use: str
) -> None:
    gc.collect()
    gc.disable()
    try:
        refs = await asyncio.wait_for(_open_use_close(avatar_server, compression, use), BOUND)
        for _ in range(3):  # callbacks scheduled by the close (call_soon) run
            await asyncio.sleep(0)
        alive = [obj for obj in (ref() for ref in refs) if obj is not None]
        assert not alive, [_describe(obj) for obj in alive]
        del alive
        # No timer of a closed connection left on the loop: it would keep the
        # WebSocket (and what it holds) alive until it fires.
        timers = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
        armed = [h for h in timers if not h.cancelled() and "ClientWebSocketResponse" in repr(h)]
        assert armed == []
        gc.set_debug(gc.DEBUG_SAVEALL)  # keep what a collection finds, to look at it
        gc.collect()
        cyclic = sorted({type(obj).__qualname__ for obj in gc.garbage if _is_client_object(obj)})
        assert cyclic == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
