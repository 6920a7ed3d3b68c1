"""The pool's retry policy, as pure functions (no I/O, no clock, no randomness).

:class:`~avatarkit.SessionPool` asks :func:`decide_retry` after every failed
attempt to open a session (and :func:`backoff_delay` before an attempt of a
line of sessions that keep dying young). The caller draws the random number
(``rand`` in ``[0, 1)``), so the same inputs always give the same answer and
the policy is tested without sockets.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .errors import AvatarSDKError, CloseCode

__all__ = ["RetryDecision", "backoff_delay", "decide_retry", "retryable"]


def retryable(error: BaseException) -> bool:
    """Whether opening a new session may succeed after ``error``.

    As :attr:`AvatarSDKError.retryable`, except the concurrency limit (close
    or server code 4003): for a pool that is usually its own replaced
    session not yet released by the service, so it is retried with backoff
    ("until load drops"); ``max_retries`` bounds it. Configuration errors
    (``ValueError``, ``TypeError``, ``ImportError``) never are; transport
    errors (``OSError``, timeouts) are.
    """
    if isinstance(error, AvatarSDKError):
        if error.close_code == CloseCode.CONCURRENCY_LIMIT or error.server_code == "4003":
            return True
        return error.retryable
    if isinstance(error, (ValueError, TypeError, ImportError)):
        return False  # configuration that can never work
    return isinstance(error, (OSError, asyncio.TimeoutError, TimeoutError))


def backoff_delay(step: int, initial: float, maximum: float, rand: float) -> float:
    """Seconds to wait before attempt ``step`` (0: none).

    Exponential with jitter: the delay ``initial * 2 ** (step - 1)``, capped
    at ``maximum``, is drawn from its upper half (``rand`` in ``[0, 1)``
    picks where), so retries of many pools spread out but never come sooner
    than half the nominal delay.
    """
    if step <= 0:
        return 0.0
    delay = min(maximum, initial * 2.0 ** min(step - 1, 32))
    return delay / 2 + (delay - delay / 2) * rand


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed attempt: ``retry`` or not, after ``delay`` seconds."""

    retry: bool
    delay: float = 0.0


def decide_retry(
    error: BaseException,
    failed_attempts: int,
    *,
    max_retries: int | None,
    backoff_initial: float,
    backoff_max: float,
    churn: int = 0,
    rand: float = 0.0,
) -> RetryDecision:
    """Whether to try again after ``error``, and when.

    ``failed_attempts`` counts the failures in a row before this one (0 for
    the first). No retry when the error is not :func:`retryable` or when
    ``max_retries`` (``None``: unbounded) retries were already made. The
    delay grows with the attempt number, plus ``churn - 1`` steps for a line
    of sessions that kept dying soon after opening.
    """
    if not retryable(error):
        return RetryDecision(False)
    if max_retries is not None and failed_attempts >= max_retries:
        return RetryDecision(False)
    step = max(0, churn - 1) + failed_attempts + 1
    return RetryDecision(True, backoff_delay(step, backoff_initial, backoff_max, rand))
