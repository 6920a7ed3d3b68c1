"""Server check: how fast the flood server delivers, measured with a raw sink.

The sink is the cheapest possible receiver: an ``asyncio.Protocol`` per
connection that does the WebSocket upgrade by hand, waits for
``ServerConfirmSession``, sends one audio message (masked with a zero key)
and from then on only adds up ``len(data)`` until it has every byte of the
stream (the exact size is computed from the same envelopes the server sends).
No WebSocket parsing, no protobuf, no callback per frame.

- ``--mode flood``: S sessions x N frames flat out. If the sink receives far
  more frames per second than the floor client can consume, the server is
  not what limits the floor client (nor anyone slower). Also reports the
  server's CPU time per frame sent (from its ``/stats``), to compare WebSocket
  libraries for the server.
- ``--mode realtime``: S sessions paced at 25 frames/s, the sink also sending
  a 40 ms PCM chunk every 40 ms per session, so the server carries the same
  load as in the client runs; reports the server's own send lateness and CPU
  share.

Run (the server must be started in the same mode):
``python benchmarks/server_check.py --console URL --ingress URL --stats URL --mode flood``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    CHUNK_BYTES,
    DEFAULT_PAYLOAD,
    FRAME_PERIOD,
    SAMPLE_RATE,
    cpu_seconds,
    emit_result,
    install_event_loop,
    load_wire_pb2,
    log,
    machine_info,
    raise_nofile_limit,
)

pb = load_wire_pb2()
REQ_ID = "20250101000000_sinkSINK0001"


def masked_frame(payload: bytes) -> bytes:
    """Client-to-server binary frame, masked with the all-zero key."""
    n = len(payload)
    if n < 126:
        head = bytes((0x82, 0x80 | n))
    elif n < 65536:
        head = bytes((0x82, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x82, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def header_len(n: int) -> int:
    return 2 if n < 126 else (4 if n < 65536 else 10)


def stream_bytes(conn_id: str, frames: int, payload: int) -> int:
    """Exact bytes (WebSocket framing included) of the server's stream."""
    sizes = []
    for end in (False, True):
        m = pb.Message(type=pb.MESSAGE_SERVER_RESPONSE_ANIMATION)
        a = m.server_response_animation
        a.connection_id = conn_id
        a.req_id = REQ_ID
        a.end = end
        a.animation = bytes(payload)
        n = m.ByteSize()
        sizes.append(n + header_len(n))
    return int(sizes[0] * (frames - 1) + sizes[1])


CONFIGURE = masked_frame(
    pb.Message(
        type=pb.MESSAGE_CLIENT_CONFIGURE_SESSION,
        client_configure_session=pb.ClientConfigureSession(sample_rate=SAMPLE_RATE),
    ).SerializeToString()
)


def audio_frame(end: bool) -> bytes:
    m = pb.Message(type=pb.MESSAGE_CLIENT_AUDIO_INPUT)
    m.client_audio_input.req_id = REQ_ID
    m.client_audio_input.end = end
    m.client_audio_input.audio = bytes(CHUNK_BYTES)
    return masked_frame(m.SerializeToString())


AUDIO = audio_frame(False)
AUDIO_END = audio_frame(True)


