"""The ``avatarkit`` command, end to end against the local avatar service.

Commands run in process through :func:`avatarkit.cli.main` (its own event loop)
or :func:`avatarkit.cli.main_async` (when the test's loop runs a DevServer),
and as subprocesses (``python -m avatarkit ...``) where the process boundary
matters: exit status, stderr, no traceback. Everything goes over real loopback
sockets.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avatarkit import AvatarSDKError, new_avatar_session
from avatarkit.cli import FrameSink, Progress, main, main_async, read_frames_file
from avatarkit.devserver import DevServer
from tests._helpers import CREDENTIAL_ENV_VARS as ENV_VARS
from tests._helpers import FIXTURES, ROOT

# No hosted-service settings from the environment: these tests use the local service.
pytestmark = pytest.mark.usefixtures("no_credentials")

DEMO_CLIP = ROOT / "src" / "avatarkit" / "data" / "speech_16000.pcm"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ENV_VARS}


def expected_frames(n_samples: int, rate: int) -> int:
    """25 frames per second of audio, the last one partial: ceil(duration / 40 ms)."""
    return math.ceil(n_samples * 25 / rate)


def samples_in(path: Path, sample_rate: int | None = None) -> tuple[int, int]:
    from avatarkit.audio.files import read_audio_file

    pcm, rate = read_audio_file(path, sample_rate=sample_rate)
    return len(pcm), rate


def summary_value(out: str, name: str) -> str:
    match = re.search(rf"^\s+{re.escape(name)}\s+(.+)$", out, re.MULTILINE)
    assert match, f"{name!r} not in summary:\n{out}"
    return match.group(1)


def frames_received(out: str) -> int:
    return int(summary_value(out, "frames received").split()[0])


def read_jsonl(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["type"] == "header"
    return lines[0], lines[1:]


def assert_one_error_line(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in line, line
    return line


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------


def test_demo_fast_summary_and_frames_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "frames.jsonl"
    assert main(["demo", "--fast", "--out", str(out_file)]) == 0
    out, err = capsys.readouterr()

    n_samples = DEMO_CLIP.stat().st_size // 2
    expected = expected_frames(n_samples, 16000)
    assert expected == 341
    assert frames_received(out) == expected
    assert "end marker: yes" in summary_value(out, "frames received")
    assert summary_value(out, "audio duration").startswith(f"{n_samples / 16000:.2f} s")
    assert float(summary_value(out, "frames per second").split()[0]) > 0
    assert summary_value(out, "time to first frame").endswith(" ms")
    assert summary_value(out, "frames written to").endswith("frames.jsonl")
    assert "embedded local avatar service" in err
    # The next step it suggests works with what is installed (--plot needs matplotlib).
    (hint,) = [line for line in out.splitlines() if line.startswith("next: ")]
    has_plot = importlib.util.find_spec("matplotlib") is not None
    assert hint.startswith("next: avatarkit inspect ") and ("--plot" in hint) == has_plot
    assert "100%" in err  # the progress lines (stderr is not a terminal here)
    assert len([line for line in err.splitlines() if "%" in line]) <= 6

    header, frames = read_jsonl(out_file)
    assert header["service"] == "local"
    assert header["audio"] == str(DEMO_CLIP.resolve())
    assert header["audio_sample_rate"] == header["sent_sample_rate"] == 16000
    assert len(frames) == expected
    assert [f["end"] for f in frames].count(True) == 1 and frames[-1]["end"]
    assert len({f["req_id"] for f in frames}) == 1
    assert [f["animation"]["frame_index"] for f in frames] == list(range(expected))
    assert [f["animation"]["timestamp_ms"] for f in frames] == [40 * i for i in range(expected)]
    assert all(f["received_at"] >= header["started_at"] for f in frames)
    assert "jawOpen" in frames[0]["animation"]["blendshapes"]


def test_demo_as_subprocess(tmp_path: Path) -> None:
    out_file = tmp_path / "demo.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "avatarkit",
            "demo",
            "--fast",
            "--out",
            str(out_file),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert frames_received(proc.stdout) == 341
    assert "Traceback" not in proc.stderr
    assert out_file.exists()


async def test_demo_uses_configured_service(
    avatar_server: DevServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    """With AVATARKIT_* set, demo talks to that service (here a DevServer) instead."""
    monkeypatch.setenv("AVATARKIT_API_KEY", avatar_server.api_key)
    monkeypatch.setenv("AVATARKIT_APP_ID", avatar_server.app_id)
    monkeypatch.setenv("AVATARKIT_AVATAR_ID", avatar_server.avatar_id)
    monkeypatch.setenv("AVATARKIT_CONSOLE_ENDPOINT", avatar_server.console_url)
    monkeypatch.setenv("AVATARKIT_INGRESS_ENDPOINT", avatar_server.ingress_url)
    out_file = tmp_path / "hosted.jsonl"
    assert await main_async(["demo", "--fast", "--out", str(out_file)]) == 0
    out, err = capsys.readouterr()
    assert "embedded" not in err
    assert summary_value(out, "service").startswith("configured")
    assert frames_received(out) == 341
    header, _ = read_jsonl(out_file)
    assert header["service"] == "configured"
    assert avatar_server.last_session is not None  # it did go to that server


def test_incomplete_service_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    monkeypatch.setenv("AVATARKIT_API_KEY", "some-key")
    assert main(["demo", "--fast", "--out", str(tmp_path / "x.jsonl")]) == 1
    _, err = capsys.readouterr()
    assert_one_error_line(err, "--app-id (or AVATARKIT_APP_ID)", "--ingress-endpoint")


# ---------------------------------------------------------------------------
# send
# ---------------------------------------------------------------------------


def test_send_wav(tmp_path: Path, capsys: Any) -> None:
    wav = FIXTURES / "speech_16000.wav"
    out_file = tmp_path / "wav.jsonl"
    assert main(["send", str(wav), "--out", str(out_file)]) == 0
    out, err = capsys.readouterr()
    n, rate = samples_in(wav)
    assert frames_received(out) == expected_frames(n, rate)
    assert "embedded local avatar service" in err
    header, frames = read_jsonl(out_file)
    assert header["audio"] == str(wav.resolve())
    assert header["audio_format"] == "pcm_s16le"
    assert len(frames) == expected_frames(n, rate)
    assert all("animation" in f for f in frames)


def test_send_raw_pcm_needs_sample_rate(tmp_path: Path, capsys: Any) -> None:
    out_file = tmp_path / "raw.jsonl"
    assert main(["send", str(FIXTURES / "speech_22050.pcm"), "--out", str(out_file)]) == 1
    _, err = capsys.readouterr()
    assert_one_error_line(err, "raw PCM", "--sample-rate")
    assert not out_file.exists()


def test_send_raw_pcm_error_as_subprocess(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "avatarkit", "send", str(FIXTURES / "speech_16000.pcm")],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert_one_error_line(proc.stderr, "--sample-rate")


def test_send_raw_pcm_with_sample_rate(tmp_path: Path, capsys: Any) -> None:
    raw = FIXTURES / "speech_22050.pcm"
    out_file = tmp_path / "raw.jsonl"
    assert main(["send", str(raw), "--sample-rate", "22050", "--out", str(out_file)]) == 0
    out, _ = capsys.readouterr()
    n = raw.stat().st_size // 2
    assert frames_received(out) == expected_frames(n, 22050)
    header, _ = read_jsonl(out_file)
    assert header["audio_sample_rate"] == header["sent_sample_rate"] == 22050


def test_send_resamples_to_nearest_supported_rate(tmp_path: Path, capsys: Any) -> None:
    """12 kHz is not a PCM rate: it goes out at 16 kHz, resampled."""
    import numpy as np

    pcm = np.frombuffer((FIXTURES / "speech_24000.pcm").read_bytes(), dtype="<i2")[::2]
    raw = tmp_path / "speech_12000.raw"
    raw.write_bytes(pcm.astype("<i2").tobytes())
    out_file = tmp_path / "r.jsonl"
    assert main(["send", str(raw), "--sample-rate", "12000", "--out", str(out_file)]) == 0
    out, err = capsys.readouterr()
    assert "resampling 12000 Hz -> 16000 Hz" in err
    header, frames = read_jsonl(out_file)
    assert header["sent_sample_rate"] == 16000
    assert len(frames) == frames_received(out)
    assert abs(len(frames) - expected_frames(len(pcm), 12000)) <= 1


def test_send_ogg_opus_file(tmp_path: Path, capsys: Any) -> None:
    ogg = FIXTURES / "speech_24000.ogg"
    out_file = tmp_path / "ogg.jsonl"
    assert main(["send", str(ogg), "--out", str(out_file)]) == 0
    out, _ = capsys.readouterr()
    n, rate = samples_in(ogg)
    assert rate == 24000
    assert frames_received(out) == expected_frames(n, rate)


def test_send_format_ogg_opus_with_builtin_encoder(tmp_path: Path, capsys: Any) -> None:
    wav = FIXTURES / "speech_16000.wav"
    out_file = tmp_path / "opus.jsonl"
    argv = ["send", str(wav), "--format", "ogg_opus", "--bitrate", "24000", "--chunk-ms", "20"]
    assert main([*argv, "--out", str(out_file)]) == 0
    out, _ = capsys.readouterr()
    n, rate = samples_in(wav)
    assert frames_received(out) == expected_frames(n, rate)
    assert "ogg_opus" in summary_value(out, "audio duration")
    header, frames = read_jsonl(out_file)
    assert header["audio_format"] == "ogg_opus"
    assert frames[-1]["end"]


def test_send_realtime_short_clip(tmp_path: Path, capsys: Any) -> None:
    raw = tmp_path / "one_second.pcm"
    raw.write_bytes((FIXTURES / "speech_16000.pcm").read_bytes()[: 16000 * 2])
    out_file = tmp_path / "rt.jsonl"
    argv = ["send", str(raw), "--sample-rate", "16000", "--realtime", "--out", str(out_file)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert frames_received(out) == 25
    assert "realtime pace" in err
    assert "real-time pace" in summary_value(out, "audio duration")


def test_send_bin_round_trip_through_inspect(tmp_path: Path, capsys: Any) -> None:
    from avatarkit.proto import avatarkit_wire_pb2 as pb

    wav = FIXTURES / "speech_16000.wav"
    bin_file = tmp_path / "frames.bin"
    jsonl_file = tmp_path / "frames.jsonl"
    assert main(["send", str(wav), "--out", str(bin_file)]) == 0
    assert main(["send", str(wav), "--out", str(jsonl_file)]) == 0
    capsys.readouterr()
    n, rate = samples_in(wav)
    expected = expected_frames(n, rate)

    # The file is length-prefixed serialized Messages.
    data = bin_file.read_bytes()
    pos, messages = 0, []
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        messages.append(pb.Message.FromString(data[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    assert pos == len(data)
    assert len(messages) == expected
    assert all(m.HasField("server_response_animation") for m in messages)
    assert messages[-1].server_response_animation.end

    assert main(["inspect", str(bin_file), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "bin"
    assert summary["requests"] == 1
    assert summary["frames"] == expected
    assert summary["end_markers"] == 1
    assert summary["decoded_frames"] == expected
    assert summary["per_request"][0]["max_gap_ms"] is None  # no receive times in .bin
    assert summary["warnings"] == []

    # The local service's animation is deterministic: both files hold the same frames.
    from_bin = read_frames_file(bin_file)
    from_jsonl = read_frames_file(jsonl_file)
    assert [f.payload for f in from_bin.frames] == [f.payload for f in from_jsonl.frames]
    assert [f.animation for f in from_bin.frames] == [f.animation for f in from_jsonl.frames]

    assert main(["inspect", str(bin_file)]) == 0
    text = capsys.readouterr().out
    assert re.search(rf"^\s+frames\s+{expected}$", text, re.MULTILINE)
    assert "no receive times" in text


def test_send_unknown_out_suffix(tmp_path: Path, capsys: Any) -> None:
    wav = FIXTURES / "speech_16000.wav"
    assert main(["send", str(wav), "--out", str(tmp_path / "frames.txt")]) == 1
    assert_one_error_line(capsys.readouterr().err, ".jsonl", ".bin")


# ---------------------------------------------------------------------------
# inspect
# ---------------------------------------------------------------------------


@pytest.fixture
def demo_frames(tmp_path: Path) -> Path:
    out_file = tmp_path / "demo.jsonl"
    assert main(["demo", "--fast", "--out", str(out_file)]) == 0
    return out_file


def test_inspect_jsonl_summary(demo_frames: Path, capsys: Any) -> None:
    capsys.readouterr()
    assert main(["inspect", str(demo_frames), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "jsonl"
    assert summary["requests"] == 1
    assert summary["frames"] == 341
    assert summary["end_markers"] == 1
    assert summary["audio"] == str(DEMO_CLIP.resolve())
    req = summary["per_request"][0]
    assert req["frames"] == 341 and req["end_on_last_frame"]
    assert req["max_gap_ms"] is not None and req["gaps_over_threshold"] is not None
    assert req["animation_s"] == pytest.approx(341 * 0.04)

    assert main(["inspect", str(demo_frames)]) == 0
    text = capsys.readouterr().out
    assert "requests       1" in text
    assert "end markers    1" in text
    assert "gaps>80ms" in text


def test_inspect_reports_missing_end_and_gaps(tmp_path: Path, capsys: Any) -> None:
    lines = [{"type": "header", "format": "avatarkit-frames", "version": 1}]
    for t in (0.0, 0.04, 0.08, 0.30, 0.34):
        lines.append({"type": "frame", "req_id": "a", "end": False, "received_at": 100 + t})
    lines.append({"type": "frame", "req_id": "b", "end": True, "received_at": 101.0})
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["requests"] == 2
    a, b = summary["per_request"]
    assert a["frames"] == 5 and a["end_markers"] == 0
    assert a["gaps_over_threshold"] == 1
    assert a["max_gap_ms"] == pytest.approx(220.0, abs=0.5)
    assert b["end_markers"] == 1
    assert any("no end marker" in w for w in summary["warnings"])


def test_inspect_plot_png(demo_frames: Path, tmp_path: Path, capsys: Any) -> None:
    png = tmp_path / "plot.png"
    assert main(["inspect", str(demo_frames), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert f"written to {png}" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a real drawing, not an empty canvas


def test_inspect_plot_bin_with_audio_flag(tmp_path: Path, capsys: Any) -> None:
    wav = FIXTURES / "speech_16000.wav"
    bin_file = tmp_path / "f.bin"
    assert main(["send", str(wav), "--out", str(bin_file)]) == 0
    png = tmp_path / "bin.png"
    assert main(["inspect", str(bin_file), "--plot", str(png), "--audio", str(wav)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_inspect_plot_without_matplotlib_names_the_extra(demo_frames: Path, tmp_path: Path) -> None:
    # A None entry in sys.modules makes "import matplotlib" fail as if not installed.
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.figure'] = None\n"
        "from avatarkit.cli import main\n"
        f"raise SystemExit(main(['inspect', {str(demo_frames)!r}, '--plot', 'x.png']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert_one_error_line(proc.stderr, 'pip install "avatarkit[plot]"')
    assert not (tmp_path / "x.png").exists()


def test_inspect_errors(tmp_path: Path, capsys: Any) -> None:
    assert main(["inspect", str(tmp_path / "missing.jsonl")]) == 1
    assert_one_error_line(capsys.readouterr().err, "file not found:", "missing.jsonl")

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "header"}\n{not json\n')
    assert main(["inspect", str(broken)]) == 1
    assert_one_error_line(capsys.readouterr().err, "broken.jsonl:2", "not valid JSON")

    truncated = tmp_path / "t.bin"
    truncated.write_bytes(b"\x00\x00\x01\x00abc")
    assert main(["inspect", str(truncated)]) == 1
    assert_one_error_line(capsys.readouterr().err, "truncated")

    opaque = tmp_path / "opaque.jsonl"
    opaque.write_text('{"type": "frame", "req_id": "r", "end": true, "payload": "AAEC"}\n')
    assert main(["inspect", str(opaque), "--plot", str(tmp_path / "o.png")]) == 1
    assert_one_error_line(capsys.readouterr().err, "no local-service animation")


# ---------------------------------------------------------------------------
# errors, usage, flags
# ---------------------------------------------------------------------------


async def test_wrong_api_key_is_one_line_with_the_code(
    avatar_server: DevServer, tmp_path: Path, capsys: Any
) -> None:
    # What the SDK itself says about this key ...
    session = new_avatar_session(
        **{**avatar_server.session_kwargs(), "api_key": "not-the-key"},
    )
    with pytest.raises(AvatarSDKError) as raised:
        await session.init()
    code = raised.value.code.value
    assert code in ("sessionTokenExpired", "sessionTokenInvalid")

    # ... is what the command reports, on one line, with what to do.
    argv = [
        "send",
        str(FIXTURES / "speech_16000.wav"),
        "--out",
        str(tmp_path / "f.jsonl"),
        "--api-key",
        "not-the-key",
        "--app-id",
        avatar_server.app_id,
        "--avatar-id",
        avatar_server.avatar_id,
        "--console-endpoint",
        avatar_server.console_url,
        "--ingress-endpoint",
        avatar_server.ingress_url,
    ]
    assert await main_async(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    line = assert_one_error_line(err, f"error: {code}: ", "--api-key")
    assert "not-the-key" not in line  # never echo a credential


async def test_unknown_avatar(avatar_server: DevServer, tmp_path: Path, capsys: Any) -> None:
    argv = ["demo", "--fast", "--out", str(tmp_path / "f.jsonl")]
    argv += ["--api-key", avatar_server.api_key, "--app-id", avatar_server.app_id]
    argv += ["--avatar-id", "nobody", "--console-endpoint", avatar_server.console_url]
    argv += ["--ingress-endpoint", avatar_server.ingress_url]
    assert await main_async(argv) == 1
    assert_one_error_line(capsys.readouterr().err, "error: avatarNotFound: ", "--avatar-id")


def test_file_not_found_and_debug_traceback(tmp_path: Path, capsys: Any) -> None:
    missing = str(tmp_path / "nope.wav")
    assert main(["send", missing]) == 1
    assert_one_error_line(capsys.readouterr().err, f"file not found: {missing}")

    assert main(["send", missing, "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1] == f"error: file not found: {missing}"


def test_usage_errors_exit_2(capsys: Any) -> None:
    assert main(["send"]) == 2
    assert "AUDIO" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert main(["send", "x.wav", "--format", "mp3"]) == 2
    assert main(["send", "x.wav", "--chunk-ms", "0"]) == 2
    capsys.readouterr()


def test_help_and_version(capsys: Any) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "send", "inspect", "serve"):
        assert command in out
    assert main(["--version"]) == 0
    from avatarkit import __version__

    assert __version__ in capsys.readouterr().out


def test_serve_help_lists_the_service_options(capsys: Any) -> None:
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--port" in out and "--pace" in out


def test_serve_runs_and_stops_on_sigint(tmp_path: Path) -> None:
    import signal
    import time
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "avatarkit", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        url = None
        banner = ""
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner += line
            match = re.search(r"(http://127\.0\.0\.1:\d+)/v1/console", line)
            if match:
                url = match.group(1)
        assert url, f"no console URL in the serve banner:\n{banner}"
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def test_import_stays_light() -> None:
    code = (
        "import sys, avatarkit.cli\n"
        "heavy = [m for m in ('numpy', 'matplotlib', 'soxr', 'av', 'avatarkit.devserver')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------------
# the pieces
# ---------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_in_place_on_a_terminal() -> None:
    stream = _Terminal()
    progress = Progress(2.0, 50, stream=stream)
    for i in range(1, 51):
        progress.update(sent_s=i * 0.04, frames=i)
    progress.finish()
    text = stream.getvalue()
    assert text.startswith("\r[")
    assert text.endswith("\n") and text.count("\n") == 1
    assert "[" + "#" * Progress.WIDTH + "]" in text
    assert "100%" in text


def test_progress_prints_a_few_lines_otherwise() -> None:
    stream = io.StringIO()
    progress = Progress(13.6, 341, stream=stream)
    for i in range(1, 342):
        progress.update(sent_s=i * 0.04, frames=i)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert 4 <= len(lines) <= 5
    assert "\r" not in stream.getvalue()
    assert lines[-1].strip().startswith("100%")


def test_frame_sink_rejects_unknown_suffix(tmp_path: Path) -> None:
    from avatarkit.cli import CLIError

    with pytest.raises(CLIError, match=r"unknown frames file type '\.csv'") as raised:
        FrameSink(tmp_path / "frames.csv", {})
    assert ".jsonl" in raised.value.hint
    with pytest.raises(CLIError, match="does not exist"):
        FrameSink(tmp_path / "no" / "such" / "frames.jsonl", {})


def test_failed_run_keeps_the_previous_frames_file(tmp_path: Path) -> None:
    out_file = tmp_path / "frames.jsonl"
    assert main(["demo", "--fast", "--out", str(out_file)]) == 0
    before = out_file.read_bytes()
    assert before.count(b"\n") == 342  # header + 341 frames
    # the same command against a configured service nobody answers for
    unreachable = [
        "--api-key",
        "k",
        "--app-id",
        "a",
        "--avatar-id",
        "v",
        "--console-endpoint",
        "http://127.0.0.1:9/v1/console",
        "--ingress-endpoint",
        "ws://127.0.0.1:9/v2/driveningress",
    ]
    assert main(["demo", "--fast", "--out", str(out_file), *unreachable]) == 1
    assert out_file.read_bytes() == before
    assert not (tmp_path / "frames.jsonl.part").exists()


def test_run_uses_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import avatarkit

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    pytest.importorskip("uvloop")  # the dev extra installs it
    assert avatarkit.run(loop_module()).startswith("uvloop")
    monkeypatch.setenv("AVATARKIT_LOOP", "asyncio")
    assert avatarkit.run(loop_module()).startswith("asyncio")
