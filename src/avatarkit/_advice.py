"""What to do about an error: the advice the SDK appends to its messages, defined once.

The command line strips these suffixes and prints its own, in terms of flags
(:mod:`avatarkit.cli._parser`), so both forms live here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .errors import AvatarSDKErrorCode

__all__ = ["CONNECT_ADVICE", "advice", "check_endpoint"]

#: Per error code (its string value): what the caller can do.
_ADVICE: dict[str, str] = {
    "sessionTokenExpired": "check the API key, or request a new session token",
    "sessionTokenInvalid": "check the API key and app id; get a new token",
    "appIDUnrecognized": "check the app id and console endpoint",
    "appIDMismatch": "the token belongs to another app: check app_id",
    "avatarNotFound": "check avatar_id",
    "billingRequired": "check the account's billing",
    "creditsExhausted": "top up credits before retrying",
    "sessionDurationExceeded": "open a new session",
    "unsupportedSampleRate": "use a sample rate the audio format allows",
    "invalidEgressConfig": "check the LiveKit/Agora egress settings",
    "egressUnavailable": "retry later; egress is unavailable",
    "idleTimeout": "send audio more often, or open a new session",
    "upstreamError": "retry with backoff",
}


def advice(code: AvatarSDKErrorCode) -> str:
    """The `` (what to do)`` suffix for messages of ``code``, or ``""``."""
    text = _ADVICE.get(code.value)
    return f" ({text})" if text else ""


def check_endpoint(parameter: str) -> str:
    """The suffix of a network failure: ``; check <parameter> and the network``."""
    return f"; check {parameter} and the network"


#: The two network-failure suffixes (token call, WebSocket connect).
CONNECT_ADVICE: tuple[str, ...] = (
    check_endpoint("console_endpoint_url"),
    check_endpoint("ingress_endpoint_url"),
)
