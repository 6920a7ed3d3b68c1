"""ErrorPhase is the type of ``phase``, still equal to 0.1.7's strings; no dead codes or advice."""

from __future__ import annotations

import inspect
import json

from avatarkit import AvatarSDKError, AvatarSDKErrorCode, InterruptReason, PlaybackState
from avatarkit._advice import _ADVICE
from avatarkit.errors import ErrorPhase, SessionTokenError, classify_close
from avatarkit.protocol import ClientProtocol, PlaybackStateReceived, encode_playback_state


def test_phase_is_an_error_phase_that_reads_as_the_string() -> None:
    err = classify_close(4001, "no credits", phase=ErrorPhase.WEBSOCKET_RUNTIME)
    assert err.phase is ErrorPhase.WEBSOCKET_RUNTIME
    assert err.phase == "websocket_runtime"  # what 0.1.7 code compares with
    assert str(err.phase) == f"{err.phase}" == "websocket_runtime"
    assert json.dumps({"phase": err.phase}) == '{"phase": "websocket_runtime"}'
    assert "phase=websocket_runtime" in str(err)
    assert "phase='websocket_runtime'" in repr(err)


def test_phase_given_as_a_string_becomes_the_member() -> None:
    assert AvatarSDKError(AvatarSDKErrorCode.unknown, "m", phase="session_token").phase is (
        ErrorPhase.SESSION_TOKEN
    )
    assert AvatarSDKError(AvatarSDKErrorCode.unknown, "m").phase is ErrorPhase.UNKNOWN
    assert AvatarSDKError(AvatarSDKErrorCode.unknown, "m").phase == "unknown"  # 0.1.7's default
    assert SessionTokenError(AvatarSDKErrorCode.unknown, "m").phase is ErrorPhase.SESSION_TOKEN
    # a phase we do not know is kept as given, not refused
    assert AvatarSDKError(AvatarSDKErrorCode.unknown, "m", phase="custom").phase == "custom"


def test_phase_parameters_are_typed() -> None:
    for func in (AvatarSDKError.__init__, classify_close):
        annotation = inspect.signature(func).parameters["phase"].annotation
        assert "ErrorPhase" in str(annotation), func


def test_no_dead_error_codes_or_advice() -> None:
    # 0.1.7 reports a 4003 refusal as serverError, so ours never produces this code.
    assert "concurrencyLimit" not in AvatarSDKErrorCode.__members__
    assert set(_ADVICE) <= {code.value for code in AvatarSDKErrorCode}


def test_interrupt_reason_is_produced() -> None:
    client = ClientProtocol()
    client.configure(__import__("avatarkit").SessionConfig())
    for wire, expected in (("explicit", InterruptReason.EXPLICIT), ("later", "later")):
        data = encode_playback_state("c", "r", PlaybackState.INTERRUPTED, 40, wire)
        event = client.receive(data)
        assert isinstance(event, PlaybackStateReceived)
        assert event.event.reason == expected
        assert type(event.event.reason) is type(expected)
        assert f"{event.event.reason}" == wire
