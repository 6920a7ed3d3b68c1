"""Serve concurrent speech requests from a pool of avatar sessions that survives faults.

    python examples/connection_pool/main.py [--sessions 3] [--rounds 3]
                                            [--requests 6] [--clip-s 2.0] [--fast]
                                            [--inject-drop]

Opening a session costs a token call, a WebSocket and a handshake, so a server
that animates many short utterances keeps a few sessions open in an
``avatarkit.pool.SessionPool`` and leases each request an idle one. A lease is
exclusive (a new request on a busy session would preempt the one playing), so
requests beyond the pool's size wait for a session to come free; the lease's
``frames()`` carries exactly the frames of its own requests. A session the
service closes (idle timeout, duration limit, network) is replaced in the
background; a request caught on it fails with a retryable error and is sent
again on another session.

Each round streams ``--requests`` requests at once, each a ``--clip-s`` slice
of the bundled speech clip sent in 40 ms chunks, and prints requests, frames,
retries and the median time to first frame. ``--inject-drop`` has the local
service drop one connection mid-request in the second round (the first if
there is only one), to show the retry and the replacement. Runs against the
hosted service when the AVATARKIT_* variables are all set; otherwise it starts
a local avatar service in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from avatarkit import AvatarSDKError
from avatarkit.pool import SessionLease, SessionPool

ENV = {
    "api_key": "AVATARKIT_API_KEY",
    "app_id": "AVATARKIT_APP_ID",
    "avatar_id": "AVATARKIT_AVATAR_ID",
    "console_endpoint_url": "AVATARKIT_CONSOLE_ENDPOINT",
    "ingress_endpoint_url": "AVATARKIT_INGRESS_ENDPOINT",
}
SAMPLE_RATE = 16000
CHUNK_MS = 40
RETRIES = 1  # times a request is sent again after its session failed mid-request


@contextlib.asynccontextmanager
async def avatar_service(pace: str = "realtime") -> AsyncIterator[tuple[dict[str, Any], Any]]:
    """Credentials of the hosted service from the environment, else of a local one.

    Also yields the local service (for fault injection), or ``None``.
    """
    if all(os.environ.get(name) for name in ENV.values()):
        yield {key: os.environ[name] for key, name in ENV.items()}, None
        return
    from avatarkit.devserver import DevServer

    async with DevServer(host="127.0.0.1", port=0, pace=pace) as server:
        print(f"(no AVATARKIT_* credentials: using a local avatar service, {pace} pace)")
        credentials: dict[str, Any] = {
            "api_key": server.api_key,
            "app_id": server.app_id,
            "avatar_id": server.avatar_id,
            "console_endpoint_url": server.console_url,
            "ingress_endpoint_url": server.ingress_url,
        }
        yield credentials, server


@dataclass
class Request:
    """One request: the attempt that got (or failed to get) its frames."""

    sent_at: float = field(default_factory=time.monotonic)
    frames: int = 0
    first_frame_at: float | None = None
    retries: int = 0
    error: Exception | None = None


async def stream(lease: SessionLease, pcm: bytes, realtime: bool, request: Request) -> None:
    """Send ``pcm`` in 40 ms chunks while counting the lease's frames, up to ``end``."""

    async def receive() -> None:
        async for frame in lease.frames():
            request.frames += 1
            if request.first_frame_at is None:
                request.first_frame_at = time.monotonic()
            if frame.end:
                return

    receiver = asyncio.create_task(receive())
    try:
        chunk = SAMPLE_RATE * CHUNK_MS // 1000 * 2
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, offset in enumerate(range(0, len(pcm), chunk)):
            if realtime:
                await asyncio.sleep(max(0.0, start + i * CHUNK_MS / 1000 - loop.time()))
            last = offset + chunk >= len(pcm)
            await lease.send_audio(pcm[offset : offset + chunk], end=last)
        await receiver
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)


async def serve(pool: SessionPool, pcm: bytes, realtime: bool, timeout: float) -> Request:
    """One request on a leased session, sent again if its session failed mid-way."""
    request = Request()
    for attempt in range(RETRIES + 1):
        try:
            async with pool.session(timeout=timeout) as lease:
                request = Request(retries=attempt)
                await asyncio.wait_for(stream(lease, pcm, realtime, request), timeout)
            return request
        except AvatarSDKError as error:  # retryable: the session dropped, hit its limit, ...
            request.error = error
            if not error.retryable:
                break
        except Exception as error:  # a timeout, or the pool stopped: reported, not fatal
            request.error = error
            break
    return request


