"""avatarkit 0.1.7's module path for the configuration types (see :mod:`avatarkit.config`)."""

from .config import (
    AgoraEgressConfig,
    AudioFormat,
    LiveKitEgressConfig,
    OggOpusEncoderConfig,
    SessionConfig,
    SessionConfigBuilder,
)

__all__ = [
    "AgoraEgressConfig",
    "AudioFormat",
    "LiveKitEgressConfig",
    "OggOpusEncoderConfig",
    "SessionConfig",
    "SessionConfigBuilder",
]
