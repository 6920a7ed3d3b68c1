"""Send one speech clip to an avatar, count the animation frames, close.

    python examples/single_audio_clip/main.py [AUDIO] [--sample-rate N] [--fast]

With no AUDIO it sends the speech clip bundled with avatarkit (16 kHz, 13.6 s).
AUDIO may be WAV, raw s16le PCM (give --sample-rate) or Ogg Opus; it is resampled
to the nearest rate the service takes.

Runs against the hosted service when AVATARKIT_API_KEY, AVATARKIT_APP_ID,
AVATARKIT_AVATAR_ID, AVATARKIT_CONSOLE_ENDPOINT and AVATARKIT_INGRESS_ENDPOINT
are all set; otherwise it starts the local avatar service in this process, so it
works with no account. Audio goes out in 40 ms chunks at real-time pace, as a
live source would send it (``--fast``: no pacing, and a local service that
answers as fast as it computes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from importlib.resources import files

from avatarkit import AvatarSession, new_avatar_session

ENV = {
    "api_key": "AVATARKIT_API_KEY",
    "app_id": "AVATARKIT_APP_ID",
    "avatar_id": "AVATARKIT_AVATAR_ID",
    "console_endpoint_url": "AVATARKIT_CONSOLE_ENDPOINT",
    "ingress_endpoint_url": "AVATARKIT_INGRESS_ENDPOINT",
}
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


def bundled_clip() -> tuple[bytes, int]:
    """The 16 kHz mono s16le speech clip shipped with avatarkit."""
    return (files("avatarkit") / "data" / "speech_16000.pcm").read_bytes(), 16000


def read_clip(path: str, sample_rate: int | None) -> tuple[bytes, int]:
    """Any WAV / raw PCM / Ogg Opus file as mono s16le at a rate the service takes."""
    from avatarkit.audio import PCM_RATES
    from avatarkit.audio.files import nearest_supported_rate, read_audio_file, resample

    samples, rate = read_audio_file(path, sample_rate=sample_rate)
    target = nearest_supported_rate(rate, PCM_RATES)
    return resample(samples, rate, target).astype("<i2").tobytes(), target


async def send_clip(session: AvatarSession, pcm: bytes, sample_rate: int, realtime: bool) -> str:
    """Send ``pcm`` in 40 ms chunks, the last with ``end=True``; return the request id."""
    chunk = sample_rate * CHUNK_MS // 1000 * 2
    loop = asyncio.get_running_loop()
    start = loop.time()
    req_id = ""
    for i, offset in enumerate(range(0, len(pcm), chunk)):
        if realtime:  # one chunk per 40 ms of audio, without drift
            await asyncio.sleep(max(0.0, start + i * CHUNK_MS / 1000 - loop.time()))
        last = offset + chunk >= len(pcm)
        req_id = await session.send_audio(pcm[offset : offset + chunk], end=last)
    return req_id


async def run(pcm: bytes, sample_rate: int, *, fast: bool = False) -> int:
    """Stream one clip through a session; return the number of animation frames."""
    async with avatar_service("fast" if fast else "realtime") as credentials:
        session = new_avatar_session(
            **credentials,
            expire_at=datetime.now(timezone.utc) + timedelta(minutes=10),
            sample_rate=sample_rate,
        )
        async with session:  # token, WebSocket, handshake ... and close at the end
            print(f"connected: {session.connection_id}")
            started = time.monotonic()
            sender = asyncio.create_task(send_clip(session, pcm, sample_rate, not fast))
            frames = 0
            first_frame_s = 0.0

            async def receive() -> None:
                nonlocal frames, first_frame_s
                async for frame in session.frames():  # every animation message, in order
                    frames += 1
                    if frames == 1:
                        first_frame_s = time.monotonic() - started
                    if frame.end:  # the request's last frame
                        return

            duration = len(pcm) / 2 / sample_rate
            try:
                await asyncio.wait_for(receive(), timeout=2 * duration + 10)
            finally:
                req_id = await sender
    print(
        f"request {req_id}: {frames} frames for {duration:.2f} s of audio "
        f"(first after {first_frame_s * 1000:.0f} ms, {time.monotonic() - started:.1f} s in all)"
    )
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", help="WAV, raw PCM or Ogg Opus (default: bundled clip)")
    parser.add_argument("--sample-rate", type=int, help="rate of a raw PCM file")
    parser.add_argument("--fast", action="store_true", help="no real-time pacing")
    args = parser.parse_args()
    try:
        pcm, rate = read_clip(args.audio, args.sample_rate) if args.audio else bundled_clip()
    except (OSError, ValueError) as exc:
        parser.exit(1, f"error: {exc}\n")
    asyncio.run(run(pcm, rate, fast=args.fast))


if __name__ == "__main__":
    main()
