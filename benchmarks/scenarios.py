"""Scenarios: each starts a server, runs clients against it and returns their numbers.

A scenario is a function ``(cfg, ctx) -> dict`` registered in
:data:`SCENARIOS`; ``cfg`` is its own configuration (sizes, repeats; see
``__main__.CONFIG``), ``ctx`` the run's context (event loop, 0.1.7's
interpreter, disturbance limits). What it returns is stored as is under its
name in ``results/latest.json``; the report (``report.py``) turns it into
medians, ratios and goal verdicts. To add a measurement: write the client
side in ``clients/measure.py`` (or a new client module), a scenario here, its
summary in ``report.py`` and its text in ``report.md.tmpl``.

Every client runs in its own subprocess (``python -m benchmarks.clients.NAME``
from the repository root), so its CPU time and memory are its own. On a shared
machine, before each run the driver waits (bounded) until other processes use
at most ``disturbed_cores``; a run during which they used more is flagged
``disturbed``, repeated (bounded), and left out of the medians when an
undisturbed run of the same slot exists.
"""

from __future__ import annotations

import functools
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import log, parse_result, process_cpu_seconds
from benchmarks.servers import pinned
from benchmarks.servers.flood import FloodServer
from benchmarks.servers.local import LocalService, usable_cpus

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "tests" / "fixtures" / "speech_16000.pcm"
VENV017 = ROOT / "benchmarks" / ".venv-avatarkit017"
PEERS017 = ROOT / ".peers" / "avatarkit017"

CLIENTS = ("floor", "websockets", "avatarkit-0.1.7", "ours")
# Our SDK's other ways of delivering frames, measured in the flood only.
FLOOD_CLIENTS = (*CLIENTS, "floor-stream", "ours-on_animation", "ours-frames", "ours-request")
SDK_CLIENTS = ("avatarkit-0.1.7", "ours")
NEEDS_017 = ("flood", "setup", "realtime", "endlat", "clientcap")
MODULES = {"floor": "floor", "floor-stream": "floor_stream", "websockets": "websockets_client"}

Ctx = dict[str, Any]


