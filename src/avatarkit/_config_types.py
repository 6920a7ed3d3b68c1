"""The configuration's value types: the audio format, the encoder and egress settings.

Split from :mod:`avatarkit.config` (which re-exports them, as does
``avatarkit.session_config``, 0.1.7's module path) so that the session
configuration and its builder stay readable. Each ``validate()`` raises
``ValueError`` naming what to fix; secrets never appear in ``repr()``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

from ._facts import OGG_OPUS_SAMPLE_RATES, PCM_SAMPLE_RATES
from ._redact import mask as _mask

__all__ = ["AgoraEgressConfig", "AudioFormat", "LiveKitEgressConfig", "OggOpusEncoderConfig"]

_OPUS_FRAME_DURATIONS_MS = (10, 20, 40, 60)
_OPUS_APPLICATIONS = ("audio", "voip", "restricted_lowdelay")


class AudioFormat(str, Enum):
    """Audio encoding the session negotiates for its input."""

    PCM_S16LE = "pcm_s16le"
    OGG_OPUS = "ogg_opus"

    @property
    def sample_rates(self) -> tuple[int, ...]:
        """The sample rates the protocol lists for this format (the service decides)."""
        return PCM_SAMPLE_RATES if self is AudioFormat.PCM_S16LE else OGG_OPUS_SAMPLE_RATES


@dataclass
class OggOpusEncoderConfig:
    """Settings of the built-in PCM -> Ogg Opus encoder.

    Set it with ``audio_format=AudioFormat.OGG_OPUS`` to keep passing PCM to
    ``send_audio()`` while the wire carries Ogg Opus. ``frame_duration_ms`` is
    one of 10, 20, 40, 60; ``application`` one of ``audio``, ``voip``,
    ``restricted_lowdelay``. Needs ``pip install "avatarkit[opus]"``.
    """

    frame_duration_ms: int = 20
    application: str = "audio"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the allowed values when a field is off."""
        if self.frame_duration_ms not in _OPUS_FRAME_DURATIONS_MS:
            raise ValueError(
                f"OggOpusEncoderConfig.frame_duration_ms={self.frame_duration_ms!r} is not "
                f"supported; use one of {_OPUS_FRAME_DURATIONS_MS}"
            )
        if self.application not in _OPUS_APPLICATIONS:
            raise ValueError(
                f"OggOpusEncoderConfig.application={self.application!r} is not supported; "
                f"use one of {_OPUS_APPLICATIONS}"
            )


@dataclass
class LiveKitEgressConfig:
    """Have the service publish the avatar into a LiveKit room.

    With egress, animation does not come back over the WebSocket; the socket
    only carries progress signals and the request's ``end``. Prefer
    ``api_token`` (a LiveKit access token); ``api_key``/``api_secret`` still
    work but are deprecated and warn. Secrets never appear in ``repr()``.
    """

    url: str = ""
    api_key: str = field(default="", repr=False)
    api_secret: str = field(default="", repr=False)
    api_token: str = field(default="", repr=False)
    room_name: str = ""
    publisher_id: str = ""
    extra_attributes: dict[str, str] = field(default_factory=dict)
    idle_timeout: int = 0

    def __post_init__(self) -> None:
        if self.api_key or self.api_secret:
            warnings.warn(
                "LiveKitEgressConfig.api_key/api_secret are deprecated; pass a LiveKit "
                "access token as api_token instead",
                FutureWarning,
                stacklevel=3,
            )

    def validate(self) -> None:
        """Check what the service would reject, before any network call."""
        if not self.url:
            raise ValueError("LiveKitEgressConfig.url is required (e.g. wss://livekit.example.com)")
        scheme = urlsplit(self.url).scheme.lower()
        if scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(
                f"LiveKitEgressConfig.url must use ws, wss, http or https, not {scheme or 'none'!r}"
            )
        if not self.room_name:
            raise ValueError("LiveKitEgressConfig.room_name is required")
        if not self.api_token and not (self.api_key and self.api_secret):
            raise ValueError(
                "LiveKitEgressConfig needs api_token (preferred) or both api_key and api_secret"
            )
        if self.idle_timeout < 0:
            raise ValueError("LiveKitEgressConfig.idle_timeout must be >= 0 (0 = server default)")

    def __repr__(self) -> str:
        return (
            f"LiveKitEgressConfig(url={self.url!r}, room_name={self.room_name!r}, "
            f"publisher_id={self.publisher_id!r}, extra_attributes={self.extra_attributes!r}, "
            f"idle_timeout={self.idle_timeout!r}, api_token={_mask(self.api_token)}, "
            f"api_key={_mask(self.api_key)}, api_secret={_mask(self.api_secret)})"
        )


@dataclass
class AgoraEgressConfig:
    """Have the service publish the avatar into an Agora channel.

    ``uid`` 0 lets Agora assign one. The token never appears in ``repr()``.
    """

    channel_name: str = ""
    token: str = field(default="", repr=False)
    uid: int = 0
    publisher_id: str = ""

    def validate(self) -> None:
        """Check what the service would reject, before any network call."""
        if not self.channel_name:
            raise ValueError("AgoraEgressConfig.channel_name is required")
        if not 0 <= self.uid <= 0xFFFFFFFF:
            raise ValueError("AgoraEgressConfig.uid must fit in 32 bits (0 = auto)")

    def __repr__(self) -> str:
        return (
            f"AgoraEgressConfig(channel_name={self.channel_name!r}, token={_mask(self.token)}, "
            f"uid={self.uid!r}, publisher_id={self.publisher_id!r})"
        )


# Public as avatarkit.config.X (and 0.1.7's avatarkit.session_config.X): shown
# in tracebacks and docs, and pickled, under the path they had before the split.
for _cls in (AudioFormat, OggOpusEncoderConfig, LiveKitEgressConfig, AgoraEgressConfig):
    _cls.__module__ = "avatarkit.config"
del _cls
