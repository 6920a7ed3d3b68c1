"""Turns the raw results of ``python -m benchmarks`` into medians, ratios,
goal verdicts, BENCHMARKS.md and the PNG plot."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from _report_local import local_goals, local_lines, local_markdown, plot_local, summarize_local

CLIENTS = ("floor", "websockets", "avatarkit-0.1.7", "ours")
FLOOD_CLIENTS = (*CLIENTS, "ours-on_animation", "ours-frames")
SHORT = {
    "floor": "floor",
    "websockets": "websockets",
    "avatarkit-0.1.7": "avatarkit 0.1.7",
    "ours": "ours",
    "ours-on_animation": "ours, on_animation",
    "ours-frames": "ours, frames()",
}
# Figures the issue measured on this kind of machine, for the sanity check.
ISSUE_CPU_US = {"floor": "~1.6", "websockets": "6.4-6.8", "avatarkit-0.1.7": "~7.0"}


def _ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Successful runs; the undisturbed ones when there are any (a run is
    disturbed when other processes on the machine used CPU meanwhile)."""
    ok = [r for r in runs if r.get("ok") and r.get("available") is not False]
    quiet = [r for r in ok if not r.get("disturbed")]
    return quiet or ok


def _available(runs: list[dict[str, Any]]) -> bool:
    return not any(r.get("available") is False for r in runs)


def _med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {"flood": {}, "setup": {}, "realtime": {}, "goals": [], "lines": []}

    for name, runs in results.get("flood", {}).items():
        ok = _ok(runs)
        vals = [r["cpu_us_per_frame"] for r in ok]
        s["flood"][name] = {
            "available": _available(runs),
            "runs": len(ok),
            "cpu_us_per_frame": _med(vals),
            "min": min(vals) if vals else None,
            "max": max(vals) if vals else None,
            "frames_per_s": _med([r["frames_per_s"] for r in ok]),
            "frames_lost": sum(r["frames_lost"] for r in ok),
            "client_cpu_share": _med([r["cpu_share"] for r in ok]),
            "server_cpu_share": _med([(r.get("server") or {}).get("cpu_share") for r in ok]),
            "server_us_per_frame": _med(
                [(r.get("server") or {}).get("cpu_us_per_frame_sent") for r in ok]
            ),
        }
    f = s["flood"]
    floor_cpu = f.get("floor", {}).get("cpu_us_per_frame")
    ak_cpu = f.get("avatarkit-0.1.7", {}).get("cpu_us_per_frame")
    for row in f.values():
        row["x_floor"] = _ratio(row["cpu_us_per_frame"], floor_cpu)
        row["x_avatarkit017"] = _ratio(row["cpu_us_per_frame"], ak_cpu)

    for name, runs in results.get("setup", {}).items():
        ok = _ok(runs)
        s["setup"][name] = {
            "available": _available(runs),
            "runs": len(ok),
            "p50_ms": _med([r["total"]["p50_ms"] for r in ok]),
            "p99_ms": _med([r["total"]["p99_ms"] for r in ok]),
            "token_p50_ms": _med([r["token"]["p50_ms"] for r in ok]),
            "websocket_p50_ms": _med([r["websocket"]["p50_ms"] for r in ok]),
            "cpu_ms_per_setup": _med([r["cpu_ms_per_setup"] for r in ok]),
            "server_cpu_ms_per_setup": _med(
                [(r.get("server") or {}).get("cpu_ms_per_setup") for r in ok]
            ),
            "failures": sum(r["failures"] for r in ok),
        }
    ak_setup = s["setup"].get("avatarkit-0.1.7", {})
    for row in s["setup"].values():
        row["p50_x_avatarkit017"] = _ratio(row["p50_ms"], ak_setup.get("p50_ms"))
        row["p99_x_avatarkit017"] = _ratio(row["p99_ms"], ak_setup.get("p99_ms"))

    for n, matrix in results.get("realtime", {}).items():
        s["realtime"][n] = {}
        for name, runs in matrix.items():
            ok = _ok(runs)
            maxes = [r["delay"]["max_ms"] for r in ok if r["delay"]["max_ms"] is not None]
            s["realtime"][n][name] = {
                "available": _available(runs),
                "runs": len(ok),
                "delay_p50_ms": _med([r["delay"]["p50_ms"] for r in ok]),
                "delay_p99_ms": _med([r["delay"]["p99_ms"] for r in ok]),
                "delay_p99_worst_ms": max([r["delay"]["p99_ms"] or 0 for r in ok], default=None),
                "delay_max_ms": max(maxes) if maxes else None,
                "transit_p99_ms": _med([r["transit"]["p99_ms"] for r in ok]),
                "send_lag_p99_ms": _med([r["send_lag"]["p99_ms"] for r in ok]),
                "frames_lost": sum(r["frames_lost"] for r in ok),
                "frames_expected": sum(r["frames_expected"] for r in ok),
                "failed_runs": sum(1 for r in runs if not r.get("ok")) if _available(runs) else 0,
                "disturbed_excluded": sum(1 for r in runs if r.get("disturbed"))
                if any(not r.get("disturbed") and r.get("ok") for r in runs)
                else 0,
                "cpu_share": _med([r["cpu_share"] for r in ok]),
                "rss_kib_per_session": _med([r["rss_kib_per_session"] for r in ok]),
                "server_lateness_p99_ms": _med(
                    [((r.get("server") or {}).get("lateness") or {}).get("p99_ms") for r in ok]
                ),
                "server_cpu_share": _med([(r.get("server") or {}).get("cpu_share") for r in ok]),
            }

    tr = results.get("transport")
    if tr:
        s["transport"] = _summarize_transport(tr)
    comp = results.get("compression")
    if comp:
        s["compression"] = _summarize_compression(comp)

    summarize_local(results, s)
    _goals(s, results.get("config", {}).get("flood", {}))
    s["goals"] += local_goals(s, results)
    lines = _lines(s)
    cut = len(lines) - len(s["goals"])  # the goal lines come last
    s["lines"] = lines[:cut] + local_lines(s) + lines[cut:]
    return s


