"""Run every benchmark and regenerate the report: ``python -m benchmarks``.

From the repository root:

    python -m benchmarks            # full run (~7 min on 2 cores), writes
                                    # benchmarks/results/latest.json,
                                    # benchmarks/results/benchmarks.png, BENCHMARKS.md
    python -m benchmarks --smoke    # every script in a tiny configuration (< 60 s),
                                    # writes under benchmarks/results/raw/smoke/

Each client runs in its own subprocess against a flood server in another
process, all on 127.0.0.1. Clients: the floor (bare picows + one parse), a
bare ``websockets`` client, the published avatarkit 0.1.7 (installed here into
``benchmarks/.venv-avatarkit017``) and this repository's SDK (``src/``), the
last two through the same runner script; our SDK also through its
``on_animation`` callback and its ``session.frames()`` iterator. Against the
local avatar service (``avatarkit serve`` in its own process, pinned to one
core; the client on the other): time from the last audio chunk to the ``end``
frame (fast pace) and the service's capacity in real-time sessions; the
animation analysis alone by ``bench_animation.py``. Nothing asserts on time:
the command prints figures and writes them with each goal's PASS/MISS.

Running a subset (``--only``) keeps the other sections of the existing
``latest.json`` (their run date is shown in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from _common import log, machine_info, parse_result  # noqa: E402
from local_service import LocalService, pinned, usable_cpus  # noqa: E402

VENV017 = BENCH / ".venv-avatarkit017"
RESULTS = BENCH / "results"

CLIENTS = ("floor", "websockets", "avatarkit-0.1.7", "ours")
# Our SDK's other ways of delivering frames, measured in the flood scenario only.
API_CLIENTS = ("ours-on_animation", "ours-frames")
SDK_CLIENTS = ("avatarkit-0.1.7", "ours")
# Our SDK with picows on aiofastnet's transports, and on the event loop's own
# (the "transport" section: which one the SDK should pick on which loop).
TRANSPORT_CLIENTS = ("ours-aiofastnet", "ours-loop-transport")
# The "compression" section: against a server that accepts permessage-deflate.
COMPRESSION_CLIENTS = ("avatarkit-0.1.7", "ours", "ours-aiohttp", "ours-deflate")
LABELS = {
    "floor": "floor (picows + 1 parse)",
    "websockets": "websockets, no compression (+ 1 parse)",
    "avatarkit-0.1.7": "avatarkit 0.1.7 (published)",
    "ours": "avatarkit (this repo)",
    "ours-on_animation": "avatarkit (this repo), on_animation callback",
    "ours-frames": "avatarkit (this repo), async for in session.frames()",
    "ours-aiofastnet": "avatarkit (this repo), picows on aiofastnet's transport",
    "ours-loop-transport": "avatarkit (this repo), picows on the event loop's transport",
    "ours-aiohttp": "avatarkit (this repo), AiohttpTransport without compression",
    "ours-deflate": "avatarkit (this repo), websocket_compression=True",
}
SECTIONS = (
    "server",
    "flood",
    "setup",
    "realtime",
    "opus",
    "endlat",
    "capacity",
    "anim",
    "svcprofile",
    "transport",
    "membreak",
    "compression",
)
SPEECH = ROOT / "tests" / "fixtures" / "speech_16000.pcm"


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------


def config(smoke: bool, args: argparse.Namespace) -> dict[str, Any]:
    if smoke:
        return {
            "repeats": 1,
            "flood": {"sessions": 2, "frames": 50},
            "setup": {"setups": 5, "warmup": 1},
            "realtime": {"sessions": [5], "frames": 10},
            "server_check": {
                "flood": {"sessions": 2, "frames": 50, "repeats": 1},
                "realtime": {"sessions": 5, "frames": 10},
            },
            "opus_argv": ["--seconds", "1", "--repeat", "1"],
            "client_timeout": 60,
            "endlat": {"requests": 3, "warmup": 1, "request_chunks": 10},
            "capacity": {"sessions": [5], "seconds": 1.0, "ramp_s": 0.2, "repeats": 1,
                         "strict_sessions": 5, "profile_sessions": None},
            "anim_argv": ["--repeat", "2"],
        }  # fmt: skip
    sessions = [int(x) for x in args.sessions.split(",")] if args.sessions else [100, 300, 1000]
    capacity = [int(x) for x in args.capacity_sessions.split(",")]
    return {
        "repeats": args.repeats,
        "flood": {"sessions": 50, "frames": 2000},
        "setup": {"setups": 200, "warmup": 5},
        "realtime": {"sessions": sessions, "frames": args.realtime_frames},
        "server_check": {
            "flood": {"sessions": 50, "frames": 2000, "repeats": 3},
            "realtime": {"sessions": max(sessions), "frames": args.realtime_frames},
        },
        "opus_argv": [],
        "client_timeout": 300,
        "endlat": {"requests": 100, "warmup": 5, "request_chunks": 25},
        "capacity": {
            "sessions": capacity,
            "seconds": args.capacity_seconds,
            "ramp_s": 2.0,
            "repeats": args.capacity_repeats,
            "strict_sessions": 100,
            "profile_sessions": 300,
        },
        "anim_argv": [],
    }


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------


def ensure_avatarkit017(loop: str) -> dict[str, Any]:
    """Create benchmarks/.venv-avatarkit017 with avatarkit==0.1.7 (and uvloop
    when the run uses it). Returns {"python": path} or {"error": ...}."""
    py = VENV017 / "bin" / "python"
    want = ["avatarkit==0.1.7"] + (["uvloop"] if loop == "uvloop" else [])
    check = "import avatarkit, sys; assert avatarkit.__version__ == '0.1.7'"
    if loop == "uvloop":
        check += "; import uvloop"
    try:
        if (
            py.exists()
            and subprocess.run([str(py), "-c", check], capture_output=True, timeout=60).returncode
            == 0
        ):
            return {"python": str(py)}
        log(f"installing {' '.join(want)} into {VENV017.relative_to(ROOT)} ...")
        if not py.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(VENV017)],
                check=True,
                capture_output=True,
                timeout=300,
            )
        r = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *want],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if r.returncode != 0:
            return {"error": f"pip install failed: {r.stderr.strip()[-800:]}"}
        if subprocess.run([str(py), "-c", check], capture_output=True, timeout=60).returncode:
            return {"error": "avatarkit 0.1.7 not importable after install"}
        return {"python": str(py)}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": repr(exc)}


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def client_command(name: str, py017: str | None) -> tuple[list[str], dict[str, str]] | None:
    env = base_env()
    if name == "floor":
        return [sys.executable, str(BENCH / "client_floor.py")], env
    if name == "websockets":
        return [sys.executable, str(BENCH / "client_websockets.py")], env
    if name == "avatarkit-0.1.7":
        if py017 is None:
            return None
        return [py017, str(BENCH / "sdk_runner.py")], env
    if name == "ours":
        env["PYTHONPATH"] = str(ROOT / "src")
        return [sys.executable, str(BENCH / "sdk_runner.py")], env
    if name in ("ours-aiohttp", "ours-deflate"):
        env["PYTHONPATH"] = str(ROOT / "src")
        choice = name.split("-", 1)[1]
        return [sys.executable, str(BENCH / "sdk_runner.py"), "--transport", choice], env
    if name in TRANSPORT_CLIENTS:
        env["PYTHONPATH"] = str(ROOT / "src")
        choice = "on" if name == "ours-aiofastnet" else "off"
        return [sys.executable, str(BENCH / "sdk_runner.py"), "--aiofastnet", choice], env
    if name.startswith("ours-"):
        env["PYTHONPATH"] = str(ROOT / "src")
        api = name.split("-", 1)[1]
        return [sys.executable, str(BENCH / "sdk_runner.py"), "--api", api], env
    raise ValueError(name)


class FloodServer:
    """The flood server in its own process; ``with FloodServer(...) as urls``."""

    def __init__(self, *args: str, max_seconds: float = 900) -> None:
        self.args = [
            sys.executable,
            str(BENCH / "flood_server.py"),
            *args,
            "--max-seconds",
            str(max_seconds),
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> dict[str, Any]:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=base_env()
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                self.info = json.loads(line[len("READY ") :])
                return self.info
        self.__exit__()
        raise RuntimeError(f"flood server did not start: {' '.join(self.args)}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_process(
    cmd: list[str], env: dict[str, str], timeout: float, cpu: int | None = None
) -> dict[str, Any]:
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
    if r.returncode != 0 and result.get("ok", True):
        result["ok"] = False
    if not result.get("ok", True):
        result.setdefault("stderr_tail", (r.stderr or "").strip().splitlines()[-5:])
    result["process_wall_s"] = round(time.monotonic() - t0, 3)
    return dict(result)


_HZ = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """utime + stime of a live process (seconds), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _HZ
    except (OSError, IndexError, ValueError):
        return 0.0


