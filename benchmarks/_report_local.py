"""Summaries, goal rows, BENCHMARKS.md sections and plot panels for the
figures measured against the local avatar service (end latency, capacity,
animation analysis) and for our SDK's other frame APIs in the flood."""

from __future__ import annotations

import statistics
from typing import Any

LATENESS_GOAL_MS = 40.0
CAPACITY_GOAL = 300
SDK_SHORT = {"avatarkit-0.1.7": "avatarkit 0.1.7", "ours": "ours"}


def _ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ok = [r for r in runs if r.get("ok") and r.get("available") is not False]
    quiet = [r for r in ok if not r.get("disturbed")]
    return quiet or ok


def _med(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


# --------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------


def summarize_endlat(endlat: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, runs in ((endlat or {}).get("runs") or {}).items():
        ok = _ok(runs)
        row: dict[str, Any] = {
            "available": not any(r.get("available") is False for r in runs),
            "runs": len(ok),
            "timeouts": sum(r.get("timeouts", 0) for r in ok),
        }
        for mode in ("burst", "caught_up"):
            row[f"{mode}_p50_ms"] = _med([r[mode]["end"]["p50_ms"] for r in ok])
            row[f"{mode}_p99_ms"] = _med([r[mode]["end"]["p99_ms"] for r in ok])
            row[f"{mode}_max_ms"] = max([r[mode]["end"]["max_ms"] or 0 for r in ok], default=None)
        row["request_p50_ms"] = _med([r["burst"]["request"]["p50_ms"] for r in ok])
        out[name] = row
    ak, ours = out.get("avatarkit-0.1.7", {}), out.get("ours", {})
    for mode in ("burst", "caught_up"):
        for q in ("p50", "p99"):
            a, b = ours.get(f"{mode}_{q}_ms"), ak.get(f"{mode}_{q}_ms")
            if ours:
                ours[f"{mode}_{q}_x_017"] = a / b if a is not None and b else None
    return out


def _steady(run: dict[str, Any], key: str) -> Any:
    return (run.get("steady") or {}).get(key, run.get(key))


def _capacity_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = _ok(runs)
    lat = [r["lateness"] for r in ok]
    expected = sum(r["frames_expected"] for r in ok)
    late = sum(r.get("frames_late_40ms", 0) for r in ok)
    p99s = [x["p99_ms"] for x in lat if x["p99_ms"] is not None]
    lost = sum(r["frames_lost"] for r in ok)
    failed = sum(1 for r in runs if not r.get("ok"))
    return {
        "runs": len(ok),
        "failed_runs": failed,
        "disturbed_excluded": sum(1 for r in runs if r.get("disturbed"))
        if any(r.get("ok") and not r.get("disturbed") for r in runs)
        else 0,
        "lateness_p50_ms": _med([x["p50_ms"] for x in lat]),
        "lateness_p99_ms": _med(p99s),
        "lateness_p99_worst_ms": max(p99s) if p99s else None,
        "lateness_max_ms": max([x["max_ms"] or 0 for x in lat], default=None),
        "late_share": late / expected if expected else None,
        "frames_lost": lost,
        "frames_expected": expected,
        # Steady state when the run was long enough to have one, else the whole window.
        "server_cpu_share": _med([_steady(r, "server_cpu_share") for r in ok]),
        "server_us_per_frame": _med([_steady(r, "server_cpu_us_per_frame") for r in ok]),
        "client_cpu_share": _med([_steady(r, "cpu_share") for r in ok]),
        "send_lag_p99_ms": _med([r["send_lag"]["p99_ms"] for r in ok]),
        "sustained": bool(ok)
        and failed == 0
        and lost == 0
        and bool(p99s)
        and max(p99s) < LATENESS_GOAL_MS,
    }


def summarize_capacity(cap: dict[str, Any] | None) -> dict[str, Any]:
    if not cap:
        return {}
    rows = {n: _capacity_row(runs) for n, runs in (cap.get("runs") or {}).items()}
    capacity = None
    for n in sorted(rows, key=int):
        if not rows[n]["sustained"]:
            break
        capacity = int(n)
    top = max((int(n) for n in rows), default=None)
    return {
        "rows": rows,
        "strict": _capacity_row(cap["strict"]) if cap.get("strict") else None,
        "strict_sessions": (cap["strict"][0].get("sessions") if cap.get("strict") else None),
        "capacity": capacity,
        "capacity_is_top": capacity is not None and capacity == top,
        "tested": sorted(int(n) for n in rows),
    }


def summarize_streaming(flood: dict[str, Any]) -> dict[str, Any]:
    ours = (flood.get("ours") or {}).get("cpu_us_per_frame")
    out: dict[str, Any] = {}
    for name in ("ours-on_animation", "ours-frames"):
        v = (flood.get(name) or {}).get("cpu_us_per_frame")
        out[name] = {"cpu_us_per_frame": v, "x_callback": v / ours if v and ours else None}
    return out


def summarize_local(results: dict[str, Any], s: dict[str, Any]) -> None:
    s["endlat"] = summarize_endlat(results.get("endlat"))
    s["capacity"] = summarize_capacity(results.get("capacity"))
    s["streaming"] = summarize_streaming(s.get("flood", {}))
    before = results.get("devserver_before")
    s["before"] = (
        {
            "capacity": summarize_capacity(before.get("capacity")),
            "anim": before.get("anim"),
            "profile": before.get("service_profile"),
            "label": before.get("label", "before"),
        }
        if before
        else None
    )


# --------------------------------------------------------------------------
# goals
# --------------------------------------------------------------------------


def local_goals(s: dict[str, Any], results: dict[str, Any]) -> list[dict[str, Any]]:
    g: list[dict[str, Any]] = []
    e = s.get("endlat") or {}
    ours, ak = e.get("ours"), e.get("avatarkit-0.1.7")
    chunks = (results.get("config", {}).get("endlat") or {}).get("request_chunks", 25)
    if ours and ours.get("runs"):
        for mode, what in (
            ("caught_up", "the service had sent every frame it could"),
            ("burst", f"all {chunks} chunks sent back to back"),
        ):
            theirs = ""
            if ak and ak.get("runs"):
                theirs = (
                    f" (avatarkit 0.1.7: {_fmt(ak[f'{mode}_p50_ms'])} / "
                    f"{_fmt(ak[f'{mode}_p99_ms'])} ms)"
                )
            g.append(
                {
                    "figure": "time from the last audio chunk's send to the `end` frame, fast "
                    f"pace, local service ({what}): ours p50 / p99",
                    "goal": "report",
                    "value": f"{_fmt(ours[f'{mode}_p50_ms'])} / {_fmt(ours[f'{mode}_p99_ms'])}",
                    "unit": "ms" + theirs,
                    "verdict": "reported",
                }
            )
    cap = s.get("capacity") or {}
    if cap.get("rows"):
        n = cap["capacity"]
        value: Any = n if n is not None else 0
        if cap.get("capacity_is_top"):
            value = f">= {n}"
        ok = n is not None and n >= CAPACITY_GOAL
        g.append(
            {
                "figure": "local service on one core: concurrent real-time sessions (animation "
                f"from the audio) with p99 frame lateness < {LATENESS_GOAL_MS:g} ms and no "
                f"frame lost (tested {', '.join(map(str, cap['tested']))})",
                "goal": f">= {CAPACITY_GOAL}",
                "value": value,
                "unit": "sessions",
                "verdict": "PASS" if ok else "MISS",
            }
        )
    anim = results.get("anim")
    if anim and anim.get("ok"):
        g.append(
            {
                "figure": "CPU per frame of the animation analysis in isolation "
                "(`AnimationAnalyzer.push` of a 40 ms chunk + `encode_frame`)",
                "goal": "report",
                "value": anim["total_us_per_frame"],
                "unit": "µs",
                "verdict": "reported",
            }
        )
    st = (s.get("streaming") or {}).get("ours-frames") or {}
    if st.get("cpu_us_per_frame") is not None:
        g.append(
            {
                "figure": "our streaming API (`async for frame in session.frames()`): client "
                "CPU per frame in the flood, x our `transport_frames` callback",
                "goal": "report",
                "value": f"{st['cpu_us_per_frame']:.3f} µs ({_fmt(st['x_callback'])}x)",
                "unit": "",
                "verdict": "reported",
            }
        )
    return g


def local_lines(s: dict[str, Any]) -> list[str]:
    out = []
    for name, row in (s.get("endlat") or {}).items():
        if row.get("runs"):
            out.append(
                f"end latency {SDK_SHORT.get(name, name):>16}: caught up p50 "
                f"{_fmt(row['caught_up_p50_ms'])} p99 {_fmt(row['caught_up_p99_ms'])} ms; burst "
                f"p50 {_fmt(row['burst_p50_ms'])} p99 {_fmt(row['burst_p99_ms'])} ms"
            )
    for n, row in ((s.get("capacity") or {}).get("rows") or {}).items():
        out.append(
            f"service capacity {n:>4} sessions: lateness p50 {_fmt(row['lateness_p50_ms'])} "
            f"p99 {_fmt(row['lateness_p99_ms'])} max {_fmt(row['lateness_max_ms'])} ms, lost "
            f"{row['frames_lost']}, server CPU {_fmt((row['server_cpu_share'] or 0) * 100, 0)}%"
        )
    return out


# --------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------


def _pct(v: float | None, digits: int = 0) -> str:
    return "n/a" if v is None else f"{v * 100:.{digits}f}%"


def _capacity_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    out = [
        "| sessions | frames/s | server CPU (steady) | server µs / frame | lateness p50 / p99 / "
        "max (ms) | frames >= 40 ms late | frames lost | client CPU | send lag p99 (ms) | "
        "sustained |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for n in sorted(rows, key=int):
        r = rows[n]
        lost = f"{r['frames_lost']} / {r['frames_expected']}"
        if r.get("failed_runs"):
            lost += f" ({r['failed_runs']} failed)"
        if r.get("disturbed_excluded"):
            lost += f" ({r['disturbed_excluded']} disturbed left out)"
        p99 = _fmt(r["lateness_p99_ms"])
        if r.get("runs", 0) > 1 and r.get("lateness_p99_worst_ms") is not None:
            p99 += f" (worst {_fmt(r['lateness_p99_worst_ms'])})"
        out.append(
            f"| {n} | {int(n) * 25} | {_pct(r['server_cpu_share'])} | "
            f"{_fmt(r['server_us_per_frame'], 1)} | {_fmt(r['lateness_p50_ms'])} / {p99} / "
            f"{_fmt(r['lateness_max_ms'])} | {_pct(r['late_share'], 2)} | {lost} | "
            f"{_pct(r['client_cpu_share'])} | {_fmt(r['send_lag_p99_ms'])} | "
            f"{'yes' if r['sustained'] else '**no**'} |"
        )
    return out


def _profile_table(prof: dict[str, Any], label: str) -> list[str]:
    out = [
        f"{label}: {prof['sessions']} sessions, {prof['samples']} samples at "
        f"{prof['rate_hz']} Hz over {prof['seconds']} s of steady state (service at "
        f"{_pct(prof.get('server_cpu_share'))} CPU, "
        f"{_fmt(prof.get('server_cpu_us_per_frame'), 1)} µs per frame):",
        "",
        "| share of samples (inclusive) | what |",
        "|---:|---|",
    ]
    for row in prof["inclusive"]:
        out.append(f"| {_pct(row['share'], 1)} | {row['what']} |")
    out += ["", "| own time | function |", "|---:|---|"]
    for row in prof["top_own"][:10]:
        out.append(f"| {_pct(row['share'], 1)} | `{row['function']}` |")
    return out


def local_markdown(results: dict[str, Any]) -> list[str]:
    s = results["summary"]
    cfg = results.get("config", {})
    L: list[str] = []
    e_res = results.get("endlat")
    cap_res = results.get("capacity")
    anim = results.get("anim")
    if not (e_res or cap_res or anim):
        return L
    svc = (cap_res or e_res or {}).get("service") or {}
    client_cpu = (cap_res or e_res or {}).get("client_cpu")
    L += [
        "## The local avatar service (`avatarkit serve`)",
        "",
        "These figures are measured against the local service itself, not the flood "
        "server: `benchmarks/local_service.py` starts `python -m avatarkit.devserver` (the "
        "same entry point as `avatarkit serve`) from `src/` in its own process, with its "
        "defaults (asyncio's event loop, idle timeout 60 s) and the runner's credentials "
        f"added, pinned to CPU {svc.get('cpu')} with `os.sched_setaffinity` (every thread "
        "it starts stays there); the client, our SDK through `benchmarks/sdk_runner.py` on "
        f"uvloop, is pinned to CPU {client_cpu}. The service's CPU time is read from "
        "`/proc/<pid>/stat` by the client around its measured window.",
        "",
    ]
    ed = s.get("endlat") or {}
    if ed:
        ec = cfg.get("endlat") or {}
        L += [
            "### Time from the last audio chunk to the `end` frame (fast pace)",
            "",
            f"One session; {ec.get('requests')} requests per mode (after "
            f"{ec.get('warmup')} unmeasured), each {ec.get('request_chunks')} chunks of 40 ms "
            "of the 16 kHz speech fixture, one after another. Measured from the moment the "
            "last chunk's `send_audio(..., end=True)` is called to the `transport_frames` "
            "callback of the frame with `end=true`. *Caught up*: the last chunk is sent once "
            "every frame the service could already send has arrived (the service holds the "
            "newest frame back until more audio or the end arrives, so that the last frame "
            "is the one carrying `end`): the service's reaction to the end alone, two frames. "
            "*Burst*: all chunks sent back to back, as a TTS that is ahead would; the "
            "figure includes analysing and sending the frames still queued. Medians over "
            "runs of each run's p50 and p99.",
            "",
            "| client | caught up p50 / p99 (ms) | burst p50 / p99 (ms) | whole request, burst "
            "(first send to `end`) p50 (ms) | runs |",
            "|---|---|---|---:|---:|",
        ]
        for name in ("avatarkit-0.1.7", "ours"):
            r = ed.get(name)
            if not r:
                continue
            if not r["available"]:
                L.append(f"| {SDK_SHORT[name]} | not available | | | |")
                continue
            ratio = ""
            if name == "ours" and r.get("caught_up_p50_x_017") is not None:
                ratio = f" ({_fmt(r['caught_up_p50_x_017'])}x / {_fmt(r['caught_up_p99_x_017'])}x)"
            ratio_b = ""
            if name == "ours" and r.get("burst_p50_x_017") is not None:
                ratio_b = f" ({_fmt(r['burst_p50_x_017'])}x / {_fmt(r['burst_p99_x_017'])}x)"
            L.append(
                f"| {SDK_SHORT[name]} | {_fmt(r['caught_up_p50_ms'])} / "
                f"{_fmt(r['caught_up_p99_ms'])}{ratio} | {_fmt(r['burst_p50_ms'])} / "
                f"{_fmt(r['burst_p99_ms'])}{ratio_b} | {_fmt(r['request_p50_ms'])} | "
                f"{r['runs']} |"
            )
        L += [
            "",
            "Ratios in brackets: ours / avatarkit 0.1.7. Both clients talk to the same "
            "service process; the service's own work (parse, analysis, pacing, send) is most "
            "of each figure. In the burst mode a client that sends its chunks faster leaves "
            "the service further behind when the last chunk goes out, so its last-chunk-to-"
            "`end` time grows while its whole request finishes sooner: read that column "
            "with the whole-request one.",
            "",
        ]

    cap = s.get("capacity") or {}
    if cap.get("rows"):
        cc = cfg.get("capacity") or {}
        L += [
            "### Capacity: real-time sessions on one core",
            "",
            f"Load: sessions set up 32 at a time; then each streams {cc.get('seconds'):g} s of "
            "the 16 kHz speech fixture (each session from its own offset) in 40 ms chunks "
            "(1,280 bytes) at real-time pace, and the service computes every frame from the "
            "audio (`AnimationAnalyzer`) and paces it at 25/s. Start phases are spread evenly "
            f"over one 40 ms period and start times over {cc.get('ramp_s'):g} s (all sessions "
            "starting in the same 40 ms made a burst of request starts that a real service "
            "never sees). Each chunk is sent 60 ms ahead of its playback (chunk k at "
            "start + k x 40 ms - 60 ms): the service holds a request's newest frame back "
            "until the next audio or the end arrives, so with audio sent strictly in real "
            "time every frame leaves about 40 ms after its due time whatever the load "
            "(measured below), and a 40 ms bound on lateness could not be met by any "
            "amount of CPU. **Lateness** = time the frame reached the client's callback - "
            "its due time, due time = send time of the session's first chunk + k x 40 ms "
            "(so it also counts loopback transit and the client's own delay, which the "
            "`send lag` column bounds). Server CPU and µs per frame: over the steady state "
            "(every session streaming). p50/p99: medians over runs (worst run's p99 in "
            "brackets); max: worst run. *Sustained*: in every run p99 < "
            f"{LATENESS_GOAL_MS:g} ms and no frame lost.",
            "",
            *_capacity_table(cap["rows"]),
            "",
            "At 100% CPU the µs per frame is one core divided by the frame rate: a busier "
            "event loop does more per wake-up (more sockets per `epoll`, fewer idle "
            "wake-ups), so the cost per frame falls with load until the service falls "
            "behind.",
            "",
        ]
        strict = cap.get("strict")
        if strict and strict.get("runs"):
            L += [
                f"Strictly real time (no lead), {cap.get('strict_sessions')} sessions: "
                f"lateness p50 {_fmt(strict['lateness_p50_ms'])} / p99 "
                f"{_fmt(strict['lateness_p99_ms'])} / max {_fmt(strict['lateness_max_ms'])} "
                f"ms with the service at {_pct(strict['server_cpu_share'])} CPU: the 40 ms "
                "hold-back, not load.",
                "",
            ]
        n = cap.get("capacity")
        if n is not None:
            more = " (the largest count tested)" if cap.get("capacity_is_top") else ""
            L += [f"Capacity: **{n} sessions**{more}.", ""]

    if anim and anim.get("ok"):
        L += [
            "### Animation analysis in isolation (`benchmarks/bench_animation.py`)",
            "",
            f"The 16 kHz speech fixture ({anim['frames_per_pass']} frames) pushed 40 ms at a "
            "time into a fresh `AnimationAnalyzer` (one frame per push, as real-time "
            f"streaming does), then each frame encoded; median of {anim['repeat']} passes of "
            f"CPU time, pinned to CPU {anim.get('cpu')}:",
            "",
            "| part | µs CPU per frame |",
            "|---|---:|",
            f"| `AnimationAnalyzer.push` (40 ms chunks) | {_fmt(anim['push_us_per_frame'])} |",
            f"| `encode_frame` | {_fmt(anim['encode_us_per_frame'])} |",
            f"| together | {_fmt(anim['total_us_per_frame'])} |",
            f"| (`push` of 400 ms at a time, for comparison) | "
            f"{_fmt(anim['push_batch10_us_per_frame'])} |",
            "",
        ]

    L += _before_after(s, results)
    prof = results.get("service_profile")
    before = s.get("before") or {}
    if prof:
        L += ["### Where the service's CPU goes (py-spy)", ""]
        L += [
            "`py-spy record` (100 samples/s; it pauses the service for each sample, which "
            "the CPU figures here include) on the service process during one capacity run "
            "(`python -m benchmarks --only svcprofile`); shares of the samples taken while "
            "it was running (idle time is not sampled). *Inclusive*: samples with that "
            "function anywhere on the stack; *own time*: the function's own code and the C "
            "calls it makes (numpy, `round`, `socket.send`).",
            "",
        ]
        if before.get("profile"):
            L += [*_profile_table(before["profile"], f"Before ({before.get('label')})"), ""]
        L += [*_profile_table(prof, "Now"), ""]
    return L


def _before_after(s: dict[str, Any], results: dict[str, Any]) -> list[str]:
    before = s.get("before")
    if not before:
        return []
    L = [
        "### Service changes, before and after",
        "",
        f"*Before*: {before.get('label')} (`benchmarks/results/devserver_before.json`, the "
        "same commands with `--service-src` pointing at a tree with the earlier "
        "`connection.py` and `animation.py`, the rest of `src/` the same). Same machine, "
        "same load generator.",
        "",
        "| figure | before | now |",
        "|---|---:|---:|",
    ]
    b_anim, anim = before.get("anim") or {}, results.get("anim") or {}
    if b_anim.get("ok") and anim.get("ok"):
        for key, what in (
            ("push_us_per_frame", "`AnimationAnalyzer.push`, 40 ms chunk (µs / frame)"),
            ("encode_us_per_frame", "`encode_frame` (µs / frame)"),
            ("total_us_per_frame", "analysis + encoding (µs / frame)"),
        ):
            L.append(f"| {what} | {_fmt(b_anim[key])} | {_fmt(anim[key])} |")
    b_rows = (before.get("capacity") or {}).get("rows") or {}
    rows = (s.get("capacity") or {}).get("rows") or {}
    for n in sorted(set(b_rows) | set(rows), key=int):
        b, a = b_rows.get(n, {}), rows.get(n, {})
        L.append(
            f"| {n} sessions: service µs CPU / frame (steady) | "
            f"{_fmt(b.get('server_us_per_frame'), 1)} | {_fmt(a.get('server_us_per_frame'), 1)} |"
        )
        L.append(
            f"| {n} sessions: service CPU share / lateness p99 (ms) | "
            f"{_pct(b.get('server_cpu_share'))} / {_fmt(b.get('lateness_p99_ms'))} | "
            f"{_pct(a.get('server_cpu_share'))} / {_fmt(a.get('lateness_p99_ms'))} |"
        )
    b_cap = before.get("capacity") or {}
    cap = s.get("capacity") or {}
    L.append(
        f"| capacity (sessions, p99 < {LATENESS_GOAL_MS:g} ms, none lost) | "
        f"{_fmt(b_cap.get('capacity'))} | {_fmt(cap.get('capacity'))} |"
    )
    L += [
        "",
        "(At 100% CPU both columns are one core divided by the frame rate; what differs "
        "there is whether the service keeps up: lateness.)",
        "",
        "What changed. The payloads the service sends are byte-for-byte the same as before "
        "(checked on the speech fixtures at all 7 rates, 4,774 frames in two chunkings; "
        "only the unrounded floats differ in their last bits), and the tests that compare "
        "chunkings, processes and the protobuf encoder pass:",
        "",
        "- `animation.py`: band energies summed directly with one `np.add.reduceat` over "
        "the squared (re, im) pairs of the spectrum, instead of two running sums, a gather, "
        "a subtraction and a clamp (5 numpy calls fewer per analysed block; also no "
        "cancellation in the differences); `push()` takes whole frames straight from the "
        "caller's samples when nothing is buffered (no copy into the buffer, no boundary "
        "search) and checks the common int16 case first; the blendshape dict is built "
        "without a function call per weight; `encode_frame` looks the 16 weights up with "
        "one `itemgetter`, fills a prepared argument list and uses precomputed viseme and "
        "small-varint bytes.",
        "- `connection.py`: the animation envelope (`ServerResponseAnimation` in "
        "`Message`) is written by hand from per-request bytes (equal to the protobuf "
        "encoder's output, checked at import) instead of building two protobuf messages "
        "per frame; the idle and session-duration deadline is one long-lived timer per "
        "connection, re-armed only when it fires or must fire earlier, instead of a timer "
        "created and cancelled at each of the pacer's two sleeps per frame; no coroutine "
        "per frame for fault rules when none is due.",
        "",
    ]
    return L


# --------------------------------------------------------------------------
# plot
# --------------------------------------------------------------------------


def plot_local(axes: Any, results: dict[str, Any], colors: dict[str, str]) -> None:
    """Three panels: capacity lateness, service CPU, end latency."""
    s = results["summary"]
    cap = s.get("capacity") or {}
    before = (s.get("before") or {}).get("capacity") or {}
    ax = axes[0]
    for label, c, style in (("now", cap, "-"), ("before", before, ":")):
        rows = c.get("rows") or {}
        if not rows:
            continue
        ns = sorted(rows, key=int)
        xs = [int(n) for n in ns]
        alpha = 1.0 if label == "now" else 0.6
        for key, q, marker in (("lateness_p99_ms", "p99", "o"), ("lateness_p50_ms", "p50", "")):
            ys = [rows[n][key] for n in ns]
            ax.plot(xs, ys, style, marker=marker or None, color="#55a868" if q == "p99" else
                    "#4c72b0", alpha=alpha, label=f"{label} {q}")  # fmt: skip
    ax.axhline(LATENESS_GOAL_MS, color="red", lw=0.8, ls="-.", label="goal p99 < 40 ms")
    ax.axvline(CAPACITY_GOAL, color="#999999", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent real-time sessions (service on one core)")
    ax.set_ylabel("frame lateness at the client (ms)")
    ax.set_title("local service capacity\nlateness p50 / p99 vs sessions", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)

    ax = axes[1]
    for label, c, style in (("now", cap, "-o"), ("before", before, ":o")):
        rows = c.get("rows") or {}
        if not rows:
            continue
        ns = sorted(rows, key=int)
        ax.plot(
            [int(n) for n in ns],
            [(rows[n]["server_cpu_share"] or 0) * 100 for n in ns],
            style,
            color="#dd8452" if label == "before" else "#55a868",
            label=f"{label}: CPU share",
        )
        for n in ns:
            us = rows[n]["server_us_per_frame"]
            if us is not None and label == "now":
                ax.annotate(f"{us:.0f} µs/f", (int(n), (rows[n]["server_cpu_share"] or 0) * 100),
                            fontsize=7, textcoords="offset points", xytext=(3, -10))  # fmt: skip
    ax.axhline(100, color="#999999", lw=0.8)
    ax.set_ylim(0, 110)
    ax.set_xlabel("concurrent real-time sessions")
    ax.set_ylabel("service CPU, % of one core (steady state)")
    ax.set_title("local service CPU (annotated: µs CPU per frame)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)

    ax = axes[2]
    ed = s.get("endlat") or {}
    names = [n for n in ("avatarkit-0.1.7", "ours") if (ed.get(n) or {}).get("runs")]
    if names:
        width = 0.2
        for i, name in enumerate(names):
            r = ed[name]
            vals = [r["caught_up_p50_ms"], r["caught_up_p99_ms"], r["burst_p50_ms"],
                    r["burst_p99_ms"]]  # fmt: skip
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(4)]
            ax.bar(xs, vals, width=width, color=colors[name], label=SDK_SHORT[name])
        ax.set_xticks(range(4), ["caught up\np50", "caught up\np99", "burst\np50", "burst\np99"])
        ax.set_ylabel("ms from the last chunk's send to the end frame")
        ax.legend(fontsize=8)
    ax.set_title("local service, fast pace:\nlast audio chunk -> end frame", fontsize=10)
