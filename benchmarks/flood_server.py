"""Flood server: the avatar service's wire protocol, reduced to sending frames.

One process that speaks just enough of PROTOCOL.md for a client to set up a
session and receive animation frames, built so that it is never what limits a
benchmark:

- HTTP (aiohttp): ``POST /v1/console/session-tokens`` and
  ``POST /v1/auth/session-token`` answer ``{"sessionToken": t,
  "session_token": t}``; ``GET /stats`` and ``POST /stats/reset`` expose the
  server's own CPU time, frames sent and send lateness to the driver.
- WebSocket at ``/v2/driveningress/websocket`` (header auth ``X-App-ID`` /
  ``X-Session-Key`` or query ``appId`` / ``sessionKey``; only presence is
  checked). The first ``Message`` must be ``ClientConfigureSession``; the
  server answers ``ServerConfirmSession(connection_id=...)``. On the first
  ``ClientAudioInput`` it sends ``--frames`` ``ServerResponseAnimation``
  envelopes (``--payload`` bytes of animation each, the last one
  ``end=true``), serialized once per session:

  - ``--mode flood``: all at once. With ``--ws picows --write blob`` (the
    default) the WebSocket frames are pre-framed too and the whole stream is
    one ``transport.write()``: the server spends ~0.1 us per frame, ten times
    less than the cheapest client.
  - ``--mode realtime``: paced at ``--fps`` (25/s) from the arrival of the
    first audio message; each frame carries its send and due time
    (``time.monotonic()``, float64) in the last 16 bytes of its payload, see
    ``_common.py``. The server records its own lateness (send - due). Timers
    have 1 ms resolution: a frame whose timer fires up to 0.2 ms early is sent
    then and stamped as due at its send time, so no client sees a frame
    before its due time.

  Later client messages (audio, close) are counted, not parsed. The server
  never negotiates permessage-deflate (picows has none, the aiohttp variant
  sets ``compress=False``), so every client receives uncompressed frames.

``--realistic`` sends the local avatar service's own animation payloads
(computed once from the 16 kHz speech fixture, cycled) instead of a fixed
byte pattern: what compression sees on a real stream. ``--deflate`` (picows,
flood mode) accepts permessage-deflate when a client offers it: the server
answers the extension and sends each session's frames compressed with
context takeover (zlib, computed once per stream, so the server's cost per
frame stays that of a copy), and inflates what the client sends.

``--ws picows`` (default) serves the WebSocket on its own port with picows
(the cheapest per frame sent, see BENCHMARKS.md); the ingress URL printed then
differs from the console URL, which the protocol allows. ``--ws aiohttp``
serves both on one port.

Prints ``READY {"console": ..., "ingress": ..., "pid": ...}`` on stdout when
listening. Exits by itself after ``--max-seconds``.

Run: ``python benchmarks/flood_server.py --mode flood --frames 2000``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
import zlib
from typing import Any
from urllib.parse import parse_qs

from aiohttp import WSMsgType as AioMsgType
from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (
    DEFAULT_PAYLOAD,
    FRAME_HZ,
    TAIL_BYTES,
    WS_PATH,
    cpu_seconds,
    install_event_loop,
    load_wire_pb2,
    log,
    pack_times,
    raise_nofile_limit,
    summarize_ms,
    vmrss_kib,
)

pb = load_wire_pb2()

_MAX_LATENESS_SAMPLES = 2_000_000


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = cpu_seconds()
        self.frames_sent = 0
        self.bytes_sent = 0
        self.payload_bytes_sent = 0  # WebSocket payloads (compressed if agreed)
        self.audio_msgs = 0
        self.sessions_opened = 0
        self.sessions_closed = 0
        self.streams_started = 0
        self.streams_finished = 0
        if hasattr(self, "lateness"):
            self.lateness.clear()  # the send paths hold a reference to it
        else:
            self.lateness: list[float] = []

    def snapshot(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        cpu = cpu_seconds() - self.cpu0
        return {
            "wall_s": round(wall, 6),
            "cpu_s": round(cpu, 6),
            "cpu_share": round(cpu / wall, 4) if wall > 0 else None,
            "cpu_us_per_frame_sent": round(cpu / self.frames_sent * 1e6, 4)
            if self.frames_sent
            else None,
            "frames_sent": self.frames_sent,
            "bytes_sent": self.bytes_sent,
            "payload_bytes_sent": self.payload_bytes_sent,
            "audio_msgs": self.audio_msgs,
            "sessions_opened": self.sessions_opened,
            "sessions_closed": self.sessions_closed,
            "streams_started": self.streams_started,
            "streams_finished": self.streams_finished,
            "lateness": summarize_ms(self.lateness),
            "rss_kib": vmrss_kib(),
        }


class Config:
    def __init__(self, args: argparse.Namespace) -> None:
        self.mode: str = args.mode
        self.frames: int = args.frames
        self.payload: int = max(args.payload, TAIL_BYTES)
        self.period: float = 1.0 / args.fps
        self.write: str = args.write
        self.deflate: bool = args.deflate
        self.realistic: list[bytes] | None = realistic_payloads() if args.realistic else None


def realistic_payloads() -> list[bytes]:
    """The local service's animation payloads for the 16 kHz speech fixture."""
    import numpy as np

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "src"))
    from avatarkit.devserver.animation import AnimationAnalyzer, encode_frame

    with open(os.path.join(root, "tests", "fixtures", "speech_16000.pcm"), "rb") as f:
        pcm = np.frombuffer(f.read(), dtype="<i2")
    analyzer = AnimationAnalyzer(16000, seed="flood")
    frames = []
    for i in range(0, len(pcm) - 639, 640):
        frames += analyzer.push(pcm[i : i + 640])
    return [encode_frame(frame) for frame in frames]


