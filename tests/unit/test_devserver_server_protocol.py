"""The server side of the protocol core: configuration checks as events, no sockets.

:func:`avatarkit._server_protocol.check_configure` decides what the local
service answers to a ``ClientConfigureSession``; the connection only sends it.
"""

from __future__ import annotations

import pytest

from avatarkit._server_protocol import (
    CLOSE_POLICY,
    CODE_BAD_REQUEST,
    CODE_INVALID_ARGUMENT,
    ConfigureAccepted,
    ConfigureRejected,
    check_configure,
)
from avatarkit.errors import AvatarSDKErrorCode, ErrorPhase, classify_server_error
from avatarkit.proto import avatarkit_wire_pb2 as pb


def configure(**fields: object) -> pb.ClientConfigureSession:
    return pb.ClientConfigureSession(**fields)  # type: ignore[arg-type]


def sdk_code(verdict: ConfigureRejected) -> AvatarSDKErrorCode:
    return classify_server_error(
        verdict.code, verdict.detail, phase=ErrorPhase.WEBSOCKET_HANDSHAKE.value
    ).code


def test_pcm_and_ogg_are_accepted() -> None:
    assert check_configure(configure(sample_rate=16000)) == ConfigureAccepted(
        "pcm_s16le", 16000, 0, None
    )
    verdict = check_configure(configure(sample_rate=48000, audio_format=1, bitrate=32000))
    assert verdict == ConfigureAccepted("ogg_opus", 48000, 32000, None)


@pytest.mark.parametrize(("rate", "fmt"), [(11025, 0), (0, 0), (44100, 1)])
def test_unsupported_rate_is_400_unsupported_sample_rate(rate: int, fmt: int) -> None:
    verdict = check_configure(configure(sample_rate=rate, audio_format=fmt))
    assert isinstance(verdict, ConfigureRejected)
    assert (verdict.code, verdict.close_code) == (CODE_BAD_REQUEST, CLOSE_POLICY)
    assert verdict.detail.startswith(f"unsupported sample rate {rate} Hz")
    assert sdk_code(verdict) is AvatarSDKErrorCode.unsupportedSampleRate


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"sample_rate": 16000, "audio_format": 7}, "invalid audio_format 7"),
        ({"sample_rate": 16000, "bitrate": -1}, "invalid bitrate"),
        ({"sample_rate": 16000, "transport_compression": 1}, "transport_compression"),
    ],
)
def test_invalid_settings_are_code_3(fields: dict[str, object], text: str) -> None:
    verdict = check_configure(configure(**fields))
    assert isinstance(verdict, ConfigureRejected)
    assert (verdict.code, verdict.close_code) == (CODE_INVALID_ARGUMENT, CLOSE_POLICY)
    assert text in verdict.detail
    assert sdk_code(verdict) is AvatarSDKErrorCode.invalidRequest


def test_egress_is_checked_and_returned() -> None:
    lk = pb.LiveKitEgressConfig(
        url="wss://lk.example.com", room_name="r", publisher_id="p", api_token="opaque"
    )
    verdict = check_configure(configure(sample_rate=16000, livekit_egress=lk))
    assert isinstance(verdict, ConfigureAccepted) and verdict.egress is not None
    assert (verdict.egress.kind, verdict.egress.room_name) == ("livekit", "r")
    lk.url = "ws://["
    verdict = check_configure(configure(sample_rate=16000, livekit_egress=lk))
    assert isinstance(verdict, ConfigureRejected)
    assert verdict.code == CODE_INVALID_ARGUMENT and "livekit_egress.url" in verdict.detail
    assert sdk_code(verdict) is AvatarSDKErrorCode.invalidEgressConfig
