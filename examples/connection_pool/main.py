"""Serve concurrent speech requests from a small pool of avatar sessions.

    python examples/connection_pool/main.py [--sessions 3] [--rounds 3]
                                            [--requests 6] [--clip-s 2.0] [--fast]

Opening a session costs a token call, a WebSocket and a handshake, so a server
that animates many short utterances keeps a few sessions open and hands each
request to an idle one. A session carries one request at a time here (a new
request on a busy session would preempt the one playing), so requests beyond
the pool's size wait for a session to come free. A session the service closed
(idle timeout, duration limit, network) is replaced on its next use.

Each round sends ``--requests`` requests at once, each a ``--clip-s`` slice of
the bundled speech clip, and prints requests, frames and the median time to
first frame. Runs against the hosted service when the AVATARKIT_* variables
are all set; otherwise it starts a local avatar service in this process.
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
from datetime import datetime, timedelta, timezone
from importlib.resources import files

from avatarkit import AnimationFrameEvent, AvatarSession, new_avatar_session

ENV = {
    "api_key": "AVATARKIT_API_KEY",
    "app_id": "AVATARKIT_APP_ID",
    "avatar_id": "AVATARKIT_AVATAR_ID",
    "console_endpoint_url": "AVATARKIT_CONSOLE_ENDPOINT",
    "ingress_endpoint_url": "AVATARKIT_INGRESS_ENDPOINT",
}
SAMPLE_RATE = 16000
CHUNK_MS = 40


@contextlib.asynccontextmanager
async def avatar_service(pace: str = "realtime") -> AsyncIterator[dict[str, str]]:
    """Credentials of the hosted service from the environment, else of a local one."""
    if all(os.environ.get(name) for name in ENV.values()):
        yield {key: os.environ[name] for key, name in ENV.items()}
        return
    from avatarkit.devserver import DevServer

    async with DevServer(host="127.0.0.1", port=0, pace=pace) as server:
        print(f"(no AVATARKIT_* credentials: using a local avatar service, {pace} pace)")
        yield {
            "api_key": server.api_key,
            "app_id": server.app_id,
            "avatar_id": server.avatar_id,
            "console_endpoint_url": server.console_url,
            "ingress_endpoint_url": server.ingress_url,
        }


@dataclass
class Request:
    """One request in flight on a pooled session."""

    sent_at: float = field(default_factory=time.monotonic)
    frames: int = 0
    first_frame_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: Exception | None = None


class PooledSession:
    """An avatar session plus the request it is serving."""

    def __init__(self, credentials: dict[str, str]) -> None:
        self.current: Request | None = None
        self.session: AvatarSession = new_avatar_session(
            **credentials,
            expire_at=datetime.now(timezone.utc) + timedelta(hours=1),
            sample_rate=SAMPLE_RATE,
            on_animation=self._on_animation,
            on_error=self._on_error,
            on_close=self._on_close,
        )

    async def open(self) -> PooledSession:
        await self.session.init()
        await self.session.start()
        return self

    def _on_animation(self, frame: AnimationFrameEvent) -> None:
        request = self.current
        if request is None:
            return
        request.frames += 1
        if request.first_frame_at is None:
            request.first_frame_at = time.monotonic()
        if frame.end:
            request.done.set()

    def _on_error(self, error: Exception) -> None:
        if self.current is not None and not self.current.done.is_set():
            self.current.error = error
            self.current.done.set()

    def _on_close(self) -> None:
        self._on_error(ConnectionError("the session closed during the request"))

    async def serve(self, pcm: bytes, realtime: bool, timeout: float) -> Request:
        """Send one clip and wait for its last frame."""
        request = self.current = Request()
        chunk = SAMPLE_RATE * CHUNK_MS // 1000 * 2
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            for i, offset in enumerate(range(0, len(pcm), chunk)):
                if realtime:
                    await asyncio.sleep(max(0.0, start + i * CHUNK_MS / 1000 - loop.time()))
                last = offset + chunk >= len(pcm)
                await self.session.send_audio(pcm[offset : offset + chunk], end=last)
            await asyncio.wait_for(request.done.wait(), timeout)
        except Exception as exc:  # a failed request is reported, not fatal to the pool
            request.error = request.error or exc
        finally:
            self.current = None
        return request


class SessionPool:
    """A fixed number of open sessions; ``acquire()`` lends an idle one."""

    def __init__(self, credentials: dict[str, str], size: int) -> None:
        self.credentials = credentials
        self.size = size
        self.idle: asyncio.Queue[PooledSession] = asyncio.Queue()
        self.all: list[PooledSession] = []
        self.reconnects = 0

    async def __aenter__(self) -> SessionPool:
        opened = await asyncio.gather(
            *(PooledSession(self.credentials).open() for _ in range(self.size))
        )
        for pooled in opened:
            self.all.append(pooled)
            self.idle.put_nowait(pooled)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(p.session.close() for p in self.all), return_exceptions=True)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[PooledSession]:
        pooled = await self.idle.get()
        try:
            if not pooled.session.is_open:  # closed by the service: replace it
                self.all.remove(pooled)
                await pooled.session.close()
                pooled = await PooledSession(self.credentials).open()
                self.all.append(pooled)
                self.reconnects += 1
            yield pooled
        finally:
            self.idle.put_nowait(pooled)


@dataclass
class RoundSummary:
    round: int
    requests: int
    failed: int
    frames: int
    expected_frames: int
    p50_first_frame_ms: float | None
    wall_s: float

    def __str__(self) -> str:
        p50 = "n/a" if self.p50_first_frame_ms is None else f"{self.p50_first_frame_ms:.0f} ms"
        return (
            f"round {self.round}: {self.requests} requests ({self.failed} failed), "
            f"{self.frames}/{self.expected_frames} frames, p50 time to first frame {p50}, "
            f"{self.wall_s:.2f} s"
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
) -> list[RoundSummary]:
    """Serve ``rounds`` rounds of ``requests`` concurrent requests; one summary each."""
    summaries: list[RoundSummary] = []
    async with (
        avatar_service("fast" if fast else "realtime") as credentials,
        SessionPool(credentials, sessions) as pool,
    ):
        print(f"pool of {sessions} sessions open")
        for number in range(1, rounds + 1):
            batch = clips(requests, clip_s)

            async def handle(pcm: bytes) -> Request:
                try:
                    async with pool.acquire() as pooled:
                        return await pooled.serve(pcm, not fast, timeout=2 * clip_s + 10)
                except Exception as exc:  # e.g. a replacement session failed to open
                    return Request(error=exc)

            started = time.monotonic()
            done = await asyncio.gather(*(handle(pcm) for pcm in batch))
            firsts = [
                (r.first_frame_at - r.sent_at) * 1000
                for r in done
                if r.first_frame_at is not None and r.error is None
            ]
            summary = RoundSummary(
                round=number,
                requests=len(done),
                failed=sum(1 for r in done if r.error is not None),
                frames=sum(r.frames for r in done),
                expected_frames=sum(math.ceil(len(p) / 2 * 25 / SAMPLE_RATE) for p in batch),
                p50_first_frame_ms=statistics.median(firsts) if firsts else None,
                wall_s=time.monotonic() - started,
            )
            summaries.append(summary)
            print(summary)
        if pool.reconnects:
            print(f"{pool.reconnects} sessions were replaced after the service closed them")
    return summaries


def main() -> None:
    parser = argparse.ArgumentParser(description="concurrent requests over a session pool")
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=6, help="concurrent requests per round")
    parser.add_argument("--clip-s", type=float, default=2.0, help="seconds of speech per request")
    parser.add_argument("--fast", action="store_true", help="no real-time pacing")
    args = parser.parse_args()
    asyncio.run(
        run(
            sessions=args.sessions,
            rounds=args.rounds,
            requests=args.requests,
            clip_s=args.clip_s,
            fast=args.fast,
        )
    )


if __name__ == "__main__":
    main()