def find_avatarkit017(loop: str, smoke: bool) -> dict[str, Any]:
    """An interpreter with the published avatarkit 0.1.7: ``benchmarks/.venv-avatarkit017``
    or the tests' ``.peers/avatarkit017``, with uvloop too for a full run on uvloop
    (so 0.1.7 gets the clients' loop); when neither has them, pip installs them
    into the former. Returns ``{"python": path}`` or ``{"error": ...}``."""
    code = "import avatarkit; assert avatarkit.__version__ == '0.1.7'"
    code += "; import uvloop" if loop == "uvloop" and not smoke else ""
    candidates = [VENV017 / "bin" / "python", PEERS017 / "bin" / "python"]
    for py in candidates:
        run = [str(py), "-c", code]
        if py.exists() and subprocess.run(run, capture_output=True, timeout=60).returncode == 0:
            return {"python": str(py)}
    py = candidates[0]
    log(f"installing avatarkit==0.1.7 and uvloop into {VENV017.relative_to(ROOT)} ...")
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV017)], check=True, timeout=300)
        pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        r = subprocess.run([*pip, "avatarkit==0.1.7", "uvloop"], capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": repr(exc)}
    if r.returncode != 0:
        return {"error": f"pip install failed: {r.stderr.strip()[-800:]}"}
    return {"python": str(py)}


def _env(sdk_src: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if sdk_src:  # this repository's SDK, whatever the virtualenv has installed
        env["PYTHONPATH"] = str(ROOT / "src")
    return env


def client_command(name: str, ctx: Ctx) -> tuple[list[str], dict[str, str]] | None:
    """Command line and environment of one client (None: 0.1.7 unavailable)."""
    if name in MODULES:
        return [sys.executable, "-m", f"benchmarks.clients.{MODULES[name]}"], _env(False)
    if name == "avatarkit-0.1.7":
        py = ctx.get("py017")
        return ([py, "-m", "benchmarks.clients.sdk"], _env(False)) if py else None
    api = name.partition("-")[2] or "transport_frames"
    return [sys.executable, "-m", "benchmarks.clients.sdk", "--api", api], _env(True)


def run_process(
    cmd: list[str], env: dict[str, str], timeout: float, cpu: int | None = None
) -> dict[str, Any]:
    """Run one measuring process; its result is its ``RESULT`` line."""
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=str(ROOT),
            preexec_fn=pinned(cpu),
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    result = parse_result(r.stdout)
    if result is None:
        tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
        return {"ok": False, "error": f"exit {r.returncode}: " + " | ".join(tail)}
    if r.returncode != 0:
        result["ok"] = False
    if not result.get("ok", True):
        result.setdefault("stderr_tail", (r.stderr or "").strip().splitlines()[-5:])
    result["process_wall_s"] = round(time.monotonic() - t0, 3)
    return result


def _busy_cores() -> tuple[float, float, float]:
    """(machine CPU seconds, steal seconds, this process tree's CPU seconds)."""
    with open("/proc/stat", encoding="ascii") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        own += ru.ru_utime + ru.ru_stime
    return (v[0] + v[1] + v[2]) / hz, (v[7] if len(v) > 7 else 0) / hz, own


class CpuWatch:
    """Cores used by anything but the benchmark's own processes (and steal)
    while one measuring process runs: ``result["foreign_cores"]``."""

    def __init__(self, server_pid: int | None) -> None:
        self.pid = server_pid

    def _server_cpu(self) -> float:  # a live server is not in RUSAGE_CHILDREN yet
        return (process_cpu_seconds(self.pid) or 0.0) if self.pid else 0.0

    def __enter__(self) -> CpuWatch:
        self.t0 = time.monotonic()
        self.start = (*_busy_cores(), self._server_cpu())
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.monotonic() - self.t0, 1e-6)
        end = (*_busy_cores(), self._server_cpu())
        machine, steal, own, srv = (b - a for a, b in zip(self.start, end, strict=True))
        self.result = {
            "wall_s": round(wall, 3),
            "foreign_cores": round(max(0.0, machine - own - srv) / wall, 3),
            "steal_cores": round(steal / wall, 3),
            "loadavg_1m": os.getloadavg()[0],
        }
        self.busy = self.result["foreign_cores"] + self.result["steal_cores"]


_CALIBRATION_LOOPS = 60_000


def _loop_seconds() -> float:
    t = time.perf_counter()
    total = 0
    for i in range(_CALIBRATION_LOOPS):
        total += i
    return time.perf_counter() - t


def host_speed_us(cpus: list[int] | None = None) -> float:
    """How fast the host runs us now: µs for a fixed pure-Python loop on the
    slowest of ``cpus`` (best of 3 passes on each, the driver pinned to each
    in turn; about 15 ms in all on 2 cores).

    A shared host's other guests can slow every core of this machine by
    10-30% for seconds at a time without any process here being busy or any
    steal time showing in /proc/stat (both seen on the benchmark machine);
    what a client measures then is the host's load, not the client.
    """
    cpus = cpus or usable_cpus()
    before = os.sched_getaffinity(0)
    worst = 0.0
    try:
        for cpu in cpus:
            os.sched_setaffinity(0, {cpu})
            worst = max(worst, min(_loop_seconds() for _ in range(3)))
    finally:
        os.sched_setaffinity(0, before)
    return worst * 1e6


def host_slowdown(ctx: Ctx, *speeds_us: float) -> float:
    """How much slower than the host's usual speed the slowest of ``speeds_us``
    was (0.2: 20% slower). Usual: the median of every speed measured so far
    in this run (``ctx["host_speeds_us"]``, to which these are added), not the
    fastest: this host's speed drifts by 10-20% between calm periods, and a
    run is worth repeating only when it was taken far off its usual speed."""
    seen: list[float] = ctx.setdefault("host_speeds_us", [])
    ordered = sorted(seen or speeds_us)
    usual = ordered[len(ordered) // 2]
    seen.extend(speeds_us)
    return max(speeds_us) / usual - 1.0 if usual > 0 else 0.0


def spare_s(ctx: Ctx) -> float:
    """Seconds the suite can still spend beyond its runs and end by its
    deadline: ``ctx["deadline"]`` (``time.monotonic()``) less the usual time
    of what is left (``ctx["section_end"]``: when the current scenario usually
    ends; ``ctx["after_s"]``: the usual time of the scenarios after it).
    Unbounded without a deadline."""
    deadline = ctx.get("deadline")
    if deadline is None:
        return math.inf
    now = time.monotonic()
    return float(deadline - max(now, ctx.get("section_end", now)) - ctx.get("after_s", 0.0))


def _spend(ctx: Ctx, seconds: float) -> None:
    ctx["spent_s"] = ctx.get("spent_s", 0.0) + seconds


def wait_quiet(ctx: Ctx, server_pid: int | None) -> None:
    """Before a run: wait (at most ``quiet_wait_s``, and no longer than the
    suite's :func:`spare_s`) until other processes use at most
    ``disturbed_cores`` over a tenth of a second (a quiet machine costs the
    suite that tenth per run; a longer wait is counted in ``spent_s``)."""
    start = time.monotonic()
    deadline = start + min(ctx["quiet_wait_s"], max(spare_s(ctx), 0.0))
    try:
        while ctx["quiet_wait_s"] > 0:
            with CpuWatch(server_pid) as watch:
                time.sleep(0.1)
            if watch.busy <= ctx["disturbed_cores"]:
                return
            if time.monotonic() > deadline:
                log(f"  (other processes still use {watch.busy:.2f} cores; running anyway)")
                return
    finally:
        waited = time.monotonic() - start - 0.1
        if waited > 0:
            _spend(ctx, waited)


def second_run_allowed(ctx: Ctx, took: float) -> bool:
    """Whether a count that failed by a little (:func:`borderline`) may run once
    more: only while the suite can still afford it (:func:`spare_s`; ``took``:
    what the first run took), as a repeat; otherwise the count stays failed, a
    conservative figure rather than a longer suite."""
    if spare_s(ctx) < took:
        log("  (no second run: the suite would end past its time budget)")
        return False
    _spend(ctx, took)
    return True


def measured(
    title: str, run: Callable[[], dict[str, Any]], ctx: Ctx, server_pid: int | None
) -> list[dict[str, Any]]:
    """``run()`` once, repeated while it was disturbed (at most ``max_retries``
    times per slot and ``retry_budget`` times in all, and only while the
    suite can still afford as long as the disturbed attempt took, see
    :func:`spare_s`: a noisy host makes the report less sure, never the suite
    longer than its budget); every attempt is returned, flagged. Disturbed:
    other processes used more than ``disturbed_cores``, or just before the run
    the host ran us more than ``host_slow`` slower than usual
    (:func:`host_slowdown`)."""
    attempts = []
    for attempt in range(1 + ctx["max_retries"]):
        wait_quiet(ctx, server_pid)
        slow = host_slowdown(ctx, host_speed_us())  # (after a run, our own exits skew it)
        started = time.monotonic()
        with CpuWatch(server_pid) as watch:
            res = run()
        took = time.monotonic() - started
        res["interference"] = {**watch.result, "host_slowdown": round(slow, 3)}
        busy = watch.busy > ctx["disturbed_cores"]
        res["disturbed"] = busy or slow > ctx.get("host_slow", 1.0)
        attempts.append(res)
        why = [f"others used {watch.busy:.2f} cores"] if busy else []
        if slow > ctx.get("host_slow", 1.0):
            why.append(f"the host ran us {slow:.0%} slower than usual")
        note = f" [disturbed: {'; '.join(why)}]" if why else ""
        log(f"  [{title}] {describe(res)}{note}")
        if not res["disturbed"] or res.get("available") is False:
            break
        if attempt >= ctx["max_retries"] or ctx["retry_budget"] <= 0:
            break
        if spare_s(ctx) < took:
            log("  (not repeated: the suite would end past its time budget)")
            break
        ctx["retry_budget"] -= 1
        _spend(ctx, took)
    return attempts


def run_client(
    name: str,
    args: list[str],
    server: dict[str, Any],
    ctx: Ctx,
    timeout: float,
    cpu: int | None = None,
) -> dict[str, Any]:
    cmd_env = client_command(name, ctx)
    if cmd_env is None:
        return {"ok": False, "available": False, "detail": ctx.get("py017_error", "n/a")}
    cmd = [*cmd_env[0], "--console", server["console"], "--ingress", server["ingress"],
           "--loop", ctx["loop"], *args]  # fmt: skip
    if server.get("stats"):
        cmd += ["--server-stats", server["stats"]]
    res = run_process(cmd, cmd_env[1], timeout, cpu)
    res["client_name"] = name
    return res


def describe(res: dict[str, Any]) -> str:
    """One log line for a run: its headline figures."""
    name = res.get("client_name", "")
    if res.get("available") is False or not res.get("ok", False):
        return f"{name}: FAILED or not available: {res.get('error') or res.get('detail')}"
    figures = {
        "CPU us/frame": res.get("cpu_us_per_frame"),
        "set-up p50 ms": (res.get("total") or {}).get("p50_ms"),
        "p99 ms": (res.get("delay") or res.get("lateness") or {}).get("p99_ms"),
        "end p50 ms (burst)": ((res.get("burst") or {}).get("end") or {}).get("p50_ms"),
        "lost": res.get("frames_lost"),
        "us/frame": res.get("total_us_per_frame"),
        "x real time": [r["per_frame_x_realtime"] for r in res.get("rates", [])] or None,
    }
    return f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items() if v is not None)


def rotated(items: Iterable[str], r: int) -> list[str]:
    """The clients in a different order each repeat (no fixed position)."""
    seq = list(items)
    k = r % len(seq)
    return seq[k:] + seq[:k]


def matrix(
    title: str,
    server: dict[str, Any],
    args: list[str],
    clients: Iterable[str],
    ctx: Ctx,
    repeats: int,
    timeout: float,
    cpu: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every client ``repeats`` times against one running server."""
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}

    def one(name: str, r: int) -> None:
        run = functools.partial(run_client, name, args, server, ctx, timeout, cpu)
        for res in measured(f"{title} {r + 1}/{repeats}", run, ctx, server.get("pid")):
            res["repeat"] = r
            runs[name].append(res)

    for r in range(repeats):
        names = [n for n in rotated(runs, r) if not any(x.get("available") is False
                                                         for x in runs[n])]  # fmt: skip
        if ctx.get("parallel"):  # the smoke run: every client at once, figures meaningless
            cpu = None  # no preexec_fn (pinning) while other threads run
            with ThreadPoolExecutor(len(names)) as pool:
                list(pool.map(one, names, [r] * len(names)))
        else:
            for name in names:
                one(name, r)
    return runs


def _cores() -> tuple[int | None, int | None]:
    """(service core, client core): the first two usable CPUs, or no pinning."""
    cpus = usable_cpus()
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


# --------------------------------------------------------------------------
# the scenarios
# --------------------------------------------------------------------------


def flood(cfg: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """Client CPU per received frame: sessions x frames flooded at once."""
    n, frames = str(cfg["sessions"]), str(cfg["frames"])
    with FloodServer("--mode", "flood", "--frames", frames) as server:
        return matrix(
            "flood",
            server,
            ["--scenario", "flood", "--sessions", n, "--frames", frames],
            cfg.get("clients", FLOOD_CLIENTS),
            ctx,
            cfg["repeats"],
            cfg["timeout"],
        )


def setup(cfg: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """Sequential session set-ups: token call + WebSocket + confirm."""
    args = ["--scenario", "setup", "--setups", str(cfg["setups"]), "--warmup", str(cfg["warmup"])]
    with FloodServer("--mode", "flood", "--frames", "10") as server:
        return matrix("setup", server, args, CLIENTS, ctx, cfg["repeats"], cfg["timeout"])


def realtime(cfg: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """Many sessions at real-time pace: delay, frames lost, memory per session."""
    out = {}
    frames = str(cfg["frames"])
    for n in cfg["sessions"]:
        args = ["--scenario", "realtime", "--sessions", str(n), "--frames", frames, "--timeout",
                "120"]  # fmt: skip
        with FloodServer("--mode", "realtime", "--frames", frames) as server:
            out[str(n)] = matrix(
                f"realtime {n}", server, args, CLIENTS, ctx, cfg["repeats"], cfg["timeout"]
            )
    return out


def endlat(cfg: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """Last audio chunk -> ``end`` frame on the local service (fast pace)."""
    srv_cpu, cli_cpu = _cores()
    args = ["--scenario", "endlat", "--audio", str(SPEECH), "--requests", str(cfg["requests"]),
            "--warmup", str(cfg["warmup"]), "--request-chunks", str(cfg["request_chunks"]),
            "--timeout", "30"]  # fmt: skip
    with LocalService("fast", srv_cpu) as svc:
        runs = matrix(
            "end latency",
            {**svc, "stats": None},
            args,
            SDK_CLIENTS,
            ctx,
            cfg["repeats"],
            300,
            cli_cpu,
        )
    return {"service": svc, "client_cpu": cli_cpu, "runs": runs}


def sustained(res: dict[str, Any], bound_ms: float) -> bool:
    """A client-capacity trial holds: it ran, every frame arrived, p99 delay < bound."""
    p99 = (res.get("delay") or res.get("lateness") or {}).get("p99_ms")
    return bool(
        res.get("ok")
        and not res.get("timed_out")
        and res.get("frames_lost") == 0
        and not res.get("setup_failures")
        and not res.get("send_failures")
        and p99 is not None
        and p99 < bound_ms
    )


def borderline(res: dict[str, Any], bound_ms: float, factor: float = 5.0) -> bool:
    """A failed capacity trial worth one more run: it completed, every frame
    arrived and its p99 (a client's ``delay``, the service's ``lateness``) is
    under ``factor`` x the bound. On a shared
    machine one stall of a few tens of milliseconds (another process, the
    kernel) fails a count that holds on a second run, while a client past its
    capacity falls behind for good (its p99 grows to hundreds of milliseconds)
    or fails again."""
    p99 = (res.get("delay") or res.get("lateness") or {}).get("p99_ms")
    return bool(
        res.get("ok")
        and not res.get("timed_out")
        and res.get("frames_lost") == 0
        and p99 is not None
        and bound_ms <= p99 < factor * bound_ms
    )


def search(
    trial: Callable[[int], bool], start: int, most: int, resolution: float
) -> tuple[int, int]:
    """The largest count for which ``trial`` holds: doubling from ``start``
    until a count fails (or ``most`` holds), then bisection until the gap
    between the last count that held and the first that failed is at most
    ``resolution`` of the former. Returns (held, failed); failed is ``most + 1``
    when every tried count held, held is 0 when even the smallest failed."""
    held, failed, n = 0, most + 1, min(start, most)
    while n < failed:
        if trial(n):
            held = n
            if n == most:
                break
            n = min(n * 2, most)
        else:
            failed = n
    while failed <= most and failed - held > max(resolution * held, 1):
        mid = (held + failed) // 2
        if trial(mid):
            held = mid
        else:
            failed = mid
    return held, failed


def clientcap(cfg: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """Real-time sessions one client core sustains: the flood server (real-time
    mode) pinned to one core, each client pinned to the other; a search over
    session counts from the client's own start (``cfg["start"]``: a count, or
    a count per client), a fresh server per trial; a trial that failed by a
    little (:func:`borderline`) runs once more and its count holds if the second
    run does."""
    parallel = bool(ctx.get("parallel"))  # the smoke run: clients at once, no pinning
    srv_cpu, cli_cpu = (None, None) if parallel else _cores()
    frames = str(cfg["frames"])
    out: dict[str, Any] = {"server_cpu": srv_cpu, "client_cpu": cli_cpu, "clients": {},
                           "bound_ms": cfg["bound_ms"], "frames": cfg["frames"]}  # fmt: skip

    def one_client(name: str) -> None:
        runs: list[dict[str, Any]] = []

        def run_once(n: int, name: str = name) -> dict[str, Any]:
            args = ["--scenario", "realtime", "--sessions", str(n), "--frames", frames,
                    "--timeout", "60"]  # fmt: skip
            with FloodServer("--mode", "realtime", "--frames", frames, cpu=srv_cpu) as server:
                run = functools.partial(run_client, name, args, server, ctx, 180, cli_cpu)
                res = measured(f"client capacity {name} {n}", run, ctx, server.get("pid"))[-1]
            res["sessions"] = n
            res["sustained"] = sustained(res, cfg["bound_ms"])
            return res

        def trial(n: int, runs: list[dict[str, Any]] = runs) -> bool:
            started = time.monotonic()
            runs.append(run_once(n))
            if (
                not runs[-1]["sustained"]
                and borderline(runs[-1], cfg["bound_ms"])
                and second_run_allowed(ctx, time.monotonic() - started)
            ):
                runs.append({**run_once(n), "second_run": True})  # the count holds if it does
            return bool(runs[-1]["sustained"]) and runs[-1].get("available") is not False

        start = cfg["start"][name] if isinstance(cfg["start"], dict) else cfg["start"]
        held, failed = search(trial, start, cfg["most"], cfg["resolution"])
        available = not any(r.get("available") is False for r in runs)
        out["clients"][name] = {"capacity": held, "failed_at": failed, "runs": runs,
                                "available": available, "start": start}  # fmt: skip

    if parallel:
        with ThreadPoolExecutor(len(cfg["clients"])) as pool:
            list(pool.map(one_client, cfg["clients"]))
    else:
        for name in cfg["clients"]:
            one_client(name)
    return out


def tts(cfg: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """TTS path: client CPU per audio second, ``stream()`` resampling 24 kHz
    next to ``send_audio()`` of pre-cut 16 kHz chunks (local service, fast)."""
    srv_cpu, cli_cpu = _cores()
    with LocalService("fast", srv_cpu) as svc:
        cmd = [sys.executable, "-m", "benchmarks.clients.tts", "--console", svc["console"],
               "--ingress", svc["ingress"], "--loop", ctx["loop"], *cfg["argv"]]  # fmt: skip
        run = functools.partial(run_process, cmd, _env(True), 300, cli_cpu)
        res = measured("tts", run, ctx, svc["pid"])[-1]
    return {**res, "client_name": "ours", "client_cpu": cli_cpu}


def _micro(which: str, argv: list[str], cpu: int | None, ctx: Ctx) -> dict[str, Any]:
    """One ``benchmarks.micro`` run (repeated when disturbed; the last attempt kept)."""
    cmd = [sys.executable, "-m", "benchmarks.micro", which, *argv]
    run = functools.partial(run_process, cmd, _env(True), 600, cpu)
    return {**measured(which, run, ctx, None)[-1], "client_name": which}


def anim(cfg: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """The local service's animation analysis per frame, alone (service core)."""
    return {**_micro("anim", cfg["argv"], _cores()[0], ctx), "cpu": _cores()[0]}


def opus(cfg: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """The built-in Ogg Opus encoder against PyAV's libopus called directly."""
    return _micro("opus", cfg["argv"], None, ctx)


from benchmarks.service_capacity import service  # noqa: E402  (it imports this module lazily)

SCENARIOS: dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]] = {
    "flood": flood,
    "setup": setup,
    "realtime": realtime,
    "endlat": endlat,
    "anim": anim,
    "opus": opus,
    "clientcap": clientcap,
    "tts": tts,
    "service": service,  # benchmarks/service_capacity.py: 1 worker vs N workers
}
