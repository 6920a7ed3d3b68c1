"""The measurements each client process runs, written once against a small
client interface.

Each client module (``floor``, ``websockets_client``, ``sdk``) supplies an
adapter with ``open_token(on_frame)``, ``open_ws(state)``,
``send_audio(handle, data, end)`` and ``close(handle)`` and calls :func:`main`.
So every client runs exactly the same measurement code; only what sits
between the socket and ``on_frame(envelope_bytes, is_last)`` differs.
Standard library only (the SDK client also runs under avatarkit 0.1.7's
virtualenv). The result is the last stdout line, ``RESULT <json>``.

Measurements (``--scenario``): ``flood`` (client CPU per received frame),
``setup`` (sequential set-up latency), ``realtime`` (delay from each frame's
due time, frames lost, memory per session), against the local service
``endlat`` (last audio chunk to the ``end`` frame) and ``capacity`` (frame
lateness under real-time load); each function's code is the method, and
BENCHMARKS.md (``benchmarks/report.md.tmpl``) describes it in words.

Waits for frames are bounded by ``--timeout``; the set-up calls by each
client's own timeouts; the driver bounds each whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import traceback
import urllib.request
from array import array
from collections.abc import Callable
from typing import Any, Protocol

from benchmarks.common import (
    CHUNK_BYTES,
    CHUNK_MS,
    FRAME_PERIOD,
    cpu_seconds,
    emit_result,
    frame_times,
    install_event_loop,
    load_chunks,
    log,
    process_cpu_seconds,
    raise_nofile_limit,
    summarize_ms,
    vmrss_kib,
)

OnFrame = Callable[[bytes, bool], None]


class Adapter(Protocol):
    name: str

    async def setup(self) -> None: ...
    async def open_token(self, on_frame: OnFrame) -> Any: ...
    async def open_ws(self, token_state: Any) -> Any: ...
    async def send_audio(self, handle: Any, data: bytes, end: bool) -> None: ...
    async def close(self, handle: Any) -> None: ...
    async def teardown(self) -> None: ...
    def info(self) -> dict[str, Any]: ...


async def open_session(adapter: Adapter, on_frame: OnFrame) -> Any:
    token_state = await adapter.open_token(on_frame)
    return await adapter.open_ws(token_state)


class _FloodState:
    __slots__ = ("done", "n")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.n = 0
        self.done: asyncio.Future[None] = loop.create_future()

    def on_frame(self, buf: bytes, is_last: bool) -> None:
        self.n += 1
        if is_last and not self.done.done():
            self.done.set_result(None)


class _RealtimeState:
    """Per-session recorder. Samples go into slots of preallocated arrays
    (allocated before the memory baseline), so recording adds no memory that
    would be counted as the SDK's per-session cost."""

    __slots__ = ("base", "cap", "delays", "done", "n", "transits")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delays: array[float],
        transits: array[float],
        base: int,
        cap: int,
    ) -> None:
        self.n = 0
        self.base = base
        self.cap = cap
        self.delays = delays
        self.transits = transits
        self.done: asyncio.Future[None] = loop.create_future()

    def on_frame(self, buf: bytes, is_last: bool) -> None:
        now = time.monotonic()
        sent, due = frame_times(buf)
        n = self.n
        if n < self.cap:
            i = self.base + n
            self.delays[i] = now - due
            self.transits[i] = now - sent
        self.n = n + 1
        if is_last and not self.done.done():
            self.done.set_result(None)


