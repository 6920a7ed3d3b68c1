"""``python -m avatarkit.devserver`` (the ``avatarkit serve`` command) as a real process."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from avatarkit.devserver._rawclient import RawClient, fetch_token


async def start_serve(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "avatarkit.devserver",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    banner: dict[str, str] = {}
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        if not line:
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"serve exited: {lines} {err.decode()}")
        lines.append(line)
        if m := re.match(r"\s+(console URL|ingress URL|API key|avatar id):\s+(\S+)", line):
            banner.setdefault(m.group(1), m.group(2))
        if line.startswith("Ctrl+C"):
            banner["text"] = "".join(lines)
            return proc, banner


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_serve_prints_urls_and_stops_cleanly(
    http: aiohttp.ClientSession, sig: signal.Signals
) -> None:
    proc, banner = await start_serve("--port", "0", "--pace", "fast")
    try:
        console, ingress = banner["console URL"], banner["ingress URL"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/console", console)
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/v2/driveningress", ingress)
        assert banner["API key"] == "dev-api-key" and banner["avatar id"] == "dev-avatar"
        assert "dev-app-id" in banner["text"]
        root = console.removesuffix("/v1/console")
        async with http.get(root + "/healthz") as resp:
            assert resp.status == 200
        token = await fetch_token(http, root)
        client = await RawClient.connect(http, ingress, token=token)
        await client.configure()
        await client.audio("r", b"\0\0" * 1600, end=True)
        assert (await client.collect("r")).ends == 1
        reader = asyncio.create_task(client.drain_until_closed())
        proc.send_signal(sig)
        await reader
        assert client.close_code == 1001
    except BaseException:
        proc.kill()
        await proc.communicate()
        raise
    code, _ = await finish(proc)
    assert code == 0


async def test_serve_config_file_and_repeated_options(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    if sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    config = tmp_path / "serve.toml"
    config.write_text(
        'pace = "fast"\nidle_timeout = 0\navatars = ["from-file"]\n'
        '[api_keys]\n"file-key" = "file-app"\n'
    )
    proc, banner = await start_serve(
        "--port", "0", "--config", str(config), "--api-key", "cli-key:cli-app", "--avatar", "cli"
    )
    try:
        assert "pace fast" in banner["text"]
        for text in ("file-key", "file-app", "cli-key", "cli-app", "from-file"):
            assert text in banner["text"]
        root = banner["console URL"].removesuffix("/v1/console")
        for key, app, avatar in (
            ("file-key", "file-app", "cli"),
            ("cli-key", "cli-app", "from-file"),
        ):
            token = await fetch_token(http, root, api_key=key)
            client = await RawClient.connect(
                http, banner["ingress URL"], token=token, app_id=app, avatar_id=avatar
            )
            await client.configure()
            await client.close()
    finally:
        proc.send_signal(signal.SIGINT)
    code, _ = await finish(proc)
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-key", "no-colon"], "KEY:APP_ID"),
        (["--config", "/nonexistent/serve.toml"], "cannot read --config"),
        (["--idle-timeout", "-1"], "must be >= 0"),
        (["--read-timeout", "0"], "read_timeout must be > 0"),
        (["--max-request-audio-bytes", "0"], "max_request_audio_bytes must be > 0"),
        (["--max-connection-audio-bytes", "0"], "max_connection_audio_bytes must be > 0"),
    ],
)
async def test_serve_rejects_bad_options(args: list[str], message: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "avatarkit.devserver",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    code, err = await finish(proc)
    assert code == 2 and message in err


async def test_serve_reports_a_busy_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "avatarkit.devserver",
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        code, err = await finish(proc)
    assert code == 1 and "cannot listen" in err


def test_port_out_of_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from avatarkit.devserver._cli import serve_main

    assert serve_main(["--port", "70000"]) == 2
    assert "port must be 0-65535" in capsys.readouterr().err
