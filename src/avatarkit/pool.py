"""A pool of open avatar sessions that survives faults: :class:`SessionPool`.

Opening a session costs a token call, a WebSocket and a handshake. A service
that animates many short utterances keeps a few sessions open and lends each
request an idle one::

    async with SessionPool(4, **session_kwargs) as pool:
        frames = await pool.request(pcm, timeout=30)        # lease, send, collect, release

        async with pool.session() as lease:                  # or drive a lease yourself
            await lease.send_audio(chunk1)
            await lease.send_audio(chunk2, end=True)
            async for frame in lease.frames():               # only this lease's frames
                ...
                if frame.end:
                    break

**Leases.** A :class:`SessionLease` gives one task exclusive use of one open
session until it is released; requests beyond the pool's size wait for a
session to come free (first come, first served). Send through the lease, not
through ``lease.session``: the lease keeps track of its requests so that their
frames reach it and no one else. ``lease.frames()`` buffers every frame of the
lease's requests from the moment the lease was granted, so frames that arrive
before you start iterating are not lost.

**Releasing mid-request.** Wait for the ``end`` frame of your request before
leaving ``async with pool.session()`` if you want it to play out. If the lease
still has a request in flight when it is released (audio sent without
``end=True``, or a request whose ``end`` frame has not arrived), the pool
sends ``interrupt()`` for it before the session goes back to the pool, and
any frames of the lease's unfinished requests that still arrive are dropped:
they never reach the next leaseholder, and the next ``send_audio()`` starts a
new request id. If the interrupt cannot be sent within two seconds the session
is closed and replaced instead.

**Faults.** A session that ends (server close, dropped connection, duration
limit) is replaced in the background. The first attempt is immediate; failed
attempts are retried with exponential backoff and jitter (``backoff_initial``
doubling up to ``backoff_max``, each delay drawn from its upper half), and so
is a session that dies again soon after opening, so a service that accepts and
then drops connections is not hammered. A failure that a new session cannot
fix (:attr:`AvatarSDKError.retryable` false: bad credentials, unknown avatar,
credits exhausted, concurrency limit, ...) or ``max_retries`` failed attempts
in a row stop the pool: replacement stops, idle sessions are closed and
:meth:`SessionPool.acquire` raises that error (a copy of it) from then on,
waking the tasks already waiting. Leases already granted keep working.

A leaseholder whose session ends mid-request gets the reason from
``lease.frames()``, ``lease.request()`` or ``lease.send_audio()`` as an
:class:`AvatarSDKError` (``connectionClosed`` with the close code; retryable
for drops and 4002): retry on a new lease, or let
``pool.request(..., retries=1)`` do it.

**Callbacks.** The pool installs ``on_animation``, ``on_error`` and
``on_close`` on every session it opens. Yours, passed in ``session_kwargs``,
are still called (for every session, including attempts that failed to open),
after the pool's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
import random
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import MappingProxyType, TracebackType
from typing import Any

from .config import SessionConfig
from .errors import AvatarSDKError, AvatarSDKErrorCode, CloseCode, ErrorPhase
from .events import AnimationFrameEvent
from .session import AvatarSession, new_avatar_session

__all__ = ["PoolClosedError", "PoolStats", "SessionFactory", "SessionLease", "SessionPool"]

logger = logging.getLogger("avatarkit.pool")

SessionFactory = Callable[..., "AvatarSession | Awaitable[AvatarSession]"]
"""``factory(on_animation=..., on_error=..., on_close=...) -> AvatarSession``
(or an awaitable of one): see :class:`SessionPool`."""

_HOOKS = ("on_animation", "on_error", "on_close")
_CONFIG_FIELDS = frozenset(SessionConfig.__dataclass_fields__)
_RETIRED_KEPT = 64  # request ids remembered per session for dropping stale frames
_RELEASE_TIMEOUT = 2.0  # seconds for the interrupt sent on release


class PoolClosedError(RuntimeError):
    """The pool is closed (or closed while the lease was held)."""


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


class _Released:
    """Queue marker: the lease was released."""


class _Failure:
    """Queue item: an error for the leaseholder; ``terminal`` when the session ended."""

    __slots__ = ("error", "terminal")

    def __init__(self, error: BaseException, terminal: bool) -> None:
        self.error = error
        self.terminal = terminal


_RELEASED = _Released()
_Item = AnimationFrameEvent | _Failure | _Released


def _fresh(error: BaseException) -> BaseException:
    """A copy of ``error`` to raise again (re-raising one instance grows its traceback)."""
    try:
        return copy.copy(error)
    except Exception:  # pragma: no cover - exceptions that cannot be copied
        return error


def _retryable(error: BaseException) -> bool:
    """Whether opening a new session may succeed after ``error``.

    As :attr:`AvatarSDKError.retryable`, except the concurrency limit (close
    or server code 4003): for a pool that is usually its own replaced
    session not yet released by the service, so it is retried with backoff
    ("until load drops"); ``max_retries`` bounds it.
    """
    if isinstance(error, AvatarSDKError):
        if error.close_code == CloseCode.CONCURRENCY_LIMIT or error.server_code == "4003":
            return True
        return error.retryable
    if isinstance(error, (ValueError, TypeError, ImportError)):
        return False  # configuration that can never work
    return isinstance(error, (OSError, asyncio.TimeoutError, TimeoutError))


def _failure_key(error: BaseException) -> str:
    if isinstance(error, AvatarSDKError):
        return error.code.value
    return type(error).__name__


class _Member:
    """One pooled session and its routing state."""

    __slots__ = ("busy", "churn", "close_error", "lease", "live", "opened_at", "retired", "session")

    def __init__(self, churn: int) -> None:
        self.session: AvatarSession | None = None
        self.live = False  # opened and not yet closed
        self.busy = False  # leased, reserved for a waiter, or being released
        self.lease: SessionLease | None = None
        self.retired: dict[str, None] = {}  # request ids of past leases not known to be over
        self.close_error: AvatarSDKError | None = None
        self.opened_at = 0.0
        self.churn = churn  # sessions of this line that died young in a row

    def retire(self, req_id: str) -> None:
        self.retired[req_id] = None
        while len(self.retired) > _RETIRED_KEPT:
            del self.retired[next(iter(self.retired))]


class _LeaseFrames:
    """``lease.frames()``: an async iterator over the lease's frames."""

    __slots__ = ("_lease",)

    def __init__(self, lease: SessionLease) -> None:
        self._lease = lease

    def __aiter__(self) -> _LeaseFrames:
        return self

    async def __anext__(self) -> AnimationFrameEvent:
        frame = await self._lease._next()
        if frame is None:
            raise StopAsyncIteration
        return frame