def _system_cpu() -> tuple[float, float]:
    """(user+nice+system, steal) seconds of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (v[0] + v[1] + v[2]) / _HZ, (v[7] if len(v) > 7 else 0) / _HZ
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


class CpuWatch:
    """CPU used on the machine by anything but the benchmark's own processes
    while one client runs: other work on a shared machine disturbs the
    figures, so a disturbed run is flagged (and repeated by run_matrix)."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> CpuWatch:
        self.t0 = time.monotonic()
        self.sys0, self.steal0 = _system_cpu()
        self.srv0 = _proc_cpu(self.server_pid) if self.server_pid else 0.0
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        self.own0 = ch.ru_utime + ch.ru_stime + me.ru_utime + me.ru_stime
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.monotonic() - self.t0, 1e-6)
        sys1, steal1 = _system_cpu()
        srv = (_proc_cpu(self.server_pid) if self.server_pid else 0.0) - self.srv0
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        own = ch.ru_utime + ch.ru_stime + me.ru_utime + me.ru_stime - self.own0 + srv
        self.result = {
            "wall_s": round(wall, 3),
            "foreign_cores": round(max(0.0, (sys1 - self.sys0) - own) / wall, 3),
            "steal_cores": round((steal1 - self.steal0) / wall, 3),
            "loadavg_1m": os.getloadavg()[0],
        }


def wait_quiet(ctx: dict[str, Any], server_pid: int | None) -> None:
    """Before a run: wait (bounded) until other processes leave the machine
    alone, i.e. use at most --disturbed-cores over half a second."""
    if ctx["quiet_wait_s"] <= 0:
        return
    deadline = time.monotonic() + ctx["quiet_wait_s"]
    waited = False
    while True:
        with CpuWatch(server_pid) as watch:
            time.sleep(0.5)
        busy = watch.result["foreign_cores"] + watch.result["steal_cores"]
        if busy <= ctx["disturbed_cores"]:
            if waited:
                log("  (machine quiet again)")
            return
        if time.monotonic() > deadline:
            log(f"  (other processes still use {busy:.2f} cores; running anyway)")
            return
        if not waited:
            log(f"  (other processes use {busy:.2f} cores; waiting for quiet)")
            waited = True


def _retry_allowed(ctx: dict[str, Any], attempt: int) -> bool:
    if attempt >= ctx["max_retries"] or ctx["retry_budget"] <= 0:
        return False
    ctx["retry_budget"] -= 1
    return True