def _summarize_transport(tr: dict[str, Any]) -> dict[str, Any]:
    """Medians per client of the "transport" section (aiofastnet vs the loop's own)."""
    out: dict[str, Any] = {"sessions": tr.get("sessions")}
    for name in ("ours-aiofastnet", "ours-loop-transport"):
        fl_uv = _ok(tr.get("flood_uvloop", {}).get(name, []))
        fl_as = _ok(tr.get("flood_asyncio", {}).get(name, []))
        su = _ok(tr.get("setup_uvloop", {}).get(name, []))
        rt = _ok(tr.get("realtime_uvloop", {}).get(name, []))
        out[name] = {
            "flood_uvloop_us": _med([r["cpu_us_per_frame"] for r in fl_uv]),
            "flood_asyncio_us": _med([r["cpu_us_per_frame"] for r in fl_as]),
            "setup_p50_ms": _med([r["total"]["p50_ms"] for r in su]),
            "setup_p99_ms": _med([r["total"]["p99_ms"] for r in su]),
            "rss_kib_per_session": _med([r["rss_kib_per_session"] for r in rt]),
            "delay_p99_ms": _med([r["delay"]["p99_ms"] for r in rt]),
            "realtime_cpu_share": _med([r["cpu_share"] for r in rt]),
        }
    return out


