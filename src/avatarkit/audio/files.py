"""Reading audio files for the command line: WAV, raw PCM and Ogg Opus to mono int16.

``avatarkit send`` accepts whatever a user has at hand, so the reader takes
WAV in any integer width (8/16/24/32 bit) or 32/64-bit float with any number of
channels (including WAVE_FORMAT_EXTENSIBLE files, which the stdlib ``wave``
module rejects before Python 3.12, hence our own small RIFF parser), raw s16le
PCM, and Ogg Opus; everything is downmixed to mono. :func:`resample` (soxr, a
real band-limited resampler) and :func:`nearest_supported_rate` then bring the
audio to a rate the service accepts.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .ogg import CAPTURE_PATTERN, OPUS_RATE, OggError, OggOpusReader

__all__ = ["nearest_supported_rate", "read_audio_file", "resample"]

Pcm = npt.NDArray[np.int16]

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_RAW_SUFFIXES = (".pcm", ".raw")
_OGG_SUFFIXES = (".ogg", ".opus", ".oga")
_WAV_SUFFIXES = (".wav", ".wave")


def read_audio_file(
    path: str | os.PathLike[str], sample_rate: int | None = None
) -> tuple[Pcm, int]:
    """Read an audio file as mono int16 samples; returns ``(samples, sample_rate)``.

    The format is recognised from the file's first bytes (RIFF/WAVE, OggS),
    else from its suffix: ``.pcm``/``.raw`` are headerless mono s16le and need
    ``sample_rate``; for WAV and Ogg the file's own rate is used and
    ``sample_rate`` is ignored. Ogg Opus is decoded at the rate the encoder was
    given (OpusHead input rate) when that is an Opus rate, else at 48 kHz.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for
    audio it cannot read.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "audio file not found", str(path)) from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not an audio file") from None
    suffix = file.suffix.lower()
    if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return _read_wav(data, str(path))
    if data[:4] == CAPTURE_PATTERN:
        return _read_ogg_opus(data, str(path))
    if suffix in _RAW_SUFFIXES:
        return _read_raw(data, str(path), sample_rate)
    if suffix in _WAV_SUFFIXES:
        raise ValueError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    if suffix in _OGG_SUFFIXES:
        raise ValueError(f"{path}: not an Ogg file (no OggS capture pattern)")
    raise ValueError(
        f"{path}: unsupported audio file; expected WAV (.wav), raw s16le PCM (.pcm/.raw) "
        "or Ogg Opus (.ogg/.opus)"
    )


def _read_raw(data: bytes, path: str, sample_rate: int | None) -> tuple[Pcm, int]:
    if not sample_rate:
        raise ValueError(
            f"{path}: raw PCM needs a sample rate (it has no header); "
            "give it, e.g. --sample-rate 16000"
        )
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if len(data) % 2:
        raise ValueError(f"{path}: raw PCM must be 16-bit samples, but has an odd byte count")
    return np.frombuffer(data, dtype="<i2").astype(np.int16), sample_rate


def _wav_chunks(data: bytes, path: str) -> dict[bytes, bytes]:
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"data" and size == 0xFFFFFFFF:  # streamed WAV of unknown length
            body = data[pos + 8 :]
        chunks.setdefault(cid, body)
        if cid == b"data":
            break
        pos += 8 + size + (size & 1)
    if b"fmt " not in chunks:
        raise ValueError(f"{path}: WAV file has no 'fmt ' chunk")
    if b"data" not in chunks:
        raise ValueError(f"{path}: WAV file has no 'data' chunk")
    return chunks


