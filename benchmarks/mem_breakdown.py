"""Where our SDK's memory per session goes: ``python benchmarks/mem_breakdown.py``.

Opens ``--sessions`` sessions of this repository's SDK (uvloop, the public
API as in ``sdk_runner.py``) against the flood server in real-time mode and
reports, per session:

1. VmRSS after all are open (set-up done, nothing streamed), minus VmRSS
   before, as in the real-time benchmark;
2. the objects the garbage collector tracks, by type (count and size per
   session): which library each comes from;
3. bytes traced by ``tracemalloc`` (a second pass: tracing itself costs
   memory, so its RSS is not reported), grouped by the innermost Python
   file on the allocating stack; allocations made in C callbacks of the
   event loop (picows's frame and handshake handling, uvloop's transports)
   have no Python frame of their own and show up as "event loop callbacks";
4. VmRSS at the peak of 3 s of real-time streaming (a 40 ms chunk every
   40 ms per session), with one sender task per session as the benchmark
   runs it, and the same with sender tasks that send nothing, so that the
   sender tasks' own memory (the application's, the same for every client)
   can be told from the SDK's.

Prints a Markdown report on stdout; ``python -m benchmarks`` embeds it in
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "src"))

import avatarkit  # noqa: E402
from avatarkit import _loopguard  # noqa: E402

CHUNK = bytes(1280)  # 40 ms of 16 kHz PCM


def vmrss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _type_name(obj: object) -> str:
    t = type(obj)
    return f"{getattr(t, '__module__', '?')}.{getattr(t, '__qualname__', '?')}"


async def _open(urls: dict[str, str], n: int) -> list[Any]:
    expire = datetime.now(timezone.utc) + timedelta(hours=1)

    def ignore(buf: bytes, is_last: bool) -> None:
        pass

    sessions = []
    for start in range(0, n, 32):
        batch = [
            avatarkit.new_avatar_session(
                api_key="k",
                app_id="bench-app",
                avatar_id="bench-avatar",
                console_endpoint_url=urls["console"],
                ingress_endpoint_url=urls["ingress"],
                expire_at=expire,
                transport_frames=ignore,
                on_error=lambda e: None,
                on_close=lambda *a: None,
            )
            for _ in range(min(32, n - start))
        ]
        await asyncio.gather(*(s.init() for s in batch))
        await asyncio.gather(*(s.start() for s in batch))
        sessions += batch
    return sessions


async def _stream(sessions: list[Any], send: bool, seconds: float) -> int:
    """Peak VmRSS (KiB) while every session streams for ``seconds``."""
    n = len(sessions)
    chunks = int(seconds / 0.04)
    t0 = time.monotonic() + 0.2
    peak = vmrss_kib()
    done = False

    async def feeder(i: int, session: Any) -> None:
        base = t0 + 0.04 * i / n
        for k in range(chunks):
            wait = base + k * 0.04 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if send:
                await session.send_audio(CHUNK, end=k == chunks - 1)

    async def sampler() -> None:
        nonlocal peak
        while not done:
            peak = max(peak, vmrss_kib())
            await asyncio.sleep(0.2)

    task = asyncio.get_running_loop().create_task(sampler())
    await asyncio.gather(*(feeder(i, s) for i, s in enumerate(sessions)))
    done = True
    await task
    return max(peak, vmrss_kib())


async def measure(urls: dict[str, str], n: int, mode: str) -> dict[str, Any]:
    warm = await _open(urls, 1)
    await asyncio.gather(*(s.close() for s in warm))
    del warm
    gc.collect()
    out: dict[str, Any] = {}
    if mode == "trace":
        tracemalloc.start(12)
        snap0 = tracemalloc.take_snapshot()
    else:
        types0 = collections.Counter(_type_name(o) for o in gc.get_objects())
    rss0 = vmrss_kib()
    sessions = await _open(urls, n)
    await asyncio.sleep(0.3)
    gc.collect()
    if mode == "trace":
        snap1 = tracemalloc.take_snapshot()
        tracemalloc.stop()
        groups: collections.Counter[str] = collections.Counter()
        for stat in snap1.compare_to(snap0, "traceback"):
            frames = list(stat.traceback)  # oldest first
            groups[_where(frames[-1].filename if frames else "?")] += stat.size_diff
        out["traced"] = {k: v / n for k, v in groups.items()}
    else:
        out["rss_open_kib"] = (vmrss_kib() - rss0) / n
        objs = gc.get_objects()
        types1 = collections.Counter(_type_name(o) for o in objs)
        sizes: collections.Counter[str] = collections.Counter()
        for o in objs:
            sizes[_type_name(o)] += sys.getsizeof(o)
        out["types"] = [
            (name, count / n, sizes[name] / types1[name])
            for name, count in (types1 - types0).most_common()
            if count / n >= 0.5
        ]
        del objs
        peak_idle = await _stream(sessions, send=False, seconds=3.0)
        out["rss_stream_nosend_kib"] = (peak_idle - rss0) / n
        peak_send = await _stream(sessions, send=True, seconds=3.0)
        out["rss_stream_kib"] = (peak_send - rss0) / n
    await asyncio.gather(*(s.close() for s in sessions))
    await _loopguard.aclose()  # private on purpose: the loop shutdown does it in apps
    return out


def _where(filename: str) -> str:
    path = filename.replace("\\", "/")
    for lib in ("picows", "aiofastnet", "uvloop", "avatarkit", "multidict", "aiohttp"):
        if f"/{lib}/" in path:
            return lib
    if path.endswith(("asyncio/runners.py", "uvloop/__init__.py")):
        return "event loop callbacks (C: picows, uvloop)"
    if "mem_breakdown" in path:
        return "this script (sessions' config, callbacks)"
    return "other: " + path.rsplit("/", 1)[-1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--mode", choices=("rss", "trace"), help=argparse.SUPPRESS)
    p.add_argument("--console", help=argparse.SUPPRESS)
    p.add_argument("--ingress", help=argparse.SUPPRESS)
    args = p.parse_args()
    import uvloop

    if args.mode:  # one measuring process
        urls = {"console": args.console, "ingress": args.ingress}
        print(json.dumps(uvloop.run(measure(urls, args.sessions, args.mode))))
        return 0
    server = subprocess.Popen(
        [sys.executable, str(BENCH / "flood_server.py"), "--mode", "realtime",
         "--frames", "1000000", "--max-seconds", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        info = json.loads(line.split(" ", 1)[1])
        res: dict[str, Any] = {}
        for mode in ("rss", "trace"):
            proc = subprocess.run(
                [sys.executable, __file__, "--mode", mode, "--sessions", str(args.sessions),
                 "--console", info["console"], "--ingress", info["ingress"]],
                capture_output=True, text=True, check=True, env={**os.environ},
            )  # fmt: skip
            res.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        server.terminate()
        server.wait()
    print(report(res, args.sessions))
    return 0


def report(res: dict[str, Any], n: int) -> str:
    sdk_stream = res["rss_stream_kib"] - res["rss_stream_nosend_kib"]
    lines = [
        f"{n} sessions of this SDK on uvloop, per session:",
        "",
        "| measure | KiB |",
        "|---|---:|",
        f"| VmRSS, all open (set-up done, nothing streamed) | {res['rss_open_kib']:.2f} |",
        "| VmRSS peak, streaming with one sender task per session | "
        f"{res['rss_stream_kib']:.2f} |",
        "| VmRSS peak, the same sender tasks sending nothing | "
        f"{res['rss_stream_nosend_kib']:.2f} |",
        f"| so: what streaming adds in the SDK | {sdk_stream:.2f} |",
        "| so: the sender tasks themselves (the application's) | "
        f"{res['rss_stream_nosend_kib'] - res['rss_open_kib']:.2f} |",
        "",
        "Bytes traced by tracemalloc per open session, by where they were allocated:",
        "",
        "| allocated in | bytes |",
        "|---|---:|",
    ]
    traced = sorted(res["traced"].items(), key=lambda kv: -kv[1])
    for where, size in traced:
        if abs(size) >= 16:
            lines.append(f"| {where} | {size:.0f} |")
    lines.append(f"| total | {sum(v for _, v in traced):.0f} |")
    lines += [
        "",
        "Objects tracked by the garbage collector, per open session (types with at least "
        "one per two sessions; buffers such as picows's 2 KiB read and 1 KiB write buffers "
        "are not objects and are not listed):",
        "",
        "| type | count | bytes each |",
        "|---|---:|---:|",
    ]
    for name, count, each in res["types"]:
        lines.append(f"| `{name}` | {count:.2f} | {each:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
