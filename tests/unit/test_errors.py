"""Every classification row of PROTOCOL.md section 5, and error hygiene."""

from __future__ import annotations

import pickle

import pytest

from avatarkit import AvatarSDKError, AvatarSDKErrorCode, CloseCode, SessionTokenError
from avatarkit.errors import (
    classify_close,
    classify_http_rejection,
    classify_server_error,
    close_code_retryable,
    parse_error_body,
)

C = AvatarSDKErrorCode

TEXT_ROWS = [
    ("credits exhausted", C.creditsExhausted),
    ("session time limit reached", C.sessionDurationExceeded),
    ("Maximum session duration hit", C.sessionDurationExceeded),
    ("session denied", C.billingRequired),
    ("invalid session token", C.sessionTokenInvalid),
    ("empty token", C.sessionTokenInvalid),
    ("token is expired", C.sessionTokenExpired),
    ("Session token expired", C.sessionTokenExpired),
    ("app id mismatch", C.appIDMismatch),
    ("app id unrecognized", C.appIDUnrecognized),
    ("AppIDUnrecognized", C.appIDUnrecognized),
    ("avatar not found", C.avatarNotFound),
    ("unsupported sample rate", C.unsupportedSampleRate),
    ("livekit silence timeout", C.idleTimeout),
    ("no audio input for 30 seconds", C.idleTimeout),
    ("bad livekit_egress config", C.invalidEgressConfig),
    ("agora_egress: missing channel", C.invalidEgressConfig),
    ("missing livekit credentials", C.invalidEgressConfig),
    ("provide api_token or both api_key and api_secret", C.invalidEgressConfig),
    ("Unauthorized", C.invalidEgressConfig),
    ("egress client is not configured on server", C.egressUnavailable),
    ("failed to create egress connection", C.egressUnavailable),
    ("driven server returned non-200 status code", C.upstreamError),
    ("driven server request failed", C.upstreamError),
    ("expected ClientConfigureSession message", C.protocolError),
    ("unexpected message type", C.protocolError),
    ("failed to unmarshal initial message", C.protocolError),
    ("ClientConfigureSession message is nil", C.protocolError),
    ("failed during websocket handshake: expected binary protobuf message", C.protocolError),
    ("failed during websocket handshake: invalid protobuf payload", C.protocolError),
]


@pytest.mark.parametrize(("text", "code"), TEXT_ROWS)
def test_text_rules_on_server_error(text: str, code: AvatarSDKErrorCode) -> None:
    err = classify_server_error(500, text, phase="websocket_runtime")
    assert err.code is code
    assert err.server_code == "500"
    assert err.server_detail == text


@pytest.mark.parametrize(("text", "code"), TEXT_ROWS)
def test_text_rules_on_http_body(text: str, code: AvatarSDKErrorCode) -> None:
    body = f'{{"errors":[{{"status":"418","code":"x","title":"t","detail":"{text}"}}]}}'
    err = classify_http_rejection(418, body, phase="websocket_connect")
    assert err.code is code
    assert err.raw_body == body


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (3, "bad field", C.invalidRequest),
        (3, "invalid livekit url", C.invalidEgressConfig),
        (3, "agora channel missing", C.invalidEgressConfig),
        (16, "whatever", C.invalidEgressConfig),
        (14, "whatever", C.egressUnavailable),
        (4001, "", C.creditsExhausted),
        (4002, "", C.sessionDurationExceeded),
        (4003, "", C.serverError),  # 0.1.7 has no concurrencyLimit: drop-in
        (400, "unsupported sample rate", C.unsupportedSampleRate),
        (0, "", C.serverError),
        (7, "something else", C.serverError),
    ],
)
def test_server_error_codes_before_text(
    code: int, message: str, expected: AvatarSDKErrorCode
) -> None:
    err = classify_server_error(
        code, message, phase="websocket_runtime", req_id="r", connection_id="c"
    )
    assert err.code is expected
    assert err.server_code == str(code)
    assert (err.req_id, err.connection_id) == ("r", "c")


@pytest.mark.parametrize(
    ("status", "phase", "expected"),
    [
        (401, "session_token", C.sessionTokenExpired),
        (402, "session_token", C.billingRequired),
        (404, "session_token", C.appIDUnrecognized),
        (400, "websocket_connect", C.sessionTokenInvalid),
        (400, "session_token", C.invalidRequest),
        (403, "websocket_connect", C.invalidRequest),
        (429, "websocket_connect", C.invalidRequest),
        (500, "websocket_connect", C.serverError),
        (503, "session_token", C.serverError),
        (None, "session_token", C.unknown),
    ],
)
def test_http_fallbacks(status: int | None, phase: str, expected: AvatarSDKErrorCode) -> None:
    err = classify_http_rejection(status, b"", phase=phase)
    assert err.code is expected
    assert err.http_status == status
    assert isinstance(err, SessionTokenError) == (phase == "session_token")