def deflate_stream(messages: list[bytes]) -> list[bytes]:
    """permessage-deflate payloads of ``messages`` on one connection (context
    takeover, 32 KiB window, as a server that got no parameters sends)."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = []
    for m in messages:
        data = comp.compress(m) + comp.flush(zlib.Z_SYNC_FLUSH)
        out.append(data[:-4] if data.endswith(b"\x00\x00\xff\xff") else data)
    return out


def ws_frame(payload: bytes, rsv1: bool = False) -> bytes:
    """An unmasked, final, binary frame; RSV1 marks a compressed message."""
    header = bytearray(ws_header(len(payload)))
    if rsv1:
        header[0] |= 0x40
    return bytes(header) + payload


STATS = Stats()
_conn_ids = itertools.count(1)
_token_ids = itertools.count(1)


def ws_header(n: int) -> bytes:
    """Header of an unmasked, final, binary WebSocket frame of n bytes."""
    if n < 126:
        return bytes((0x82, n))
    if n < 65536:
        return bytes((0x82, 126)) + n.to_bytes(2, "big")
    return bytes((0x82, 127)) + n.to_bytes(8, "big")


def realistic_stream(cfg: Config, conn_id: str, req_id: str) -> list[bytes]:
    """``cfg.frames`` envelopes with the service's payloads, the last with end."""
    assert cfg.realistic is not None
    payloads = cfg.realistic
    out = []
    for k in range(cfg.frames):
        msg = pb.Message(type=pb.MESSAGE_SERVER_RESPONSE_ANIMATION)
        anim = msg.server_response_animation
        anim.connection_id = conn_id
        anim.req_id = req_id
        anim.end = k == cfg.frames - 1
        anim.animation = payloads[k % len(payloads)]
        out.append(msg.SerializeToString())
    return out


