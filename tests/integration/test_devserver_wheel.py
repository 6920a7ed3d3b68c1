"""The frame wheel: a real-time service sends its sessions' plain frames in batches.

Many sessions over loopback against one ``DevServer`` in realtime pace: every
session gets every frame, in order, computed from its own audio (the same
bytes the analyzer gives for that audio alone), the first and last frames and
the playback states still come, and the middle frames went through the wheel
in ticks that each served several sessions.
"""

from __future__ import annotations

import asyncio

import numpy as np

from avatarkit.devserver import DevServer
from avatarkit.devserver._animation import AnimationAnalyzer, encode_frame
from avatarkit.events import PlaybackState
from avatarkit.proto import avatarkit_wire_pb2 as pb
from tests._helpers import Recorder, make_session, speech_pcm

SESSIONS = 12
FRAMES = 25  # one second of audio each


async def test_many_sessions_share_ticks_and_get_their_own_frames() -> None:
    pcm = speech_pcm(16000)
    clips = [pcm[i * 6400 : i * 6400 + 32000] for i in range(SESSIONS)]  # 1 s, own offsets
    async with DevServer(pace="realtime") as server:
        recs = [Recorder() for _ in range(SESSIONS)]
        sessions = [make_session(server, rec) for rec in recs]
        await asyncio.gather(*(s.init() for s in sessions))
        await asyncio.gather(*(s.start() for s in sessions))
        try:
            await asyncio.gather(
                *(s.send_audio(clip, end=True) for s, clip in zip(sessions, clips, strict=True))
            )
            await asyncio.wait_for(asyncio.gather(*(r.ended.wait() for r in recs)), 10)
        finally:
            await asyncio.gather(*(s.close() for s in sessions))
        wheel = server._wheel
        assert wheel is not None
    for rec, clip in zip(recs, clips, strict=True):
        assert len(rec.frames) == FRAMES
        assert [last for _, last in rec.frames] == [False] * (FRAMES - 1) + [True]
        analyzer = AnimationAnalyzer(16000, seed=server.avatar_id)
        expected = analyzer.push(np.frombuffer(clip, dtype="<i2")) + analyzer.flush()
        payloads = [
            pb.Message.FromString(data).server_response_animation.animation
            for data, _ in rec.frames
        ]
        assert payloads == [encode_frame(f) for f in expected]
        assert [s.state for s in rec.states] == [PlaybackState.PLAYING, PlaybackState.ENDED]
        assert not rec.errors
    # the middle frames (neither first nor last) went through the wheel, batched
    assert wheel.frames >= SESSIONS * (FRAMES - 2) * 0.9
    assert wheel.ticks < wheel.frames / 3


async def test_a_client_streaming_ahead_stays_in_the_wheel() -> None:
    # 40 ms chunks sent 60 ms ahead of playback: the newest frame waits for the
    # next chunk, which arrives before that frame is due, so the wheel keeps the
    # session from its first frame to its last (no hand-back to the pacer per frame).
    pcm = speech_pcm(16000)
    chunk = 1280
    n_chunks = 30
    async with DevServer(pace="realtime") as server:
        recs = [Recorder() for _ in range(4)]
        sessions = [make_session(server, rec) for rec in recs]
        await asyncio.gather(*(s.init() for s in sessions))
        await asyncio.gather(*(s.start() for s in sessions))

        async def stream(i: int) -> None:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for k in range(n_chunks):
                await asyncio.sleep(max(0.0, t0 + k * 0.040 - 0.060 - loop.time()))
                off = (i * 7 + k) * chunk
                await sessions[i].send_audio(pcm[off : off + chunk], end=k == n_chunks - 1)

        try:
            await asyncio.gather(*(stream(i) for i in range(4)))
            await asyncio.wait_for(asyncio.gather(*(r.ended.wait() for r in recs)), 10)
        finally:
            await asyncio.gather(*(s.close() for s in sessions))
        wheel = server._wheel
        assert wheel is not None
    assert all(len(r.frames) == n_chunks for r in recs)
    assert wheel.frames >= 4 * (n_chunks - 2) * 0.8
    # each one's last frame, and a few late chunks on a busy machine (one per frame
    # before the wheel kept parked sessions waiting for their next chunk: ~112)
    assert wheel.handbacks <= 4 * 8
