"""The local avatar service's log: one INFO line per session event, no secrets.

Each session logs when it connects, is configured (format, sample rate,
egress kind), and closes (close code, requests); each rejected token call or
upgrade logs one line. API keys, session tokens and LiveKit/Agora credentials
never appear.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time

import aiohttp
import pytest

from avatarkit.devserver import DevServer
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.proto import avatarkit_wire_pb2 as pb

SECRET_KEY = "sk-very-secret-9c1f2e"
LIVEKIT_SECRET = "lk-secret-71aa0b"
LIVEKIT_TOKEN = "lk-token-5d03cc"


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("avatarkit.devserver") and r.levelno == logging.INFO
    ]


async def test_session_lines_and_no_secrets(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="avatarkit")
    async with DevServer(pace="fast", api_keys={SECRET_KEY: "secret-app"}) as server:
        token = await fetch_token(http, server.api_root, api_key=SECRET_KEY)
        client = await RawClient.connect(http, server.ingress_url, token=token, app_id="secret-app")
        await client.configure(24000)
        for req in ("r1", "r2"):
            await client.audio(req, b"\0\0" * 2400, end=True)
            await client.collect(req)
        await client.close()
        egress = await RawClient.connect(http, server.ingress_url, token=token, app_id="secret-app")
        await egress.configure(
            livekit=pb.LiveKitEgressConfig(
                url="wss://lk.example.com",
                room_name="room",
                publisher_id="pub",
                api_key="lk-key",
                api_secret=LIVEKIT_SECRET,
            )
        )
        await egress.close()
        # Rejections: a bad API key, a bad token, a bad avatar.
        async with http.post(
            server.api_root + "/v1/auth/session-token",
            headers={"X-Api-Key": SECRET_KEY + "-wrong"},
            json={"expireAt": int(time.time()) + 60},
        ) as resp:
            assert resp.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await RawClient.connect(
                http, server.ingress_url, token=token + "x", app_id="secret-app"
            )
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await RawClient.connect(
                http, server.ingress_url, token=token, app_id="secret-app", avatar_id="nobody"
            )
        await server.wait_closed_sessions(2)
    got = lines(caplog)
    text = "\n".join(got)
    connected = [line for line in got if " connected" in line]
    configured = [line for line in got if " configured" in line]
    closed = [line for line in got if " closed" in line]
    assert len(connected) == 2 and len(configured) == 2 and len(closed) == 2, text
    assert "pcm_s16le" in configured[0] and "24000 Hz" in configured[0]
    assert "egress none" in configured[0] and "egress livekit" in configured[1]
    assert "2 requests" in closed[0] and "close code 1000" in closed[0]
    rejected = [line for line in got if "rejected" in line]
    assert len(rejected) == 3, text
    assert any("401" in line and "token" in line for line in rejected)
    assert any("404" in line and "avatar" in line.lower() for line in rejected)
    everything = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    for secret in (SECRET_KEY, token, token.rpartition(".")[2], LIVEKIT_SECRET):
        assert secret not in everything


async def test_rejected_over_concurrency_limit_is_logged(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="avatarkit")
    async with DevServer(pace="fast", max_sessions_per_app=0) as server:
        token = await fetch_token(http, server.api_root)
        client = await RawClient.connect(http, server.ingress_url, token=token)
        await client.configure(expect_confirm=False)
        await client.drain_until_closed()
    assert any("rejected" in line and "4003" in line for line in lines(caplog))
    assert token not in caplog.text


async def test_serve_logs_sessions_to_stderr(http: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "avatarkit.devserver",
        "--port",
        "0",
        "--pace",
        "fast",
        "--api-key",
        f"{SECRET_KEY}:secret-app",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        console = ingress = ""
        while not (console and ingress):
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "serve exited"
            if "console URL:" in line:
                console = line.split()[-1]
            elif "ingress URL:" in line:
                ingress = line.split()[-1]
        root = console.removesuffix("/v1/console")
        token = await fetch_token(http, root, api_key=SECRET_KEY)
        client = await RawClient.connect(http, ingress, token=token, app_id="secret-app")
        await client.configure()
        await client.close()
        await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err_bytes = await asyncio.wait_for(proc.communicate(), 20)
    err = err_bytes.decode()
    assert proc.returncode == 0
    assert " connected" in err and " configured" in err and " closed" in err, err
    assert SECRET_KEY not in err and token not in err