def run_client(
    name: str,
    scenario_args: list[str],
    server: dict[str, Any],
    ctx: dict[str, Any],
    timeout: float,
    cpu: int | None = None,
) -> dict[str, Any]:
    cmd_env = client_command(name, ctx.get("py017"))
    if cmd_env is None:
        return {"ok": False, "available": False, "detail": ctx.get("py017_error", "n/a")}
    cmd, env = cmd_env
    cmd = [
        *cmd,
        "--console",
        server["console"],
        "--ingress",
        server["ingress"],
        *(["--server-stats", server["stats"]] if server.get("stats") else []),
        "--loop",
        ctx["loop"],
        *scenario_args,
    ]
    return run_process(cmd, env, timeout, cpu)


def rotated(items: tuple[str, ...] | list[str], r: int) -> list[str]:
    items = list(items)
    k = r % len(items)
    return items[k:] + items[:k]


# --------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------


def describe(name: str, res: dict[str, Any]) -> str:
    if res.get("available") is False:
        return f"{name}: not available ({res.get('detail', '')})"
    if not res.get("ok", False):
        return f"{name}: FAILED {res.get('error', '')}"
    sc = res.get("scenario")
    if sc == "flood":
        return (
            f"{name}: {res['cpu_us_per_frame']:.3f} us CPU/frame, "
            f"{res['frames_per_s']:.0f} frames/s, lost {res['frames_lost']}"
        )
    if sc == "setup":
        return (
            f"{name}: set-up p50 {res['total']['p50_ms']:.3f} ms, "
            f"p99 {res['total']['p99_ms']:.3f} ms"
        )
    if sc == "endlat":
        b, c = res["burst"]["end"], res["caught_up"]["end"]
        return (
            f"{name}: last chunk -> end frame, burst p50 {b['p50_ms']:.2f} / p99 "
            f"{b['p99_ms']:.2f} ms; caught up p50 {c['p50_ms']:.2f} / p99 {c['p99_ms']:.2f} ms"
        )
    if sc == "capacity":
        lat = res["lateness"]
        st = res.get("steady") or {}
        srv = st.get("server_cpu_share", res.get("server_cpu_share")) or 0
        return (
            f"{name}: {res['sessions']} sessions (lead {res['lead_ms']:g} ms), lateness p50 "
            f"{lat['p50_ms']:.2f} / p99 {lat['p99_ms']:.2f} / max {lat['max_ms']:.2f} ms, "
            f"lost {res['frames_lost']}, server CPU {srv * 100:.0f}%"
        )
    if sc == "realtime":
        d = res["delay"]
        return (
            f"{name}: {res['sessions']} sessions, delay p50 {d['p50_ms']:.2f} / "
            f"p99 {d['p99_ms']:.2f} / max {d['max_ms']:.2f} ms, lost {res['frames_lost']}, "
            f"CPU {res['cpu_share'] * 100:.0f}%, {res['rss_kib_per_session']:.1f} KiB/session"
        )
    return f"{name}: ok"


