"""The value types of ``session.stream()``: its summary, its errors, its one default.

Kept apart from :mod:`avatarkit._request` (the handle and its feeder), which
re-exports them; the package exports them as ``avatarkit.RequestSummary``,
``avatarkit.RequestInProgressError`` and ``avatarkit.RequestTimeoutError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import AvatarSDKError, AvatarSDKErrorCode, ErrorPhase

__all__ = [
    "DEFAULT_END_TIMEOUT",
    "RequestInProgressError",
    "RequestSummary",
    "RequestTimeoutError",
    "check_end_timeout",
]

DEFAULT_END_TIMEOUT = 10.0
"""Seconds ``stream()`` waits for the end frame after the audio should have played out."""


class RequestInProgressError(AvatarSDKError, RuntimeError):
    """``stream()`` or ``send_audio()`` while a streamed request is still unresolved."""

    def __init__(
        self, req_id: str | None, connection_id: str | None, message: str | None = None
    ) -> None:
        super().__init__(
            AvatarSDKErrorCode.invalidRequest,
            message
            or "a streamed request is still in progress on this session; await req.done() "
            "or req.interrupt() first (one request streams at a time)",
            phase=ErrorPhase.WEBSOCKET_SEND,
            connection_id=connection_id,
            req_id=req_id,
            retryable=False,
        )


class RequestTimeoutError(AvatarSDKError, TimeoutError):
    """The service sent no end frame within ``end_timeout`` (the request was interrupted)."""

    def __init__(self, end_timeout: float, req_id: str | None, connection_id: str | None) -> None:
        super().__init__(
            AvatarSDKErrorCode.serverError,
            f"no end frame within end_timeout={end_timeout:g} s after the audio played out; "
            "the request was interrupted (raise end_timeout for a slow service)",
            phase=ErrorPhase.WEBSOCKET_RUNTIME,
            connection_id=connection_id,
            req_id=req_id,
            retryable=True,
        )


@dataclass(frozen=True)
class RequestSummary:
    """How a streamed request went, returned by :meth:`AvatarRequest.done`.

    ``audio_seconds`` is the playback length of the audio sent;
    ``time_to_first_frame`` the seconds from the first audio sent to the first
    frame (``None`` without frames); ``real_time_factor`` the seconds from the
    first audio sent to the end frame divided by ``audio_seconds`` (about 1.0
    when the service renders in real time; ``None`` when interrupted or
    without audio).
    """

    req_id: str | None
    frames: int
    audio_seconds: float
    time_to_first_frame: float | None
    real_time_factor: float | None
    interrupted: bool


def check_end_timeout(value: Any) -> float:
    """``end_timeout`` as a float; a clear error for anything but a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"end_timeout must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"end_timeout must be a finite number of seconds > 0, got {value}")
    return float(value)
