"""Malformed HTTP: one redacted INFO line and a JSON:API 400, never the offending line.

aiohttp's parser refuses a request head that is not valid HTTP (a control
byte in a header value, a raw non-ASCII byte in the target, a bad
``Content-Length``...) before any route or middleware runs. By default it
logs that at ERROR with a traceback, and answers a ``text/plain`` 400; both
quote the offending line, so a session token or API key sent in a header or
the query would end up in the service's log and echoed back. Issue 9 wants
no secrets in logs and one INFO line per rejected request: the service's
connections use :class:`RequestHandler` below, installed by
:class:`AppRunner`.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ._jsonapi import error_response

__all__ = ["AppRunner", "RequestHandler"]

log = logging.getLogger("avatarkit.devserver")


class RequestHandler(web.RequestHandler):
    """aiohttp's connection handler, with parser refusals redacted (see the module doc)."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A JSON:API error for a request head aiohttp could not parse; else aiohttp's own.

        Only the exception's class and the status are logged (at INFO): its
        message quotes the raw request line or header, credentials included.
        Other errors (a bug in a handler: 500) keep aiohttp's ERROR traceback.
        """
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        log.info(
            "avatarkit devserver: malformed HTTP request rejected from %s: HTTP %d (%s)",
            request.remote,
            status,
            type(exc).__name__,
        )
        if request.writer.output_size > 0:
            # Part of a response already went out: the connection is broken.
            raise ConnectionError("response already started; cannot send the error")
        resp = error_response(
            status,
            "malformedRequest",
            "Malformed HTTP request",
            f"the request is not valid HTTP/1.1 ({type(exc).__name__}); "
            "send a well-formed request line and headers (RFC 9112)",
        )
        resp.force_close()
        return resp


class _Server(web.Server):
    """``web.Server`` whose connections use :class:`RequestHandler`."""

    def __call__(self) -> web.RequestHandler:
        return RequestHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`_Server` (same options, same lifecycle)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _Server(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
