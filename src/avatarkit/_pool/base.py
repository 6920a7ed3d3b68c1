"""The session pool's shared state, replacement of lost sessions and session callbacks.

:class:`PoolBase` is the half of :class:`~avatarkit.SessionPool` that works in
the background: opening sessions (retrying by :mod:`avatarkit._retry`),
replacing the ones that end, routing each session's callbacks to its lease,
and stopping the pool on a failure a retry cannot fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from .._logctx import SessionLogger
from .._retry import backoff_delay, decide_retry, retryable
from ..errors import AvatarSDKError, AvatarSDKErrorCode, ErrorPhase
from ..events import AnimationFrameEvent
from .lease import PoolClosedError, _Member
from .opener import HOOKS, SessionOpener

__all__ = ["PoolBase", "failure_key"]

logger = SessionLogger(logging.getLogger("avatarkit.pool"))


def failure_key(error: BaseException) -> str:
    if isinstance(error, AvatarSDKError):
        return error.code.value
    return type(error).__name__


class PoolBase:
    """State and background work of a session pool (``SessionPool`` sets it up)."""

    _size: int
    _max_retries: int | None
    _backoff_initial: float
    _backoff_max: float
    _opener: SessionOpener
    _random: random.Random
    _members: set[_Member]  # live sessions
    _idle: deque[_Member]
    _waiters: deque[asyncio.Future[_Member | None]]
    _fills: set[asyncio.Task[None]]  # opening / replacing
    _aux: set[asyncio.Task[None]]  # closing sessions
    _changed: asyncio.Event
    _closed: bool
    _failure: BaseException | None
    _last_error: BaseException | None
    _replacements: int
    _failures: Counter[str]
    _close_codes: Counter[int]

    def _offer(self, member: _Member) -> None:
        """An open session is free: hand it to the first waiter, or make it idle."""
        member.busy = False
        if not member.live:
            return
        if self._closed or self._failure is not None:
            self._close_member(member)
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                member.busy = True
                fut.set_result(member)
                self._notify()
                return
        self._idle.append(member)
        self._notify()

    # -- internals: opening and replacing ---------------------------------------------

    def _spawn_fill(self, *, cause: AvatarSDKError | None, churn: int, replacing: bool) -> None:
        task = asyncio.get_running_loop().create_task(
            self._fill(cause, churn, replacing), name="avatarkit-pool-open"
        )
        self._fills.add(task)
        task.add_done_callback(self._fill_done)

    def _fill_done(self, task: asyncio.Task[None]) -> None:
        self._fills.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            logger.error("avatarkit: pool: opening a session failed unexpectedly", exc_info=error)
            if error is not None:
                self._fail(error)
        self._notify()

    def _backoff(self, step: int) -> float:
        """Delay before attempt ``step`` (0: none): see :func:`avatarkit._retry.backoff_delay`."""
        return backoff_delay(step, self._backoff_initial, self._backoff_max, self._random.random())

    async def _fill(self, cause: AvatarSDKError | None, churn: int, replacing: bool) -> None:
        """Open one session (retrying as allowed) and add it to the pool."""
        try:
            await self._fill_one(cause, churn, replacing)
        finally:
            # Counted as replacing until here, not until the done callback runs.
            task = asyncio.current_task()
            if task is not None:
                self._fills.discard(task)

    async def _fill_one(self, cause: AvatarSDKError | None, churn: int, replacing: bool) -> None:
        if cause is not None and not retryable(cause):
            self._fail(cause)
            return
        failed_attempts = 0
        # A line of sessions that keep dying young backs off like failed attempts.
        delay = self._backoff(max(0, churn - 1))
        while True:
            if delay:
                await asyncio.sleep(delay)
            member = _Member(churn)
            try:
                await self._opener.open(member, self._hooks(member))
            except Exception as error:
                self._record(error)
                self._last_error = error
                decision = decide_retry(
                    error,
                    failed_attempts,
                    max_retries=self._max_retries,
                    backoff_initial=self._backoff_initial,
                    backoff_max=self._backoff_max,
                    churn=churn,
                    rand=self._random.random(),
                )
                if not decision.retry:
                    self._fail(error)
                    return
                delay = decision.delay
                failed_attempts += 1
                logger.warning(
                    "avatarkit: pool: opening a session failed (%s); retrying (%d)",
                    error,
                    failed_attempts,
                )
                continue
            member.opened_at = asyncio.get_running_loop().time()
            member.live = True
            self._last_error = None
            self._members.add(member)
            if replacing:
                self._replacements += 1
                logger.info(
                    "avatarkit: pool: replacement session open (%s)",
                    member.session.connection_id if member.session else None,
                )
            self._offer(member)
            return

    def _close_member(self, member: _Member) -> None:
        """Close a session in the background (its on_close does the rest)."""
        session = member.session
        if session is None:
            return
        with contextlib.suppress(ValueError):
            self._idle.remove(member)
        task = asyncio.get_running_loop().create_task(session.close(), name="avatarkit-pool-close")
        self._aux.add(task)
        task.add_done_callback(self._aux_done)

    def _aux_done(self, task: asyncio.Task[None]) -> None:
        self._aux.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("avatarkit: pool: closing a session failed", exc_info=task.exception())

    def _fail(self, error: BaseException) -> None:
        """Stop the pool: no more replacements; acquire() raises ``error``."""
        if self._failure is not None or self._closed:
            return
        self._failure = error
        logger.error("avatarkit: pool: %s; the pool stops replacing sessions", error)
        current = asyncio.current_task()
        for task in list(self._fills):
            if task is not current:
                task.cancel()
        for member in list(self._idle):
            self._close_member(member)
        self._idle.clear()
        self._wake_waiters()
        self._notify()

    def _record(self, error: BaseException) -> None:
        self._failures[failure_key(error)] += 1
        if isinstance(error, AvatarSDKError) and error.close_code is not None:
            self._close_codes[error.close_code] += 1

    def _wake_waiters(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- internals: session callbacks -----------------------------------------------------

    def _hooks(self, member: _Member) -> dict[str, Callable[..., Any]]:
        user = self._opener.user_hooks
        user_animation, user_error, user_close = (user[name] for name in HOOKS)

        def on_animation(frame: AnimationFrameEvent) -> Any:
            self._on_frame(member, frame)
            return user_animation(frame) if user_animation is not None else None

        def on_error(error: Exception) -> Any:
            self._on_error(member, error, user_error is not None)
            return user_error(error) if user_error is not None else None

        def on_close() -> Any:
            self._on_close(member)
            return user_close() if user_close is not None else None

        return {"on_animation": on_animation, "on_error": on_error, "on_close": on_close}

    def _on_frame(self, member: _Member, frame: AnimationFrameEvent) -> None:
        retired = member.retired
        if retired and frame.req_id in retired:
            if frame.end:
                del retired[frame.req_id]
            return  # a past lease's request: never the current leaseholder's
        lease = member.lease
        if lease is not None:
            lease._deliver(frame)

    def _on_error(self, member: _Member, error: Exception, handled: bool) -> None:
        if not isinstance(error, AvatarSDKError):
            return
        if error.code is AvatarSDKErrorCode.connectionClosed:
            member.close_error = error  # on_close follows
            return
        lease = member.lease
        if lease is not None and lease._wants_error(error):
            lease._fail(error, terminal=False)
        elif not handled:
            logger.warning("avatarkit: pool: %s", error)

    def _on_close(self, member: _Member) -> None:
        if not member.live:
            return  # an attempt that failed to open, or already handled
        member.live = False
        self._members.discard(member)
        with contextlib.suppress(ValueError):
            self._idle.remove(member)
        error = member.close_error
        lease = member.lease
        if lease is not None:
            if self._closed:
                lease._fail(PoolClosedError("the session pool was closed"), terminal=True)
            elif error is not None:
                lease._fail(error, terminal=True)
            else:
                lease._fail(
                    AvatarSDKError(
                        AvatarSDKErrorCode.connectionClosed,
                        "the pooled session was closed",
                        phase=ErrorPhase.WEBSOCKET_RUNTIME,
                        connection_id=member.session.connection_id if member.session else None,
                    ),
                    terminal=True,
                )
        self._notify()
        if self._closed or self._failure is not None:
            return
        if error is not None:
            self._record(error)
            if not retryable(error):
                # Stop now, before any waiter can take an idle session.
                self._fail(error)
                return
            logger.warning("avatarkit: pool: session lost (%s); replacing it", error)
        lived = asyncio.get_running_loop().time() - member.opened_at
        churn = member.churn + 1 if lived < self._backoff_max else 0
        self._spawn_fill(cause=error, churn=churn, replacing=True)
