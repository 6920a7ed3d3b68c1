"""Every Python code block in README.md runs against a local avatar service.

The README uses placeholder credentials and endpoints; here they are pointed
at a DevServer (realtime pace, as a hosted service would pace frames) started
in a background thread, and each block runs as its own program in a folder
holding the audio files it opens.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._helpers import FIXTURES, ROOT

BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def readme_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text())


@pytest.fixture(scope="module")
def live_server() -> Iterator[dict[str, str]]:
    from avatarkit.devserver import DevServer

    ready = threading.Event()
    info: dict[str, str] = {}
    stop: list[asyncio.Event] = []
    loop_holder: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        stop.append(asyncio.Event())
        loop_holder.append(asyncio.get_running_loop())
        async with DevServer(pace="realtime") as server:
            info.update(
                api_key=server.api_key,
                app_id=server.app_id,
                avatar_id=server.avatar_id,
                console=server.console_url,
                ingress=server.ingress_url,
            )
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield info
    loop_holder[0].call_soon_threadsafe(stop[0].set)
    thread.join(10)


def localize(code: str, server: dict[str, str]) -> str:
    return (
        code.replace("your-api-key", server["api_key"])
        .replace("your-app-id", server["app_id"])
        .replace("your-avatar-id", server["avatar_id"])
        .replace("https://console.example.com/v1/console", server["console"])
        .replace("wss://ingress.example.com/v2/driveningress", server["ingress"])
    )


def test_readme_has_blocks() -> None:
    assert len(readme_blocks()) >= 9


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_block_runs(index: int, live_server: dict[str, str], tmp_path: Path) -> None:
    code = localize(readme_blocks()[index], live_server)
    shutil.copy(FIXTURES / "speech_16000.pcm", tmp_path / "audio.pcm")
    shutil.copy(FIXTURES / "speech_24000.pcm", tmp_path / "audio_24000.pcm")
    shutil.copy(FIXTURES / "speech_24000.ogg", tmp_path / "audio.ogg")
    script = tmp_path / "block.py"
    script.write_text(code)
    if "def test_" in code:
        # a pytest example: run it with pytest and the avatarkit plugin
        # with pytest-asyncio in auto mode, as the README's project setup implies
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "-W",
            "error",
            str(script),
        ]
    else:
        command = [sys.executable, "-W", "error", str(script)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# -- shell blocks -------------------------------------------------------------

SHELL_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def shell_blocks() -> list[str]:
    return SHELL_BLOCK.findall((ROOT / "README.md").read_text())


def _commands(block: str) -> list[str]:
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


QUICK_START = "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && avatarkit demo"
TEST_COMMAND = "pip install -e '.[dev]' && python -m pytest --cov --cov-fail-under=90"


def test_quick_start_and_dev_commands_are_what_ci_runs() -> None:
    """.ci/run runs the README's quick start, then its test command, each literally."""
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    blocks = shell_blocks()
    assert _commands(blocks[0]) == [QUICK_START]  # base install: no extras before the demo
    assert _commands(blocks[1]) == [TEST_COMMAND]
    assert QUICK_START in ci_lines and TEST_COMMAND in ci_lines
    assert ci_lines.index(QUICK_START) < ci_lines.index(TEST_COMMAND)
    dev = next(b for b in blocks if "scripts/gen_proto.py" in b)
    for command in ("ruff check .", "mypy", "python -m benchmarks"):
        assert command in dev and command in "\n".join(ci_lines)


def test_install_extras_exist() -> None:
    if sys.version_info < (3, 11):
        import tomli as tomllib  # a dependency on 3.10
    else:
        import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    block = next(b for b in shell_blocks() if "pip install -e '.[opus]'" in b)
    named = re.findall(r"'\.\[(\w+)\]'", block)
    assert named
    for name in named:
        assert name in extras


def test_e2e_block_runs_against_local_service() -> None:
    block = next(b for b in shell_blocks() if "AVATARKIT_RUN_E2E=1" in b)
    command = _commands(block)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARKIT_")}
    env["AVATARKIT_RUN_E2E"] = "1"
    args = command.split()[1:]  # drop the VAR=value prefix
    assert args[:3] == ["python", "-m", "pytest"]
    result = subprocess.run(
        [sys.executable, *args[1:], "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