def _summarize_compression(comp: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, runs in comp.items():
        ok = _ok(runs)

        def per_frame(r: dict[str, Any], key: str) -> float | None:
            sv = r.get("server") or {}
            return sv[key] / sv["frames_sent"] if sv.get("frames_sent") else None

        out[name] = {
            "available": _available(runs),
            "runs": len(ok),
            "cpu_us_per_frame": _med([r["cpu_us_per_frame"] for r in ok]),
            "frames_per_s": _med([r["frames_per_s"] for r in ok]),
            "payload_bytes_per_frame": _med([per_frame(r, "payload_bytes_sent") for r in ok]),
            "frames_lost": sum(r["frames_lost"] for r in ok),
        }
    base = out.get("ours", {}).get("cpu_us_per_frame")
    ak = out.get("avatarkit-0.1.7", {}).get("cpu_us_per_frame")
    for row in out.values():
        row["x_ours"] = _ratio(row["cpu_us_per_frame"], base)
        row["x_avatarkit017"] = _ratio(row["cpu_us_per_frame"], ak)
    return out


def _compression_section(s: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    c = s.get("compression")
    if not c:
        return []
    f = cfg.get("flood", {})
    offers = {
        "avatarkit-0.1.7": "yes (websockets default)",
        "ours": "no (picows, the default)",
        "ours-aiohttp": "no",
        "ours-deflate": "yes",
    }
    labels = {
        "avatarkit-0.1.7": "avatarkit 0.1.7",
        "ours": "ours (default)",
        "ours-aiohttp": "ours, AiohttpTransport(compress=False)",
        "ours-deflate": "ours, websocket_compression=True",
    }
    L = [
        "## Compression (permessage-deflate)",
        "",
        f"The flood again ({f.get('sessions')} sessions x {f.get('frames')} frames), with the "
        "local service's own animation payloads (computed from the 16 kHz speech fixture, "
        "cycled) and a server that accepts permessage-deflate when a client offers it "
        "(`flood_server.py --realistic --deflate`: it answers the extension and sends each "
        "stream compressed with context takeover, computed before the write, so its cost "
        "per frame stays that of a copy). Payload bytes: WebSocket payload per frame as "
        "sent (compressed when agreed). Medians of the runs:",
        "",
        "| client | offers deflate | µs CPU / frame | x ours (default) | x avatarkit 0.1.7 | "
        "payload bytes / frame | frames lost |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("avatarkit-0.1.7", "ours", "ours-aiohttp", "ours-deflate"):
        row = c.get(name)
        if not row:
            continue
        if not row["available"]:
            L.append(f"| {labels[name]} | {offers[name]} | not available | | | | |")
            continue
        L.append(
            f"| {labels[name]} | {offers[name]} | {_fmt(row['cpu_us_per_frame'], 3)} | "
            f"{_fmt(row['x_ours'])} | {_fmt(row['x_avatarkit017'])} | "
            f"{_fmt(row['payload_bytes_per_frame'], 0)} | {row['frames_lost']} |"
        )
    deflate = c.get("ours-deflate", {})
    plain = c.get("ours", {})
    saved = _ratio(deflate.get("payload_bytes_per_frame"), plain.get("payload_bytes_per_frame"))
    L += [
        "",
        "The default is off, by these numbers: deflate costs our client "
        f"{_fmt(deflate.get('x_ours'))}x the CPU per frame of the default (aiohttp's "
        "per-message machinery plus inflating every frame) to send "
        f"{_fmt(saved)}x the bytes; at 25 frames/s that saving is a few KB/s per "
        "session, which matters on a thin link, not on a server's. "
        "`websocket_compression=True` (or `SessionConfigBuilder.with_websocket_compression()`) "
        "turns it on; the service may still decline it.",
        "",
    ]
    return L


def _transport_section(s: dict[str, Any]) -> list[str]:
    t = s.get("transport")
    if not t:
        return []
    a, b = t["ours-aiofastnet"], t["ours-loop-transport"]
    rows = [
        ("client CPU per frame, flood, uvloop (µs)", "flood_uvloop_us", 3),
        ("client CPU per frame, flood, asyncio's loop (µs)", "flood_asyncio_us", 3),
        ("set-up p50, uvloop (ms)", "setup_p50_ms", 3),
        ("set-up p99, uvloop (ms)", "setup_p99_ms", 3),
        (f"memory per session, {t['sessions']} real-time sessions, uvloop (KiB)",
         "rss_kib_per_session", 1),
        (f"delay p99, {t['sessions']} real-time sessions, uvloop (ms)", "delay_p99_ms", 2),
    ]  # fmt: skip
    L = [
        "## Transport choice: aiofastnet or the event loop's own",
        "",
        "picows can run its sockets on aiofastnet's transports (its default when aiofastnet "
        "is installed, which picows requires) or on the event loop's. Our SDK, same runner "
        "and scenarios as above, forced to each (`sdk_runner.py --aiofastnet on|off`); "
        "medians of the runs:",
        "",
        "| figure | aiofastnet | loop's own | own / aiofastnet |",
        "|---|---:|---:|---:|",
    ]
    for label, key, digits in rows:
        L.append(
            f"| {label} | {_fmt(a.get(key), digits)} | {_fmt(b.get(key), digits)} | "
            f"{_fmt(_ratio(b.get(key), a.get(key)))} |"
        )
    L += [
        "",
        "What the SDK does with this (`avatarkit.transport`): on uvloop it uses the loop's "
        "own transport (no CPU difference per frame, less memory per connection, faster "
        "set-up); on asyncio's default loop it lets picows use aiofastnet, which is cheaper "
        "per frame there than asyncio's Python transport.",
        "",
    ]
    return L


def _verdict(value: float | None, limit: float, strict: bool = False) -> str:
    if value is None:
        return "n/a"
    ok = value < limit if strict else value <= limit
    return "PASS" if ok else "MISS"


def _goals(s: dict[str, Any], flood_cfg: dict[str, Any]) -> None:
    g = s["goals"]
    ours = s["flood"].get("ours", {})
    g.append(
        {
            "figure": "client CPU per received frame "
            f"({flood_cfg.get('sessions')} sessions x {flood_cfg.get('frames')} frames, flood), "
            "ours / avatarkit 0.1.7",
            "goal": "<= 0.5x",
            "value": ours.get("x_avatarkit017"),
            "unit": "x",
            "verdict": _verdict(ours.get("x_avatarkit017"), 0.5),
        }
    )
    g.append(
        {
            "figure": "client CPU per received frame, ours / floor",
            "goal": "<= 1.3x",
            "value": ours.get("x_floor"),
            "unit": "x",
            "verdict": _verdict(ours.get("x_floor"), 1.3),
        }
    )
    if s["realtime"]:
        n = max(s["realtime"], key=int)
        rt = s["realtime"][n]
        o = rt.get("ours", {})
        ak = rt.get("avatarkit-0.1.7", {})
        tag = f"{n} sessions at 25 frames/s" + ("" if n == "1000" else " (goal is for 1,000)")
        g.append(
            {
                "figure": f"{tag}: p99 delay from due time to callback, ours",
                "goal": "< 20 ms",
                "value": o.get("delay_p99_ms"),
                "unit": "ms",
                "verdict": _verdict(o.get("delay_p99_ms"), 20.0, strict=True),
            }
        )
        lost = None
        if o.get("runs"):
            lost = o["frames_lost"] + o.get("failed_runs", 0)
        g.append(
            {
                "figure": f"{tag}: frames lost (all runs), ours",
                "goal": "0",
                "value": lost,
                "unit": "frames",
                "verdict": "n/a" if lost is None else ("PASS" if lost == 0 else "MISS"),
            }
        )
        ratio = _ratio(o.get("rss_kib_per_session"), ak.get("rss_kib_per_session"))
        g.append(
            {
                "figure": f"{tag}: resident memory per session, ours / avatarkit 0.1.7",
                "goal": "<= 0.5x",
                "value": ratio,
                "unit": "x",
                "verdict": _verdict(ratio, 0.5),
            }
        )
    su = s["setup"].get("ours", {})
    g.append(
        {
            "figure": "session set-up p50 (token + WebSocket + confirm), ours / avatarkit 0.1.7",
            "goal": "<= 0.5x",
            "value": su.get("p50_x_avatarkit017"),
            "unit": "x",
            "verdict": _verdict(su.get("p50_x_avatarkit017"), 0.5),
        }
    )
    g.append(
        {
            "figure": "session set-up p99, ours / avatarkit 0.1.7",
            "goal": "<= 0.5x",
            "value": su.get("p99_x_avatarkit017"),
            "unit": "x",
            "verdict": _verdict(su.get("p99_x_avatarkit017"), 0.5),
        }
    )


def _fmt(v: Any, digits: int = 2, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def _lines(s: dict[str, Any]) -> list[str]:
    out = []
    for name, row in s["flood"].items():
        if row["available"]:
            out.append(
                f"CPU/frame {SHORT[name]:>16}: {_fmt(row['cpu_us_per_frame'], 3)} us "
                f"({_fmt(row['x_floor'])}x floor, {_fmt(row['x_avatarkit017'])}x 0.1.7)"
            )
    for name, row in s["setup"].items():
        if row["available"]:
            out.append(
                f"set-up    {SHORT[name]:>16}: p50 {_fmt(row['p50_ms'], 3)} ms, "
                f"p99 {_fmt(row['p99_ms'], 3)} ms"
            )
    for n, matrix in s["realtime"].items():
        for name, row in matrix.items():
            if row["available"]:
                out.append(
                    f"realtime {n:>5} {SHORT[name]:>16}: p50 {_fmt(row['delay_p50_ms'])} "
                    f"p99 {_fmt(row['delay_p99_ms'])} max {_fmt(row['delay_max_ms'])} ms, "
                    f"lost {row['frames_lost']}, {_fmt(row['rss_kib_per_session'], 1)} KiB/session"
                )
    for goal in s["goals"]:
        out.append(
            f"[{goal['verdict']}] {goal['figure']}: {_fmt(goal['value'])} "
            f"{goal['unit']} (goal {goal['goal']})".replace("  (goal", " (goal")
        )
    return out


# --------------------------------------------------------------------------
# plot
# --------------------------------------------------------------------------


def write_plot(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    s = results["summary"]
    colors = {
        "floor": "#4c72b0",
        "websockets": "#8c8c8c",
        "avatarkit-0.1.7": "#dd8452",
        "ours": "#55a868",
    }
    colors["ours-on_animation"] = "#8fc99a"
    colors["ours-frames"] = "#2f7d3f"
    local = bool((s.get("capacity") or {}).get("rows") or any((s.get("endlat") or {}).values()))
    fig, grid = plt.subplots(2 if local else 1, 3, figsize=(16, 9.8 if local else 4.8))
    axes = grid[0] if local else grid

    ax = axes[0]
    names = [c for c in FLOOD_CLIENTS if s["flood"].get(c, {}).get("cpu_us_per_frame") is not None]
    vals = [s["flood"][c]["cpu_us_per_frame"] for c in names]
    lo = [v - s["flood"][c]["min"] for c, v in zip(names, vals, strict=True)]
    hi = [s["flood"][c]["max"] - v for c, v in zip(names, vals, strict=True)]
    ax.bar(
        [SHORT[c] for c in names], vals, yerr=[lo, hi], capsize=4, color=[colors[c] for c in names]
    )
    for i, (c, v) in enumerate(zip(names, vals, strict=True)):
        ax.text(i + 0.08, s["flood"][c]["max"], f" {v:.2f}", ha="left", va="bottom", fontsize=9)
    fl = results.get("config", {}).get("flood", {})
    ax.set_title(
        f"client CPU per received frame\n({fl.get('sessions')} sessions x "
        f"{fl.get('frames')} frames, flood; median, min-max)",
        fontsize=10,
    )
    ax.set_ylabel("µs CPU (user+sys) per frame")
    ax.tick_params(axis="x", labelsize=8, rotation=20)

    ax = axes[1]
    names = [c for c in CLIENTS if s["setup"].get(c, {}).get("p50_ms") is not None]
    x = range(len(names))
    ax.bar(
        [i - 0.2 for i in x],
        [s["setup"][c]["p50_ms"] for c in names],
        width=0.4,
        color=[colors[c] for c in names],
        label="p50",
    )
    ax.bar(
        [i + 0.2 for i in x],
        [s["setup"][c]["p99_ms"] for c in names],
        width=0.4,
        color=[colors[c] for c in names],
        alpha=0.5,
        hatch="//",
        label="p99",
    )
    ax.set_xticks(list(x), [SHORT[c] for c in names], fontsize=9)
    ax.set_ylabel("ms")
    ax.set_title(
        "session set-up on loopback\n(token + WebSocket + configure/confirm; median of runs)",
        fontsize=10,
    )
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(facecolor="#999999", label="p50"),
            Patch(facecolor="#999999", alpha=0.5, hatch="//", label="p99"),
        ],
        fontsize=9,
    )

    ax = axes[2]
    counts = sorted(s["realtime"], key=int)
    for c in CLIENTS:
        xs, p50, p99, pmax = [], [], [], []
        for n in counts:
            row = s["realtime"][n].get(c, {})
            if row.get("delay_p99_ms") is None:
                continue
            xs.append(int(n))
            p50.append(row["delay_p50_ms"])
            p99.append(row["delay_p99_ms"])
            pmax.append(row["delay_max_ms"])
        if not xs:
            continue
        ax.plot(xs, p99, "-o", color=colors[c], label=f"{SHORT[c]} p99")
        ax.plot(xs, p50, "--", color=colors[c], alpha=0.8, label=f"{SHORT[c]} p50")
        ax.plot(xs, pmax, ":", color=colors[c], alpha=0.6)
    ax.axhline(20, color="red", lw=0.8, ls="-.", label="goal p99 < 20 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([int(n) for n in counts], [n for n in counts]) if counts else None
    ax.set_xlabel("concurrent sessions in one client process")
    ax.set_ylabel("ms from due time to callback")
    ax.set_title(
        "real-time pace (25 frames/s per session)\ndelay p50 (dashed), p99 (solid), max (dotted)",
        fontsize=10,
    )
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)

    if local:
        plot_local(grid[1], results, colors)

    m = results.get("machine", {})
    fig.suptitle(
        f"avatarkit benchmarks — {m.get('cpu_model', '')}, {m.get('nproc')} cores, "
        f"Python {m.get('python')}, {m.get('loop')} loop",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return True


# --------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------


def _server_section(results: dict[str, Any]) -> list[str]:
    sc = results.get("server_check")
    s = results["summary"]
    out = ["## The flood server, and how we know it is not the bottleneck", ""]
    out += [
        "`benchmarks/flood_server.py` runs in its own process (uvloop). HTTP (the two token "
        "routes and its `/stats`) is a minimal keep-alive asyncio protocol (aiohttp's server "
        "cost ~0.12 ms CPU per token call, a third of a loopback set-up); the WebSocket is a "
        "picows server on a second port (the console and ingress URLs are separate "
        "settings, so every client accepts that). "
        "Each session's frames are serialized once; in flood mode the whole stream "
        "(WebSocket framing included) is one `transport.write()`, in real-time mode one "
        "`send()` of a reused buffer per frame, timed with `call_later` against absolute "
        "due times (never early). It never negotiates permessage-deflate, so every client "
        "receives the same uncompressed frames.",
        "",
        "How it was checked, in every run:",
        "",
    ]
    if sc:
        fl = sc.get("flood", {})
        out += [
            "1. **Library choice, by measurement.** A raw sink (`benchmarks/server_check.py`: "
            "an `asyncio.Protocol` that does the upgrade by hand and then only counts bytes, "
            "no WebSocket parsing, no protobuf) receives the same 50 x 2,000 flood from three "
            "server variants. Frames/s is what the server (and the kernel's loopback) can "
            "deliver; server CPU is its own user+sys time per frame sent, from `/stats`:",
            "",
            "| server variant | delivered to the raw sink (frames/s, median) | server CPU per "
            "frame sent (µs) |",
            "|---|---:|---:|",
        ]
        for label, runs in fl.items():
            ok = [r for r in runs if r.get("ok")]
            fps = _med([r["frames_per_s"] for r in ok])
            us = _med([r["server"]["cpu_us_per_frame_sent"] for r in ok])
            out.append(f"| {label} | {_fmt(fps, 0)} | {_fmt(us, 3)} |")
        rt = sc.get("realtime", {})
        if rt:
            out += [
                "",
                "   The same for the real-time load (sink sending a 40 ms chunk every "
                "40 ms per session, server pacing 25 frames/s per session):",
                "",
                "| server variant | sessions | server CPU share | server send lateness "
                "p50 / p99 / max (ms) |",
                "|---|---:|---:|---|",
            ]
            for label, r in rt.items():
                if r.get("ok"):
                    sv = r["server"]
                    lat = sv["lateness"]
                    out.append(
                        f"| {label} | {r['sessions']} | {_fmt(sv['cpu_share'] * 100, 0)}% "
                        f"| {_fmt(lat['p50_ms'])} / {_fmt(lat['p99_ms'])} / "
                        f"{_fmt(lat['max_ms'])} |"
                    )
        out.append("")
    floor = s["flood"].get("floor", {})
    out += [
        "2. **Headroom over the fastest client.** The floor client consumes "
        f"{_fmt(floor.get('frames_per_s'), 0)} frames/s at "
        f"{_fmt((floor.get('client_cpu_share') or 0) * 100, 0)}% "
        "of a core (CPU-bound), while the same server delivers the figure above to the raw "
        "sink. During the flood runs the server process used (median CPU share of its own "
        "window, read from `/stats` by each client around its measured window):",
        "",
        "| client | client CPU share | server CPU share | server µs per frame |",
        "|---|---:|---:|---:|",
    ]
    for name, row in s["flood"].items():
        if row["available"] and row["runs"]:
            out.append(
                f"| {SHORT[name]} | {_fmt((row['client_cpu_share'] or 0) * 100, 0)}% | "
                f"{_fmt((row['server_cpu_share'] or 0) * 100, 0)}% | "
                f"{_fmt(row['server_us_per_frame'], 3)} |"
            )
    out += [
        "",
        "   Each process has a core of its own (2 cores): a client at ~100% with the server "
        "well below is client-bound. The server's cost per frame is mostly the kernel's "
        "loopback TCP send (sys time), not Python.",
        "",
        "3. **Real-time runs.** The server records its own send lateness (send time - due "
        "time) and every frame carries both times, so the client's delay splits into server "
        "lateness and transit + client work (`transit` in latest.json). Server lateness p99 "
        "per run is in the real-time tables below.",
        "",
    ]
    return out


def _previous_wall(results: dict[str, Any]) -> str:
    prev = results.get("wall_s_previous")
    return f" (this partial run; the run the other sections come from: {prev} s)" if prev else ""


def _sections_note(results: dict[str, Any]) -> str:
    runs = results.get("sections_run") or {}
    days = {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t)) for t in runs.values() if t}
    if len(days) <= 1:
        return ""
    parts = [
        f"{name} {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(t))}"
        for name, t in runs.items()
        if t
    ]
    return " (sections from separate runs of the same command: " + ", ".join(parts) + ")"


def _disturbed_count(results: dict[str, Any]) -> str:
    runs: list[dict[str, Any]] = []
    for section in ("flood", "setup"):
        for rs in results.get(section, {}).values():
            runs += rs
    for matrix in results.get("realtime", {}).values():
        for rs in matrix.values():
            runs += rs
    for rs in ((results.get("endlat") or {}).get("runs") or {}).values():
        runs += rs
    cap = results.get("capacity") or {}
    for rs in (cap.get("runs") or {}).values():
        runs += rs
    runs += cap.get("strict") or []
    runs = [r for r in runs if r.get("available") is not False]
    bad = sum(1 for r in runs if r.get("disturbed"))
    return f"{bad} of {len(runs)} client runs were disturbed"


def write_markdown(results: dict[str, Any], path: Path, png: Path | None) -> None:
    s = results["summary"]
    m = results.get("machine", {})
    cfg = results.get("config", {})
    L: list[str] = []
    L += [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks` (do not edit by hand; edit "
        "`benchmarks/_report.py`). "
        + (
            "**Smoke run: tiny configuration, the figures mean nothing.**"
            if results.get("smoke")
            else "Medians of repeated runs; ratios rather than lone absolute times."
        ),
        "",
        "## Goals (issue 5)",
        "",
        "| figure | goal | measured | verdict |",
        "|---|---|---:|---|",
    ]
    for goal in s["goals"]:
        measured = f"{_fmt(goal['value'])} {goal['unit']}".strip()
        L.append(f"| {goal['figure']} | {goal['goal']} | {measured} | **{goal['verdict']}** |")
    ours_avail = s["flood"].get("ours", {}).get("available", True)
    if not ours_avail:
        L += ["", "Our SDK was not available when this was generated (SDK not available yet)."]
    L += [
        "",
        "The Ogg Opus encoder has its own script (below). The time from the last audio chunk "
        "to the `end` frame, the local service's capacity and the animation analysis are "
        "measured against the local avatar service (`avatarkit serve`), not the flood "
        "server: see [The local avatar service](#the-local-avatar-service-avatarkit-serve).",
        "",
        "## How to run",
        "",
        "```sh",
        "python -m benchmarks            # everything, ~10 min; rewrites BENCHMARKS.md,",
        "                                # benchmarks/results/latest.json and benchmarks.png",
        "python -m benchmarks --smoke    # every script in a tiny configuration (< 90 s, CI)",
        "python -m benchmarks --only flood,setup --repeats 5   # a subset (the other sections",
        "                                # of latest.json are kept)",
        "python -m benchmarks --only capacity --capacity-sessions 300,400 --capacity-seconds 20",
        "python -m benchmarks --loop asyncio                   # clients on asyncio's loop",
        "python -m benchmarks --report-only  # re-render this file and the plot from latest.json",
        "PYTHONPATH=src python benchmarks/bench_animation.py  # the animation analysis alone",
        "python benchmarks/mem_breakdown.py  # where our memory per session goes",
        "pip install py-spy && python -m benchmarks --only svcprofile  # profile the service",
        "```",
        "",
        "Run it from the repository root with the project's virtualenv (picows, aiohttp, "
        "websockets, protobuf, uvloop, matplotlib). The first run creates "
        "`benchmarks/.venv-avatarkit017` and installs the published `avatarkit==0.1.7` "
        "(and uvloop) there with pip: it has our import name, so it only runs there. "
        "Single scripts print their own figures, e.g. "
        "`python benchmarks/flood_server.py --mode flood` in one shell and "
        "`python benchmarks/client_floor.py --scenario flood --console URL --ingress URL` "
        "in another (URLs from the server's READY line).",
        "",
        "## Machine",
        "",
        f"- CPU: {m.get('cpu_model')}, `nproc` = {m.get('nproc')}, "
        f"{m.get('memory_gib')} GiB RAM, Linux {m.get('kernel')}",
        f"- Python {m.get('python')}; every client process on the **{m.get('loop')}** event "
        "loop (uvloop is installed into the 0.1.7 virtualenv too, so it gets the same loop)",
        "- Libraries: " + ", ".join(f"{k} {v}" for k, v in (m.get("libraries") or {}).items()),
        f"- Whole run: {results.get('wall_s')} s"
        + _previous_wall(results)
        + _sections_note(results),
        "- Shared machine: other sessions' processes may run meanwhile. Before each run the "
        "driver waits (up to 15 s) until processes other than the benchmark's use at most "
        "0.15 cores (from /proc/stat minus the benchmark's own CPU); a run during which "
        "they used more is flagged `disturbed`, repeated (at most twice, at most "
        f"{results.get('retry_budget', 12)} times "
        "in all), and left out of the medians when an undisturbed run of the same slot "
        f"exists. This run: {_disturbed_count(results)}.",
        "",
        "## Clients",
        "",
        "Each runs in its own subprocess; CPU is `getrusage(RUSAGE_SELF)` user+sys of that "
        "process over the measured window only. All four run the same scenario code "
        "(`benchmarks/_scenarios.py`) and hand each frame to the same callback "
        "`(envelope_bytes, is_last)`:",
        "",
        "- **floor** (`client_floor.py`): picows `on_ws_frame`, payload copied to bytes, one "
        "upb `Message.ParseFromString`, callback. The least a client can do.",
        "- **websockets** (`client_websockets.py`): `websockets.asyncio` with "
        "`compression=None`, one reader task per connection, one parse, callback.",
        "- **avatarkit 0.1.7** and **ours**: `benchmarks/sdk_runner.py`, the same file under "
        "two interpreters, using only the published API (`new_avatar_session(...)`, "
        "`init()`, `start()`, `send_audio()`, `close()`; frames via `transport_frames`).",
        "",
    ]
    L += _server_section(results)

    fl = cfg.get("flood", {})
    L += [
        f"## Client CPU per received frame ({fl.get('sessions')} sessions x {fl.get('frames')} "
        "frames of ~600 bytes, flood)",
        "",
        "Measured from the first audio send to the last `end` frame, all sessions set up "
        "beforehand. Median (min-max) of the runs.",
        "",
        "| client | µs CPU / frame | x floor | x avatarkit 0.1.7 | frames/s | lost | issue "
        "reported (µs) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in FLOOD_CLIENTS:
        row = s["flood"].get(name)
        if not row:
            continue
        if not row["available"]:
            L.append(f"| {SHORT[name]} | SDK not available yet | | | | | |")
            continue
        L.append(
            f"| {SHORT[name]} | {_fmt(row['cpu_us_per_frame'], 3)} ({_fmt(row['min'], 2)}-"
            f"{_fmt(row['max'], 2)}) | {_fmt(row['x_floor'])} | {_fmt(row['x_avatarkit017'])} | "
            f"{_fmt(row['frames_per_s'], 0)} | {row['frames_lost']} | "
            f"{ISSUE_CPU_US.get(name, '')} |"
        )
    L += [
        "",
        "The issue's figures for floor, websockets and 0.1.7 were measured on an earlier "
        "machine of this kind; compare the ratios (0.1.7 / floor was ~4.4x there).",
        "",
    ]
    stream = s.get("streaming") or {}
    if any((v or {}).get("cpu_us_per_frame") for v in stream.values()):
        fr = stream.get("ours-frames") or {}
        an = stream.get("ours-on_animation") or {}
        L += [
            "Our SDK's other ways to receive frames, same scenario: **ours, on_animation** "
            "passes `on_animation=` (the SDK builds an `AnimationFrameEvent` per frame; the "
            "runner's callback gets `event.message` and `event.end`); **ours, frames()** "
            "runs one task per session doing `async for event in session.frames()` (the "
            "streaming API: the same event object, appended to the iterator's buffer and "
            "taken off by the iterating task). Per frame, the streaming API costs "
            f"{_fmt(fr.get('x_callback'))}x the `transport_frames` callback path and the "
            f"`on_animation` callback {_fmt(an.get('x_callback'))}x; the difference is the "
            "event object plus, for `frames()`, the hand-over to another task: the "
            "iterating task is woken through the event loop (a future and a task step) "
            "for each batch of frames that arrived while it slept, and resumes the async "
            "generator once per frame.",
            "",
        ]

    su = cfg.get("setup", {})
    L += [
        f"## Session set-up ({su.get('setups')} sequential set-ups on loopback)",
        "",
        "Token call + WebSocket upgrade + ClientConfigureSession/ServerConfirmSession, each "
        "session closed before the next; medians over runs of each run's p50 and p99. The "
        "bare clients reuse one pooled aiohttp session for the token call; ours reuses one "
        "aiohttp client per event loop too, and runs picows on uvloop's own transport (see "
        "*Transport choice*).",
        "",
        "| client | p50 (ms) | p99 (ms) | p50 x 0.1.7 | p99 x 0.1.7 | token p50 | WebSocket "
        "p50 | client CPU per set-up (ms) | server CPU per set-up (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in CLIENTS:
        row = s["setup"].get(name)
        if not row:
            continue
        if not row["available"]:
            L.append(f"| {SHORT[name]} | SDK not available yet | | | | | | | |")
            continue
        L.append(
            f"| {SHORT[name]} | {_fmt(row['p50_ms'], 3)} | {_fmt(row['p99_ms'], 3)} | "
            f"{_fmt(row['p50_x_avatarkit017'])} | {_fmt(row['p99_x_avatarkit017'])} | "
            f"{_fmt(row['token_p50_ms'], 3)} | {_fmt(row['websocket_p50_ms'], 3)} | "
            f"{_fmt(row['cpu_ms_per_setup'], 3)} | "
            f"{_fmt(row['server_cpu_ms_per_setup'], 3)} |"
        )
    floor_row = s["setup"].get("floor", {})
    ours_row = s["setup"].get("ours", {})
    floor_x = floor_row.get("p50_x_avatarkit017")
    ours_x = ours_row.get("p50_x_avatarkit017")
    if floor_x is not None and ours_x is not None and ours_x < floor_x:
        L += [
            "",
            f"Ours ({ours_x:.2f}x avatarkit 0.1.7 at p50) is below the floor ({floor_x:.2f}x) "
            "here: the floor's token call goes through aiohttp's client (token p50 "
            f"{_fmt(floor_row.get('token_p50_ms'), 3)} ms against our "
            f"{_fmt(ours_row.get('token_p50_ms'), 3)} ms) and its picows runs on "
            "aiofastnet's transport, which sets a connection up more slowly than uvloop's "
            "own (see *Transport choice*).",
        ]
    elif floor_x is not None and floor_x > 0.5:
        L += [
            "",
            f"Even the floor measures {floor_x:.2f}x avatarkit 0.1.7 at p50 on loopback here: "
            "the fixed costs (server, kernel, round trips) take more than the 0.5x goal leaves.",
        ]
    L += [
        "",
        "The server's own CPU per set-up (token route on a minimal asyncio HTTP protocol, "
        "picows upgrade, confirm, close) sits on the critical path of every set-up and is "
        "the same for every client, so it compresses the ratios: a client that cost "
        "nothing would still measure about that much plus the loopback round trips.",
        "",
    ]

    rt = cfg.get("realtime", {})
    L += [
        f"## Real-time pace ({rt.get('frames')} frames per session at 25/s)",
        "",
        "Sessions set up 32 at a time; then each sends 16 kHz PCM in 40 ms chunks (1,280 "
        "bytes) at real-time pace, start times spread evenly over one 40 ms period, and the "
        "server answers 25 frames/s from the first chunk's arrival. Delay = callback time - "
        "the frame's due time (both `time.monotonic()`, system-wide). p50/p99: median over "
        "runs; max: worst run. Memory: VmRSS peak during streaming minus VmRSS before the "
        "sessions were opened (after a warm-up session and with the recording arrays "
        "preallocated), per session. `send lag` is how late the audio senders woke (the "
        "client loop's own backlog).",
        "",
    ]
    for n in sorted(s["realtime"], key=int):
        L += [
            f"### {n} sessions",
            "",
            "| client | delay p50 / p99 / max (ms) | frames lost | client CPU | KiB per "
            "session | send lag p99 (ms) | server lateness p99 (ms) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for name in CLIENTS:
            row = s["realtime"][n].get(name)
            if not row:
                continue
            if not row["available"]:
                L.append(f"| {SHORT[name]} | SDK not available yet | | | | | |")
                continue
            lost = f"{row['frames_lost']} / {row['frames_expected']}"
            if row.get("failed_runs"):
                k = row["failed_runs"]
                lost += f" ({k} failed run{'s' if k > 1 else ''})"
            if row.get("disturbed_excluded"):
                k = row["disturbed_excluded"]
                lost += f" ({k} disturbed run{'s' if k > 1 else ''} left out)"
            L.append(
                f"| {SHORT[name]} | {_fmt(row['delay_p50_ms'])} / {_fmt(row['delay_p99_ms'])} / "
                f"{_fmt(row['delay_max_ms'])} | {lost} | "
                f"{_fmt((row['cpu_share'] or 0) * 100, 0)}% | "
                f"{_fmt(row['rss_kib_per_session'], 1)} | {_fmt(row['send_lag_p99_ms'])} | "
                f"{_fmt(row['server_lateness_p99_ms'])} |"
            )
        L.append("")

    mb = results.get("membreak")
    if mb and mb.get("ok"):
        L += [
            "### Where our memory per session goes (`benchmarks/mem_breakdown.py`)",
            "",
            mb["output"].rstrip(),
            "",
            "Most of what remains is picows's and uvloop's per-connection state: picows "
            "allocates a read buffer of at least 2 KiB (its minimum, whatever "
            "`read_buffer_init_size` says) and a 1 KiB write buffer per connection, plus its "
            "protocol and transport objects; uvloop's TCP transport and libuv handle add about "
            "1 KiB. The SDK's own objects (session, configuration, protocol state, transport "
            "wrapper, listener) are about 1 KiB. In the real-time table above, every client's "
            "figure also includes the benchmark's own sender task per session (the "
            "application's share, the same for every client; measured by the script as the "
            "memory of sender tasks that send nothing).",
            "",
        ]
    L += _transport_section(s)
    L += _compression_section(s, cfg)

    L += local_markdown(results)

    prof = results.get("profile")
    if prof:
        L += [
            "## Where our remaining per-frame cost goes (cProfile)",
            "",
            f"One extra flood run of our SDK under cProfile ({prof['frames']} frames; that "
            f"run cost {_fmt(prof['profiled_run_cpu_us_per_frame'], 3)} µs CPU/frame with the "
            f"profiler's overhead, of which {_fmt(prof['profiled_us_per_frame'], 3)} µs/frame "
            "is attributed to Python-visible calls; the profiler inflates small calls, so "
            "read the shares, not the absolute values). Own time per frame of the "
            "top entries; what is not listed (socket reads, picows frame parsing, the "
            "event loop) runs in C and is not attributed by cProfile:",
            "",
            "| µs/frame (own) | µs/frame (cumulative) | calls | function |",
            "|---:|---:|---:|---|",
        ]
        for r in prof["top"][:12]:
            L.append(
                f"| {r['tottime_us_per_frame']:.3f} | {r['cumtime_us_per_frame']:.3f} | "
                f"{r['calls']} | `{r['function']}` |"
            )
        L.append("")

    if png is not None:
        try:
            rel = png.relative_to(path.parent)
        except ValueError:
            rel = png
        L += ["## Plot", "", f"![benchmarks]({rel.as_posix()})", ""]

    opus = results.get("opus")
    if opus:
        L += [
            "## Ogg Opus encoder (`benchmarks/bench_opus.py`)",
            "",
            "Goal: >= 100x real time on one core and <= 1.2x the cost of calling the codec "
            "library directly. Output of the script:",
            "",
            "```",
            opus.get("output", "").rstrip(),
            "```",
            "",
        ]
    if results.get("failures"):
        L += ["## Failed runs", "", *[f"- {f}" for f in results["failures"]], ""]
    path.write_text("\n".join(L) + "\n")
