"""Hostile JSON bodies (token answers, rejected upgrades) give the SDK's own errors.

Deeply nested, huge or malformed bodies must never surface as RecursionError,
MemoryError, UnicodeDecodeError, TypeError or any other foreign exception:
:func:`avatarkit.errors.parse_error_body` and
:func:`avatarkit.protocol.parse_token_response` cap what they parse.
"""

from __future__ import annotations

import json
import time

import pytest

from avatarkit import AvatarSDKError, AvatarSDKErrorCode, SessionTokenError
from avatarkit.errors import classify_http_rejection, load_json_body, parse_error_body
from avatarkit.protocol import parse_token_response

DEEP_LIST = b"[" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000
HUGE = b'{"sessionToken": "' + b"x" * (5 * 1024 * 1024) + b'"}'
HUGE_ERRORS = b'{"errors": [{"status": "401", "detail": "' + b"y" * (5 * 1024 * 1024) + b'"}]}'

HOSTILE: list[bytes] = [
    DEEP_LIST,
    DEEP_LIST + b"]" * 100_000,  # well-formed, and still too deep
    DEEP_OBJECT,
    b'{"errors": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"errors": [{"detail": ' + b"[" * 900 + b"]" * 900 + b"}]}",  # parses; str() would recurse
    HUGE,
    HUGE_ERRORS,
    b"\xff\xfe\x00not utf-8",
    b'{"sessionToken": "\xc3\x28"}',  # invalid UTF-8 inside a string
    b'{"sessionToken": "abc"',  # truncated
    b"",
    b"   ",
    b"NaN",
    b'{"sessionToken": NaN}',
    b'{"sessionToken": Infinity, "errors": [{"status": NaN}]}',
    b'{"errors": [{"status": -Infinity, "code": NaN}]}',
    b"[]",
    b'["sessionToken", "abc"]',
    b'"sessionToken"',
    b"42",
    b"null",
    b"true",
    b'{"sessionToken": 123}',
    b'{"sessionToken": ["abc"]}',
    b'{"sessionToken": {"a": 1}}',
    b'{"errors": "denied"}',
    b'{"errors": {"status": 401}}',
    b'{"errors": [1, 2]}',
    b'{"errors": [null]}',
    b'{"errors": [{"status": [401], "code": {"a": 1}, "title": 5, "detail": true}]}',
    b'{"errors": [{"status": "4' + b"0" * 10_000 + b'"}]}',  # beyond int digit limits
    b'{"status": ' + b"9" * 10_000 + b"}",
    b'{"error": ' + b"1" * 5000 + b"}",
]


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("status", [200, 401, 404, 500])
def test_token_answer_errors_are_session_token_errors(body: bytes, status: int) -> None:
    try:
        token = parse_token_response(status, body)
    except SessionTokenError as err:
        assert err.phase == "session_token"
        if status == 200 and b'"errors"' not in body:
            assert err.code is AvatarSDKErrorCode.protocolError
        assert len(str(err)) < 2000 and len(repr(err)) < 2000
        assert err.raw_body is None or len(err.raw_body) <= 1 << 20
    else:  # only a well-formed answer with a string token gets here
        assert status == 200 and isinstance(token, str) and token


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("as_text", [False, True])
def test_rejection_bodies_are_classified(body: bytes, as_text: bool) -> None:
    raw: bytes | str = body.decode("utf-8", "replace") if as_text else body
    parsed = parse_error_body(raw)
    for value in (parsed.code, parsed.title, parsed.detail):
        assert value is None or (isinstance(value, str) and len(value) <= 4096)
    assert parsed.status is None or isinstance(parsed.status, int)
    err = classify_http_rejection(403, raw, phase="websocket_connect")
    assert isinstance(err, AvatarSDKError) and not isinstance(err, SessionTokenError)
    assert err.http_status == 403 or err.http_status == parsed.status
    assert len(str(err)) < 2000


def test_the_status_of_a_capped_body_still_decides_the_code() -> None:
    err = classify_http_rejection(401, DEEP_LIST, phase="session_token")
    assert isinstance(err, SessionTokenError)
    assert err.code is AvatarSDKErrorCode.sessionTokenExpired and err.http_status == 401
    err = classify_http_rejection(404, HUGE, phase="websocket_connect")
    assert err.code is AvatarSDKErrorCode.appIDUnrecognized


def test_ordinary_bodies_still_parse() -> None:
    error = {"status": "404", "title": "Not Found", "detail": "avatar not found"}
    body = json.dumps({"errors": [error]})
    parsed = parse_error_body(body)
    assert (parsed.status, parsed.title, parsed.detail) == (404, "Not Found", "avatar not found")
    nested_ok = {"errors": [{"status": 402, "meta": {"a": [{"b": [1, 2, {"c": []}]}]}}]}
    assert parse_error_body(json.dumps(nested_ok)).status == 402
    assert parse_token_response(200, b'{"sessionToken": "t", "extra": NaN}') == "t"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 33 + b'"' + b'\\"' * 24000, id="48KiB-unterminated-escapes"),
        pytest.param(
            b"[" * 33 + b'"' + b'\\"' * ((256 * 1024 - 34) // 2), id="256KiB-unterminated-escapes"
        ),
        pytest.param(b"[" * 40 + b'"\\\\' * ((256 * 1024 - 40) // 3), id="256KiB-many-strings"),
    ],
)
def test_depth_check_is_linear_on_hostile_strings(body: bytes) -> None:
    """The nesting check before json.loads scans the body once: a 256 KiB
    body built to make a backtracking string matcher quadratic (minutes of
    blocked event loop) is judged in well under a second."""
    started = time.perf_counter()
    value, why = load_json_body(body)
    elapsed = time.perf_counter() - started
    assert value is None and why is not None
    assert elapsed < 1.0, elapsed


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ('{"a": "' + "[" * 100 + '"}', False),  # brackets in a string do not count
        ('{"a": "\\"' + "[" * 100 + '"}', False),  # nor after an escaped quote
        ('["\\\\"' + ",[" * 40 + "]" * 40 + "]", True),  # an escaped backslash ends the escape
        ("[" * 32 + "]" * 32, False),
        ("[" * 33 + "]" * 33, True),
        ("{" * 20 + "[" * 13 + "]" * 13 + "}" * 20, True),
    ],
)
def test_depth_check_tracks_strings_and_escapes(text: str, deep: bool) -> None:
    """Only brackets outside JSON strings count toward the nesting depth."""
    _value, why = load_json_body(text)
    assert (why is not None and "nested deeper" in why) is deep
