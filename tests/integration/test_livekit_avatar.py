"""The LiveKit Agents integration, offline, against the local avatar service over real sockets.

There is no LiveKit server here, so the room is livekit-agents' own mock room
(``livekit.agents.ipc.mock_room.create_mock_room``, an autospec of
``rtc.Room`` the framework uses for its console mode) inside its fake job
context (``livekit.agents.testing.fake_job_context``). The agent is a real
``AgentSession`` with no models: speech is ``session.say(text, audio=...)``
with pre-rendered frames, which goes through the framework's real audio
chain (transcript synchronizer, sink proxy) into our sink. The avatar
service is the local one (``avatar_server``); the service side is checked
through its sessions API and session state. For a service that does not
declare ``playback_state``/``playback_control``, or one that never sends
``ServerPlaybackState``, a small WebSocket relay in this module sits between
the SDK and the local service and rewrites what the service sends.

An optional test at the end runs against a real LiveKit server when
``LIVEKIT_URL`` (+ ``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET``) is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("AVATARKIT_REQUIRE_LIVEKIT") == "1":
    import livekit.agents  # noqa: F401  (CI: fail, not skip, when the extra is missing)
else:
    pytest.importorskip("livekit.agents", reason="needs the livekit extra")

import aiohttp
import jwt  # PyJWT, a dependency of livekit-api
from aiohttp import web
from livekit import api, rtc
from livekit.agents import Agent, AgentServer, AgentSession
from livekit.agents.ipc.mock_room import create_mock_room
from livekit.agents.testing import fake_job_context

from avatarkit.devserver import DevServer
from avatarkit.integrations.livekit import AvatarSession
from avatarkit.proto import avatarkit_wire_pb2 as pb
from tests._livekit import (
    BOUND,
    LK,
    LK_KEY,
    LK_SECRET,
    LK_URL,
    control_messages,
    frames,
    running_agent,
    tone,
    wait_until,
)

# -- normal utterance, sample rates -------------------------------------------------------


@pytest.mark.parametrize("tts_rate", [16000, 24000])
async def test_utterance_plays_once_with_right_duration(
    avatar_server: DevServer, tts_rate: int
) -> None:
    async with running_agent(avatar_server, sample_rate=16000) as (session, _avatar, signals):
        handle = session.say("hello there", audio=frames(tone(1.0, tts_rate)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert not handle.interrupted
        assert len(signals.started) == 1
        assert len(signals.finished) == 1
        assert signals.finished[0].interrupted is False
        assert signals.finished[0].playback_position == pytest.approx(1.0, abs=0.05)
        summary = avatar_server.session_summaries()[0]
        assert summary["egress"] == "livekit"
        [request] = summary["requests"]
        assert request["ended"] and not request["interrupted"]
        # 1.0 s of TTS audio at tts_rate arrives as 1.0 s at the session's 16 kHz
        assert request["audio_seconds"] == pytest.approx(1.0, abs=0.03)
        state = avatar_server.last_session
        assert state is not None and state.sample_rate == 16000
        assert control_messages(avatar_server) == 0


async def test_two_utterances_two_requests(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server) as (session, _avatar, signals):
        for _ in range(2):
            handle = session.say("hi", audio=frames(tone(0.4, 24000)))
            await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert [f.interrupted for f in signals.finished] == [False, False]
        assert len(signals.started) == 2
        requests = avatar_server.session_summaries()[0]["requests"]
        assert [r["ended"] for r in requests] == [True, True]


# -- the egress config the service received --------------------------------------------------


async def test_egress_token_minted_for_this_room(
    avatar_server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = int(time.time())
    async with running_agent(
        avatar_server, avatar_participant_identity="avatar-1", egress_idle_timeout=30
    ) as (
        _session,
        avatar,
        _signals,
    ):
        state = avatar_server.last_session
        assert state is not None and state.egress is not None
        egress = state.egress
        assert egress.kind == "livekit"
        assert egress.url == LK_URL
        assert egress.room_name == "console"  # the mock room's name
        assert egress.publisher_id == "avatar-1"
        assert egress.idle_timeout == 30
        claims = api.TokenVerifier(LK_KEY, LK_SECRET).verify(egress.api_token)
        assert claims.identity == "avatar-1"
        assert claims.kind == "agent"
        assert claims.attributes == {"lk.publish_on_behalf": "agent"}  # the agent's identity
        assert claims.video is not None
        assert claims.video.room_join is True
        assert claims.video.room == "console"
        assert claims.video.can_publish is True
        assert claims.video.can_subscribe is False
        assert not claims.video.room_admin and not claims.video.room_create
        exp = egress.token_claims["exp"] if egress.token_claims else None
        assert isinstance(exp, int)
        assert before + 9 * 60 <= exp <= int(time.time()) + 10 * 60 + 1  # default TTL 10 min
        with pytest.raises(jwt.InvalidSignatureError):
            api.TokenVerifier(LK_KEY, "another-secret-that-is-long-enough-000000").verify(
                egress.api_token
            )
        with pytest.raises(RuntimeError, match="already"):
            await avatar.start(_session, create_mock_room(), **LK)
        # no secret in repr or logs
        for text in (repr(avatar), repr(avatar.session), repr(avatar.audio_sink), caplog.text):
            assert LK_SECRET not in text and avatar_server.api_key not in text
            assert egress.api_token not in text


# -- interrupts ----------------------------------------------------------------------------


@pytest.mark.avatar_server(pace="realtime")
async def test_interrupt_mid_utterance_sends_one_interrupt(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server) as (session, _avatar, signals):
        handle = session.say("a long sentence", audio=frames(tone(3.0, 24000)))
        await wait_until(lambda: signals.started)
        await asyncio.sleep(0.3)
        await session.interrupt()
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert handle.interrupted
        assert len(signals.started) == 1
        assert len(signals.finished) == 1
        finished = signals.finished[0]
        assert finished.interrupted is True
        assert 0.1 < finished.playback_position < 2.0
        await wait_until(lambda: avatar_server.session_summaries()[0]["requests"][0]["interrupted"])
        assert control_messages(avatar_server) == 1  # exactly one interrupt
        # the next utterance plays normally on the same session
        handle = session.say("again", audio=frames(tone(0.3, 24000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert [f.interrupted for f in signals.finished] == [True, False]
        assert len(avatar_server.session_summaries()) == 1


async def test_interrupt_while_idle_sends_nothing(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server) as (session, avatar, signals):
        handle = session.say("short", audio=frames(tone(0.3, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        await session.interrupt()
        sink = avatar.audio_sink
        assert sink is not None
        sink.clear_buffer()  # what the framework does on an interruption, here while idle
        await asyncio.sleep(0.2)
        assert control_messages(avatar_server) == 0
        assert len(signals.finished) == 1 and signals.finished[0].interrupted is False


# -- failures: dropped connection, missing playback signal --------------------------------------


@pytest.mark.avatar_server(pace="realtime")
async def test_connection_dropped_mid_segment_then_reconnects(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server) as (session, avatar, signals):
        avatar_server.faults.drop_connection(after_frames=10)  # 0.4 s into the segment
        handle = session.say("dropped", audio=frames(tone(2.0, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert len(signals.started) == 1 and len(signals.finished) == 1
        assert signals.finished[0].interrupted is True
        # the next utterance opens a new session and plays
        handle = session.say("after", audio=frames(tone(0.3, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert [f.interrupted for f in signals.finished] == [True, False]
        summaries = avatar_server.session_summaries()
        assert len(summaries) == 2
        assert avatar.session is not None and avatar.session.is_open


@pytest.mark.avatar_server(pace="realtime")
async def test_server_error_mid_segment_finishes_interrupted(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server) as (session, _avatar, signals):
        avatar_server.faults.send_error(13, "internal", after_frames=5)
        handle = session.say("error", audio=frames(tone(2.0, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert len(signals.started) == 1
        assert [f.interrupted for f in signals.finished] == [True]
        handle = session.say("after", audio=frames(tone(0.3, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert [f.interrupted for f in signals.finished] == [True, False]


async def test_reconnect_retries_a_retryable_failure(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server, max_reconnects=2) as (session, avatar, signals):
        avatar_server.faults.drop_connection(after_frames=0)
        avatar_server.faults.reject_upgrade(503)  # the first reconnect is refused
        handle = session.say("dropped", audio=frames(tone(0.5, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        handle = session.say("after", audio=frames(tone(0.3, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert signals.finished[-1].interrupted is False
        assert avatar_server.rejected_upgrades == 1
        assert len(avatar_server.session_summaries()) == 2
        assert avatar.session is not None and avatar.session.is_open


async def test_reconnect_gives_up_after_max_reconnects(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server, max_reconnects=1) as (session, _avatar, signals):
        avatar_server.faults.drop_connection(after_frames=0)
        rule = avatar_server.faults.reject_upgrade(503, persistent=True)
        for text in ("dropped", "refused"):
            handle = session.say(text, audio=frames(tone(0.3, 16000)))
            await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert [f.interrupted for f in signals.finished] == [True, True]
        assert avatar_server.rejected_upgrades == 2  # the first try and one retry
        avatar_server.faults.remove(rule)
        handle = session.say("back", audio=frames(tone(0.3, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert signals.finished[-1].interrupted is False


@pytest.mark.avatar_server(idle_timeout=0.3)
async def test_session_ended_by_idle_timeout_is_opened_again(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server) as (session, avatar, signals):
        handle = session.say("before the pause", audio=frames(tone(0.3, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        await avatar_server.wait_closed_sessions(1)  # the service ended the idle session
        handle = session.say("after the pause", audio=frames(tone(0.3, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert [f.interrupted for f in signals.finished] == [False, False]
        assert len(avatar_server.session_summaries()) == 2
        assert avatar.session is not None and avatar.session.is_open


# -- a relay that changes what the service says --------------------------------------------------


@contextlib.asynccontextmanager
async def relay(
    server: DevServer, *, capabilities: list[str] | None = None, drop_states: bool = False
) -> AsyncIterator[str]:
    """A WebSocket relay to ``server``: rewrites the confirm's capabilities, drops playback states.

    Yields the ingress URL to give the SDK.
    """
    forward = ("X-App-ID", "X-Session-Key")

    async def handler(request: web.Request) -> web.WebSocketResponse:
        headers = {k: request.headers[k] for k in forward if k in request.headers}
        async with aiohttp.ClientSession() as http:
            upstream = await http.ws_connect(
                server.websocket_url, headers=headers, params=dict(request.query)
            )
            ws = web.WebSocketResponse()
            await ws.prepare(request)

            async def down() -> None:
                async for msg in upstream:
                    if msg.type is not aiohttp.WSMsgType.BINARY:
                        break
                    data = msg.data
                    message = pb.Message.FromString(data)
                    if message.HasField("server_playback_state") and drop_states:
                        continue
                    if message.HasField("server_confirm_session") and capabilities is not None:
                        del message.server_confirm_session.capabilities[:]
                        message.server_confirm_session.capabilities.extend(capabilities)
                        data = message.SerializeToString()
                    await ws.send_bytes(data)
                await ws.close()

            task = asyncio.get_running_loop().create_task(down())
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.BINARY:
                    await upstream.send_bytes(msg.data)
            await upstream.close()
            await task
        return ws

    app = web.Application()
    app.router.add_get("/v2/driveningress/websocket", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"ws://127.0.0.1:{port}/v2/driveningress"
    finally:
        await runner.cleanup()


@pytest.mark.avatar_server(pace="realtime")
async def test_missing_playback_state_times_out(avatar_server: DevServer) -> None:
    # The service declares playback_state but its ENDED never comes.
    async with (
        relay(avatar_server, drop_states=True) as ingress,
        running_agent(avatar_server, ingress=ingress, playback_timeout=0.5) as (
            session,
            avatar,
            signals,
        ),
    ):
        assert avatar.session is not None
        assert "playback_state" in avatar.session.capabilities
        handle = session.say("lost signal", audio=frames(tone(0.5, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), 5.0)
        assert len(signals.started) == 1 and len(signals.finished) == 1
        assert signals.finished[0].interrupted is False
        assert signals.finished[0].playback_position == pytest.approx(0.5, abs=0.05)


async def test_without_playback_state_the_request_end_finishes(avatar_server: DevServer) -> None:
    async with (
        relay(avatar_server, capabilities=[]) as ingress,
        running_agent(avatar_server, ingress=ingress, playback_timeout=30) as (
            session,
            avatar,
            signals,
        ),
    ):
        assert avatar.session is not None and avatar.session.capabilities == ()
        handle = session.say("no states", audio=frames(tone(0.5, 24000)))
        await asyncio.wait_for(handle.wait_for_playout(), 5.0)  # well under playback_timeout
        assert len(signals.started) == 1
        assert [f.interrupted for f in signals.finished] == [False]
        assert signals.finished[0].playback_position == pytest.approx(0.5, abs=0.05)


# -- pause / resume -------------------------------------------------------------------------


@pytest.mark.avatar_server(pace="realtime")
async def test_pause_resume_with_playback_control(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server) as (session, avatar, signals):
        sink = avatar.audio_sink
        assert sink is not None and sink.can_pause
        handle = session.say("pausing", audio=frames(tone(1.0, 16000)))
        await wait_until(lambda: signals.started)
        sink.pause()
        await wait_until(lambda: avatar_server.session_summaries()[0]["requests"][0]["paused"])
        sink.resume()
        await wait_until(lambda: not avatar_server.session_summaries()[0]["requests"][0]["paused"])
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert [f.interrupted for f in signals.finished] == [False]
        assert control_messages(avatar_server) == 2  # one pause, one resume, no interrupt


@pytest.mark.avatar_server(pace="realtime")
async def test_pause_without_playback_control_clears(avatar_server: DevServer) -> None:
    async with (
        relay(avatar_server, capabilities=[]) as ingress,
        running_agent(avatar_server, ingress=ingress) as (session, avatar, signals),
    ):
        sink = avatar.audio_sink
        assert sink is not None and not sink.can_pause
        handle = session.say("no control", audio=frames(tone(2.0, 16000)))
        await wait_until(lambda: signals.started)
        sink.pause()  # degrades to clear_buffer: one interrupt
        await wait_until(lambda: signals.finished)
        sink.resume()  # nothing to resume
        assert [f.interrupted for f in signals.finished] == [True]
        await wait_until(lambda: avatar_server.session_summaries()[0]["requests"][0]["interrupted"])
        assert control_messages(avatar_server) == 1
        await session.interrupt()
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)


# -- configuration errors ---------------------------------------------------------------------


async def test_start_validates_before_touching_the_room(
    avatar_server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for env in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(env, raising=False)
    room = create_mock_room()
    with fake_job_context(room=room):
        session: AgentSession[Any] = AgentSession()
        await session.start(agent=Agent(instructions="test"), room=room, record=False)
        try:
            chain_tail = session.output.audio.next_in_chain.next_in_chain  # type: ignore[union-attr]
            avatar = AvatarSession(**avatar_server.session_kwargs())
            with pytest.raises(ValueError, match="LIVEKIT_API_SECRET") as info:
                await avatar.start(session, room, livekit_url=LK_URL, livekit_api_key=LK_KEY)
            assert "LIVEKIT_URL" not in str(info.value)
            with pytest.raises(ValueError, match="livekit_url"):
                await AvatarSession(**avatar_server.session_kwargs()).start(
                    session, room, **{**LK, "livekit_url": "ftp://x"}
                )
            monkeypatch.delenv("AVATARKIT_AVATAR_ID", raising=False)
            no_avatar = avatar_server.session_kwargs()
            del no_avatar["avatar_id"]
            with pytest.raises(ValueError, match="AVATARKIT_AVATAR_ID"):
                await AvatarSession(**no_avatar).start(session, room, **LK)
            # the environment fills what the keywords leave out
            monkeypatch.setenv("AVATARKIT_AVATAR_ID", avatar_server.avatar_id)
            for env, value in (("LIVEKIT_URL", LK_URL), ("LIVEKIT_API_KEY", LK_KEY)):
                monkeypatch.setenv(env, value)
            monkeypatch.setenv("LIVEKIT_API_SECRET", LK_SECRET)
            from_env = AvatarSession(**no_avatar)
            await from_env.start(session, room)
            await from_env.aclose()
            assert avatar_server.session_summaries()[0]["avatar_id"] == avatar_server.avatar_id
            with pytest.raises(TypeError, match="livekit_egress"):
                AvatarSession(**avatar_server.session_kwargs(), livekit_egress=None)
            with pytest.raises(TypeError, match="no_such_option"):
                AvatarSession(**avatar_server.session_kwargs(), no_such_option=1)
            # nothing was attached by the failed starts
            assert session.output.audio.next_in_chain.next_in_chain is chain_tail  # type: ignore[union-attr]
            assert len(avatar_server.session_summaries()) == 1
        finally:
            await session.aclose()


def test_example_worker_imports() -> None:
    # examples/livekit_agent.py needs a LiveKit server and models to run (see
    # tests/integration/test_newcomer_commands.py); here it must at least import
    # and register its entrypoint.
    path = Path(__file__).parents[2] / "examples" / "livekit_agent.py"
    spec = importlib.util.spec_from_file_location("example_livekit_agent", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.server, AgentServer)
    assert inspect.iscoroutinefunction(module.entrypoint)
    assert "AvatarSession(" in path.read_text()


# -- optional: a real LiveKit server ------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("LIVEKIT_URL"),
    reason="no LIVEKIT_URL (+ LIVEKIT_API_KEY/LIVEKIT_API_SECRET): no real LiveKit server here",
)
async def test_real_livekit_server_room(avatar_server: DevServer) -> None:
    """With a real LiveKit server: the agent joins a room, the avatar starts, speaks, closes.

    The avatar service is still the local one (it records instead of publishing).
    """
    url = os.environ["LIVEKIT_URL"]
    key, secret = os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"]
    token = (
        api.AccessToken(key, secret)
        .with_identity("avatarkit-test-agent")
        .with_kind("agent")
        .with_grants(api.VideoGrants(room_join=True, room="avatarkit-test"))
        .to_jwt()
    )
    room = rtc.Room()
    await room.connect(url, token)
    try:
        with fake_job_context(room=room):
            session: AgentSession[Any] = AgentSession()
            await session.start(agent=Agent(instructions="test"), room=room, record=False)
            avatar = AvatarSession(**avatar_server.session_kwargs())
            await avatar.start(session, room)
            handle = session.say("hello", audio=frames(tone(0.5, 24000)))
            await asyncio.wait_for(handle.wait_for_playout(), BOUND)
            assert not handle.interrupted
            await avatar.aclose()
            await session.aclose()
    finally:
        await room.disconnect()
