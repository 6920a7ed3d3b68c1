"""The benchmarks' flood server in real-time mode, with the floor client over
loopback: a request's last frame (``end=true``) never goes before the client's
audio with ``end=true``, as with a real service, which cannot end a request
before its audio ended (the clients' end handling is what is measured)."""

from __future__ import annotations

import asyncio
import types

from benchmarks.clients.floor import FloorAdapter
from benchmarks.servers.flood import FloodServer

CHUNK = bytes(1280)  # 40 ms at 16 kHz


async def test_the_last_frame_waits_for_the_clients_end_audio() -> None:
    with FloodServer("--mode", "realtime", "--frames", "3", max_seconds=60) as server:
        adapter = FloorAdapter(types.SimpleNamespace(**server))
        await adapter.setup()
        frames: list[bool] = []  # each frame's end flag, in order
        arrived = asyncio.Event()

        def on_frame(data: bytes, end: bool) -> None:
            frames.append(end)
            arrived.set()

        try:
            ws = await adapter.open_ws(await adapter.open_token(on_frame))
            await adapter.send_audio(ws, CHUNK, False)  # frames due at 0, 40 and 80 ms
            await adapter.send_audio(ws, CHUNK, False)
            await asyncio.sleep(0.4)  # well past the last frame's due time
            assert frames == [False, False]  # the last one waits for the end
            arrived.clear()
            await adapter.send_audio(ws, CHUNK, True)
            await asyncio.wait_for(arrived.wait(), 5)
            assert frames == [False, False, True]
            await adapter.close(ws)
        finally:
            await adapter.teardown()
