"""Run the benchmarks and render BENCHMARKS.md: ``python -m benchmarks``.

``--smoke``: every client and server once in a tiny configuration (CI, ~10 s,
written under ``results/raw/smoke/``); ``--only a,b``: a subset, the other
scenarios kept from ``results/latest.json`` with their date; ``--render``:
re-render BENCHMARKS.md from ``latest.json`` without measuring. BENCHMARKS.md
("How to run") lists the rest. Nothing asserts on time: the command prints
each goal's PASS/MISS and exits 1 only when a run failed (2 for bad options).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.metadata
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import report, servers
from benchmarks.common import log
from benchmarks.scenarios import (
    NEEDS_017,
    ROOT,
    SCENARIOS,
    find_avatarkit017,
    host_slowdown,
    host_speed_us,
)

RESULTS = ROOT / "benchmarks" / "results"

CONFIG: dict[str, dict[str, Any]] = {
    "flood": {"sessions": 50, "frames": 2000, "repeats": 3, "timeout": 300},
    "setup": {"setups": 400, "warmup": 20, "repeats": 3, "timeout": 300},
    "realtime": {"sessions": [100, 1000], "frames": 50, "repeats": 2, "timeout": 300},
    "endlat": {"requests": 100, "warmup": 5, "request_chunks": 25, "repeats": 3},
    "anim": {"argv": []},
    "opus": {"argv": []},
    # Each client's search starts near its capacity of the last runs (a short search);
    # doubling or halving from there still finds any other capacity.
    "clientcap": {"clients": ["floor", "ours", "ours-request", "avatarkit-0.1.7"], "frames": 75,
                  "start": {"floor": 1600, "ours": 1200, "ours-request": 800,
                            "avatarkit-0.1.7": 700},
                  "most": 6400, "resolution": 0.25, "bound_ms": 20.0},
    "tts": {"argv": ["--repeat", "5"]},
    # Growing counts from below today's capacity (600-700 on one core here) up to the
    # goal, 100 apart near it for both (the scaling is a ratio of two capacities: a
    # coarse grid decides it more than the service does); 2 workers at twice a
    # 1-worker count (500 and 1,000), for the CPU-bound scaling estimate.
    "service": {"plan": [[1, [500, 600, 700, 800, 1000]], [2, [1000, 1100, 1200, 1400]]],
                "seconds": 4.0, "ramp_s": 2.0},
}  # fmt: skip
SMOKE: dict[str, dict[str, Any]] = {
    "flood": {"sessions": 2, "frames": 50, "repeats": 1, "timeout": 60},
    "setup": {"setups": 3, "warmup": 1, "repeats": 1, "timeout": 60},
    "realtime": {"sessions": [4], "frames": 5, "repeats": 1, "timeout": 60},
    "endlat": {"requests": 2, "warmup": 1, "request_chunks": 4, "repeats": 1},
    "anim": {"argv": ["--repeat", "1"]},
    "opus": {"argv": ["--seconds", "0.5", "--repeat", "1"]},
    # The other clients run the same real-time loop in the smoke's realtime scenario.
    "clientcap": {"clients": ["ours-request"], "frames": 5, "start": 4, "most": 4,
                  "resolution": 1.0, "bound_ms": 1000.0},
    "tts": {"argv": ["--repeat", "1", "--warmup", "0"]},
    "service": {"plan": [[1, [3]], [2, [4]]], "seconds": 0.4, "ramp_s": 0.1},
}  # fmt: skip


BUDGET_S = 295.0
"""The time a full run may take. Waiting for quiet, repeating a disturbed run
and running a count that failed by a little once more are only started while
the suite can still end within it, the usual time of what is left counted
ahead (:data:`USUAL_S`): a noisy host leaves more runs flagged ``disturbed``
and capacities more conservative rather than making the suite longer."""

USUAL_S = {"flood": 20.0, "setup": 11.0, "realtime": 56.0, "endlat": 5.0, "anim": 1.0,
           "opus": 6.0, "clientcap": 100.0, "tts": 1.0, "service": 62.0}  # fmt: skip
"""Each scenario's time on this 2-core machine without repeats or second runs
(from quiet runs; 262 s in all)."""

QUIET_KEYS = ("quiet_wait_s", "disturbed_cores", "max_retries", "host_slow")


def describe_machine(loop: str) -> dict[str, Any]:
    """CPU, memory, kernel, Python and library versions, for the report."""
    info: dict[str, Any] = {"cpu_model": "", "nproc": len(os.sched_getaffinity(0))}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = [line for line in f if line.startswith("model name")][:1]
        info["cpu_model"] = model[0].split(":", 1)[1].strip() if model else ""
    info["python"] = sys.version.split()[0]
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo") as f:
        info["memory_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    info["kernel"] = platform.release()
    libs = ("picows", "websockets", "aiohttp", "protobuf", "uvloop", "aiofastnet")
    info["libraries"] = {}
    for name in libs:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info["libraries"][name] = importlib.metadata.version(name)
    info["loop"] = loop
    return info


def failures(name: str, value: Any) -> list[str]:
    """Paths of the failed runs in a scenario's result (not unavailable ones)."""
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in failures(f"{name}[{i}]", v)]
    if not isinstance(value, dict):
        return []
    if value.get("ok") is False and value.get("available") is not False:
        return [name]
    return [f for k, v in value.items() for f in failures(f"{name}/{k}", v)]


