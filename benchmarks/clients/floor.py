"""Floor client: bare picows plus one protobuf parse per message.

The least any client of this protocol can do per frame: picows hands the
frame to ``on_ws_frame`` with no queue and no task, the payload is copied
once to ``bytes`` (a user callback needs an object that outlives the frame),
parsed once with the upb ``Message``, and the envelope goes to the callback
with its ``end`` flag, which is what avatarkit's ``transport_frames`` gets.

Run: ``python -m benchmarks.clients.floor --scenario flood --console URL --ingress URL``
(see ``measure.py`` for the options; ``python -m benchmarks`` runs it).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import picows
from picows import WSCloseCode, WSListener, WSMsgType, WSTransport, ws_connect

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

BINARY = WSMsgType.BINARY
Message = pb.Message


class _Listener(WSListener):
    def __init__(self, on_frame: OnFrame, confirmed: asyncio.Future[str]) -> None:
        self.on_frame = on_frame
        self.confirmed = confirmed

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type != BINARY:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()
            return
        data = frame.get_payload_as_bytes()
        msg = Message()
        msg.ParseFromString(data)
        t = msg.type
        if t == ANIMATION:
            self.on_frame(data, msg.server_response_animation.end)
        elif t == CONFIRM:
            if not self.confirmed.done():
                self.confirmed.set_result(msg.server_confirm_session.connection_id)
        elif t == ERROR and not self.confirmed.done():
            self.confirmed.set_exception(RuntimeError(f"server error: {msg.server_error}"))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.confirmed.done():
            self.confirmed.set_exception(ConnectionError("disconnected before confirm"))


class FloorAdapter(BareAdapter):
    name = "floor"
    library = f"picows {getattr(picows, '__version__', '?')}"

    async def open_ws(self, token_state: tuple[str, OnFrame]) -> WSTransport:
        token, on_frame = token_state
        confirmed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        transport, _ = await ws_connect(
            lambda: _Listener(on_frame, confirmed),
            self.url,
            extra_headers=auth_headers(token),
            max_frame_size=64 * 1024 * 1024,
        )
        transport.send(BINARY, self.configure)
        try:
            await asyncio.wait_for(confirmed, 10)
        except BaseException:
            transport.disconnect()
            raise
        return transport

    async def send_audio(self, handle: WSTransport, data: bytes, end: bool) -> None:
        handle.send(BINARY, audio_bytes(data, end))

    async def close(self, handle: WSTransport) -> None:
        handle.send_close(WSCloseCode.OK)
        try:
            await asyncio.wait_for(handle.wait_disconnected(), 5)
        except asyncio.TimeoutError:
            handle.disconnect(graceful=False)


if __name__ == "__main__":
    sys.exit(main(FloorAdapter, __doc__.split("\n\n")[0]))
