"""TTS path: client CPU per second of audio, ``stream()`` with resampling next to ``send_audio()``.

``PYTHONPATH=src python -m benchmarks.clients.tts --console URL --ingress URL``
(our SDK only; the driver runs it against the local service, ``--pace fast``).
One 16 kHz session; each request is the whole speech fixture, in three ways,
interleaved, ``--repeat`` times each:

- ``send_audio``: the 16 kHz clip cut into 40 ms chunks beforehand (not
  measured), each sent with ``await session.send_audio(chunk)``, the last with
  ``end=True``; then the wait for the ``end`` frame;
- ``stream_16k``: ``await session.stream(pcm16k, pace="fast").done()`` (the
  same audio through ``stream()``: chunking, the feeder task, the request
  handle; no resampling);
- ``stream_24k``: ``await session.stream(pcm24k, sample_rate=24000,
  pace="fast").done()`` (a 24 kHz TTS output resampled on the fly).

CPU is this process's ``time.process_time()`` over each request (the waits
for the service cost none); every way receives the same frames (one per
40 ms). The result (medians, µs of CPU per second of audio) is the last
stdout line, ``RESULT <json>``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import avatarkit
from benchmarks.common import API_KEY, APP_ID, AVATAR_ID, emit_result, install_event_loop

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
CHUNK = 1280  # 40 ms at 16 kHz, 16-bit mono


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    pcm16 = (FIXTURES / "speech_16000.pcm").read_bytes()
    pcm24 = (FIXTURES / "speech_24000.pcm").read_bytes()
    pcm16 = pcm16[: len(pcm16) // CHUNK * CHUNK]
    chunks = [pcm16[i : i + CHUNK] for i in range(0, len(pcm16), CHUNK)]
    seconds16 = len(pcm16) / 32000
    seconds24 = len(pcm24) / 48000
    loop = asyncio.get_running_loop()
    ended: list[asyncio.Future[None]] = []

    def on_frames(message: bytes, is_last: bool) -> None:
        if is_last and ended and not ended[-1].done():
            ended[-1].set_result(None)

    session = avatarkit.new_avatar_session(
        api_key=API_KEY,
        app_id=APP_ID,
        avatar_id=AVATAR_ID,
        console_endpoint_url=args.console,
        ingress_endpoint_url=args.ingress,
        expire_at=datetime.now(timezone.utc) + timedelta(hours=1),
        sample_rate=16000,
        transport_frames=on_frames,
    )

    async def send_audio() -> None:
        ended.append(loop.create_future())
        for chunk in chunks[:-1]:
            await session.send_audio(chunk)
        await session.send_audio(chunks[-1], end=True)
        await asyncio.wait_for(ended[-1], args.timeout)

    async def stream_16k() -> None:
        ended.append(loop.create_future())
        await session.stream(pcm16, pace="fast", end_timeout=args.timeout).done()

    async def stream_24k() -> None:
        ended.append(loop.create_future())
        req = session.stream(pcm24, sample_rate=24000, pace="fast", end_timeout=args.timeout)
        await req.done()

    ways = {"send_audio": (send_audio, seconds16), "stream_16k": (stream_16k, seconds16),
            "stream_24k": (stream_24k, seconds24)}  # fmt: skip
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    await session.init()
    await session.start()
    try:
        for r in range(args.warmup + args.repeat):
            for name, (run, seconds) in ways.items():
                c0 = time.process_time()
                await run()
                if r >= args.warmup:
                    cpu[name].append((time.process_time() - c0) / seconds)
    finally:
        await session.close()
    out: dict[str, Any] = {"repeat": args.repeat, "audio_s": round(seconds16, 3)}
    for name, values in cpu.items():
        us = [v * 1e6 for v in values]
        out[name] = {"us_per_audio_s": round(statistics.median(us), 1),
                     "min": round(min(us), 1), "max": round(max(us), 1)}  # fmt: skip
    base = out["send_audio"]["us_per_audio_s"]
    out["stream_24k_x_send_audio"] = round(out["stream_24k"]["us_per_audio_s"] / base, 3)
    out["stream_16k_x_send_audio"] = round(out["stream_16k"]["us_per_audio_s"] / base, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--console", required=True)
    p.add_argument("--ingress", required=True)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    p.add_argument("--repeat", type=int, default=7, help="measured requests per way")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured requests per way first")
    p.add_argument("--timeout", type=float, default=60.0, help="bound on each request (s)")
    args = p.parse_args(argv)
    loop = install_event_loop(args.loop)
    result = asyncio.run(measure(args))
    emit_result({"ok": True, "scenario": "tts", "loop": loop, **result,
                 "library": f"avatarkit {avatarkit.__version__}"})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