def run_matrix(
    title: str,
    server_args: list[str],
    scenario_args: list[str],
    ctx: dict[str, Any],
    repeats: int,
    timeout: float,
    clients: tuple[str, ...] = CLIENTS,
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    with FloodServer(*server_args) as server:
        for r in range(repeats):
            for name in rotated(clients, r):
                if runs[name] and runs[name][-1].get("available") is False:
                    continue
                for attempt in range(1 + ctx["max_retries"]):
                    wait_quiet(ctx, server.get("pid"))
                    with CpuWatch(server.get("pid")) as watch:
                        res = run_client(name, scenario_args, server, ctx, timeout)
                    res["repeat"] = r
                    res["interference"] = watch.result
                    disturbed = watch.result["foreign_cores"] + watch.result["steal_cores"]
                    res["disturbed"] = disturbed > ctx["disturbed_cores"]
                    runs[name].append(res)
                    note = ""
                    if res["disturbed"]:
                        note = f" [disturbed: other processes used {disturbed:.2f} cores]"
                    log(f"  [{title} {r + 1}/{repeats}] {describe(name, res)}{note}")
                    if not res["disturbed"] or res.get("available") is False:
                        break
                    if not _retry_allowed(ctx, attempt):
                        break
    return runs


def _sink(
    server: dict[str, Any],
    mode: str,
    sessions: int,
    frames: int,
    ctx: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """One raw-sink run, repeated (up to --max-retries) when other processes
    disturbed it."""
    cmd = [sys.executable, str(BENCH / "server_check.py"), "--ingress", server["ingress"],
           "--stats", server["stats"], "--mode", mode, "--sessions", str(sessions),
           "--frames", str(frames)]  # fmt: skip
    for attempt in range(1 + ctx["max_retries"]):
        wait_quiet(ctx, server.get("pid"))
        with CpuWatch(server.get("pid")) as watch:
            res = run_process(cmd, base_env(), timeout)
        res["interference"] = watch.result
        res["disturbed"] = (
            watch.result["foreign_cores"] + watch.result["steal_cores"] > ctx["disturbed_cores"]
        )
        if not res["disturbed"]:
            break
        log(f"  [server check] disturbed by other processes ({watch.result})")
        if not _retry_allowed(ctx, attempt):
            break
    return res


def run_server_check(cfg: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Compare WebSocket libraries for the flood server with a raw sink."""
    out: dict[str, Any] = {"flood": {}, "realtime": {}}
    fl = cfg["flood"]
    variants = {
        "picows, pre-framed single write": ["--ws", "picows", "--write", "blob"],
        "picows, one send per frame": ["--ws", "picows", "--write", "frames"],
        "aiohttp, one send_bytes per frame": ["--ws", "aiohttp"],
    }
    for label, sargs in variants.items():
        runs = []
        with FloodServer("--mode", "flood", "--frames", str(fl["frames"]), *sargs) as server:
            for _ in range(fl["repeats"]):
                res = _sink(server, "flood", fl["sessions"], fl["frames"], ctx, 120)
                runs.append(res)
                if res.get("ok"):
                    log(
                        f"  [server check] {label}: sink {res['frames_per_s']:.0f} frames/s, "
                        f"server {res['server']['cpu_us_per_frame_sent']:.3f} us CPU/frame"
                    )
                else:
                    log(f"  [server check] {label}: FAILED {res.get('error')}")
        out["flood"][label] = runs
    rt = cfg["realtime"]
    for label, sargs in {"picows": ["--ws", "picows"], "aiohttp": ["--ws", "aiohttp"]}.items():
        with FloodServer("--mode", "realtime", "--frames", str(rt["frames"]), *sargs) as server:
            res = _sink(server, "realtime", rt["sessions"], rt["frames"], ctx, 300)
        out["realtime"][label] = res
        if res.get("ok"):
            s = res["server"]
            log(
                f"  [server check] realtime {rt['sessions']} sessions, {label}: server CPU "
                f"{s['cpu_share'] * 100:.0f}%, lateness p99 {s['lateness']['p99_ms']} ms"
            )
        else:
            log(f"  [server check] realtime {label}: FAILED {res.get('error')}")
    return out


def run_profile(cfg: dict[str, Any], ctx: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """cProfile of our SDK's measured flood window: what the per-frame cost is made of."""
    f = cfg["flood"]
    raw = RESULTS / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    prof = raw / "profile_ours.pstats"
    with FloodServer("--mode", "flood", "--frames", str(f["frames"])) as server:
        res = run_client(
            "ours",
            [
                "--scenario",
                "flood",
                "--sessions",
                str(f["sessions"]),
                "--frames",
                str(f["frames"]),
                "--profile",
                str(prof),
            ],
            server,
            ctx,
            timeout,
        )
    if not res.get("ok") or not prof.exists():
        return None
    import pstats

    st = pstats.Stats(str(prof))
    total = st.total_tt  # type: ignore[attr-defined]
    frames = res["frames_received"]
    rows = []
    for (filename, line, func), (_cc, nc, tt, ct, _) in st.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(filename).name}:{line}({func})" if line else func,
                "calls": nc,
                "tottime_us_per_frame": round(tt / frames * 1e6, 4),
                "cumtime_us_per_frame": round(ct / frames * 1e6, 4),
                "share_tottime": round(tt / total, 4) if total else None,
            }
        )
    rows.sort(key=lambda r: -r["tottime_us_per_frame"])
    log(f"  [profile] ours, {frames} frames; top by own time:")
    for r in rows[:8]:
        log(f"    {r['tottime_us_per_frame']:.3f} us/frame  {r['function']}")
    return {
        "frames": frames,
        "profiled_us_per_frame": round(total / frames * 1e6, 4),
        "profiled_run_cpu_us_per_frame": res["cpu_us_per_frame"],
        "top": rows[:15],
    }


def _cores() -> tuple[int | None, int | None]:
    """(service core, client core): the first two usable CPUs, or no pinning."""
    cpus = usable_cpus()
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def _local_run(
    title: str,
    name: str,
    scenario_args: list[str],
    svc: dict[str, Any],
    ctx: dict[str, Any],
    timeout: float,
    client_cpu: int | None,
) -> list[dict[str, Any]]:
    """One client run against the local service, repeated (up to --max-retries)
    when other processes disturbed it; returns every attempt."""
    attempts: list[dict[str, Any]] = []
    for attempt in range(1 + ctx["max_retries"]):
        wait_quiet(ctx, svc.get("pid"))
        with CpuWatch(svc.get("pid")) as watch:
            res = run_client(name, scenario_args, svc, ctx, timeout, cpu=client_cpu)
        res["interference"] = watch.result
        busy = watch.result["foreign_cores"] + watch.result["steal_cores"]
        res["disturbed"] = busy > ctx["disturbed_cores"]
        attempts.append(res)
        note = f" [disturbed: other processes used {busy:.2f} cores]" if res["disturbed"] else ""
        log(f"  [{title}] {describe(name, res)}{note}")
        if not res["disturbed"] or res.get("available") is False:
            break
        if not _retry_allowed(ctx, attempt):
            break
    return attempts