class SessionLease:
    """Exclusive use of one pooled session, from ``acquire()`` until release.

    Get one from :meth:`SessionPool.session` (``async with``) or
    :meth:`SessionPool.acquire`. After release its sending methods raise
    ``RuntimeError``: a stale reference can never send on a session that
    someone else now holds.
    """

    def __init__(self, pool: SessionPool, member: _Member, session: AvatarSession) -> None:
        self._pool = pool
        self._member = member
        self._session = session
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._released = False
        self._open = False  # audio sent (or being sent) without end=True
        self._sent: dict[str, None] = {}  # request ids sent on this lease, in order
        self._ended: set[str] = set()  # ... whose end frame arrived
        self._interrupted: set[str] = set()

    # -- what the leaseholder uses ------------------------------------------------

    @property
    def session(self) -> AvatarSession:
        """The leased session, for reading (``connection_id``, ``capabilities``).

        Send through the lease's own methods: audio sent on the session
        directly is not tracked, so its frames may go astray on release.
        """
        return self._session

    @property
    def connection_id(self) -> str | None:
        """Connection id of the leased session."""
        return self._session.connection_id

    @property
    def released(self) -> bool:
        """Whether the lease has been given back."""
        return self._released

    async def send_audio(self, audio: bytes, end: bool = False) -> str:
        """:meth:`AvatarSession.send_audio` on the leased session."""
        self._check("send_audio")
        self._open = True
        req_id = await self._session.send_audio(audio, end)
        self._sent[req_id] = None
        if end:
            self._open = False
        return req_id

    async def interrupt(self) -> str:
        """:meth:`AvatarSession.interrupt`: stop the lease's most recent request."""
        self._check("interrupt")
        req_id = await self._session.interrupt()
        self._open = False
        self._interrupted.add(req_id)
        return req_id

    async def pause(self) -> str:
        """:meth:`AvatarSession.pause` on the leased session."""
        self._check("pause")
        return await self._session.pause()

    async def resume(self) -> str:
        """:meth:`AvatarSession.resume` on the leased session."""
        self._check("resume")
        return await self._session.resume()

    def frames(self) -> AsyncIterator[AnimationFrameEvent]:
        """The frames of this lease's requests, in order, from when it was granted.

        Frames are buffered from the moment the lease was granted (the buffer
        is unbounded: consume promptly). Iteration does not stop at a
        request's ``end`` (a lease may send several requests): break on
        ``frame.end``. It raises :class:`AvatarSDKError` when the session
        ends (every later call raises again; frames received before are
        yielded first) or when the service reports an error for one of the
        lease's requests (iterate again to go on), and stops when the lease is
        released.
        """
        return _LeaseFrames(self)

    async def request(
        self, audio: bytes, *, timeout: float | None = None
    ) -> list[AnimationFrameEvent]:
        """Send ``audio`` as one whole request and return its frames, ``end`` last.

        Frames of the lease's other requests that arrive meanwhile are
        discarded. Raises ``TimeoutError`` if the request does not end within
        ``timeout`` seconds (it is interrupted on release), and
        :class:`AvatarSDKError` as :meth:`frames` does.
        """
        if self._open:
            raise ValueError(
                "request(): a request is open on this lease (audio sent without end=True); "
                "end or interrupt it first"
            )

        async def run() -> list[AnimationFrameEvent]:
            req_id = await self.send_audio(audio, end=True)
            frames: list[AnimationFrameEvent] = []
            while True:
                frame = await self._next()
                if frame is None:
                    raise RuntimeError("the lease was released during request()")
                if frame.req_id == req_id:
                    frames.append(frame)
                    if frame.end:
                        return frames

        try:
            return await asyncio.wait_for(run(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"the request did not end within {timeout:g} s (connection {self.connection_id})"
            ) from None

    async def release(self) -> None:
        """Give the session back to the pool (same as ``pool.release(lease)``)."""
        await self._pool.release(self)

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<SessionLease connection_id={self.connection_id!r} {state}>"

    # -- used by the pool ---------------------------------------------------------------

    def _check(self, action: str) -> None:
        if self._released:
            raise RuntimeError(f"{action}(): this lease was released; acquire a new one")

    async def _next(self) -> AnimationFrameEvent | None:
        item = await self._queue.get()
        if isinstance(item, AnimationFrameEvent):
            return item
        if isinstance(item, _Released):
            self._queue.put_nowait(item)
            return None
        if item.terminal:
            self._queue.put_nowait(item)  # every later call raises again
        raise _fresh(item.error)

    def _deliver(self, frame: AnimationFrameEvent) -> None:
        if frame.end:
            self._ended.add(frame.req_id)
        self._queue.put_nowait(frame)

    def _fail(self, error: BaseException, *, terminal: bool) -> None:
        self._queue.put_nowait(_Failure(error, terminal))

    def _wants_error(self, error: AvatarSDKError) -> bool:
        """Whether a run-time service error concerns this lease's requests."""
        if error.req_id:
            return error.req_id not in self._member.retired
        return self._open or bool(self._unfinished())

    def _unfinished(self) -> list[str]:
        return [r for r in self._sent if r not in self._ended]

    def _needs_interrupt(self) -> bool:
        return self._open or any(r not in self._interrupted for r in self._unfinished())


class SessionPool:
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
        if session_ttl is not None and not session_ttl > 0:
            raise ValueError("session_ttl must be > 0 seconds")
        self._user_hooks: dict[str, Callable[..., Any] | None] = dict.fromkeys(_HOOKS)
        if session_factory is not None:
            if session_kwargs:
                raise TypeError(
                    "pass either session_factory or session keywords "
                    f"({', '.join(sorted(session_kwargs))}), not both"
                )
            if session_ttl is not None:
                raise TypeError(
                    "session_ttl applies to session keywords; set expire_at in the factory instead"
                )
        else:
            unknown = sorted(set(session_kwargs) - _CONFIG_FIELDS - {"transport_factory"})
            if unknown:
                raise TypeError(
                    f"SessionPool() got unknown keyword argument(s): {', '.join(unknown)}; "
                    "valid ones are the SessionConfig fields and the pool's options"
                )
            if session_ttl is not None and session_kwargs.get("expire_at") is not None:
                raise TypeError("give session_ttl or expire_at, not both")
            for name in _HOOKS:
                self._user_hooks[name] = session_kwargs.pop(name, None)
            probe = {k: v for k, v in session_kwargs.items() if k != "transport_factory"}
            if session_ttl is not None:
                probe["expire_at"] = datetime.now(timezone.utc) + timedelta(seconds=session_ttl)
            SessionConfig(**probe).validate()
        self._size = size
        self._min_ready = min_ready
        self._max_retries = max_retries
        self._backoff_initial = float(backoff_initial)
        self._backoff_max = float(backoff_max)
        self._session_ttl = session_ttl
        self._factory = session_factory
        self._session_kwargs = session_kwargs
        self._avatar_id: str = str(session_kwargs.get("avatar_id") or "")
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
            state = f"failed ({_failure_key(self._failure)})"
        else:
            state = "running" if self._started else "not started"
        s = self.stats
        avatar = f" avatar_id={self._avatar_id!r}" if self._avatar_id else ""
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
        lease._queue.put_nowait(_RELEASED)
        member = lease._member
        member.lease = None
        for req_id in lease._unfinished():
            member.retire(req_id)
        try:
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
        """Delay before attempt ``step`` (0: none); the upper half of the doubled delay."""
        if step <= 0:
            return 0.0
        delay = min(self._backoff_max, self._backoff_initial * 2.0 ** min(step - 1, 32))
        return self._random.uniform(delay / 2, delay)

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
        if cause is not None and not _retryable(cause):
            self._fail(cause)
            return
        failed_attempts = 0
        while True:
            # A line of sessions that keep dying young backs off like failed attempts.
            delay = self._backoff(max(0, churn - 1) + failed_attempts)
            if delay:
                await asyncio.sleep(delay)
            member = _Member(churn)
            try:
                await self._open(member)
            except Exception as error:
                self._record(error)
                self._last_error = error
                exhausted = self._max_retries is not None and failed_attempts >= self._max_retries
                if exhausted or not _retryable(error):
                    self._fail(error)
                    return
                failed_attempts += 1
                logger.warning(
                    "avatarkit: pool: opening a session failed (%s); retrying (%d)",
                    error,
                    failed_attempts,
                )
                continue
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

    async def _open(self, member: _Member) -> None:
        session = await self._new_session(member)
        member.session = session
        try:
            if not session.is_open:
                await session.init()
                await session.start()
            if not session.is_open:
                # Closed between the confirm and start() returning: its on_close
                # came before it joined the pool, so count a failed attempt here.
                raise member.close_error or AvatarSDKError(
                    AvatarSDKErrorCode.connectionClosed,
                    "the session closed as soon as it opened",
                    phase=ErrorPhase.WEBSOCKET_RUNTIME.value,
                )
        except BaseException:
            await session.close()
            raise
        member.opened_at = asyncio.get_running_loop().time()
        member.live = True

    async def _new_session(self, member: _Member) -> AvatarSession:
        hooks = self._hooks(member)
        if self._factory is None:
            kwargs = dict(self._session_kwargs)
            if self._session_ttl is not None:
                kwargs["expire_at"] = datetime.now(timezone.utc) + timedelta(
                    seconds=self._session_ttl
                )
            return new_avatar_session(**kwargs, **hooks)
        made = self._factory(**hooks)
        if inspect.isawaitable(made):
            made = await made
        if not isinstance(made, AvatarSession):
            raise TypeError(
                f"session_factory must return an AvatarSession, not {type(made).__name__}"
            )
        missing = [name for name in _HOOKS if getattr(made.config, name) is None]
        if missing:
            await made.close()
            raise TypeError(
                "session_factory must put the pool's callbacks it is given into the session's "
                f"config; missing: {', '.join(missing)}"
            )
        return made

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
        self._failures[_failure_key(error)] += 1
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
        user = self._user_hooks
        user_animation, user_error, user_close = (user[name] for name in _HOOKS)

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
                        phase=ErrorPhase.WEBSOCKET_RUNTIME.value,
                        connection_id=member.session.connection_id if member.session else None,
                    ),
                    terminal=True,
                )
        self._notify()
        if self._closed or self._failure is not None:
            return
        if error is not None:
            self._record(error)
            if not _retryable(error):
                # Stop now, before any waiter can take an idle session.
                self._fail(error)
                return
            logger.warning("avatarkit: pool: session lost (%s); replacing it", error)
        lived = asyncio.get_running_loop().time() - member.opened_at
        churn = member.churn + 1 if lived < self._backoff_max else 0
        self._spawn_fill(cause=error, churn=churn, replacing=True)


def _remaining(loop: asyncio.AbstractEventLoop, deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - loop.time())
