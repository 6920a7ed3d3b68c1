"""Tests of the local service's audio -> animation analysis (avatarkit.devserver._animation)."""

from __future__ import annotations

import hashlib
import itertools
import math
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pytest

from avatarkit.devserver._animation import (
    BLENDSHAPE_NAMES,
    FRAME_MS,
    VISEMES,
    AnimationAnalyzer,
    AnimationFrame,
    decode_animation,
    encode_frame,
    frames_for_samples,
)
from avatarkit.proto import avatarkit_animation_pb2 as pb
from tests._helpers import FIXTURES, speech_pcm

PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
REQUIRED_SHAPES = {
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
}

Pcm = npt.NDArray[np.int16]


def load_pcm(name: str) -> Pcm:
    return np.fromfile(FIXTURES / name, dtype="<i2").astype(np.int16)


def speech(rate: int) -> Pcm:
    if rate == 12000:  # no fixture at 12 kHz: decimate the 24 kHz one (plain subsampling)
        return np.ascontiguousarray(speech(24000)[::2], dtype=np.int16)
    return np.frombuffer(speech_pcm(rate), dtype="<i2").astype(np.int16)


def analyze(
    pcm: Pcm, rate: int, seed: str = "", chunks: list[int] | None = None
) -> list[AnimationFrame]:
    analyzer = AnimationAnalyzer(rate, seed)
    frames: list[AnimationFrame] = []
    if chunks is None:
        frames += analyzer.push(pcm)
    else:
        pos = 0
        for size in chunks:
            frames += analyzer.push(pcm[pos : pos + size])
            pos += size
        assert pos == pcm.size
    frames += analyzer.flush()
    return frames


def random_chunks(total: int, rng: np.random.Generator, max_size: int) -> list[int]:
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(int(rng.integers(0, max_size + 1)))  # zero-length pushes included
    sizes[-1] -= sum(sizes) - total
    return sizes


def expected_frames(n_samples: int, rate: int) -> int:
    return math.ceil(Fraction(n_samples) / (Fraction(rate) * Fraction(FRAME_MS, 1000)))


def jaw(frames: list[AnimationFrame]) -> npt.NDArray[np.float64]:
    return np.array([f.blendshapes["jawOpen"] for f in frames])


# -- framing -------------------------------------------------------------------


@pytest.mark.parametrize("rate", [*PCM_RATES, 12000])
def test_frame_count_is_ceil_of_duration(rate: int) -> None:
    pcm = speech(rate)
    frame = Fraction(rate * FRAME_MS, 1000)
    lengths = {
        0,
        1,
        pcm.size,
        pcm.size - 1,
        int(frame) - 1,
        int(frame),
        int(frame) + 1,
        int(7 * frame),
        int(7 * frame) + 1,
        int(7 * frame) - 1,
        rate,  # exactly 1 s -> 25 frames
        rate + 3,
    }
    for n in sorted(lengths):
        frames = analyze(pcm[:n], rate)
        assert len(frames) == expected_frames(n, rate) == frames_for_samples(n, rate), n
        assert AnimationAnalyzer(rate).frames_for(n) == len(frames)
    assert len(analyze(pcm[:rate], rate)) == 25


