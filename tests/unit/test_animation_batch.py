"""The analysis of many requests' frames in one block (the service's frame wheel).

``analyze_blocks`` must give every request exactly the frames it would get
alone, whatever else is in the block; the weights a large block encodes at
once must be the bytes ``encode_frame`` writes for one frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from avatarkit.devserver._animation import (
    AnimationAnalyzer,
    AnimationFrame,
    analyze_blocks,
    encode_frame,
)
from avatarkit.devserver._features import CHUNK_ROWS, round3
from avatarkit.devserver._packed import PackedFrame
from tests._helpers import speech_pcm

CHUNK = 640  # 40 ms at 16 kHz


def _speech(rate: int = 16000) -> np.ndarray:
    return np.frombuffer(speech_pcm(rate), dtype="<i2").astype(np.int16)


def _fields(frame: AnimationFrame) -> tuple[object, ...]:
    return (frame.frame_index, frame.timestamp_ms, frame.viseme, frame.blendshapes)


@pytest.mark.parametrize("lazy", [False, True], ids=["frames", "packed-frames"])
def test_a_request_gets_the_same_frames_alone_or_in_a_block_of_many(lazy: bool) -> None:
    pcm = _speech()
    n = 12
    alone = [AnimationAnalyzer(16000, f"seed-{i}") for i in range(n)]
    together = [AnimationAnalyzer(16000, f"seed-{i}") for i in range(n)]
    for step in range(60):
        # each request at its own place in the clip, some with 2 frames this step
        chunks = []
        for i in range(n):
            size = CHUNK * (2 if (i + step) % 5 == 0 else 1)
            off = (i * 4001 + step * CHUNK * 2) % (pcm.size - size)
            chunks.append(pcm[off : off + size])
        expected = [a.push(c) for a, c in zip(alone, chunks, strict=True)]
        blocks = [a.take(c) for a, c in zip(together, chunks, strict=True)]
        got = analyze_blocks([b for b in blocks if b is not None], lazy=lazy)
        if not lazy:
            assert got == expected
        assert [[_fields(f) for f in fs] for fs in got] == [
            [_fields(f) for f in fs] for fs in expected
        ]
        for frames_a, frames_b in zip(got, expected, strict=True):
            assert [encode_frame(f) for f in frames_a] == [encode_frame(f) for f in frames_b]


def test_requests_of_different_rates_share_a_block() -> None:
    a16, a24 = AnimationAnalyzer(16000, "x"), AnimationAnalyzer(24000, "y")
    s16, s24 = _speech(16000)[:16000], _speech(24000)[:24000]
    got = analyze_blocks([a16.take(s16), a24.take(s24)])  # type: ignore[list-item]
    assert got[0] == AnimationAnalyzer(16000, "x").push(s16)
    assert got[1] == AnimationAnalyzer(24000, "y").push(s24)


def test_packed_weights_are_the_bytes_encode_frame_writes() -> None:
    # 2 s at once: a large block, encoded with the frames; 40 ms at a time: small
    # blocks, encoded by encode_frame from the weights.
    pcm = _speech()[:32000]
    big = AnimationAnalyzer(16000, "s").push(pcm)
    assert all(f.packed_weights is not None for f in big)
    small_analyzer = AnimationAnalyzer(16000, "s")
    small = [f for i in range(0, pcm.size, CHUNK) for f in small_analyzer.push(pcm[i : i + CHUNK])]
    assert all(f.packed_weights is None for f in small)
    assert big == small  # the same weights to the last bit, computed either way
    assert [encode_frame(f) for f in big] == [encode_frame(f) for f in small]


@pytest.mark.parametrize("seed", range(3))
def test_round3_rounds_like_python(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        (
            rng.random(20000),
            (np.arange(2000) + 0.5) / 1000.0,  # halves: the hard cases
            np.array([0.0, 1.0, 0.0625, 0.1235, 0.2345, 0.9995, 0.0005]),
        )
    )
    values = np.clip(values, 0.0, 1.0)
    got = round3(values.reshape(-1, 1)).ravel().tolist()
    assert got == [round(v, 3) for v in values.tolist()]


def test_a_block_of_more_rows_than_one_chunk_matches_each_request_alone() -> None:
    # features() computes a large block CHUNK_ROWS rows at a time: the pieces
    # must come back in order, each row as it would be alone.
    pcm = _speech()
    n = 2 * CHUNK_ROWS + 7
    alone = [AnimationAnalyzer(16000, f"seed-{i}") for i in range(n)]
    together = [AnimationAnalyzer(16000, f"seed-{i}") for i in range(n)]
    for step in range(3):
        chunks = [pcm[(i * 977 + step * CHUNK) % (pcm.size - CHUNK) :][:CHUNK] for i in range(n)]
        expected = [a.push(c) for a, c in zip(alone, chunks, strict=True)]
        blocks = [a.take(c) for a, c in zip(together, chunks, strict=True)]
        assert analyze_blocks([b for b in blocks if b is not None]) == expected


def test_a_packed_frame_builds_its_blendshapes_only_when_read() -> None:
    # The frame wheel's frames: encoded at once, the dict only for a viewer page.
    analyzers = [AnimationAnalyzer(16000, f"s{i}") for i in range(10)]
    pcm = _speech()
    blocks = [a.take(pcm[i * CHUNK : (i + 1) * CHUNK]) for i, a in enumerate(analyzers)]
    frames = [fs[0] for fs in analyze_blocks(blocks, lazy=True)]  # type: ignore[arg-type]
    frame = frames[3]
    assert isinstance(frame, PackedFrame) and isinstance(frame, AnimationFrame)
    slot = AnimationFrame.__dict__["blendshapes"]
    with pytest.raises(AttributeError):
        slot.__get__(frame)  # not built yet
    shapes = frame.blendshapes
    assert slot.__get__(frame) is shapes is frame.blendshapes  # built once, kept
    assert list(shapes) == list(AnimationAnalyzer(16000, "x").push(pcm[:CHUNK])[0].blendshapes)
    frame.blendshapes = {"jawOpen": 0.5}
    frame.packed_weights = None
    assert encode_frame(frame) == encode_frame(AnimationFrame(frame.frame_index,
        frame.timestamp_ms, frame.viseme, {"jawOpen": 0.5}))  # fmt: skip
