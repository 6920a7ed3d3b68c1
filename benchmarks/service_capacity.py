"""Local service capacity, one worker and N workers: ``python -m benchmarks --only service``.

How many real-time sessions ``avatarkit serve`` sustains (p99 frame lateness
under 40 ms, no frame lost), with ``--workers 1`` pinned to one core and with
``--workers N`` on the machine's cores, found by trying growing session counts
until one fails. The load generator is this module run as a process
(``python -m benchmarks.service_capacity loadgen ...``), the cheapest client
we have: picows connections, one timer for every session's audio (40 ms
chunks of the 16 kHz speech fixture, each sent ``lead`` ahead of its playback,
as the ``capacity`` scenario does), frames recognised by their envelope's
first bytes, lateness = arrival - (first chunk's send + k x 40 ms). With one
worker it runs on the other core; with N workers it shares the cores (so the
N-worker figure is a lower bound). ``section(results)`` is the report's text.

Standard library + picows + the repository's wire module (no ``avatarkit``
import in the load generator: it measures the service, not the SDK).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import os
import re
import sys
import time
from array import array
from typing import Any

from benchmarks.common import (
    CHUNK_MS,
    FRAME_PERIOD,
    cpu_seconds,
    emit_result,
    install_event_loop,
    load_chunks,
    log,
    process_cpu_split,
    raise_nofile_limit,
    summarize_ms,
)
from benchmarks.servers.local import LocalService, usable_cpus

LATE_MS = 40.0
_WORKER = re.compile(r"^\s*worker (\d+):\s+pid (\d+)")
_ANIMATION_PREFIX = b"\x08\x05\x32"  # Message{type=5 (animation), field 6 ...}
_MIN_SLEEP = 0.001  # the load generator's shortest sleep (see _loadgen)


class ServiceWorkers(LocalService):
    """``avatarkit serve --workers N`` (the local service launcher, plus worker pids)."""

    def __init__(self, workers: int, cpu: int | None) -> None:
        super().__init__("realtime", cpu)
        self.cmd += ["--workers", str(workers)]
        self.info["command"] += f" --workers {workers}"
        self.info["worker_pids"] = []

    def ready(self, line: str) -> bool:
        super().ready(line)
        m = _WORKER.match(line)
        if m:
            self.info["worker_pids"].append(int(m.group(2)))
        return line.startswith("Ctrl+C")


# --------------------------------------------------------------------------
# the load generator (its own process)
# --------------------------------------------------------------------------


async def _loadgen(args: argparse.Namespace) -> dict[str, Any]:
    import picows
    from picows import WSListener, WSMsgType, ws_connect

    from benchmarks.clients.bare import CONFIRM, TokenClient, audio_bytes, auth_headers, pb, ws_url

    binary = WSMsgType.BINARY
    loop = asyncio.get_running_loop()
    n, n_chunks = args.sessions, max(2, round(args.seconds * 1000 / CHUNK_MS))
    chunks = load_chunks(args.audio)
    msgs = [audio_bytes(c, False) for c in chunks]
    last_msgs = [audio_bytes(c, True) for c in chunks]
    lateness = array("d", bytes(8 * n * n_chunks))
    lags = array("d", bytes(8 * n * n_chunks))
    got = [0] * n
    first = [0.0] * n
    done = loop.create_future()
    remaining = [n]

    class Listener(WSListener):
        def __init__(self, i: int, confirmed: asyncio.Future[None]) -> None:
            self.i, self.confirmed = i, confirmed

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != binary:
                if frame.msg_type == WSMsgType.CLOSE:
                    transport.disconnect()
                return
            now = time.monotonic()
            i = self.i
            if frame.get_payload_as_memoryview()[:3] == _ANIMATION_PREFIX:
                k = got[i]
                if k < n_chunks:
                    lateness[i * n_chunks + k] = now - (first[i] + k * FRAME_PERIOD)
                got[i] = k + 1
                if k + 1 == n_chunks:
                    remaining[0] -= 1
                    if not remaining[0] and not done.done():
                        done.set_result(None)
                return
            msg = pb.Message()
            msg.ParseFromString(frame.get_payload_as_bytes())
            if msg.type == CONFIRM and not self.confirmed.done():
                self.confirmed.set_result(None)

        def on_ws_disconnected(self, transport: Any) -> None:
            if not self.confirmed.done():
                self.confirmed.set_exception(ConnectionError("disconnected before confirm"))

    tokens = TokenClient(args.console)
    await tokens.start()
    url = ws_url(args.ingress)
    configure = pb.Message(type=pb.MESSAGE_CLIENT_CONFIGURE_SESSION)
    configure.client_configure_session.sample_rate = 16000
    configure_bytes = configure.SerializeToString()
    sem = asyncio.Semaphore(32)

    async def open_one(i: int) -> Any:
        async with sem:
            token = await tokens.token()
            confirmed: asyncio.Future[None] = loop.create_future()
            transport, _ = await ws_connect(
                lambda: Listener(i, confirmed), url, extra_headers=auth_headers(token)
            )
            transport.send(binary, configure_bytes)
            await asyncio.wait_for(confirmed, 20)
            return transport

    t_setup = time.monotonic()
    transports = await asyncio.gather(*(open_one(i) for i in range(n)))
    setup_s = time.monotonic() - t_setup
    await tokens.stop()
    # One timer for every session: a heap of (send time, session, chunk).
    lead = args.lead_ms / 1000.0
    start = time.monotonic() + 0.3
    ramp = round(args.ramp_s / FRAME_PERIOD)
    heap = []
    for i in range(n):
        base = start + FRAME_PERIOD * (i * ramp // n + i / n)
        heap.append((base, base, i, 0))
    heapq.heapify(heap)
    offsets = [(i * 53) % len(chunks) for i in range(n)]
    cpu0, t0 = cpu_seconds(), time.monotonic()
    srv0 = [process_cpu_split(p) or (0.0, 0.0) for p in args.server_pid]
    while heap:
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            due, base, i, k = heapq.heappop(heap)
            if k == 0:
                first[i] = now
            lags[i * n_chunks + k] = now - due
            c = (offsets[i] + k) % len(chunks)
            transports[i].send(binary, last_msgs[c] if k == n_chunks - 1 else msgs[c])
            if k + 1 < n_chunks:
                when = max(base, base + (k + 1) * FRAME_PERIOD - lead)
                heapq.heappush(heap, (when, base, i, k + 1))
        if heap:
            # At least 1 ms: uvloop rounds a timer to whole milliseconds, so a
            # shorter sleep returns at once and the loop would spin (it did:
            # 78% of a core at 300 sessions, most of it polling the clock).
            await asyncio.sleep(min(max(heap[0][0] - time.monotonic(), _MIN_SLEEP), 0.002))
    with contextlib.suppress(asyncio.TimeoutError):  # what did not arrive counts as lost
        await asyncio.wait_for(done, args.timeout)
    t1, cpu1 = time.monotonic(), cpu_seconds()
    srv1 = [process_cpu_split(p) or (0.0, 0.0) for p in args.server_pid]
    for tr in transports:
        tr.disconnect()
    received = sum(min(g, n_chunks) for g in got)
    recorded = [v for i in range(n) for v in lateness[i * n_chunks : i * n_chunks + got[i]]]
    srv_sys = sum(b[1] - a[1] for a, b in zip(srv0, srv1, strict=True))
    srv_cpu = sum(b[0] - a[0] for a, b in zip(srv0, srv1, strict=True)) + srv_sys
    wall = t1 - t0
    return {
        "sessions": n,
        "frames_expected": n * n_chunks,
        "frames_received": received,
        "frames_lost": n * n_chunks - received,
        "frames_late_40ms": sum(1 for v in recorded if v >= LATE_MS / 1000),
        "lateness": summarize_ms(recorded),
        "send_lag": summarize_ms(lags.tolist()),
        "setup_s": round(setup_s, 3),
        "wall_s": round(wall, 3),
        "client_cpu_share": round((cpu1 - cpu0) / wall, 4),
        "server_cpu_share": round(srv_cpu / wall, 4),
        "server_cpu_us_per_frame": round(srv_cpu / received * 1e6, 2) if received else None,
        # the kernel's part (system calls: on loopback a send also does the
        # receiver's TCP work), the service's own code being the rest
        "server_sys_us_per_frame": round(srv_sys / received * 1e6, 2) if received else None,
        "picows": getattr(picows, "__version__", "?"),
    }


def loadgen_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.service_capacity loadgen")
    p.add_argument("--console", required=True)
    p.add_argument("--ingress", required=True)
    p.add_argument("--sessions", type=int, required=True)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--ramp-s", type=float, default=2.0)
    p.add_argument("--lead-ms", type=float, default=60.0)
    p.add_argument("--audio", default=None)
    p.add_argument("--server-pid", type=int, action="append", default=[])
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--loop", default="uvloop")
    args = p.parse_args(argv)
    install_event_loop(args.loop)
    raise_nofile_limit()
    try:
        result = asyncio.run(_loadgen(args))
    except Exception as exc:
        emit_result({"ok": False, "error": repr(exc)})
        return 1
    result["ok"] = True
    emit_result(result)
    return 0


# --------------------------------------------------------------------------
# the scenario (driver side)
# --------------------------------------------------------------------------


def borderline(res: dict[str, Any], factor: float = 5.0) -> bool:
    """A failed count worth one more run: the client-capacity search's rule
    (:func:`benchmarks.scenarios.borderline`) with the service's 40 ms bound
    (past its capacity the service falls behind for good: hundreds of
    milliseconds, or frames lost)."""
    from benchmarks.scenarios import borderline as trial_borderline

    return trial_borderline(res, LATE_MS, factor)


def sustained(res: dict[str, Any]) -> bool:
    p99 = (res.get("lateness") or {}).get("p99_ms")
    return bool(res.get("ok")) and res.get("frames_lost") == 0 and p99 is not None and p99 < LATE_MS


def service(cfg: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Real-time sessions ``avatarkit serve`` sustains with 1 and with N workers."""
    from benchmarks.scenarios import SPEECH, measured, run_process, second_run_allowed

    cpus = usable_cpus()
    out: dict[str, Any] = {"cpus": len(cpus), "workers": {}}
    for workers, counts in cfg["plan"]:
        one = workers == 1 and len(cpus) >= 2
        srv_cpu, cli_cpu = (cpus[0], cpus[1]) if one else (None, None)
        rows: list[dict[str, Any]] = []
        for n in counts:

            def run(
                n: int = n, workers: int = workers, srv_cpu: int | None = srv_cpu,
                cli_cpu: int | None = cli_cpu,
            ) -> dict[str, Any]:  # fmt: skip
                with ServiceWorkers(workers, srv_cpu) as svc:
                    cmd = [sys.executable, "-m", "benchmarks.service_capacity", "loadgen",
                           "--console", svc["console"], "--ingress", svc["ingress"],
                           "--sessions", str(n), "--seconds", str(cfg["seconds"]),
                           "--ramp-s", str(cfg["ramp_s"]), "--audio", str(SPEECH),
                           "--loop", ctx["loop"]]  # fmt: skip
                    for pid in svc["worker_pids"] or [svc["pid"]]:  # 1 worker: the service
                        cmd += ["--server-pid", str(pid)]
                    res = run_process(cmd, dict(os.environ), cfg["seconds"] + 120, cli_cpu)
                    res["client_name"] = f"{workers} worker(s), {n} sessions"
                    return res

            started = time.monotonic()
            attempts = measured(f"service {workers}w {n}", run, ctx, None)
            res = attempts[-1]
            res["sustained"] = sustained(res)
            rows.append(res)
            if (
                not res["sustained"]
                and borderline(res)
                and not ctx.get("parallel")
                and second_run_allowed(ctx, (time.monotonic() - started) / len(attempts))
            ):
                # As in the client-capacity search: one stall of a shared host fails
                # a count that holds on a second run; past capacity it fails again.
                res = {**measured(f"service {workers}w {n} again", run, ctx, None)[-1],
                       "second_run": True}  # fmt: skip
                res["sustained"] = sustained(res)
                rows.append(res)
            if not res["sustained"]:
                break
        ok = [r["sessions"] for r in rows if r.get("sustained")]
        out["workers"][str(workers)] = {
            "pinned": one,
            "rows": rows,
            "capacity": max(ok) if ok else 0,
        }
    caps = {int(w): v["capacity"] for w, v in out["workers"].items()}
    top = max(caps, default=1)
    if caps.get(1) and top > 1 and caps[top]:  # none sustained: not measured, not 0x
        out["scaling"] = round(caps[top] / caps[1], 3)
    estimate = cpu_scaling(out["workers"])
    if estimate is not None:
        out["cpu_scaling"] = estimate
    return out


