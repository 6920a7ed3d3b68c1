"""docs/benchmark-history.md: the one-off comparisons that no run of the suite rewrites.

``python -m benchmarks.history`` renders ``history.md.tmpl`` with the
before/after table of two commits (``results/before_after.json``, written by
``python -m benchmarks.compare``) and the memory-per-session curve
(``results/memory_curve.json``, written by ``python -m benchmarks.memcurve``)
into ``docs/benchmark-history.md``. BENCHMARKS.md holds only the figures of
the run that wrote it and links here for these older ones.
"""

from __future__ import annotations

import json
import string
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import _Fields, _get, _med, _row, fmt

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "history.md.tmpl"
RESULTS = HERE / "results"
OUT = HERE.parent / "docs" / "benchmark-history.md"


def before_after_fields(data: dict[str, Any] | None) -> dict[str, str]:
    """``ba_*`` fields from a ``benchmarks.compare`` file (``results/before_after.json``):
    per figure ``ba_<id>_before``/``_after`` (median (min-max) of the runs),
    ``ba_<id>_x`` (after / before of the medians) and ``ba_<id>_delta`` (after -
    before); ``n/a`` without the file."""
    f: dict[str, str] = {}
    if not data:
        return f
    before, after = data["before"], data["after"]
    for name, x in data["after_x_before"].items():
        for label, side in (("before", before), ("after", after)):
            st = side["stats"][name]
            digits = 0 if name.endswith("_lost") else 3 if "_x" in name else 2
            spread = f" ({fmt(st['min'], digits)}-{fmt(st['max'], digits)})"
            f[f"ba_{name}_{label}"] = fmt(st["median"], digits) + (
                spread if st["median"] is not None else ""
            )
        f[f"ba_{name}_x"] = fmt(x, 3)
        b, a = before["stats"][name]["median"], after["stats"][name]["median"]
        f[f"ba_{name}_delta"] = "n/a" if a is None or b is None else f"{a - b:+.3f}"
    f["ba_before_commit"] = str(before["commit"])
    f["ba_after_commit"] = str(after["commit"])
    f["ba_runs"] = f"{len(before['runs'])} + {len(after['runs'])}"
    f["ba_method"] = str(data.get("method") or "n/a")
    f["ba_date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(data.get("started_unix", 0)))
    cfg = data.get("config") or {}
    f["ba_rt_top"] = str(max(_get(cfg, "realtime", "sessions") or ["n/a"]))
    f["ba_rt_sessions"] = ", ".join(map(str, _get(cfg, "realtime", "sessions") or [])) or "n/a"
    f["ba_machine"] = "{} ({} cores)".format(
        _get(data, "machine", "cpu_model") or "n/a", _get(data, "machine", "nproc") or "n/a"
    )
    return f


def memory_curve_fields(data: dict[str, Any] | None) -> dict[str, str]:
    """``mc_*`` fields from ``results/memory_curve.json`` (``benchmarks.memcurve``):
    per count and tree, resident and Python-heap growth per session (medians),
    and the slope between the two largest counts; ``n/a`` without the file."""
    f: dict[str, str] = {}
    if not data:
        return f
    trees, counts = data["trees"], data["counts"]

    def med(tree: str, n: int, key: str, tm: bool) -> float | None:
        runs = data["runs"][tree].get(str(n)) or []
        return _med([r.get(key) for r in runs if r.get("tracemalloc") is tm])

    rows = []
    for n in counts:
        cells: list[str] = [str(n)]
        for key, tm in (("rss_growth_kib", False), ("heap_growth_kib", True)):
            for tree in trees:
                v = med(tree, n, key, tm)
                cells.append(fmt(None if v is None else v / n, 2))
        rows.append(_row(*cells))
    f["rows_memcurve"] = "\n".join(rows)
    f["mc_head"] = " | ".join(f"{k} {t}" for k in ("RSS", "Python heap") for t in trees)
    f["mc_align"] = "|".join("---:" for _ in range(2 * len(trees)))
    lo, hi = sorted(counts)[-2:] if len(counts) >= 2 else (None, None)
    slopes = []
    for tree in trees:
        a, b = med(tree, lo, "rss_growth_kib", False), med(tree, hi, "rss_growth_kib", False)
        slope = None if a is None or b is None else (b - a) / (hi - lo)
        small = med(tree, min(counts), "rss_growth_kib", False)
        slopes.append(f"{tree}: {fmt(slope)} KiB per added session")
        if small is not None:
            slopes[-1] += f" (growth at {min(counts)} sessions: {fmt(small, 0)} KiB)"
        f[f"mc_base_{trees.index(tree)}"] = fmt(_med([r.get("rss_base_kib") for r in
                                                    data["runs"][tree][str(hi)]]), 0)  # fmt: skip
    f["mc_slopes"] = "; ".join(slopes)
    f["mc_lo"], f["mc_hi"] = str(lo), str(hi)
    f["mc_concurrency"] = str(data.get("concurrency"))
    f["mc_date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(data.get("started_unix", 0)))
    f["mc_trees"] = " and ".join(trees)
    return f


def load(path: Path) -> dict[str, Any] | None:
    """A results file, or None when it is absent."""
    return json.loads(path.read_text()) if path.is_file() else None  # type: ignore[no-any-return]


def render(before_after: dict[str, Any] | None, memory_curve: dict[str, Any] | None) -> str:
    """The history page for the two files (a field without its file is ``n/a``)."""
    f = _Fields()
    f.update(before_after_fields(before_after))
    f.update(memory_curve_fields(memory_curve))
    return string.Template(TEMPLATE.read_text()).substitute(f)


def main() -> int:
    text = render(load(RESULTS / "before_after.json"), load(RESULTS / "memory_curve.json"))
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
