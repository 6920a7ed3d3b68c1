"""``inspect``: summarise a frames file, plot its animation, or write a replay page."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import FRAME_MS, _note
from ._frames_file import FrameRecord, FramesFile, one_request_animations, read_frames_file

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def summarize(frames_file: FramesFile) -> dict[str, Any]:
    """Requests, frames, end markers and receive gaps of a frames file."""
    by_request: dict[str, list[FrameRecord]] = {}
    for frame in frames_file.frames:
        by_request.setdefault(frame.req_id, []).append(frame)
    threshold_ms = 2 * FRAME_MS
    requests = []
    warnings: list[str] = []
    for req_id, frames in by_request.items():
        ends = sum(1 for f in frames if f.end)
        times = [f.received_at for f in frames if f.received_at is not None]
        gaps_ms = [(b - a) * 1000 for a, b in itertools.pairwise(times)]
        decoded = [f.animation for f in frames if f.animation is not None]
        indices = [int(a.get("frame_index", 0)) for a in decoded]
        info: dict[str, Any] = {
            "req_id": req_id,
            "frames": len(frames),
            "end_markers": ends,
            "end_on_last_frame": frames[-1].end,
            "decoded_frames": len(decoded),
            "receive_span_s": round(times[-1] - times[0], 4) if len(times) > 1 else None,
            "max_gap_ms": round(max(gaps_ms), 1) if gaps_ms else None,
            "gaps_over_threshold": sum(1 for g in gaps_ms if g > threshold_ms) if gaps_ms else None,
            "animation_s": round((max(indices) + 1) * FRAME_MS / 1000, 3) if indices else None,
        }
        requests.append(info)
        if ends == 0:
            warnings.append(f"request {req_id}: no end marker (interrupted or cut short?)")
        elif ends > 1:
            warnings.append(f"request {req_id}: {ends} end markers")
        elif not frames[-1].end:
            warnings.append(f"request {req_id}: frames arrived after the end marker")
        if indices and indices != list(range(indices[0], indices[0] + len(indices))):
            warnings.append(f"request {req_id}: frame indices are not consecutive")
    header = frames_file.header or {}
    return {
        "file": str(frames_file.path),
        "kind": frames_file.kind,
        "audio": header.get("audio"),
        "audio_sample_rate": header.get("audio_sample_rate"),
        "service": header.get("service"),
        "requests": len(requests),
        "frames": len(frames_file.frames),
        "end_markers": sum(r["end_markers"] for r in requests),
        "decoded_frames": sum(r["decoded_frames"] for r in requests),
        "other_messages": frames_file.other_messages,
        "frame_interval_ms": FRAME_MS,
        "gap_threshold_ms": threshold_ms,
        "per_request": requests,
        "warnings": warnings,
    }


def _print_summary_text(summary: dict[str, Any]) -> None:
    out = sys.stdout
    print(f"{summary['file']} ({summary['kind']})", file=out)
    if summary["audio"]:
        print(f"  audio          {summary['audio']} ({summary['audio_sample_rate']} Hz)", file=out)
    if summary["service"]:
        print(f"  service        {summary['service']}", file=out)
    print(f"  requests       {summary['requests']}", file=out)
    print(f"  frames         {summary['frames']}", file=out)
    print(f"  end markers    {summary['end_markers']}", file=out)
    decoded = summary["decoded_frames"]
    print(
        f"  payloads       {decoded} decoded as local-service animation"
        + ("" if decoded else " (opaque payloads)"),
        file=out,
    )
    if summary["other_messages"]:
        print(f"  other records  {summary['other_messages']} (skipped)", file=out)
    threshold = summary["gap_threshold_ms"]
    print(
        f"\n  {'request':<34}{'frames':>7}{'ends':>6}{'span s':>9}{'max gap ms':>12}"
        f"{f'gaps>{threshold}ms':>12}",
        file=out,
    )
    for req in summary["per_request"]:
        span = req["receive_span_s"]
        gap = req["max_gap_ms"]
        late = req["gaps_over_threshold"]
        print(
            f"  {req['req_id'] or '(none)':<34}{req['frames']:>7}{req['end_markers']:>6}"
            f"{'n/a' if span is None else f'{span:.2f}':>9}"
            f"{'n/a' if gap is None else f'{gap:.1f}':>12}"
            f"{'n/a' if late is None else late:>12}",
            file=out,
        )
    if summary["kind"] == "bin":
        print("  (.bin files hold no receive times: gaps are n/a)", file=out)
    for warning in summary["warnings"]:
        print(f"  warning: {warning}", file=out)
    out.flush()


PLOT_SHAPES = ("jawOpen", "mouthClose", "mouthFunnel", "mouthSmileLeft")
"""Blendshapes ``inspect --plot`` draws."""


def plot_frames(
    frames_file: FramesFile,
    out: Path,
    *,
    audio: str | None = None,
    sample_rate: int | None = None,
    req_id: str | None = None,
) -> str:
    """Draw the audio waveform (when known) over the blendshapes of one request.

    Returns the request id drawn. Needs matplotlib (``avatarkit[plot]``).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        from ..errors import OptionalDependencyError

        raise OptionalDependencyError("inspect --plot", "plot") from exc

    chosen, records = one_request_animations(frames_file, req_id, "--plot", "plot")
    animations = [f.animation for f in records if f.animation]
    times = [a["timestamp_ms"] / 1000 for a in animations]

    header = frames_file.header or {}
    audio_path = audio or header.get("audio")
    rate = sample_rate or (header.get("audio_sample_rate") if audio is None else None)
    wave: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
    if audio_path:
        if Path(audio_path).is_file():
            wave = _waveform(str(audio_path), rate)
        elif audio is not None:
            raise FileNotFoundError(2, "audio file not found", audio)
        else:
            _note(f"audio {audio_path} from the header is not there: drawing without it")

    rows = 2 if wave is not None else 1
    fig = Figure(figsize=(12, 3 + 2.5 * rows), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    if wave is not None:
        t, y = wave
        ax = axes[0]
        ax.plot(t, y, linewidth=0.4, color="#555555")
        ax.set_ylabel("audio")
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(f"{frames_file.path.name} — request {chosen}")
    ax = axes[-1]
    for name in PLOT_SHAPES:
        values = [float(a.get("blendshapes", {}).get(name, 0.0)) for a in animations]
        ax.plot(times, values, label=name, linewidth=1.2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("blendshape weight")
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", ncols=len(PLOT_SHAPES), fontsize="small")
    if wave is None:
        ax.set_title(f"{frames_file.path.name} — request {chosen}")
    fig.savefig(out, dpi=100)
    return chosen


def _waveform(
    path: str, rate: int | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    import numpy as np

    from ..audio.files import read_audio_file

    samples, file_rate = read_audio_file(path, sample_rate=rate)
    step = max(1, len(samples) // 200_000)
    y = samples[::step].astype(np.float64) / 32768.0
    t = np.arange(len(y), dtype=np.float64) * step / file_rate
    return t, y


async def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    frames_file = read_frames_file(args.frames)
    summary = summarize(frames_file)
    if args.plot:
        chosen = plot_frames(
            frames_file,
            Path(args.plot),
            audio=args.audio,
            sample_rate=args.sample_rate,
            req_id=args.req_id,
        )
        summary["plot"] = {"path": str(Path(args.plot)), "req_id": chosen}
    if args.html:
        from ._replay_html import write_replay_html

        replayed = write_replay_html(
            frames_file,
            Path(args.html),
            audio=args.audio,
            sample_rate=args.sample_rate,
            req_id=args.req_id,
        )
        summary["html"] = {"path": str(Path(args.html)), "req_id": replayed}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary_text(summary)
        if args.plot:
            print(f"\nplot of request {summary['plot']['req_id']} written to {args.plot}")
        if args.html:
            print(
                f"\nreplay of request {summary['html']['req_id']} written to {args.html} "
                "(open it in a browser; it needs no network)"
            )
    return 0
