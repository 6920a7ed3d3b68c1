"""Local avatar service: the audio memory limits hold for Ogg Opus (issue 9).

An Opus packet declares its duration in its TOC byte (RFC 6716 section 3.1):
a two-byte packet can stand for 120 ms of audio, so a small Ogg message can
decode to gigabytes. The service checks the declared duration of a message's
packets against the per-request and per-connection limits *before* decoding
them, and refuses the request with the same ``ServerError`` (code 3) as for
PCM over a limit; the session and other sessions go on.
"""

from __future__ import annotations

import asyncio
import struct
import tracemalloc
from collections.abc import AsyncIterator

import aiohttp
import pytest

from avatarkit.audio.ogg import build_page
from avatarkit.audio.opus import OggOpusDecoder, OggOpusEncoder
from avatarkit.devserver import DevServer
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.errors import AvatarSDKErrorCode, ErrorPhase, classify_server_error
from avatarkit.events import PlaybackState
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import MessageType

SECOND = b"\x01\x00" * 16000  # one second of 16 kHz PCM
OGG_OPUS = pb.AUDIO_FORMAT_OGG_OPUS


def opus_bomb(pages: int) -> bytes:
    """Ogg pages of 255 two-byte Opus packets, each declaring 120 ms (2 x 60 ms SILK)."""
    serial = 77
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 1) + b"x" + struct.pack("<I", 0)
    out = [
        build_page(2, 0, serial, 0, bytes((len(head),)), head),
        build_page(0, 0, serial, 1, bytes((len(tags),)), tags),
    ]
    packet = bytes(((3 << 3) | 3, 2))  # config 3 (SILK NB 60 ms), code 3, 2 frames
    granule = 312
    for i in range(pages):
        granule += 255 * 5760
        out.append(build_page(0, granule, serial, 2 + i, b"\x02" * 255, packet * 255))
    return b"".join(out)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def connect(
    server: DevServer, http: aiohttp.ClientSession, audio_format: int = 0
) -> RawClient:
    token = await fetch_token(http, server.api_root)
    client = await RawClient.connect(http, server.ingress_url, token=token)
    await client.configure(audio_format=audio_format)
    return client


async def next_error(client: RawClient, bound: float = 10.0) -> pb.ServerError:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while True:
        msg = await client.recv(timeout=max(0.01, deadline - loop.time()))
        assert msg is not None, f"closed ({client.close_code}) before a ServerError"
        if msg.type == MessageType.SERVER_ERROR:
            return msg.server_error


async def healthy_session(server: DevServer, http: aiohttp.ClientSession) -> int:
    """A second client doing one whole PCM request; its number of end frames."""
    client = await connect(server, http)
    await client.audio("healthy", SECOND, end=True)
    got = await client.collect("healthy")
    await client.close()
    return got.ends


@pytest.mark.avatar_server(
    pace="realtime", max_request_audio_bytes=1 << 20, max_connection_audio_bytes=2 << 20
)
async def test_opus_bomb_is_refused_before_it_is_decoded(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    bomb = opus_bomb(12)  # ~9 KB declaring 367 s: ~11.7 MB at 16 kHz, 35 MB at 48 kHz
    assert len(bomb) < 10_000
    client = await connect(avatar_server, http, OGG_OPUS)
    other = asyncio.create_task(healthy_session(avatar_server, http))
    tracemalloc.start()
    try:
        await client.audio("bomb", bomb, end=True)
        err = await next_error(client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.code == 3
    sdk = classify_server_error(err.code, err.message, phase=ErrorPhase.WEBSOCKET_RUNTIME.value)
    assert sdk.code is AvatarSDKErrorCode.invalidRequest
    assert str(1 << 20) in err.message and "bomb" in err.message
    # Nothing near the decoded size was ever allocated (the limit is 1 MiB).
    assert peak < 4 << 20, f"peak traced memory {peak} bytes"
    info = avatar_server.sessions[client.connection_id].requests["bomb"]
    assert (info.state, info.reason) == (PlaybackState.INTERRUPTED, "error")
    assert info.audio_samples == 0
    # Another session was served meanwhile, and this one goes on with real Ogg Opus.
    assert await asyncio.wait_for(other, 10) == 1
    encoder = OggOpusEncoder(16000)
    ogg = encoder.encode(SECOND) + encoder.finish()
    await client.audio("small", ogg, end=True)
    assert (await client.collect("small")).ends == 1
    await client.close()


@pytest.mark.avatar_server(pace="fast")
async def test_opus_within_limits_still_decodes_across_messages(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    """A long Ogg Opus stream split over two messages decodes whole, in slices.

    Each message holds ~150 packets of 20 ms, more than one slice of the
    service's packet-by-slice decoding: the result equals a one-shot decode.
    """
    client = await connect(avatar_server, http, OGG_OPUS)
    encoder = OggOpusEncoder(16000)
    ogg = encoder.encode(SECOND * 6) + encoder.finish()
    expected = OggOpusDecoder(16000).feed(ogg).size
    assert abs(expected - 6 * 16000) < 1000
    half = len(ogg) // 2
    await client.audio("r", ogg[:half])
    await client.audio("r", ogg[half:], end=True)
    got = await client.collect("r")
    assert got.ends == 1
    info = avatar_server.sessions[client.connection_id].requests["r"]
    assert info.state is PlaybackState.ENDED
    assert info.audio_samples == expected
    await client.close()
