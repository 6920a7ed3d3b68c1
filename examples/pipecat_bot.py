"""A minimal Pipecat pipeline with an avatar: fake TTS -> AvatarService -> printing sink.

    pip install -e '.[pipecat]'
    python examples/pipecat_bot.py

A stand-in TTS turns one ``TTSSpeakFrame`` into 24 kHz speech (the clip
bundled with avatarkit, resampled), as a real TTS would: ``TTSStartedFrame``,
``TTSAudioRawFrame`` chunks in real time, ``TTSStoppedFrame``. The
``AvatarService`` streams that audio to the avatar service (resampled to the
session's 16 kHz) and pushes the animation downstream as
``AvatarAnimationFrame``s; the sink counts what arrives and prints a summary.

Runs against the hosted service when AVATARKIT_API_KEY, AVATARKIT_APP_ID,
AVATARKIT_AVATAR_ID, AVATARKIT_CONSOLE_ENDPOINT and AVATARKIT_INGRESS_ENDPOINT
are all set; otherwise it starts the local avatar service in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from importlib.resources import files

import numpy as np
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from avatarkit.integrations.pipecat import AvatarAnimationFrame, AvatarService

ENV = {
    "api_key": "AVATARKIT_API_KEY",
    "app_id": "AVATARKIT_APP_ID",
    "avatar_id": "AVATARKIT_AVATAR_ID",
    "console_endpoint_url": "AVATARKIT_CONSOLE_ENDPOINT",
    "ingress_endpoint_url": "AVATARKIT_INGRESS_ENDPOINT",
}
TTS_RATE = 24000
CHUNK_MS = 40
SECONDS = 3.0


@contextlib.asynccontextmanager
async def avatar_service() -> AsyncIterator[dict[str, str]]:
    """Credentials of the hosted service from the environment, else of a local one."""
    if all(os.environ.get(name) for name in ENV.values()):
        yield {key: os.environ[name] for key, name in ENV.items()}
        return
    from avatarkit.devserver import DevServer

    async with DevServer(host="127.0.0.1", port=0, pace="realtime") as server:
        print("(no AVATARKIT_* credentials: using a local avatar service)")
        yield {
            "api_key": server.api_key,
            "app_id": server.app_id,
            "avatar_id": server.avatar_id,
            "console_endpoint_url": server.console_url,
            "ingress_endpoint_url": server.ingress_url,
        }


def speech_24k(seconds: float) -> bytes:
    """The bundled 16 kHz clip's first ``seconds``, linearly resampled to 24 kHz."""
    pcm = (files("avatarkit") / "data" / "speech_16000.pcm").read_bytes()
    samples = np.frombuffer(pcm[: int(16000 * seconds) * 2], dtype="<i2").astype(np.float64)
    at = np.arange(int(len(samples) * TTS_RATE / 16000)) * 16000 / TTS_RATE
    return np.interp(at, np.arange(len(samples)), samples).astype("<i2").tobytes()


class FakeTTS(FrameProcessor):
    """Answers a ``TTSSpeakFrame`` with a TTS's frames, in real time."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, TTSSpeakFrame):
            await self.push_frame(frame, direction)
            return
        audio = speech_24k(SECONDS)
        step = TTS_RATE * 2 * CHUNK_MS // 1000
        await self.push_frame(TTSStartedFrame())
        for start in range(0, len(audio), step):
            chunk = audio[start : start + step]
            await self.push_frame(TTSAudioRawFrame(chunk, TTS_RATE, 1))
            await asyncio.sleep(CHUNK_MS / 1000)
        await self.push_frame(TTSStoppedFrame())
        await self.push_frame(EndFrame())  # one utterance, then the bot ends


class PrintingSink(FrameProcessor):
    """Counts the frames that reach the end of the pipeline and prints the avatar's."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.counts[type(frame).__name__] += 1
        if isinstance(frame, AvatarAnimationFrame) and frame.end:
            print(f"request {frame.req_id}: last animation frame")
        await self.push_frame(frame, direction)


async def run() -> Counter[str]:
    """Run the bot for one utterance; return how many frames of each type reached the sink."""
    async with avatar_service() as credentials:
        avatar = AvatarService(
            **credentials,
            expire_at=datetime.now(timezone.utc) + timedelta(minutes=10),
            sample_rate=16000,
        )
        sink = PrintingSink()
        worker = PipelineWorker(Pipeline([FakeTTS(), avatar, sink]))
        await worker.queue_frame(TTSSpeakFrame("Hello from the avatar."))
        runner = WorkerRunner()
        await runner.add_workers(worker)
        await asyncio.wait_for(runner.run(), SECONDS * 3 + 30)  # ends after the EndFrame
    counts = sink.counts
    print(
        f"{counts['AvatarAnimationFrame']} animation frames, "
        f"{counts['TTSAudioRawFrame']} TTS audio frames passed through"
    )
    return counts


if __name__ == "__main__":
    asyncio.run(run())
