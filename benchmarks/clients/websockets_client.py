"""Reference client: bare ``websockets`` (compression off) plus one parse.

What avatarkit 0.1.7 is built on, minus the SDK: ``websockets.asyncio``
connection with ``compression=None`` (0.1.7 offers permessage-deflate; the
flood server never accepts it, so both receive the same uncompressed frames),
one reader task per connection iterating the socket, one protobuf parse per
message, the envelope handed to the callback with its ``end`` flag.

Run: ``python -m benchmarks.clients.websockets_client --scenario flood --console URL --ingress URL``
"""

from __future__ import annotations

import asyncio
import sys

import websockets
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.clients.bare import (
    ANIMATION,
    CONFIRM,
    ERROR,
    BareAdapter,
    audio_bytes,
    auth_headers,
    pb,
)
from benchmarks.clients.measure import OnFrame, main

Message = pb.Message


class _Handle:
    __slots__ = ("reader", "ws")

    def __init__(self, ws: ClientConnection, reader: asyncio.Task[None]) -> None:
        self.ws = ws
        self.reader = reader


async def _read_loop(
    ws: ClientConnection, on_frame: OnFrame, confirmed: asyncio.Future[str]
) -> None:
    try:
        async for data in ws:
            if not isinstance(data, bytes):
                continue
            msg = Message()
            msg.ParseFromString(data)
            t = msg.type
            if t == ANIMATION:
                on_frame(data, msg.server_response_animation.end)
            elif t == CONFIRM:
                if not confirmed.done():
                    confirmed.set_result(msg.server_confirm_session.connection_id)
            elif t == ERROR and not confirmed.done():
                confirmed.set_exception(RuntimeError(f"server error: {msg.server_error}"))
    except websockets.ConnectionClosed:
        pass
    finally:
        if not confirmed.done():
            confirmed.set_exception(ConnectionError("closed before confirm"))


class WebsocketsAdapter(BareAdapter):
    name = "websockets"
    library = f"websockets {getattr(websockets, '__version__', '?')} (compression=None)"

    async def open_ws(self, token_state: tuple[str, OnFrame]) -> _Handle:
        token, on_frame = token_state
        ws = await connect(self.url, additional_headers=auth_headers(token), compression=None)
        confirmed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(_read_loop(ws, on_frame, confirmed))
        await ws.send(self.configure)
        try:
            await asyncio.wait_for(confirmed, 10)
        except BaseException:
            reader.cancel()
            await ws.close()
            raise
        return _Handle(ws, reader)

    async def send_audio(self, handle: _Handle, data: bytes, end: bool) -> None:
        await handle.ws.send(audio_bytes(data, end))

    async def close(self, handle: _Handle) -> None:
        await handle.ws.close()  # bounded by websockets' close_timeout
        await asyncio.wait_for(handle.reader, 10)


if __name__ == "__main__":
    sys.exit(main(WebsocketsAdapter, __doc__.split("\n\n")[0]))