def run_endlat(cfg: dict[str, Any], ctx: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Last audio chunk -> end frame, fast pace, ours and 0.1.7 on one service."""
    e = cfg["endlat"]
    srv_cpu, cli_cpu = _cores()
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in SDK_CLIENTS}
    args = ["--scenario", "endlat", "--audio", str(SPEECH), "--requests", str(e["requests"]),
            "--warmup", str(e["warmup"]), "--request-chunks", str(e["request_chunks"]),
            "--timeout", "30"]  # fmt: skip
    with LocalService("fast", srv_cpu, src=ctx["service_src"]) as svc:
        for r in range(repeats):
            for name in rotated(SDK_CLIENTS, r):
                if runs[name] and runs[name][-1].get("available") is False:
                    continue
                for res in _local_run(
                    f"end latency {r + 1}/{repeats}", name, args, svc, ctx, 300, cli_cpu
                ):
                    res["repeat"] = r
                    runs[name].append(res)
        info = dict(svc)
    return {"service": info, "client_cpu": cli_cpu, "runs": runs}


def _capacity_args(n: int, c: dict[str, Any], lead_ms: float, pid: int) -> list[str]:
    return ["--scenario", "capacity", "--sessions", str(n), "--seconds", str(c["seconds"]),
            "--ramp-s", str(c["ramp_s"]), "--lead-ms", str(lead_ms), "--audio", str(SPEECH),
            "--server-pid", str(pid), "--concurrency", "32",
            "--timeout", str(c["seconds"] + 60)]  # fmt: skip


def run_capacity(cfg: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Real-time sessions the local service sustains on one core (a fresh
    service process per run, pinned; the load generator, our SDK, on the other
    core)."""
    c = cfg["capacity"]
    srv_cpu, cli_cpu = _cores()
    out: dict[str, Any] = {"runs": {}, "strict": [], "client_cpu": cli_cpu, "lead_ms": 60.0}
    timeout = c["seconds"] + 180

    def one(title: str, n: int, lead: float) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for attempt in range(1 + ctx["max_retries"]):
            with LocalService("realtime", srv_cpu, src=ctx["service_src"]) as svc:
                out["service"] = dict(svc)
                args = _capacity_args(n, c, lead, svc["pid"])
                res = _local_run(title, "ours", args, svc, {**ctx, "max_retries": 0}, timeout,
                                 cli_cpu)[0]  # fmt: skip
            results.append(res)
            if not res["disturbed"] or not _retry_allowed(ctx, attempt):
                break
        return results

    for n in c["sessions"]:
        out["runs"][str(n)] = []
        for r in range(c["repeats"]):
            out["runs"][str(n)] += one(f"capacity {n} {r + 1}/{c['repeats']}", n, 60.0)
    if c.get("strict_sessions"):
        n = c["strict_sessions"]
        out["strict"] = one(f"capacity {n}, strictly real time (no lead)", n, 0.0)
    return out


def _pyspy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def run_service_profile(cfg: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any] | None:
    """py-spy (if installed) on the service during one capacity run: what its
    CPU goes to, by function (own time) and for a few inclusive entries.
    py-spy pauses the service for each sample (100 per second, so that stacks
    are consistent; --nonblocking gives torn stacks); its CPU share and cost
    per frame here include that."""
    c = cfg["capacity"]
    n = c.get("profile_sessions")
    spy = _pyspy()
    if not n or spy is None:
        if n:
            log("  [service profile] py-spy not installed (pip install py-spy): skipped")
        return None
    srv_cpu, cli_cpu = _cores()
    raw = RESULTS / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    stacks = raw / "service_profile.txt"
    duration = max(2, int(c["seconds"] - c["ramp_s"] - 3))
    with LocalService("realtime", srv_cpu, src=ctx["service_src"]) as svc:
        cmd_env = client_command("ours", None)
        assert cmd_env is not None
        cmd = [*cmd_env[0], "--console", svc["console"], "--ingress", svc["ingress"],
               "--loop", ctx["loop"], *_capacity_args(n, c, 60.0, svc["pid"])]  # fmt: skip
        client = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=cmd_env[1],
            cwd=str(ROOT),
            preexec_fn=pinned(cli_cpu),
        )
        time.sleep(c["ramp_s"] + 1.5)  # set-up and ramp
        spy_run = subprocess.run(
            [spy, "record", "--pid", str(svc["pid"]), "--duration", str(duration),
             "--rate", "100", "--format", "raw", "-o", str(stacks)],
            capture_output=True, text=True, preexec_fn=pinned(cli_cpu),
        )  # fmt: skip
        out, _ = client.communicate(timeout=c["seconds"] + 120)
    res = parse_result(out) or {}
    if spy_run.returncode != 0 or not stacks.exists():
        log(f"  [service profile] py-spy failed: {spy_run.stderr.strip()[-300:]}")
        return None
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + k
        for f in set(frames):
            incl[f] = incl.get(f, 0) + k
    if not total:
        return None
    keys = {
        "_Request._analyze": "animation analysis (`AnimationAnalyzer.push`: numpy + Python)",
        "encode_frame": "`encode_frame` (the payload)",
        "Connection._send": "sending (`Connection._send`: aiohttp `send_bytes` + socket write)",
        "_SelectorSocketTransport._read_ready": "receiving (socket read + aiohttp frame parsing)",
        "Connection._on_binary": "handling a message (`ServerProtocol.receive` + audio)",
        "Connection._sleep_until": "pacer sleeps (`_sleep_until`: future + timer)",
        "EpollSelector.select": "event loop waiting in `epoll` (`select`)",
    }
    inclusive = []
    for prefix, label in keys.items():
        hits = sum(v for f, v in incl.items() if f.startswith(prefix + " "))
        inclusive.append({"what": label, "share": round(hits / total, 4)})
    top = sorted(own.items(), key=lambda kv: -kv[1])[:15]
    steady = res.get("steady") or {}
    log(f"  [service profile] {n} sessions, {total} samples; top own time:")
    for f, k in top[:6]:
        log(f"    {100 * k / total:5.1f}%  {f}")
    return {
        "sessions": n,
        "samples": total,
        "rate_hz": 100,
        "seconds": duration,
        "server_cpu_share": steady.get("server_cpu_share"),
        "server_cpu_us_per_frame": steady.get("server_cpu_us_per_frame"),
        "top_own": [{"function": f, "share": round(k / total, 4)} for f, k in top],
        "inclusive": inclusive,
    }


