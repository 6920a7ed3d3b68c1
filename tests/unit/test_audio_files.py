"""Reading audio files for the CLI (WAV, raw PCM, Ogg Opus), rate choice and resampling."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import avatarkit.audio as audio
from avatarkit.audio import (
    OPUS_RATES,
    PCM_RATES,
    OggOpusEncoder,
    nearest_supported_rate,
    read_audio_file,
    resample,
)
from tests._helpers import FIXTURES


def fixture_pcm(rate: int) -> npt.NDArray[np.int16]:
    return np.frombuffer((FIXTURES / f"speech_{rate}.pcm").read_bytes(), dtype="<i2").astype(
        np.int16
    )


def test_rate_tables_are_exported() -> None:
    assert PCM_RATES == (8000, 16000, 22050, 24000, 32000, 44100, 48000)
    assert OPUS_RATES == (8000, 12000, 16000, 24000, 48000)
    assert audio.PCM_RATES is PCM_RATES
    assert {"PCM_RATES", "OPUS_RATES", "read_audio_file", "resample"} <= set(audio.__all__)


def test_reads_wav_fixture() -> None:
    samples, rate = read_audio_file(FIXTURES / "speech_16000.wav")
    assert rate == 16000
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert np.array_equal(samples, fixture_pcm(16000))


def test_reads_ogg_fixture_at_its_input_rate() -> None:
    samples, rate = read_audio_file(str(FIXTURES / "speech_24000.ogg"))
    assert rate == 24000
    assert samples.dtype == np.int16
    assert len(samples) == len(fixture_pcm(24000))


def test_reads_our_own_ogg_opus(tmp_path: Path) -> None:
    pcm = fixture_pcm(16000)[:16000]
    encoder = OggOpusEncoder(16000)
    path = tmp_path / "clip.opus"
    path.write_bytes(encoder.encode(pcm.tobytes()) + encoder.finish())
    samples, rate = read_audio_file(path)
    assert (len(samples), rate) == (16000, 16000)


@pytest.mark.parametrize("rate", PCM_RATES)
def test_reads_raw_pcm_fixtures(rate: int) -> None:
    samples, got_rate = read_audio_file(FIXTURES / f"speech_{rate}.pcm", sample_rate=rate)
    assert got_rate == rate
    assert len(samples) / rate == pytest.approx(13.61, abs=0.01)


def test_raw_pcm_needs_a_sample_rate() -> None:
    with pytest.raises(ValueError, match="raw PCM needs a sample rate"):
        read_audio_file(FIXTURES / "silence_1s_16000.pcm")
    samples, rate = read_audio_file(FIXTURES / "silence_1s_16000.pcm", sample_rate=16000)
    assert (len(samples), rate) == (16000, 16000)
    assert int(np.abs(samples.astype(np.int32)).max()) < 100  # near-silence (dither)


def test_raw_pcm_with_odd_length_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "odd.raw"
    path.write_bytes(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="odd"):
        read_audio_file(path, sample_rate=8000)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError) as info:
        read_audio_file(missing)
    assert str(missing) in str(info.value)
    assert info.value.filename == str(missing)


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp3"
    path.write_bytes(b"ID3" + bytes(100))
    with pytest.raises(ValueError, match="unsupported audio file"):
        read_audio_file(path)
    fake = tmp_path / "clip.wav"
    fake.write_bytes(bytes(100))
    with pytest.raises(ValueError, match="not a WAV file"):
        read_audio_file(fake)


# -- WAV variants ----------------------------------------------------------------------


def source_signal(channels: int) -> npt.NDArray[np.int16]:
    """(frames, channels) int16 test audio: speech on channel 0, scaled copies elsewhere."""
    speech = fixture_pcm(8000)[:4000].astype(np.int32)
    return np.stack([speech * (c + 1) // channels for c in range(channels)], axis=1).astype(
        np.int16
    )


def expected_mono(frames: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    mono: npt.NDArray[np.int16] = np.rint(frames.astype(np.float64).mean(axis=1)).astype(np.int16)
    return mono


def encode_int(frames: npt.NDArray[np.int16], width: int) -> bytes:
    """Interleaved little-endian integer PCM of ``width`` bytes from int16 samples."""
    values = frames.astype(np.int32).reshape(-1)
    if width == 1:
        return ((values >> 8) + 128).astype(np.uint8).tobytes()
    if width == 2:
        return values.astype("<i2").tobytes()
    if width == 3:
        wide = (values << 8) | 0x5A  # low byte below 16-bit precision
        b = wide.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        return b.tobytes()
    return ((values << 16) | 0x1234).astype("<i4").tobytes()


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_reads_integer_wav_of_any_width_and_channels(
    tmp_path: Path, width: int, channels: int
) -> None:
    frames = source_signal(channels)
    path = tmp_path / f"w{width}c{channels}.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(22050)
        out.writeframes(encode_int(frames, width))
    samples, rate = read_audio_file(path)
    assert rate == 22050
    assert len(samples) == len(frames)
    if width == 1:  # 8-bit keeps only the top byte
        source = (frames.astype(np.int32) >> 8 << 8).astype(np.int16)
        assert np.abs(samples.astype(np.int32) - expected_mono(source)).max() <= 1
    else:
        assert np.abs(samples.astype(np.int32) - expected_mono(frames)).max() <= 1


def wav_bytes(fmt_chunk: bytes, data: bytes) -> bytes:
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    body += b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # odd-sized extra chunk, padded
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
def test_reads_float_wav(tmp_path: Path, dtype: str) -> None:
    frames = source_signal(2)
    floats = (frames.astype(np.float64) / 32767.0).astype(dtype)
    width = np.dtype(dtype).itemsize
    fmt = struct.pack("<HHIIHH", 3, 2, 16000, 16000 * 2 * width, 2 * width, width * 8)
    path = tmp_path / "float.wav"
    path.write_bytes(wav_bytes(fmt, floats.tobytes()))
    samples, rate = read_audio_file(path)
    assert rate == 16000
    assert np.abs(samples.astype(np.int32) - expected_mono(frames)).max() <= 1


def test_reads_wave_format_extensible_24_bit(tmp_path: Path) -> None:
    frames = source_signal(2)
    subformat_pcm = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHH", 0xFFFE, 2, 48000, 48000 * 6, 6, 24)
    fmt += struct.pack("<HHI", 22, 24, 3) + subformat_pcm
    path = tmp_path / "ext.wav"
    path.write_bytes(wav_bytes(fmt, encode_int(frames, 3)))
    samples, rate = read_audio_file(path)
    assert rate == 48000
    assert np.abs(samples.astype(np.int32) - expected_mono(frames)).max() <= 1


def test_unsupported_wav_encoding(tmp_path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 6, 1, 8000, 8000, 1, 8)  # A-law
    path = tmp_path / "alaw.wav"
    path.write_bytes(wav_bytes(fmt, bytes(100)))
    with pytest.raises(ValueError, match="unsupported WAV encoding"):
        read_audio_file(path)


# -- rates and resampling -------------------------------------------------------------


def test_nearest_supported_rate() -> None:
    assert nearest_supported_rate(16000, PCM_RATES) == 16000
    assert nearest_supported_rate(11025, PCM_RATES) == 8000
    assert nearest_supported_rate(96000, PCM_RATES) == 48000
    assert nearest_supported_rate(44100, OPUS_RATES) == 48000
    assert nearest_supported_rate(22050, OPUS_RATES) == 24000
    assert nearest_supported_rate(12000, (8000, 16000)) == 16000  # a tie goes up
    with pytest.raises(ValueError):
        nearest_supported_rate(16000, ())


@pytest.mark.parametrize("from_rate", PCM_RATES)
def test_resampling_changes_length_by_the_rate_ratio(from_rate: int) -> None:
    pcm = fixture_pcm(from_rate)
    for to_rate in (16000, 24000):
        out = resample(pcm, from_rate, to_rate)
        assert out.dtype == np.int16
        assert abs(len(out) - len(pcm) * to_rate / from_rate) <= 1


def test_resampling_keeps_the_signal() -> None:
    # the 16 kHz and 48 kHz fixtures hold the same speech: resampling one gives the other
    down = resample(fixture_pcm(48000), 48000, 16000)
    reference = fixture_pcm(16000)
    n = min(len(down), len(reference))
    err = down[:n].astype(np.float64) - reference[:n]
    snr = 10 * np.log10((reference[:n].astype(np.float64) ** 2).sum() / (err**2).sum())
    assert snr > 20


def test_resample_same_rate_is_identity() -> None:
    pcm = fixture_pcm(8000)
    assert np.array_equal(resample(pcm, 8000, 8000), pcm)
    with pytest.raises(ValueError):
        resample(pcm, 0, 8000)
