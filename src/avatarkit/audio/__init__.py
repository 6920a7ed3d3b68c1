"""Audio support: the Ogg Opus container, the Opus codec and audio file reading.

- :mod:`avatarkit.audio.ogg`: pure-Python Ogg pages and Ogg Opus mapping
  (stdlib only, always importable);
- :mod:`avatarkit.audio.opus`: :class:`OggOpusEncoder` / :class:`OggOpusDecoder`
  on PyAV's libopus (the ``avatarkit[opus]`` extra);
- :mod:`avatarkit.audio.files`: WAV / raw PCM / Ogg Opus reading, resampling.

The codec and file helpers load numpy, soxr and PyAV, so they are imported on
first use of their names here; importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .ogg import OggError, OggOpusReader, OggOpusWriter, OggPage, OggPageReader, OpusHead, OpusTags

PCM_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
"""Sample rates the service accepts for PCM s16le audio."""
OPUS_RATES: tuple[int, ...] = (8000, 12000, 16000, 24000, 48000)
"""Sample rates the service accepts for Ogg Opus audio."""

if TYPE_CHECKING:
    from .files import nearest_supported_rate, read_audio_file, resample
    from .opus import OggOpusDecoder, OggOpusEncoder

_LAZY = {
    "OggOpusDecoder": "opus",
    "OggOpusEncoder": "opus",
    "nearest_supported_rate": "files",
    "read_audio_file": "files",
    "resample": "files",
}

__all__ = [
    "OPUS_RATES",
    "PCM_RATES",
    "OggError",
    "OggOpusDecoder",
    "OggOpusEncoder",
    "OggOpusReader",
    "OggOpusWriter",
    "OggPage",
    "OggPageReader",
    "OpusHead",
    "OpusTags",
    "nearest_supported_rate",
    "read_audio_file",
    "resample",
]


def __getattr__(name: str) -> Any:
    """Import the codec and file helpers on first use (they pull in numpy, soxr, PyAV)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
