"""Configuration: builder, validation before any network call, no secrets shown."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

import pytest

import avatarkit
from avatarkit import (
    AgoraEgressConfig,
    AudioFormat,
    AvatarSession,
    LiveKitEgressConfig,
    OggOpusEncoderConfig,
    SessionConfig,
    SessionConfigBuilder,
    new_avatar_session,
)

SECRET = "sk-very-secret-123"
EXPIRE = datetime.now(timezone.utc) + timedelta(minutes=5)


def valid_config(**overrides: object) -> SessionConfig:
    values: dict[str, object] = dict(
        avatar_id="av",
        api_key=SECRET,
        app_id="app",
        expire_at=EXPIRE,
        console_endpoint_url="http://127.0.0.1:1/v1/console",
        ingress_endpoint_url="ws://127.0.0.1:1/v2/driveningress",
    )
    values.update(overrides)
    return SessionConfig(**values)  # type: ignore[arg-type]


def test_builder_sets_every_field() -> None:
    def frames(data: bytes, last: bool) -> None: ...
    def on_error(err: Exception) -> None: ...
    def on_close() -> None: ...
    def on_encoded(req_id: str, data: bytes) -> None: ...

    lk = LiveKitEgressConfig(url="wss://x", api_token="t", room_name="r")
    cfg = (
        SessionConfigBuilder()
        .with_avatar_id("av")
        .with_api_key("k")
        .with_app_id("app")
        .with_use_query_auth(True)
        .with_expire_at(EXPIRE)
        .with_sample_rate(24000)
        .with_bitrate(32000)
        .with_audio_format(AudioFormat.OGG_OPUS)
        .with_ogg_opus_encoder(OggOpusEncoderConfig())
        .with_on_encoded_audio(on_encoded)
        .with_transport_frames(frames)
        .with_on_error(on_error)
        .with_on_close(on_close)
        .with_console_endpoint_url("http://c/v1/console")
        .with_ingress_endpoint_url("ws://i")
        .with_livekit_egress(lk)
        .build()
    )
    assert (cfg.avatar_id, cfg.api_key, cfg.app_id, cfg.use_query_auth) == ("av", "k", "app", True)
    assert (cfg.sample_rate, cfg.bitrate, cfg.audio_format) == (24000, 32000, AudioFormat.OGG_OPUS)
    assert cfg.transport_frames is frames and cfg.on_error is on_error and cfg.on_close is on_close
    assert cfg.on_encoded_audio is on_encoded and cfg.livekit_egress is lk
    agora = SessionConfigBuilder().with_agora_egress(AgoraEgressConfig(channel_name="c")).build()
    assert agora.agora_egress is not None and agora.agora_egress.channel_name == "c"
    assert isinstance(AvatarSession(cfg).config, SessionConfig)


def test_defaults_match_published_sdk() -> None:
    cfg = SessionConfig()
    assert cfg.sample_rate == 16000 and cfg.bitrate == 0
    assert cfg.audio_format is AudioFormat.PCM_S16LE
    assert cfg.use_query_auth is False
    assert OggOpusEncoderConfig() == OggOpusEncoderConfig(frame_duration_ms=20, application="audio")
    assert AudioFormat("pcm_s16le") is AudioFormat.PCM_S16LE


def test_unknown_keyword_is_type_error() -> None:
    with pytest.raises(TypeError, match="sample_rte"):
        new_avatar_session(sample_rte=16000)


def test_secrets_not_in_repr() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        lk = LiveKitEgressConfig(
            url="wss://x",
            api_key=SECRET + "k",
            api_secret=SECRET + "s",
            api_token=SECRET + "t",
            room_name="r",
        )
    cfg = valid_config(
        livekit_egress=lk, agora_egress=AgoraEgressConfig(channel_name="c", token=SECRET + "a")
    )
    for text in (repr(cfg), str(cfg), repr(lk), repr(cfg.agora_egress), repr(AvatarSession(cfg))):
        assert SECRET not in text


def test_livekit_key_secret_deprecated() -> None:
    with pytest.warns(FutureWarning, match="api_token"):
        LiveKitEgressConfig(url="wss://x", api_key="k", api_secret="s", room_name="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LiveKitEgressConfig(url="wss://x", api_token="t", room_name="r")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"api_key": ""}, "api_key is required"),
        ({"console_endpoint_url": ""}, "console_endpoint_url is required"),
        ({"console_endpoint_url": "ftp://x/v1/console"}, "console_endpoint_url"),
        ({"expire_at": None}, "expire_at is required"),
        ({"avatar_id": ""}, "avatar_id is required"),
        ({"app_id": ""}, "app_id is required"),
        ({"ingress_endpoint_url": ""}, "ingress_endpoint_url is required"),
        ({"ingress_endpoint_url": "gopher://x"}, "ingress_endpoint_url"),
        ({"sample_rate": 0}, "positive"),
        ({"sample_rate": -16000}, "positive"),
        ({"sample_rate": 2**31}, "positive"),
        (
            {
                "sample_rate": 22050,
                "audio_format": AudioFormat.OGG_OPUS,
                "ogg_opus_encoder": OggOpusEncoderConfig(),
            },
            "built-in Ogg Opus encoder",
        ),
        ({"ogg_opus_encoder": OggOpusEncoderConfig()}, "audio_format is PCM_S16LE"),
        (
            {
                "audio_format": AudioFormat.OGG_OPUS,
                "ogg_opus_encoder": OggOpusEncoderConfig(frame_duration_ms=15),
            },
            "frame_duration_ms",
        ),
        (
            {
                "audio_format": AudioFormat.OGG_OPUS,
                "ogg_opus_encoder": OggOpusEncoderConfig(application="music"),
            },
            "application",
        ),
        (
            {
                "livekit_egress": LiveKitEgressConfig(url="wss://x", api_token="t", room_name="r"),
                "agora_egress": AgoraEgressConfig(channel_name="c"),
            },
            "both set",
        ),
        (
            {"livekit_egress": LiveKitEgressConfig(url="", api_token="t", room_name="r")},
            "url is required",
        ),
        (
            {"livekit_egress": LiveKitEgressConfig(url="ftp://x", api_token="t", room_name="r")},
            "ws, wss",
        ),
        ({"livekit_egress": LiveKitEgressConfig(url="wss://x", room_name="r")}, "api_token"),
        ({"livekit_egress": LiveKitEgressConfig(url="wss://x", api_token="t")}, "room_name"),
        ({"agora_egress": AgoraEgressConfig()}, "channel_name"),
        ({"bitrate": -1}, "bitrate"),
    ],
)
def test_validation_messages(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        valid_config(**overrides).validate()


@pytest.mark.parametrize("rate", avatarkit.config.PCM_SAMPLE_RATES)
def test_all_pcm_rates_valid(rate: int) -> None:
    valid_config(sample_rate=rate).validate()


@pytest.mark.parametrize("rate", avatarkit.config.OGG_OPUS_SAMPLE_RATES)
def test_all_opus_rates_valid(rate: int) -> None:
    valid_config(sample_rate=rate, audio_format=AudioFormat.OGG_OPUS).validate()


def test_audio_format_from_string() -> None:
    assert valid_config(audio_format="ogg_opus").audio_format is AudioFormat.OGG_OPUS
    with pytest.raises(ValueError, match="audio_format"):
        valid_config(audio_format="mp3")


async def test_init_validates_before_network() -> None:
    session = AvatarSession(valid_config(api_key=""))
    with pytest.raises(ValueError, match="api_key"):
        await session.init()


async def test_start_before_init_and_send_before_start() -> None:
    session = AvatarSession(valid_config())
    with pytest.raises(ValueError, match="init"):
        await session.start()
    with pytest.raises(ValueError, match="start"):
        await session.send_audio(b"\x00\x00")
    with pytest.raises(TypeError, match="bytes"):
        await session.send_audio("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd"):
        await session.send_audio(b"\x00\x00\x00")
    await session.close()


def test_positional_field_order_matches_0_1_7() -> None:
    def frames(data: bytes, last: bool) -> None: ...

    cfg = SessionConfig(
        "av", "key", "app", False, EXPIRE, 24000, 0, AudioFormat.PCM_S16LE, None, None, frames
    )
    assert cfg.transport_frames is frames
    assert SessionConfigBuilder().with_ogg_opus_encoder().build().ogg_opus_encoder == (
        OggOpusEncoderConfig()
    )


def test_builder_open_timeout() -> None:
    assert SessionConfigBuilder().with_open_timeout(3).build().open_timeout == 3
