"""The LiveKit Agents integration's lifecycle, offline, over real sockets.

Closing (mid-segment, while ``start()`` opens, started before the agent
session), a clear while the sink reconnects, and a pause longer than
``end_timeout``. Same set-up as ``test_livekit_avatar.py``: livekit-agents'
mock room and fake job context (no LiveKit server here), a real
``AgentSession`` with no models, the local avatar service.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import pytest

if os.environ.get("AVATARKIT_REQUIRE_LIVEKIT") == "1":
    import livekit.agents  # noqa: F401  (CI: fail, not skip, when the extra is missing)
else:
    pytest.importorskip("livekit.agents", reason="needs the livekit extra")

from livekit.agents import Agent, AgentSession
from livekit.agents.ipc.mock_room import create_mock_room
from livekit.agents.testing import fake_job_context

from avatarkit.devserver import DevServer
from avatarkit.integrations.livekit import AvatarSession
from tests._livekit import (
    BOUND,
    LK,
    Signals,
    avatarkit_tasks,
    frames,
    running_agent,
    slowly,
    tone,
    wait_until,
)


@pytest.mark.avatar_server(pace="realtime")
async def test_aclose_restores_tail_and_is_idempotent(avatar_server: DevServer) -> None:
    room = create_mock_room()
    with fake_job_context(room=room):
        session: AgentSession[Any] = AgentSession()
        await session.start(agent=Agent(instructions="test"), room=room, record=False)
        chain = session.output.audio
        assert chain is not None
        proxy = chain.next_in_chain
        assert proxy is not None
        original = proxy.next_in_chain
        avatar = AvatarSession(**avatar_server.session_kwargs())
        await avatar.start(session, room, **LK)
        assert proxy.next_in_chain is avatar.audio_sink
        assert session.output.audio is chain  # the synchronizer stays on top
        signals = Signals(avatar)
        handle = session.say("closing", audio=frames(tone(3.0, 16000)))
        await wait_until(lambda: signals.started)
        await avatar.aclose()
        assert proxy.next_in_chain is original
        assert avatar.session is None
        await avatar.aclose()  # idempotent
        assert len(signals.finished) == 1 and signals.finished[0].interrupted is True
        await session.interrupt()
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert avatarkit_tasks() == []
        await avatar_server.wait_closed_sessions(1)
        await session.aclose()


async def test_started_before_the_agent_session(avatar_server: DevServer) -> None:
    # The order of livekit-agents' own avatar examples: the avatar first, so the
    # session's room output does not publish the agent's audio itself.
    room = create_mock_room()
    with fake_job_context(room=room):
        session: AgentSession[Any] = AgentSession()
        avatar = AvatarSession(**avatar_server.session_kwargs())
        await avatar.start(session, room, **LK)
        assert session.output.audio is avatar.audio_sink
        await session.start(agent=Agent(instructions="test"), room=room, record=False)
        try:
            chain = session.output.audio
            assert chain is not None and chain.label == "TranscriptSynchronizer"
            signals = Signals(avatar)
            handle = session.say("first", audio=frames(tone(0.4, 24000)))
            await asyncio.wait_for(handle.wait_for_playout(), BOUND)
            assert [f.interrupted for f in signals.finished] == [False]
            await avatar.aclose()
            # nothing to put back: the closed sink stays wrapped and never blocks the agent
            handle = session.say("after close", audio=frames(tone(0.4, 24000)))
            await asyncio.wait_for(handle.wait_for_playout(), BOUND)
            assert [f.interrupted for f in signals.finished] == [False, True]
            assert len(signals.started) == 2
            assert len(avatar_server.session_summaries()[0]["requests"]) == 1
        finally:
            await avatar.aclose()
            await session.aclose()


@pytest.mark.avatar_server(pace="realtime")
async def test_aclose_mid_segment_reports_it_once_when_started_first(
    avatar_server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Avatar started before AgentSession.start() (the README's order): the
    # closed sink stays in the chain; the segment aclose() finished must not be
    # reported again when the framework flushes it.
    caplog.set_level(logging.WARNING)
    room = create_mock_room()
    with fake_job_context(room=room):
        session: AgentSession[Any] = AgentSession()
        avatar = AvatarSession(**avatar_server.session_kwargs())
        await avatar.start(session, room, **LK)
        await session.start(agent=Agent(instructions="test"), room=room, record=False)
        try:
            signals = Signals(avatar)
            handle = session.say("long", audio=slowly(tone(1.0, 24000)))
            await wait_until(lambda: signals.started)
            await asyncio.sleep(0.1)  # mid-capture
            await avatar.aclose()
            await asyncio.wait_for(handle.wait_for_playout(), BOUND)
            assert len(signals.started) == 1
            assert [f.interrupted for f in signals.finished] == [True]
            handle = session.say("next", audio=slowly(tone(0.3, 24000)))
            await asyncio.wait_for(handle.wait_for_playout(), BOUND)
            assert len(signals.started) == 2
            assert [f.interrupted for f in signals.finished] == [True, True]
            assert not [r for r in caplog.records if "more times" in r.getMessage()]
        finally:
            await avatar.aclose()
            await session.aclose()


async def test_aclose_while_start_opens_leaves_nothing(avatar_server: DevServer) -> None:
    room = create_mock_room()
    with fake_job_context(room=room):
        session: AgentSession[Any] = AgentSession()
        await session.start(agent=Agent(instructions="test"), room=room, record=False)
        try:
            chain = session.output.audio
            assert chain is not None and chain.next_in_chain is not None
            original = chain.next_in_chain.next_in_chain
            avatar = AvatarSession(**avatar_server.session_kwargs())
            starting = asyncio.get_running_loop().create_task(avatar.start(session, room, **LK))
            await asyncio.sleep(0)  # start() checked everything and is opening the session
            await avatar.aclose()
            with pytest.raises(RuntimeError, match="aclose"):
                await asyncio.wait_for(starting, BOUND)
            assert avatar.session is None and avatar.audio_sink is None
            assert chain.next_in_chain.next_in_chain is original  # the tail was not taken
            summaries = avatar_server.session_summaries()
            await avatar_server.wait_closed_sessions(len(summaries))
            assert avatarkit_tasks() == []
        finally:
            await session.aclose()


@pytest.mark.avatar_server(pace="realtime")
async def test_clear_while_reconnecting_finishes_at_once(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server, max_reconnects=10) as (session, avatar, signals):
        avatar_server.faults.drop_connection(after_frames=0)
        handle = session.say("dropped", audio=frames(tone(0.3, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        # Every reconnect is refused: the retries (backoff up to 2 s) would take ~15 s.
        refusal = avatar_server.faults.reject_upgrade(503, persistent=True)
        handle = session.say("reconnecting", audio=slowly(tone(2.0, 16000)))
        await wait_until(lambda: avatar_server.rejected_upgrades >= 1)
        await session.interrupt()
        await asyncio.wait_for(handle.wait_for_playout(), 5.0)  # not after the retries
        await wait_until(lambda: len(signals.finished) == 2, 5.0)
        assert [f.interrupted for f in signals.finished] == [True, True]
        assert signals.finished[1].playback_position == 0.0
        avatar_server.faults.remove(refusal)
        handle = session.say("after", audio=frames(tone(0.3, 16000)))
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert signals.finished[-1].interrupted is False
        assert avatar.session is not None and avatar.session.is_open


@pytest.mark.avatar_server(pace="realtime")
async def test_pause_longer_than_end_timeout_then_resume(avatar_server: DevServer) -> None:
    async with running_agent(avatar_server, end_timeout=0.5) as (session, avatar, signals):
        sink = avatar.audio_sink
        assert sink is not None and sink.can_pause
        handle = session.say("pausing", audio=frames(tone(1.0, 16000)))
        await wait_until(lambda: signals.started)
        await asyncio.sleep(0.2)
        sink.pause()
        await wait_until(lambda: avatar_server.session_summaries()[0]["requests"][0]["paused"])
        await asyncio.sleep(1.5)  # three times end_timeout
        sink.resume()
        await asyncio.wait_for(handle.wait_for_playout(), BOUND)
        assert [f.interrupted for f in signals.finished] == [False]
        assert signals.finished[0].playback_position == pytest.approx(1.0, abs=0.05)
        [request] = avatar_server.session_summaries()[0]["requests"]
        assert request["ended"] and not request["interrupted"]
