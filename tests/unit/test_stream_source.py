"""``_audio_source.open_source``: every ``stream()`` source to wire-ready chunks."""

from __future__ import annotations

import os
import random
import struct
import sys
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr

from avatarkit._audio_source import (
    AudioChunk,
    AudioFileNotFoundError,
    AudioSourceError,
    AudioSourceTypeError,
    open_source,
)
from avatarkit.audio.ogg import OggPageReader

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    sig = 0.4 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t)
    return np.rint(sig * 32767).astype(np.int16)


async def _collect(source: object, **kw: object) -> list[AudioChunk]:
    kw.setdefault("session_rate", 16000)
    return [c async for c in open_source(source, **kw)]  # type: ignore[arg-type]


def _pcm(chunks: list[AudioChunk]) -> np.ndarray:
    return np.frombuffer(b"".join(c.data for c in chunks), dtype="<i2")


def _write_wav(path: Path, frames: np.ndarray, rate: int, width: int) -> None:
    """frames: (n, channels) int16-scaled ints; written at ``width`` bytes per sample."""
    channels = frames.shape[1]
    if width == 1:
        raw = ((frames >> 8) + 128).astype(np.uint8).tobytes()
    elif width == 2:
        raw = frames.astype("<i2").tobytes()
    elif width == 3:
        v = frames.astype(np.int32).reshape(-1) << 8
        b = v.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        raw = b.tobytes()
    else:
        raw = (frames.astype(np.int32) << 16).astype("<i4").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)


async def test_bytes_are_cut_into_40ms_chunks_last_shorter() -> None:
    pcm = _tone(16000, 1.01)
    chunks = await _collect(pcm.tobytes())
    assert [len(c.data) for c in chunks[:-1]] == [1280] * 25
    assert len(chunks[-1].data) == 320
    assert chunks[0].duration_s == pytest.approx(0.04)
    assert chunks[-1].duration_s == pytest.approx(0.01)
    assert all(c.kind == "pcm" for c in chunks)
    assert np.array_equal(_pcm(chunks), pcm)


async def test_chunk_ms_sets_chunk_size() -> None:
    chunks = await _collect(bytearray(_tone(16000, 0.2).tobytes()), chunk_ms=20)
    assert [len(c.data) for c in chunks] == [640] * 10


async def test_iterable_with_odd_sizes_carries_bytes_over() -> None:
    pcm = _tone(16000, 0.5).tobytes()
    rng = random.Random(7)
    parts, pos = [], 0
    while pos < len(pcm):
        n = rng.randint(1, 999)
        parts.append(pcm[pos : pos + n])
        pos += n
    assert any(len(p) % 2 for p in parts)
    chunks = await _collect(iter(parts))
    assert b"".join(c.data for c in chunks) == pcm
    assert all(len(c.data) == 1280 for c in chunks[:-1])


async def test_chunks_of_the_right_size_pass_through_without_a_copy() -> None:
    """A TTS that yields 40 ms chunks: each is sent as is (no per-chunk copy), and
    a mis-sized chunk in between still comes out cut right, in order."""
    pcm = _tone(16000, 0.4).tobytes()
    parts = [pcm[i : i + 1280] for i in range(0, 1280 * 4, 1280)]
    parts.append(pcm[1280 * 4 : 1280 * 4 + 1000])  # then 280 bytes short of a chunk
    parts += [pcm[i : i + 1280] for i in range(1280 * 4 + 1000, len(pcm), 1280)]

    async def source() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    chunks = await _collect(source())
    assert [c.data is p for c, p in zip(chunks[:4], parts[:4], strict=True)] == [True] * 4
    assert b"".join(c.data for c in chunks) == pcm
    assert all(len(c.data) == 1280 for c in chunks[:-1])
    assert all(c.duration_s == pytest.approx(len(c.data) / 32000) for c in chunks)


async def test_async_iterable_at_24k_is_resampled_like_the_whole_clip() -> None:
    clip = _tone(24000, 2.0)
    data = clip.tobytes()
    rng = random.Random(3)

    async def tts() -> AsyncIterator[bytes]:
        pos = 0
        while pos < len(data):
            n = rng.randint(1, 4001)
            yield data[pos : pos + n]
            pos += n

    chunks = await _collect(tts(), sample_rate=24000)
    got = _pcm(chunks).astype(np.int32)
    whole = soxr.resample(clip, 24000, 16000, quality="HQ").astype(np.int32)
    assert abs(len(got) - len(whole)) <= 2
    n = min(len(got), len(whole))
    # no gap or click at any chunk border: sample by sample equal to the whole-clip result
    assert np.max(np.abs(got[:n] - whole[:n])) <= 2
    assert all(len(c.data) == 1280 for c in chunks[:-1])


