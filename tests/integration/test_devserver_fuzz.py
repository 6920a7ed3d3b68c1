"""Local avatar service under fuzzed WebSocket messages (issue 14).

Hostile clients, over real loopback WebSockets, send random bytes, mutated and
truncated client messages (from the seed corpus of ``tests/_fuzz_targets.py``),
oversized messages, text and empty frames, and damaged Ogg Opus audio, before
and after configuring. The service must answer each with a ServerError it
documents (never an internal error, code 13 / close 1011, never a traceback in
its log) and keep serving a well-behaved session alongside, request after
request. Seeded, so a failure reproduces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import aiohttp
import pytest

from avatarkit.devserver import DevServer
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import encode_audio_input
from tests._fuzz_targets import client_messages, mutate, mutate_ogg_pages, ogg_streams

MAX_MESSAGE = 64 * 1024
SECOND = b"\x01\x00" * 16000
HOSTILE = 96  # connections, 8 at a time


def hostile_messages(rng: random.Random) -> list[bytes | str]:
    """One to three bad messages: random, mutated, truncated, oversized, text, empty."""
    seeds = client_messages()
    out: list[bytes | str] = []
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(6)
        seed = rng.choice(seeds)
        if kind == 0:
            out.append(rng.randbytes(rng.randrange(1, 400)))
        elif kind == 1:
            out.append(mutate(rng, seed, rng.randrange(1, 8)))
        elif kind == 2:
            out.append(seed[: rng.randrange(len(seed))])
        elif kind == 3:
            out.append(
                encode_audio_input("big", b"\x00" * (MAX_MESSAGE + rng.randrange(1, 99)), True)
            )
        elif kind == 4:
            out.append(rng.randbytes(rng.randrange(1, 60)).hex())
        else:
            out.append(b"")
    return out


async def hostile(server: DevServer, http: aiohttp.ClientSession, seed: int) -> list[pb.Message]:
    """One hostile connection; what the service answered."""
    rng = random.Random(seed)
    token = await fetch_token(http, server.api_root)
    client = await RawClient.connect(http, server.ingress_url, token=token)
    answers: list[pb.Message] = []
    try:
        mode = rng.randrange(3)
        if mode == 1:
            await client.configure()
        elif mode == 2:  # damaged Ogg Opus audio into the service's decoder
            await client.configure(24000, audio_format=1)
            ogg = mutate_ogg_pages(rng, rng.choice(ogg_streams()))
            if rng.random() < 0.5:
                ogg = mutate(rng, ogg, rng.randrange(1, 4))
            await client.audio("ogg", ogg, end=True)
        if mode != 2:
            for message in hostile_messages(rng):
                if client.ws.closed:
                    break
                if isinstance(message, str):
                    await client.ws.send_str(message)
                else:
                    await client.send(message)
        with contextlib.suppress(asyncio.TimeoutError):
            while (msg := await client.recv(timeout=0.5)) is not None:
                answers.append(msg)
        assert client.close_code != 1011, f"seed {seed}: internal error close"
    finally:
        await client.close()
    return answers


async def healthy_request(client: RawClient, n: int) -> None:
    await client.audio(f"healthy-{n}", SECOND, end=True)
    got = await client.collect(f"healthy-{n}", timeout=10)
    assert got.ends == 1, f"healthy request {n}: {got.ends} ends, errors {got.errors}"
    assert len(got.animations) >= 25
    assert not got.errors


@pytest.mark.avatar_server(max_message_size=MAX_MESSAGE)
async def test_service_survives_fuzzed_messages_and_keeps_serving(
    avatar_server: DevServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="avatarkit")
    token = await fetch_token(http, avatar_server.api_root)
    healthy = await RawClient.connect(http, avatar_server.ingress_url, token=token)
    await healthy.configure()
    answers: list[pb.Message] = []
    for batch in range(HOSTILE // 8):
        results = await asyncio.gather(
            *(hostile(avatar_server, http, 1000 * batch + i) for i in range(8))
        )
        answers.extend(msg for result in results for msg in result)
        await healthy_request(healthy, batch)
    await healthy.close()

    errors = [m.server_error for m in answers if m.type == pb.MESSAGE_SERVER_ERROR]
    assert errors, "the hostile clients got no ServerError at all"
    assert {e.code for e in errors} <= {3, 400}, sorted({(e.code, e.message) for e in errors})
    assert any("too big" in e.message for e in errors)
    assert any("invalid protobuf" in e.message for e in errors)
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    # Every hostile connection was closed and recorded, none left open.
    for _ in range(250):  # at most 5 s
        if not avatar_server.sessions:
            break
        await asyncio.sleep(0.02)
    assert not avatar_server.sessions, list(avatar_server.sessions)
    assert len(avatar_server.closed_sessions) >= HOSTILE
