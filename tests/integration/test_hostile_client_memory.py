"""Local avatar service: bounded memory per connection (issue 9).

A client cannot make one connection hold unbounded memory: ``req_id`` is
limited to 128 bytes, and decoded audio buffered ahead of playback is limited
per request and per connection. Going over a limit is a ``ServerError`` code 3
(an invalid request, not retryable as is) that fails that request only: the
session goes on, and other sessions are served meanwhile.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from avatarkit.devserver import DevServer
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.errors import AvatarSDKErrorCode, ErrorPhase, classify_server_error
from avatarkit.events import PlaybackState
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import MessageType

SECOND = b"\x01\x00" * 16000  # one second of 16 kHz PCM


async def connect(server: DevServer, http: aiohttp.ClientSession) -> RawClient:
    token = await fetch_token(http, server.api_root)
    client = await RawClient.connect(http, server.ingress_url, token=token)
    await client.configure()
    return client


async def next_error(client: RawClient, bound: float = 5.0) -> pb.ServerError:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while True:
        msg = await client.recv(timeout=max(0.01, deadline - loop.time()))
        assert msg is not None, f"closed ({client.close_code}) before a ServerError"
        if msg.type == MessageType.SERVER_ERROR:
            return msg.server_error


def assert_invalid_request(err: pb.ServerError) -> None:
    assert err.code == 3
    sdk = classify_server_error(err.code, err.message, phase=ErrorPhase.WEBSOCKET_RUNTIME.value)
    assert sdk.code is AvatarSDKErrorCode.invalidRequest


async def healthy_session(server: DevServer, http: aiohttp.ClientSession) -> int:
    """A second client doing one whole request; its number of end frames."""
    client = await connect(server, http)
    await client.audio("healthy", SECOND, end=True)
    got = await client.collect("healthy")
    await client.close()
    return got.ends


async def test_req_id_over_128_bytes_is_refused(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    long_id = "é" * 65  # 130 bytes, 65 characters
    await client.audio(long_id, SECOND, end=True)
    err = await next_error(client)
    assert_invalid_request(err)
    assert "req_id" in err.message and "128" in err.message
    assert long_id not in err.message
    await client.interrupt("r" * 129)
    err = await next_error(client)
    assert_invalid_request(err)
    state = avatar_server.sessions[client.connection_id]
    assert all(len(r.encode()) <= 128 for r in state.requests)
    # The limit is inclusive and the session goes on.
    await client.audio("r" * 128, SECOND, end=True)
    assert (await client.collect("r" * 128)).ends == 1
    await client.close()


@pytest.mark.avatar_server(pace="realtime", max_request_audio_bytes=64_000)
async def test_audio_buffered_per_request_is_bounded(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    client = await connect(avatar_server, http)
    other = asyncio.create_task(healthy_session(avatar_server, http))
    await client.audio("big", SECOND)  # 32000 bytes: fine
    await client.audio("big", SECOND * 2)  # 96000 buffered ahead of playback: too much
    err = await next_error(client)
    assert_invalid_request(err)
    assert "64000" in err.message and "big" in err.message
    info = avatar_server.sessions[client.connection_id].requests["big"]
    assert (info.state, info.reason) == (PlaybackState.INTERRUPTED, "error")
    assert info.error is not None and "64000" in info.error
    # The healthy session in parallel was served, and this one goes on.
    assert await asyncio.wait_for(other, 10) == 1
    await client.audio("small", SECOND, end=True)
    assert (await client.collect("small")).ends == 1
    await client.close()


@pytest.mark.avatar_server(
    pace="fast", max_request_audio_bytes=400_000, max_connection_audio_bytes=500_000
)
async def test_audio_buffered_per_connection_is_bounded(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    avatar_server.faults.delay_frames(3.0)  # output stalls: ended requests queue up
    client = await connect(avatar_server, http)
    other = asyncio.create_task(healthy_session(avatar_server, http))
    await client.audio("a", SECOND * 10, end=True)  # 320000 bytes, under the request limit
    await client.audio("b", SECOND * 10, end=True)  # together over the connection limit
    err = await next_error(client)
    assert_invalid_request(err)
    assert "500000" in err.message and "connection" in err.message
    assert err.req_id == "b"
    assert await asyncio.wait_for(other, 10) == 1
    got = await client.collect("a")  # the first request still plays to its end
    assert got.ends == 1
    await client.close()


def test_buffer_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_request_audio_bytes"):
        DevServer(max_request_audio_bytes=0)
    with pytest.raises(ValueError, match="max_connection_audio_bytes"):
        DevServer(max_connection_audio_bytes=-1)
