"""The report: numbers from a results file, rendered into ``report.md.tmpl``.

:func:`summarize` reduces the raw runs of ``latest.json`` to medians and
ratios; :data:`GOALS` are the targets, each verdict (PASS/MISS) computed from
those numbers; :func:`render` fills the template's ``${name}`` fields (numbers,
verdicts, and table rows made only of client names and numbers). Every word of
prose is in the template. A field whose figure was not measured renders as
``n/a``. Medians skip failed runs, and disturbed runs when an undisturbed run
of the same client exists.
"""

from __future__ import annotations

import statistics
import string
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parent / "report.md.tmpl"
NAMES = {
    "floor": "floor",
    "floor-stream": "floor, streaming",
    "websockets": "websockets",
    "avatarkit-0.1.7": "avatarkit 0.1.7",
    "ours": "ours",
    "ours-on_animation": "ours, on_animation",
    "ours-frames": "ours, frames()",
    "ours-request": "ours, stream() request",
}
Runs = list[dict[str, Any]]


def _ok(runs: Runs) -> Runs:
    ok = [r for r in runs if r.get("ok") and r.get("available") is not False]
    return [r for r in ok if not r.get("disturbed")] or ok


def _med(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _get(d: Any, *path: str) -> Any:
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _budget(budget: dict[str, Any] | None) -> str:
    """The suite's time budget, and what waiting and repeating took of the run."""
    if not budget or not budget.get("budget_s"):  # (a smoke run has none)
        return ""
    spent, whole = fmt(budget.get("spent_s"), 0), fmt(budget.get("budget_s"), 0)
    return (
        f" Waiting for quiet, repeats and second runs took {spent} s; each is only started "
        f"while the suite can still end within {whole} s (the usual time of what is left "
        "counted ahead), so a noisy host leaves runs flagged or a count failed, never a "
        "longer suite."
    )


def _no_negative_zero(v: float | None) -> float | None:
    """``v``, but 0.0 where it would print as "-0" (a median just under the median)."""
    return 0.0 if v is not None and -0.5 < v < 0.5 else v


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.0f}%"


# --------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------


def _flood(runs: Runs) -> dict[str, Any]:
    ok = _ok(runs)
    cpu = [r["cpu_us_per_frame"] for r in ok]
    return {
        "cpu": _med(cpu),
        "min": min(cpu, default=None),
        "max": max(cpu, default=None),
        "fps": _med([r["frames_per_s"] for r in ok]),
        "lost": sum(r["frames_lost"] for r in ok) if ok else None,
        "share": _med([r["cpu_share"] for r in ok]),
        "srv_share": _med([_get(r, "server", "cpu_share") for r in ok]),
        "srv_us": _med([_get(r, "server", "cpu_us_per_frame_sent") for r in ok]),
    }


def _setup(runs: Runs) -> dict[str, Any]:
    ok = _ok(runs)
    return {
        "p50": _med([r["total"]["p50_ms"] for r in ok]),
        "p99": _med([r["total"]["p99_ms"] for r in ok]),
        "token": _med([r["token"]["p50_ms"] for r in ok]),
        "ws": _med([r["websocket"]["p50_ms"] for r in ok]),
        "cpu": _med([r["cpu_ms_per_setup"] for r in ok]),
        "srv_cpu": _med([_get(r, "server", "cpu_ms_per_setup") for r in ok]),
        # The collector's pauses during the measured set-ups: median count per run,
        # longest pause over the runs (runs before this figure existed: n/a).
        "gc_n": _med([sum(g["n"] for g in r["gc"].values()) for r in ok if r.get("gc")]),
        "gc_max": max(
            (g["max_ms"] for r in ok for g in (r.get("gc") or {}).values()), default=None
        ),
    }


