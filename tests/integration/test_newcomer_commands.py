"""Every shell command shown in README.md and examples/*/README.md runs as written.

Each documented command is either run here (from a directory laid out like a
fresh clone: ``tests/`` and ``examples/`` of this repository, nothing else) or
listed in :data:`NOT_RUNNABLE_HERE` with the reason. A command added to a
README and to neither list fails :func:`test_every_documented_command_is_accounted_for`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._helpers import ROOT, ensure_prometheus_client

DOCS = [ROOT / "README.md", *sorted((ROOT / "examples").glob("*/README.md"))]
SHELL_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)

NOT_RUNNABLE_HERE: dict[str, str] = {
    # README quick start and test command: CI runs them literally in a fresh
    # venv (.ci/run); test_readme checks .ci/run holds them verbatim.
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && avatarkit demo": (
        "creates a venv and installs: .ci/run runs it literally"
    ),
    "pip install -e '.[dev]' && python -m pytest --cov --cov-fail-under=90": (
        "installs, then runs this very suite: .ci/run runs it literally"
    ),
    # Installation / development blocks
    "pip install -e .": "installs into the venv running the tests (.ci/run installs it)",
    "pip install -e '.[opus]'": "installs; test_readme checks the extra exists",
    "pip install -e '.[uvloop]'": "installs; test_readme checks the extra exists",
    "pip install -e '.[plot]'": "installs; test_readme checks the extra exists",
    "pip install -e '.[dev]'": "installs; .ci/run installs the dev extra",
    "pip install -e '.[pipecat]'": "installs; .ci/run installs the pipecat extra on Python 3.12",
    "pip install -e '.[livekit]'": "installs; .ci/run installs the livekit extra on Python 3.12",
    "python examples/livekit_agent.py dev": (
        "a LiveKit Agents worker: needs a LiveKit server (LIVEKIT_URL, LIVEKIT_API_KEY, "
        "LIVEKIT_API_SECRET) and model credentials, none of which exist here; "
        "tests/integration/test_livekit_avatar.py imports it and checks its entrypoint"
    ),
    "python -m pytest": "this very suite",
    "ruff check . && ruff format --check . && mypy": ".ci/run runs all three",
    "python scripts/gen_proto.py": (
        "rewrites committed files; tests/integration/test_proto_generated.py "
        "checks they are current"
    ),
    "python -m benchmarks": "minutes of CPU on a shared machine; .ci/run runs --smoke",
    "pip install prometheus_client": (
        "installs; tests/_helpers.ensure_prometheus_client() runs this before the example runs"
    ),
}

# Long-running services: run here with the documented port swapped for a free
# one (a fixed port may be taken on a shared machine); everything else as written.
PORT_SWAPPED = {
    "avatarkit serve --port 8080": "8080",
    "python examples/http_service/main.py --port 8000": "8000",
}


def documented_commands() -> list[tuple[str, str]]:
    """(README, command) for every command line in the docs' bash blocks.

    A line ending in ``\\`` continues on the next; a trailing ``  # comment`` is
    dropped.
    """
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        for block in SHELL_BLOCK.findall(doc.read_text()):
            joined = re.sub(r"\\\n\s*", "", block)
            for line in joined.splitlines():
                command = re.split(r"\s{2,}#", line)[0].strip()
                if command:
                    found.append((str(doc.relative_to(ROOT)), command))
    return found


def commands_of(doc: str) -> list[str]:
    return [command for name, command in documented_commands() if name == doc]


def test_every_documented_command_is_accounted_for() -> None:
    run_here = set(RUN_HERE)
    for doc, command in documented_commands():
        assert command in run_here or command in NOT_RUNNABLE_HERE, (
            f"{doc}: {command!r} is neither run by a test nor listed as not runnable"
        )
    assert not set(NOT_RUNNABLE_HERE) & run_here
    shown = {command for _, command in documented_commands()}
    stale = (set(NOT_RUNNABLE_HERE) | run_here) - shown
    assert not stale, f"listed but no longer in the docs: {stale}"


# ---------------------------------------------------------------------------
# Running them
# ---------------------------------------------------------------------------


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A directory laid out like the repository root, holding nothing else."""
    for name in ("tests", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def shell_env() -> dict[str, str]:
    """No AVATARKIT_* settings (the local service) and this venv's commands first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARKIT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_all(commands: list[str], cwd: Path, timeout: float = 120) -> list[str]:
    """Run ``commands`` with bash at once (they wait on real-time pacing, not CPU)."""
    procs = [
        subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=shell_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    outputs = []
    for command, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"{command}\n{out}\n{err}"
        outputs.append(out)
    return outputs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[str], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited early"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listening on {port} after {within} s")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_readme_command_line_block(clone: Path) -> None:
    commands = [c for c in commands_of("README.md") if c.startswith("avatarkit ")]
    assert commands == RUN_HERE_README_CLI
    sends = [c for c in commands if c.startswith(("avatarkit demo", "avatarkit send"))]
    run_all(sends, clone)
    assert (clone / "frames.jsonl").is_file() and (clone / "opus.jsonl").is_file()
    assert (clone / "avatarkit-demo-frames.jsonl").is_file()
    inspect = [c for c in commands if c.startswith("avatarkit inspect")]
    run_all(inspect, clone)
    assert (clone / "frames.png").stat().st_size > 1000

    serve = next(c for c in commands if c.startswith("avatarkit serve"))
    port = free_port()
    proc = subprocess.Popen(
        ["bash", "-c", "exec " + serve.replace(PORT_SWAPPED[serve], str(port))],
        cwd=clone,
        env=shell_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)
    finally:
        stop(proc)


def test_single_audio_clip_readme(clone: Path) -> None:
    commands = commands_of("examples/single_audio_clip/README.md")
    assert commands == RUN_HERE_SINGLE
    for out in run_all(commands, clone):
        assert re.search(r"request \S+: \d+ frames for", out), out


def test_connection_pool_readme(clone: Path) -> None:
    commands = commands_of("examples/connection_pool/README.md")
    assert commands == RUN_HERE_POOL
    for out in run_all(commands, clone, timeout=180):
        rounds = re.findall(r"^round \d+: \d+ requests \((\d+) failed", out, re.M)
        assert rounds and set(rounds) == {"0"}, out


def test_http_service_readme(clone: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed on this machine")
    commands = commands_of("examples/http_service/README.md")
    assert commands == RUN_HERE_HTTP
    server, *requests = commands
    port = free_port()
    proc = subprocess.Popen(
        ["bash", "-c", "exec " + server.replace(PORT_SWAPPED[server], str(port))],
        cwd=clone,
        env=shell_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)
        local = [c.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for c in requests]
        for out in run_all([c + " --fail-with-body --silent --show-error" for c in local], clone):
            assert '"frames": ' in out and '"messages": ' in out, out[:300]
    finally:
        stop(proc)


def test_prometheus_metrics_readme(clone: Path) -> None:
    ensure_prometheus_client()
    commands = commands_of("examples/prometheus_metrics/README.md")
    assert commands[0] == "pip install prometheus_client"
    assert commands[1:] == RUN_HERE_PROMETHEUS
    for command, out in zip(RUN_HERE_PROMETHEUS, run_all(commands[1:], clone), strict=True):
        requests = 5 if "--requests 5" in command else 3
        assert f'avatarkit_requests_total{{interrupted="false"}} {requests}.0' in out, out
        assert re.search(r"metrics served at http://127\.0\.0\.1:\d+/metrics", out), out


def test_pipecat_bot_readme(clone: Path) -> None:
    if importlib.util.find_spec("pipecat") is None:
        if os.environ.get("AVATARKIT_REQUIRE_PIPECAT") == "1":
            pytest.fail("AVATARKIT_REQUIRE_PIPECAT=1 but pipecat is not installed")
        pytest.skip("pipecat is not installed (pip install -e '.[pipecat]')")
    commands = [c for c in commands_of("README.md") if "pipecat_bot" in c]
    assert commands == RUN_HERE_PIPECAT
    (out,) = run_all(commands, clone)
    found = re.search(r"^(\d+) animation frames, (\d+) TTS audio frames passed through", out, re.M)
    assert found, out
    assert int(found[1]) >= 70 and int(found[2]) == 75, out  # 3 s at 25 fps; 75 x 40 ms


RUN_HERE_README_CLI = [
    "avatarkit demo --fast",
    "avatarkit send tests/fixtures/speech_16000.wav --out frames.jsonl",
    "avatarkit send tests/fixtures/speech_24000.ogg --format ogg_opus --realtime --out opus.jsonl",
    "avatarkit inspect frames.jsonl --plot frames.png",
    "avatarkit serve --port 8080",
]
RUN_HERE_SINGLE = [
    "python examples/single_audio_clip/main.py",
    "python examples/single_audio_clip/main.py tests/fixtures/speech_16000.wav",
    "python examples/single_audio_clip/main.py tests/fixtures/speech_24000.pcm --sample-rate 24000",
    "python examples/single_audio_clip/main.py --fast",
]
RUN_HERE_POOL = [
    "python examples/connection_pool/main.py",
    "python examples/connection_pool/main.py --sessions 4 --rounds 5 --requests 8 --clip-s 1.5",
    "python examples/connection_pool/main.py --fast",
    "python examples/connection_pool/main.py --inject-drop",
]
RUN_HERE_HTTP = [
    "python examples/http_service/main.py --port 8000",
    "curl 'http://127.0.0.1:8000/animate?sample_rate=24000'",
    "curl -X POST 'http://127.0.0.1:8000/animate?sample_rate=16000' "
    "-H 'Content-Type: application/octet-stream' --data-binary @tests/fixtures/speech_16000.pcm",
    "curl -X POST http://127.0.0.1:8000/animate -H 'Content-Type: application/json' "
    '-d "{\\"sample_rate\\": 16000, \\"audio\\": '
    '\\"$(base64 < tests/fixtures/silence_1s_16000.pcm | tr -d \'\\n\')\\"}"',
]
RUN_HERE_PROMETHEUS = [
    "python examples/prometheus_metrics/main.py --fast --port 0",
    "python examples/prometheus_metrics/main.py --requests 5 --port 0 --linger 1",
]
RUN_HERE_PIPECAT = ["python examples/pipecat_bot.py"]
RUN_HERE = [
    *RUN_HERE_PIPECAT,
    *RUN_HERE_PROMETHEUS,
    *RUN_HERE_README_CLI,
    *RUN_HERE_SINGLE,
    *RUN_HERE_POOL,
    *RUN_HERE_HTTP,
    # README "End-to-end tests": run by tests/integration/test_readme.py (against the local service)
    "AVATARKIT_RUN_E2E=1 python -m pytest -m e2e",
]
