"""The local service's addresses and dev credentials: a mixin of :class:`DevServer`.

The URLs a client needs (console, ingress, the WebSocket endpoint), the
built-in dev API key, app and avatar, tokens minted without the HTTP call, and
``session_kwargs()`` for ``avatarkit.new_avatar_session``. The state they read
(host, port, TLS context, token signer) is the server's.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from ._auth import DEV_API_KEY, DEV_APP_ID, DEV_AVATAR_ID, TokenSigner

__all__ = ["ServerAddresses"]


class ServerAddresses:
    """Mixin: where a :class:`DevServer` listens and how to reach it."""

    host: str
    ssl_context: ssl.SSLContext | None
    _port: int | None
    _signer: TokenSigner

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("DevServer is not started: use 'async with' or await start()")
        return self._port

    @property
    def _url_host(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0"):
            return "127.0.0.1"
        if host == "::":
            return "[::1]"
        try:
            if ipaddress.ip_address(host).version == 6:
                return f"[{host}]"
        except ValueError:
            pass
        return host

    @property
    def api_root(self) -> str:
        """``http://HOST:PORT`` (``https://`` with an ``ssl_context``)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self._url_host}:{self.port}"

    @property
    def console_url(self) -> str:
        """Console base URL, ``http://HOST:PORT/v1/console``."""
        return self.api_root + "/v1/console"

    @property
    def ingress_url(self) -> str:
        """Ingress base URL, ``ws://HOST:PORT/v2/driveningress`` (``wss://`` with TLS)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self._url_host}:{self.port}/v2/driveningress"

    @property
    def websocket_url(self) -> str:
        """The WebSocket endpoint itself (ingress URL + ``/websocket``)."""
        return self.ingress_url + "/websocket"

    api_key = DEV_API_KEY
    """The built-in dev API key (bound to :attr:`app_id`)."""
    app_id = DEV_APP_ID
    """The built-in dev app id."""
    avatar_id = DEV_AVATAR_ID
    """The built-in dev avatar."""

    def issue_token(
        self, app_id: str | None = None, *, expire_at: int | None = None, ttl: float = 3600
    ) -> str:
        """A session token minted directly (no HTTP call, no expiry checks).

        Tests use it for tokens the token route would refuse, e.g. an
        ``expire_at`` in the past to see the upgrade answer ``session token
        expired``.
        """
        if expire_at is None:
            expire_at = int(time.time() + ttl)
        return self._signer.issue(app_id or self.app_id, expire_at)

    def session_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``avatarkit.new_avatar_session`` pointing here."""
        kwargs: dict[str, Any] = {
            "avatar_id": self.avatar_id,
            "api_key": self.api_key,
            "app_id": self.app_id,
            "console_endpoint_url": self.console_url,
            "ingress_endpoint_url": self.ingress_url,
            "expire_at": datetime.now(timezone.utc) + timedelta(hours=1),
        }
        kwargs.update(overrides)
        return kwargs
