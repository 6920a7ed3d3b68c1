"""The Pipecat ``AvatarService`` against the local avatar service, over real sockets.

Runs with ``pipecat.tests.utils.run_test`` (a real Pipecat pipeline). Skipped
when Pipecat is not installed, unless ``AVATARKIT_REQUIRE_PIPECAT=1`` (CI's
Python 3.12 run), which makes its absence a failure.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

if os.environ.get("AVATARKIT_REQUIRE_PIPECAT") == "1":
    import pipecat  # noqa: F401  # fail, not skip
else:
    pytest.importorskip("pipecat")

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from avatarkit import LiveKitEgressConfig
from avatarkit.devserver import DevServer
from avatarkit.integrations.pipecat import AvatarAnimationFrame, AvatarService
from tests._helpers import FIXTURES

PCM16 = (FIXTURES / "speech_16000.pcm").read_bytes()[: 16000 * 2 * 2]  # 2 s
PCM24 = (FIXTURES / "speech_24000.pcm").read_bytes()[: 24000 * 2 * 2]  # 2 s
BOUND = 30.0  # "does not hang": far above every configured bound used here


def tts_frames(pcm: bytes, rate: int, chunk_ms: int = 40) -> list[Frame]:
    """What a Pipecat TTS emits for one utterance."""
    step = rate * 2 * chunk_ms // 1000
    audio: list[Frame] = [
        TTSAudioRawFrame(audio=pcm[i : i + step], sample_rate=rate, num_channels=1)
        for i in range(0, len(pcm), step)
    ]
    return [TTSStartedFrame(), *audio, TTSStoppedFrame()]


def avatar_tasks() -> list[asyncio.Task[Any]]:
    return [
        t
        for t in asyncio.all_tasks()
        if t.get_name().startswith("avatarkit")
        and t.get_name() != "avatarkit-loop-guard"  # one per loop, by design
        and not t.done()
    ]


def requests(server: DevServer) -> list[dict[str, Any]]:
    return [r for s in server.session_summaries() for r in s["requests"]]


async def run(service: AvatarService, frames: list[Frame], **kw: Any) -> tuple[Any, Any]:
    return await asyncio.wait_for(run_test(service, frames_to_send=frames, **kw), BOUND)


async def test_normal_utterance_animation_frames_and_audio_pass_through(
    avatar_server: DevServer,
) -> None:
    service = AvatarService(**avatar_server.session_kwargs(sample_rate=16000))
    sent = tts_frames(PCM16, 16000)
    down, up = await run(service, sent)
    others = [f for f in down if not isinstance(f, AvatarAnimationFrame)]
    assert [type(f) for f in others] == [type(f) for f in sent]
    assert [f.audio for f in others[1:-1]] == [f.audio for f in sent[1:-1]]  # type: ignore[attr-defined]
    anim = [f for f in down if isinstance(f, AvatarAnimationFrame)]
    assert len(anim) >= 40  # 25 fps, 2 s
    assert [f.end for f in anim] == [False] * (len(anim) - 1) + [True]
    assert len({f.req_id for f in anim}) == 1 and all(f.payload for f in anim[:-1])
    assert up == []
    (req,) = requests(avatar_server)
    assert req["ended"] and not req["interrupted"] and req["req_id"] == anim[0].req_id
    assert req["audio_seconds"] == pytest.approx(2.0, abs=0.01)
    assert avatar_tasks() == []


@pytest.mark.avatar_server("realtime")
async def test_mid_utterance_interrupt_is_one_sdk_interrupt(avatar_server: DevServer) -> None:
    states: list[Any] = []  # the service answers every interrupt with a state
    service = AvatarService(**avatar_server.session_kwargs(on_playback_state=states.append))
    sent = tts_frames(PCM16, 16000)
    frames = [
        *sent[:-1],
        SleepFrame(0.5),
        InterruptionFrame(),
        SleepFrame(0.2),
        InterruptionFrame(),  # a second one: the request is already interrupted
        TTSStoppedFrame(),
        SleepFrame(0.2),
    ]
    down, up = await run(service, frames)
    assert InterruptionFrame in [type(f) for f in down]
    assert not any(isinstance(f, AvatarAnimationFrame) and f.end for f in down)
    assert not any(isinstance(f, ErrorFrame) for f in up)
    (req,) = requests(avatar_server)
    assert req["interrupted"] and not req["ended"]
    assert [s.state.value for s in states] == ["playing", "interrupted"]
    assert avatar_tasks() == []


async def test_interrupt_while_idle_sends_no_interrupt(avatar_server: DevServer) -> None:
    states: list[Any] = []  # the service answers any control message with a state
    service = AvatarService(**avatar_server.session_kwargs(on_playback_state=states.append))
    sent = tts_frames(PCM16[:16000], 16000)
    down, _ = await run(service, [*sent, SleepFrame(1.0), InterruptionFrame(), SleepFrame(0.3)])
    assert [s.state.value for s in states] == ["playing", "ended"]  # no answer to an interrupt
    assert [type(f) for f in down if not isinstance(f, AvatarAnimationFrame)] == [
        *(type(f) for f in sent),
        InterruptionFrame,
    ]
    (req,) = requests(avatar_server)
    assert req["ended"] and not req["interrupted"]


@pytest.mark.avatar_server("realtime")
async def test_dropped_connection_surfaces_an_error_frame(avatar_server: DevServer) -> None:
    avatar_server.faults.drop_connection(after_frames=3)
    service = AvatarService(**avatar_server.session_kwargs(), end_timeout=1.0)
    sent = tts_frames(PCM16, 16000)
    frames = [*sent[:-1], SleepFrame(0.5), sent[-1]]
    down, up = await run(service, frames)
    errors = [f for f in up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and "connection" in errors[0].error.lower()
    assert [type(f) for f in down if not isinstance(f, AvatarAnimationFrame)] == [
        type(f) for f in sent
    ]
    assert avatar_tasks() == []


@pytest.mark.parametrize("rate,pcm", [(16000, PCM16), (24000, PCM24)])
async def test_tts_rate_into_16k_session(avatar_server: DevServer, rate: int, pcm: bytes) -> None:
    service = AvatarService(**avatar_server.session_kwargs(sample_rate=16000))
    sent = tts_frames(pcm, rate, chunk_ms=30)
    down, _ = await run(service, sent)
    anim = [f for f in down if isinstance(f, AvatarAnimationFrame)]
    assert anim and anim[-1].end
    (session,) = avatar_server.session_summaries()
    (req,) = session["requests"]
    assert req["audio_seconds"] == pytest.approx(2.0, abs=0.01)  # not 1.33 s or 3 s
    (state,) = [s for s in avatar_server.closed_sessions]
    assert state.requests[req["req_id"]].audio_samples == pytest.approx(32000, abs=16)


async def test_end_frame_mid_utterance_closes_everything(avatar_server: DevServer) -> None:
    service = AvatarService(**avatar_server.session_kwargs(), end_timeout=1.0)
    sent = tts_frames(PCM16, 16000)
    await run(service, sent[:-1])  # EndFrame with no TTSStoppedFrame
    assert avatar_tasks() == []
    assert service.session is None
    (session,) = avatar_server.session_summaries()
    assert session["state"] == "closed"


@pytest.mark.avatar_server("realtime")
async def test_cancel_frame_closes_everything(avatar_server: DevServer) -> None:
    service = AvatarService(**avatar_server.session_kwargs())
    sent = tts_frames(PCM16, 16000)
    frames = [*sent[:-1], SleepFrame(0.3), CancelFrame()]
    down, up = await run(service, frames, send_end_frame=False)
    assert CancelFrame in [type(f) for f in down]
    assert not any(isinstance(f, ErrorFrame) for f in up)
    assert avatar_tasks() == []
    assert service.session is None
    await avatar_server.wait_closed_sessions(1, timeout=BOUND)


async def test_livekit_egress_mode_swallows_audio_and_emits_speaking_frames(
    avatar_server: DevServer,
) -> None:
    egress = LiveKitEgressConfig(
        url="wss://livekit.invalid", api_token="opaque-token", room_name="r", publisher_id="p"
    )
    service = AvatarService(**avatar_server.session_kwargs(livekit_egress=egress))
    sent = tts_frames(PCM16[:32000], 16000)
    down, up = await run(service, sent)
    assert [type(f) for f in down] == [
        TTSStartedFrame,
        BotStartedSpeakingFrame,
        TTSStoppedFrame,
        BotStoppedSpeakingFrame,
    ] or [type(f) for f in down] == [
        TTSStartedFrame,
        TTSStoppedFrame,
        BotStartedSpeakingFrame,
        BotStoppedSpeakingFrame,
    ]
    assert [type(f) for f in up] == [BotStartedSpeakingFrame, BotStoppedSpeakingFrame]
    (session,) = avatar_server.session_summaries()
    assert session["egress"] == "livekit"
    (req,) = session["requests"]
    assert req["ended"] and req["audio_seconds"] == pytest.approx(1.0, abs=0.01)


def test_repr_hides_the_api_key(avatar_server: DevServer) -> None:
    service = AvatarService(**avatar_server.session_kwargs())
    assert avatar_server.api_key not in repr(service)


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="avatar_idd"):
        AvatarService(avatar_idd="x")


@pytest.mark.avatar_server("realtime")
async def test_next_utterance_after_a_dropped_connection_opens_a_new_session(
    avatar_server: DevServer,
) -> None:
    avatar_server.faults.drop_connection(after_frames=3)
    service = AvatarService(**avatar_server.session_kwargs(), end_timeout=1.0)
    first = tts_frames(PCM16, 16000)
    second = tts_frames(PCM16[:16000], 16000)
    down, up = await run(service, [*first, SleepFrame(0.5), *second])
    assert len([f for f in up if isinstance(f, ErrorFrame)]) == 1
    ends = [f for f in down if isinstance(f, AvatarAnimationFrame) and f.end]
    assert len(ends) == 1  # the second utterance, on a new session
    sessions = avatar_server.session_summaries()
    assert len(sessions) == 2
    assert sum(r["ended"] for s in sessions for r in s["requests"]) == 1
    assert avatar_tasks() == []
