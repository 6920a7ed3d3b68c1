"""Which service a command talks to: the configured hosted one or the embedded local one."""

from __future__ import annotations

import argparse
import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ._common import CLIError, _note

# (attribute, flag, environment variable, what it is)
_CONNECTION = (
    ("api_key", "--api-key", "AVATARKIT_API_KEY", "API key"),
    ("app_id", "--app-id", "AVATARKIT_APP_ID", "app id"),
    ("avatar_id", "--avatar-id", "AVATARKIT_AVATAR_ID", "avatar id"),
    ("console_endpoint", "--console-endpoint", "AVATARKIT_CONSOLE_ENDPOINT", "console URL"),
    ("ingress_endpoint", "--ingress-endpoint", "AVATARKIT_INGRESS_ENDPOINT", "ingress URL"),
)


# What each endpoint may start with (the SDK also takes http(s):// for the ingress).
_URL_SCHEMES = {
    "console_endpoint": ("http", "https"),
    "ingress_endpoint": ("ws", "wss", "http", "https"),
}
_URL_EXAMPLES = {
    "console_endpoint": "https://HOST/v1/console",
    "ingress_endpoint": "wss://HOST/v2/driveningress",
}


def _check_url(
    url: str, attr: str, flag: str, env: str, what: str, schemes: tuple[str, ...]
) -> None:
    """Refuse an endpoint that cannot be parsed, naming its option, before anything starts.

    The value itself is not repeated (a URL may carry credentials).
    """
    from ..config import url_problem

    reason = url_problem(url, schemes, check_port=True)
    if reason is None:
        return
    raise CLIError(
        f"{flag} (or {env}) is not a valid URL: {reason}",
        f"give the {what}, e.g. {_URL_EXAMPLES[attr]}",
    )


@dataclass(frozen=True)
class Target:
    """Endpoint and credentials of the service a command talks to."""

    api_key: str
    app_id: str
    avatar_id: str
    console_endpoint: str
    ingress_endpoint: str
    local: bool
    """True for the embedded local avatar service."""
    server: Any = field(default=None, repr=False, compare=False)
    """The embedded :class:`~avatarkit.devserver.DevServer` (``None`` for a configured one)."""
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    """TLS context trusting ``--cafile`` (``None``: the default verified context)."""


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """A verified client context that also trusts ``--cafile`` (or ``AVATARKIT_CAFILE``)."""
    cafile = getattr(args, "cafile", None) or os.environ.get("AVATARKIT_CAFILE", "")
    if not cafile:
        return None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise CLIError(
            f"cannot load --cafile {cafile!r}: {getattr(exc, 'strerror', None) or exc}",
            "give a PEM file holding the CA certificate that signed the service's certificate",
        ) from None


def _configured(args: argparse.Namespace) -> dict[str, str]:
    values: dict[str, str] = {}
    for attr, _flag, env, _what in _CONNECTION:
        value = getattr(args, attr, None) or os.environ.get(env, "")
        if value:
            values[attr] = value
    return values


@contextlib.asynccontextmanager
async def connect_target(args: argparse.Namespace, *, local_pace: str) -> AsyncIterator[Target]:
    """The hosted service when configured, else the embedded local service for the block."""
    values = _configured(args)
    if values:
        missing = [f"{flag} (or {env})" for attr, flag, env, _ in _CONNECTION if attr not in values]
        if missing:
            raise CLIError(
                "incomplete service settings: missing " + ", ".join(missing),
                "set all five to use the hosted service, or none to use the local service",
            )
        for attr, flag, env, what in _CONNECTION:
            schemes = _URL_SCHEMES.get(attr)
            if schemes is not None:
                _check_url(values[attr], attr, flag, env, what, schemes)
        yield Target(local=False, ssl_context=_ssl_context(args), **values)
        return
    from ..devserver import DevServer

    async with DevServer(host="127.0.0.1", port=0, pace=local_pace) as server:
        _note(
            f"embedded local avatar service at {_base_url(server.console_url)} "
            f"(no AVATARKIT_* settings; {local_pace} pace)"
        )
        yield Target(
            api_key=server.api_key,
            app_id=server.app_id,
            avatar_id=server.avatar_id,
            console_endpoint=server.console_url,
            ingress_endpoint=server.ingress_url,
            local=True,
            server=server,
        )


def _base_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
