"""The session-token HTTP call, on aiohttp's client shared per event loop.

Every session on a loop shares one :class:`aiohttp.ClientSession` (made by
:func:`new_client`, owned by :mod:`avatarkit._loopguard`), so consecutive
token calls reuse a kept-alive connection. What the client is set up to do:

- timeouts: :data:`CONNECT_TIMEOUT` to connect, :data:`TOTAL_TIMEOUT` for
  the whole call; a timeout is never retried (the server may have minted a
  token meanwhile; the caller decides);
- no redirects: a 3xx answer is an error saying so (following it would send
  the API key to whatever address the answer names);
- bounded answers: at most :data:`MAX_BODY` bytes of body, header lines of
  at most :data:`MAX_HEADER_LINE` bytes (aiohttp's parser refuses longer or
  endless header blocks);
- idle connections kept :data:`IDLE_SECONDS` (a NAT or load balancer may
  drop a quiet connection without a word), at most
  :data:`MAX_IDLE_CONNECTIONS` of them; no cookies, no proxy settings
  from the environment; TLS verified with the system's trust store, or
  with ``SessionConfig.ssl_context`` when set.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ._advice import check_endpoint
from ._redact import scrub_error
from ._tls import certificate_error, describe
from .errors import AvatarSDKErrorCode, ErrorPhase, SessionTokenError, classify_http_rejection
from .protocol import build_token_request, parse_token_response, token_urls

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "CONNECT_TIMEOUT",
    "IDLE_SECONDS",
    "MAX_BODY",
    "MAX_HEADER_LINE",
    "MAX_IDLE_CONNECTIONS",
    "TOTAL_TIMEOUT",
    "TokenCallError",
    "new_client",
    "post",
    "request_session_token",
]

#: Seconds to open the connection (TCP and TLS).
CONNECT_TIMEOUT = 10.0
#: Seconds for the whole call, answer included.
TOTAL_TIMEOUT = 15.0
#: Seconds an idle connection is kept for the next call.
IDLE_SECONDS = 15.0
#: Connections kept open for reuse after a burst of concurrent calls; the
#: others are closed once answered (a pool starting 100 sessions would
#: otherwise keep 100 idle connections, ~10 KB each, for IDLE_SECONDS).
MAX_IDLE_CONNECTIONS = 8
#: Largest answer body read (a token answer is a few hundred bytes).
MAX_BODY = 1 << 20
#: Longest status or header line, and longest header field, of the answer.
MAX_HEADER_LINE = 8190


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"avatarkit-python/{version('avatarkit')}"
    except Exception:  # not installed as a distribution (a source checkout)
        return "avatarkit-python"


USER_AGENT = _user_agent()


class TokenCallError(Exception):
    """The answer could not be used (oversized, or the URL cannot be called)."""


class AnswerTooLarge(TokenCallError):
    """The answer's body is over :data:`MAX_BODY`; ``status`` is its HTTP status.

    Not a connection failure: the caller classifies it by the status (a 200
    is a broken answer, an HTTP error goes by its status), as 0.1.7, which
    reads any body whole, does.
    """

    def __init__(self, status: int) -> None:
        super().__init__(f"answer larger than {MAX_BODY} bytes")
        self.status = status


def new_client(
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    total_timeout: float = TOTAL_TIMEOUT,
    idle_seconds: float = IDLE_SECONDS,
) -> aiohttp.ClientSession:
    """An aiohttp client set up for token calls (see the module docstring)."""
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=idle_seconds),
        timeout=aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        max_line_size=MAX_HEADER_LINE,
        max_field_size=MAX_HEADER_LINE,
        trust_env=False,
    )


def _check_url(url: str) -> None:
    """Refuse a URL the call cannot use, with a message naming the setting."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise TokenCallError(f"console_endpoint_url is not a usable URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise TokenCallError(f"unsupported URL {url!r}: use http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise TokenCallError(
            "credentials in console_endpoint_url are not supported; the API key is the credential"
        )
    host = parts.hostname
    if not host.isascii():
        return  # aiohttp encodes international names itself (IDNA 2008)
    labels = host.rstrip(".").split(".")
    if ":" not in host and any(not label or len(label) > 63 for label in labels):
        raise TokenCallError(
            f"console_endpoint_url has a host name that cannot be looked up ({host[:80]!r}): "
            "empty or over-long label"
        )


