"""The one buffer between a receive callback and an async consumer.

Used by :meth:`AvatarSession.frames` and by a pool lease. Cheaper per item
than an ``asyncio.Queue`` (no waiter bookkeeping per item): the producer
appends and wakes the consumer only when it sleeps. Unbounded by design: a
frame is never dropped, so the consumer must keep up.

Frames wait as the received message bytes (an end frame as a 1-tuple of
them, :data:`Received`) and become an :class:`~avatarkit.AnimationFrameEvent`
when read (:func:`frame_event`), without a second parse: the event parses its
other fields only if they are read. Under a flood one socket read hands over
hundreds of frames per session before any consumer runs; as events they were
objects the garbage collector walked again and again while they waited (and
twice the memory), as bytes they are not tracked at all.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from .events import AnimationFrameEvent
from .protocol import ClientProtocol, ClientState

__all__ = ["FrameBuffer", "FrameStreams", "Received", "frame_event", "received"]

T = TypeVar("T")

#: A received animation message waiting to be read: its bytes, or for the
#: request's end frame a 1-tuple of them (so ``end`` needs no parse when read).
Received = bytes | tuple[bytes]


def received(message: bytes, end: bool) -> Received:
    """What a buffer keeps for one animation message (see :data:`Received`).

    The receive paths (``on_message``, a request's ``_on_animation``) write
    this expression out: they run per frame.
    """
    return (message,) if end else message


def frame_event(item: Received) -> AnimationFrameEvent:
    """The event of one buffered message (parsed only if its other fields are read).

    Built without ``__init__`` (it would need the parsed fields): only
    ``message`` and ``end`` are set, the rest is parsed on first read.
    """
    event: AnimationFrameEvent = _new_event(AnimationFrameEvent)
    if item.__class__ is tuple:
        event.message = item[0]
        event.end = True
    else:
        event.message = item  # type: ignore[assignment]
        event.end = False
    return event


_new_event = object.__new__


class FrameBuffer(Generic[T]):
    """Items for a consumer: a deque, a ``closed`` flag and the sleepers' wake-ups.

    Usually one consumer sleeps at a time; several may (a lease iterated by
    two tasks), and each is woken.
    """

    __slots__ = ("closed", "items", "waiters")

    def __init__(self) -> None:
        self.items: deque[T] = deque()
        self.waiters: list[asyncio.Future[None]] = []
        self.closed = False

    def put(self, item: T) -> None:
        """Append ``item`` and wake the consumer if it sleeps.

        A consumer that is awake reads everything appended before it next
        sleeps: one wake-up per batch of items, none per item.
        """
        self.items.append(item)
        if self.waiters:
            self.wake()

    def unget(self, item: T) -> None:
        """Put ``item`` back in front, to be read again first (a sticky marker)."""
        self.items.appendleft(item)
        self.wake()

    def close(self) -> None:
        """No more items: the consumer ends once it has read what is left."""
        self.closed = True
        self.wake()

    def wake(self) -> None:
        """Wake every sleeping consumer (a no-op when none sleeps)."""
        if self.waiters:
            waiters, self.waiters = self.waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def sleeper(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A future the next ``put``, ``unget`` or ``close`` resolves; await it to sleep.

        :meth:`wait` without its coroutine and without looking the running
        loop up (``get_running_loop()`` costs a ``getpid()`` system call), for
        the per-wake-up path of the iterators. A sleeper cancelled with its
        task stays in ``waiters`` until the next wake-up, which skips it, or
        the next sleeper, which drops it (a consumer polled with a timeout
        while no frame comes must not grow the list).
        """
        waiter: asyncio.Future[None] = loop.create_future()
        waiters = self.waiters
        if waiters:  # usually empty: each wake-up starts a new list
            self.waiters = waiters = [w for w in waiters if not w.done()]
        waiters.append(waiter)
        return waiter

    async def wait(self) -> None:
        """Sleep until the next ``put``, ``unget`` or ``close``."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done() and waiter in self.waiters:  # cancelled while asleep
                self.waiters.remove(waiter)

    async def get(self) -> T | None:
        """The next item, waiting for one; ``None`` once closed and empty."""
        items = self.items
        while not items:
            if self.closed:
                return None
            await self.wait()
        return items.popleft()


class FrameStreams:
    """Mixin of :class:`~avatarkit.AvatarSession`: ``frames()``, one buffer per iterator."""

    _protocol: ClientProtocol
    _frame_queues: list[FrameBuffer[Received]] | None  # received messages, parsed when read

    async def frames(self) -> AsyncIterator[AnimationFrameEvent]:
        """Iterate over animation frames as they arrive, until the session ends.

        Each iterator gets every frame from the moment it starts; several may
        run at once. Ends cleanly when the session closes; a frame is never
        dropped (the queue is unbounded, so consume promptly).
        """
        if self._protocol.state is ClientState.CLOSED:
            return
        buffer: FrameBuffer[Received] = FrameBuffer()
        if self._frame_queues is None:
            self._frame_queues = []
        self._frame_queues.append(buffer)  # fed by on_message (_receiving)
        frames = buffer.items
        loop = asyncio.get_running_loop()
        try:
            while True:
                while frames:
                    yield frame_event(frames.popleft())
                if buffer.closed:
                    return
                await buffer.sleeper(loop)
        finally:
            self._frame_queues.remove(buffer)
