"""Import paths and names of avatarkit 0.1.7 keep working (drop-in)."""

from __future__ import annotations

import avatarkit
from avatarkit.avatar_session import AvatarSession, new_avatar_session
from avatarkit.logid import generate_log_id
from avatarkit.proto.generated import message_pb2
from avatarkit.protocol import encode_animation
from avatarkit.session_config import (
    AgoraEgressConfig,
    AudioFormat,
    LiveKitEgressConfig,
    OggOpusEncoderConfig,
    SessionConfig,
    SessionConfigBuilder,
)

PUBLISHED_NAMES = [
    "AvatarSession",
    "SessionTokenError",
    "AvatarSDKError",
    "AvatarSDKErrorCode",
    "new_avatar_session",
    "AudioFormat",
    "OggOpusEncoderConfig",
    "SessionConfig",
    "SessionConfigBuilder",
    "LiveKitEgressConfig",
    "AgoraEgressConfig",
    "generate_log_id",
]


def test_published_top_level_names() -> None:
    for name in PUBLISHED_NAMES:
        assert hasattr(avatarkit, name), name
        assert name in avatarkit.__all__


def test_module_paths_point_at_the_same_objects() -> None:
    assert AvatarSession is avatarkit.AvatarSession
    assert new_avatar_session is avatarkit.new_avatar_session
    assert generate_log_id is avatarkit.generate_log_id
    assert SessionConfig is avatarkit.SessionConfig
    assert SessionConfigBuilder is avatarkit.SessionConfigBuilder
    for cls in (AgoraEgressConfig, AudioFormat, LiveKitEgressConfig, OggOpusEncoderConfig):
        assert getattr(avatarkit, cls.__name__) is cls


def test_transport_frames_bytes_parse_with_message_pb2() -> None:
    frame = encode_animation("conn", "req", True, b"payload", "avatar")
    msg = message_pb2.Message()
    msg.ParseFromString(frame)
    assert msg.type == message_pb2.MESSAGE_SERVER_RESPONSE_ANIMATION
    assert msg.server_response_animation.end
    assert msg.server_response_animation.animation == b"payload"