class Sink(asyncio.Protocol):
    def __init__(self, host: str, path: str, frames: int, payload: int) -> None:
        loop = asyncio.get_running_loop()
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nX-App-ID: sink\r\nX-Session-Key: tok-sink\r\n\r\n"
        ).encode()
        self.frames = frames
        self.payload = payload
        self.buf = b""
        self.upgraded = False
        self.counting = False
        self.got = 0
        self.expected = 0
        self.confirmed: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self.counting:
            self.got += len(data)
            if self.got >= self.expected and not self.done.done():
                self.done.set_result(None)
            return
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.buf[: self.buf.find(b"\r\n")]
            if b" 101 " not in status:
                self.confirmed.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.buf = self.buf[end + 4 :]
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(CONFIGURE)
        if len(self.buf) < 2:
            return
        n = self.buf[1] & 0x7F
        off = 2
        if n == 126:
            n, off = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            n, off = int.from_bytes(self.buf[2:10], "big"), 10
        if len(self.buf) < off + n:
            return
        msg = pb.Message()
        msg.ParseFromString(self.buf[off : off + n])
        if msg.type != pb.MESSAGE_SERVER_CONFIRM_SESSION:
            self.confirmed.set_exception(ConnectionError(f"unexpected {msg}"))
            return
        self.expected = stream_bytes(
            msg.server_confirm_session.connection_id, self.frames, self.payload
        )
        self.got = len(self.buf) - off - n
        self.counting = True
        self.confirmed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.confirmed, self.done):
            if not fut.done():
                fut.set_exception(ConnectionError(f"lost: {exc!r}"))


def server_stats(url: str, reset: bool) -> dict[str, Any]:
    req = urllib.request.Request(
        url + ("/reset" if reset else ""), method="POST" if reset else "GET"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    u = urlsplit(args.ingress)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    path = u.path.rstrip("/") + "/websocket?id=sink"
    sinks: list[Sink] = []
    sem = asyncio.Semaphore(64)

    async def connect() -> None:
        async with sem:
            _, proto = await loop.create_connection(
                lambda: Sink(f"{host}:{port}", path, args.frames, args.payload), host, port
            )
            await asyncio.wait_for(proto.confirmed, 10)
            sinks.append(proto)

    await asyncio.gather(*(connect() for _ in range(args.sessions)))
    server_stats(args.stats, reset=True)
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    timers: list[asyncio.TimerHandle] = []
    if args.mode == "flood":
        for s in sinks:
            assert s.transport is not None
            s.transport.write(AUDIO_END)
    else:
        start = time.monotonic() + 0.2

        def feed(s: Sink, k: int, base: float) -> None:
            assert s.transport is not None
            last = k == args.frames - 1
            s.transport.write(AUDIO_END if last else AUDIO)
            if not last:
                delay = base + (k + 1) * FRAME_PERIOD - time.monotonic()
                timers.append(loop.call_later(max(0.0, delay), feed, s, k + 1, base))

        for i, s in enumerate(sinks):
            base = start + FRAME_PERIOD * i / len(sinks)
            loop.call_at(loop.time() + (base - time.monotonic()), feed, s, 0, base)
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(*(s.done for s in sinks)), args.timeout)
    except asyncio.TimeoutError:
        timed_out = True
    wall = time.monotonic() - t0
    cpu = cpu_seconds() - cpu0
    server = server_stats(args.stats, reset=False)
    for s in sinks:
        if s.transport is not None:
            s.transport.abort()
    frames = args.sessions * args.frames
    received_bytes = sum(s.got for s in sinks)
    return {
        "ok": True,
        "mode": args.mode,
        "sessions": args.sessions,
        "frames_per_session": args.frames,
        "timed_out": timed_out,
        "complete_sessions": sum(1 for s in sinks if s.done.done() and not s.done.exception()),
        "bytes_received": received_bytes,
        "wall_s": round(wall, 6),
        "frames_per_s": round(frames / wall, 1),
        "sink_cpu_s": round(cpu, 6),
        "sink_cpu_us_per_frame": round(cpu / frames * 1e6, 4),
        "server": server,
        "machine": machine_info(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ingress", required=True)
    p.add_argument("--stats", required=True, help="flood server /stats URL")
    p.add_argument("--mode", choices=("flood", "realtime"), default="flood")
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--payload", type=int, default=DEFAULT_PAYLOAD)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = p.parse_args(argv)
    install_event_loop(args.loop)
    raise_nofile_limit()
    try:
        result = asyncio.run(run(args))
    except Exception as exc:
        log(f"server check failed: {exc!r}")
        emit_result({"ok": False, "error": repr(exc)})
        return 1
    emit_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
