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


async def test_a_client_that_ends_early_or_never_gets_every_frame() -> None:
    with FloodServer("--mode", "realtime", "--frames", "10", max_seconds=60) as server:
        adapter = FloorAdapter(types.SimpleNamespace(**server))
        await adapter.setup()
        try:
            for ends in (True, False):  # 3 chunks, the last with end; or no end at all
                frames: list[bool] = []
                done = asyncio.Event()

                def on_frame(data: bytes, end: bool, frames: list[bool] = frames,
                             done: asyncio.Event = done) -> None:  # fmt: skip
                    frames.append(end)
                    if end:
                        done.set()

                ws = await adapter.open_ws(await adapter.open_token(on_frame))
                for i in range(3):
                    await adapter.send_audio(ws, CHUNK, ends and i == 2)
                started = asyncio.get_running_loop().time()
                await asyncio.wait_for(done.wait(), 5)  # never a hang
                waited = asyncio.get_running_loop().time() - started
                assert frames == [False] * 9 + [True]
                assert (waited < 1.0) if ends else (waited > 2.0)  # no end: held 2 s, late
                await adapter.close(ws)
        finally:
            await adapter.teardown()
