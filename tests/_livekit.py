"""Shared helpers of the LiveKit Agents integration tests (needs the livekit extra).

Imported only by test modules that checked livekit-agents is installed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentSession
from livekit.agents.ipc.mock_room import create_mock_room
from livekit.agents.testing import fake_job_context

from avatarkit.devserver import DevServer
from avatarkit.integrations.livekit import AvatarSession

LK_URL = "wss://livekit.test.invalid"
LK_KEY = "APItestkey"
LK_SECRET = "test-secret-that-is-long-enough-for-hs256-000000"
LK = {"livekit_url": LK_URL, "livekit_api_key": LK_KEY, "livekit_api_secret": LK_SECRET}
BOUND = 15.0  # "does not hang" bound on every wait in these tests


def tone(seconds: float, rate: int, frame_ms: int = 20) -> list[rtc.AudioFrame]:
    """A 220 Hz tone as TTS-like 20 ms frames."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    pcm = (np.sin(2 * math.pi * 220 * t) * 8000).astype("<i2")
    step = rate * frame_ms // 1000
    return [
        rtc.AudioFrame(pcm[i : i + step].tobytes(), rate, 1, len(pcm[i : i + step]))
        for i in range(0, n, step)
    ]


async def frames(items: list[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
    for frame in items:
        yield frame


class Signals:
    """The playback signals our sink sent to livekit-agents."""

    def __init__(self, avatar: AvatarSession) -> None:
        self.started: list[Any] = []
        self.finished: list[Any] = []
        sink = avatar.audio_sink
        assert sink is not None
        sink.on("playback_started", self.started.append)
        sink.on("playback_finished", self.finished.append)


@contextlib.asynccontextmanager
async def running_agent(
    server: DevServer, *, ingress: str | None = None, **avatar_kwargs: Any
) -> AsyncIterator[tuple[AgentSession[Any], AvatarSession, Signals]]:
    """An AgentSession (no models) on the mock room, with our avatar started on it."""
    room = create_mock_room()
    with fake_job_context(room=room):
        session: AgentSession[Any] = AgentSession()
        await session.start(agent=Agent(instructions="test"), room=room, record=False)
        kwargs = server.session_kwargs()
        if ingress is not None:
            kwargs["ingress_endpoint_url"] = ingress
        kwargs.update(avatar_kwargs)
        avatar = AvatarSession(**kwargs)
        try:
            await avatar.start(session, room, **LK)
            yield session, avatar, Signals(avatar)
        finally:
            await avatar.aclose()
            await session.aclose()


def control_messages(server: DevServer) -> int:
    """Control messages (interrupt, pause, resume) the service received on its last session."""
    state = server.last_session
    assert state is not None
    audio = sum(r.audio_messages for r in state.requests.values())
    return state.messages_received - 1 - audio  # minus the configure


async def wait_until(predicate: Any, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def slowly(items: list[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
    """Frames as a streaming TTS gives them: the segment is still being captured meanwhile."""
    for frame in items:
        await asyncio.sleep(0.02)
        yield frame


def avatarkit_tasks() -> list[asyncio.Task[Any]]:
    """Our tasks still running (the SDK's per-loop guard lives until the loop ends, by design)."""
    return [
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
        and t.get_name().startswith("avatarkit")
        and t.get_name() != "avatarkit-loop-guard"
    ]
