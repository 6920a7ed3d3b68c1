"""``avatarkit inspect FRAMES --html OUT.html`` (issue 12): the file's content and errors.

The page itself is played in Chromium in tests/test_viewer_browser.py; here the
command runs in process on frames files written by ``avatarkit send`` against
the embedded local service.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from avatarkit.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(scope="module")
def frames_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("replay")
    out = folder / "frames.jsonl"
    assert main(["send", str(FIXTURES / "speech_16000.wav"), "--out", str(out)]) == 0
    return out


def _data(page: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="recording">(.*?)</script>', page, re.S)
    assert match
    data: dict[str, object] = json.loads(match.group(1))
    return data


def test_html_is_self_contained_with_frames_and_audio(
    frames_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "replay.html"
    assert main(["inspect", str(frames_jsonl), "--html", str(out)]) == 0
    assert f"written to {out}" in capsys.readouterr().out
    page = out.read_text()
    # No fetch of anything: no external or relative src/href, no CDN.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:)", page)
    assert "AvatarFace" in page and "avatarReplay" in page
    data = _data(page)
    frames = data["frames"]
    assert isinstance(frames, list) and len(frames) == 341  # 13.64 s at 25 fps
    assert [f["i"] for f in frames] == list(range(341))
    audio = data["audio"]
    assert isinstance(audio, dict) and audio["sample_rate"] == 16000


def test_html_without_audio_falls_back_to_jaw_curve(
    frames_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moved = tmp_path / "frames.jsonl"
    lines = frames_jsonl.read_text().splitlines()
    header = json.loads(lines[0])
    header["audio"] = str(tmp_path / "gone.wav")
    moved.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    out = tmp_path / "replay.html"
    assert main(["inspect", str(moved), "--html", str(out)]) == 0
    assert "gone.wav" in capsys.readouterr().err
    assert _data(out.read_text())["audio"] is None


def test_html_escapes_what_could_close_the_script(tmp_path: Path) -> None:
    from avatarkit.cli._frames_file import FrameRecord, FramesFile
    from avatarkit.cli._replay_html import build_replay_html

    evil = "</script><script>alert(1)</script>"
    anim = {"frame_index": 0, "timestamp_ms": 0, "viseme": evil, "blendshapes": {"jawOpen": 0.5}}
    ff = FramesFile(path=tmp_path / "x.jsonl", kind="jsonl", header=None)
    ff.frames.append(
        FrameRecord(req_id=evil, end=True, received_at=None, payload=b"", animation=anim)
    )
    page, req_id = build_replay_html(ff)
    assert req_id == evil
    assert evil not in page
    assert _data(page)["req_id"] == evil


@pytest.mark.parametrize(
    ("name", "message"),
    [("replay.png", "must end in .html"), ("missing/replay.html", "does not exist")],
)
def test_html_bad_output_path_is_a_clear_error(
    frames_jsonl: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    message: str,
) -> None:
    assert main(["inspect", str(frames_jsonl), "--html", str(tmp_path / name)]) == 1
    assert message in capsys.readouterr().err


def test_html_needs_local_service_animation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = tmp_path / "opaque.jsonl"
    header = {"type": "header", "format": "avatarkit-frames", "version": 1, "audio": None}
    frame = {"type": "frame", "req_id": "r", "end": True, "received_at": 1.0, "payload": "AAE="}
    frames.write_text(json.dumps(header) + "\n" + json.dumps(frame) + "\n")
    assert main(["inspect", str(frames), "--html", str(tmp_path / "r.html")]) == 1
    assert "no local-service animation to replay" in capsys.readouterr().err
