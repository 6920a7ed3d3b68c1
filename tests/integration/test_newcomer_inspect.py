"""``avatarkit inspect`` refuses, in one line and with status 1, what is not a frames file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avatarkit.cli import main
from tests._helpers import FIXTURES

NOT_FRAMES = "is not an avatarkit frames file"
NOISE = bytes((i * 131 + 7) % 256 for i in range(4096))  # deterministic noise

# name -> (file name, content, a fragment of the reason given)
CASES: dict[str, tuple[str, bytes, str]] = {
    "wav": ("speech.wav", (FIXTURES / "speech_16000.wav").read_bytes(), "WAV"),
    "ogg_named_jsonl": ("speech.jsonl", (FIXTURES / "speech_24000.ogg").read_bytes(), "Ogg"),
    "random_bin": ("noise.bin", NOISE, "byte 0"),
    "random_no_suffix": ("noise", NOISE, "byte 0"),
    "empty_jsonl": ("empty.jsonl", b"", "empty"),
    "empty_bin": ("empty.bin", b"", "empty"),
    "blank_lines": ("blank.jsonl", b"\n\n  \n", "empty"),
    "other_json": ("x.json", json.dumps({"name": "x", "items": [1]}).encode(), '"type"'),
    "other_jsonl": ("x.jsonl", b'{"id": 1}\n{"id": 2}\n', '"type"'),
    "json_list": ("list.json", b"[1, 2, 3]\n", "not an object"),
    "other_format": ("h.jsonl", b'{"type": "header", "format": "other"}\n', "format"),
    "not_utf8": ("u.jsonl", b"\xff\xfe\x00{", "UTF-8"),
    "plain_text": ("notes.jsonl", b"hello world\n", "not JSON"),
    "deep_list": ("deep.jsonl", b"[" * 100_000 + b"\n", "nested"),
    "deep_object": ("deep.json", b'{"a":' * 100_000 + b"\n", "nested"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_inspect_refuses_what_is_not_a_frames_file(case: str, tmp_path: Path, capsys: Any) -> None:
    name, content, why = CASES[case]
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["inspect", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {path} {NOT_FRAMES}"), lines[0]
    assert why in lines[0], lines[0]
    assert "Traceback" not in err


def test_inspect_of_a_wav_as_a_command(tmp_path: Path) -> None:
    """The installed command: one line on stderr, status 1, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARKIT_")}
    result = subprocess.run(
        [sys.executable, "-m", "avatarkit", "inspect", str(FIXTURES / "speech_16000.wav")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert NOT_FRAMES in result.stderr and "Traceback" not in result.stderr


def test_deep_nesting_after_the_first_record_is_a_damaged_line(tmp_path: Path, capsys: Any) -> None:
    """A later line nested beyond the bound is reported where it is, not a RecursionError."""
    frames = tmp_path / "f.jsonl"
    assert main(["demo", "--fast", "--out", str(frames)]) == 0
    capsys.readouterr()
    lines = frames.read_bytes().splitlines()
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"\n".join([*lines[:2], b"[" * 100_000, *lines[2:]]) + b"\n")
    assert main(["inspect", str(damaged)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {damaged}:3: ") and "nested" in err, err
    assert "RecursionError" not in err and NOT_FRAMES not in err, err


def test_damage_after_the_first_record_is_reported_where_it_is(tmp_path: Path, capsys: Any) -> None:
    """A real frames file cut short is a damaged frames file, not 'another kind of file'."""
    frames = tmp_path / "f.bin"
    assert main(["demo", "--fast", "--out", str(frames)]) == 0
    capsys.readouterr()
    data = frames.read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) - 3])
    assert main(["inspect", str(cut)]) == 1
    line = capsys.readouterr().err.strip()
    assert "truncated" in line and NOT_FRAMES not in line, line
