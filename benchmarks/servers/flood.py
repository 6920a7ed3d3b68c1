"""Flood server: the avatar service's wire protocol, reduced to sending frames.

Just enough of PROTOCOL.md for a client to set up a session and receive
animation frames, built so that it is never what limits a benchmark (its CPU
share per client window is in every result). HTTP: the two token routes and
``GET /stats`` / ``POST /stats/reset`` (its own CPU time, frames sent, send
lateness) on a minimal keep-alive asyncio protocol. WebSocket: picows on a
second port, header or query auth (presence only); ``ClientConfigureSession``
is answered with ``ServerConfirmSession``, the first ``ClientAudioInput``
with ``--frames`` ``ServerResponseAnimation`` envelopes serialized once per
session (``--payload`` bytes of animation, the last ``end=true``):

- ``--mode flood``: all at once, pre-framed, one ``transport.write()``;
- ``--mode realtime``: 25/s from the first audio message, one ``send()`` of a
  reused buffer per frame against absolute due times, each frame carrying its
  send and due time (``time.monotonic()``) in its last 16 bytes (see
  ``benchmarks/common.py``); one timer for all sessions (:class:`Pacer`); a
  frame up to 0.5 ms before its due time is sent and stamped as due then, so
  no client sees a frame before its due time. The last frame (``end=true``)
  also waits for the client's audio with ``end=true``, and is stamped as due
  when that arrives: a service cannot end a request before its audio ended.
  (Sent on its own due time, it raced the client's last chunk, and a client
  that ends a request the service ended early, as avatarkit does with an
  interrupt, paid for that in about half of the requests: an artefact of
  this server.)

Later client messages are counted, and parsed only from a request's
third-last audio message on (the clients send one per frame) or when one's
size differs from the first's, to see its end (a last frame still waiting
2 s after its due time goes then, late); permessage-deflate is never
negotiated. Prints ``READY {"console", "ingress", "stats", "pid", ...}`` when
listening; exits after ``--max-seconds``. ``FloodServer`` starts it for the
driver; by hand: ``python -m benchmarks.servers.flood --mode flood``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import json
import os
import sys
import time
from typing import Any
from urllib.parse import parse_qs

from benchmarks.common import (
    DEFAULT_PAYLOAD,
    FRAME_PERIOD,
    TAIL_BYTES,
    cpu_seconds,
    install_event_loop,
    load_wire_pb2,
    log,
    pack_times,
    raise_nofile_limit,
    summarize_ms,
)
from benchmarks.servers import Server

pb = load_wire_pb2()

_MAX_LATENESS_SAMPLES = 2_000_000
_HOLD_S = 2.0  # the longest a last frame waits for the client's end (then it goes, late)


class Stats:
    """The server's own counters since the last reset (``/stats``)."""

    def __init__(self) -> None:
        self.lateness: list[float] = []  # the send paths hold a reference to it
        self.reset()

    def reset(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = cpu_seconds()
        self.frames_sent = 0
        self.lateness.clear()

    def snapshot(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        cpu = cpu_seconds() - self.cpu0
        n = self.frames_sent
        return {
            "wall_s": round(wall, 6),
            "cpu_s": round(cpu, 6),
            "cpu_share": round(cpu / wall, 4) if wall > 0 else None,
            "cpu_us_per_frame_sent": round(cpu / n * 1e6, 4) if n else None,
            "frames_sent": n,
            "lateness": summarize_ms(self.lateness),
        }


class Pacer:
    """One timer for every real-time session: a heap of (due time, sequence,
    session). Each tick sends every frame that is due (up to ``EARLY`` before
    its due time: uvloop rounds a timer's delay to whole milliseconds, so
    waiting out a shorter remainder would spin) and re-arms the loop's one timer for the earliest
    due time left, so a frame costs a heap push and pop, not a timer of its
    own (a ``call_later`` per frame per session cost ~24 µs of server CPU per
    frame and made the server, not the client, the limit of the client
    capacity search)."""

    EARLY = 0.0005

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, Any]] = []
        self.seq = itertools.count()
        self.timer: asyncio.TimerHandle | None = None
        self.armed_for = float("inf")

    def add(self, due: float, session: Any) -> None:
        heapq.heappush(self.heap, (due, next(self.seq), session))
        if due < self.armed_for:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.armed_for = due
        # call_later against time.monotonic(), the clock of the due times
        # (uvloop's loop.time() is libuv's cached millisecond clock).
        self.timer = self.loop.call_later(max(0.0, due - time.monotonic()), self.tick)

    def tick(self) -> None:
        self.timer, self.armed_for = None, float("inf")
        heap, monotonic, early = self.heap, time.monotonic, self.EARLY
        pop, replace = heapq.heappop, heapq.heapreplace
        while heap:
            now = monotonic()
            due, seq, session = heap[0]
            if due - now > early:
                break
            nxt = session.send_due(due, now)
            if nxt is None:
                pop(heap)
            else:
                replace(heap, (nxt, seq, session))
        if heap:
            self._arm(heap[0][0])


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


