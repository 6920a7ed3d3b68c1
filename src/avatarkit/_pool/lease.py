"""Leases of the session pool: :class:`SessionLease` and each pooled session's state.

A lease routes the frames and errors of its own requests to its holder and
nothing else (see :mod:`avatarkit.pool` for the behaviour as a whole).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .._framebuffer import FrameBuffer
from .._request import AvatarRequest
from ..errors import AvatarSDKError
from ..events import AnimationFrameEvent
from ..session import AvatarSession

if TYPE_CHECKING:
    from .core import SessionPool

__all__ = ["PoolClosedError", "SessionLease"]

_RETIRED_KEPT = 64  # request ids remembered per session for dropping stale frames


class PoolClosedError(RuntimeError):
    """The pool is closed (or closed while the lease was held)."""


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
        self._queue: FrameBuffer[_Item] = FrameBuffer()
        self._released = False
        self._open = False  # audio sent (or being sent) without end=True
        self._sent: dict[str, None] = {}  # request ids sent on this lease, in order
        self._ended: set[str] = set()  # ... whose end frame arrived
        self._interrupted: set[str] = set()
        self._request: AvatarRequest | None = None  # the last from stream()

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

    def stream(self, source: Any, **options: Any) -> AvatarRequest:
        """:meth:`AvatarSession.stream` on the leased session (same options).

        A request still streaming when the lease is released is interrupted
        and resolves as interrupted. Its frames go to the request's own
        iterator and also to :meth:`frames`.
        """
        self._check("stream")
        request = self._session.stream(source, **options)
        self._request = request
        request._started.add_done_callback(self._stream_started)
        return request

    def _stream_started(self, started: asyncio.Future[str]) -> None:
        # Tracked like send_audio()'s requests: on release, late frames of
        # an unfinished one are dropped, never given to the next holder.
        if not started.cancelled() and started.exception() is None:
            self._sent[started.result()] = None

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
        item = await self._queue.get()  # never closed: a release is a marker item
        if isinstance(item, AnimationFrameEvent):
            return item
        if item is None or isinstance(item, _Released):
            if item is not None:
                self._queue.unget(item)  # every later call stops too
            return None
        if item.terminal:
            self._queue.unget(item)  # every later call raises again
        raise _fresh(item.error)

    def _deliver(self, frame: AnimationFrameEvent) -> None:
        if frame.end:
            self._ended.add(frame.req_id)
        self._queue.put(frame)

    def _fail(self, error: BaseException, *, terminal: bool) -> None:
        self._queue.put(_Failure(error, terminal))

    def _wants_error(self, error: AvatarSDKError) -> bool:
        """Whether a run-time service error concerns this lease's requests."""
        if error.req_id:
            return error.req_id not in self._member.retired
        return self._open or bool(self._unfinished())

    def _unfinished(self) -> list[str]:
        return [r for r in self._sent if r not in self._ended]

    def _needs_interrupt(self) -> bool:
        if self._request is not None and not self._request._resolved:
            return True
        return self._open or any(r not in self._interrupted for r in self._unfinished())
