"""The local service's sessions API, ``GET /v1/dev/sessions`` (issue 12).

Real sockets: the SDK streams to the ``avatar_server`` fixture and the test
reads the API with aiohttp's client over loopback.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from avatarkit import AgoraEgressConfig, new_avatar_session
from avatarkit.devserver import DevServer

FIXTURES = Path(__file__).parent.parent / "fixtures"
SPEECH_16K = (FIXTURES / "speech_16000.pcm").read_bytes()[: 16000 * 2]  # 1 s
SECRET = "s3cr3t-agora-token-value"


async def _get(server: DevServer) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.api_root + "/v1/dev/sessions", timeout=aiohttp.ClientTimeout(5)) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "application/json"
        data: dict[str, Any] = await resp.json()
        return data


async def _stream(server: DevServer, **kwargs: Any) -> tuple[str, str]:
    done = asyncio.Event()
    session = new_avatar_session(
        **server.session_kwargs(**kwargs),
        on_animation=lambda ev: done.set() if ev.end else None,
    )
    async with session:
        req_id = await session.send_audio(SPEECH_16K, end=True)
        await asyncio.wait_for(done.wait(), 10)
        cid = session.connection_id
        assert cid
        live = await _get(server)
        mine = [s for s in live["sessions"] if s["connection_id"] == cid]
        assert mine and mine[0]["state"] == "open" and mine[0]["close_code"] is None
    return cid, req_id


async def test_sessions_api_lists_a_closed_session_with_its_requests(
    avatar_server: DevServer,
) -> None:
    assert await _get(avatar_server) == {"sessions": []}
    cid, req_id = await _stream(avatar_server)
    await avatar_server.wait_closed_sessions(1)
    doc = await _get(avatar_server)
    (entry,) = doc["sessions"]
    assert entry == {
        "connection_id": cid,
        "app_id": avatar_server.app_id,
        "avatar_id": avatar_server.avatar_id,
        "state": "closed",
        "egress": None,
        "close_code": entry["close_code"],
        "requests": [
            {
                "req_id": req_id,
                "frames": 25,
                "audio_seconds": 1.0,
                "ended": True,
                "interrupted": False,
                "paused": False,
            }
        ],
    }
    assert isinstance(entry["close_code"], int)
    # The fixture exposes the same data in process.
    assert avatar_server.session_summaries() == doc["sessions"]


async def test_sessions_api_shows_egress_kind_and_no_secret(avatar_server: DevServer) -> None:
    await _stream(avatar_server, agora_egress=AgoraEgressConfig(channel_name="c", token=SECRET))
    async with (
        aiohttp.ClientSession() as http,
        http.get(avatar_server.api_root + "/v1/dev/sessions") as resp,
    ):
        text = await resp.text()
    doc = json.loads(text)
    assert doc["sessions"][0]["egress"] == "agora"
    assert SECRET not in text
    for forbidden in (avatar_server.api_key, "sessionKey", "token"):
        assert forbidden not in text


async def test_sessions_api_keeps_only_the_last_100_closed(avatar_server: DevServer) -> None:
    from avatarkit.devserver import SessionState

    for i in range(130):
        state = SessionState(app_id="a", avatar_id="b", auth_style="header")
        state.connection_id = f"c{i}"
        state.closed_at = 1.0
        avatar_server.closed_sessions.append(state)
    ids = [s["connection_id"] for s in (await _get(avatar_server))["sessions"]]
    assert ids == [f"c{i}" for i in range(30, 130)]


@pytest.mark.avatar_server(pace="realtime")
async def test_sessions_api_reports_paused_and_interrupted(avatar_server: DevServer) -> None:
    session = new_avatar_session(**avatar_server.session_kwargs())
    async with session:
        cid = session.connection_id
        req_id = await session.send_audio(SPEECH_16K, end=True)

        async def request() -> dict[str, Any]:
            (entry,) = [
                s for s in (await _get(avatar_server))["sessions"] if s["connection_id"] == cid
            ]
            (req,) = entry["requests"]
            assert req["req_id"] == req_id
            return req

        await asyncio.sleep(0.2)
        await session.pause()
        for _ in range(100):
            if (await request())["paused"]:
                break
            await asyncio.sleep(0.02)
        req = await request()
        assert req["paused"] and not req["interrupted"] and not req["ended"]
        assert 0 < req["frames"] < 25
        await session.interrupt()
        for _ in range(100):
            if (await request())["interrupted"]:
                break
            await asyncio.sleep(0.02)
        req = await request()
        assert req["interrupted"] and not req["paused"] and not req["ended"]
