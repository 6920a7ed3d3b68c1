"""End-to-end request: real audio in, animation frames out, until the last frame.

Same variables as the published SDK's test (``AVATARKIT_E2E_AUDIO_FORMAT``,
``..._USE_INTERNAL_OGG_OPUS_ENCODER``, ``..._AUDIO_PATH``, ``..._SAMPLE_RATE``,
``..._BITRATE``, ``..._CHUNK_SIZE``, ``..._TIMEOUT_SECONDS``). Without a hosted
endpoint it runs against the local avatar service, over every format variant.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from avatarkit import AudioFormat, OggOpusEncoderConfig, new_avatar_session
from tests._e2e import e2e_target, hosted_configured
from tests._helpers import FIXTURES

pytestmark = pytest.mark.e2e

VARIANTS = [
    ("pcm_s16le", False),
    ("ogg_opus", False),
    ("ogg_opus", True),
]


def _variants() -> list[tuple[str, bool]]:
    if hosted_configured():
        fmt = os.environ.get("AVATARKIT_E2E_AUDIO_FORMAT", "pcm_s16le")
        internal = os.environ.get("AVATARKIT_E2E_USE_INTERNAL_OGG_OPUS_ENCODER") == "1"
        return [(fmt, internal)]
    return VARIANTS


@pytest.mark.parametrize(("audio_format", "internal_encoder"), _variants())
async def test_send_audio_receives_animation_frames(
    audio_format: str, internal_encoder: bool
) -> None:
    env = os.environ
    ogg_input = audio_format == "ogg_opus" and not internal_encoder
    default_path = FIXTURES / ("speech_24000.ogg" if ogg_input else "speech_16000.pcm")
    path = (
        Path(env.get("AVATARKIT_E2E_AUDIO_PATH", default_path))
        if hosted_configured()
        else default_path
    )
    rate = int(env.get("AVATARKIT_E2E_SAMPLE_RATE", 24000 if ogg_input else 16000))
    bitrate = int(env.get("AVATARKIT_E2E_BITRATE", 32000))
    chunk_size = int(env.get("AVATARKIT_E2E_CHUNK_SIZE", 4096))
    timeout = float(env.get("AVATARKIT_E2E_TIMEOUT_SECONDS", 45))
    audio = path.read_bytes()

    async with e2e_target() as target:
        if target.hosted and not target.avatar_id:
            pytest.skip("AVATARKIT_E2E_AVATAR_ID is required for the hosted request test")
        frames: list[tuple[int, bool]] = []
        errors: list[Exception] = []
        done = asyncio.Event()

        def on_frame(data: bytes, last: bool) -> None:
            frames.append((len(data), last))
            if last:
                done.set()

        session = new_avatar_session(
            api_key=target.api_key,
            app_id=target.app_id,
            avatar_id=target.avatar_id,
            console_endpoint_url=target.console_endpoint_url,
            ingress_endpoint_url=target.ingress_endpoint_url,
            expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
            sample_rate=rate,
            bitrate=bitrate if audio_format == "ogg_opus" else 0,
            audio_format=AudioFormat(audio_format),
            ogg_opus_encoder=OggOpusEncoderConfig() if internal_encoder else None,
            transport_frames=on_frame,
            on_error=errors.append,
        )
        async with session:
            if ogg_input:
                for start in range(0, len(audio), chunk_size):
                    await session.send_audio(audio[start : start + chunk_size], end=False)
                await session.send_audio(b"", end=True)
            else:
                await session.send_audio(audio, end=True)
            await asyncio.wait_for(done.wait(), timeout)
        assert not errors
        assert frames and frames[-1][1] is True
        assert sum(1 for _, last in frames if last) == 1
        if not target.hosted:
            samples = len(audio) // 2 if not ogg_input else None
            if samples is not None:
                assert len(frames) == -(-samples * 25 // rate)