def run_anim(argv: list[str], ctx: dict[str, Any]) -> dict[str, Any]:
    srv_cpu, _ = _cores()
    env = base_env()
    env["PYTHONPATH"] = str(ctx["service_src"])
    res = run_process([sys.executable, str(BENCH / "bench_animation.py"), *argv], env, 300, srv_cpu)
    if res.get("ok"):
        log(
            f"  [animation] push {res['push_us_per_frame']:.2f} + encode "
            f"{res['encode_us_per_frame']:.2f} = {res['total_us_per_frame']:.2f} us/frame"
        )
    else:
        log(f"  [animation] FAILED {res.get('error')}")
    res["cpu"] = srv_cpu
    return res


def run_opus(argv: list[str]) -> dict[str, Any] | None:
    """Call benchmarks/bench_opus.py's main(argv) (owned elsewhere), if present."""
    path = BENCH / "bench_opus.py"
    if not path.exists():
        return None
    code = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import bench_opus; "
        "f = getattr(bench_opus, 'main', None); "
        "raise SystemExit(f(sys.argv[1:]) if f else 3)"
    )
    env = base_env()
    env["PYTHONPATH"] = str(ROOT / "src")
    res = _run_script([sys.executable, "-c", code, str(BENCH), *argv], env, "opus")
    if res.get("returncode") == 3:
        return None
    res["argv"] = argv
    return res


def _run_script(cmd: list[str], env: dict[str, str], label: str) -> dict[str, Any]:
    """Run a benchmark script whose stdout is its report; keep the output."""
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=600, cwd=str(ROOT)
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "timed out"}
    if r.returncode != 3:
        log(f"  [{label}] " + f"\n  [{label}] ".join(r.stdout.strip().splitlines()))
    return {
        "ok": r.returncode == 0,
        "returncode": r.returncode,
        "output": r.stdout,
        "stderr_tail": r.stderr.strip().splitlines()[-5:] if r.returncode else [],
        "wall_s": round(time.monotonic() - t0, 2),
    }


def run_membreak(sessions: int) -> dict[str, Any]:
    """benchmarks/mem_breakdown.py: where our memory per session goes."""
    cmd = [sys.executable, str(BENCH / "mem_breakdown.py"), "--sessions", str(sessions)]
    res = _run_script(cmd, base_env(), "memory")
    res["sessions"] = sessions
    return res


# --------------------------------------------------------------------------
# environment description
# --------------------------------------------------------------------------