@pytest.mark.parametrize("rate", [11025, 11111, 22051])
def test_frame_count_when_40ms_is_not_whole_samples(rate: int) -> None:
    # rate * 40 ms is fractional here (e.g. 444.44 samples at 11111 Hz): frame k
    # covers [round(k * rate * 0.04), round((k + 1) * rate * 0.04)).
    pcm = speech(44100)[: 3 * rate + 7]
    rng = np.random.default_rng(rate)
    for n in (0, 1, 443, 444, 445, 889, rate, 3 * rate + 7, int(rng.integers(1, pcm.size))):
        assert len(analyze(pcm[:n], rate)) == expected_frames(n, rate), n
    whole = analyze(pcm, rate)
    chunked = analyze(pcm, rate, chunks=random_chunks(pcm.size, rng, 1500))
    assert chunked == whole


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_push_returns_exactly_the_completed_frames(rate: int) -> None:
    pcm = speech(rate)[: 2 * rate]
    analyzer = AnimationAnalyzer(rate)
    rng = np.random.default_rng(1)
    received = 0
    got = 0
    for size in random_chunks(pcm.size, rng, rate // 10):
        new = analyzer.push(pcm[received : received + size])
        received += size
        # Frame k is complete once samples up to round((k + 1) * rate * 0.04) arrived.
        complete = sum(
            1
            for k in range(expected_frames(received, rate) + 1)
            if round(Fraction((k + 1) * rate * FRAME_MS, 1000)) <= received
        )
        assert [f.frame_index for f in new] == list(range(got, complete))
        got = complete
        assert analyzer.frames_emitted == complete
    tail = analyzer.flush()
    assert got + len(tail) == expected_frames(pcm.size, rate)
    assert len(tail) <= 1
    assert analyzer.flush() == []


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
def test_timestamps_are_40ms_apart_from_zero(rate: int) -> None:
    frames = analyze(speech(rate)[: 3 * rate + 5], rate)
    assert [f.frame_index for f in frames] == list(range(len(frames)))
    assert [f.timestamp_ms for f in frames] == [40 * i for i in range(len(frames))]


# -- determinism ---------------------------------------------------------------


@pytest.mark.parametrize("rate", PCM_RATES)
def test_output_does_not_depend_on_chunking(rate: int) -> None:
    pcm = speech(rate)[: 6 * rate + 123]
    whole = analyze(pcm, rate, seed="req-1")
    rng = np.random.default_rng(rate)
    small = analyze(pcm, rate, seed="req-1", chunks=random_chunks(pcm.size, rng, 97))
    large = analyze(pcm, rate, seed="req-1", chunks=random_chunks(pcm.size, rng, 3 * rate))
    frame = rate * FRAME_MS // 1000
    odd = [frame + 1, 1, frame - 1, 3, 2 * frame + 1]
    odd_sizes = (odd * (pcm.size // sum(odd) + 1))[: pcm.size]
    while sum(odd_sizes) > pcm.size:
        odd_sizes.pop()
    odd_sizes.append(pcm.size - sum(odd_sizes))
    odd_chunked = analyze(pcm, rate, seed="req-1", chunks=odd_sizes)
    assert small == whole
    assert large == whole
    assert odd_chunked == whole
    assert [encode_frame(f) for f in small] == [encode_frame(f) for f in whole]


def test_one_sample_at_a_time_matches_one_push() -> None:
    rate = 8000
    pcm = speech(rate)[: rate // 2 + 77]
    assert analyze(pcm, rate, chunks=[1] * pcm.size) == analyze(pcm, rate)


def test_same_audio_and_seed_give_same_frames() -> None:
    pcm = speech(16000)
    assert analyze(pcm, 16000, seed="a") == analyze(pcm, 16000, seed="a")
    # The seed only moves the blinks: the mouth is the same.
    other = analyze(pcm, 16000, seed="b")
    for x, y in zip(analyze(pcm, 16000, seed="a"), other, strict=True):
        mouth_x = {k: v for k, v in x.blendshapes.items() if not k.startswith("eyeBlink")}
        mouth_y = {k: v for k, v in y.blendshapes.items() if not k.startswith("eyeBlink")}
        assert (x.viseme, mouth_x) == (y.viseme, mouth_y)


def _digest(frames: list[AnimationFrame]) -> str:
    return hashlib.sha256(b"".join(encode_frame(f) for f in frames)).hexdigest()


# -- what the animation shows ----------------------------------------------------


@pytest.mark.parametrize("rate", [*PCM_RATES, 12000])
def test_weights_are_in_unit_range_with_all_names(rate: int) -> None:
    frames = analyze(speech(rate), rate)
    assert set(BLENDSHAPE_NAMES) >= REQUIRED_SHAPES
    for f in frames:
        assert tuple(f.blendshapes) == BLENDSHAPE_NAMES
        assert all(0.0 <= v <= 1.0 for v in f.blendshapes.values()), f
        assert f.viseme in VISEMES
    # Speech is animated: the jaw moves and more than one mouth shape shows up.
    j = jaw(frames)
    assert j.max() > 0.5
    assert np.median(j) > 0.2
    assert len({f.viseme for f in frames}) >= 5


def test_silence_fixture_keeps_mouth_closed() -> None:
    frames = analyze(load_pcm("silence_1s_16000.pcm"), 16000)
    assert len(frames) == 25
    assert jaw(frames).max() < 0.05
    assert {f.viseme for f in frames} == {"sil"}
    assert min(f.blendshapes["mouthClose"] for f in frames) > 0.5


@pytest.mark.parametrize("rate", PCM_RATES)
def test_digital_zeros_keep_mouth_closed(rate: int) -> None:
    frames = analyze(np.zeros(2 * rate + 11, dtype=np.int16), rate)
    assert jaw(frames).max() < 0.05
    assert {f.viseme for f in frames} == {"sil"}
    for f in frames:
        assert f.blendshapes["mouthClose"] > 0.5
        for name in ("mouthFunnel", "mouthPucker", "mouthStretchLeft", "mouthSmileLeft"):
            assert f.blendshapes[name] < 0.05


@pytest.mark.parametrize("chunked", [False, True])
def test_jaw_opens_only_during_speech(chunked: bool) -> None:
    rate = 16000
    silence = load_pcm("silence_1s_16000.pcm")
    talk = speech(rate)[: 2 * rate]
    clip = np.concatenate((silence, talk, silence))
    chunks = random_chunks(clip.size, np.random.default_rng(5), 700) if chunked else None
    frames = analyze(clip, rate, chunks=chunks)
    assert len(frames) == 100
    j = jaw(frames)
    before, during, after = j[:25], j[25:75], j[75:]
    assert before.max() < 0.05
    assert during.mean() > 0.3
    assert during.mean() > 5 * max(before.mean(), after.mean(), 0.01)
    # The jaw closes within a short release tail after the speech ends.
    assert after[3:].max() < 0.05
    assert all(f.viseme == "sil" for f in frames[:25] + frames[78:])
    # Mouth rests closed in silence, opens during speech.
    close = np.array([f.blendshapes["mouthClose"] for f in frames])
    assert close[:25].min() > 0.5
    assert close[25:75].mean() < close[:25].mean() - 0.3


def _vowel(rate: int, formants: tuple[tuple[float, float], ...], f0: float = 120.0) -> Pcm:
    """1 s of a vowel: harmonics of f0 under a formant envelope ((Hz, dB) pairs)."""
    t = np.arange(rate) / rate
    x = np.zeros(rate)
    for h in range(1, int(min(7000.0, rate / 2) / f0)):
        f = f0 * h
        env = sum(10 ** (db / 20) * math.exp(-(((f - fc) / 110.0) ** 2)) for fc, db in formants)
        x += (env + 10 ** (-55 / 20)) * np.sin(2 * np.pi * f * t)
    return np.asarray(np.round(x / np.abs(x).max() * 8000), dtype=np.int16)


def _hiss(rate: int) -> Pcm:
    """1 s of noise above 4.5 kHz, like /s/."""
    spectrum = np.fft.rfft(np.random.default_rng(3).standard_normal(rate))
    spectrum[np.fft.rfftfreq(rate, 1 / rate) < 4500] = 0
    x = np.fft.irfft(spectrum, rate)
    return np.asarray(np.round(x / np.abs(x).max() * 6000), dtype=np.int16)


# Formant frequencies and levels of male vowels (Peterson & Barney 1952).
VOWEL_I = ((270.0, -4.0), (2290.0, -24.0), (3010.0, -28.0))
VOWEL_U = ((300.0, -3.0), (870.0, -19.0), (2240.0, -43.0))
VOWEL_A = ((730.0, -1.0), (1090.0, -5.0), (2440.0, -28.0))


def _mean(frames: list[AnimationFrame], *names: str) -> float:
    return float(np.mean([sum(f.blendshapes[n] for n in names) for f in frames]))


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_mouth_shape_follows_spectrum(rate: int) -> None:
    def steady(pcm: Pcm) -> list[AnimationFrame]:
        return analyze(pcm, rate)[5:20]

    u, i, a = (
        steady(_vowel(rate, VOWEL_U)),
        steady(_vowel(rate, VOWEL_I)),
        steady(_vowel(rate, VOWEL_A)),
    )
    rounded = ("mouthFunnel", "mouthPucker")
    spread = ("mouthStretchLeft", "mouthSmileLeft")
    # /u/ rounds the lips, /i/ spreads them, /a/ does neither much.
    assert {f.viseme for f in u} == {"ou"}
    assert {f.viseme for f in i} == {"ih"}
    assert {f.viseme for f in a} == {"aa"}
    assert _mean(u, *rounded) > 0.5 > _mean(u, *spread)
    assert _mean(i, *spread) > 0.5 > _mean(i, *rounded)
    assert _mean(a, *rounded) < 0.2 and _mean(a, *spread) < 0.2
    for frames in (u, i, a):
        assert _mean(frames, "jawOpen") > 0.3
    if rate >= 16000:
        s = steady(_hiss(rate))
        assert {f.viseme for f in s} == {"SS"}
        assert _mean(s, "mouthStretchLeft") > 0.3
        assert _mean(s, "jawOpen") < _mean(a, "jawOpen")


def _blink_onsets(frames: list[AnimationFrame]) -> list[int]:
    weights = [f.blendshapes["eyeBlinkLeft"] for f in frames]
    return [i for i, w in enumerate(weights) if w > 0 and (i == 0 or weights[i - 1] == 0)]


@pytest.mark.parametrize("seed", ["", "req-1", "sess/42", "z" * 40])
def test_blinks_at_natural_intervals(seed: str) -> None:
    rate = 16000
    frames = analyze(speech(rate)[: 10 * rate], rate, seed=seed)
    assert len(frames) == 250
    onsets = _blink_onsets(frames)
    assert len(onsets) >= 2, onsets
    assert onsets[0] <= 75  # within the first 3 s
    for a, b in itertools.pairwise(onsets):
        assert 50 <= b - a <= 150, onsets  # 2-6 s apart
    for start in onsets:
        closed = [f.blendshapes["eyeBlinkLeft"] for f in frames[start : start + 6]]
        length = next(n for n, w in enumerate(closed) if w == 0)
        assert 3 <= length <= 4
        assert max(closed) == 1.0
    for f in frames:
        assert f.blendshapes["eyeBlinkLeft"] == f.blendshapes["eyeBlinkRight"]


def test_blinks_depend_on_seed_not_audio() -> None:
    rate = 16000
    quiet = np.zeros(20 * rate, dtype=np.int16)
    onsets = {seed: _blink_onsets(analyze(quiet, rate, seed=seed)) for seed in "abcdef"}
    assert len({tuple(v) for v in onsets.values()}) > 1
    # About 10-20 blinks a minute.
    assert all(4 <= len(v) <= 9 for v in onsets.values()), onsets
    # Same seed, different audio: same blinks.
    talk = speech(rate)[: 10 * rate]
    assert _blink_onsets(analyze(talk, rate, seed="a")) == [i for i in onsets["a"] if i < 250]


# -- payload ---------------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    frames = analyze(speech(16000), 16000, seed="rt")
    for f in frames:
        payload = encode_frame(f)
        assert len(payload) < 400
        decoded = decode_animation(payload)
        assert decoded == {
            "frame_index": f.frame_index,
            "timestamp_ms": f.timestamp_ms,
            "viseme": f.viseme,
            "blendshapes": {k: round(v, 3) for k, v in f.blendshapes.items()},
        }
        assert list(decoded["blendshapes"]) == list(BLENDSHAPE_NAMES)
        msg = pb.AnimationFrame.FromString(payload)
        assert msg.frame_index == f.frame_index and msg.viseme == f.viseme
        assert set(msg.blendshapes) == set(BLENDSHAPE_NAMES)


def test_decode_accepts_other_encoders() -> None:
    msg = pb.AnimationFrame(
        frame_index=3, timestamp_ms=120, viseme="oh", blendshapes={"jawOpen": 0.5, "custom": 1.0}
    )
    decoded = decode_animation(msg.SerializeToString())
    assert decoded == {
        "frame_index": 3,
        "timestamp_ms": 120,
        "viseme": "oh",
        "blendshapes": {"jawOpen": 0.5, "custom": 1.0},
    }


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff\xff\xff",
        b"\x0a\x05hello",  # field 1 with the wrong wire type
        b"not a protobuf at all",
        b"\x08\x01",  # index only
        pb.AnimationFrame(
            frame_index=1, timestamp_ms=41, viseme="aa", blendshapes={"jawOpen": 0.1}
        ).SerializeToString(),
        pb.AnimationFrame(
            frame_index=1, timestamp_ms=40, viseme="aa", blendshapes={"jawOpen": 1.5}
        ).SerializeToString(),
        pb.AnimationFrame(frame_index=1, timestamp_ms=40, viseme="aa").SerializeToString(),
        pb.AnimationFrame(
            frame_index=1, timestamp_ms=40, viseme="aa", blendshapes={"jawOpen": 0.1}
        ).SerializeToString()
        + b"\x28\x07",  # unknown field 5
    ],
)
def test_decode_rejects_other_bytes(payload: bytes) -> None:
    with pytest.raises(ValueError, match="not an AnimationFrame payload"):
        decode_animation(payload)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        decode_animation("jawOpen")  # type: ignore[arg-type]


# -- API contract ----------------------------------------------------------------


def test_push_validates_input_and_flush_ends_the_request() -> None:
    analyzer = AnimationAnalyzer(16000)
    with pytest.raises(TypeError):
        analyzer.push(np.zeros(10, dtype=np.float32))
    with pytest.raises(TypeError):
        analyzer.push(np.zeros((2, 10), dtype=np.int16))
    assert analyzer.push(np.zeros(0, dtype=np.int16)) == []
    assert analyzer.push(np.zeros(100, dtype=np.int16)) == []
    assert len(analyzer.flush()) == 1
    assert analyzer.flush() == []
    with pytest.raises(RuntimeError):
        analyzer.push(np.zeros(10, dtype=np.int16))
    with pytest.raises(ValueError):
        AnimationAnalyzer(0)
    with pytest.raises(ValueError):
        frames_for_samples(-1, 16000)


def test_push_does_not_keep_a_reference_to_the_callers_buffer() -> None:
    pcm = speech(16000)[:1000].copy()
    reference = analyze(pcm.copy(), 16000)
    analyzer = AnimationAnalyzer(16000)
    frames = analyzer.push(pcm)
    pcm[:] = 0  # caller reuses its buffer
    frames += analyzer.flush()
    assert frames == reference


def test_push_accepts_int16_of_either_byte_order() -> None:
    pcm = speech(16000)[:5000]
    swapped = pcm.astype(">i2")
    assert analyze(swapped, 16000) == analyze(pcm, 16000)


def test_hand_encoder_matches_protobuf_serializer() -> None:
    from avatarkit.devserver._animation import (
        AnimationAnalyzer,
        AnimationFrame,
        encode_frame,
        encode_frame_reference,
    )

    pcm = np.frombuffer((FIXTURES / "speech_16000.pcm").read_bytes(), dtype=np.int16)
    analyzer = AnimationAnalyzer(16000)
    frames = analyzer.push(pcm) + analyzer.flush()
    assert frames
    for frame in frames:
        assert encode_frame(frame) == encode_frame_reference(frame)
    odd = AnimationFrame(
        frame_index=0, timestamp_ms=0, viseme="", blendshapes={"zz": 0.5, "a": 0.0}
    )
    assert encode_frame(odd) == encode_frame_reference(odd)
