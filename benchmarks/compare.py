"""Before/after table of two SDK commits, measured by the same suite on one machine.

``python -m benchmarks.compare --before-commit C1 --after-commit C2 --before
DIR... --after DIR... --out benchmarks/results/before_after.json`` reads each
run directory's ``latest.json`` (a ``python -m benchmarks --only ... --out
DIR`` run) and, when present, ``DIR.setup_latency.log`` (the ``RESULT`` line of
``python -m benchmarks.setup_latency``), reduces each run to the figures in
:data:`FIGURES` with :func:`benchmarks.report.summarize`, and writes the
per-run values, each side's median, min and max, and after / before. The
report reads that file (``${ba_...}`` fields of ``report.md.tmpl``).

Why ratios too: on a shared machine absolute CPU times move with the load,
but ours / avatarkit 0.1.7 and ours / floor, measured in the same run a few
seconds apart, move much less; runs of the two sides should be interleaved
(before, after, before, after, ...) so that both see the same load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.common import parse_result

Summary = dict[str, Any]


def _g(*path: Any) -> Callable[[Summary], Any]:
    def get(s: Summary) -> Any:
        d: Any = s
        for key in path:
            d = d.get(key) if isinstance(d, dict) else None
        return d

    return get


def _rt(key: str, n: int | None = None) -> Callable[[Summary], Any]:
    """Ours at ``n`` real-time sessions (None: the largest count measured)."""
    return lambda s: _g("ours", key)(s["realtime"].get(s["rt_top"] if n is None else n, {}))


def _rt_x_017(key: str, n: int | None = None) -> Callable[[Summary], Any]:
    """Ours / avatarkit 0.1.7 at ``n`` real-time sessions (None: the largest)."""

    def get(s: Summary) -> Any:
        at = s["realtime"].get(s["rt_top"] if n is None else n, {})
        return report._ratio(_g("ours", key)(at), _g("avatarkit-0.1.7", key)(at))

    return get


# Figure id -> its value in one run's summary (None when not measured).
# The setup-latency figures ("sl_") come from benchmarks.setup_latency instead.
FIGURES: dict[str, Callable[[Summary], Any]] = {
    "flood_ours_us": _g("flood", "ours", "cpu"),
    "flood_017_us": _g("flood", "avatarkit-0.1.7", "cpu"),
    "flood_floor_us": _g("flood", "floor", "cpu"),
    "flood_x_017": _g("flood", "ours", "x_017"),
    "flood_x_floor": _g("flood", "ours", "x_floor"),
    "rt_p99_ms": _rt("p99"),
    "rt_p99_x_017": _rt_x_017("p99"),
    "rt_lost": _rt("lost"),
    "rt_kib": _rt("kib"),
    "rt_mem_x_017": lambda s: s["rt_mem_x_017"],
    "rt100_p99_ms": _rt("p99", 100),
    "rt100_p99_x_017": _rt_x_017("p99", 100),
    "rt100_lost": _rt("lost", 100),
    "rt100_kib": _rt("kib", 100),
    "rt100_mem_x_017": _rt_x_017("kib", 100),
    "setup_p50_ms": _g("setup", "ours", "p50"),
    "setup_p99_ms": _g("setup", "ours", "p99"),
    "setup_token_p50_ms": _g("setup", "ours", "token"),
    "setup_ws_p50_ms": _g("setup", "ours", "ws"),
    "setup_x50": _g("setup", "ours", "x50"),
    "setup_x99": _g("setup", "ours", "x99"),
    "sl_p50_ms": lambda s: None,
    "sl_p99_ms": lambda s: None,
}


def run_figures(run_dir: Path) -> dict[str, Any]:
    """The figures of one run directory (its ``latest.json`` and setup-latency log)."""
    s = report.summarize(json.loads((run_dir / "latest.json").read_text()))
    out = {name: get(s) for name, get in FIGURES.items()}
    log = run_dir.with_name(run_dir.name + ".setup_latency.log")
    sl = parse_result(log.read_text()) if log.is_file() else None
    if sl:
        out["sl_p50_ms"], out["sl_p99_ms"] = sl["p50_ms"], sl["p99_ms"]
    out["run"] = run_dir.name
    return out


def side(commit: str, dirs: list[Path]) -> dict[str, Any]:
    """Per-run figures and their median, min and max for one commit."""
    runs = [run_figures(d) for d in dirs]
    stats: dict[str, dict[str, float | None]] = {}
    for name in FIGURES:
        vals = [r[name] for r in runs if r[name] is not None]
        stats[name] = {
            "median": statistics.median(vals) if vals else None,
            "min": min(vals, default=None),
            "max": max(vals, default=None),
        }
    return {"commit": commit, "runs": runs, "stats": stats}


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | None]:
    """after median / before median, per figure (None when either is missing or 0)."""
    return {
        name: report._ratio(after["stats"][name]["median"], before["stats"][name]["median"])
        for name in FIGURES
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--before-commit", required=True)
    p.add_argument("--after-commit", required=True)
    p.add_argument("--before", nargs="+", type=Path, required=True, help="run directories")
    p.add_argument("--after", nargs="+", type=Path, required=True, help="run directories")
    p.add_argument("--method", default="", help="how the runs were made (stored as is)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    missing = [str(d) for d in (*args.before, *args.after) if not (d / "latest.json").is_file()]
    if missing:
        p.error(f"no latest.json in {', '.join(missing)}: run python -m benchmarks --out DIR")
    before = side(args.before_commit, args.before)
    after = side(args.after_commit, args.after)
    first = json.loads((args.before[0] / "latest.json").read_text())
    data = {
        "schema": 1,
        "method": args.method,
        "config": first.get("config"),
        "machine": first.get("machine"),
        "started_unix": min(
            json.loads((d / "latest.json").read_text()).get("started_unix", 0)
            for d in (*args.before, *args.after)
        ),
        "before": before,
        "after": after,
        "after_x_before": compare(before, after),
    }
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    for name, x in data["after_x_before"].items():
        b, a = before["stats"][name]["median"], after["stats"][name]["median"]
        print(f"{name:16} before {report.fmt(b, 3):>9}  after {report.fmt(a, 3):>9}  "
              f"after/before {report.fmt(x, 3)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