class _EndState:
    """Counts the frames of the current request and stamps its end frame."""

    __slots__ = ("done", "n", "t_end", "until", "waiter")

    def __init__(self) -> None:
        self.n = 0
        self.t_end = 0.0
        self.until = -1
        self.done: asyncio.Future[None] | None = None
        self.waiter: asyncio.Future[None] | None = None

    def reset(self, loop: asyncio.AbstractEventLoop) -> None:
        self.n = 0
        self.t_end = 0.0
        self.until = -1
        self.done = loop.create_future()
        self.waiter = None

    def on_frame(self, buf: bytes, is_last: bool) -> None:
        now = time.monotonic()
        self.n += 1
        if is_last:
            self.t_end = now
            if self.done is not None and not self.done.done():
                self.done.set_result(None)
        if self.n == self.until and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class _CapacityState:
    """Per-session lateness recorder (preallocated slots, like _RealtimeState)."""

    __slots__ = ("base", "cap", "delays", "done", "first", "n")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, delays: array[float], base: int, cap: int
    ) -> None:
        self.n = 0
        self.base = base
        self.cap = cap
        self.delays = delays
        self.first = 0.0  # send time of the first chunk: frame k is due at first + k * 40 ms
        self.done: asyncio.Future[None] = loop.create_future()

    def on_frame(self, buf: bytes, is_last: bool) -> None:
        now = time.monotonic()
        n = self.n
        if n < self.cap:
            self.delays[self.base + n] = now - (self.first + n * FRAME_PERIOD)
        self.n = n + 1
        if is_last and not self.done.done():
            self.done.set_result(None)


async def _open_many(
    adapter: Adapter, callbacks: list[OnFrame], concurrency: int
) -> tuple[list[Any], int]:
    sem = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(cb: OnFrame) -> Any:
        nonlocal failures
        async with sem:
            try:
                return await open_session(adapter, cb)
            except Exception as exc:
                failures += 1
                if failures <= 3:
                    log(f"{adapter.name}: set-up failed: {exc!r}")
                return None

    handles = await asyncio.gather(*(one(cb) for cb in callbacks))
    return list(handles), failures


