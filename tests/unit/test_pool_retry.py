"""The pool's retry policy (avatarkit._retry): pure functions, no sockets."""

from __future__ import annotations

import asyncio

import pytest

from avatarkit import AvatarSDKError, AvatarSDKErrorCode, SessionTokenError
from avatarkit._retry import RetryDecision, backoff_delay, decide_retry, retryable
from avatarkit.errors import classify_close


def closed(code: int | None) -> AvatarSDKError:
    return classify_close(code, "reason")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (closed(None), True),  # dropped connection
        (closed(1006), True),
        (closed(4002), True),  # duration limit: a new session is expected
        (closed(4503), True),
        (closed(4003), True),  # concurrency: usually the pool's own replaced session
        (closed(4001), False),  # credits
        (closed(4010), False),  # authentication
        (closed(1008), False),  # our traffic refused
        (AvatarSDKError(AvatarSDKErrorCode.serverError, "x", server_code="4003"), True),
        (AvatarSDKError(AvatarSDKErrorCode.connectionFailed, "x"), True),
        (AvatarSDKError(AvatarSDKErrorCode.avatarNotFound, "x"), False),
        (SessionTokenError(AvatarSDKErrorCode.sessionTokenExpired, "x"), False),
        (ValueError("bad config"), False),
        (TypeError("bad config"), False),
        (ImportError("no opus"), False),
        (ConnectionResetError(), True),
        (asyncio.TimeoutError(), True),
        (TimeoutError(), True),
        (RuntimeError("bug"), False),
    ],
)
def test_retryable(error: BaseException, expected: bool) -> None:
    assert retryable(error) is expected


def test_backoff_doubles_from_initial_up_to_max_in_the_upper_half() -> None:
    assert backoff_delay(0, 0.2, 10.0, 0.5) == 0.0
    assert backoff_delay(-1, 0.2, 10.0, 0.5) == 0.0
    for step, nominal in [(1, 0.2), (2, 0.4), (3, 0.8), (6, 6.4), (7, 10.0), (10_000, 10.0)]:
        assert backoff_delay(step, 0.2, 10.0, 0.0) == pytest.approx(nominal / 2)
        assert backoff_delay(step, 0.2, 10.0, 0.999999) == pytest.approx(nominal, rel=1e-5)
        assert nominal / 2 <= backoff_delay(step, 0.2, 10.0, 0.37) < nominal


def test_decide_retry_stops_on_a_failure_a_retry_cannot_fix() -> None:
    kwargs = {"max_retries": None, "backoff_initial": 0.2, "backoff_max": 10.0}
    assert decide_retry(closed(4001), 0, **kwargs) == RetryDecision(False)
    assert decide_retry(ValueError("x"), 5, **kwargs) == RetryDecision(False)


def test_decide_retry_counts_attempts_against_max_retries() -> None:
    kwargs = {"max_retries": 2, "backoff_initial": 1.0, "backoff_max": 100.0, "rand": 0.0}
    error = closed(1006)
    assert decide_retry(error, 0, **kwargs) == RetryDecision(True, 0.5)  # step 1: 1 s nominal
    assert decide_retry(error, 1, **kwargs) == RetryDecision(True, 1.0)  # step 2: 2 s
    assert decide_retry(error, 2, **kwargs) == RetryDecision(False)
    unbounded = {**kwargs, "max_retries": None}
    assert decide_retry(error, 50, **unbounded) == RetryDecision(True, 50.0)  # capped


def test_decide_retry_backs_off_further_for_sessions_dying_young() -> None:
    kwargs = {"max_retries": None, "backoff_initial": 1.0, "backoff_max": 100.0, "rand": 0.0}
    error = closed(None)
    assert decide_retry(error, 0, churn=0, **kwargs).delay == 0.5
    assert decide_retry(error, 0, churn=1, **kwargs).delay == 0.5
    assert decide_retry(error, 0, churn=3, **kwargs).delay == 2.0  # two extra steps
    assert decide_retry(error, 1, churn=3, **kwargs).delay == 4.0


def test_max_retries_zero_never_retries() -> None:
    decision = decide_retry(closed(None), 0, max_retries=0, backoff_initial=1, backoff_max=1)
    assert decision == RetryDecision(False)
