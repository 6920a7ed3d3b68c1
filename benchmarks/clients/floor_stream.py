"""Streaming floor: the floor client with its frames read by a task per session.

The least any *streaming* client can do per frame, to read the streaming
path's figures against: it is :mod:`benchmarks.clients.floor` (bare picows,
one upb parse per message), except that ``on_ws_frame`` appends each frame to
a deque and wakes the session's reader task only when it sleeps, and that
task takes the frames out through a minimal async generator
(``async for (envelope, end) in ...``) and hands each to the measuring
callback. No event object, no bounds, no error paths: what is left is the
cost of holding a socket read's frames until a task runs, and of the task.

Run: ``python -m benchmarks.clients.floor_stream --scenario flood --console URL --ingress URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from picows import WSTransport

from benchmarks.clients.floor import FloorAdapter
from benchmarks.clients.measure import OnFrame, main


class _Reader:
    """One session's frames: the listener appends, a task reads."""

    def __init__(self, on_frame: OnFrame) -> None:
        self.items: deque[bytes | tuple[bytes]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.user = on_frame
        self.task = asyncio.get_running_loop().create_task(self.read())

    def put(self, data: bytes, end: bool) -> None:
        self.items.append((data,) if end else data)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)

    async def frames(self) -> AsyncIterator[tuple[bytes, bool]]:
        items = self.items
        loop = asyncio.get_running_loop()
        while True:
            while items:
                item = items.popleft()
                if item.__class__ is tuple:
                    yield item[0], True
                else:
                    yield item, False  # type: ignore[misc]
            self.waiter = loop.create_future()
            await self.waiter

    async def read(self) -> None:
        user = self.user
        async for data, end in self.frames():
            user(data, end)


class FloorStreamAdapter(FloorAdapter):
    name = "floor, streaming"

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self.readers: dict[WSTransport, _Reader] = {}

    async def open_ws(self, token_state: tuple[str, OnFrame]) -> WSTransport:
        token, on_frame = token_state
        reader = _Reader(on_frame)
        try:
            transport = await super().open_ws((token, reader.put))
        except BaseException:
            reader.task.cancel()
            raise
        self.readers[transport] = reader
        return transport

    async def close(self, handle: WSTransport) -> None:
        await super().close(handle)
        reader = self.readers.pop(handle, None)
        if reader is not None:
            reader.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader.task


if __name__ == "__main__":
    sys.exit(main(FloorStreamAdapter, __doc__.split("\n\n")[0]))
