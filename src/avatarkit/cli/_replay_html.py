"""``inspect --html``: one self-contained HTML file replaying a recorded request.

The file embeds the face (the live viewer's ``face.js``), its player and style
(package data under ``avatarkit/devserver/static``), the request's frames and,
when known, the audio that was sent: it opens from disk (``file://``) with no
network and can be attached to a bug report. It shows the face, a waveform
and the jawOpen, mouthClose, mouthFunnel, mouthPucker, mouthSmileLeft and
eyeBlinkLeft curves, with play/pause and seeking.

Audio: ``--audio FILE`` (``--sample-rate`` for raw PCM), else the file named in
a ``.jsonl`` header when it is still there. Without audio (``.bin`` files,
hosted runs, a moved clip) the waveform lane shows the jawOpen curve instead.
At most :data:`MAX_AUDIO_SECONDS` of audio are embedded (the rest is cut).
"""

from __future__ import annotations

import base64
import html
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from ._common import CLIError, _note
from ._frames_file import FramesFile, one_request_animations

__all__ = ["MAX_AUDIO_SECONDS", "build_replay_html", "write_replay_html"]

MAX_AUDIO_SECONDS = 600
"""Audio embedded in a replay file at most (10 minutes: about 13 MiB at 16 kHz)."""


def _static(name: str) -> str:
    return (files("avatarkit.devserver") / "static" / name).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no HTML parsing)."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _chosen_frames(frames_file: FramesFile, req_id: str | None) -> tuple[str, list[dict[str, Any]]]:
    chosen, candidates = one_request_animations(frames_file, req_id, "--html", "replay")
    by_index: dict[int, dict[str, Any]] = {}
    for record in candidates:
        anim = record.animation
        if record.req_id != chosen or anim is None:
            continue
        index = int(anim.get("frame_index", 0))
        shapes = {str(k): round(float(v), 4) for k, v in anim.get("blendshapes", {}).items()}
        by_index[index] = {"i": index, "v": str(anim.get("viseme", "")), "bs": shapes}
    # One entry per 40 ms from frame 0 (the player indexes by time); a frame
    # missing from the recording repeats the one before it.
    frames: list[dict[str, Any]] = []
    rest: dict[str, Any] = {"i": 0, "v": "sil", "bs": {}}
    for index in range(max(by_index) + 1):
        frame = by_index.get(index)
        if frame is None:
            frame = {**(frames[-1] if frames else rest), "i": index}
        frames.append(frame)
    return chosen, frames


def _audio(
    frames_file: FramesFile, audio: str | None, sample_rate: int | None
) -> dict[str, Any] | None:
    header = frames_file.header or {}
    path = audio or header.get("audio")
    if not path:
        return None
    if not Path(path).is_file():
        if audio is not None:
            raise FileNotFoundError(2, "audio file not found", audio)
        _note(f"audio {path} from the header is not there: the replay shows jawOpen instead")
        return None
    rate = sample_rate or (header.get("audio_sample_rate") if audio is None else None)
    from ..audio.files import read_audio_file

    samples, file_rate = read_audio_file(str(path), sample_rate=rate)
    limit = MAX_AUDIO_SECONDS * file_rate
    if len(samples) > limit:
        _note(f"audio longer than {MAX_AUDIO_SECONDS} s: the replay embeds the first part")
        samples = samples[:limit]
    pcm = samples.astype("<i2").tobytes()
    return {
        "source": Path(path).name,
        "sample_rate": int(file_rate),
        "pcm": base64.b64encode(pcm).decode("ascii"),
    }


def build_replay_html(
    frames_file: FramesFile,
    *,
    audio: str | None = None,
    sample_rate: int | None = None,
    req_id: str | None = None,
) -> tuple[str, str]:
    """``(html, req_id)``: the replay page of one request of ``frames_file``."""
    chosen, frames = _chosen_frames(frames_file, req_id)
    data = {
        "req_id": chosen,
        "frames": frames,
        "audio": _audio(frames_file, audio, sample_rate),
    }
    title = html.escape(frames_file.path.name)
    subtitle = html.escape(
        f"request {chosen}: {len(frames)} frames ({len(frames) * 0.04:.2f} s), "
        "written by avatarkit inspect --html"
    )
    page = _static("replay.html")
    # Placeholders are replaced in one pass each, data last, so nothing in the
    # embedded scripts or JSON can be taken for a placeholder.
    for marker, value in (
        ("__TITLE__", title),
        ("__SUBTITLE__", subtitle),
        ("__STYLE__", _static("viewer.css")),
        ("__FACE_JS__", _static("face.js")),
        ("__REPLAY_JS__", _static("replay.js")),
        ("__DATA__", _script_json(data)),
    ):
        page = page.replace(marker, value)
    return page, chosen


def write_replay_html(
    frames_file: FramesFile,
    out: Path,
    *,
    audio: str | None = None,
    sample_rate: int | None = None,
    req_id: str | None = None,
) -> str:
    """Write the replay page to ``out``; returns the request id replayed."""
    if out.suffix.lower() not in (".html", ".htm"):
        raise CLIError(f"--html {out}: the file name must end in .html", "e.g. --html replay.html")
    if not out.parent.is_dir():
        raise CLIError(f"--html {out}: directory {out.parent} does not exist", "create it first")
    page, chosen = build_replay_html(
        frames_file, audio=audio, sample_rate=sample_rate, req_id=req_id
    )
    out.write_text(page, encoding="utf-8")
    return chosen
