"""The session pool itself: :class:`SessionPool` (see :mod:`avatarkit.pool`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any

from .._logctx import SessionLogger
from ..errors import AvatarSDKError
from ..events import AnimationFrameEvent
from .base import PoolBase, failure_key
from .lease import _RELEASED, PoolClosedError, SessionLease, _fresh, _Member
from .opener import SessionFactory, SessionOpener

__all__ = ["PoolStats", "SessionPool"]

logger = SessionLogger(logging.getLogger("avatarkit.pool"))

_RELEASE_TIMEOUT = 2.0  # seconds for the interrupt sent on release


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of a pool (:attr:`SessionPool.stats`).

    ``ready + busy + replacing == size`` while the pool runs (briefly less
    while a closed session's notice is on its way).
    """

    size: int
    """Sessions the pool keeps."""
    ready: int
    """Open and idle."""
    busy: int
    """Leased (or being released)."""
    replacing: int
    """Being opened or reopened, waits between attempts included."""
    waiting: int
    """``acquire()`` calls waiting for a session."""
    leases: int
    """Leases granted so far."""
    replacements: int
    """Sessions opened to replace a lost one."""
    failures: Mapping[str, int]
    """Lost sessions and failed opening attempts, by :class:`AvatarSDKErrorCode`
    value (the exception's class name for other errors)."""
    close_codes: Mapping[int, int]
    """Close codes of those failures that had one (e.g. ``{4002: 3}``)."""
    failed: bool
    """Stopped by a failure a retry cannot fix (see :attr:`SessionPool.failure`)."""
    closed: bool