async def test_long_bytes_at_48k_stream_through_the_resampler_in_pieces() -> None:
    clip = _tone(48000, 3.0)  # 288,000 bytes: several pieces fed to the resampler
    chunks = await _collect(memoryview(clip.tobytes()), sample_rate=48000)
    got = _pcm(chunks).astype(np.int32)
    whole = soxr.resample(clip, 48000, 16000, quality="HQ").astype(np.int32)
    n = min(len(got), len(whole))
    assert abs(len(got) - len(whole)) <= 2 and n > 47000
    assert np.max(np.abs(got[:n] - whole[:n])) <= 2


async def test_dangling_byte_at_the_end_is_an_error() -> None:
    with pytest.raises(AudioSourceError, match="dangling byte"):
        await _collect([b"\x00\x01\x02"])


async def test_empty_iterable_gives_no_chunks_but_empty_bytes_is_an_error() -> None:
    assert await _collect([]) == []
    with pytest.raises(AudioSourceError, match="empty"):
        open_source(b"", session_rate=16000)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
async def test_wav_of_any_width_and_channels_is_mono_at_session_rate(
    tmp_path: Path, width: int
) -> None:
    left = _tone(16000, 0.3, 300).astype(np.int32)
    right = _tone(16000, 0.3, 500).astype(np.int32)
    third = np.zeros_like(left)
    frames = np.stack([left, right, third], axis=1)
    path = tmp_path / "three.wav"
    _write_wav(path, frames, 16000, width)
    got = _pcm(await _collect(path)).astype(np.int32)
    expected = np.rint(((frames >> 8 << 8) if width == 1 else frames).mean(axis=1))
    assert len(got) == len(left)
    assert np.max(np.abs(got - expected)) <= 1


async def test_wav_at_another_rate_is_resampled(tmp_path: Path) -> None:
    clip = _tone(48000, 0.5)
    path = tmp_path / "hi.wav"
    _write_wav(path, clip.reshape(-1, 1), 48000, 2)
    got = _pcm(await _collect(str(path))).astype(np.int32)
    whole = soxr.resample(clip, 48000, 16000, quality="HQ").astype(np.int32)
    n = min(len(got), len(whole))
    assert abs(len(got) - len(whole)) <= 2
    assert np.max(np.abs(got[:n] - whole[:n])) <= 2


async def test_raw_pcm_file_needs_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "a.pcm"
    path.write_bytes(_tone(16000, 0.1).tobytes())
    with pytest.raises(AudioSourceError, match="sample rate"):
        await _collect(path)
    chunks = await _collect(path, sample_rate=16000)
    assert _pcm(chunks).tobytes() == path.read_bytes()


async def test_ogg_file_passes_through_to_ogg_session_by_magic_not_suffix(
    tmp_path: Path,
) -> None:
    data = (FIXTURES / "speech_24000.ogg").read_bytes()
    path = tmp_path / "speech.bin"  # no Ogg suffix: detected by its magic bytes
    path.write_bytes(data)
    src = open_source(path, session_rate=24000, session_format="ogg_opus")
    assert src.kind == "ogg"
    chunks = [c async for c in src]
    assert b"".join(c.data for c in chunks) == data
    pages = OggPageReader().feed(data)
    assert len(chunks) == len(pages)
    assert chunks[0].duration_s == 0.0  # OpusHead
    last_granule = pages[-1].granule_position
    assert sum(c.duration_s for c in chunks) == pytest.approx(last_granule / 48000)


