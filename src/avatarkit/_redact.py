"""Keeping secrets out of logs, ``repr()`` and error text: the one place that masks them."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "mask", "redact_text", "redact_url"]

#: What a secret is replaced with.
MASK = "***"

_SECRET_IN_TEXT = re.compile(r"(sessionKey=|X-Session-Key:\s*)[^&\s'\\]+", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with session tokens (query ``sessionKey=`` or header form) masked."""
    return _SECRET_IN_TEXT.sub(r"\1" + MASK, text)


def redact_url(url: str) -> str:
    """``url`` with the ``sessionKey`` query value masked, for logs and errors."""
    parts = urlsplit(url)
    if "sessionKey" not in parts.query:
        return url
    query = [
        (k, MASK if k == "sessionKey" else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def mask(secret: str) -> str:
    """How a secret field shows in a ``repr()``: ``'***'``, or ``''`` when unset."""
    return repr(MASK) if secret else "''"
