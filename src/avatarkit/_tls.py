"""TLS for the token call and the WebSocket: one context, one message for a refused certificate.

``SessionConfig.ssl_context`` is used by both; ``None`` means the default
context (the system's trust store, certificate and host name verified). A
certificate the context does not trust is reported as ``connectionFailed``
saying that certificate verification failed and what to do about it.
"""

from __future__ import annotations

import ssl

__all__ = ["CERT_ADVICE", "certificate_error", "client_context", "describe", "hand_to"]

#: What to do when the server's certificate is not trusted.
CERT_ADVICE = (
    "TLS certificate verification failed: the server's certificate is not trusted by "
    "the client's TLS context. For a private or test CA pass "
    "ssl_context=ssl.create_default_context(cafile='ca.pem') (CLI: --cafile ca.pem); "
    "never turn verification off"
)


def client_context(context: ssl.SSLContext | None) -> ssl.SSLContext:
    """``context``, or the default verified client context when it is ``None``."""
    return context if context is not None else ssl.create_default_context()


def hand_to(transport: object, context: ssl.SSLContext | None) -> None:
    """Give ``context`` to a transport that takes one (an ``ssl_context`` attribute).

    The built-in transports have it; a custom transport (``transport_factory``)
    without it handles TLS itself.
    """
    if context is not None and hasattr(transport, "ssl_context"):
        transport.ssl_context = context


def certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate-verification error behind ``exc`` (its chain included), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "certificate_error", None)  # aiohttp's wrapper
        if isinstance(inner, ssl.SSLCertVerificationError):
            return inner
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        current = current.__cause__ or current.__context__
    return None


def describe(exc: ssl.SSLCertVerificationError) -> str:
    """The advice plus the library's short reason (e.g. ``unable to get local issuer``)."""
    reason = (
        getattr(exc, "verify_message", None)
        or getattr(exc, "reason", None)
        or "certificate refused"
    )
    return f"{CERT_ADVICE} ({reason})"