class SessionPool(PoolBase):
    """Keeps ``size`` sessions open and lends them out one request at a time.

    ``SessionPool(size, **session_kwargs)`` opens its sessions with
    ``new_avatar_session(**session_kwargs)`` (the same keywords; an unknown one
    raises ``TypeError``, configuration that can never work ``ValueError``,
    here and now). Your ``on_animation``/``on_error``/``on_close`` among them
    are chained, not replaced.

    Options:

    * ``min_ready``: how many sessions :meth:`start` (and ``async with``)
      waits for; the others open in the background. Default: all of them.
      ``start()`` waits as long as opening keeps failing with retryable errors
      (bound it with ``max_retries`` or ``asyncio.wait_for(pool.start(), t)``).
    * ``max_retries``: failed attempts in a row, after the first, before a
      retryable failure stops the pool too (``None``: keep trying, with the
      delay capped at ``backoff_max``).
    * ``backoff_initial``, ``backoff_max``: seconds, see the module docs.
    * ``session_ttl``: seconds; each new session's token gets
      ``expire_at = now + session_ttl``. A fixed ``expire_at`` in
      ``session_kwargs`` is used as is by every replacement, so a pool that
      lives longer than it should use ``session_ttl`` (give one, not both).
    * ``session_factory``: instead of ``session_kwargs``, a callable taking
      the pool's callbacks as keywords (``on_animation``, ``on_error``,
      ``on_close``) and returning an :class:`AvatarSession` (or an awaitable
      of one) whose config has them, e.g.
      ``lambda **hooks: new_avatar_session(**base, **hooks)``. To chain
      callbacks of your own, call the pool's from yours. The pool calls
      ``init()`` and ``start()`` on it, unless it is already open: an async
      factory may start the session itself (e.g. after
      ``use_session_token()`` with a token your backend minted).
    """

    def __init__(
        self,
        size: int,
        *,
        min_ready: int | None = None,
        max_retries: int | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        session_ttl: float | None = None,
        session_factory: SessionFactory | None = None,
        **session_kwargs: Any,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, not {size!r}")
        if min_ready is None:
            min_ready = size
        if not 0 <= min_ready <= size:
            raise ValueError(f"min_ready must be between 0 and size ({size}), not {min_ready!r}")
        if max_retries is not None and max_retries < 0:
            raise ValueError("max_retries must be >= 0 (or None to keep trying)")
        if not backoff_initial > 0:
            raise ValueError("backoff_initial must be > 0 seconds")
        if not backoff_max >= backoff_initial:
            raise ValueError("backoff_max must be >= backoff_initial")
        self._opener = SessionOpener(session_factory, session_ttl, session_kwargs)
        self._size = size
        self._min_ready = min_ready
        self._max_retries = max_retries
        self._backoff_initial = float(backoff_initial)
        self._backoff_max = float(backoff_max)
        self._random = random.Random()

        self._members: set[_Member] = set()  # live sessions
        self._idle: deque[_Member] = deque()
        self._waiters: deque[asyncio.Future[_Member | None]] = deque()
        self._fills: set[asyncio.Task[None]] = set()  # opening / replacing
        self._aux: set[asyncio.Task[None]] = set()  # closing sessions
        self._changed = asyncio.Event()
        self._started = False
        self._closed = False
        self._close_done: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._last_error: BaseException | None = None
        self._leases = 0
        self._replacements = 0
        self._failures: Counter[str] = Counter()
        self._close_codes: Counter[int] = Counter()

    # -- state -------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Sessions the pool keeps."""
        return self._size

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped the pool, if one did."""
        return self._failure

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def stats(self) -> PoolStats:
        """Counts of sessions by state, leases, replacements and failures."""
        busy = sum(1 for m in self._members if m.busy)
        return PoolStats(
            size=self._size,
            ready=len(self._idle),
            busy=busy,
            replacing=len(self._fills),
            waiting=sum(1 for f in self._waiters if not f.done()),
            leases=self._leases,
            replacements=self._replacements,
            failures=MappingProxyType(dict(self._failures)),
            close_codes=MappingProxyType(dict(self._close_codes)),
            failed=self._failure is not None,
            closed=self._closed,
        )

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        elif self._failure is not None:
            state = f"failed ({failure_key(self._failure)})"
        else:
            state = "running" if self._started else "not started"
        s = self.stats
        avatar_id = self._opener.avatar_id
        avatar = f" avatar_id={avatar_id!r}" if avatar_id else ""
        return (
            f"<SessionPool size={s.size} ready={s.ready} busy={s.busy} "
            f"replacing={s.replacing}{avatar} {state}>"
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> SessionPool:
        """Open the sessions (concurrently); return once ``min_ready`` are open.

        Raises the error that stopped the pool (after closing it) if opening
        fails for good. ``async with pool`` calls this.
        """
        if self._closed:
            raise PoolClosedError("the session pool is closed; create a new one")
        if not self._started:
            self._started = True
            for _ in range(self._size):
                self._spawn_fill(cause=None, churn=0, replacing=False)
        try:
            await self.wait_ready(self._min_ready)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def wait_ready(self, count: int | None = None, *, timeout: float | None = None) -> None:
        """Wait until ``count`` sessions (default: all) are open, leased or idle.

        For readiness checks, or to see a pool back at full strength after a
        loss. Raises ``TimeoutError`` after ``timeout`` seconds, the error
        that stopped the pool if one did, and :class:`PoolClosedError`.
        """
        target = self._size if count is None else count
        if not 0 <= target <= self._size:
            raise ValueError(f"count must be between 0 and size ({self._size}), not {count!r}")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._check_usable()
            if len(self._members) >= target:
                return
            remaining = _remaining(loop, deadline)
            if remaining == 0.0:
                s = self.stats
                raise TimeoutError(
                    f"{len(self._members)} of {target} sessions open after {timeout:g} s "
                    f"({s.replacing} being opened)"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def aclose(self) -> None:
        """Close every session and stop replacing them. Idempotent.

        Pending replacements are cancelled and awaited; leases still held get
        :class:`PoolClosedError` from their next call; waiting ``acquire()``
        calls raise it.
        """
        if self._closed:
            if self._close_done is not None:
                await self._close_done.wait()
            return
        self._closed = True
        done = self._close_done = asyncio.Event()
        try:
            self._wake_waiters()
            self._notify()
            fills = list(self._fills)
            for task in fills:
                task.cancel()
            await asyncio.gather(*fills, return_exceptions=True)
            members = list(self._members)
            self._idle.clear()
            await asyncio.gather(
                *(m.session.close() for m in members if m.session is not None),
                return_exceptions=True,
            )
            while self._aux:
                await asyncio.gather(*list(self._aux), return_exceptions=True)
        finally:
            done.set()

    async def __aenter__(self) -> SessionPool:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- leasing -------------------------------------------------------------------------

    async def acquire(self, timeout: float | None = None) -> SessionLease:
        """Lease an open, idle session; wait (first come, first served) if none is.

        Raises ``TimeoutError`` after ``timeout`` seconds, the error that
        stopped the pool if one did, and :class:`PoolClosedError`. Give the
        lease back with :meth:`release` (or use :meth:`session`).
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._check_usable()
            member = self._take_idle()
            if member is None:
                member = await self._wait_for_member(deadline, timeout)
                if member is None:
                    continue  # woken by a failure or close: re-check
            session = member.session
            if not member.live or session is None or not session.is_open:
                member.busy = False  # ended before its notice arrived; it will be replaced
                continue
            lease = SessionLease(self, member, session)
            member.lease = lease
            self._leases += 1
            return lease

    async def release(self, lease: SessionLease) -> None:
        """Give a leased session back (idempotent); see the module docs.

        A request still in flight is interrupted first and its late frames
        are dropped; a session that ended is not returned (it is being
        replaced).
        """
        if lease._pool is not self:
            raise ValueError("this lease belongs to another pool")
        if lease._released:
            return
        lease._released = True
        lease._queue.put(_RELEASED)
        member = lease._member
        member.lease = None
        for req_id in lease._unfinished():
            member.retire(req_id)
        try:
            await self._interrupt_stream(lease)
            if member.live and lease._needs_interrupt():
                await self._interrupt_for_release(member)
        except BaseException:
            member.busy = False
            if member.live:
                self._close_member(member)  # state unknown: replace it
            raise
        self._offer(member)

    @contextlib.asynccontextmanager
    async def session(self, *, timeout: float | None = None) -> AsyncIterator[SessionLease]:
        """``async with pool.session() as lease:`` acquire, then release on exit."""
        lease = await self.acquire(timeout)
        try:
            yield lease
        finally:
            await self.release(lease)

    async def request(
        self, audio: bytes, *, timeout: float | None = None, retries: int = 0
    ) -> list[AnimationFrameEvent]:
        """Lease a session, send ``audio`` as one request, return its frames, release.

        ``timeout`` bounds the whole call (waiting for a session included).
        ``retries``: how many times to start over on another session when the
        request fails with a retryable :class:`AvatarSDKError` (e.g. its
        session dropped mid-request).
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        attempt = 0
        while True:
            try:
                async with self.session(timeout=_remaining(loop, deadline)) as lease:
                    return await lease.request(audio, timeout=_remaining(loop, deadline))
            except AvatarSDKError as error:
                if (
                    attempt >= retries
                    or not error.retryable
                    or self._failure is not None
                    or self._closed
                ):
                    raise
                attempt += 1
                logger.info("avatarkit: pool: request failed (%s); retrying", error)

    # -- internals: leasing --------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise PoolClosedError("the session pool is closed")
        if self._failure is not None:
            raise _fresh(self._failure) from None
        if not self._started:
            raise RuntimeError(
                "the pool is not started: use 'async with pool' or 'await pool.start()'"
            )

    def _take_idle(self) -> _Member | None:
        while self._idle:
            member = self._idle.popleft()
            session = member.session
            if member.live and session is not None and session.is_open:
                member.busy = True
                return member
            # ended, its on_close not run yet (queued behind async callbacks): it replaces it
        return None

    async def _wait_for_member(
        self, deadline: float | None, timeout: float | None
    ) -> _Member | None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_Member | None] = loop.create_future()
        self._waiters.append(fut)
        try:
            if deadline is None:
                return await fut
            remaining = deadline - loop.time()
            if remaining > 0:
                await asyncio.wait((fut,), timeout=remaining)
            if not fut.done():
                fut.cancel()
                raise self._timeout_error(timeout or 0.0)
            return fut.result()
        except BaseException:
            if fut.done() and not fut.cancelled():
                handed = fut.result()
                if handed is not None:
                    self._offer(handed)  # handed over as we left: pass it on
            else:
                fut.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def _timeout_error(self, timeout: float) -> TimeoutError:
        s = self.stats
        error = TimeoutError(
            f"no pooled session became free within {timeout:g} s "
            f"({s.busy} busy, {s.replacing} being replaced)"
        )
        if s.replacing and self._last_error is not None:
            error.__cause__ = _fresh(self._last_error)
        return error

    async def _interrupt_stream(self, lease: SessionLease) -> None:
        """The lease's unresolved ``stream()`` request resolves as interrupted.

        Through the request itself: one that has sent nothing yet has no
        request id the session could interrupt. Bounded like the release.
        """
        request = lease._request
        if request is None or request._resolved:
            return
        try:
            await asyncio.wait_for(request.interrupt(), _RELEASE_TIMEOUT)
        except asyncio.TimeoutError:
            logger.info(
                "avatarkit: pool: the stream() request did not stop within %s s on release",
                _RELEASE_TIMEOUT,
            )
        if request.req_id is not None:
            lease._interrupted.add(request.req_id)

    async def _interrupt_for_release(self, member: _Member) -> None:
        session = member.session
        assert session is not None
        try:
            req_id = await asyncio.wait_for(session.interrupt(), _RELEASE_TIMEOUT)
        except (AvatarSDKError, OSError, asyncio.TimeoutError) as error:
            # Before ValueError: SessionClosedError is both (0.1.7 compatibility).
            logger.info("avatarkit: pool: interrupt on release failed (%s); replacing", error)
            if member.live:
                self._close_member(member)
            return
        except ValueError:
            return  # nothing was ever sent on this session
        member.retire(req_id)


def _remaining(loop: asyncio.AbstractEventLoop, deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - loop.time())
