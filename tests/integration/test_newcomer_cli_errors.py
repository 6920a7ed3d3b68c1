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

# No hosted-service settings from the environment: these tests use the local service.
pytestmark = pytest.mark.usefixtures("no_credentials")


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


# (flag, value, a fragment of the reason)
BAD_ENDPOINTS = {
    "ingress_ipv6": ("--ingress-endpoint", "ws://[", "not a valid URL"),
    "console_ipv6": ("--console-endpoint", "http://[::1/v1/console", "not a valid URL"),
    "ingress_scheme": ("--ingress-endpoint", "ftp://h/v2/driveningress", "ws://"),
    "console_scheme": ("--console-endpoint", "wss://h/v1/console", "https://"),
    "ingress_no_host": ("--ingress-endpoint", "wss:///v2/driveningress", "host"),
    "console_bad_port": ("--console-endpoint", "http://h:99999/v1/console", "port"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENDPOINTS))
def test_unparseable_endpoint_names_the_option(case: str, tmp_path: Path, capsys: Any) -> None:
    """Checked before anything starts: the line names the option and what it expects."""
    flag, value, why = BAD_ENDPOINTS[case]
    endpoints = {
        "--console-endpoint": "http://127.0.0.1:9/v1/console",
        "--ingress-endpoint": "ws://127.0.0.1:9/v2/driveningress",
        flag: value,
    }
    out = tmp_path / "f.jsonl"
    argv = ["demo", "--fast", "--out", str(out), "--api-key", "k", "--app-id", "a"]
    argv += ["--avatar-id", "v"]
    for name, url in endpoints.items():
        argv += [name, url]
    assert main(argv) == 1
    line = error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {flag} "), line
    assert why in line, line
    other = ({"--console-endpoint", "--ingress-endpoint"} - {flag}).pop()
    assert other not in line, line
    assert "connectionFailed" not in line and "Traceback" not in line, line
    assert not out.exists()


def test_unparseable_endpoint_from_the_environment(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (
        ("AVATARKIT_API_KEY", "k"),
        ("AVATARKIT_APP_ID", "a"),
        ("AVATARKIT_AVATAR_ID", "v"),
        ("AVATARKIT_CONSOLE_ENDPOINT", "http://127.0.0.1:9/v1/console"),
        ("AVATARKIT_INGRESS_ENDPOINT", "ws://["),
    ):
        monkeypatch.setenv(name, value)
    assert main(["demo", "--fast", "--out", str(tmp_path / "f.jsonl")]) == 1
    line = error_line(capsys.readouterr().err)
    assert "--ingress-endpoint" in line and "AVATARKIT_INGRESS_ENDPOINT" in line, line
