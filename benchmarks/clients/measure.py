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
due time, frames lost, memory per session; also each trial of the client
capacity search), against the local service ``endlat`` (last audio chunk to
the ``end`` frame); each function's code is the method, and BENCHMARKS.md
(``benchmarks/report.md.tmpl``) describes it in words. Real-time audio goes
out through :func:`paced_sends`, one task and one timer for every session.

Waits for frames are bounded by ``--timeout``; the set-up calls by each
client's own timeouts; the driver bounds each whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import json
import sys
import time
import traceback
import urllib.request
from array import array
from collections.abc import Callable
from typing import Any, Protocol

from benchmarks.common import (
    CHUNK_BYTES,
    FRAME_PERIOD,
    cpu_seconds,
    emit_result,
    frame_times,
    install_event_loop,
    load_chunks,
    log,
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


# Audio sends may start up to this long before their due time: the event
# loop's timers have a resolution of about a millisecond (uvloop rounds a
# delay to whole milliseconds), and waiting out the remainder would spin.
SEND_EARLY = 0.0005


class _Resume:
    """Awaitable: the rest of a coroutine whose first step already ran.

    :func:`paced_sends` runs each ``send_audio`` coroutine's first step itself;
    when that step suspends (the client is waiting on the socket's buffer),
    the rest runs in a task of its own through this, so one blocked send never
    delays the other sessions' sends."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Any:
        coro, step = self.coro, self.first
        while True:
            try:
                value = yield step
            except BaseException as exc:  # cancellation and the like: passed on
                try:
                    step = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    step = coro.send(value)
                except StopIteration as stop:
                    return stop.value


async def paced_sends(
    adapter: Adapter,
    starts: list[tuple[float, int, Any]],
    frames: int,
    chunk: bytes,
    send_lag: array[float],
) -> tuple[int, int]:
    """Every session's audio at real-time pace from one task with one timer:
    a heap of (due time, session index, handle) for ``starts``; each wake-up
    sends every chunk that is due (``frames`` chunks per session, the last
    with ``end``), records how late it went out in ``send_lag[i * frames +
    k]``, and sleeps until the next one. The same for every client, so no
    client pays for a task and a timer per session that the others do not.
    A ``send_audio`` that completes without suspending (every client here,
    normally) costs no task; one that suspends continues in a task of its own.
    Returns (sessions whose sends failed, sends that suspended)."""
    heap = [(due, i, 0, h) for due, i, h in starts]
    heapq.heapify(heap)
    pending: set[asyncio.Future[Any]] = set()
    failures = blocked = 0
    monotonic, replace, pop = time.monotonic, heapq.heapreplace, heapq.heappop

    def failed(exc: BaseException) -> None:
        nonlocal failures
        failures += 1
        if failures <= 3:
            log(f"{adapter.name}: send failed: {exc!r}")

    while heap:
        now = monotonic()
        while heap and heap[0][0] - now <= SEND_EARLY:
            due, i, k, h = heap[0]
            send_lag[i * frames + k] = now - due
            end = k == frames - 1
            coro = adapter.send_audio(h, chunk, end)
            try:
                step = coro.send(None)
            except StopIteration:
                pass
            except Exception as exc:
                failed(exc)
                pop(heap)  # this session sends nothing more
                now = monotonic()
                continue
            else:
                blocked += 1
                fut = asyncio.ensure_future(_Resume(coro, step))
                pending.add(fut)
                fut.add_done_callback(pending.discard)
            if end:
                pop(heap)
            else:
                replace(heap, (due + FRAME_PERIOD, i, k + 1, h))
            now = monotonic()
        if heap:
            await asyncio.sleep(max(0.0, heap[0][0] - monotonic()))
    for res in await asyncio.gather(*pending, return_exceptions=True):
        if isinstance(res, BaseException):
            failed(res)
    return failures, blocked


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
    pauses = _GcPauses()
    for i in range(args.warmup + args.setups):
        if i == max(0, args.warmup - 3):
            # What the imports and the warm-up left for the collector is not a
            # set-up's cost: collect it before the measured set-ups, a few
            # warm-ups ahead (a full collection empties the interpreter's free
            # lists, which made the next set-up ~0.5 ms slower).
            gc.collect()
        if i == args.warmup:
            pauses.start()
            _server_stats(args.server_stats, reset=True)
        pauses.setup = i - args.warmup
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
    pauses.stop()
    server = _server_stats(args.server_stats, reset=False)
    n = len(totals)
    if server and n:
        server["cpu_ms_per_setup"] = round(server["cpu_s"] / (n + failures) * 1e3, 4)
    out: dict[str, Any] = {}
    if args.samples:  # each set-up's times in order (ms), to find where the tail comes from
        out["samples_ms"] = {
            name: [round(v * 1e3, 4) for v in values]
            for name, values in (("total", totals), ("token", tokens), ("websocket", sockets))
        }
        out["gc_pauses"] = pauses.pauses
    return {
        **out,
        "server": server,
        "setups": args.setups,
        "measured": n,
        "failures": failures,
        "total": summarize_ms(totals),
        "token": summarize_ms(tokens),
        "websocket": summarize_ms(sockets),
        "cpu_ms_per_setup": round(cpu / n * 1e3, 4) if n else None,
        "gc": pauses.summary(),
    }


class _GcPauses:
    """The cyclic garbage collector's pauses in a measured window (a
    ``gc.callbacks`` hook): (set-up index, generation, ms) each, so that a slow
    set-up (or a late frame) can be matched with a collection."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, int, float]] = []
        self.setup = 0
        self._t0 = 0.0

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            ms = round((time.perf_counter() - self._t0) * 1e3, 4)
            self.pauses.append((self.setup, info["generation"], ms))

    def start(self) -> None:
        gc.callbacks.append(self._hook)

    def stop(self) -> None:
        if self._hook in gc.callbacks:
            gc.callbacks.remove(self._hook)

    def summary(self) -> dict[str, Any]:
        """Per generation: collections, their total and longest pause (ms)."""
        out: dict[str, Any] = {}
        for gen in (0, 1, 2):
            ms = [p[2] for p in self.pauses if p[1] == gen]
            out[str(gen)] = {"n": len(ms), "total_ms": round(sum(ms), 3),
                             "max_ms": max(ms, default=0.0)}  # fmt: skip
        return out


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
    pauses = _GcPauses()  # the collector's pauses in the measured window (gc in the result)
    pauses.start()
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    sampler_task = asyncio.create_task(sampler())
    # Start times spread evenly over one 40 ms period.
    starts = [(start + FRAME_PERIOD * i / n_sessions, i, h) for i, h, _ in live]
    feeder_errors, blocked = await paced_sends(adapter, starts, frames, chunk, send_lag)
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(*(s.done for _, _, s in live)), args.timeout)
    except asyncio.TimeoutError:
        timed_out = True
    t1 = time.monotonic()
    cpu1 = cpu_seconds()
    pauses.stop()
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

    def steady(values: array[float]) -> list[float]:
        """Frames 25 on (a second into each session): without the start, where
        every session's first frames arrive within one 40 ms period."""
        out: list[float] = []
        for i, s in enumerate(states):
            out.extend(values[i * frames + 25 : i * frames + min(s.n, frames)])
        return out

    def last(values: array[float]) -> list[float]:
        """Each session's end frame (where a request's end costs show)."""
        return [values[i * frames + frames - 1] for i, s in enumerate(states) if s.n >= frames]

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
        "sends_blocked": blocked,
        "timed_out": timed_out,
        "setup_wall_s": round(setup_wall, 3),
        "delay": summarize_ms(recorded(delays)),
        "delay_after_1s": summarize_ms(steady(delays)),
        "delay_end_frame": summarize_ms(last(delays)),
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
        "gc": pauses.summary(),
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


