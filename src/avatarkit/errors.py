"""Error codes, the SDK's exception types and how service failures map onto them.

Everything here is pure (no I/O): the session, the local service and the tests
call the ``classify_*`` functions with what came off the wire and get back an
:class:`AvatarSDKError` carrying a stable :class:`AvatarSDKErrorCode`.

Compatibility notes (see PROTOCOL.md sections 5 and 6):

* ``code`` and ``phase`` match what avatarkit 0.1.7 reports for every situation
  it classifies, so code that branches on them keeps working.
* What the successor contract knows is added in extra fields: ``close_code``,
  ``close_reason`` and :attr:`AvatarSDKError.retryable`.
* :class:`AvatarSDKError` derives from :class:`Exception` only, as in 0.1.7.
* Where 0.1.7 raises a builtin exception and ours knows more, ours raises a
  class that is both (an instance of more classes, never fewer): see
  :class:`SessionClosedError`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from ._closecodes import CloseCode, close_code_retryable

__all__ = [
    "MAX_JSON_BODY",
    "MAX_JSON_DEPTH",
    "AvatarSDKError",
    "AvatarSDKErrorCode",
    "CloseCode",
    "ErrorPhase",
    "OptionalDependencyError",
    "ParsedBody",
    "SessionClosedError",
    "SessionTokenError",
    "UnsupportedSampleRateError",
    "classify",
    "classify_close",
    "classify_http_rejection",
    "classify_server_error",
    "close_code_retryable",
    "load_json_body",
    "parse_error_body",
]


class AvatarSDKErrorCode(str, Enum):
    """Stable error codes; the string values are what logs and JSON carry."""

    sessionTokenExpired = "sessionTokenExpired"
    sessionTokenInvalid = "sessionTokenInvalid"
    appIDUnrecognized = "appIDUnrecognized"
    appIDMismatch = "appIDMismatch"
    avatarNotFound = "avatarNotFound"
    billingRequired = "billingRequired"
    creditsExhausted = "creditsExhausted"
    sessionDurationExceeded = "sessionDurationExceeded"
    unsupportedSampleRate = "unsupportedSampleRate"
    invalidEgressConfig = "invalidEgressConfig"
    egressUnavailable = "egressUnavailable"
    idleTimeout = "idleTimeout"
    upstreamError = "upstreamError"
    invalidRequest = "invalidRequest"
    connectionFailed = "connectionFailed"
    connectionClosed = "connectionClosed"
    protocolError = "protocolError"
    serverError = "serverError"
    unknown = "unknown"


class ErrorPhase(str, Enum):
    """Where in a session's life an error happened (``AvatarSDKError.phase``).

    A ``str`` whose ``str()``/``format()`` is the value, so code written for
    avatarkit 0.1.7 (which used plain strings) compares, prints and
    serializes it unchanged.
    """

    SESSION_TOKEN = "session_token"
    WEBSOCKET_CONNECT = "websocket_connect"
    WEBSOCKET_HANDSHAKE = "websocket_handshake"
    WEBSOCKET_RUNTIME = "websocket_runtime"
    WEBSOCKET_SEND = "websocket_send"
    #: An error built without a phase (0.1.7's default).
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return self.value.__format__(spec)


_PHASES: dict[str, ErrorPhase] = {phase.value: phase for phase in ErrorPhase}

_RETRYABLE_CODES = frozenset(
    {
        AvatarSDKErrorCode.sessionDurationExceeded,
        AvatarSDKErrorCode.egressUnavailable,
        AvatarSDKErrorCode.idleTimeout,
        AvatarSDKErrorCode.upstreamError,
        AvatarSDKErrorCode.connectionFailed,
        AvatarSDKErrorCode.serverError,
    }
)


class AvatarSDKError(Exception):
    """A failure the SDK could classify, with a stable :attr:`code`.

    Fields mirror the published SDK: ``code``, ``message``, ``phase``,
    ``http_status``, ``server_code``, ``server_title``, ``server_detail``,
    ``connection_id``, ``req_id``, ``raw_body``, ``close_code`` and
    ``close_reason``. ``raw_body`` is kept for diagnosis but never shown in
    ``str()`` or ``repr()``; no field ever holds an API key or token.
    """

    def __init__(
        self,
        code: AvatarSDKErrorCode,
        message: str,
        *,
        phase: ErrorPhase | str = ErrorPhase.UNKNOWN,
        http_status: int | None = None,
        server_code: str | None = None,
        server_title: str | None = None,
        server_detail: str | None = None,
        connection_id: str | None = None,
        req_id: str | None = None,
        raw_body: str | None = None,
        close_code: int | None = None,
        close_reason: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code = AvatarSDKErrorCode(code)
        self.message = message
        #: An :class:`ErrorPhase` (a ``str``); a phase string we do not know
        #: is kept as given.
        self.phase: ErrorPhase | str = _PHASES.get(phase, phase)
        self.http_status = http_status
        self.server_code = server_code
        self.server_title = server_title
        self.server_detail = server_detail
        self.connection_id = connection_id
        self.req_id = req_id
        self.raw_body = raw_body
        self.close_code = close_code
        self.close_reason = close_reason
        self._retryable = retryable

    @property
    def retryable(self) -> bool:
        """Whether a new session may succeed where this one failed.

        Decided by the close code when the server closed the socket (or by a
        close-code number carried as ``server_code``), otherwise by the error
        code (transient failures yes, rejected input no).
        """
        if self._retryable is not None:
            return self._retryable
        if self.code is AvatarSDKErrorCode.connectionClosed:
            return close_code_retryable(self.close_code)
        if self.server_code is not None and self.server_code.isdigit():
            server_code = int(self.server_code)
            if 4000 <= server_code < 4600:  # close-code numbers relayed in a ServerError
                return close_code_retryable(server_code)
        return self.code in _RETRYABLE_CODES

    def __str__(self) -> str:
        parts = [f"{self.code.value}: {self.message}"]
        if self.phase:
            parts.append(f"phase={self.phase}")
        if self.http_status is not None:
            parts.append(f"http_status={self.http_status}")
        if self.server_code:
            parts.append(f"server_code={self.server_code}")
        if self.close_code is not None:
            parts.append(f"close_code={self.close_code}")
        if self.req_id:
            parts.append(f"req_id={self.req_id}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.value!r}, message={self.message!r}, "
            f"phase={str(self.phase)!r}, http_status={self.http_status!r}, "
            f"server_code={self.server_code!r}, close_code={self.close_code!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errors picklable (multiprocessing, pytest-xdist) with all fields.
        return (_rebuild_error, (type(self), self.code, self.message, dict(self.__dict__)))


def _rebuild_error(
    cls: type[AvatarSDKError], code: AvatarSDKErrorCode, message: str, state: dict[str, Any]
) -> AvatarSDKError:
    # Not cls(...): subclasses have their own constructor signatures.
    err = cls.__new__(cls)
    BaseException.__init__(err, message)
    err.__dict__.update(state)
    return err


class SessionTokenError(AvatarSDKError):
    """The session-token call failed (phase ``session_token``).

    Constructed as in avatarkit 0.1.7: ``SessionTokenError(message, *,
    code=AvatarSDKErrorCode.invalidRequest, ...)``; the classifier also builds
    it with the code first, so both call styles work.
    """

    def __init__(
        self,
        code_or_message: AvatarSDKErrorCode | str,
        message: str | None = None,
        *,
        code: AvatarSDKErrorCode | None = None,
        phase: ErrorPhase | str = ErrorPhase.SESSION_TOKEN,
        **fields: Any,
    ) -> None:
        if message is None:  # SessionTokenError(message, code=...)
            message = str(code_or_message)
            resolved = code if code is not None else AvatarSDKErrorCode.invalidRequest
        else:  # SessionTokenError(code, message)
            resolved = AvatarSDKErrorCode(code_or_message)
        super().__init__(resolved, message, phase=phase, **fields)


class SessionClosedError(AvatarSDKError, ValueError):
    """``send_audio``/``interrupt``/``pause``/``resume`` on a session that has ended.

    avatarkit 0.1.7 raises a plain ``ValueError`` there, so this is a
    ``ValueError`` too (code written for 0.1.7 still catches it) and an
    :class:`AvatarSDKError` with code ``connectionClosed``, phase
    ``websocket_send`` and, when the server closed the socket, its
    ``close_code``, ``close_reason`` and :attr:`~AvatarSDKError.retryable`.
    """


class UnsupportedSampleRateError(AvatarSDKError, ValueError):
    """A sample rate the built-in Ogg Opus encoder cannot encode, refused locally.

    avatarkit 0.1.7 sends such a configuration and ``start()`` fails with the
    service's ``unsupportedSampleRate`` (phase ``websocket_handshake``); ours
    knows before any network call and raises the same code and phase, as a
    ``ValueError`` too (a configuration error, like ours raise elsewhere).
    """

    def __init__(self, message: str) -> None:
        super().__init__(
            AvatarSDKErrorCode.unsupportedSampleRate,
            message,
            phase=ErrorPhase.WEBSOCKET_HANDSHAKE,
            retryable=False,
        )


class OptionalDependencyError(ImportError):
    """A feature needs an optional extra that is not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the optional '{extra}' extra: pip install \"avatarkit[{extra}]\""
        )
        self.extra = extra


from ._classify import (  # noqa: E402  (re-export: the classification is part of errors)
    MAX_JSON_BODY,
    MAX_JSON_DEPTH,
    ParsedBody,
    classify,
    classify_close,
    classify_http_rejection,
    classify_server_error,
    load_json_body,
    parse_error_body,
)
