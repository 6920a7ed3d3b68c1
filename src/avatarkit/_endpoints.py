"""The HTTP token call and the WebSocket upgrade as plain data: URLs, headers, bodies.

Byte-exactly what avatarkit 0.1.7 sends (minus its query-string bug, see
:func:`build_websocket_url`); re-exported by :mod:`avatarkit.protocol`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import (
    MAX_JSON_BODY,
    AvatarSDKError,
    AvatarSDKErrorCode,
    ErrorPhase,
    SessionTokenError,
    classify_http_rejection,
    load_json_body,
)

# --------------------------------------------------------------------------
# HTTP token call and WebSocket URL
# --------------------------------------------------------------------------

_CONSOLE_SUFFIX = "/v1/console"


def usable_token(token: str) -> bool:
    """Whether ``token`` is visible ASCII only (no spaces, line breaks, controls).

    A session token goes into the ``X-Session-Key`` header: a line break in
    it would add headers of the sender's choosing to the upgrade request.
    """
    return token.isascii() and token.isprintable() and " " not in token


def check_session_token(token: object) -> None:
    """Refuse (``ValueError``) a token given to ``use_session_token()`` that
    is empty or not :func:`usable_token`; the token itself is never echoed."""
    if not isinstance(token, str) or not token:
        raise ValueError("session token must be a non-empty string")
    if not usable_token(token):
        raise ValueError(
            "session token holds spaces, line breaks, control or non-ASCII characters, "
            "which an HTTP header cannot carry; pass the token exactly as minted"
        )


def token_urls(console_endpoint_url: str) -> tuple[str, ...]:
    """Where to ask for a session token, in order.

    ``{console}/session-tokens`` first, byte-identical to avatarkit 0.1.7. A
    base that does not end in ``/v1/console`` may be an API root of a newer
    service, so ``{root}/v1/auth/session-token`` is tried next when the first
    answers 404.
    """
    base = console_endpoint_url.rstrip("/")
    legacy = base + "/session-tokens"
    if base.endswith(_CONSOLE_SUFFIX):
        return (legacy,)
    return (legacy, base + "/v1/auth/session-token")


def token_url(console_endpoint_url: str) -> str:
    """The first URL of :func:`token_urls` (what avatarkit 0.1.7 calls)."""
    return token_urls(console_endpoint_url)[0]


def expire_at_seconds(expire_at: datetime) -> int:
    """Unix seconds of ``expire_at``.

    A naive datetime is local time, as ``datetime.timestamp()`` (and so
    avatarkit 0.1.7) reads it; pass an aware one to be explicit.
    """
    return int(expire_at.timestamp())


def build_token_request(
    console_endpoint_url: str, api_key: str, expire_at: datetime
) -> tuple[str, dict[str, str], bytes]:
    """``(url, headers, body)`` of the session-token POST."""
    body = json.dumps({"expireAt": expire_at_seconds(expire_at)}).encode()
    headers = {"X-Api-Key": api_key, "Content-Type": "application/json"}
    return token_url(console_endpoint_url), headers, body


def parse_token_response(status: int, body: bytes) -> str:
    """The token from a token-call answer, or a :class:`SessionTokenError`.

    Reads ``sessionToken`` (legacy route) or ``session_token`` (successor).
    Never raises anything but :class:`SessionTokenError`: an answer larger
    than :data:`~avatarkit.errors.MAX_JSON_BODY`, nested deeper than
    :data:`~avatarkit.errors.MAX_JSON_DEPTH`, not UTF-8, not JSON or not a
    JSON object is ``protocolError`` (as 0.1.7 reports an undecodable answer).
    """
    phase = ErrorPhase.SESSION_TOKEN
    if status != 200:
        raise classify_http_rejection(status, body, phase=phase)
    data, problem = load_json_body(body)
    if problem is None and not isinstance(data, Mapping):
        problem = "not a JSON object"
    if problem is not None:
        raise SessionTokenError(
            AvatarSDKErrorCode.protocolError,
            f"session token response is {problem}",
            phase=phase,
            http_status=status,
            raw_body=bytes(body[:MAX_JSON_BODY]).decode("utf-8", "replace"),
        )
    assert isinstance(data, Mapping)
    if data.get("errors"):
        raise classify_http_rejection(status, body, phase=phase)
    token = data.get("sessionToken") or data.get("session_token")
    if not isinstance(token, str) or not token:
        raise SessionTokenError(
            AvatarSDKErrorCode.protocolError,
            "session token response has neither 'sessionToken' nor 'session_token'",
            phase=phase,
            http_status=status,
        )
    if not usable_token(token):
        # Not echoed: it is a secret, and the characters are the problem.
        raise SessionTokenError(
            AvatarSDKErrorCode.protocolError,
            "the console sent an unusable session token (spaces, line breaks, control or "
            "non-ASCII characters): is console_endpoint_url the console's address?",
            phase=phase,
            http_status=status,
        )
    return token


def build_websocket_url(
    ingress_endpoint_url: str,
    *,
    avatar_id: str,
    app_id: str,
    token: str,
    use_query_auth: bool,
) -> tuple[str, dict[str, str]]:
    """``(url, headers)`` of the WebSocket upgrade.

    ``http``/``https`` become ``ws``/``wss``; the path gets ``/websocket``;
    an existing query is kept (an ``id`` in it is replaced, blank values are
    dropped) and ``id``, then ``appId`` and ``sessionKey`` for query auth,
    are appended. Header auth sends ``X-App-ID`` and ``X-Session-Key``.
    """
    parts = urlsplit(ingress_endpoint_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(
            f"ingress_endpoint_url has an unsupported scheme {parts.scheme!r}; "
            "use ws://, wss://, http:// or https://"
        )
    if not use_query_auth and not (app_id.isascii() and app_id.isprintable()):
        # 0.1.7 fails this upgrade too (websockets refuses the header); never
        # let a line break add headers to the request.
        raise AvatarSDKError(
            AvatarSDKErrorCode.connectionFailed,
            "app_id holds characters an HTTP header cannot carry (line breaks, control or "
            "non-ASCII characters); pass the app id exactly as the console shows it",
            phase=ErrorPhase.WEBSOCKET_CONNECT,
        )
    if not usable_token(token):
        raise AvatarSDKError(
            AvatarSDKErrorCode.connectionFailed,
            "the session token holds characters an HTTP header cannot carry",
            phase=ErrorPhase.WEBSOCKET_CONNECT,
        )
    path = parts.path.rstrip("/") + "/websocket"
    replaced = ("id", "appId", "sessionKey") if use_query_auth else ("id",)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if v and k not in replaced
    ]
    query.append(("id", avatar_id))
    headers: dict[str, str] = {}
    if use_query_auth:
        query.extend((("appId", app_id), ("sessionKey", token)))
    else:
        headers = {"X-App-ID": app_id, "X-Session-Key": token}
    url = urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))
    return url, headers
