"""Facts of the protocol that several modules need, each defined here once."""

from __future__ import annotations

__all__ = ["OGG_OPUS_SAMPLE_RATES", "PCM_SAMPLE_RATES"]

#: Sample rates the protocol lists for raw PCM input. The client does not
#: enforce them: the service decides (it refuses others with
#: ``unsupportedSampleRate`` in ``start()``, as with avatarkit 0.1.7).
PCM_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
#: Sample rates the protocol lists for Ogg Opus input: Opus's own rates, the
#: only ones libopus encodes natively (so the built-in encoder checks them).
OGG_OPUS_SAMPLE_RATES: tuple[int, ...] = (8000, 12000, 16000, 24000, 48000)
