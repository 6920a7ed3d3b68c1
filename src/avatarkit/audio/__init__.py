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

from .._facts import OGG_OPUS_SAMPLE_RATES as OPUS_RATES
from .._facts import PCM_SAMPLE_RATES as PCM_RATES
from .ogg import OggError, OggOpusReader, OggOpusWriter, OggPage, OggPageReader, OpusHead, OpusTags

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