async def _close_many(adapter: Adapter, handles: list[Any], concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(h: Any) -> None:
        if h is None:
            return
        async with sem:
            try:
                await asyncio.wait_for(adapter.close(h), 10)
            except Exception as exc:  # closing is not measured
                log(f"{adapter.name}: close failed: {exc!r}")

    await asyncio.gather(*(one(h) for h in handles))


def _server_stats(url: str | None, reset: bool) -> dict[str, Any] | None:
    """The flood server's own counters for the measured window (blocking,
    called only outside the window)."""
    if not url:
        return None
    req = urllib.request.Request(
        url + ("/reset" if reset else ""), method="POST" if reset else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except Exception as exc:
        log(f"server stats unavailable: {exc!r}")
        return None


async def run_flood(adapter: Adapter, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    states = [_FloodState(loop) for _ in range(args.sessions)]
    handles, failures = await _open_many(adapter, [s.on_frame for s in states], args.concurrency)
    chunk = bytes(CHUNK_BYTES)
    live = [(h, s) for h, s in zip(handles, states, strict=True) if h is not None]
    gc.collect()
    _server_stats(args.server_stats, reset=True)
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    await asyncio.gather(*(adapter.send_audio(h, chunk, True) for h, _ in live))
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(*(s.done for _, s in live)), args.timeout)
    except asyncio.TimeoutError:
        timed_out = True
    t1 = time.monotonic()
    cpu1 = cpu_seconds()
    server = _server_stats(args.server_stats, reset=False)
    received = sum(s.n for s in states)
    expected = args.sessions * args.frames
    await _close_many(adapter, handles, args.concurrency)
    cpu = cpu1 - cpu0
    wall = t1 - t0
    return {
        "server": server,
        "sessions": args.sessions,
        "frames_per_session": args.frames,
        "frames_expected": expected,
        "frames_received": received,
        "frames_lost": expected - received,
        "setup_failures": failures,
        "timed_out": timed_out,
        "cpu_s": round(cpu, 6),
        "wall_s": round(wall, 6),
        "cpu_us_per_frame": round(cpu / received * 1e6, 4) if received else None,
        "frames_per_s": round(received / wall, 1) if wall > 0 else None,
        "cpu_share": round(cpu / wall, 4) if wall > 0 else None,
    }


async def run_setup(adapter: Adapter, args: argparse.Namespace) -> dict[str, Any]:
    def ignore(buf: bytes, is_last: bool) -> None:
        pass

    totals: list[float] = []
    tokens: list[float] = []
    sockets: list[float] = []
    failures = 0
    cpu = 0.0
    for i in range(args.warmup + args.setups):
        if i == args.warmup:
            _server_stats(args.server_stats, reset=True)
        c0 = cpu_seconds()
        t0 = time.monotonic()
        try:
            token_state = await adapter.open_token(ignore)
            t1 = time.monotonic()
            handle = await adapter.open_ws(token_state)
            t2 = time.monotonic()
        except Exception as exc:
            failures += 1
            if failures <= 3:
                log(f"{adapter.name}: set-up failed: {exc!r}")
            continue
        c1 = cpu_seconds()
        await adapter.close(handle)
        if i >= args.warmup:
            totals.append(t2 - t0)
            tokens.append(t1 - t0)
            sockets.append(t2 - t1)
            cpu += c1 - c0
    server = _server_stats(args.server_stats, reset=False)
    n = len(totals)
    if server and n:
        server["cpu_ms_per_setup"] = round(server["cpu_s"] / (n + failures) * 1e3, 4)
    return {
        "server": server,
        "setups": args.setups,
        "measured": n,
        "failures": failures,
        "total": summarize_ms(totals),
        "token": summarize_ms(tokens),
        "websocket": summarize_ms(sockets),
        "cpu_ms_per_setup": round(cpu / n * 1e3, 4) if n else None,
    }


async def run_realtime(adapter: Adapter, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    n_sessions = args.sessions
    frames = args.frames
    total = n_sessions * frames
    # Preallocated (and touched) before the memory baseline.
    delays = array("d", bytes(8 * total))
    transits = array("d", bytes(8 * total))
    send_lag = array("d", bytes(8 * total))
    # Warm up once so lazily imported modules and pools are not counted
    # as per-session memory.
    warm = _RealtimeState(loop, array("d", [0.0]), array("d", [0.0]), 0, 0)
    h = await open_session(adapter, warm.on_frame)
    await adapter.close(h)
    states = [_RealtimeState(loop, delays, transits, i * frames, frames) for i in range(n_sessions)]
    chunk = bytes(CHUNK_BYTES)
    gc.collect()
    rss_base = vmrss_kib()

    t_setup0 = time.monotonic()
    handles, failures = await _open_many(adapter, [s.on_frame for s in states], args.concurrency)
    setup_wall = time.monotonic() - t_setup0
    rss_open = vmrss_kib()
    gc.collect()
    start = time.monotonic() + 0.3
    rss_peak = rss_open

    async def feeder(i: int, h: Any) -> None:
        base = start + FRAME_PERIOD * i / n_sessions
        slot = i * frames
        for k in range(frames):
            due = base + k * FRAME_PERIOD
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            send_lag[slot + k] = time.monotonic() - due
            await adapter.send_audio(h, chunk, k == frames - 1)

    stop_sampler = False

    async def sampler() -> None:
        nonlocal rss_peak
        while not stop_sampler:
            rss_peak = max(rss_peak, vmrss_kib())
            await asyncio.sleep(0.25)

    live = [
        (i, h, s) for i, (h, s) in enumerate(zip(handles, states, strict=True)) if h is not None
    ]
    _server_stats(args.server_stats, reset=True)
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    sampler_task = asyncio.create_task(sampler())
    feeder_errors = 0
    results = await asyncio.gather(*(feeder(i, h) for i, h, _ in live), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            feeder_errors += 1
            if feeder_errors <= 3:
                log(f"{adapter.name}: send failed: {r!r}")
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(*(s.done for _, _, s in live)), args.timeout)
    except asyncio.TimeoutError:
        timed_out = True
    t1 = time.monotonic()
    cpu1 = cpu_seconds()
    server = _server_stats(args.server_stats, reset=False)
    stop_sampler = True
    await sampler_task
    rss_peak = max(rss_peak, vmrss_kib())
    received = sum(s.n for s in states)
    await _close_many(adapter, handles, args.concurrency)
    cpu = cpu1 - cpu0
    wall = t1 - t0

    def recorded(values: array[float]) -> list[float]:
        out: list[float] = []
        for i, s in enumerate(states):
            out.extend(values[i * frames : i * frames + min(s.n, frames)])
        return out

    sent = [(i, h) for i, h, _ in live]
    lags = [v for i, _ in sent for v in send_lag[i * frames : (i + 1) * frames]]
    return {
        "server": server,
        "sessions": n_sessions,
        "frames_per_session": frames,
        "frames_expected": total,
        "frames_received": received,
        "frames_lost": total - received,
        "sessions_incomplete": sum(1 for s in states if not s.done.done()),
        "setup_failures": failures,
        "send_failures": feeder_errors,
        "timed_out": timed_out,
        "setup_wall_s": round(setup_wall, 3),
        "delay": summarize_ms(recorded(delays)),
        "transit": summarize_ms(recorded(transits)),
        "send_lag": summarize_ms(lags),
        "cpu_s": round(cpu, 4),
        "wall_s": round(wall, 4),
        "cpu_share": round(cpu / wall, 4) if wall > 0 else None,
        "cpu_us_per_frame": round(cpu / received * 1e6, 3) if received else None,
        "rss_base_kib": rss_base,
        "rss_open_kib": rss_open,
        "rss_peak_kib": rss_peak,
        "rss_kib_per_session": round((rss_peak - rss_base) / n_sessions, 2),
    }


async def run_endlat(adapter: Adapter, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    chunks = load_chunks(args.audio)
    nc = len(chunks)
    c = max(2, args.request_chunks)
    st = _EndState()
    handle = await open_session(adapter, st.on_frame)
    out: dict[str, Any] = {}
    request_index = 0
    timeouts = 0
    cpu0 = cpu_seconds()
    t_all = time.monotonic()
    try:
        for mode in ("burst", "caught_up"):
            lat: list[float] = []
            whole: list[float] = []
            for r in range(args.warmup + args.requests):
                st.reset(loop)
                off = (request_index * c) % nc
                request_index += 1
                t_first = time.monotonic()
                for k in range(c - 1):
                    await adapter.send_audio(handle, chunks[(off + k) % nc], False)
                if mode == "caught_up":
                    # Frames 0..c-3 can be sent; frame c-2 is held back until the
                    # next audio (it could be the last).
                    st.until = c - 2
                    if st.n < st.until:
                        st.waiter = loop.create_future()
                        await asyncio.wait_for(st.waiter, args.timeout)
                t_send = time.monotonic()
                await adapter.send_audio(handle, chunks[(off + c - 1) % nc], True)
                assert st.done is not None
                try:
                    await asyncio.wait_for(st.done, args.timeout)
                except asyncio.TimeoutError:
                    timeouts += 1
                    continue
                if r >= args.warmup:
                    lat.append(st.t_end - t_send)
                    whole.append(st.t_end - t_first)
                    if st.n != c:
                        log(f"{adapter.name}: request had {st.n} frames, expected {c}")
            out[mode] = {"end": summarize_ms(lat), "request": summarize_ms(whole)}
    finally:
        cpu = cpu_seconds() - cpu0
        wall = time.monotonic() - t_all
        await adapter.close(handle)
    return {
        "requests": args.requests,
        "request_chunks": c,
        "warmup": args.warmup,
        "timeouts": timeouts,
        "burst": out.get("burst"),
        "caught_up": out.get("caught_up"),
        "cpu_share": round(cpu / wall, 4) if wall > 0 else None,
    }


async def run_capacity(adapter: Adapter, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    n_sessions = args.sessions
    chunks = load_chunks(args.audio)
    nc = len(chunks)
    n_chunks = max(2, round(args.seconds * 1000 / CHUNK_MS))
    frames = n_chunks  # 640 samples per chunk at 16 kHz: one frame each
    total = n_sessions * frames
    delays = array("d", bytes(8 * total))
    send_lag = array("d", bytes(8 * total))
    states = [_CapacityState(loop, delays, i * frames, frames) for i in range(n_sessions)]
    t_setup0 = time.monotonic()
    handles, failures = await _open_many(adapter, [s.on_frame for s in states], args.concurrency)
    setup_wall = time.monotonic() - t_setup0
    gc.collect()
    lead = args.lead_ms / 1000.0
    start = time.monotonic() + 0.3

    ramp_frames = round(args.ramp_s / FRAME_PERIOD)

    async def feeder(i: int, h: Any, st: _CapacityState) -> None:
        # Phases spread evenly over one 40 ms period; whole periods of delay
        # spread the starts over the ramp (no burst of request starts).
        base = start + FRAME_PERIOD * (i * ramp_frames // n_sessions + i / n_sessions)
        off = (i * 53) % nc  # sessions play different parts of the clip
        slot = i * frames
        for k in range(n_chunks):
            due = max(base, base + k * FRAME_PERIOD - lead)
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            now = time.monotonic()
            if k == 0:
                st.first = now
            send_lag[slot + k] = now - due
            await adapter.send_audio(h, chunks[(off + k) % nc], k == n_chunks - 1)

    live = [(i, h, s) for i, (h, s) in enumerate(zip(handles, states, strict=True)) if h]
    # Steady state: every session streaming (after the ramp, before the first
    # session's audio ends); the server's CPU share is read over that too.
    steady: dict[str, float] = {}
    steady_from = start + FRAME_PERIOD * (ramp_frames + 1) + 0.2
    steady_to = start + FRAME_PERIOD * (n_chunks - 2)

    async def steady_sampler() -> None:
        for key, when in (("0", steady_from), ("1", steady_to)):
            wait = when - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            steady["t" + key] = time.monotonic()
            steady["cpu" + key] = cpu_seconds()
            if args.server_pid:
                steady["srv" + key] = process_cpu_seconds(args.server_pid) or 0.0

    sampler = asyncio.create_task(steady_sampler()) if steady_to - steady_from >= 1.0 else None
    srv0 = process_cpu_seconds(args.server_pid) if args.server_pid else None
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    results = await asyncio.gather(*(feeder(i, h, s) for i, h, s in live), return_exceptions=True)
    feeder_errors = 0
    for r in results:
        if isinstance(r, BaseException):
            feeder_errors += 1
            if feeder_errors <= 3:
                log(f"{adapter.name}: send failed: {r!r}")
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(*(s.done for _, _, s in live)), args.timeout)
    except asyncio.TimeoutError:
        timed_out = True
    t1 = time.monotonic()
    cpu1 = cpu_seconds()
    srv1 = process_cpu_seconds(args.server_pid) if args.server_pid else None
    if sampler is not None:
        sampler.cancel()
    received = sum(s.n for s in states)
    await _close_many(adapter, handles, args.concurrency)
    wall = t1 - t0
    steady_out: dict[str, Any] = {}
    if "t1" in steady:
        sw = steady["t1"] - steady["t0"]
        steady_out = {
            "wall_s": round(sw, 3),
            "frames_per_s": round(len(live) / FRAME_PERIOD, 1),
            "cpu_share": round((steady["cpu1"] - steady["cpu0"]) / sw, 4),
        }
        if "srv1" in steady:
            srv_cpu = steady["srv1"] - steady["srv0"]
            steady_out["server_cpu_share"] = round(srv_cpu / sw, 4)
            steady_out["server_cpu_us_per_frame"] = round(
                srv_cpu / (sw * len(live) / FRAME_PERIOD) * 1e6, 2
            )
    cpu = cpu1 - cpu0
    server_cpu = srv1 - srv0 if srv0 is not None and srv1 is not None else None

    recorded: list[float] = []
    for i, s in enumerate(states):
        recorded.extend(delays[i * frames : i * frames + min(s.n, frames)])
    lags = [v for i, _, _ in live for v in send_lag[i * frames : (i + 1) * frames]]
    late40 = sum(1 for v in recorded if v >= 0.040)
    return {
        "sessions": n_sessions,
        "frames_per_session": frames,
        "seconds": n_chunks * CHUNK_MS / 1000,
        "lead_ms": args.lead_ms,
        "ramp_s": args.ramp_s,
        "audio": os.path.basename(args.audio) if args.audio else "silence",
        "frames_expected": total,
        "frames_received": received,
        "frames_lost": total - received,
        "sessions_incomplete": sum(1 for s in states if not s.done.done()),
        "setup_failures": failures,
        "send_failures": feeder_errors,
        "timed_out": timed_out,
        "setup_wall_s": round(setup_wall, 3),
        "lateness": summarize_ms(recorded),
        "frames_late_40ms": late40,
        "send_lag": summarize_ms(lags),
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "cpu_share": round(cpu / wall, 4) if wall > 0 else None,
        "server_cpu_s": round(server_cpu, 3) if server_cpu is not None else None,
        "server_cpu_share": round(server_cpu / wall, 4)
        if server_cpu is not None and wall > 0
        else None,
        "server_cpu_us_per_frame": round(server_cpu / received * 1e6, 2)
        if server_cpu is not None and received
        else None,
        "steady": steady_out,
    }


SCENARIOS = {
    "flood": run_flood,
    "setup": run_setup,
    "realtime": run_realtime,
    "endlat": run_endlat,
    "capacity": run_capacity,
}


def build_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    p.add_argument("--console", required=True, help="console endpoint URL")
    p.add_argument("--ingress", required=True, help="ingress endpoint URL")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--audio", default=None, help="16 kHz 16-bit PCM file (endlat, capacity)")
    p.add_argument("--server-stats", default=None, help="the flood server's /stats URL")
    apis = ("transport_frames", "on_animation", "frames", "request")
    p.add_argument("--api", choices=apis, default=apis[0], help="our SDK: how frames arrive")
    for name, kind, default, what in (
        ("sessions", int, 50, "sessions (flood, realtime, capacity)"),
        ("frames", int, 2000, "frames per session (the server's setting)"),
        ("setups", int, 200, "measured set-ups"),
        ("warmup", int, 5, "unmeasured set-ups or requests first"),
        ("concurrency", int, 32, "sessions set up at a time"),
        ("timeout", float, 60.0, "bound on each wait for frames (s)"),
        ("requests", int, 100, "endlat: measured requests per mode"),
        ("request-chunks", int, 25, "endlat: 40 ms chunks per request"),
        ("seconds", float, 10.0, "capacity: audio per session (s)"),
        ("lead-ms", float, 60.0, "capacity: chunks sent this far ahead of playback"),
        ("ramp-s", float, 2.0, "capacity: session starts spread over this long (s)"),
        ("server-pid", int, None, "capacity: read this process's CPU time"),
    ):
        p.add_argument(f"--{name}", type=kind, default=default, help=what)
    return p


def main(
    make_adapter: Callable[[argparse.Namespace], Adapter],
    description: str,
    argv: list[str] | None = None,
) -> int:
    args = build_parser(description).parse_args(argv)
    loop_kind = install_event_loop(args.loop)
    raise_nofile_limit()

    adapter = make_adapter(args)

    async def amain() -> dict[str, Any]:
        await adapter.setup()
        try:
            return await SCENARIOS[args.scenario](adapter, args)
        finally:
            await adapter.teardown()

    try:
        result = asyncio.run(amain())
    except Exception as exc:
        traceback.print_exc()
        emit_result({"ok": False, "error": repr(exc), "scenario": args.scenario})
        return 1
    adapter_info = adapter.info()
    result.update(
        ok=True,
        scenario=args.scenario,
        loop=loop_kind,
        client=adapter_info,
        python_executable=sys.executable,
    )
    emit_result(result)
    return 0