@dataclass
class RoundSummary:
    round: int
    requests: int
    failed: int
    retried: int
    frames: int
    expected_frames: int
    p50_first_frame_ms: float | None
    wall_s: float

    def __str__(self) -> str:
        p50 = "n/a" if self.p50_first_frame_ms is None else f"{self.p50_first_frame_ms:.0f} ms"
        return (
            f"round {self.round}: {self.requests} requests ({self.failed} failed, "
            f"{self.retried} retried), {self.frames}/{self.expected_frames} frames, "
            f"p50 time to first frame {p50}, {self.wall_s:.2f} s"
        )


def clips(count: int, clip_s: float) -> list[bytes]:
    """``count`` slices of the bundled 16 kHz speech clip, ``clip_s`` seconds each."""
    pcm = (files("avatarkit") / "data" / "speech_16000.pcm").read_bytes()
    size = min(len(pcm), int(clip_s * SAMPLE_RATE) * 2)
    room = len(pcm) - size
    starts = [room * i // max(1, count) // 2 * 2 for i in range(count)]
    return [pcm[start : start + size] for start in starts]


async def run(
    *,
    sessions: int = 3,
    rounds: int = 3,
    requests: int = 6,
    clip_s: float = 2.0,
    fast: bool = False,
    inject_drop: bool = False,
) -> list[RoundSummary]:
    """Serve ``rounds`` rounds of ``requests`` concurrent requests; one summary each."""
    summaries: list[RoundSummary] = []
    drop_round = min(2, rounds)
    async with avatar_service("fast" if fast else "realtime") as (credentials, server):
        if inject_drop and server is None:
            print("(--inject-drop needs the local avatar service; ignored)")
            inject_drop = False
        pool = SessionPool(
            sessions,
            session_ttl=3600,  # each new session's token: valid for an hour from its opening
            backoff_initial=0.1,
            sample_rate=SAMPLE_RATE,
            **credentials,
        )
        async with pool:
            print(f"pool of {sessions} sessions open")
            for number in range(1, rounds + 1):
                if inject_drop and number == drop_round:
                    print(f"(round {number}: the service drops one connection mid-request)")
                    server.faults.drop_connection(after_frames=5)
                batch = clips(requests, clip_s)
                started = time.monotonic()
                done = await asyncio.gather(
                    *(serve(pool, pcm, not fast, timeout=2 * clip_s + 10) for pcm in batch)
                )
                firsts = [
                    (r.first_frame_at - r.sent_at) * 1000
                    for r in done
                    if r.first_frame_at is not None and r.error is None
                ]
                summary = RoundSummary(
                    round=number,
                    requests=len(done),
                    failed=sum(1 for r in done if r.error is not None),
                    retried=sum(1 for r in done if r.retries),
                    frames=sum(r.frames for r in done if r.error is None),
                    expected_frames=sum(math.ceil(len(p) / 2 * 25 / SAMPLE_RATE) for p in batch),
                    p50_first_frame_ms=statistics.median(firsts) if firsts else None,
                    wall_s=time.monotonic() - started,
                )
                summaries.append(summary)
                print(summary)
            if pool.stats.failures:
                with contextlib.suppress(TimeoutError, AvatarSDKError):
                    await pool.wait_ready(timeout=5)  # let a replacement in progress finish
                stats = pool.stats
                lost = ", ".join(f"{code}: {n}" for code, n in sorted(stats.failures.items()))
                print(
                    f"pool: {stats.replacements} session(s) replaced ({lost}); "
                    f"{stats.ready} of {stats.size} ready, {stats.leases} leases served"
                )
    return summaries


def main() -> None:
    parser = argparse.ArgumentParser(description="concurrent requests over a session pool")
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=6, help="concurrent requests per round")
    parser.add_argument("--clip-s", type=float, default=2.0, help="seconds of speech per request")
    parser.add_argument("--fast", action="store_true", help="no real-time pacing")
    parser.add_argument(
        "--inject-drop",
        action="store_true",
        help="have the local service drop a connection mid-request (shows the replacement)",
    )
    args = parser.parse_args()
    asyncio.run(
        run(
            sessions=args.sessions,
            rounds=args.rounds,
            requests=args.requests,
            clip_s=args.clip_s,
            fast=args.fast,
            inject_drop=args.inject_drop,
        )
    )


if __name__ == "__main__":
    main()