def test_404_avatar_not_found_by_text() -> None:
    err = classify_http_rejection(
        404,
        b'{"errors":[{"status":"404","title":"Not Found","detail":"avatar not found"}]}',
        phase="websocket_connect",
    )
    assert err.code is C.avatarNotFound
    assert (err.server_title, err.server_detail) == ("Not Found", "avatar not found")


def test_unauthorized_title_becomes_invalid_egress_like_0_1_7() -> None:
    err = classify_http_rejection(
        401, b'{"errors":[{"status":"401","title":"Unauthorized"}]}', phase="websocket_connect"
    )
    assert err.code is C.invalidEgressConfig


def test_body_shapes() -> None:
    flat = parse_error_body(b'{"code": "E1", "message": "boom"}')
    assert (flat.code, flat.detail) == ("E1", "boom")
    text = parse_error_body(b"plain failure")
    assert text.detail == "plain failure"
    api = parse_error_body('{"errors":[{"id":"abc","status":"404","title":"T","detail":"D"}]}')
    assert (api.code, api.status, api.title, api.detail) == ("abc", 404, "T", "D")
    assert parse_error_body(None).detail is None


@pytest.mark.parametrize(
    ("close_code", "retryable"),
    [
        (4001, False),
        (4002, True),
        (4003, False),
        (4010, False),
        (4503, True),
        (4099, False),
        (4500, True),
        (None, True),
        (1000, True),
        (1006, True),
        (1009, False),
    ],
)
def test_close_codes(close_code: int | None, retryable: bool) -> None:
    assert close_code_retryable(close_code) is retryable
    err = classify_close(close_code, "why")
    assert err.code is C.connectionClosed
    assert err.close_code == close_code
    assert err.retryable is retryable


def test_close_code_enum() -> None:
    assert CloseCode.CREDITS_EXHAUSTED == 4001
    assert CloseCode(4503) is CloseCode.UPSTREAM_UNAVAILABLE


def test_error_is_plain_exception_and_picklable() -> None:
    assert AvatarSDKError.__mro__[1] is Exception
    err = classify_http_rejection(401, b'{"detail":"invalid session token"}', phase="session_token")
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is SessionTokenError
    assert clone.code is err.code and clone.raw_body == err.raw_body


def test_raw_body_not_in_str_or_repr() -> None:
    err = classify_http_rejection(
        500, b'{"detail":"x","secret":"sk-SECRET"}', phase="websocket_connect"
    )
    assert "sk-SECRET" not in str(err)
    assert "sk-SECRET" not in repr(err)
    assert "sk-SECRET" in (err.raw_body or "")


def test_retryable_by_code() -> None:
    assert AvatarSDKError(C.upstreamError, "x").retryable
    assert not AvatarSDKError(C.avatarNotFound, "x").retryable


def test_http_body_code_rules_come_first() -> None:
    body = '{"errors":[{"status":"400","code":"3","detail":"livekit room full"}]}'
    assert (
        classify_http_rejection(400, body, phase="websocket_connect").code is C.invalidEgressConfig
    )
    body = '{"errors":[{"status":"400","code":"INVALID_ARGUMENT","detail":"bad"}]}'
    assert classify_http_rejection(400, body, phase="session_token").code is C.invalidRequest
    body = '{"errors":[{"code":"UNAVAILABLE"}]}'
    assert classify_http_rejection(503, body, phase="websocket_connect").code is C.egressUnavailable


def test_402_before_token_texts() -> None:
    body = '{"errors":[{"status":"402","detail":"invalid session token"}]}'
    assert classify_http_rejection(402, body, phase="websocket_connect").code is C.billingRequired
    body = '{"errors":[{"status":"402","detail":"credits exhausted"}]}'
    assert classify_http_rejection(402, body, phase="websocket_connect").code is C.creditsExhausted


def test_flat_error_key_is_the_code() -> None:
    err = classify_http_rejection(
        403, '{"error": "invalid session token"}', phase="websocket_connect"
    )
    assert err.code is C.sessionTokenInvalid
    assert err.server_code == "invalid session token"


def test_session_token_error_constructors() -> None:
    legacy = SessionTokenError("token call failed", code=C.sessionTokenInvalid, http_status=401)
    assert (legacy.code, legacy.message, legacy.phase) == (
        C.sessionTokenInvalid,
        "token call failed",
        "session_token",
    )
    assert SessionTokenError("plain").code is C.invalidRequest
    modern = SessionTokenError(C.unknown, "x")
    assert (modern.code, modern.message) == (C.unknown, "x")
    assert AvatarSDKError(C.unknown, "x").phase == "unknown"
