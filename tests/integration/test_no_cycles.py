"""What a session leaves behind is freed by reference counting, on both sides.

An object caught in a reference cycle outlives its last use until the cyclic
garbage collector runs, and the collector's pauses grow with such garbage: in a
process holding a thousand sessions, a full collection stops every session for
tens of milliseconds. So a closed connection of the local service, a closed
client session and a finished request must each be freed as soon as nothing
refers to them. Each test runs with the collector off: an object still alive
after the last reference is dropped is in a cycle. (The client's side of a
closed session, over both transports, is also held by test_session_refcount.py;
the service's side is held here only.)

Over real loopback sockets against the local service.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from avatarkit import AudioFeed, AvatarSession
from avatarkit.devserver import DevServer
from tests._helpers import collector_off, make_session, speech_pcm

BOUND = 10.0
PCM = speech_pcm(seconds=1)
CHUNK = 1280


@pytest.fixture(name="collector_off")
def _collector_off() -> Iterator[None]:
    with collector_off():
        yield


async def _closed(server: DevServer) -> None:
    """Until the service has let go of every connection (bounded)."""
    for _ in range(200):
        if not server._connections:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the service still holds a closed connection")


async def _open(server: DevServer) -> tuple[AvatarSession, weakref.ref[Any]]:
    """A started session on ``server`` (its only one), and a weak reference to
    the service's side of it."""
    session = make_session(server)
    await session.init()
    await session.start()
    (conn,) = server._connections
    return session, weakref.ref(conn)


@pytest.mark.parametrize("pace", ["fast", "realtime"])
async def test_a_closed_session_and_its_connection_are_freed(
    pace: str, collector_off: None
) -> None:
    async with DevServer(pace=pace) as server:
        async with make_session(server) as warm:  # lazy imports, first-use caches
            await asyncio.wait_for(warm.stream(PCM[: 4 * CHUNK]).done(), BOUND)
        await _closed(server)
        session, server_side = await _open(server)
        feed = AudioFeed()
        req = session.stream(feed)
        for i in range(0, 4 * CHUNK, CHUNK):
            feed.push(PCM[i : i + CHUNK])
        feed.push(PCM[4 * CHUNK : 5 * CHUNK], end=True)
        assert (await asyncio.wait_for(req.done(), BOUND)).frames == 5
        request = weakref.ref(req)
        del req, feed
        assert request() is None, "a finished request is in a reference cycle"
        await session.close()
        client_side = weakref.ref(session)
        del session
        await _closed(server)
        await asyncio.sleep(0)
        assert client_side() is None, "a closed session is in a reference cycle"
        assert server_side() is None, "a closed service connection is in a reference cycle"


async def test_a_connection_dropped_by_the_client_is_freed(collector_off: None) -> None:
    async with DevServer(pace="realtime") as server:
        session, server_side = await _open(server)
        await session.send_audio(PCM[: 4 * CHUNK])  # a request open when the socket drops
        transport = session._transport
        assert transport is not None
        transport.abort()  # the TCP connection drops: no close frame
        await _closed(server)
        await asyncio.sleep(0)
        assert server_side() is None, "a dropped service connection is in a reference cycle"
        await session.close()