SCENARIOS = {
    "flood": run_flood,
    "setup": run_setup,
    "realtime": run_realtime,
    "endlat": run_endlat,
}


def build_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    p.add_argument("--console", required=True, help="console endpoint URL")
    p.add_argument("--ingress", required=True, help="ingress endpoint URL")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--audio", default=None, help="16 kHz 16-bit PCM file (endlat)")
    p.add_argument("--server-stats", default=None, help="the flood server's /stats URL")
    p.add_argument("--samples", action="store_true", help="setup: every set-up's times too")
    apis = ("transport_frames", "on_animation", "frames", "request")
    p.add_argument("--api", choices=apis, default=apis[0], help="our SDK: how frames arrive")
    for name, kind, default, what in (
        ("sessions", int, 50, "sessions (flood, realtime)"),
        ("frames", int, 2000, "frames per session (the server's setting)"),
        ("setups", int, 200, "measured set-ups"),
        ("warmup", int, 5, "unmeasured set-ups or requests first"),
        ("concurrency", int, 32, "sessions set up at a time"),
        ("timeout", float, 60.0, "bound on each wait for frames (s)"),
        ("requests", int, 100, "endlat: measured requests per mode"),
        ("request-chunks", int, 25, "endlat: 40 ms chunks per request"),
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
