"""Memory per open session as a curve over session counts, for one or two SDK trees.

``python -m benchmarks.memcurve --before-src DIR [--counts 10,30,100,300,1000]``
starts the flood server, then for each count and each tree (``DIR``, e.g. an
older commit's ``src/`` from ``git archive``, and this repository's ``src/``)
runs a child process that opens that many sessions (``init()`` + ``start()``,
``--concurrency`` at a time, after one warm-up session) and reports its
resident-memory growth (VmRSS after - before) and, in a second child, the
growth of the Python heap (``tracemalloc``). The slope between two counts is
the cost of one more session; growth / count at a small count also carries
what the process pays once. Writes ``results/memory_curve.json`` (read by the
report when present; not rewritten by ``python -m benchmarks``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks.common import API_KEY, APP_ID, AVATAR_ID, log, parse_result, vmrss_kib
from benchmarks.servers.flood import FloodServer

ROOT = Path(__file__).resolve().parent.parent


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    import avatarkit

    def session() -> Any:
        return avatarkit.new_avatar_session(
            api_key=API_KEY, app_id=APP_ID, avatar_id=AVATAR_ID,
            console_endpoint_url=args.console, ingress_endpoint_url=args.ingress,
            expire_at=datetime.now(timezone.utc) + timedelta(hours=1), sample_rate=16000,
            transport_frames=lambda message, end: None,
        )  # fmt: skip

    async def open_one(sem: asyncio.Semaphore) -> Any:
        async with sem:
            s = session()
            await s.init()
            await s.start()
            return s

    warm = await open_one(asyncio.Semaphore(1))
    await warm.close()
    gc.collect()
    if args.tracemalloc:
        tracemalloc.start()
    rss0, heap0 = vmrss_kib(), tracemalloc.get_traced_memory()[0]
    sem = asyncio.Semaphore(args.concurrency)
    sessions = await asyncio.gather(*(open_one(sem) for _ in range(args.sessions)))
    await asyncio.sleep(0.2)
    gc.collect()
    rss1, heap1 = vmrss_kib(), tracemalloc.get_traced_memory()[0]
    await asyncio.gather(*(s.close() for s in sessions))
    out = {"rss_base_kib": rss0, "rss_growth_kib": rss1 - rss0, "sessions": args.sessions}
    if args.tracemalloc:
        out["heap_growth_kib"] = round((heap1 - heap0) / 1024, 1)
    return out


def _run_child(src: str, server: dict[str, Any], n: int, conc: int, tm: bool) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=src, PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "benchmarks.memcurve", "--child", "--console",
           server["console"], "--ingress", server["ingress"], "--sessions", str(n),
           "--concurrency", str(conc)]  # fmt: skip
    if tm:
        cmd.append("--tracemalloc")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=300)
    res = parse_result(r.stdout)
    if res is None:
        return {"ok": False, "error": (r.stderr or r.stdout).strip().splitlines()[-3:]}
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--console")
    p.add_argument("--ingress")
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--before-src", help="the other tree's src/ (e.g. from git archive)")
    p.add_argument("--before-label", default="before")
    p.add_argument("--counts", default="10,30,100,300,1000")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory_curve.json"))
    args = p.parse_args(argv)
    if args.child:
        import uvloop

        uvloop.install()
        result = asyncio.run(_child(args))
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        return 0
    trees = {"this tree": str(ROOT / "src")}
    if args.before_src:
        trees = {args.before_label: args.before_src, **trees}
    counts = [int(x) for x in args.counts.split(",")]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {t: {} for t in trees}
    with FloodServer("--mode", "realtime", "--frames", "10") as server:
        for rep in range(args.repeats):
            for n in counts:
                for label, src in trees.items():  # interleaved: load drifts alike
                    for tm in (False, True):
                        res = _run_child(src, server, n, args.concurrency, tm)
                        res["tracemalloc"] = tm
                        runs[label].setdefault(str(n), []).append(res)
                        log(f"[{rep + 1}/{args.repeats}] {label} {n} sessions: {res}")
    out = {"started_unix": time.time(), "concurrency": args.concurrency, "counts": counts,
           "trees": list(trees), "runs": runs}  # fmt: skip
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