def run_transport(cfg: dict[str, Any], ctx: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Our SDK with and without aiofastnet: flood CPU on both event loops,
    set-up time and memory per session on uvloop."""
    f, su, rt = cfg["flood"], cfg["setup"], cfg["realtime"]
    n = max(rt["sessions"])
    out: dict[str, Any] = {"sessions": n}
    for loop in ("uvloop", "asyncio"):
        out[f"flood_{loop}"] = run_matrix(
            f"transport flood, {loop}",
            ["--mode", "flood", "--frames", str(f["frames"])],
            ["--scenario", "flood", "--sessions", str(f["sessions"]), "--frames", str(f["frames"])],
            {**ctx, "loop": loop},
            cfg["repeats"],
            timeout,
            clients=TRANSPORT_CLIENTS,
        )
    out["setup_uvloop"] = run_matrix(
        "transport set-up, uvloop",
        ["--mode", "flood", "--frames", "10"],
        ["--scenario", "setup", "--setups", str(su["setups"]), "--warmup", str(su["warmup"])],
        {**ctx, "loop": "uvloop"},
        cfg["repeats"],
        timeout,
        clients=TRANSPORT_CLIENTS,
    )
    out["realtime_uvloop"] = run_matrix(
        f"transport realtime {n}, uvloop",
        ["--mode", "realtime", "--frames", str(rt["frames"])],
        ["--scenario", "realtime", "--sessions", str(n), "--frames", str(rt["frames"]),
         "--timeout", "120"],
        {**ctx, "loop": "uvloop"},
        cfg["repeats"],
        timeout,
        clients=TRANSPORT_CLIENTS,
    )  # fmt: skip
    return out


def describe_machine(ctx: dict[str, Any]) -> dict[str, Any]:
    info = machine_info()
    with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
        info["nproc"] = int(
            subprocess.run(["nproc"], capture_output=True, text=True, timeout=10).stdout.strip()
        )
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo") as f:
        info["memory_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    info["kernel"] = platform.release()
    versions = {}
    probe = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "['picows', 'websockets', 'aiohttp', 'protobuf', 'uvloop', 'aiofastnet'] "
        "if __import__('importlib.util').util.find_spec(p.replace('-', '_'))}))"
    )
    with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
        versions = json.loads(
            subprocess.run(
                [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
            ).stdout
        )
    info["libraries"] = versions
    info["loop"] = ctx["loop"]
    return dict(info)


# Result keys (and config keys) each section writes.
SECTION_KEYS = {
    "server": (["server_check"], ["server_check"]),
    "flood": (["flood", "profile"], ["flood"]),
    "setup": (["setup"], ["setup"]),
    "realtime": (["realtime"], ["realtime"]),
    "opus": (["opus"], ["opus_argv"]),
    "endlat": (["endlat"], ["endlat"]),
    "capacity": (["capacity"], ["capacity"]),
    "anim": (["anim"], ["anim_argv"]),
    "svcprofile": (["service_profile"], []),
    "transport": (["transport"], []),
    "membreak": (["membreak"], []),
    "compression": (["compression"], []),
}


def merge_previous(results: dict[str, Any], path: Path, only: set[str]) -> None:
    """Keep the sections this (partial) run did not run from the previous
    latest.json, with the date they were run."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if old.get("smoke"):
        return
    old_runs = old.get("sections_run") or {
        name: old.get("started_unix") for name in SECTIONS if SECTION_KEYS[name][0][0] in old
    }
    kept = []
    for name in SECTIONS:
        if name in only or name not in old_runs:
            continue
        keys, cfg_keys = SECTION_KEYS[name]
        for key in keys:
            if key in old:
                results[key] = old[key]
        for key in cfg_keys:
            if key in old.get("config", {}):
                results["config"][key] = old["config"][key]
        results["sections_run"][name] = old_runs[name]
        results["failures"] = [*results["failures"], *(
            f for f in old.get("failures", []) if f.split("/")[0].split(" ")[0] == name
        )]  # fmt: skip
        kept.append(name)
    if kept:
        results["wall_s_previous"] = old.get("wall_s_previous") or old.get("wall_s")
        results["retry_budget"] = old.get("retry_budget", results.get("retry_budget"))
        log(f"kept from the previous {path.name}: {', '.join(kept)}")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


BEFORE = RESULTS / "devserver_before.json"


def attach_before(results: dict[str, Any]) -> None:
    """The local service's figures from before its performance changes
    (``benchmarks/results/devserver_before.json``: the latest.json of a run with
    ``--only capacity,anim --service-src OLD_TREE --service-label ...``)."""
    if results.get("smoke"):
        return
    try:
        before = json.loads(BEFORE.read_text())
    except (OSError, ValueError):
        return
    results["devserver_before"] = {
        "label": before.get("service_label") or before.get("service_src"),
        "started_unix": before.get("started_unix"),
        "capacity": before.get("capacity"),
        "anim": before.get("anim"),
        "service_profile": before.get("service_profile"),
    }


def rerender(out: Path) -> int:
    from _report import summarize, write_markdown, write_plot

    results = json.loads((out / "latest.json").read_text())
    attach_before(results)
    results["summary"] = summarize(results)
    (out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    png = out / "benchmarks.png"
    md = ROOT / "BENCHMARKS.md" if out == RESULTS else out / "BENCHMARKS.md"
    write_markdown(results, md, png if write_plot(results, png) else None)
    log(f"re-rendered {md} and {png} from {out / 'latest.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--smoke",
        action="store_true",
        help="every script in a tiny configuration (CI); writes under results/raw/smoke",
    )
    p.add_argument("--repeats", type=int, default=3, help="runs per client and scenario")
    p.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of every client process (default: uvloop)",
    )
    p.add_argument("--sessions", default=None, help="realtime session counts, e.g. 100,300,1000")
    p.add_argument(
        "--realtime-frames",
        type=int,
        default=125,
        help="frames per session in the realtime runs (125 = 5 s)",
    )
    p.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help="comma-separated subset of " + ",".join(SECTIONS) + " (the other sections of "
        "an existing latest.json are kept)",
    )
    p.add_argument(
        "--capacity-sessions",
        default="100,200,300,400,500,600",
        help="local service capacity: session counts to run",
    )
    p.add_argument(
        "--capacity-seconds", type=float, default=12.0, help="audio per session in those runs"
    )
    p.add_argument("--capacity-repeats", type=int, default=2, help="runs per session count")
    p.add_argument("--service-label", default=None, help="what --service-src is, for the report")
    p.add_argument(
        "--service-src",
        default=None,
        help="run the local service (and bench_animation.py) from this src/ tree instead "
        "of the repository's, e.g. an earlier commit's, to compare",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="repeat a run disturbed by other processes up to this many times",
    )
    p.add_argument(
        "--disturbed-cores",
        type=float,
        default=0.15,
        help="a run is disturbed when other processes (plus steal) used more than this "
        "many cores on average",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="seconds to wait, before each run, for other processes to go quiet",
    )
    p.add_argument(
        "--retry-budget", type=int, default=12, help="repeated disturbed runs in the whole run"
    )
    p.add_argument("--out", default=None, help="output folder (default: benchmarks/results)")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="re-render BENCHMARKS.md and the plot from the existing latest.json",
    )
    args = p.parse_args(argv)
    if args.report_only:
        return rerender(Path(args.out) if args.out else RESULTS)
    cfg = config(args.smoke, args)
    only = set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        p.error(f"unknown --only section(s): {', '.join(sorted(unknown))}")
    out = Path(args.out) if args.out else (RESULTS / "raw" / "smoke" if args.smoke else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    md_path = out / "BENCHMARKS.md" if (args.smoke or args.out) else ROOT / "BENCHMARKS.md"
    t_start = time.monotonic()

    ctx: dict[str, Any] = {
        "loop": args.loop,
        "max_retries": args.max_retries,
        "disturbed_cores": args.disturbed_cores,
        "quiet_wait_s": 0 if args.smoke else args.quiet_wait,
        "retry_budget": 0 if args.smoke else args.retry_budget,
        "service_src": Path(args.service_src).resolve() if args.service_src else ROOT / "src",
    }
    venv = ensure_avatarkit017(args.loop)
    ctx["py017"] = venv.get("python")
    if "error" in venv:
        ctx["py017_error"] = venv["error"]
        log(f"avatarkit 0.1.7 unavailable: {venv['error']}")

    results: dict[str, Any] = {
        "schema": 1,
        "smoke": args.smoke,
        "started_unix": int(time.time()),
        "config": cfg,
        "machine": describe_machine(ctx),
        "avatarkit017": venv,
        "clients": {c: LABELS[c] for c in (*CLIENTS, *API_CLIENTS)},
        "service_src": str(ctx["service_src"]),
        "service_label": args.service_label,
        "retry_budget": ctx["retry_budget"],
        "sections_run": {name: int(time.time()) for name in SECTIONS if name in only},
    }
    failures: list[str] = []
    timeout = cfg["client_timeout"]

    if "server" in only:
        log("== server check (raw sink; which WebSocket library the flood server uses)")
        results["server_check"] = run_server_check(cfg["server_check"], ctx)

    if "flood" in only:
        f = cfg["flood"]
        log(f"== CPU per received frame: {f['sessions']} sessions x {f['frames']} frames, flood")
        results["flood"] = run_matrix(
            "flood",
            ["--mode", "flood", "--frames", str(f["frames"])],
            ["--scenario", "flood", "--sessions", str(f["sessions"]), "--frames", str(f["frames"])],
            ctx,
            cfg["repeats"],
            timeout,
            clients=(*CLIENTS, *API_CLIENTS),
        )
        if not args.smoke and any(r.get("ok") for r in results["flood"]["ours"]):
            results["profile"] = run_profile(cfg, ctx, timeout)

    if "setup" in only:
        s = cfg["setup"]
        log(f"== session set-up: {s['setups']} sequential set-ups")
        results["setup"] = run_matrix(
            "setup",
            ["--mode", "flood", "--frames", "10"],
            ["--scenario", "setup", "--setups", str(s["setups"]), "--warmup", str(s["warmup"])],
            ctx,
            cfg["repeats"],
            timeout,
        )

    if "realtime" in only:
        rt = cfg["realtime"]
        results["realtime"] = {}
        for n in rt["sessions"]:
            log(f"== realtime: {n} sessions x {rt['frames']} frames at 25/s")
            results["realtime"][str(n)] = run_matrix(
                f"realtime {n}",
                ["--mode", "realtime", "--frames", str(rt["frames"])],
                [
                    "--scenario",
                    "realtime",
                    "--sessions",
                    str(n),
                    "--frames",
                    str(rt["frames"]),
                    "--timeout",
                    "120",
                ],
                ctx,
                cfg["repeats"],
                timeout,
            )

    if "opus" in only:
        opus = run_opus(cfg["opus_argv"])
        if opus is not None:
            results["opus"] = opus
            if not opus["ok"]:
                failures.append("bench_opus")

    if "anim" in only:
        log("== local service: animation analysis CPU per frame, in isolation")
        results["anim"] = run_anim(cfg["anim_argv"], ctx)
        if not results["anim"].get("ok"):
            failures.append("bench_animation")

    if "endlat" in only:
        e = cfg["endlat"]
        log(f"== local service, fast pace: last audio chunk -> end frame, {e['requests']} requests")
        results["endlat"] = run_endlat(cfg, ctx, cfg["repeats"])
        for name, runs in results["endlat"]["runs"].items():
            failures += [
                f"endlat/{name}"
                for r in runs
                if not r.get("ok") and r.get("available") is not False
            ]

    if "capacity" in only:
        c = cfg["capacity"]
        log(f"== local service capacity on one core: {c['sessions']} real-time sessions")
        results["capacity"] = run_capacity(cfg, ctx)
        for n, runs in results["capacity"]["runs"].items():
            failures += [f"capacity {n}" for r in runs if not r.get("ok")]

    if "transport" in only:
        log("== transport: our SDK with picows on aiofastnet's transports vs the loop's own")
        results["transport"] = run_transport(cfg, ctx, timeout)
        for key, matrix in results["transport"].items():
            if isinstance(matrix, dict):
                failures += [
                    f"transport {key}/{name}"
                    for name, runs in matrix.items()
                    for r in runs
                    if not r.get("ok")
                ]

    if "compression" in only:
        f = cfg["flood"]
        log("== compression: flood of the local service's payloads, deflate accepted")
        results["compression"] = run_matrix(
            "compression",
            ["--mode", "flood", "--frames", str(f["frames"]), "--realistic", "--deflate"],
            ["--scenario", "flood", "--sessions", str(f["sessions"]), "--frames", str(f["frames"])],
            ctx,
            cfg["repeats"],
            timeout,
            clients=COMPRESSION_CLIENTS,
        )
        for name, runs in results["compression"].items():
            failures += [
                f"compression/{name}"
                for r in runs
                if not r.get("ok") and r.get("available") is not False
            ]

    if "membreak" in only:
        n = max(cfg["realtime"]["sessions"])
        log(f"== memory per session of our SDK, broken down ({n} sessions)")
        results["membreak"] = run_membreak(n)
        if not results["membreak"].get("ok"):
            failures.append("membreak")

    if "svcprofile" in only and not args.smoke:
        log("== local service: py-spy profile during a capacity run")
        results["service_profile"] = run_service_profile(cfg, ctx)

    for section in ("flood", "setup"):
        for name, runs in results.get(section, {}).items():
            failures += [
                f"{section}/{name}"
                for r in runs
                if not r.get("ok") and r.get("available") is not False
            ]
    for n, matrix in results.get("realtime", {}).items():
        for name, runs in matrix.items():
            failures += [
                f"realtime {n}/{name}"
                for r in runs
                if not r.get("ok") and r.get("available") is not False
            ]
    for label, runs in results.get("server_check", {}).get("flood", {}).items():
        failures += [f"server check {label}" for r in runs if not r.get("ok")]

    results["wall_s"] = round(time.monotonic() - t_start, 1)
    results["failures"] = failures
    if not args.smoke and only != set(SECTIONS):
        merge_previous(results, out / "latest.json", only)
    if not args.out:
        attach_before(results)
    from _report import summarize, write_markdown, write_plot

    results["summary"] = summarize(results)
    (out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    png = out / "benchmarks.png"
    plotted = write_plot(results, png)
    write_markdown(results, md_path, png if plotted else None)
    log(f"wrote {out / 'latest.json'}, {md_path}" + (f", {png}" if plotted else ""))
    for line in results["summary"]["lines"]:
        print(line)
    if failures:
        log(f"failed runs: {', '.join(failures)}")
        return 1
    print(f"done in {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
