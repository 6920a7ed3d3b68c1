"""Exactly-once delivery: 10,000 requests over 100 concurrent sessions (issue 14).

The local service numbers its frames: each animation payload carries its
0-based ``frame_index`` within the request (``avatarkit_animation.proto``),
and ``session_summaries()`` has the service's own count of frames sent per
request. Against those, for every request:

* completed: every frame the service sent reached the user once, in order,
  ``end`` once, on the last one;
* interrupted (at random points, seeded): ``stream()`` handles got a prefix,
  in order, no duplicate, no ``end`` (frames in flight after the interrupt
  are dropped by design); the callback API, which is not filtered, got every
  frame the service sent, in order, and ``end`` only if the service sent one.

Half the sessions use ``session.stream()`` with random chunking (odd sizes
included), half ``send_audio()`` in random even chunks with the callbacks.
The service runs in its fastest pace and the clips are short (0.04-0.24 s),
so the test is about delivery, not lip-sync. It prints its figures. A
smaller run goes through ``ChaosProxy`` with latency and jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from typing import Any

import pytest

from avatarkit import AnimationFrameEvent, AvatarSession, new_avatar_session
from avatarkit.devserver import DevServer, decode_animation
from avatarkit.testing import ChaosProxy
from tests._helpers import speech_pcm

SESSIONS = 100
REQUESTS_PER_SESSION = 100
SEED = 14
CLIP = speech_pcm(16000, 0.24)
FRAME_BYTES = 1280  # 40 ms of 16 kHz PCM
INTERRUPT_RATE = 0.15


def split(rng: random.Random, audio: bytes, *, even: bool) -> list[bytes]:
    """``audio`` in 1-5 random slices (even sizes when ``even``)."""
    cuts = sorted(rng.sample(range(1, len(audio)), rng.randint(0, 4)))
    if even:
        cuts = sorted({c & ~1 for c in cuts} - {0})
    return [audio[a:b] for a, b in zip([0, *cuts], [*cuts, len(audio)], strict=True)]


def clip(rng: random.Random) -> bytes:
    return CLIP[: FRAME_BYTES * rng.randint(1, 6) - rng.choice((0, 2, 640))]


def frame_indices(frames: list[AnimationFrameEvent]) -> list[int]:
    return [decode_animation(f.payload)["frame_index"] for f in frames]


class Outcome:
    """What the user got for one request."""

    __slots__ = ("api", "frames", "interrupted", "req_id")

    def __init__(self, api: str, req_id: str | None, interrupted: bool) -> None:
        self.api = api
        self.req_id = req_id
        self.interrupted = interrupted
        self.frames: list[AnimationFrameEvent] = []


async def stream_worker(session: AvatarSession, rng: random.Random, requests: int) -> list[Outcome]:
    """Requests through ``session.stream()`` handles; some interrupted after k frames."""
    out = []
    for _ in range(requests):
        req = session.stream(split(rng, clip(rng), even=False))
        stop_after = rng.randint(0, 4) if rng.random() < INTERRUPT_RATE else None
        frames: list[AnimationFrameEvent] = []
        if stop_after == 0:
            await req.interrupt()
        else:
            async for frame in req:
                frames.append(frame)
                if len(frames) == stop_after:
                    await req.interrupt()  # a no-op if the end frame already arrived
                    break
        frames += [f async for f in req]  # what was received before it resolved
        summary = await asyncio.wait_for(req.done(), 10)
        outcome = Outcome("stream", summary.req_id, summary.interrupted)
        outcome.frames = frames
        assert summary.frames == len(frames)
        out.append(outcome)
    return out


async def callback_worker(
    session: AvatarSession,
    rng: random.Random,
    got: dict[str, list[AnimationFrameEvent]],
    ended: dict[str, asyncio.Event],
    requests: int,
) -> list[Outcome]:
    """Requests through ``send_audio()``; frames through ``on_animation`` (into ``got``)."""
    out = []
    for _ in range(requests):
        chunks = split(rng, clip(rng), even=True)
        # interrupt after 1..all chunks (after the end too): something is always sent
        interrupt_at = rng.randint(1, len(chunks)) if rng.random() < INTERRUPT_RATE else None
        req_id = None
        for i, chunk in enumerate(chunks):
            if i == interrupt_at:
                break
            req_id = await session.send_audio(chunk, end=i == len(chunks) - 1)
        assert req_id is not None
        if interrupt_at is not None:
            await session.interrupt()
        out.append(Outcome("callbacks", req_id, interrupt_at is not None))
    # A last request as a fence: once its end arrived, every earlier frame has.
    fence = await session.send_audio(CLIP[:FRAME_BYTES], end=True)
    await asyncio.wait_for(ended[fence].wait(), 10)
    return out


# (sessions, requests per session, proxy settings or None for a direct connection)
NETWORKS = {
    "direct": (SESSIONS, REQUESTS_PER_SESSION, None),
    # the same through ChaosProxy with latency and jitter, smaller
    "latency+jitter": (20, 30, {"latency": 0.005, "jitter": 0.01}),
}


@pytest.mark.parametrize("network", list(NETWORKS))
async def test_every_frame_arrives_exactly_once(avatar_server: DevServer, network: str) -> None:
    sessions_n, requests, chaos = NETWORKS[network]
    async with contextlib.AsyncExitStack() as stack:
        kwargs = avatar_server.session_kwargs()
        if chaos is not None:
            proxy = ChaosProxy("127.0.0.1", avatar_server.port, seed=SEED, **chaos)
            await stack.enter_async_context(proxy)
            kwargs["console_endpoint_url"] = proxy.url(avatar_server.console_url)
            kwargs["ingress_endpoint_url"] = proxy.url(avatar_server.ingress_url)
        await run_and_check(avatar_server, kwargs, sessions_n, requests, network)


async def run_and_check(
    server: DevServer, base: dict[str, Any], sessions_n: int, requests: int, network: str
) -> None:
    began = time.monotonic()
    got: dict[str, list[AnimationFrameEvent]] = defaultdict(list)

    ended: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def on_animation(event: AnimationFrameEvent) -> None:
        got[event.req_id].append(event)
        if event.end:
            ended[event.req_id].set()

    errors: list[Exception] = []
    async with contextlib.AsyncExitStack() as stack:
        kwargs: list[dict[str, Any]] = [
            dict(on_error=errors.append, **({"on_animation": on_animation} if i % 2 else {}))
            for i in range(sessions_n)
        ]
        sessions = [new_avatar_session(**base, **kw) for kw in kwargs]
        await asyncio.gather(*(stack.enter_async_context(s) for s in sessions))
        opened = time.monotonic()
        work = [
            callback_worker(s, random.Random(SEED + i), got, ended, requests)
            if i % 2
            else stream_worker(s, random.Random(SEED + i), requests)
            for i, s in enumerate(sessions)
        ]
        results = await asyncio.wait_for(asyncio.gather(*work), 120)
        ran = time.monotonic()
        # The service's own counts, read while every session is still live.
        sent = {
            r["req_id"]: (r["frames"], r["ended"])
            for s in server.session_summaries()
            for r in s["requests"]
        }
    assert errors == []
    outcomes = [o for batch in results for o in batch]
    completed = interrupted = frames_checked = 0
    for o in outcomes:
        frames = got[o.req_id] if o.api == "callbacks" else o.frames
        if o.req_id is None:  # interrupted before its first audio: nothing sent
            assert o.interrupted and frames == []
            interrupted += 1
            continue
        n, did_end = sent[o.req_id]
        where = f"{o.api} request {o.req_id}"
        assert {f.req_id for f in frames} <= {o.req_id}, where
        indices = frame_indices(frames)
        frames_checked += len(frames)
        ends = [f.end for f in frames]
        if o.api == "callbacks" or not o.interrupted:
            # everything the service sent, once, in order; end once, last, iff it ended
            assert indices == list(range(n)), (where, indices, n)
            assert ends == [False] * (n - 1) + [True] if did_end else not any(ends), where
            assert did_end or o.interrupted, where
        else:
            # a prefix of what the service sent, in order, no duplicate, no end
            assert indices == list(range(len(frames))) and len(frames) <= n, (where, indices, n)
            assert not any(ends), where
        if o.interrupted:
            interrupted += 1
        else:
            completed += 1
    assert len(outcomes) == sessions_n * requests
    assert completed > 0.7 * len(outcomes) and interrupted > 0.05 * len(outcomes)
    print(
        f"\nexactly-once ({network}): {len(outcomes)} requests ({completed} completed, "
        f"{interrupted} interrupted) on {sessions_n} sessions, {frames_checked} frames checked; "
        f"open {opened - began:.1f} s, requests {ran - opened:.1f} s, "
        f"total {time.monotonic() - began:.1f} s"
    )
