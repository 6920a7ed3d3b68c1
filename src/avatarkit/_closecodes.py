"""WebSocket close codes: the service's own (:class:`CloseCode`) and RFC 6455's.

The one definition of every close code the client, the local service and the
transports use, and of what each means for a retry.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "NORMAL_CLOSES",
    "NOT_ON_WIRE",
    "CloseCode",
    "WsClose",
    "close_code_retryable",
    "received_close_code",
]


class CloseCode(IntEnum):
    """WebSocket close codes the service uses to say what became of a session."""

    CREDITS_EXHAUSTED = 4001
    SESSION_DURATION_EXCEEDED = 4002
    CONCURRENCY_LIMIT = 4003
    AUTHENTICATION_FAILED = 4010
    UPSTREAM_UNAVAILABLE = 4503


class WsClose:
    """RFC 6455 close codes, as plain ints (they go straight into close frames)."""

    NORMAL: Final = 1000
    GOING_AWAY: Final = 1001
    PROTOCOL_ERROR: Final = 1002
    UNSUPPORTED_DATA: Final = 1003
    #: Reported when the server's close frame carried no code; never sent.
    NO_STATUS: Final = 1005
    #: The connection dropped without a close frame; never sent.
    ABNORMAL: Final = 1006
    INVALID_DATA: Final = 1007
    POLICY: Final = 1008
    TOO_BIG: Final = 1009
    INTERNAL: Final = 1011
    #: TLS handshake failure; never sent.
    TLS: Final = 1015


#: Closes that end a session normally (1005: a close frame without a code).
NORMAL_CLOSES: Final = frozenset({WsClose.NORMAL, WsClose.GOING_AWAY, WsClose.NO_STATUS})
#: Codes that say "no code" or "no close frame"; never sent in a frame.
NOT_ON_WIRE: Final = frozenset({WsClose.NO_STATUS, WsClose.ABNORMAL, WsClose.TLS})
#: Codes below 3000 a peer may send (RFC 6455 7.4.1 and the IANA registry);
#: 3000-4999 are for libraries and applications. Anything else in a close
#: frame is a protocol error.
_SENDABLE_BELOW_3000 = frozenset({*range(1000, 1004), *range(1007, 1015)})


def received_close_code(code: int) -> int:
    """The close code to report for ``code`` read from a peer's close frame.

    A code RFC 6455 forbids on the wire (0-999, 1004-1006, 1015-2999, 5000
    and up) is a protocol error by the peer: 1002, as 0.1.7 (on websockets)
    reports it, never the raw number.
    """
    if code in _SENDABLE_BELOW_3000 or 3000 <= code < 5000:
        return code
    return WsClose.PROTOCOL_ERROR


#: Closes saying our own traffic was refused: a retry would repeat it.
_REFUSED_TRAFFIC = frozenset(
    {
        WsClose.PROTOCOL_ERROR,
        WsClose.UNSUPPORTED_DATA,
        WsClose.INVALID_DATA,
        WsClose.POLICY,
        WsClose.TOO_BIG,
    }
)


def close_code_retryable(close_code: int | None) -> bool:
    """Whether reconnecting can help after a close with ``close_code``.

    40xx: the request is at fault (except 4002, where a reconnect is expected);
    45xx: transient, retry with backoff; no close code (transport failure) and
    ordinary closes: retry. 1002/1003/1007/1008/1009 mean our own traffic was
    refused, which a retry would repeat.
    """
    if close_code is None:
        return True
    if close_code == CloseCode.SESSION_DURATION_EXCEEDED:
        return True
    if 4000 <= close_code < 4500:
        return False
    if 4500 <= close_code < 4600:
        return True
    return close_code not in _REFUSED_TRAFFIC
