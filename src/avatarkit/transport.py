"""The WebSocket client, behind one small interface.

:class:`Transport` is all the session needs: connect with headers, send a
binary message, close, and a :class:`TransportListener` told of each
incoming message and of the end of the connection. The default,
:class:`PicowsTransport`, uses picows: its callback-per-frame design puts
nothing (no queue, no task, no per-message object) between the socket and
the protocol core, and it measured cheapest per received frame here (see
BENCHMARKS.md). picows offers no permessage-deflate, which the benchmarks
show costs CPU on every frame for small protobuf messages; the service does
not need it, so compression is off.

picows can run its sockets on aiofastnet's transports instead of the event
loop's own. We let it do so on asyncio's default loop, where they cost ~10%
less CPU per received frame, but not on uvloop: there the loop's transport
costs the same per frame, holds ~5 KiB less memory per connection and sets a
connection up faster (figures in BENCHMARKS.md, "Transport choice").

Another library can be plugged in by implementing :class:`Transport` and
passing ``transport_factory`` to :class:`avatarkit.AvatarSession`.

This module holds the interface and what both clients share (close-frame
parsing, error mapping, the redacting logger); the clients themselves live in
:mod:`avatarkit._picows_transport` and :mod:`avatarkit._aiohttp_transport` and
are re-exported here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import picows

from ._advice import check_endpoint
from ._closecodes import WsClose, received_close_code
from ._logctx import SessionLogger
from ._redact import redact_text as _redact
from ._redact import redact_url
from .errors import AvatarSDKError, AvatarSDKErrorCode, ErrorPhase

__all__ = [
    "AiohttpTransport",
    "PicowsTransport",
    "Transport",
    "TransportFactory",
    "TransportListener",
]

logger = SessionLogger(logging.getLogger("avatarkit.transport"))


class _RedactingAdapter(logging.LoggerAdapter):  # type: ignore[type-arg, unused-ignore]
    """picows's logger for our connections, with session tokens masked.

    picows logs the whole upgrade request at its lowest level (9); this
    adapter formats such records itself and masks ``sessionKey`` and
    ``X-Session-Key`` before they reach any handler. (An adapter, not a
    filter: picows would otherwise log through per-connection child loggers.)
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        self.logger.log(level, _redact(text), **kwargs)


#: picows writes its records for our connections here (logger ``avatarkit.picows``).
picows_logger = _RedactingAdapter(SessionLogger(logging.getLogger("avatarkit.picows")), {})
_BINARY = picows.WSMsgType.BINARY
_HEADROOM = 14  # the largest client frame header picows writes in front


#: Largest incoming message (whole, or reassembled from fragments): 16 MiB.
#: The service sends animation frames well under 1 MiB; a larger message
#: ends the session with close code 1009 instead of growing client memory.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024

#: Reported as the close code when the server's close frame carried none (RFC 6455).
NO_STATUS_CODE = WsClose.NO_STATUS

#: Keepalive defaults (seconds): those of avatarkit 0.1.7, which pinged with
#: ``websockets``' defaults. ``SessionConfig`` carries the session's own.
KEEPALIVE_INTERVAL = 20.0
KEEPALIVE_TIMEOUT = 20.0
#: What a keepalive failure is reported as: the close code and reason
#: ``websockets`` (so 0.1.7) fails the connection with. 1011 is retryable.
KEEPALIVE_CLOSE = (WsClose.INTERNAL, "keepalive ping timeout")


def hand_keepalive(transport: object, interval: float | None, timeout: float) -> None:
    """Give the session's keepalive settings to a transport that takes them.

    The built-in transports have ``keepalive_interval`` and
    ``keepalive_timeout`` attributes; a custom transport (``transport_factory``)
    without them keeps its own liveness checks.
    """
    if hasattr(transport, "keepalive_interval") and hasattr(transport, "keepalive_timeout"):
        transport.keepalive_interval = interval
        transport.keepalive_timeout = timeout