def animation_templates(cfg: Config, conn_id: str, req_id: str) -> tuple[bytearray, bytearray]:
    """Serialized envelopes (normal, last) with the payload as final field."""
    payload = bytes(range(256)) * (cfg.payload // 256 + 1)
    payload = payload[: cfg.payload]
    out = []
    for end in (False, True):
        msg = pb.Message(type=pb.MESSAGE_SERVER_RESPONSE_ANIMATION)
        anim = msg.server_response_animation
        anim.connection_id = conn_id
        anim.req_id = req_id
        anim.end = end
        anim.animation = payload
        data = bytearray(msg.SerializeToString())
        # The payload must be the tail of the envelope (clients read the
        # timestamps from the last bytes of what transport_frames receives).
        assert data.endswith(payload)
        out.append(data)
    return out[0], out[1]


def confirm_bytes(conn_id: str) -> bytes:
    msg = pb.Message(type=pb.MESSAGE_SERVER_CONFIRM_SESSION)
    msg.server_confirm_session.connection_id = conn_id
    return bytes(msg.SerializeToString())


def error_bytes(code: int, text: str) -> bytes:
    msg = pb.Message(type=pb.MESSAGE_SERVER_ERROR)
    msg.server_error.code = code
    msg.server_error.message = text
    return bytes(msg.SerializeToString())


def has_auth(headers: Any, query: str) -> bool:
    if headers.get("X-App-ID") and headers.get("X-Session-Key"):
        return True
    q = parse_qs(query)
    return bool(q.get("appId")) and bool(q.get("sessionKey"))


_UNAUTHORIZED = json.dumps(
    {
        "errors": [
            {
                "status": "401",
                "code": "sessionTokenInvalid",
                "title": "Invalid session token",
                "detail": "invalid session token",
            }
        ]
    }
).encode()


class _Protocol:
    """Server side of one session, independent of the WebSocket library."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = 0  # 0: wait configure, 1: wait audio, 2: streaming/done
        self.conn_id = ""

    def handle(self, data: bytes) -> tuple[bytes | None, str | None]:
        """Returns (reply, req_id_to_stream | None); reply None = nothing."""
        msg = pb.Message()
        try:
            msg.ParseFromString(data)
        except Exception:
            return error_bytes(400, "failed to unmarshal initial message"), None
        if self.state == 0:
            if msg.type != pb.MESSAGE_CLIENT_CONFIGURE_SESSION:
                return error_bytes(400, "expected ClientConfigureSession message"), None
            self.conn_id = f"flood-{next(_conn_ids)}"
            self.state = 1
            return confirm_bytes(self.conn_id), None
        if msg.type == pb.MESSAGE_CLIENT_AUDIO_INPUT:
            STATS.audio_msgs += 1
            self.state = 2
            return None, msg.client_audio_input.req_id
        return None, None


# --------------------------------------------------------------------------
# picows WebSocket server
# --------------------------------------------------------------------------


def make_picows_factory(cfg: Config) -> Any:
    from picows import (
        WSCloseCode,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        WSUpgradeResponse,
        WSUpgradeResponseWithListener,
    )

    BINARY = WSMsgType.BINARY
    CLOSE = WSMsgType.CLOSE
    loop = asyncio.get_running_loop()
    monotonic = time.monotonic
    lateness = STATS.lateness

    class Session(WSListener):
        def __init__(self) -> None:
            self.proto = _Protocol(cfg)
            self.t: WSTransport | None = None
            self.timer: asyncio.TimerHandle | None = None
            self.k = 0
            self.t0 = 0.0
            self.normal = bytearray()
            self.last = bytearray()
            self.inflate: Any = None  # set when permessage-deflate was agreed

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.t = transport
            STATS.sessions_opened += 1

        def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
            mt = frame.msg_type
            if mt == BINARY:
                if self.proto.state == 2:
                    STATS.audio_msgs += 1
                    return
                data = frame.get_payload_as_bytes()
                if self.inflate is not None and frame.rsv1:
                    data = self.inflate.decompress(data + b"\x00\x00\xff\xff")
                reply, req_id = self.proto.handle(data)
                if reply is not None:
                    transport.send(BINARY, reply)
                    if self.proto.state == 0:  # error: close
                        transport.send_close(WSCloseCode.PROTOCOL_ERROR)
                        transport.disconnect()
                if req_id is not None:
                    self.start(req_id)
            elif mt == CLOSE:
                self.cancel()
                transport.send_close(frame.get_close_code())
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.cancel()
            STATS.sessions_closed += 1

        def cancel(self) -> None:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

        def start(self, req_id: str) -> None:
            assert self.t is not None
            STATS.streams_started += 1
            n = cfg.frames
            if cfg.mode == "flood" and (cfg.realistic is not None or self.inflate is not None):
                if cfg.realistic is not None:
                    msgs = realistic_stream(cfg, self.proto.conn_id, req_id)
                else:
                    normal, last = animation_templates(cfg, self.proto.conn_id, req_id)
                    msgs = [bytes(normal)] * (n - 1) + [bytes(last)]
                compressed = self.inflate is not None
                if compressed:
                    msgs = deflate_stream(msgs)
                blob = b"".join(ws_frame(m, compressed) for m in msgs)
                self.t.underlying_transport.write(blob)
                STATS.bytes_sent += len(blob)
                STATS.payload_bytes_sent += sum(len(m) for m in msgs)
                STATS.frames_sent += n
                STATS.streams_finished += 1
                return
            normal, last = animation_templates(cfg, self.proto.conn_id, req_id)
            if cfg.mode == "flood":
                if cfg.write == "blob":
                    blob = (ws_header(len(normal)) + normal) * (n - 1) + (
                        ws_header(len(last)) + last
                    )
                    self.t.underlying_transport.write(blob)
                    STATS.bytes_sent += len(blob)
                else:
                    send = self.t.send
                    nb = bytes(normal)
                    for _ in range(n - 1):
                        send(BINARY, nb)
                    send(BINARY, bytes(last))
                    STATS.bytes_sent += len(normal) * (n - 1) + len(last)
                STATS.frames_sent += n
                STATS.streams_finished += 1
                return
            self.normal, self.last = normal, last
            self.k = 0
            self.t0 = monotonic()
            self.tick()

        def tick(self) -> None:
            self.timer = None
            t = self.t
            if t is None or t.is_disconnected:
                return
            due = self.t0 + self.k * cfg.period
            now = monotonic()
            if due - now > 0.0002:  # timer fired early (1 ms timer resolution)
                self.timer = loop.call_later(due - now, self.tick)
                return
            final = self.k == cfg.frames - 1
            buf = self.last if final else self.normal
            # Up to 0.2 ms early: the frame is stamped as due when it is sent,
            # so no client ever sees a frame before its due time.
            late = now - due
            pack_times(buf, now, due if late > 0 else now)
            t.send(BINARY, buf)
            STATS.frames_sent += 1
            STATS.bytes_sent += len(buf)
            if len(lateness) < _MAX_LATENESS_SAMPLES:
                lateness.append(late if late > 0 else 0.0)
            self.k += 1
            if final:
                STATS.streams_finished += 1
                return
            delay = self.t0 + self.k * cfg.period - monotonic()
            self.timer = loop.call_later(delay if delay > 0 else 0, self.tick)

    def factory(request: WSUpgradeRequest) -> Any:
        path, _, query = request.path.decode("latin-1").partition("?")
        if not path.endswith("/websocket"):
            return None  # 404
        if not has_auth(request.headers, query):
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_error_response(
                    401, _UNAUTHORIZED, {"Content-Type": "application/json"}
                ),
                None,
            )
        session = Session()
        offered = request.headers.get("Sec-WebSocket-Extensions", "")
        if cfg.deflate and "permessage-deflate" in offered:
            # No parameters: context takeover both ways, 15-bit windows.
            session.inflate = zlib.decompressobj(-15)
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_101_response(
                    extra_headers={"Sec-WebSocket-Extensions": "permessage-deflate"}
                ),
                session,
            )
        return session

    return factory


# --------------------------------------------------------------------------
# aiohttp WebSocket handler (same port as HTTP)
# --------------------------------------------------------------------------


def make_aiohttp_ws_handler(cfg: Config) -> Any:
    monotonic = time.monotonic
    lateness = STATS.lateness

    async def stream(ws: web.WebSocketResponse, proto: _Protocol, req_id: str) -> None:
        STATS.streams_started += 1
        normal, last = animation_templates(cfg, proto.conn_id, req_id)
        n = cfg.frames
        if cfg.mode == "flood":
            nb = bytes(normal)
            for _ in range(n - 1):
                await ws.send_bytes(nb)
            await ws.send_bytes(bytes(last))
            STATS.frames_sent += n
            STATS.bytes_sent += len(normal) * (n - 1) + len(last)
            STATS.streams_finished += 1
            return
        t0 = monotonic()
        for k in range(n):
            due = t0 + k * cfg.period
            wait = due - monotonic()
            while wait > 0.0002:
                await asyncio.sleep(wait)
                wait = due - monotonic()
            now = monotonic()
            buf = last if k == n - 1 else normal
            late = now - due
            pack_times(buf, now, due if late > 0 else now)
            await ws.send_bytes(bytes(buf))
            STATS.frames_sent += 1
            STATS.bytes_sent += len(buf)
            if len(lateness) < _MAX_LATENESS_SAMPLES:
                lateness.append(late if late > 0 else 0.0)
        STATS.streams_finished += 1

    async def handler(request: web.Request) -> web.StreamResponse:
        if not has_auth(request.headers, request.query_string):
            return web.Response(status=401, body=_UNAUTHORIZED, content_type="application/json")
        ws = web.WebSocketResponse(compress=False, max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        STATS.sessions_opened += 1
        proto = _Protocol(cfg)
        task: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type != AioMsgType.BINARY:
                    continue
                if proto.state == 2:
                    STATS.audio_msgs += 1
                    continue
                reply, req_id = proto.handle(msg.data)
                if reply is not None:
                    await ws.send_bytes(reply)
                    if proto.state == 0:
                        await ws.close(code=1002)
                        break
                if req_id is not None:
                    task = asyncio.create_task(stream(ws, proto, req_id))
        finally:
            if task is not None and not task.done():
                task.cancel()
            STATS.sessions_closed += 1
        return ws

    return handler


# --------------------------------------------------------------------------
# HTTP routes and main
# --------------------------------------------------------------------------


async def token_handler(request: web.Request) -> web.Response:
    await request.read()
    token = f"tok-{next(_token_ids)}"
    return web.json_response({"sessionToken": token, "session_token": token})


async def stats_handler(request: web.Request) -> web.Response:
    return web.json_response(STATS.snapshot())


async def stats_reset_handler(request: web.Request) -> web.Response:
    snap = STATS.snapshot()
    STATS.reset()
    return web.json_response(snap)


_TOKEN_PATHS = (b"/v1/console/session-tokens", b"/v1/auth/session-token")


class RawHttp(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server for the token and stats routes.

    aiohttp's server costs ~0.12 ms of CPU per token call here, a third of a
    loopback set-up; this costs a fraction of that, so the set-up latency
    measures the client. Requests must carry Content-Length (every client in
    the benchmark does); anything unknown gets 404.
    """

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip() or 0)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            method, _, rest = head.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            self.respond(method, path, close)
            if close:
                return

    def respond(self, method: bytes, path: bytes, close: bool) -> None:
        assert self.transport is not None
        status = b"200 OK"
        if method == b"POST" and path.endswith(_TOKEN_PATHS):
            token = f"tok-{next(_token_ids)}"
            body = b'{"sessionToken":"%s","session_token":"%s"}' % (token.encode(), token.encode())
        elif method == b"GET" and path == b"/stats":
            body = json.dumps(STATS.snapshot()).encode()
        elif method == b"POST" and path == b"/stats/reset":
            body = json.dumps(STATS.snapshot()).encode()
            STATS.reset()
        else:
            status, body = b"404 Not Found", b'{"errors":[{"status":"404","detail":"not found"}]}'
        self.transport.write(
            b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (status, len(body), b"Connection: close\r\n" if close else b"", body)
        )
        if close:
            self.transport.close()


