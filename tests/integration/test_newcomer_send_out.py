"""``avatarkit send --out``: no silent overwrite, and the path is checked first.

An existing frames file is kept unless ``--force`` is given; a directory, a
missing directory or an unknown suffix is refused before anything starts. A
raw loopback server stands in for the hosted service and counts connections:
none may arrive when the output path is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from avatarkit.cli import main, main_async
from tests._helpers import FIXTURES

# No hosted-service settings from the environment: these tests use the local service.
pytestmark = pytest.mark.usefixtures("no_credentials")

WAV = str(FIXTURES / "speech_16000.wav")


class CountingServer:
    """Accepts TCP connections on loopback, counts them and closes them."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def counting_server() -> AsyncIterator[CountingServer]:
    counter = CountingServer()
    server = await asyncio.start_server(counter.handle, "127.0.0.1", 0)
    counter.port = server.sockets[0].getsockname()[1]
    try:
        yield counter
    finally:
        server.close()
        await server.wait_closed()


def service_flags(port: int) -> list[str]:
    return [
        "--api-key", "k", "--app-id", "a", "--avatar-id", "v",
        "--console-endpoint", f"http://127.0.0.1:{port}/v1/console",
        "--ingress-endpoint", f"ws://127.0.0.1:{port}/v2/driveningress",
    ]  # fmt: skip


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("exists", "--force"),
        ("directory", "is a directory"),
        ("missing_dir", "does not exist"),
        ("bad_suffix", "unknown frames file type"),
        ("parent_is_file", "not a directory"),
    ],
)
async def test_out_is_checked_before_any_network_call(
    case: str, fragment: str, counting_server: CountingServer, tmp_path: Path, capsys: Any
) -> None:
    existing = tmp_path / "frames.jsonl"
    existing.write_text("precious\n")
    (tmp_path / "dir.jsonl").mkdir()
    out = {
        "exists": existing,
        "directory": tmp_path / "dir.jsonl",
        "missing_dir": tmp_path / "no" / "such" / "frames.jsonl",
        "bad_suffix": tmp_path / "frames.csv",
        "parent_is_file": existing / "frames.jsonl",
    }[case]
    argv = ["send", WAV, "--out", str(out), *service_flags(counting_server.port)]
    assert await main_async(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert fragment in line, line
    assert counting_server.connections == 0
    assert existing.read_text() == "precious\n"


def test_existing_file_is_kept_with_the_local_service_too(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "frames.jsonl"
    out.write_text("precious\n")
    assert main(["send", WAV, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    line = one_line(err)  # no "embedded local avatar service" note: nothing was started
    assert str(out) in line and "--force" in line
    assert out.read_text() == "precious\n"


def test_force_overwrites(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "frames.jsonl"
    out.write_text("old\n")
    assert main(["send", WAV, "--out", str(out), "--force"]) == 0
    header = json.loads(out.read_text().splitlines()[0])
    assert header["type"] == "header"


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere: cannot test here"
)
def test_unwritable_directory(tmp_path: Path, capsys: Any) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["send", WAV, "--out", str(locked / "f.jsonl")]) == 1
        assert "not writable" in one_line(capsys.readouterr().err)
    finally:
        locked.chmod(0o700)