def _read_wav(data: bytes, path: str) -> tuple[Pcm, int]:
    chunks = _wav_chunks(data, path)
    fmt = chunks[b"fmt "]
    if len(fmt) < 16:
        raise ValueError(f"{path}: WAV 'fmt ' chunk is truncated")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 40:
        tag = struct.unpack_from("<H", fmt, 24)[0]  # first two bytes of the sub-format GUID
    if channels == 0 or rate == 0:
        raise ValueError(f"{path}: WAV header declares {channels} channels at {rate} Hz")
    width = block_align // channels if block_align else (bits + 7) // 8
    if tag == _WAVE_FORMAT_PCM and width in (1, 2, 3, 4):
        samples = _pcm_to_int16(chunks[b"data"], width)
    elif tag == _WAVE_FORMAT_IEEE_FLOAT and width in (4, 8):
        raw = chunks[b"data"]
        floats = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8", count=len(raw) // width)
        # Full scale is [-1, 1]: clip before scaling (a huge value would overflow the
        # multiply) and read NaN as silence, so a damaged file gives clipped audio.
        floats = np.clip(np.nan_to_num(floats, nan=0.0), -32768 / 32767, 1.0)
        samples = np.clip(np.rint(floats * 32767.0), -32768, 32767).astype(np.int32)
    else:
        kind = {_WAVE_FORMAT_PCM: "integer PCM", _WAVE_FORMAT_IEEE_FLOAT: "float"}.get(
            tag, f"format tag {tag:#06x}"
        )
        raise ValueError(
            f"{path}: unsupported WAV encoding ({kind}, {bits} bits); "
            "supported: 8/16/24/32-bit integer PCM and 32/64-bit float"
        )
    frames = len(samples) // channels
    samples = samples[: frames * channels]
    return _downmix(samples.reshape(frames, channels)), rate


def _pcm_to_int16(raw: bytes, width: int) -> npt.NDArray[np.int32]:
    """Integer PCM of any width to int16-scaled int32 (top 16 bits kept)."""
    count = len(raw) // width
    if width == 1:  # 8-bit WAV is unsigned
        u8 = np.frombuffer(raw, dtype=np.uint8, count=count)
        return (u8.astype(np.int32) - 128) << 8
    if width == 2:
        return np.frombuffer(raw, dtype="<i2", count=count).astype(np.int32)
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8, count=count * 3).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value & 0x800000, value - (1 << 24), value)
        return value >> 8
    return np.frombuffer(raw, dtype="<i4", count=count).astype(np.int32) >> 16


def _downmix(frames: npt.NDArray[Any]) -> Pcm:
    """(frames, channels) int16-scaled samples to mono int16 (channel mean, rounded)."""
    if frames.shape[1] == 1:
        mono: Pcm = frames[:, 0].astype(np.int16)
        return mono
    mean = np.rint(frames.astype(np.float64).mean(axis=1))
    mixed: Pcm = np.clip(mean, -32768, 32767).astype(np.int16)
    return mixed


def _read_ogg_opus(data: bytes, path: str) -> tuple[Pcm, int]:
    from .opus import ENCODER_RATES, OggOpusDecoder

    head_reader = OggOpusReader()
    try:
        head_reader.feed(data[:65536])
    except OggError as exc:
        if head_reader.head is None:
            raise ValueError(f"{path}: not a readable Ogg Opus file: {exc}") from exc
    head = head_reader.head
    if head is None:
        raise ValueError(f"{path}: not an Ogg Opus file (no OpusHead header found)")
    rate = head.input_sample_rate if head.input_sample_rate in ENCODER_RATES else OPUS_RATE
    decoder = OggOpusDecoder(rate)
    try:
        pcm = decoder.feed(data)
        tail = decoder.finish()
    except OggError as exc:
        raise ValueError(f"{path}: broken Ogg Opus file: {exc}") from exc
    if len(tail):
        pcm = np.concatenate([pcm, tail])
    return pcm, rate


def nearest_supported_rate(rate: int, rates: Sequence[int]) -> int:
    """The rate in ``rates`` closest to ``rate`` (a tie goes to the higher one).

    Used to pick the rate to resample a file to when the service does not take
    the file's own rate.
    """
    if not rates:
        raise ValueError("no supported sample rates given")
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    return min(rates, key=lambda r: (abs(r - rate), -r))


def resample(pcm: npt.NDArray[np.int16], from_rate: int, to_rate: int) -> Pcm:
    """Resample mono int16 audio with soxr (high quality, band-limited).

    Returns the input unchanged when the rates are equal.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    samples = np.asarray(pcm, dtype=np.int16)
    if from_rate == to_rate or samples.size == 0:
        return samples
    import soxr

    out: Pcm = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return out