async def post(
    client: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """POST ``body``; return ``(status, answer body)``, redirects not followed.

    Raises :class:`TokenCallError` (bad URL, answer over :data:`MAX_BODY`),
    ``aiohttp.ClientError``/``OSError`` (connection, malformed answer) or
    ``asyncio.TimeoutError``.
    """
    _check_url(url)
    # ssl=True: aiohttp's default verified context; else the caller's context.
    tls: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    key = id(client)
    _in_flight[key] = _in_flight.get(key, 0) + 1
    if _in_flight[key] > MAX_IDLE_CONNECTIONS:
        # A burst: this connection is not kept for reuse (asked before the
        # request, as aiohttp pools a connection as soon as its answer is read).
        headers = {**headers, "Connection": "close"}
    try:
        async with client.post(
            url, data=body, headers=headers, allow_redirects=False, ssl=tls
        ) as resp:
            if resp.content_length is not None and resp.content_length > MAX_BODY:
                raise AnswerTooLarge(resp.status)
            payload = bytearray()
            async for chunk in resp.content.iter_chunked(1 << 16):
                payload += chunk
                if len(payload) > MAX_BODY:
                    raise AnswerTooLarge(resp.status)
            return resp.status, bytes(payload)
    finally:
        left = _in_flight[key] - 1
        if left:
            _in_flight[key] = left
        else:
            del _in_flight[key]


#: Token calls under way per client (``id()`` of the aiohttp session): a call
#: started while :data:`MAX_IDLE_CONNECTIONS` others run asks for
#: ``Connection: close``, so at most that many connections stay pooled.
_in_flight: dict[int, int] = {}


async def request_session_token(
    console_endpoint_url: str,
    api_key: str,
    expire_at: datetime,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """POST for a session token; raise :class:`SessionTokenError` on any failure.

    Tries :func:`~avatarkit.protocol.token_urls` in order, moving on only when
    a route answers 404.
    """
    import aiohttp

    from ._loopguard import http_client

    _, headers, body = build_token_request(console_endpoint_url, api_key, expire_at)
    urls = token_urls(console_endpoint_url)
    oversized = False
    for index, url in enumerate(urls):
        try:
            status, payload = await post(http_client(), url, headers, body, ssl_context)
        except (asyncio.TimeoutError, TimeoutError):
            raise SessionTokenError(
                AvatarSDKErrorCode.connectionFailed,
                f"session token request to {url} timed out"
                + check_endpoint("console_endpoint_url"),
                phase=ErrorPhase.SESSION_TOKEN,
            ) from None
        except AnswerTooLarge as exc:  # classified below by its status
            status, payload, oversized = exc.status, b"", True
        except (TokenCallError, aiohttp.ClientError, OSError) as exc:
            cert = certificate_error(exc)
            detail = describe(cert) if cert is not None else (str(exc) or type(exc).__name__)
            raise SessionTokenError(
                AvatarSDKErrorCode.connectionFailed,
                f"session token request to {url} failed: {detail}"
                + check_endpoint("console_endpoint_url"),
                phase=ErrorPhase.SESSION_TOKEN,
            ) from None
        if 300 <= status < 400:
            raise SessionTokenError(
                AvatarSDKErrorCode.connectionFailed,
                f"session token request to {url} was answered with a redirect (HTTP {status}); "
                "redirects are not followed, so the API key never goes to another address: "
                "set console_endpoint_url to the final address",
                phase=ErrorPhase.SESSION_TOKEN,
                http_status=status,
            )
        if status == 404 and index + 1 < len(urls):
            oversized = False
            continue
        break
    if oversized:
        raise _oversized_answer(url, status)
    try:
        return parse_token_response(status, payload)
    except SessionTokenError as error:
        # A console that echoes the request (its X-Api-Key header) in an error
        # page must not put the API key into the error's text.
        scrub_error(error, (api_key,))
        raise


def _oversized_answer(url: str, status: int) -> SessionTokenError:
    """An answer body over :data:`MAX_BODY` (not read): classified by its status.

    A 200 is a broken answer (``protocolError``); an HTTP error gets the code
    its status gives (its body, unread, cannot refine it). Not
    ``connectionFailed``: the connection worked.
    """
    phase = ErrorPhase.SESSION_TOKEN
    if status == 200:
        code = AvatarSDKErrorCode.protocolError
    else:
        code = classify_http_rejection(status, None, phase=phase).code
    return SessionTokenError(
        code,
        f"session token request to {url} was answered HTTP {status} with a body larger "
        f"than {MAX_BODY} bytes (not read)",
        phase=phase,
        http_status=status,
    )
