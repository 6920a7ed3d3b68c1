"""Credentials and session tokens of the local service.

Tokens are ``v1.<payload>.<signature>``: ``payload`` is base64url JSON
``{"app": app_id, "exp": unix_seconds, "jti": random}`` and ``signature`` the
base64url HMAC-SHA256 of the ``v1.<payload>`` text under a secret drawn at
random for each server, so a token only works on the server that issued it.
Signatures are compared in constant time (:func:`hmac.compare_digest`) and
checked before anything in the payload is read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

__all__ = [
    "DEV_API_KEY",
    "DEV_APP_ID",
    "DEV_AVATAR_ID",
    "Credentials",
    "Rejection",
    "TokenClaims",
    "TokenSigner",
]

DEV_API_KEY = "dev-api-key"
DEV_APP_ID = "dev-app-id"
DEV_AVATAR_ID = "dev-avatar"

_PREFIX = "v1."


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an HTTP call is refused: status and the JSON:API ``code``/``title``/``detail``."""

    status: int
    code: str
    title: str
    detail: str


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified session token says."""

    app_id: str
    expire_at: int


class TokenSigner:
    """Issues and verifies session tokens with a per-server random secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def _sign(self, signed_part: str) -> str:
        return _b64encode(hmac.new(self._secret, signed_part.encode(), hashlib.sha256).digest())

    def issue(self, app_id: str, expire_at: int) -> str:
        """A token for ``app_id`` valid until ``expire_at`` (unix seconds)."""
        payload = json.dumps(
            {"app": app_id, "exp": int(expire_at), "jti": secrets.token_hex(8)},
            separators=(",", ":"),
        ).encode()
        signed_part = _PREFIX + _b64encode(payload)
        return signed_part + "." + self._sign(signed_part)

    def verify(self, token: str, *, now: float | None = None) -> TokenClaims | Rejection:
        """The token's claims, or the rejection the upgrade answers with."""
        if not token:
            return Rejection(
                401,
                "sessionTokenInvalid",
                "Invalid session token",
                "invalid session token: empty token",
            )
        invalid = Rejection(
            401, "sessionTokenInvalid", "Invalid session token", "invalid session token"
        )
        if not token.isascii():  # tokens are base64url text; a non-UTF-8 header cannot be one
            return invalid
        signed_part, dot, signature = token.rpartition(".")
        if not dot or not signed_part.startswith(_PREFIX):
            return invalid
        expected = self._sign(signed_part)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return invalid
        try:
            claims = json.loads(_b64decode(signed_part[len(_PREFIX) :]))
            app_id = claims["app"]
            expire_at = claims["exp"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return invalid
        if not isinstance(app_id, str) or not isinstance(expire_at, int):
            return invalid
        if expire_at <= (time.time() if now is None else now):
            return Rejection(
                401, "sessionTokenExpired", "Session token expired", "session token expired"
            )
        return TokenClaims(app_id, expire_at)


class Credentials:
    """API keys (each bound to one app id) and known avatars."""

    __slots__ = ("_api_keys", "_avatars")

    def __init__(self) -> None:
        self._api_keys: dict[str, str] = {}
        self._avatars: set[str] = set()

    def add_api_key(self, api_key: str, app_id: str) -> None:
        if not api_key or not app_id:
            raise ValueError("api_key and app_id must be non-empty")
        self._api_keys[api_key] = app_id

    def add_avatar(self, avatar_id: str) -> None:
        if not avatar_id:
            raise ValueError("avatar_id must be non-empty")
        self._avatars.add(avatar_id)

    def app_for_key(self, api_key: str) -> str | None:
        """The app of ``api_key`` (compared in constant time), or ``None``."""
        found: str | None = None
        # Header values that are not UTF-8 arrive with surrogate escapes:
        # compare their original bytes (they match no key) instead of failing.
        given = api_key.encode("utf-8", "surrogateescape")
        for key, app_id in self._api_keys.items():
            if hmac.compare_digest(key.encode(), given):
                found = app_id
        return found

    def has_app(self, app_id: str) -> bool:
        return app_id in self._api_keys.values()

    def has_avatar(self, avatar_id: str) -> bool:
        return avatar_id in self._avatars

    @property
    def api_keys(self) -> dict[str, str]:
        """API key -> app id (a copy)."""
        return dict(self._api_keys)

    @property
    def avatars(self) -> frozenset[str]:
        return frozenset(self._avatars)