def _realtime(runs: Runs) -> dict[str, Any]:
    ok = _ok(runs)
    failed = sum(1 for r in runs if not r.get("ok") and r.get("available") is not False)
    return {
        "p50": _med([r["delay"]["p50_ms"] for r in ok]),
        "p99": _med([r["delay"]["p99_ms"] for r in ok]),
        "max": max([r["delay"]["max_ms"] or 0 for r in ok], default=None),
        "lost": sum(r["frames_lost"] for r in ok) + failed if ok else None,
        "expected": sum(r["frames_expected"] for r in ok),
        "share": _med([r["cpu_share"] for r in ok]),
        "kib": _med([r["rss_kib_per_session"] for r in ok]),
        "lag": _med([r["send_lag"]["p99_ms"] for r in ok]),
        "srv_late": _med([_get(r, "server", "lateness", "p99_ms") for r in ok]),
    }


def _endlat(runs: Runs) -> dict[str, Any]:
    ok = _ok(runs)
    row: dict[str, Any] = {"runs": len(ok)}
    for mode in ("burst", "caught_up"):
        for q in ("p50", "p99"):
            row[f"{mode}_{q}"] = _med([r[mode]["end"][f"{q}_ms"] for r in ok])
    row["request"] = _med([r["burst"]["request"]["p50_ms"] for r in ok])
    return row


def _clientcap(results: dict[str, Any]) -> dict[str, Any]:
    """Each client's searched capacity, its ratios to 0.1.7 and the floor, its trials."""
    clients = _get(results, "clientcap", "clients") or {}
    rows: dict[str, Any] = {}
    for name in sorted(clients, key=list(NAMES).index):
        c = clients[name]
        if not c.get("available", True):
            continue
        trials = sorted(c.get("runs") or [], key=lambda r: r.get("sessions", 0))  # stable
        rows[name] = {
            "sessions": c.get("capacity"),
            "failed_at": c.get("failed_at"),
            "trials": ", ".join(
                f"{r.get('sessions')}: {fmt(_get(r, 'delay', 'p99_ms'), 1)} ms"
                f" (end frames {fmt(_get(r, 'delay_end_frame', 'p99_ms'), 1)},"
                f" server {fmt(_get(r, 'server', 'lateness', 'p99_ms'), 1)})"
                f"{'' if r.get('sustained') else ' **no**'}"
                f"{' (disturbed)' if r.get('disturbed') else ''}"
                f"{' (second run)' if r.get('second_run') else ''}"
                for r in trials
            ),
            "start": c.get("start"),
            # The server's send lateness p99, worst over the trials that held and the
            # first that failed: the server was not the limit if it stays small.
            "srv_late": max(
                (
                    _get(r, "server", "lateness", "p99_ms") or 0.0
                    for r in trials
                    if r.get("sustained") or r.get("sessions") == c.get("failed_at")
                ),
                default=None,
            ),
            "share": _med([r.get("cpu_share") for r in trials if r.get("sustained")][-1:]),
        }
        # Load-robust companion: the sessions that would fill the core if the CPU per
        # session stayed as measured at the largest count that held (CPU time is the
        # process's own, so other processes disturb it less than the delays).
        held = [r for r in trials if r.get("sustained") and r.get("cpu_share")]
        top = held[-1] if held else None
        rows[name]["cpu_bound"] = top["sessions"] / top["cpu_share"] if top else None
    for row in rows.values():
        row["x_017"] = _ratio(row["sessions"], _get(rows, "avatarkit-0.1.7", "sessions"))
        row["x_floor"] = _ratio(row["sessions"], _get(rows, "floor", "sessions"))
        row["cpu_x_017"] = _ratio(row["cpu_bound"], _get(rows, "avatarkit-0.1.7", "cpu_bound"))
        row["cpu_x_floor"] = _ratio(row["cpu_bound"], _get(rows, "floor", "cpu_bound"))
    return rows


