"""The end of a streamed request: the end bound on a timer, the interrupt on the wire.

A mixin of :class:`~avatarkit.AvatarRequest` (:mod:`avatarkit._request`).
Once a request's end is sent nothing waits for its end frame in a task: a
timer bounds the wait (``end_timeout`` after the expected end, the clock
stopped while the output is held), and only when it runs out, or when
``interrupt()`` comes in this phase, does a task start, to send the interrupt
and resolve the request. The interrupt goes out at once when the socket takes
it, else through the awaited send under :data:`_CONTROL_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ._logctx import SessionLogger
from ._pacing import Pacer
from ._request_types import RequestTimeoutError
from .errors import AvatarSDKError

if TYPE_CHECKING:
    from .session import AvatarSession

__all__ = ["_CONTROL_TIMEOUT", "RequestEnd", "logger"]

#: Records carry the session's ids (``avatarkit_connection_id``/``avatarkit_req_id``).
logger = SessionLogger(logging.getLogger("avatarkit.stream"))

_CONTROL_TIMEOUT = 2.0
"""Bound on sending the interrupt of a request that failed or timed out."""


class RequestEnd:
    """Mixin: the end phase of :class:`~avatarkit.AvatarRequest` (its state lives there)."""

    _session: AvatarSession
    _loop: asyncio.AbstractEventLoop
    _result: asyncio.Future[Any]
    _task: asyncio.Future[None]
    _pacer: Pacer
    _end_timeout: float
    _end_timer: asyncio.TimerHandle | None
    _last_sent: float | None
    _last_frame: float | None
    req_id: str | None

    if TYPE_CHECKING:

        def _resolve(self, *, interrupted: bool = False) -> None: ...
        def _fail(self, error: BaseException) -> None: ...

    # -- the end bound: a timer, not a waiting task -------------------------------

    def _end_remaining(self) -> float | None:
        """Seconds left for the end frame: ``end_timeout`` after the expected end.

        The expected end is the latest of the last send, the last frame and the
        audio's playback end. The clock stops while the session holds this
        request (``pause()`` .. ``resume()``): the service holds its output (and
        its end frame) that long, so the held time is added. ``None`` while held.
        """
        session = self._session
        if session._paused_req is not None and session._paused_req == self.req_id:
            return None
        loop = self._loop
        held_req, held = session._held
        marks = [self._last_sent or loop.time(), self._last_frame or 0.0]
        playback_end = self._pacer.playback_end
        if playback_end is not None:
            marks.append(playback_end)
        remaining = max(marks) + self._end_timeout - loop.time()
        if held_req == self.req_id is not None:
            remaining += held
        return remaining

    def _arm_end_timer(self, remaining: float | None = None) -> None:
        """Bound the wait for the end frame with a timer (``remaining``: known already).

        Once the end is sent the feeder returns: nothing waits in a task for
        the end frame, whose arrival resolves the request and cancels the timer
        (:meth:`_finish`). A request's end thus costs no wake-up of a waiting
        task and no ``asyncio.wait``. While the output is held the bound is
        looked at again every ``end_timeout``; a frame that came meanwhile
        moves it on. A bound already passed fires on the loop's next turn.
        """
        if self._result.done():
            return
        if remaining is None:
            remaining = self._end_remaining()
        delay = self._end_timeout if remaining is None else max(remaining, 0.0)
        self._end_timer = self._loop.call_later(delay, self._on_end_timer)

    def _on_end_timer(self) -> None:
        self._end_timer = None
        if self._result.done():
            return
        remaining = self._end_remaining()
        if remaining is not None and remaining <= 0:  # interrupt, then fail, in a task of its own
            self._task = self._loop.create_task(self._time_out(), name="avatarkit-stream")
        else:
            self._arm_end_timer(remaining)

    def _cancel_end_timer(self) -> None:
        if self._end_timer is not None:
            self._end_timer.cancel()
            self._end_timer = None

    async def _time_out(self) -> None:
        """No end frame within the bound: interrupt the request on the wire, then fail it."""
        await self._send_interrupt()
        self._fail(RequestTimeoutError(self._end_timeout, self.req_id, self._session.connection_id))

    async def _interrupt_fed(self) -> None:
        """:meth:`interrupt` after the end was sent: interrupt on the wire, resolve."""
        try:
            await self._send_interrupt()
        finally:
            self._resolve(interrupted=True)

    def _interrupt_now(self) -> bool:
        """Send the interrupt if the socket takes it now; ``False``: it has to wait.

        ``True`` also when there is nothing to interrupt or the session can no
        longer send (logged): best effort, the request resolves either way.
        """
        if self.req_id is None:
            return True
        try:
            return self._session._interrupt_request_now(self.req_id)
        except (AvatarSDKError, OSError, ValueError) as exc:
            logger.info(
                "avatarkit: could not interrupt request %s (%s)",
                self.req_id,
                exc,
                extra={"connection_id": self._session.connection_id, "req_id": self.req_id},
            )
            return True

    async def _send_interrupt(self) -> None:
        """Best effort, bounded: the request is resolved whatever this does."""
        if self._interrupt_now() or self.req_id is None:
            return
        try:
            await asyncio.wait_for(self._session._interrupt_request(self.req_id), _CONTROL_TIMEOUT)
        except asyncio.CancelledError:
            # Stopped again (close(), a drop) while sending it: the request
            # still resolves; the cancel must not escape the feeder's handler.
            _uncancel()
            logger.info(
                "avatarkit: interrupt of request %s cut short (the request was stopped)",
                self.req_id,
                extra={"connection_id": self._session.connection_id, "req_id": self.req_id},
            )
        except (AvatarSDKError, OSError, ValueError, asyncio.TimeoutError) as exc:
            logger.info(
                "avatarkit: could not interrupt request %s (%s)",
                self.req_id,
                exc,
                extra={"connection_id": self._session.connection_id, "req_id": self.req_id},
            )


async def _until_done(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
    """Sleep until ``fut`` is done, without cancelling it when the caller is cancelled.

    ``asyncio.wait`` for one future, without its sets and copies.
    """
    if fut.done():
        return
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)

    fut.add_done_callback(wake)
    try:
        await waiter
    finally:
        fut.remove_done_callback(wake)


def _uncancel() -> None:
    """A cancel we asked for and handled: clear it (Python 3.11+) so later timeouts work."""
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()