def _parse_close(payload: bytes) -> tuple[int, str | None]:
    """``(code, reason)`` of a close frame's payload, however malformed.

    No code (an empty payload, or a single byte, which cannot hold one) is
    :data:`NO_STATUS_CODE`; a code forbidden on the wire is 1002 (see
    :func:`received_close_code`); a reason that is not UTF-8 is decoded with
    replacement characters rather than losing the code with it.
    """
    if len(payload) < 2:
        return NO_STATUS_CODE, None
    code = received_close_code(int.from_bytes(payload[:2], "big"))
    reason = payload[2:].decode("utf-8", "replace") or None
    return code, reason


def _use_aiofastnet(loop: asyncio.AbstractEventLoop) -> bool | None:
    """``False`` on uvloop (its transports are as fast and lighter), else picows's default."""
    return False if type(loop).__module__.startswith("uvloop") else None


class TransportListener(Protocol):
    """What a transport reports to its owner."""

    def on_message(self, data: bytes) -> None:
        """One complete binary message arrived."""

    def on_text(self) -> None:
        """A text frame arrived (not part of the protocol)."""

    def on_closed(self, close_code: int | None, close_reason: str | None) -> None:
        """The connection ended; ``close_code`` is ``None`` when no close frame came."""


class Transport(Protocol):
    """A connected (or connecting) WebSocket, as the session sees it.

    Optional: ``can_send_now() -> bool`` (``send()`` would succeed and
    ``drain()`` return at once); without it ``AudioFeed.push()`` never sends
    directly and its chunks go through the request's feeder task, and the
    interrupt that closes a request the service ended early is sent through
    the awaited path (a task and a timer) instead of at once.
    """

    async def connect(
        self, url: str, headers: dict[str, str], timeout: float, listener: TransportListener
    ) -> None:
        """Open the connection; raise :class:`AvatarSDKError` (phase websocket_connect)."""

    def send(self, data: bytes) -> None:
        """Queue one binary message; raise ``ConnectionError`` when closed."""

    async def drain(self) -> None:
        """Wait while the socket's write buffer is over its high-water mark.

        Raise ``ConnectionError`` when the connection ends while waiting (what
        was queued may not have been sent).
        """

    async def close(
        self, code: int = WsClose.NORMAL, reason: str = "", timeout: float = 2.0
    ) -> None:
        """Close politely (close frame, wait for the peer), then drop the socket.

        Returns within about ``timeout`` seconds whatever the peer does: a
        peer that stopped reading (so the close frame cannot even be written)
        gets its connection dropped without a handshake.
        """

    def abort(self) -> None:
        """Drop the connection at once."""

    @property
    def is_open(self) -> bool:
        """Whether messages can still be sent."""


TransportFactory = Callable[[], Transport]


def _connect_error(message: str, url: str) -> AvatarSDKError:
    return AvatarSDKError(
        AvatarSDKErrorCode.connectionFailed,
        f"{_redact(message)} ({redact_url(url)})" + check_endpoint("ingress_endpoint_url"),
        phase=ErrorPhase.WEBSOCKET_CONNECT,
    )


def _redirect_error(status: int, url: str) -> AvatarSDKError:
    """A 3xx answer to the upgrade: never followed.

    Following it would send the session token (header or query) to whatever
    address the answer names; the configured endpoint must be the final one.
    """
    return AvatarSDKError(
        AvatarSDKErrorCode.connectionFailed,
        f"the server answered the WebSocket upgrade with a redirect (HTTP {status}) "
        f"({redact_url(url)}); redirects are not followed, so the session token never "
        "goes to another address: set ingress_endpoint_url to the final address",
        phase=ErrorPhase.WEBSOCKET_CONNECT,
        http_status=status,
    )


class _RedirectRefused(Exception):
    """Raised from aiohttp's redirect hook to stop it following a 3xx."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _refuse_redirect(session: Any, context: Any, params: Any) -> None:
    """aiohttp ``on_request_redirect`` hook: release the answer, stop there."""
    params.response.close()
    raise _RedirectRefused(int(params.response.status))


# Last: both modules import the shared helpers above from here.
from ._aiohttp_transport import AiohttpTransport  # noqa: E402  (re-export)
from ._picows_transport import PicowsTransport  # noqa: E402  (re-export)
