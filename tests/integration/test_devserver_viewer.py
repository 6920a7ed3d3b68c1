"""The live viewer's server side (issue 12), over real loopback sockets.

An aiohttp client plays the page: it loads the HTML and its assets and reads
the viewer WebSocket while the SDK streams to the ``avatar_server`` fixture.
The browser itself is exercised in tests/test_viewer_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from avatarkit import AgoraEgressConfig, new_avatar_session
from avatarkit.devserver import DevServer

FIXTURES = Path(__file__).parent.parent / "fixtures"
SPEECH_16K = (FIXTURES / "speech_16000.pcm").read_bytes()[: 16000 * 2]  # 1 s
TIMEOUT = aiohttp.ClientTimeout(total=10)


async def test_pages_and_assets_are_served_from_the_package(avatar_server: DevServer) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        for path in ("/", "/sessions/some-id"):
            async with http.get(avatar_server.api_root + path) as resp:
                assert resp.status == 200 and resp.content_type == "text/html"
                html = await resp.text()
            # Every asset is local: no absolute http(s) URL, no CDN.
            assert not re.search(r"(src|href)=\"https?://", html)
            for asset in re.findall(r"(?:src|href)=\"(/[^\"]+)\"", html):
                async with http.get(avatar_server.api_root + asset) as resp:
                    assert resp.status == 200, asset
                    text = (await resp.text()).replace("http://www.w3.org/2000/svg", "")
                    assert "http://" not in text and "https://" not in text
        async with http.get(avatar_server.api_root + "/viewer/static/../server.py") as resp:
            assert resp.status == 404


async def _read_until_end(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[Any], int]:
    frames: list[Any] = []
    audio_samples = 0
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type is aiohttp.WSMsgType.BINARY:
            (n,) = struct.unpack_from("<I", msg.data)
            head = json.loads(msg.data[4 : 4 + n])
            assert head["type"] == "audio" and head["offset"] == audio_samples
            audio_samples += (len(msg.data) - 4 - n) // 2
            continue
        data = json.loads(msg.data)
        if data["type"] == "frame":
            frames.append(data)
            if data["end"]:
                return frames, audio_samples


@pytest.mark.parametrize("egress", [False, True])
async def test_watched_session_streams_frames_and_audio(
    avatar_server: DevServer, egress: bool
) -> None:
    kwargs: dict[str, Any] = {}
    if egress:
        kwargs["agora_egress"] = AgoraEgressConfig(channel_name="c", token="secret-token")
    session = new_avatar_session(**avatar_server.session_kwargs(**kwargs))
    async with session, aiohttp.ClientSession(timeout=TIMEOUT) as http:
        cid = session.connection_id
        assert cid is not None
        state = avatar_server.find_session(cid)
        assert state is not None and state.viewer_tap is None  # nobody watches: no tap
        url = avatar_server.api_root + f"/v1/dev/viewer/ws?session={cid}"
        async with http.ws_connect(url) as ws:
            first = json.loads((await ws.receive(timeout=5)).data)
            assert first["type"] == "sessions"
            assert [s["connection_id"] for s in first["sessions"]] == [cid]
            assert state.viewer_tap is not None and avatar_server.viewers.watchers(cid) == 1
            req_id = await session.send_audio(SPEECH_16K, end=True)
            frames, samples = await _read_until_end(ws)
            assert samples == 16000
            assert [f["index"] for f in frames] == list(range(25))
            assert {f["req_id"] for f in frames} == {req_id}
            assert all(set(f["bs"]) >= {"jawOpen", "mouthClose", "eyeBlinkLeft"} for f in frames)
            assert max(f["bs"]["jawOpen"] for f in frames) > 0.3
            assert not avatar_server.viewers.played(cid, req_id)
            await ws.send_str(json.dumps({"type": "played", "req_id": req_id}))
            ok = await avatar_server.viewers.wait_for(
                lambda: avatar_server.viewers.played(cid, req_id), 5
            )
            assert ok
        await avatar_server.viewers.wait_for(lambda: state.viewer_tap is None, 5)
        assert state.viewer_tap is None and avatar_server.viewers.watchers(cid) == 0


async def test_unknown_session_is_said(avatar_server: DevServer) -> None:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.ws_connect(avatar_server.api_root + "/v1/dev/viewer/ws?session=nope") as ws,
    ):
        kinds = {json.loads((await ws.receive(timeout=5)).data)["type"] for _ in range(2)}
        assert kinds == {"unknown_session", "sessions"}


async def test_server_close_does_not_wait_for_open_viewer_pages() -> None:
    server = DevServer(pace="fast", port=0)
    await server.start()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        ws = await http.ws_connect(server.api_root + "/v1/dev/viewer/ws")
        await ws.receive(timeout=5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(server.close(), 10)
        assert loop.time() - started < 4  # aiohttp's own shutdown wait is 5 s
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await ws.close()


async def test_serve_banner_names_the_viewer(avatar_server: DevServer) -> None:
    from avatarkit.devserver._cli import _banner

    banner = _banner(avatar_server, {"api_keys": {}, "avatars": [], "host": "127.0.0.1"})
    assert f"viewer:       {avatar_server.api_root}/ " in banner


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},  # another site's page in the user's browser
        {"Origin": "null"},
        {"Host": "evil.example"},  # DNS rebinding: a name that resolves to 127.0.0.1
    ],
)
async def test_other_sites_cannot_read_the_viewer(
    avatar_server: DevServer, headers: dict[str, str]
) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(avatar_server.api_root + "/v1/dev/viewer/ws", headers=headers)
        assert info.value.status == 403
        async with http.get(avatar_server.api_root + "/", headers=headers) as resp:
            assert resp.status == 403
            assert "same origin" in await resp.text()
        same = {"Origin": avatar_server.api_root}
        async with http.ws_connect(avatar_server.api_root + "/v1/dev/viewer/ws", headers=same):
            pass
