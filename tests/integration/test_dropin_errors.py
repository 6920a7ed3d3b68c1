"""Side by side: the errors ours raises are a drop-in for avatarkit 0.1.7's.

The same small program (tests/peers/error_scenarios.py) runs under the
published 0.1.7 (its own virtualenv, a subprocess) and under ours (this
interpreter, also a subprocess) against the same local avatar service. For
every scenario, ours must raise an exception that is an instance of every class
0.1.7's is (it may be an instance of more), and the ``code``/``phase`` that
0.1.7 fills must be equal.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from avatarkit.devserver import DevServer
from tests._helpers import PEERS, ensure_peer

pytestmark = pytest.mark.interop

SCRIPT = PEERS / "error_scenarios.py"

SCENARIOS = [
    "send_before_init",
    "interrupt_before_init",
    "start_before_init",
    "send_before_start",
    "start_twice",
    "interrupt_before_request",
    "send_after_close",
    "interrupt_after_close",
    "send_after_server_close",
    "interrupt_after_server_close",
    "bad_api_key",
    "unknown_avatar",
    "send_text_audio",
    "bad_ingress_scheme",
    "handshake_credits",
    "handshake_invalid_request",
    "token_402",
    "token_200_without_token",
    "upgrade_401",
    "upgrade_500",
    "handshake_drop",
    # The service decides which rates it takes (PROTOCOL.md 3): the client sends them.
    "pcm_rate_11025",
    "pcm_rate_12000",
    "opus_rate_11025",
    "opus_rate_22050",
    # The built-in encoder can only take Opus's rates: refused locally, as in 0.1.7.
    "encoder_rate_11025",
    "encoder_rate_22050",
]
SERVER_CLOSES = {"send_after_server_close", "interrupt_after_server_close"}


@pytest.fixture(scope="module")
def peer_python() -> Path:
    return ensure_peer()


async def _run(python: Path | str, server: DevServer, scenario: str) -> dict[str, Any] | None:
    faults = server.faults
    if scenario in SERVER_CLOSES:
        # The service closes this connection (code 4001) right after confirming it.
        faults.close(4001, "credits exhausted")
    elif scenario == "handshake_credits":
        faults.send_error(4001, "credits exhausted", phase="handshake")
    elif scenario == "handshake_invalid_request":
        faults.send_error(3, "invalid configuration", phase="handshake")
    elif scenario == "token_402":
        faults.reject_token(402)
    elif scenario == "token_200_without_token":
        faults.reject_token(200, "{}")
    elif scenario == "upgrade_401":
        faults.reject_upgrade(401, {"errors": [{"status": "401", "detail": "token is expired"}]})
    elif scenario == "upgrade_500":
        faults.reject_upgrade(500)
    elif scenario == "handshake_drop":
        faults.drop_connection(phase="handshake")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(SCRIPT),
        server.console_url,
        server.ingress_url,
        server.api_key,
        server.app_id,
        server.avatar_id,
        scenario,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "PYTHONWARNINGS": "ignore"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    raised: dict[str, Any] | None = json.loads(out.decode().strip().splitlines()[-1])["raised"]
    return raised


def _assert_drop_in(scenario: str, ours: dict[str, Any] | None, theirs: dict[str, Any]) -> None:
    assert ours is not None, f"{scenario}: 0.1.7 raises {theirs['mro'][0]}, ours raises nothing"
    missing = set(theirs["mro"]) - set(ours["mro"])
    assert not missing, (
        f"{scenario}: ours raises {ours['mro'][0]} ({ours['text']}), which is not an instance "
        f"of {sorted(missing)} as 0.1.7's {theirs['mro'][0]} ({theirs['text']}) is"
    )
    for field in ("code", "phase"):
        if theirs[field] is not None:
            assert ours[field] == theirs[field], (
                f"{scenario}: {field} {ours[field]!r} != 0.1.7's {theirs[field]!r}"
            )


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_ours_raises_what_0_1_7_callers_catch(
    avatar_server: DevServer, peer_python: Path, scenario: str
) -> None:
    theirs = await _run(peer_python, avatar_server, scenario)
    ours = await _run(sys.executable, avatar_server, scenario)
    if theirs is None:
        assert ours is None, f"{scenario}: 0.1.7 raises nothing, ours raises {ours}"
        return
    _assert_drop_in(scenario, ours, theirs)


async def test_every_send_after_a_server_close_is_a_value_error_with_the_close_details(
    avatar_server: DevServer,
) -> None:
    from avatarkit import (
        AvatarSDKError,
        AvatarSDKErrorCode,
        SessionClosedError,
        new_avatar_session,
    )

    avatar_server.faults.close(4001, "credits exhausted")
    session = new_avatar_session(**avatar_server.session_kwargs())
    await session.init()
    await session.start()
    await asyncio.wait_for(session.wait_closed(), 5)
    try:
        for call in (
            lambda: session.send_audio(b"\0\0" * 160),
            session.interrupt,
            session.pause,
            session.resume,
        ):
            with pytest.raises(ValueError) as info:
                await call()
            err = info.value
            assert isinstance(err, SessionClosedError) and isinstance(err, AvatarSDKError)
            assert err.code is AvatarSDKErrorCode.connectionClosed
            assert err.phase == "websocket_send"
            assert err.close_code == 4001 and err.close_reason == "credits exhausted"
            assert err.retryable is False
    finally:
        await session.close()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"sample_rate": 16000.0}, TypeError),
        ({"sample_rate": "16000"}, TypeError),
        ({"sample_rate": True}, TypeError),
        ({"bitrate": 1.5}, TypeError),
        ({"bitrate": 2**31}, ValueError),
    ],
)
def test_sample_rate_and_bitrate_types_are_checked_locally(
    overrides: dict[str, object], error: type[Exception]
) -> None:
    from avatarkit import SessionConfig

    cfg = SessionConfig(avatar_id="a", app_id="b", **overrides)  # type: ignore[arg-type]
    with pytest.raises(error, match=r"sample_rate|bitrate"):
        cfg.validate_audio()


@pytest.mark.parametrize("rate", [11025, 12000, 96000])
def test_rates_the_protocol_does_not_list_are_left_to_the_service(rate: int) -> None:
    from avatarkit import SessionConfig

    SessionConfig(avatar_id="a", app_id="b", sample_rate=rate).validate_audio()


@pytest.mark.parametrize("rate", [11025, 96000])
async def test_an_unlisted_pcm_rate_is_refused_by_the_service_in_start(
    avatar_server: DevServer, rate: int
) -> None:
    from avatarkit import AvatarSDKError, AvatarSDKErrorCode, new_avatar_session

    session = new_avatar_session(**avatar_server.session_kwargs(sample_rate=rate))
    try:
        await session.init()
        with pytest.raises(AvatarSDKError) as info:
            await session.start()
    finally:
        await session.close()
    assert info.value.code is AvatarSDKErrorCode.unsupportedSampleRate
    assert info.value.phase == "websocket_handshake"
    assert info.value.server_code == "400"  # not 3 (PROTOCOL.md 6)
    assert str(rate) in (info.value.server_detail or "")


def test_an_encoder_rate_error_is_what_0_1_7_reports_and_a_value_error() -> None:
    import pickle

    from avatarkit import (
        AudioFormat,
        AvatarSDKErrorCode,
        OggOpusEncoderConfig,
        SessionConfig,
        UnsupportedSampleRateError,
    )

    cfg = SessionConfig(
        avatar_id="a",
        app_id="b",
        sample_rate=11025,
        audio_format=AudioFormat.OGG_OPUS,
        ogg_opus_encoder=OggOpusEncoderConfig(),
    )
    with pytest.raises(ValueError, match="resample") as info:
        cfg.validate_audio()
    err = info.value
    assert isinstance(err, UnsupportedSampleRateError)
    assert err.code is AvatarSDKErrorCode.unsupportedSampleRate
    assert err.phase == "websocket_handshake" and err.retryable is False
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is UnsupportedSampleRateError and clone.code is err.code
    assert str(clone) == str(err)