def _machine_load(results: dict[str, Any]) -> dict[str, Any]:
    """How loaded the machine was: runs flagged disturbed, and the median number of
    cores other processes used during the runs (``interference`` of each run)."""
    seen: list[dict[str, Any]] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if isinstance(v.get("interference"), dict):
                seen.append(v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk({k: v for k, v in results.items() if k in (results.get("sections_run") or {})})
    foreign = [_get(r, "interference", "foreign_cores") for r in seen]
    slow = [_get(r, "interference", "host_slowdown") for r in seen]
    limit = _get(results, "quiet", "host_slow")
    return {
        "runs": len(seen),
        "disturbed": sum(1 for r in seen if r.get("disturbed")),
        "foreign": _med(foreign),
        "foreign_max": max((f for f in foreign if f is not None), default=None),
        # The host's speed (older results have none: n/a).
        "host_slow_runs": (
            sum(1 for v in slow if v is not None and v > limit) if limit is not None else None
        ),
        "host_slow_med": _med([100 * v for v in slow if v is not None]),
        "host_slow_max": max((100 * v for v in slow if v is not None), default=None),
    }


def _sends_blocked(results: dict[str, Any]) -> str:
    """Per client, the audio sends that suspended in the one-timer sender (real-time
    and client-capacity runs), e.g. ``ours 0, avatarkit 0.1.7 3``."""
    counts: dict[str, int] = {}
    runs = [r for m in (results.get("realtime") or {}).values() for rs in m.values() for r in rs]
    runs += [r for c in (_get(results, "clientcap", "clients") or {}).values()
             for r in c.get("runs") or []]  # fmt: skip
    for r in runs:
        if r.get("ok") and "sends_blocked" in r and r.get("client_name") in NAMES:
            name = NAMES[r["client_name"]]
            counts[name] = counts.get(name, 0) + int(r["sends_blocked"])
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "n/a"


def _memory(realtime: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Memory per open session as a slope: (growth at the largest count - growth
    at the smallest) / (difference of the counts), so that what a process pays
    once (imports, pools) is not divided among the sessions."""
    counts = sorted(realtime)
    if len(counts) < 2:
        return {}
    lo, hi = counts[0], counts[-1]
    rows: dict[str, Any] = {}
    for name in realtime[hi]:
        a, b = _get(realtime, lo, name, "kib"), _get(realtime, hi, name, "kib")
        if a is None or b is None:
            continue
        slope = (b * hi - a * lo) / (hi - lo)
        rows[name] = {"lo": a, "hi": b, "slope": slope, "fixed": a * lo - slope * lo}
    for row in rows.values():
        row["x_017"] = _ratio(row["slope"], _get(rows, "avatarkit-0.1.7", "slope"))
    return {"lo": lo, "hi": hi, "rows": rows}


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians and ratios of every scenario present in ``results``."""
    s: dict[str, Any] = {
        "flood": {n: _flood(r) for n, r in (results.get("flood") or {}).items()},
        "setup": {n: _setup(r) for n, r in (results.get("setup") or {}).items()},
        "realtime": {
            int(n): {c: _realtime(r) for c, r in m.items()}
            for n, m in (results.get("realtime") or {}).items()
        },
        "endlat": {n: _endlat(r) for n, r in (_get(results, "endlat", "runs") or {}).items()},
    }
    svc = _get(results, "service", "workers") or {}
    s["service"] = {
        "one": _get(svc, "1", "capacity") if "1" in svc else None,
        "scaling": _get(results, "service", "scaling"),
        "tested_one": [r.get("sessions") for r in _get(svc, "1", "rows") or []],
    }
    fl = s["flood"]
    for row in fl.values():
        row["x_floor"] = _ratio(row["cpu"], _get(fl, "floor", "cpu"))
        row["x_017"] = _ratio(row["cpu"], _get(fl, "avatarkit-0.1.7", "cpu"))
        row["x_ours"] = _ratio(row["cpu"], _get(fl, "ours", "cpu"))
    for row in s["setup"].values():
        row["x50"] = _ratio(row["p50"], _get(s, "setup", "avatarkit-0.1.7", "p50"))
        row["x99"] = _ratio(row["p99"], _get(s, "setup", "avatarkit-0.1.7", "p99"))
    for row in s["endlat"].values():
        for key in ("caught_up_p50", "caught_up_p99", "burst_p50", "burst_p99"):
            row["x_" + key] = _ratio(row[key], _get(s, "endlat", "avatarkit-0.1.7", key))
    top = s["realtime"].get(max(s["realtime"], default=0), {})
    s["rt_top"] = max(s["realtime"], default=None)
    s["rt_ours"] = top.get("ours", {})
    s["rt_mem_x_017"] = _ratio(_get(top, "ours", "kib"), _get(top, "avatarkit-0.1.7", "kib"))
    opus_rates = _get(results, "opus", "rates") or []
    s["opus"] = {r["rate"]: r for r in opus_rates}
    s["opus_min_x_rt"] = min((r["per_frame_x_realtime"] for r in opus_rates), default=None)
    s["opus_max_x_direct"] = max((r["per_frame_x_direct"] for r in opus_rates), default=None)
    s["anim"] = results.get("anim") if _get(results, "anim", "ok") else {}
    s["clientcap"] = _clientcap(results)
    s["memory"] = _memory(s["realtime"])
    s["tts"] = results.get("tts") if _get(results, "tts", "ok") else {}
    return s


# Goals: name -> (value from the summary, comparison, limit, the goal as shown).
# Figures that are only reported have no entry here; their text is in the template.
Check = Callable[[float, float], bool]
LE: Check = float.__le__
LT: Check = float.__lt__
GE: Check = float.__ge__
GOALS: dict[str, tuple[Callable[[dict[str, Any]], Any], Check, float, str]] = {
    "cpu_017": (lambda s: _get(s, "flood", "ours", "x_017"), LE, 0.5, "<= 0.5x"),
    "cpu_floor": (lambda s: _get(s, "flood", "ours", "x_floor"), LE, 1.3, "<= 1.3x"),
    "rt_p99": (lambda s: s["rt_ours"].get("p99"), LT, 20.0, "< 20 ms"),
    "rt_lost": (lambda s: s["rt_ours"].get("lost"), LE, 0.0, "0"),
    "rt_mem": (lambda s: s["rt_mem_x_017"], LE, 0.5, "<= 0.5x"),
    "setup_p50": (lambda s: _get(s, "setup", "ours", "x50"), LE, 0.5, "<= 0.5x"),
    "setup_p99": (lambda s: _get(s, "setup", "ours", "x99"), LE, 0.5, "<= 0.5x"),
    "capacity": (lambda s: s["service"]["one"], GE, 1000.0, ">= 1000"),
    "service_scaling": (lambda s: s["service"]["scaling"], GE, 1.7, ">= 1.7x"),
    "stream_frames": (lambda s: _get(s, "flood", "ours-frames", "x_ours"), LE, 1.3, "<= 1.3x"),
    "stream_request": (lambda s: _get(s, "flood", "ours-request", "x_ours"), LE, 1.3, "<= 1.3x"),
    "cc_017": (lambda s: _get(s, "clientcap", "ours", "x_017"), GE, 2.5, ">= 2.5x"),
    "cc_floor": (lambda s: _get(s, "clientcap", "ours", "x_floor"), GE, 0.85, ">= 0.85x"),
    "cc_req_017": (lambda s: _get(s, "clientcap", "ours-request", "x_017"), GE, 2.5, ">= 2.5x"),
    "cc_req_floor": (
        lambda s: _get(s, "clientcap", "ours-request", "x_floor"),
        GE,
        0.85,
        ">= 0.85x",
    ),
    "tts": (lambda s: _get(s, "tts", "stream_24k_x_send_audio"), LE, 2.0, "<= 2x"),
    "opus_rt": (lambda s: s["opus_min_x_rt"], GE, 100.0, ">= 100x"),
    "opus_cost": (lambda s: s["opus_max_x_direct"], LE, 1.2, "<= 1.2x"),
}


def verdicts(s: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """Each goal's measured value and verdict: PASS, MISS or n/a (not measured)."""
    out = {}
    for name, (value_of, check, limit, _) in GOALS.items():
        v = value_of(s)
        out[name] = (v, "n/a" if v is None else "PASS" if check(float(v), limit) else "MISS")
    return out


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _cells(r: dict[str, Any], spec: str) -> list[str]:
    """Formatted values of ``r`` by a spec such as ``"p50:3 share:%"``
    (key:digits, or key:% for a share shown as a percentage)."""
    out = []
    for item in spec.split():
        key, _, digits = item.partition(":")
        out.append(pct(r.get(key)) if digits == "%" else fmt(r.get(key), int(digits or 2)))
    return out


def _rows(s: dict[str, Any]) -> dict[str, str]:
    """Table rows (client names and numbers only) for the template."""
    t: dict[str, list[str]] = {}

    def add(table: str, *cells: Any) -> None:
        t.setdefault(table, []).append(_row(*cells))

    for name, r in s["flood"].items():
        spread = f"{fmt(r['cpu'], 3)} ({fmt(r['min'])}-{fmt(r['max'])})"
        add("flood", NAMES[name], spread, *_cells(r, "x_floor x_017 fps:0 lost"))
        add("server", NAMES[name], *_cells(r, "share:% srv_share:% srv_us:3"))
    for name, r in s["setup"].items():
        add("setup", NAMES[name], *_cells(r, "p50:3 p99:3 x50 x99 token:3 ws:3 cpu:3 srv_cpu:3"),
            f"{fmt(r['gc_n'], 0)} / {fmt(r['gc_max'], 2)}")  # fmt: skip
    for n, m in sorted(s["realtime"].items()):
        for name, r in m.items():
            delay = " / ".join(_cells(r, "p50 p99 max"))
            lost = f"{fmt(r['lost'])} / {r['expected']}"
            add("realtime", n, NAMES[name], delay, lost, *_cells(r, "share:% kib:1 lag srv_late"))
    for name, r in s["endlat"].items():
        cu, bu = _pair(r, "caught_up"), _pair(r, "burst")
        if name == "ours":
            cu += " ({}x / {}x)".format(*_cells(r, "x_caught_up_p50 x_caught_up_p99"))
            bu += " ({}x / {}x)".format(*_cells(r, "x_burst_p50 x_burst_p99"))
        add("endlat", NAMES[name], cu, bu, fmt(r["request"]), r["runs"])
    for name, r in s["clientcap"].items():
        add("clientcap", NAMES[name], fmt(r["sessions"]), *_cells(r, "x_017 x_floor failed_at"),
            pct(r["share"]), *_cells(r, "cpu_bound:0 cpu_x_017 cpu_x_floor srv_late:1 start"),
            r["trials"])  # fmt: skip
    mem = s["memory"]
    for name, r in (mem.get("rows") or {}).items():
        add("memory", NAMES[name], *_cells(r, "lo:1 hi:1 slope:1 x_017 fixed:0"))
    tts = s["tts"]
    for way in ("send_audio", "stream_16k", "stream_24k"):
        r = tts.get(way) or {}
        ratio = tts.get(f"{way}_x_send_audio", 1.0 if way == "send_audio" and r else None)
        add("tts", way, *_cells(r, "us_per_audio_s:1 min:1 max:1"), fmt(ratio))
    for rate, r in sorted(s["opus"].items()):
        spec = "direct_x_realtime:1 per_frame_x_realtime:1 whole_x_realtime:1 "
        add("opus", rate, *_cells(r, spec + "per_frame_x_direct:3 whole_x_direct:3 kbit_s:1"))
    tables = ("flood", "server", "setup", "realtime", "endlat", "opus", "clientcap", "memory",
              "tts")  # fmt: skip
    return {f"rows_{k}": "\n".join(t.get(k) or ["| n/a |"]) for k in tables}


def _machines(results: dict[str, Any]) -> str:
    """Each machine the scenarios ran on (a partial run keeps older scenarios)."""
    groups: dict[str, list[str]] = {}
    machines = results.get("machines") or dict.fromkeys(results.get("sections_run") or {},
                                                        results.get("machine"))  # fmt: skip
    keys = ("cpu_model", "nproc", "memory_gib", "kernel", "python", "loop")
    for section, m in machines.items():
        v = {key: (m or {}).get(key, "n/a") for key in keys}
        libs = ", ".join(f"{k} {n}" for k, n in ((m or {}).get("libraries") or {}).items())
        text = (f"{v['cpu_model']}, {v['nproc']} cores, {v['memory_gib']} GiB RAM, Linux "
                f"{v['kernel']}, Python {v['python']}, clients on {v['loop']}; {libs}")  # fmt: skip
        groups.setdefault(text, []).append(section)
    return "\n".join(f"- {text} (**{', '.join(names)}**)" for text, names in groups.items())


def _pair(row: dict[str, Any], mode: str) -> str:
    return f"{fmt(row.get(mode + '_p50'))} / {fmt(row.get(mode + '_p99'))}"


class _Fields(dict[str, str]):
    """Template fields; one that was not computed renders as ``n/a``."""

    def __missing__(self, key: str) -> str:
        return "n/a"


def fields(results: dict[str, Any]) -> dict[str, str]:
    """Every ``${name}`` of the template, from the results of one run."""
    s = summarize(results)
    f = _Fields(_rows(s))
    for name, (value, verdict) in verdicts(s).items():
        f[f"goal_{name}"] = GOALS[name][3]
        f[f"value_{name}"] = fmt(value)
        f[f"verdict_{name}"] = verdict
    from benchmarks.service_capacity import section as service_section

    service_cfg = (results.get("config") or {}).get("service") or {}
    load = _machine_load(results)
    quiet = results.get("quiet") or {}
    f.update(
        load_runs=fmt(load["runs"]),
        load_disturbed=fmt(load["disturbed"]),
        load_foreign=fmt(load["foreign"]),
        load_foreign_max=fmt(load["foreign_max"]),
        load_host_slow_runs=fmt(load["host_slow_runs"]),
        load_host_slow_med=fmt(_no_negative_zero(load["host_slow_med"]), 0),
        load_host_slow_max=fmt(load["host_slow_max"], 0),
        quiet_host_slow=fmt(100 * quiet["host_slow"], 0) if quiet.get("host_slow") else "n/a",
        machine_cores=fmt(_get(results, "machine", "nproc")),
        quiet_wait=fmt(quiet.get("quiet_wait_s", 15.0), 0),
        quiet_cores=fmt(quiet.get("disturbed_cores", 0.15)),
        quiet_retries=fmt(quiet.get("max_retries", 2)),
        service_capacity_section=service_section(results.get("service")),
        cfg_service_seconds=fmt(service_cfg.get("seconds"), 0),
        cfg_service_ramp_s=fmt(service_cfg.get("ramp_s"), 0),
        machines=_machines(results),
        wall_s=fmt(results.get("wall_s"), 0),
        wall_s_previous=(
            f" (the run the other scenarios were kept from: {fmt(results['wall_s_previous'], 0)} s)"
            if results.get("wall_s_previous")
            else ""
        ),
        retries=fmt(results.get("retries_used", 0)),
        slack=_budget(results.get("time_budget")),
        sections_run=", ".join(
            f"{k} {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(v))}"
            for k, v in (results.get("sections_run") or {}).items()
        ),
    )
    cfg = results.get("config") or {}
    for section, values in cfg.items():
        for k, v in (values if isinstance(values, dict) else {}).items():
            if not isinstance(v, list | dict):
                f[f"cfg_{section}_{k}"] = f"{v:g}" if isinstance(v, float) else str(v)
    for key in ("frames", "start", "most", "resolution", "bound_ms"):  # before its first run
        f.setdefault(f"cfg_clientcap_{key}", "n/a")
    walls = results.get("scenario_wall_s") or {}
    f["scenario_walls"] = ", ".join(f"{k} {v:.0f} s" for k, v in walls.items()) or "n/a"
    f["sends_blocked"] = _sends_blocked(results)
    f["cfg_service_tested"] = ", ".join(map(str, s["service"]["tested_one"])) or "n/a"
    fl, el = s["flood"], _get(s, "endlat", "ours") or {}
    ak_el = _get(s, "endlat", "avatarkit-0.1.7") or {}
    f.update(
        rt_n=fmt(s["rt_top"]),
        frames_us=fmt(_get(fl, "ours-frames", "cpu"), 3),
        frames_x=fmt(_get(fl, "ours-frames", "x_ours")),
        request_us=fmt(_get(fl, "ours-request", "cpu"), 3),
        request_x=fmt(_get(fl, "ours-request", "x_ours")),
        floor_stream_x=fmt(_get(fl, "floor-stream", "x_floor")),
        cc_floor_x_017=fmt(_get(s, "clientcap", "floor", "x_017")),
        cc_floor_cpu_x_017=fmt(_get(s, "clientcap", "floor", "cpu_x_017")),
        cc_floor_srv_late=fmt(_get(s, "clientcap", "floor", "srv_late"), 1),
        service_cpu_scaling=fmt(_get(results, "service", "cpu_scaling", "estimate")),
        frames_x_floor_stream=fmt(
            _ratio(_get(fl, "ours-frames", "cpu"), _get(fl, "floor-stream", "cpu"))
        ),
        request_x_floor_stream=fmt(
            _ratio(_get(fl, "ours-request", "cpu"), _get(fl, "floor-stream", "cpu"))
        ),
        mem_lo=fmt(_get(s, "memory", "lo")),
        mem_hi=fmt(_get(s, "memory", "hi")),
        mem_slope=fmt(_get(s, "memory", "rows", "ours", "slope"), 1),
        mem_slope_x_017=fmt(_get(s, "memory", "rows", "ours", "x_017")),
        tts_resample_us=fmt(
            None
            if not s["tts"]
            else s["tts"]["stream_24k"]["us_per_audio_s"]
            - s["tts"]["stream_16k"]["us_per_audio_s"],
            0,
        ),
        on_animation_x=fmt(_get(fl, "ours-on_animation", "x_ours")),
        floor_fps=fmt(_get(fl, "floor", "fps"), 0),
        floor_share=pct(_get(fl, "floor", "share")),
        endlat_caught_up=_pair(el, "caught_up"),
        endlat_burst=_pair(el, "burst"),
        endlat_017_caught_up=_pair(ak_el, "caught_up"),
        endlat_017_burst=_pair(ak_el, "burst"),
    )
    a = s["anim"]
    for key in (
        "push_us_per_frame",
        "encode_us_per_frame",
        "total_us_per_frame",
        "push_batch10_us_per_frame",
        "frames_per_pass",
        "repeat",
    ):
        f[f"anim_{key}"] = fmt(a.get(key))
    f["pyav"] = fmt(_get(results, "opus", "pyav"))
    f["opus_runs"] = fmt(min((r["runs"] for r in s["opus"].values()), default=None))
    return f


def render(results: dict[str, Any]) -> str:
    """BENCHMARKS.md for ``results`` (the template with every field filled):
    every figure in it comes from this one results file."""
    return string.Template(TEMPLATE.read_text()).substitute(fields(results))


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The goal verdicts, one line each, for the console."""
    return [
        f"[{verdict}] {name}: {fmt(value)} (goal {GOALS[name][3]})"
        for name, (value, verdict) in verdicts(summarize(results)).items()
    ]
