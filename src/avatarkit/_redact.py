"""Keeping secrets out of logs, ``repr()`` and error text: the one place that masks them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from .errors import AvatarSDKError

_E = TypeVar("_E", bound="AvatarSDKError")

__all__ = ["MASK", "mask", "mask_in", "redact_text", "redact_url", "scrub_error"]

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


_TEXT_FIELDS = (
    "message",
    "server_code",
    "server_title",
    "server_detail",
    "raw_body",
    "close_reason",
)


def scrub_error(error: _E, secrets: tuple[str, ...]) -> _E:
    """``error`` with each of ``secrets`` (and its URL-quoted forms) masked in every
    text field and its ``args``.

    For errors built from what a server answered: a gateway may echo the
    request (its URL, with the session token under query auth, or its
    headers) in an error page, and that text becomes the error's message.
    """
    if not _forms(secrets):
        return error

    def clean(text: str) -> str:
        return scrub_error_text(text, secrets)

    for name in _TEXT_FIELDS:
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, clean(value))
    error.args = tuple(clean(a) if isinstance(a, str) else a for a in error.args)
    return error


def url_secrets(url: str, headers: dict[str, str]) -> tuple[str, ...]:
    """The session token an upgrade request carries: ``sessionKey`` or ``X-Session-Key``."""
    found = [v for k, v in parse_qsl(urlsplit(url).query) if k == "sessionKey"]
    found += [v for k, v in headers.items() if k.lower() == "x-session-key"]
    return tuple(found)


def mask_in(text: str | None, secret: str | None) -> str | None:
    """``text`` (a server's close reason, say) with ``secret`` masked, if it quotes it."""
    if text is None or not secret:
        return text
    return scrub_error_text(text, (secret,))


def scrub_error_text(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with each secret and its URL-quoted forms masked."""
    for form in _forms(secrets):
        text = text.replace(form, MASK)
    return text


def _forms(secrets: tuple[str, ...]) -> list[str]:
    """Each secret as is and URL-quoted, longest first (so no form is half-masked)."""
    forms = {form for s in secrets if s for form in (s, quote(s, safe=""), quote_plus(s))}
    return sorted(forms, key=len, reverse=True)
