"""The frame wheel: a real-time service sends its sessions' plain frames in batches.

Many sessions over loopback against one ``DevServer`` in realtime pace: every
session gets every frame, in order, computed from its own audio (the same
bytes the analyzer gives for that audio alone), the first and last frames and
the playback states still come, and the middle frames went through the wheel
in ticks that each served several sessions.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import numpy as np
import pytest

from avatarkit.devserver import DevServer
from avatarkit.devserver._animation import AnimationAnalyzer, encode_frame
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.events import PlaybackState
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import build_websocket_url
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


async def _raw(server: DevServer, http: aiohttp.ClientSession, compress: int = 0) -> RawClient:
    token = await fetch_token(http, server.api_root)
    url, headers = build_websocket_url(
        server.ingress_url,
        avatar_id=server.avatar_id,
        app_id="dev-app-id",
        token=token,
        use_query_auth=False,
    )
    client = RawClient(await http.ws_connect(url, headers=headers, compress=compress), http)
    await client.configure()
    return client


async def test_a_compressed_connection_never_goes_the_wheels_way(
    http: aiohttp.ClientSession,
) -> None:
    # The wheel writes frames to the transport itself: a permessage-deflate
    # connection must get aiohttp's (compressed) frames, all from its pacer.
    clip = speech_pcm(16000)[:32000]
    async with DevServer(pace="realtime", compress=True) as server:
        wheel = server._wheel
        assert wheel is not None
        deflated, plain = await _raw(server, http, 15), await _raw(server, http)
        assert deflated.ws.compress and not plain.ws.compress
        for client in (deflated, plain):
            await client.audio("r", clip, end=True)
        first, second = await asyncio.gather(deflated.collect("r"), plain.collect("r"))
        # only the uncompressed one's middle frames went the wheel's way
        assert FRAMES - 2 - 3 <= wheel.frames <= FRAMES - 2
        for client in (deflated, plain):
            await client.close()
    payloads = []
    for got in (first, second):
        assert got.ends == 1 and got.state_names == ["PLAYING", "ENDED"] and not got.errors
        payloads.append([a.animation for a in got.animations])
    assert len(payloads[0]) == FRAMES and payloads[0] == payloads[1]


async def test_a_peer_vanishing_mid_stream_leaves_the_others_frames_alone(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # One client's socket is aborted while its session is parked in the wheel:
    # its transport is closing at the next tick, which ends that session quietly.
    clip = speech_pcm(16000)[:32000]
    async with DevServer(pace="realtime") as server:
        gone, stays = await _raw(server, http), await _raw(server, http)
        for client in (gone, stays):
            await client.audio("r", clip, end=True)
        first = await gone.recv()
        assert first is not None
        await asyncio.sleep(0.2)
        gone.ws._writer.transport.abort()  # the client's TCP connection, reset
        got = await stays.collect("r")
        assert len(got.animations) == FRAMES and got.ends == 1 and not got.errors
        await server.wait_closed_sessions(1)
        (closed,) = server.closed_sessions
        assert closed.close_code == 1006 and 0 < closed.requests["r"].frames_sent < FRAMES
        await stays.close()
        await gone.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