async def test_ogg_file_is_decoded_for_a_pcm_session(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from avatarkit.audio.files import read_audio_file, resample

    path = FIXTURES / "speech_24000.ogg"
    src = open_source(path, session_rate=16000, session_format="pcm")
    assert src.kind == "pcm"
    got = _pcm([c async for c in src]).astype(np.int32)
    samples, rate = read_audio_file(path)
    whole = resample(samples, rate, 16000).astype(np.int32)
    n = min(len(got), len(whole))
    assert abs(len(got) - len(whole)) <= 2
    assert np.max(np.abs(got[:n] - whole[:n])) <= 2


async def test_chained_ogg_file_is_refused_for_pass_through(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from avatarkit.audio.opus import OggOpusEncoder

    enc = OggOpusEncoder(16000)
    pcm = _tone(16000, 0.2).tobytes()
    data = enc.encode(pcm) + enc.finish() + enc.encode(pcm) + enc.finish()  # two serials
    path = tmp_path / "chained.ogg"
    path.write_bytes(data)
    with pytest.raises(AudioSourceError, match="2 chained Ogg streams"):
        await _collect(path, session_format="ogg_opus")


@pytest.mark.parametrize(
    "source", [12, 1.5, None, {"a": 1}, object()], ids=lambda s: type(s).__name__
)
def test_wrong_source_type_is_a_typed_error(source: object) -> None:
    with pytest.raises(AudioSourceTypeError, match="WAV/PCM/Ogg Opus file"):
        open_source(source, session_rate=16000)


async def test_wrong_item_type_in_iterable_is_a_typed_error() -> None:
    with pytest.raises(AudioSourceTypeError, match="yielded a ndarray"):
        await _collect([np.zeros(4, dtype=np.int16)])
    with pytest.raises(TypeError):  # also a TypeError, for code that catches that
        await _collect(["text"])


def test_empty_path_and_bad_arguments() -> None:
    with pytest.raises(AudioSourceError, match="path is empty"):
        open_source("", session_rate=16000)
    with pytest.raises(AudioSourceError, match="chunk_ms"):
        open_source(b"\0\0", session_rate=16000, chunk_ms=0)
    with pytest.raises(AudioSourceTypeError, match="chunk_ms"):
        open_source(b"\0\0", session_rate=16000, chunk_ms=40.0)  # type: ignore[arg-type]
    with pytest.raises(AudioSourceError, match="sample_rate"):
        open_source(b"\0\0", session_rate=16000, sample_rate=-1)


async def test_missing_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(AudioFileNotFoundError, match="check the path") as info:
        await _collect(tmp_path / "nope.wav")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(AudioSourceError, match="directory"):
        await _collect(tmp_path)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + struct.pack("<I", 4) + b"WAVE")
    with pytest.raises(AudioSourceError, match="fmt"):
        await _collect(broken)
    if sys.platform != "win32" and os.geteuid() != 0:
        locked = tmp_path / "locked.wav"
        locked.write_bytes(b"\0" * 10)
        locked.chmod(0)
        with pytest.raises(AudioSourceError, match="cannot read"):
            await _collect(locked)


async def test_unsupported_wav_encoding_says_what_is_supported(tmp_path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 0x0006, 1, 8000, 8000, 1, 8)  # A-law
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4)
    path = tmp_path / "alaw.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 4) + body + b"\0" * 4)
    with pytest.raises(AudioSourceError, match="supported: 8/16/24/32-bit integer"):
        await _collect(path)


async def test_closing_early_closes_the_async_generator() -> None:
    closed = []

    async def gen() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"\0" * 1280
        finally:
            closed.append(True)

    source = gen()  # held here: closing must not rely on garbage collection
    src = open_source(source, session_rate=16000)
    it = aiter(src)
    await anext(it)
    await src.aclose()
    assert closed == [True]


async def test_closing_early_closes_a_sync_generator_too() -> None:
    closed = []

    def gen() -> Iterator[bytes]:
        try:
            while True:
                yield b"\0" * 1280
        finally:
            closed.append(True)

    source = gen()  # held here: closing must not rely on garbage collection
    src = open_source(source, session_rate=16000)
    await anext(aiter(src))
    await src.aclose()
    assert closed == [True]


async def test_finished_tells_whether_an_aclose_is_still_needed() -> None:
    """``finished``: the feeder skips an awaited ``aclose()`` (a task and a
    timer at each request's end) only when the generator already ended."""
    src = open_source([b"\0" * 1280, b"\0" * 1280], session_rate=16000)
    it = aiter(src)
    assert not src.finished  # not started
    await anext(it)
    assert not src.finished  # suspended after a chunk: it still needs closing
    with pytest.raises(StopAsyncIteration):
        while True:
            await anext(it)
    assert src.finished  # ran to its end


async def test_finished_after_an_error_or_an_early_close() -> None:
    async def fails() -> AsyncIterator[bytes]:
        yield b"\0" * 1280
        raise RuntimeError("tts failed")

    src = open_source(fails(), session_rate=16000)
    it = aiter(src)
    await anext(it)
    with pytest.raises(RuntimeError):
        await anext(it)
    assert src.finished
    other = open_source([b"\0" * 1280] * 3, session_rate=16000)
    await anext(aiter(other))
    await other.aclose()
    assert other.finished
