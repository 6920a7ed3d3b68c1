"""avatarkit: drive a realtime talking avatar from Python.

Stream speech audio (PCM or Ogg Opus) to the avatar service over a WebSocket
and receive lip-sync animation frames, or have the service publish the avatar
into a LiveKit room or Agora channel. A drop-in for the avatarkit 0.1.7 API,
with a local avatar service (``avatarkit serve``) for offline work and tests.
"""

from __future__ import annotations

from ._feed import AudioFeed
from ._metrics import RequestDone, SessionClosed, SessionError, SessionOpened
from ._request import AvatarRequest, RequestInProgressError, RequestSummary, RequestTimeoutError
from ._run import run
from .config import (
    AgoraEgressConfig,
    AudioFormat,
    LiveKitEgressConfig,
    OggOpusEncoderConfig,
    SessionConfig,
    SessionConfigBuilder,
)
from .errors import (
    AvatarSDKError,
    AvatarSDKErrorCode,
    CloseCode,
    OptionalDependencyError,
    SessionClosedError,
    SessionTokenError,
    UnsupportedSampleRateError,
)
from .events import (
    AnimationFrameEvent,
    InterruptReason,
    PlaybackSignal,
    PlaybackState,
    PlaybackStateEvent,
)
from .ids import generate_log_id
from .pool import PoolClosedError, PoolStats, SessionLease, SessionPool
from .session import AvatarSession, new_avatar_session

__version__ = "0.2.0"

__all__ = [
    "AgoraEgressConfig",
    "AnimationFrameEvent",
    "AudioFeed",
    "AudioFormat",
    "AvatarRequest",
    "AvatarSDKError",
    "AvatarSDKErrorCode",
    "AvatarSession",
    "CloseCode",
    "InterruptReason",
    "LiveKitEgressConfig",
    "OggOpusEncoderConfig",
    "OptionalDependencyError",
    "PlaybackSignal",
    "PlaybackState",
    "PlaybackStateEvent",
    "PoolClosedError",
    "PoolStats",
    "RequestDone",
    "RequestInProgressError",
    "RequestSummary",
    "RequestTimeoutError",
    "SessionClosed",
    "SessionClosedError",
    "SessionConfig",
    "SessionConfigBuilder",
    "SessionError",
    "SessionLease",
    "SessionOpened",
    "SessionPool",
    "SessionTokenError",
    "UnsupportedSampleRateError",
    "__version__",
    "generate_log_id",
    "new_avatar_session",
    "run",
]