def animation_templates(
    cfg: argparse.Namespace, conn_id: str, req_id: str
) -> tuple[bytearray, bytearray]:
    """Serialized envelopes (normal, last) with the payload as final field."""
    size = max(cfg.payload, TAIL_BYTES)  # room for the two timestamps
    payload = (bytes(range(256)) * (size // 256 + 1))[:size]
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


_UNAUTHORIZED = b'{"errors":[{"status":"401","code":"sessionTokenInvalid"}]}'


def _parse(data: bytes) -> Any:
    """A client message (empty, type 0, if it does not parse)."""
    msg = pb.Message()
    with contextlib.suppress(Exception):
        msg.ParseFromString(data)
    return msg


def make_picows_factory(cfg: argparse.Namespace) -> Any:
    """picows listener factory: one ``Session`` per accepted connection."""
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
            self.state = 0  # 0: wait configure, 1: wait audio, 2: streaming/done
            self.conn_id = ""
            self.t: WSTransport | None = None
            self.k = 0
            self.t0 = 0.0
            self.normal = bytearray()
            self.last = bytearray()
            self.audio_n = 1  # audio messages received (the first starts the stream)
            self.first_size = 0  # the first audio message's size
            self.end_seen = False  # the client's audio with end=true arrived
            self.held = False  # the last frame is due but waits for end_seen
            self.held_due = 0.0  # its own due time

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.t = transport

        def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
            mt = frame.msg_type
            if mt == BINARY:
                if self.state < 2:
                    self.handle(transport, frame.get_payload_as_bytes())
                elif not self.end_seen:  # later audio is counted, parsed only near the end
                    self.audio_n += 1
                    # (or when its size differs from the first one's: end=true adds 2 bytes)
                    if self.audio_n >= near_end or frame.payload_size != self.first_size:
                        self.audio_end(frame.get_payload_as_bytes())
            elif mt == CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

        def handle(self, transport: WSTransport, data: bytes) -> None:
            """Configure -> confirm; the first audio starts the stream; anything
            else before that is answered with ServerError and a close."""
            msg = _parse(data)
            if self.state == 0 and msg.type == pb.MESSAGE_CLIENT_CONFIGURE_SESSION:
                self.conn_id = f"flood-{next(_conn_ids)}"
                self.state = 1
                transport.send(BINARY, confirm_bytes(self.conn_id))
            elif self.state == 1 and msg.type == pb.MESSAGE_CLIENT_AUDIO_INPUT:
                self.state = 2
                self.end_seen = msg.client_audio_input.end
                self.first_size = len(data)
                self.start(msg.client_audio_input.req_id)
            elif self.state == 0:
                transport.send(BINARY, error_bytes(400, "expected ClientConfigureSession"))
                transport.send_close(WSCloseCode.PROTOCOL_ERROR)
                transport.disconnect()

        def audio_end(self, data: bytes) -> None:
            """One of the request's last audio messages: if it ends the request,
            a last frame held for it goes now (stamped as due now)."""
            msg = _parse(data)
            if msg.type != pb.MESSAGE_CLIENT_AUDIO_INPUT or not msg.client_audio_input.end:
                return
            self.end_seen = True
            if self.held:
                self.held = False
                now = monotonic()
                self.send_due(now, now)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.t = None  # the pacer drops the session at its next due time

        def start(self, req_id: str) -> None:
            assert self.t is not None
            n = cfg.frames
            normal, last = animation_templates(cfg, self.conn_id, req_id)
            if cfg.mode == "flood":
                blob = (ws_header(len(normal)) + normal) * (n - 1) + (ws_header(len(last)) + last)
                self.t.underlying_transport.write(blob)
                STATS.frames_sent += n
                return
            self.normal, self.last = normal, last
            self.k = 0
            self.t0 = monotonic()
            pacer.add(self.t0, self)

        def send_due(self, due: float, now: float) -> float | None:
            """Send frame ``k`` (due at ``due``, ``now`` at most 0.5 ms before it);
            return the next frame's due time, or None when the stream is over."""
            t = self.t
            if t is None or t.is_disconnected or self.k > last_k:
                return None  # (k > last_k: the end audio released the held last frame)
            final = self.k == last_k
            if final and not self.end_seen and cfg.mode == "realtime":
                if not self.held:
                    # A service cannot end a request before the client ended its
                    # audio: the last frame waits for that (see audio_end), at most
                    # _HOLD_S; then it goes, as late as it is (the run shows it).
                    self.held, self.held_due = True, due
                    return due + _HOLD_S
                due = self.held_due
            buf = self.last if final else self.normal
            # Up to 0.5 ms early (timer resolution): the frame is stamped as due
            # when it is sent, so no client ever sees a frame before its due time.
            late = now - due
            pack_times(buf, now, due if late > 0 else now)
            t.send(BINARY, buf)
            STATS.frames_sent += 1
            if len(lateness) < _MAX_LATENESS_SAMPLES:
                lateness.append(late if late > 0 else 0.0)
            self.k += 1
            return None if final else self.t0 + self.k * FRAME_PERIOD

    last_k = cfg.frames - 1
    near_end = cfg.frames - 2  # audio parsed from here on (clients send one chunk a frame)
    pacer = Pacer(loop)

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
        return Session()

    return factory


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


async def amain(args: argparse.Namespace) -> None:
    from picows import ws_create_server

    cfg = args
    raise_nofile_limit()
    loop = asyncio.get_running_loop()
    http = await loop.create_server(RawHttp, args.host, 0, backlog=4096)
    http_port = http.sockets[0].getsockname()[1]
    server = await ws_create_server(
        make_picows_factory(cfg),
        args.host,
        0,
        max_frame_size=64 * 1024 * 1024,
        backlog=4096,
        websocket_handshake_timeout=30,
        use_aiofastnet=False,
    )
    ws_port = server.sockets[0].getsockname()[1]
    STATS.reset()
    ready = {
        "console": f"http://{args.host}:{http_port}/v1/console",
        "ingress": f"http://{args.host}:{ws_port}/v2/driveningress",
        "stats": f"http://{args.host}:{http_port}/stats",
        "pid": os.getpid(),
        "mode": cfg.mode,
        "frames": cfg.frames,
        "payload": cfg.payload,
    }
    print("READY " + json.dumps(ready), flush=True)
    log(f"flood server: {ready}")
    await asyncio.sleep(args.max_seconds)
    log("flood server: --max-seconds reached, exiting")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mode", choices=("flood", "realtime"), default="flood")
    p.add_argument("--frames", type=int, default=2000, help="frames per request")
    p.add_argument("--payload", type=int, default=DEFAULT_PAYLOAD, help="animation bytes per frame")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--max-seconds", type=float, default=900.0)
    args = p.parse_args(argv)
    install_event_loop(args.loop)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(amain(args))


class FloodServer(Server):
    """The flood server in its own process, for the driver:
    ``with FloodServer("--mode", "flood") as info`` yields the READY line's
    fields (URLs, ``pid``)."""

    def __init__(self, *args: str, max_seconds: float = 900, cpu: int | None = None) -> None:
        super().__init__([sys.executable, "-m", "benchmarks.servers.flood", *args,
                          "--max-seconds", str(max_seconds)], cpu=cpu)  # fmt: skip

    def ready(self, line: str) -> bool:
        if line.startswith("READY "):
            self.info = json.loads(line[len("READY ") :])
        return bool(self.info)


if __name__ == "__main__":
    main()
