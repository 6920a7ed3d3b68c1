"""Local avatar service: PCM audio for the request already playing (the reader's
synchronous fast path, ``Connection._pcm_now``) answers exactly as the general
path does.

Each test sends its hostile messages on a plain PCM session with one request and
no viewer, where more audio for that request takes the fast path, and checks
what the general path answered before the fast path existed: the odd byte kept
across messages, audio after ``end`` refused, the buffer limits failing the
request (code 3) with the session going on, the counters of the sessions API,
and the idle timeout reset by audio while the request is paused.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from avatarkit.devserver import DevServer
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.events import PlaybackState
from tests._helpers import FIXTURES

SPEECH = (FIXTURES / "speech_16000.pcm").read_bytes()


def seconds(s: float, offset: int = 0) -> bytes:
    return SPEECH[offset : offset + int(s * 16000) * 2]


async def open_client(server: DevServer, http: aiohttp.ClientSession) -> RawClient:
    token = await fetch_token(http, server.api_root)
    client = await RawClient.connect(http, server.ingress_url, token=token)
    await client.configure()
    return client


@pytest.mark.avatar_server(pace="realtime")
async def test_odd_bytes_empty_messages_and_end_on_the_fast_path(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("a", seconds(0.2))  # a new request: the general way
    await client.audio("a", b"\x01\x02\x03")  # odd: one byte waits for the next message
    await client.audio("a", b"\x04")  # completes that sample
    await client.audio("a", seconds(0.1, 6400))  # even, nothing carried: the fast path
    await client.audio("a", b"")  # empty: counted, nothing buffered
    await client.audio("a", seconds(0.1, 9600), end=True)  # the end flag on the fast path
    await client.audio("a", seconds(0.1))  # after end: refused
    got = await client.collect("a")
    assert [(e.code, e.req_id) for e in got.errors] == [(3, "a")]
    assert "already ended" in got.errors[0].message
    samples = 3200 + 2 + 1600 + 1600
    assert len(got.animations) == -(-samples // 640) and got.ends == 1
    assert got.state_names == ["PLAYING", "ENDED"]
    info = avatar_server.last_session.requests["a"]  # type: ignore[union-attr]
    assert (info.audio_messages, info.audio_bytes, info.audio_samples) == (6, 2 * samples, samples)
    assert info.end_received and info.state is PlaybackState.ENDED
    (summary,) = avatar_server.session_summaries()[0]["requests"]
    assert summary["frames"] == len(got.animations) and summary["ended"]
    await client.close()


@pytest.mark.parametrize(
    ("per_request", "per_connection", "where"),
    [
        (64000, 128000, "for one request"),
        (256000, 64000, "across the requests of this connection"),
    ],
)
async def test_audio_over_a_buffer_limit_mid_request_fails_the_request(
    per_request: int, per_connection: int, where: str, http: aiohttp.ClientSession
) -> None:
    # 3 s sent at once in realtime pace: the third second cannot be buffered
    # (at most a few frames were analysed meanwhile), whichever limit applies.
    async with DevServer(
        pace="realtime",
        max_request_audio_bytes=per_request,
        max_connection_audio_bytes=per_connection,
    ) as server:
        client = await open_client(server, http)
        for k in range(3):
            await client.audio("a", seconds(1.0, 32000 * k))
        got = await client.collect("a")
        assert [(e.code, e.req_id) for e in got.errors] == [(3, "a")]
        assert "more than 64000 bytes" in got.errors[0].message and where in got.errors[0].message
        assert got.state_names == ["PLAYING", "INTERRUPTED"]
        info = server.last_session.requests["a"]  # type: ignore[union-attr]
        assert info.reason == "error" and info.error == got.errors[0].message
        assert info.audio_samples == 32000  # the refused second was not kept
        await client.audio("a", seconds(0.1))  # the failed request's late audio: dropped quietly
        await client.audio("b", seconds(0.2), end=True)  # the session goes on
        rest = await client.collect("b")
        assert not rest.errors and rest.ends == 1 and rest.state_names == ["PLAYING", "ENDED"]
        assert info.audio_messages == 3
        await client.close()


@pytest.mark.avatar_server(pace="realtime", idle_timeout=0.8)
async def test_audio_on_the_fast_path_resets_the_idle_timeout(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(avatar_server, http)
    await client.audio("a", seconds(0.2))
    await client.pause("a")
    # Paused: no frame goes out, so only this audio keeps the session alive
    # for twice the idle timeout.
    for _ in range(16):
        await asyncio.sleep(0.1)
        await client.audio("a", b"\x00\x00" * 160)
    assert not avatar_server.last_session.errors_sent  # type: ignore[union-attr]
    await client.resume("a")
    await client.audio("a", b"", end=True)
    got = await client.collect("a")
    assert got.ends == 1 and not got.errors
    assert "PAUSED" in got.state_names and got.state_names[-1] == "ENDED"
    await client.close()
