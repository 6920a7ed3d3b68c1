"""The built-in Ogg Opus encoder writes the granule positions avatarkit 0.1.7 writes.

RFC 7845 section 4: a page's granule position includes the pre-skip. 0.1.7
writes ``pre_skip + input samples so far * 48000 / rate`` on every audio page
(PROTOCOL.md 6), for the first request of a session exactly as for later ones.
"""

from __future__ import annotations

import asyncio

import pytest

from avatarkit import AudioFormat, OggOpusEncoderConfig, new_avatar_session
from avatarkit.audio.ogg import OggPageReader, OpusHead
from avatarkit.devserver import DevServer

pytest.importorskip("av")

from avatarkit.audio.opus import OggOpusEncoder
from tests._helpers import FIXTURES

RATE = 16000
FRAME = RATE // 50  # 20 ms


def expected_granules(pre_skip: int, samples: int, pages: int) -> list[int]:
    """Every audio page: pre-skip + input so far at 48 kHz; the last one the whole input."""
    scale = 48000 // RATE
    granules = [pre_skip + min(k * FRAME, samples) * scale for k in range(1, pages)]
    return [*granules, pre_skip + samples * scale]


def audio_granules(stream: bytes) -> tuple[int, list[int]]:
    pages = OggPageReader().feed(stream)
    pre_skip = OpusHead.parse(pages[0].packets[0]).pre_skip
    return pre_skip, [p.granule_position for p in pages[2:]]


def test_encoder_granules_include_pre_skip_on_the_first_and_later_streams() -> None:
    pcm = (FIXTURES / "speech_16000.pcm").read_bytes()[: (RATE + 123) * 2]
    encoder = OggOpusEncoder(RATE)
    for _ in range(3):  # the first stream and later ones (fresh serial each)
        stream = b"".join(encoder.encode(pcm[i : i + 3000]) for i in range(0, len(pcm), 3000))
        stream += encoder.finish()
        pre_skip, granules = audio_granules(stream)
        assert pre_skip == 312
        assert granules[:2] == [1272, 2232]
        assert granules == expected_granules(pre_skip, len(pcm) // 2, len(granules))


@pytest.mark.avatar_server(pace="fast")
async def test_the_service_receives_the_same_granules_on_every_request(
    avatar_server: DevServer,
) -> None:
    pcm = (FIXTURES / "speech_16000.pcm").read_bytes()[: RATE // 2 * 2]  # 0.5 s
    sent: list[bytes] = []
    session = new_avatar_session(
        **avatar_server.session_kwargs(
            audio_format=AudioFormat.OGG_OPUS,
            ogg_opus_encoder=OggOpusEncoderConfig(),
            on_encoded_audio=lambda req_id, data: sent.append(data),
        )
    )
    async with session:
        for _ in range(2):
            for i in range(0, len(pcm), 1600):
                await session.send_audio(pcm[i : i + 1600], end=i + 1600 >= len(pcm))
        await asyncio.sleep(0)
    assert len(sent) == 2
    first, later = (audio_granules(stream) for stream in sent)
    assert first == later
    pre_skip, granules = first
    assert granules[0] == pre_skip + FRAME * 3 == 1272
    assert granules == expected_granules(pre_skip, len(pcm) // 2, len(granules))
