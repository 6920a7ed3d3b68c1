"""How service failures map onto :class:`AvatarSDKError`: rejection bodies, server errors, closes.

Pure functions (no I/O), re-exported by :mod:`avatarkit.errors`; PROTOCOL.md
sections 5 and 6 are the contract.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._advice import advice as _advice
from ._closecodes import CloseCode
from .errors import (
    AvatarSDKError,
    AvatarSDKErrorCode,
    ErrorPhase,
    SessionTokenError,
)

# --------------------------------------------------------------------------
# Parsing rejection bodies
# --------------------------------------------------------------------------

#: Largest body (bytes, or characters for text) parsed as JSON; a larger one
#: is taken as plain text (a rejection) or refused (a token answer). Real
#: answers are well under 4 KB; this keeps a hostile one from costing memory.
MAX_JSON_BODY = 256 * 1024
#: Deepest nesting of ``[``/``{`` parsed; deeper bodies are not parsed at all
#: (they would reach Python's recursion limit). Real answers nest 3 levels.
MAX_JSON_DEPTH = 32
_MAX_FIELD = 4096  # characters kept of a code/title/detail from a body
_MAX_SUMMARY = 500  # characters of the body's detail/title quoted in a message
#: What the depth scan stops at: brackets, quotes and backslashes.
_STRUCTURE = re.compile(r'[\[\]{}"\\]')


def _nesting_depth(text: str) -> int:
    """The deepest bracket nesting of ``text`` outside JSON strings.

    One pass over the characters that matter (``re.finditer`` on a single
    character class, so linear in the length of ``text``), tracking whether
    the scan is inside a string and whether a backslash escaped the next
    character. A backtracking string pattern would be quadratic on an
    unterminated string full of escaped quotes.
    """
    depth = deepest = 0
    in_string = False
    skip = -1  # position of the character a backslash escaped
    for match in _STRUCTURE.finditer(text):
        pos = match.start()
        if pos == skip:
            continue
        char = match.group()
        if in_string:
            if char == "\\":
                skip = pos + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif char in "]}":
            depth -= 1
    return deepest


def load_json_body(raw: str | bytes | bytearray | memoryview) -> tuple[Any, str | None]:
    """``(value, None)`` for a JSON body within the limits, else ``(None, why)``.

    Never raises: bodies larger than :data:`MAX_JSON_BODY`, nested deeper
    than :data:`MAX_JSON_DEPTH`, not UTF-8 or not JSON come back with the
    reason, so callers turn them into the SDK's own errors.
    """
    if len(raw) > MAX_JSON_BODY:
        return None, f"larger than {MAX_JSON_BODY} bytes"
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None, "not valid UTF-8"
    deep_enough = text.count("[") + text.count("{") > MAX_JSON_DEPTH
    if deep_enough and _nesting_depth(text) > MAX_JSON_DEPTH:
        return None, f"nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        return json.loads(text), None
    except (ValueError, RecursionError):  # RecursionError: belt and braces
        return None, "not valid JSON"


class ParsedBody:
    """The first error of a JSON:API, flat JSON or plain-text error body."""

    __slots__ = ("code", "detail", "status", "title")

    def __init__(
        self,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail


def _as_str(value: object) -> str | None:
    if value is None or value == "":
        return None
    # str() as 0.1.7 does; safe here: the depth is capped, so is the size.
    return str(value)[:_MAX_FIELD]


def _as_status(value: object) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 401.0, as 0.1.7 reads it
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None  # lists, objects, NaN, Infinity are no status
    text = value.strip() if isinstance(value, str) else str(value)
    if not text or len(text) > 9 or not text.isdigit():
        return None
    try:
        return int(text)
    except ValueError:  # isdigit() is true for superscripts and circled digits too
        return None


def parse_error_body(raw: str | bytes | None) -> ParsedBody:
    """Read ``status``, ``code`` (or ``id``), ``title``, ``detail`` (or ``message``).

    Accepts ``{"errors": [{...}]}`` (JSON:API), a flat ``{"code", "message"}``
    or ``{"error": ...}`` object, or plain text (taken as the detail). Never
    raises: a body that is not JSON within :data:`MAX_JSON_BODY` and
    :data:`MAX_JSON_DEPTH`, or of unexpected shape, counts as plain text
    (its first 500 characters); each field is cut to 4096 characters.
    """
    if raw is None:
        return ParsedBody()
    if isinstance(raw, (bytes, bytearray)):
        text = bytes(raw[: MAX_JSON_BODY + 1]).decode("utf-8", "replace")
    else:
        text = raw[: MAX_JSON_BODY + 1]
    text = text.strip()
    if not text:
        return ParsedBody()
    data, problem = load_json_body(text)
    if problem is not None:
        return ParsedBody(detail=text[:500])
    item: Any = data
    flat = True
    if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
        item = data["errors"][0]
        flat = False
    if not isinstance(item, dict):
        return ParsedBody(detail=text[:500])
    code = _as_str(item.get("code")) or _as_str(item.get("id"))
    if flat and code is None:
        code = _as_str(item.get("error"))  # {"error": "..."} bodies
    return ParsedBody(
        status=_as_status(item.get("status")),
        code=code,
        title=_as_str(item.get("title")),
        detail=_as_str(item.get("detail")) or _as_str(item.get("message")),
    )


# --------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------

# Numeric (or gRPC-name) server codes looked at before any text: PROTOCOL.md 5/6.
_INVALID_ARGUMENT = ("3", "INVALID_ARGUMENT")
_UNAUTHENTICATED = ("16", "UNAUTHENTICATED")
_UNAVAILABLE = ("14", "UNAVAILABLE")

# Text rules, matched case-insensitively on code + title + detail, in order.
# (HTTP 402 is checked between the first two groups, as avatarkit 0.1.7 does.)
_TEXT_RULES_FIRST: tuple[tuple[tuple[str, ...], AvatarSDKErrorCode], ...] = (
    (("credits exhausted",), AvatarSDKErrorCode.creditsExhausted),
    (
        ("session time limit reached", "maximum session duration"),
        AvatarSDKErrorCode.sessionDurationExceeded,
    ),
)
_TEXT_RULES: tuple[tuple[tuple[str, ...], AvatarSDKErrorCode], ...] = (
    (("session denied",), AvatarSDKErrorCode.billingRequired),
    (("invalid session token", "empty token"), AvatarSDKErrorCode.sessionTokenInvalid),
    (("token is expired", "session token expired"), AvatarSDKErrorCode.sessionTokenExpired),
    (("app id mismatch",), AvatarSDKErrorCode.appIDMismatch),
    (("app id unrecognized", "appidunrecognized"), AvatarSDKErrorCode.appIDUnrecognized),
    (("avatar not found",), AvatarSDKErrorCode.avatarNotFound),
    (("unsupported sample rate",), AvatarSDKErrorCode.unsupportedSampleRate),
    (("livekit silence timeout", "no audio input for"), AvatarSDKErrorCode.idleTimeout),
    (
        (
            "livekit_egress",
            "agora_egress",
            "missing livekit credentials",
            "provide api_token or both api_key and api_secret",
            "unauthorized",
        ),
        AvatarSDKErrorCode.invalidEgressConfig,
    ),
    (
        ("egress client is not configured on server", "failed to create egress connection"),
        AvatarSDKErrorCode.egressUnavailable,
    ),
    (
        ("driven server returned non-200 status code", "driven server request failed"),
        AvatarSDKErrorCode.upstreamError,
    ),
    (
        (
            "expected clientconfiguresession message",
            "unexpected message type",
            "failed to unmarshal initial message",
            "clientconfiguresession message is nil",
            "failed during websocket handshake: expected binary protobuf message",
            "failed during websocket handshake: invalid protobuf payload",
        ),
        AvatarSDKErrorCode.protocolError,
    ),
)


def _match(
    rules: tuple[tuple[tuple[str, ...], AvatarSDKErrorCode], ...], text: str
) -> AvatarSDKErrorCode | None:
    for needles, code in rules:
        if any(n in text for n in needles):
            return code
    return None


def classify(
    *,
    phase: ErrorPhase,
    http_status: int | None = None,
    server_code: str | None = None,
    title: str | None = None,
    detail: str | None = None,
) -> AvatarSDKErrorCode:
    """The SDK error code for a failure, by the rules of PROTOCOL.md sections 5-6.

    One order for every source (token call, upgrade rejection, ``ServerError``)
    so that ``code`` is what avatarkit 0.1.7 reports: server codes 3/16/14
    (or their gRPC names), 4001 and 4002 first; then the text rules (HTTP 402
    right after the credit/duration texts); then HTTP status fallbacks; then
    ``serverError`` during the handshake or at run time, else ``unknown``.
    """
    text = " | ".join(t.strip().lower() for t in (server_code, title, detail) if t and t.strip())
    if server_code in _INVALID_ARGUMENT:
        egress = any(w in text for w in ("livekit", "agora", "egress"))
        return (
            AvatarSDKErrorCode.invalidEgressConfig if egress else AvatarSDKErrorCode.invalidRequest
        )
    if server_code in _UNAUTHENTICATED:
        return AvatarSDKErrorCode.invalidEgressConfig
    if server_code in _UNAVAILABLE:
        return AvatarSDKErrorCode.egressUnavailable
    if server_code == "4001":
        return AvatarSDKErrorCode.creditsExhausted
    if server_code == "4002":
        return AvatarSDKErrorCode.sessionDurationExceeded
    found = _match(_TEXT_RULES_FIRST, text)
    if found is not None:
        return found
    if http_status == 402:
        return AvatarSDKErrorCode.billingRequired
    found = _match(_TEXT_RULES, text)
    if found is not None:
        return found
    return _http_fallback(http_status, phase, text)


def _http_fallback(status: int | None, phase: ErrorPhase, text: str) -> AvatarSDKErrorCode:
    if status == 401:
        return AvatarSDKErrorCode.sessionTokenExpired
    if status == 404:
        return AvatarSDKErrorCode.appIDUnrecognized
    if status == 400 and phase == ErrorPhase.WEBSOCKET_CONNECT:
        return AvatarSDKErrorCode.sessionTokenInvalid
    if status is not None and 400 <= status < 500:
        return AvatarSDKErrorCode.invalidRequest
    if status is not None and status >= 500:
        return AvatarSDKErrorCode.serverError
    if phase in (ErrorPhase.WEBSOCKET_HANDSHAKE, ErrorPhase.WEBSOCKET_RUNTIME):
        return AvatarSDKErrorCode.serverError
    return AvatarSDKErrorCode.unknown


def classify_http_rejection(
    status: int | None,
    body: str | bytes | None,
    *,
    phase: ErrorPhase,
) -> AvatarSDKError:
    """Turn a rejected token call or WebSocket upgrade into an error.

    ``phase`` is ``session_token`` (gives a :class:`SessionTokenError`) or
    ``websocket_connect``. A token answer of 200 with an ``errors`` list is
    reported with the first error's ``status`` as ``http_status``.
    """
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body[: MAX_JSON_BODY + 1]).decode("utf-8", "replace")
    parsed = parse_error_body(body)
    raw = body[:MAX_JSON_BODY] if body is not None else None  # kept for diagnosis, capped
    http_status = status
    if (status is None or status == 200) and parsed.status is not None:
        http_status = parsed.status
    code = classify(
        phase=phase,
        http_status=http_status,
        server_code=parsed.code,
        title=parsed.title,
        detail=parsed.detail,
    )
    what = "session token request" if phase == ErrorPhase.SESSION_TOKEN else "connection"
    summary = parsed.detail or parsed.title or (f"HTTP {http_status}" if http_status else "")
    if len(summary) > _MAX_SUMMARY:
        summary = summary[:_MAX_SUMMARY] + "..."
    message = f"{what} rejected: {summary}" if summary else f"{what} rejected"
    message += _advice(code)
    cls = SessionTokenError if phase == ErrorPhase.SESSION_TOKEN else AvatarSDKError
    return cls(
        code,
        message,
        phase=phase,
        http_status=http_status,
        server_code=parsed.code,
        server_title=parsed.title,
        server_detail=parsed.detail,
        raw_body=raw,
    )


def classify_server_error(
    code: int,
    message: str,
    *,
    phase: ErrorPhase,
    connection_id: str | None = None,
    req_id: str | None = None,
) -> AvatarSDKError:
    """Turn a ``ServerError`` message into an error.

    The numeric code is looked at before the text, as avatarkit 0.1.7 does:
    gRPC 3 (invalid argument: egress config when the text names egress), 16
    (egress credentials), 14 (egress unavailable), 4001 and 4002; any other
    code (4003 included: 0.1.7 has no concurrencyLimit, so it stays
    ``serverError`` with ``server_code`` "4003") falls through to the text
    rules, then to ``serverError``.
    """
    sdk_code = classify(phase=phase, server_code=str(code), detail=message or None)
    return AvatarSDKError(
        sdk_code,
        f"server error: {message or 'no message'}" + _advice(sdk_code),
        phase=phase,
        server_code=str(code),
        server_detail=message or None,
        connection_id=connection_id or None,
        req_id=req_id or None,
    )


def classify_close(
    close_code: int | None,
    close_reason: str | None,
    *,
    phase: ErrorPhase = ErrorPhase.WEBSOCKET_RUNTIME,
    connection_id: str | None = None,
) -> AvatarSDKError:
    """An unexpected disconnect: ``connectionClosed`` as in 0.1.7, plus close details.

    ``retryable`` follows the close-code contract (:func:`close_code_retryable`).
    """
    what = f"code {close_code}" if close_code is not None else "no close code"
    reason = f": {close_reason}" if close_reason else ""
    hint = ""
    if close_code is not None:
        try:
            hint = f" ({CloseCode(close_code).name.lower().replace('_', ' ')})"
        except ValueError:
            hint = ""
    return AvatarSDKError(
        AvatarSDKErrorCode.connectionClosed,
        f"connection closed by the server ({what}{reason}){hint}",
        phase=phase,
        close_code=close_code,
        close_reason=close_reason or None,
        connection_id=connection_id,
    )
