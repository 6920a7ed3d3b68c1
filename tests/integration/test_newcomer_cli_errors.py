"""CLI error lines give each piece of advice once.

The SDK's error text already ends in advice phrased for the Python API
(``check console_endpoint_url and the network``); the command replaces it with
its own hint in terms of flags and variables instead of printing both.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from avatarkit.cli import main, main_async
from avatarkit.devserver import DevServer

ENV_VARS = (
    "AVATARKIT_API_KEY",
    "AVATARKIT_APP_ID",
    "AVATARKIT_AVATAR_ID",
    "AVATARKIT_CONSOLE_ENDPOINT",
    "AVATARKIT_INGRESS_ENDPOINT",
)


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def assert_advice_once(line: str) -> None:
    assert line.count("check") == 1, line
    assert line.count("the network") <= 1, line
    for name in ("console_endpoint_url", "ingress_endpoint_url", "avatar_id", "app_id"):
        assert name not in line, f"API parameter name {name!r} in a CLI line: {line}"


def test_console_unreachable(tmp_path: Path, capsys: Any) -> None:
    port = refused_port()
    argv = ["demo", "--fast", "--out", str(tmp_path / "f.jsonl"), "--api-key", "k"]
    argv += ["--app-id", "a", "--avatar-id", "v"]
    argv += ["--console-endpoint", f"http://127.0.0.1:{port}/v1/console"]
    argv += ["--ingress-endpoint", f"ws://127.0.0.1:{port}/v2/driveningress"]
    assert main(argv) == 1
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: connectionFailed: session token request to "), line
    assert_advice_once(line)
    assert "--console-endpoint" in line and "--ingress-endpoint" not in line


async def test_ingress_unreachable(avatar_server: DevServer, tmp_path: Path, capsys: Any) -> None:
    port = refused_port()
    argv = ["demo", "--fast", "--out", str(tmp_path / "f.jsonl")]
    argv += ["--api-key", avatar_server.api_key, "--app-id", avatar_server.app_id]
    argv += ["--avatar-id", avatar_server.avatar_id]
    argv += ["--console-endpoint", avatar_server.console_url]
    argv += ["--ingress-endpoint", f"ws://127.0.0.1:{port}/v2/driveningress"]
    assert await main_async(argv) == 1
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: connectionFailed: "), line
    assert_advice_once(line)
    assert "--ingress-endpoint" in line and "--console-endpoint" not in line


async def test_unknown_avatar_advice_once(
    avatar_server: DevServer, tmp_path: Path, capsys: Any
) -> None:
    argv = ["demo", "--fast", "--out", str(tmp_path / "f.jsonl")]
    argv += ["--api-key", avatar_server.api_key, "--app-id", avatar_server.app_id]
    argv += ["--avatar-id", "nobody", "--console-endpoint", avatar_server.console_url]
    argv += ["--ingress-endpoint", avatar_server.ingress_url]
    assert await main_async(argv) == 1
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: avatarNotFound: "), line
    assert_advice_once(line)
    assert "--avatar-id" in line


async def test_wrong_key_advice_once(avatar_server: DevServer, tmp_path: Path, capsys: Any) -> None:
    argv = ["demo", "--fast", "--out", str(tmp_path / "f.jsonl")]
    argv += ["--api-key", "wrong", "--app-id", avatar_server.app_id]
    argv += ["--avatar-id", avatar_server.avatar_id]
    argv += ["--console-endpoint", avatar_server.console_url]
    argv += ["--ingress-endpoint", avatar_server.ingress_url]
    assert await main_async(argv) == 1
    line = error_line(capsys.readouterr().err)
    assert_advice_once(line)
    assert "--api-key" in line and "wrong" not in line.split("error: ", 1)[1].split(" — ")[0]