def cpu_scaling(workers: dict[str, Any]) -> dict[str, Any] | None:
    """What N workers would sustain on N cores of their own, x one worker, if
    CPU were the only limit, from CPU time per frame: one worker at ``S``
    sessions against N workers at ``N x S`` (each worker then has ``S``
    sessions, as the lone one did): ``N x (1 worker's µs per frame) / (N
    workers' µs per frame, all workers together)``, at the largest such pair
    measured (``None`` when there is none). The load generator shares the
    cores with N workers here, so their capacity cannot be measured directly;
    their CPU time per frame can."""
    if "1" not in workers:
        return None
    one = {r["sessions"]: r for r in workers["1"]["rows"] if r.get("server_cpu_us_per_frame")}
    best: dict[str, Any] | None = None
    for w, v in workers.items():
        n = int(w)
        if n < 2:
            continue
        for r in v["rows"]:
            us = r.get("server_cpu_us_per_frame")
            total = r.get("sessions") or 0
            base = one.get(total // n) if total % n == 0 else None
            if base is None or not us:
                continue
            if best is None or total >= best["sessions"]:
                us1 = base["server_cpu_us_per_frame"]
                best = {
                    "workers": n,
                    "sessions": total,
                    "sessions_1": total // n,
                    "us_per_frame_1": us1,
                    "us_per_frame_n": us,
                    "estimate": round(n * us1 / us, 3),
                }
    return best


def _kernel(r: dict[str, Any]) -> str:
    """The kernel's µs per frame, with its share of the service's (``n/a``
    for a results file from before it was measured)."""
    sys_us, all_us = r.get("server_sys_us_per_frame"), r.get("server_cpu_us_per_frame")
    if sys_us is None or not all_us:
        return "n/a"
    return f"{sys_us} ({sys_us / all_us:.0%})"


def _row(workers: str, r: dict[str, Any]) -> str:
    lat = r.get("lateness") or {}
    inter = r.get("interference") or {}
    return (
        f"| {workers} | {r.get('sessions')} | {r.get('server_cpu_share', 0):.0%} | "
        f"{r.get('server_cpu_us_per_frame')} | {_kernel(r)} | {lat.get('p50_ms', 0):.2f} / "
        f"{lat.get('p99_ms', 0):.2f} / {lat.get('max_ms', 0):.2f} | "
        f"{r.get('frames_lost')} / {r.get('frames_expected')} | "
        f"{r.get('client_cpu_share', 0):.0%} | "
        f"{(r.get('send_lag') or {}).get('p99_ms', 0):.2f} | {inter.get('foreign_cores', 0):.2f} | "
        f"{'yes' if r.get('sustained') else '**no**'}"
        f"{' (second run)' if r.get('second_run') else ''} |"
    )


def section(res: dict[str, Any] | None) -> str:
    """The report's table for this scenario (``n/a`` text when not measured)."""
    if not res or not res.get("workers"):
        return "Not measured in this results file (`python -m benchmarks --only service`)."
    lines = [
        "| workers | sessions | service CPU (all workers) | service µs / frame | "
        "of which the kernel's | "
        "lateness p50 / p99 / max (ms) | frames lost | load generator CPU | "
        "load generator send lag p99 (ms) | other processes (cores) | sustained |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for w, v in sorted(res["workers"].items(), key=lambda kv: int(kv[0])):
        lines += [_row(w, r) for r in v["rows"] if r.get("ok")]

    def cap(v: dict[str, Any]) -> str:
        if v["capacity"]:
            return f"**{v['capacity']} sessions**"
        return f"**fewer than {min(r['sessions'] for r in v['rows'])}** (the fewest tried)"

    caps = ", ".join(
        f"{w} worker(s): {cap(v)}"
        + (" (service pinned to one core, load generator on the other)" if v["pinned"] else "")
        for w, v in sorted(res["workers"].items(), key=lambda kv: int(kv[0]))
    )
    scaling = res.get("scaling")
    tail = f"; scaling {scaling:.2f}x" if scaling else ""
    text = "\n".join(lines) + f"\n\nCapacity: {caps}{tail} ({res['cpus']} cores)."
    est = res.get("cpu_scaling")
    if est:
        text += (
            f" CPU-bound scaling estimate: {est['workers']} workers at {est['sessions']}"
            f" sessions against 1 worker at {est['sessions_1']}: {est['workers']} x"
            f" {est['us_per_frame_1']} µs / {est['us_per_frame_n']} µs per frame"
            f" = **{est['estimate']:.2f}x** one worker (see above for what it shows)."
        )
    rows = [r for v in res["workers"].values() for r in v["rows"]]
    if any(r.get("disturbed") for r in rows):
        text += (
            " **Disturbed run**: other programs used more than the allowed share of the"
            " cores during some of these runs (column *other processes*), so the service"
            " did not have the cores it was given and these capacities measure the"
            " machine's load as much as the service; rerun on a quiet machine."
        )
    return text


if __name__ == "__main__":
    if sys.argv[1:2] == ["loadgen"]:
        sys.exit(loadgen_main(sys.argv[2:]))
    log("usage: python -m benchmarks.service_capacity loadgen --help")
    sys.exit(2)
