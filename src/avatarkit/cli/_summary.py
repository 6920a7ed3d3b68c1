"""What ``demo`` and ``send`` check before they start and print when they end.

The output path is refused before any connection is made when it cannot
work; the closing summary says how the frames were paced from what was
measured, not from the flags given.
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ._common import CLIError

if TYPE_CHECKING:
    from ._stream import Clip, StreamResult

__all__ = ["PACED_FRACTION", "check_out_path", "pacing_label", "print_summary"]


PACED_FRACTION = 0.8
"""Frames received over at least this share of the audio's duration were paced."""


def pacing_label(result: StreamResult, audio_s: float) -> str:
    """How the frames were paced, from the measured receive time (not from flags).

    A hosted service paces its answer to the audio whatever the client does,
    so ``--fast`` alone does not make a run unpaced. Rule: the frames took at
    least :data:`PACED_FRACTION` of the audio's duration to arrive (from the
    first audio sent to the end frame) -> real time; less -> faster than real
    time. Who paced is said when known: the client when it sent in real time,
    else the service.
    """
    span = result.receive_s
    if span is None or audio_s <= 0:
        return "n/a (no frames)"
    figures = f"received over {span:.2f} s for {audio_s:.2f} s of audio"
    if span >= PACED_FRACTION * audio_s:
        who = "audio sent in real time" if result.paced else "paced by the service"
        return f"real time, {who} ({figures})"
    return f"faster than real time, {audio_s / max(span, 1e-6):.1f}x ({figures})"


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it: not importable
        return False


def print_summary(
    title: str,
    result: StreamResult,
    clip: Clip,
    *,
    service: str,
    detail: str,
    out: Path,
    plot_hint: bool = False,
    stream: IO[str] | None = None,
) -> None:
    """The closing summary of ``demo`` and ``send`` (on stdout)."""
    stream = stream if stream is not None else sys.stdout
    fps = result.frames_per_second
    ttff = result.time_to_first_frame_s
    ends = "yes" if result.end_markers else "no"
    try:
        shown = out.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = out.resolve()
    rows = (
        ("service", service),
        ("request", result.req_id),
        ("frames received", f"{result.frames} (end marker: {ends})"),
        ("frames per second", f"{fps:.1f}" if fps is not None else "n/a"),
        ("pacing", pacing_label(result, clip.duration_s)),
        ("time to first frame", f"{ttff * 1000:.0f} ms" if ttff is not None else "n/a"),
        ("audio duration", f"{clip.duration_s:.2f} s ({detail})"),
        ("wall time", f"{result.finished_at - result.started_at:.2f} s"),
        ("frames written to", str(shown)),
    )
    lines = [f"{title}: done"] + [f"  {name:<20} {value}" for name, value in rows]
    # The plot needs matplotlib (the "plot" extra): suggest it only when installed.
    plot = " --plot frames.png" if plot_hint and _installed("matplotlib") else ""
    lines.append(f"next: avatarkit inspect {shown}{plot}")
    print("\n".join(lines), file=stream, flush=True)


def check_out_path(out: Path, *, overwrite: bool) -> None:
    """Refuse an output path that cannot work, before anything starts.

    Checked: the suffix (``.jsonl``/``.bin``), that it is not a directory,
    that its directory exists and is writable, and (unless ``overwrite``)
    that no file is there already. ``send`` keeps an existing file unless
    given ``--force``; ``demo`` rewrites its own output (it is a demo).
    """
    if out.suffix.lower() not in (".jsonl", ".bin"):
        raise CLIError(
            f"--out {out}: unknown frames file type {out.suffix or '(none)'!r}",
            "name it *.jsonl (JSON lines) or *.bin (length-prefixed Message bytes)",
        )
    if out.is_dir():
        raise CLIError(
            f"--out {out} is a directory", f"give a file name, e.g. {out / 'frames.jsonl'}"
        )
    parent = out.parent
    if not parent.exists():
        raise CLIError(f"--out {out}: directory {parent} does not exist", "create it first")
    if not parent.is_dir():
        raise CLIError(f"--out {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"--out {out}: directory {parent} is not writable")
    if out.exists() and not overwrite:
        raise CLIError(
            f"--out {out} already exists",
            "pass --force to overwrite it, or choose another --out",
        )