async def start_raw_http(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(RawHttp, args.host, args.http_port, backlog=4096)
    return int(server.sockets[0].getsockname()[1])


async def start_aiohttp(args: argparse.Namespace, cfg: Config) -> int:
    app = web.Application()
    app.router.add_post("/v1/console/session-tokens", token_handler)
    app.router.add_post("/v1/auth/session-token", token_handler)
    app.router.add_get("/stats", stats_handler)
    app.router.add_post("/stats/reset", stats_reset_handler)
    if args.ws == "aiohttp":
        app.router.add_get(WS_PATH, make_aiohttp_ws_handler(cfg))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.http_port, backlog=4096)
    await site.start()
    return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]


async def amain(args: argparse.Namespace) -> None:
    cfg = Config(args)
    raise_nofile_limit()
    if args.ws == "aiohttp" or args.http == "aiohttp":
        http_port = await start_aiohttp(args, cfg)
    else:
        http_port = await start_raw_http(args)
    console = f"http://{args.host}:{http_port}/v1/console"
    if args.ws == "picows":
        from picows import ws_create_server

        server = await ws_create_server(
            make_picows_factory(cfg),
            args.host,
            args.ws_port,
            max_frame_size=64 * 1024 * 1024,
            backlog=4096,
            websocket_handshake_timeout=30,
            use_aiofastnet=args.aiofastnet == "on",
        )
        ws_port = server.sockets[0].getsockname()[1]
    else:
        ws_port = http_port
    ingress = f"http://{args.host}:{ws_port}/v2/driveningress"
    STATS.reset()
    ready = {
        "console": console,
        "ingress": ingress,
        "stats": f"http://{args.host}:{http_port}/stats",
        "pid": os.getpid(),
        "ws": args.ws,
        "http": "aiohttp" if args.ws == "aiohttp" else args.http,
        "mode": cfg.mode,
        "frames": cfg.frames,
        "payload": cfg.payload,
        "deflate": cfg.deflate,
        "realistic_payload_bytes": (
            round(sum(map(len, cfg.realistic)) / len(cfg.realistic), 1) if cfg.realistic else None
        ),
        "write": cfg.write if args.ws == "picows" and cfg.mode == "flood" else "frames",
    }
    print("READY " + json.dumps(ready), flush=True)
    log(f"flood server: {ready}")
    await asyncio.sleep(args.max_seconds)
    log("flood server: --max-seconds reached, exiting")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--ws-port", type=int, default=0)
    p.add_argument("--ws", choices=("picows", "aiohttp"), default="picows")
    p.add_argument(
        "--http",
        choices=("raw", "aiohttp"),
        default="raw",
        help="token/stats routes: minimal asyncio protocol or aiohttp "
        "(--ws aiohttp implies aiohttp, on the same port)",
    )
    p.add_argument("--mode", choices=("flood", "realtime"), default="flood")
    p.add_argument(
        "--write",
        choices=("blob", "frames"),
        default="blob",
        help="flood with picows: one pre-framed write per stream, or one send per frame",
    )
    p.add_argument("--frames", type=int, default=2000, help="frames per request")
    p.add_argument("--payload", type=int, default=DEFAULT_PAYLOAD, help="animation bytes per frame")
    p.add_argument("--fps", type=float, default=FRAME_HZ)
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument(
        "--aiofastnet",
        choices=("on", "off"),
        default="off",
        help="picows: use aiofastnet's transports instead of the loop's",
    )
    p.add_argument(
        "--deflate",
        action="store_true",
        help="picows, flood: accept permessage-deflate when offered (frames compressed)",
    )
    p.add_argument(
        "--realistic",
        action="store_true",
        help="flood: the local service's animation payloads instead of a fixed pattern",
    )
    p.add_argument("--max-seconds", type=float, default=900.0)
    args = p.parse_args(argv)
    install_event_loop(args.loop)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(amain(args))


if __name__ == "__main__":
    main()