def keep_previous(results: dict[str, Any], path: Path) -> None:
    """A partial run keeps the other scenarios of the previous results file."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if old.get("smoke"):
        return
    for name, when in (old.get("sections_run") or {}).items():
        if name in SCENARIOS and name not in results["sections_run"] and name in old:
            results[name] = old[name]
            results["sections_run"][name] = when
            results["machines"][name] = (old.get("machines") or {}).get(name, old.get("machine"))
            if name in (old.get("scenario_wall_s") or {}):
                results["scenario_wall_s"][name] = old["scenario_wall_s"][name]
            old_cfg = old.get("config") or {}
            if isinstance(old_cfg.get(name), dict):  # schema 1 kept "repeats" at the top
                results["config"][name] = {"repeats": old_cfg.get("repeats"), **old_cfg[name]}
    results["wall_s_previous"] = old.get("wall_s_previous") or old.get("wall_s")


def _counts(text: str) -> list[int]:
    """A comma-separated list of positive session counts (an argparse type)."""
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive whole numbers, e.g. 100,300")
    return counts


def _plan(text: str) -> list[list[Any]]:
    """``W:n,n;W:n`` -> ``[[W, [n, n]], [W, [n]]]`` (an argparse type)."""
    try:
        plan = [[int(w), _counts(ns)] for w, _, ns in (p.partition(":") for p in text.split(";"))]
    except (ValueError, argparse.ArgumentTypeError):
        plan = []
    if not plan or min(w for w, _ in plan) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give e.g. 1:600,800;2:1200,1600")
    return plan


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="every client and server once, tiny")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated subset of "
                   + ",".join(SCENARIOS))  # fmt: skip
    p.add_argument("--render", action="store_true", help="only re-render BENCHMARKS.md from "
                   "the results file (no measuring)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=None, help="runs per client (default 3)")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                   help="event loop of every client process")  # fmt: skip
    p.add_argument("--sessions", type=_counts, help="realtime session counts, e.g. 100,1000")
    p.add_argument("--service-seconds", type=float, default=None, help="service: audio per "
                   "session (s)")  # fmt: skip
    p.add_argument("--service-plan", type=_plan, help="service: workers and session counts, "
                   "e.g. 1:600,800;2:1200,1600")  # fmt: skip
    p.add_argument("--max-retries", type=int, default=2,
                   help="repeat a run disturbed by other processes this many times")  # fmt: skip
    p.add_argument("--disturbed-cores", type=float, default=0.15,
                   help="disturbed: other processes used more cores than this")  # fmt: skip
    p.add_argument("--quiet-wait", type=float, default=15.0,
                   help="wait this long before a run for other processes to quiet")  # fmt: skip
    p.add_argument("--host-slow", type=float, default=0.3,
                   help="disturbed: just before the run the host ran a fixed loop this much "
                   "slower than its median speed in this run (0.3: 30%%)")  # fmt: skip
    p.add_argument("--retry-budget", type=int, default=12, help="disturbed runs repeated in all")
    p.add_argument("--budget", type=float, default=BUDGET_S,
                   help="seconds the whole run may take: waits for quiet, repeats and "
                   "second runs are only started while it can still end within this")  # fmt: skip
    p.add_argument("--out", default=None, help="output folder (default: benchmarks/results)")
    args = p.parse_args(argv)  # fmt: skip
    out = Path(args.out) if args.out else RESULTS / "raw" / "smoke" if args.smoke else RESULTS
    md_path = ROOT / "BENCHMARKS.md" if out == RESULTS else out / "BENCHMARKS.md"
    if args.render:
        if not (out / "latest.json").is_file():
            p.error(f"{out / 'latest.json'} not found: measure first (python -m benchmarks), "
                    "or give --out the folder that holds latest.json")  # fmt: skip
        measured = json.loads((out / "latest.json").read_text())
        md_path.write_text(report.render(measured))
        log(f"rendered {md_path} from {out / 'latest.json'}")
        return 0
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown --only scenario(s): {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(SCENARIOS)}")  # fmt: skip
    cfg = copy.deepcopy(SMOKE if args.smoke else CONFIG)
    for c in cfg.values():
        if args.repeats and "repeats" in c:
            c["repeats"] = args.repeats
    if args.sessions:
        cfg["realtime"]["sessions"] = args.sessions
    if args.service_seconds:
        cfg["service"]["seconds"] = args.service_seconds
    if args.service_plan:
        cfg["service"]["plan"] = args.service_plan
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    needed = any(name in NEEDS_017 for name in only)
    venv = find_avatarkit017(args.loop, args.smoke) if needed else {"error": "not needed"}
    if needed and "error" in venv:
        log(f"avatarkit 0.1.7 unavailable: {venv['error']}")
    ctx = {
        "loop": args.loop,
        "py017": venv.get("python"),
        "py017_error": venv.get("error"),
        "max_retries": 0 if args.smoke else args.max_retries,
        "disturbed_cores": args.disturbed_cores,
        "quiet_wait_s": 0 if args.smoke else args.quiet_wait,
        "retry_budget": 0 if args.smoke else args.retry_budget,
        "parallel": args.smoke,
        "host_slow": args.host_slow,
    }
    if not args.smoke:  # the suite's time budget (see spare_s); a smoke run repeats nothing
        ctx["deadline"] = t0 + args.budget
    if not args.smoke:  # the host's usual speed, the base of every run's slowdown
        host_slowdown(ctx, *(host_speed_us() for _ in range(5)))
    results: dict[str, Any] = {
        "schema": 2,
        "smoke": args.smoke,
        "started_unix": int(time.time()),
        "config": {name: cfg[name] for name in only},
        "machine": describe_machine(args.loop),
        "machines": {},
        "avatarkit017": venv,
        "sections_run": {},
        "scenario_wall_s": {},
        "quiet": {key: ctx[key] for key in QUIET_KEYS},
    }

    def run(name: str) -> None:
        log(f"== {name}: {(SCENARIOS[name].__doc__ or '').splitlines()[0]}")
        results["sections_run"][name] = int(time.time())
        results["machines"][name] = results["machine"]
        t_section = time.monotonic()
        later = only[only.index(name) + 1 :]
        ctx["section_end"] = t_section + USUAL_S.get(name, 0.0)
        ctx["after_s"] = sum(USUAL_S.get(n, 0.0) for n in later)
        results[name] = SCENARIOS[name](cfg[name], ctx)
        results["scenario_wall_s"][name] = round(time.monotonic() - t_section, 1)
        log(f"   ({name}: {results['scenario_wall_s'][name]:.1f} s)")

    if args.smoke:
        # Every scenario at once (the smoke's figures mean nothing; it proves that
        # every client and server runs): about the longest scenario's time.
        servers.PINNING = False
        with ThreadPoolExecutor(len(only)) as pool:
            list(pool.map(run, only))
    else:
        for name in only:
            run(name)
    failed = [f for name in only for f in failures(name, results[name])]
    results["wall_s"] = round(time.monotonic() - t0, 1)
    results["failures"] = failed
    results["retries_used"] = (0 if args.smoke else args.retry_budget) - ctx["retry_budget"]
    if not args.smoke:
        results["time_budget"] = {"budget_s": args.budget,
                                  "spent_s": round(ctx.get("spent_s", 0.0), 1)}  # fmt: skip
    if not args.smoke and set(only) != set(SCENARIOS):
        keep_previous(results, out / "latest.json")
    (out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    md_path.write_text(report.render(results))
    log(f"wrote {out / 'latest.json'} and {md_path}")
    for line in report.summary_lines(results):
        print(line)
    print(wall_times(results))
    if failed:
        log(f"failed runs: {', '.join(failed)}")
        return 1
    print(f"done in {results['wall_s']:.0f} s")
    return 0


def wall_times(results: dict[str, Any]) -> str:
    """Each scenario's wall time in this run, slowest first, and the total
    (the suite's budget is 5 minutes, the smoke run's about 10 s)."""
    walls = results.get("scenario_wall_s") or {}
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(walls.items(), key=lambda kv: -kv[1]))
    return f"wall time per scenario: {parts or 'none'}; total {results.get('wall_s', 0):.0f} s"


if __name__ == "__main__":
    sys.exit(main())
