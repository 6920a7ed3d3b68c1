"""Local avatar service: pacing, interrupt, pause/resume, preemption, egress mode."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from avatarkit.devserver import DevServer, decode_animation
from avatarkit.devserver._rawclient import Collected, RawClient, fetch_token
from avatarkit.events import PlaybackState
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import MessageType
from tests._helpers import FIXTURES

SPEECH = (FIXTURES / "speech_16000.pcm").read_bytes()
RATE = 16000
PAUSED = pb.ServerPlaybackState.PAUSED
PLAYING = pb.ServerPlaybackState.PLAYING
INTERRUPTED = pb.ServerPlaybackState.INTERRUPTED


def seconds(s: float) -> bytes:
    """``s`` seconds of the speech fixture at 16 kHz."""
    return SPEECH[: int(s * RATE) * 2]


async def open_client(
    server: DevServer, http: aiohttp.ClientSession, **configure: object
) -> RawClient:
    token = await fetch_token(http, server.api_root)
    client = await RawClient.connect(http, server.ingress_url, token=token)
    await client.configure(**configure)  # type: ignore[arg-type]
    return client


async def recv_until_state(client: RawClient, state: int, got: Collected) -> pb.ServerPlaybackState:
    loop = asyncio.get_running_loop()
    while True:
        msg = await client.recv(timeout=5)
        assert msg is not None, "closed"
        client.sort(msg, got, loop.time())
        if (
            msg.type == MessageType.SERVER_PLAYBACK_STATE
            and msg.server_playback_state.state == state
        ):
            return msg.server_playback_state


async def quiet_for(client: RawClient, duration: float) -> list[pb.Message]:
    """Messages that arrive within ``duration`` seconds."""
    out: list[pb.Message] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    while (left := end - loop.time()) > 0:
        try:
            msg = await client.recv(timeout=left)
        except asyncio.TimeoutError:
            break
        assert msg is not None
        out.append(msg)
    return out


# -- realtime pacing --------------------------------------------------------------


@pytest.mark.avatar_server(pace="realtime")
async def test_realtime_frame_k_is_not_sent_before_start_plus_k_times_40ms(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await client.audio("r", seconds(1.0), end=True)
    got = await client.collect("r")
    assert len(got.animations) == 25 and got.ends == 1
    for k, at in enumerate(got.arrival):
        assert at >= sent_at + k * 0.040 - 0.005, (k, at - sent_at)
    # ... and not wildly late (a very generous bound: a loaded CI machine stalls)
    assert got.arrival[-1] - sent_at < 0.96 + 5.0
    await client.close()


async def test_fast_pace_sends_as_soon_as_computed(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await client.audio("r", seconds(4.0), end=True)
    got = await client.collect("r")
    assert len(got.animations) == 100
    assert got.arrival[-1] - sent_at < 3.0  # 4 s of audio, well under real time
    await client.close()


# -- interrupt --------------------------------------------------------------------


async def test_interrupt_stops_a_streaming_request_at_once(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("r1", seconds(1.0))  # no end: 25 frames, the last one held back
    got = Collected()
    while len(got.animations) < 24:
        msg = await client.recv()
        assert msg is not None
        client.sort(msg, got, 0.0)
    await client.interrupt("r1")
    await client.audio("r1", seconds(0.5), end=True)  # in flight: dropped quietly
    state = await recv_until_state(client, INTERRUPTED, got)
    assert (state.req_id, state.reason, state.played_ms) == ("r1", "explicit", 960)
    await client.audio("r2", seconds(0.2), end=True)
    after = await client.collect("r2")
    assert all(a.req_id == "r2" for a in after.animations) and not after.errors
    assert got.ends == 0 and after.ends == 1
    req = avatar_server.sessions[client.connection_id].requests["r1"]
    assert (req.state, req.reason, req.end_sent) == (PlaybackState.INTERRUPTED, "explicit", False)
    await client.close()


@pytest.mark.avatar_server(pace="realtime")
async def test_interrupt_during_realtime_playback(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("r", seconds(3.0), end=True)
    await asyncio.sleep(0.4)
    await client.interrupt("r")
    got = await client.collect("r")
    assert got.state_names == ["PLAYING", "INTERRUPTED"]
    assert got.states[-1].reason == "explicit"
    assert 5 <= len(got.animations) < 30 and got.ends == 0
    assert got.states[-1].played_ms == 40 * len(got.animations)
    assert not [
        m for m in await quiet_for(client, 0.3) if m.type == MessageType.SERVER_RESPONSE_ANIMATION
    ]
    await client.close()


async def test_interrupt_of_finished_and_unknown_requests(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("done", seconds(0.2), end=True)
    await client.collect("done")
    await client.interrupt("done")
    await client.interrupt("never-sent")
    got = Collected()
    a = await recv_until_state(client, pb.ServerPlaybackState.ENDED, got)
    b = await recv_until_state(client, INTERRUPTED, got)
    assert (a.req_id, a.played_ms) == ("done", 200)
    assert (b.req_id, b.reason, b.played_ms) == ("never-sent", "explicit", 0)
    # audio of the unknown request arriving late is dropped
    await client.audio("never-sent", seconds(0.2), end=True)
    await client.pause("nothing")
    msgs = await quiet_for(client, 0.3)
    assert [m.type for m in msgs] == [MessageType.SERVER_ERROR]
    assert msgs[0].server_error.code == 3 and "no request" in msgs[0].server_error.message
    await client.close()


# -- pause / resume ------------------------------------------------------------------


@pytest.mark.avatar_server(pace="realtime")
async def test_pause_holds_output_and_resume_continues(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await client.audio("r", seconds(1.6), end=True)  # 40 frames
    await asyncio.sleep(0.4)
    await client.pause("r")
    got = Collected()
    paused = await recv_until_state(client, PAUSED, got)
    frames_at_pause = len(got.animations)
    assert paused.played_ms == 40 * frames_at_pause
    held = await quiet_for(client, 0.6)
    assert held == [], "nothing may be sent while paused"
    state = avatar_server.sessions[client.connection_id].requests["r"]
    assert state.paused and state.state is PlaybackState.PAUSED
    await client.pause("r")  # repeated pause: same answer
    again = await recv_until_state(client, PAUSED, got)
    assert again.played_ms == paused.played_ms
    await client.resume("r")
    resumed = await recv_until_state(client, PLAYING, got)
    assert resumed.played_ms == paused.played_ms  # did not advance while paused
    await client.collect("r", into=got)
    assert len(got.animations) == 40 and got.ends == 1 and got.animations[-1].end
    assert [s.played_ms for s in got.states][-1] == 1600
    # the schedule shifted by the pause: 1.6 s of audio + ~0.6 s paused
    assert got.arrival[-1] - start >= 1.56 + 0.55
    await client.close()


async def test_pause_keeps_ingesting_audio(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("r", seconds(0.4))
    got = Collected()
    while len(got.animations) < 9:
        msg = await client.recv()
        assert msg is not None
        client.sort(msg, got, 0.0)
    await client.pause("r")
    await recv_until_state(client, PAUSED, got)
    await client.audio("r", seconds(0.6))
    await client.audio("r", b"", end=True)
    assert await quiet_for(client, 0.2) == []
    req = avatar_server.sessions[client.connection_id].requests["r"]
    assert req.end_received and req.audio_samples == 16000 and req.frames_sent == 9
    await client.resume("r")
    await client.collect("r", into=got)
    assert len(got.animations) == 25
    assert got.ends == 1
    await client.close()


@pytest.mark.avatar_server(pace="realtime", pause_timeout=0.3)
async def test_pause_timeout_interrupts(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("r", seconds(2.0), end=True)
    await asyncio.sleep(0.2)
    await client.pause("r")
    got = await client.collect("r")
    assert got.state_names[-2:] == ["PAUSED", "INTERRUPTED"]
    assert got.states[-1].reason == "pause_timeout" and got.ends == 0
    await client.close()


# -- preemption --------------------------------------------------------------------


@pytest.mark.avatar_server(pace="realtime")
async def test_new_request_preempts_the_playing_one(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("a", seconds(2.0), end=True)
    await asyncio.sleep(0.3)
    await client.audio("b", seconds(0.4), end=True)
    got = await client.collect("b")
    a_states = [s for s in got.states if s.req_id == "a"]
    assert [(s.state, s.reason) for s in a_states] == [(PLAYING, ""), (INTERRUPTED, "preempted")]
    ends = [a.req_id for a in got.animations if a.end]
    assert ends == ["b"]
    interrupted_at = next(i for i, s in enumerate(got.states) if s.reason == "preempted")
    assert interrupted_at < len(got.states)
    assert sum(1 for a in got.animations if a.req_id == "b") == 10
    await client.close()


async def test_fast_pace_lets_an_ended_request_finish_first(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("a", seconds(1.0), end=True)
    await client.audio("b", seconds(1.0), end=True)
    got = await client.collect("b")
    assert [a.req_id for a in got.animations if a.end] == ["a", "b"]
    assert "INTERRUPTED" not in got.state_names
    await client.close()


async def test_fast_pace_preempts_a_request_still_streaming(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("a", seconds(1.0))  # no end
    await client.audio("b", seconds(0.2), end=True)
    got = await client.collect("b")
    a_final = [s for s in got.states if s.req_id == "a"][-1]
    assert (a_final.state, a_final.reason) == (INTERRUPTED, "preempted")
    assert [a.req_id for a in got.animations if a.end] == ["b"]
    await client.close()


# -- egress mode -------------------------------------------------------------------


def _livekit() -> pb.LiveKitEgressConfig:
    return pb.LiveKitEgressConfig(
        url="wss://lk.example.com", room_name="room", publisher_id="pub", api_token="opaque"
    )


async def test_livekit_egress_sends_only_progress_signals(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http, livekit=_livekit())
    await client.audio("r", seconds(2.5), end=True)  # 63 frames
    got = await client.collect("r")
    assert all(a.animation == b"" for a in got.animations)
    # at the start, once per second of audio, and the end
    assert len(got.animations) == 4 and got.ends == 1 and got.animations[-1].end
    assert got.state_names == ["PLAYING", "ENDED"]
    egress = avatar_server.sessions[client.connection_id].egress
    assert egress is not None
    assert (egress.frames_published, egress.requests_published) == (63, 1)
    published = list(egress.published)
    assert len(published) == 63 and published[-1][1] == egress.last_frame
    assert [decode_animation(p)["frame_index"] for _, p in published] == list(range(63))
    assert egress.audio_ms_published == 2500 and egress.progress_signals_sent == 4
    assert decode_animation(egress.last_frame)["frame_index"] == 62
    await client.close()


@pytest.mark.avatar_server(pace="realtime")
async def test_agora_egress_interrupt(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http, agora=pb.AgoraEgressConfig(channel_name="c"))
    await client.audio("r", seconds(3.0), end=True)
    await asyncio.sleep(0.3)
    await client.interrupt("r")
    got = await client.collect("r")
    assert got.state_names == ["PLAYING", "INTERRUPTED"] and got.ends == 0
    assert len(got.animations) == 1 and got.animations[0].animation == b""
    egress = avatar_server.sessions[client.connection_id].egress
    assert egress is not None and egress.kind == "agora" and egress.target == "c"
    assert 0 < egress.frames_published < 75
    await client.close()
