"""Running the user's callbacks for a session: in order, never raising into the session.

Plain functions run inline; a coroutine function (or anything returning an
awaitable) runs on one dispatcher task per session, and later callbacks wait
their turn behind it. A callback that raises is logged with its traceback
(logger ``avatarkit.session``) and the session carries on.

``close()`` waits for queued async callbacks only within its own bound;
what is still queued then keeps running on the dispatcher in the
background (``on_close`` last), ``wait_closed()`` waits for it, and an
event loop that ends first cancels it (coroutines that never ran are
closed).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ._logctx import SessionLogger
from .protocol import ClientProtocol, ClientState

__all__ = ["CallbackRunner"]

logger = SessionLogger(logging.getLogger("avatarkit.session"))


class CallbackRunner:
    """Mixin of :class:`~avatarkit.AvatarSession`: the callback dispatcher.

    The attributes live in the session's slots; they are declared here for
    the type checker only.
    """

    _protocol: ClientProtocol
    _dispatch_queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] | None
    _dispatch_wakeup: asyncio.Event | None
    _dispatch_task: asyncio.Task[None] | None

    def _call(self, func: Callable[..., Any], name: str, *args: Any) -> None:
        """Call a user callback: never raises, keeps callbacks in order.

        A plain function runs now, unless async callbacks are still pending,
        then it waits its turn on the dispatcher task. A coroutine function
        (or any callback returning an awaitable) is awaited on that task.
        """
        if self._dispatch_queue:
            self._enqueue(func, args)
            return
        try:
            result = func(*args)
        except Exception:
            logger.exception("avatarkit: %s callback raised; the session goes on", name)
            return
        if result is not None and inspect.isawaitable(result):
            self._enqueue(_await_result, (result, name))

    def _enqueue(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Run ``func(*args)`` on the dispatcher task, after what is queued."""
        queue = self._dispatch_queue
        if queue is None:
            queue = self._dispatch_queue = deque()
        queue.append((func, args))
        self._wake_dispatcher()

    def _wake_dispatcher(self) -> None:
        if self._dispatch_task is None or self._dispatch_task.done():
            self._dispatch_wakeup = asyncio.Event()
            self._dispatch_task = asyncio.get_running_loop().create_task(
                self._dispatch(), name="avatarkit-callbacks"
            )
        assert self._dispatch_wakeup is not None
        self._dispatch_wakeup.set()

    async def _wait_callbacks(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` (``None``: no limit) for queued callbacks.

        Never from the dispatcher itself (a callback calling ``close()`` or
        ``wait_closed()``): that would wait for itself. Not cancelling: on
        timeout the callbacks go on in the background.
        """
        task = self._dispatch_task
        if task is None or task.done() or task is asyncio.current_task():
            return
        if timeout is not None and timeout <= 0:
            done = False
        else:
            done = bool((await asyncio.wait({task}, timeout=timeout))[0])
        if not done:
            logger.info(
                "avatarkit: close() returns with %d callback(s) still queued; they run in "
                "the background (wait_closed() waits for them)",
                len(self._dispatch_queue or ()),
            )

    async def _dispatch(self) -> None:
        queue = self._dispatch_queue
        wakeup = self._dispatch_wakeup
        assert queue is not None and wakeup is not None
        try:
            while True:
                while queue:
                    func, args = queue[0]
                    try:
                        result = func(*args)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        name = args[1] if func is _await_result else _name(func)
                        logger.exception("avatarkit: %s callback raised; the session goes on", name)
                    finally:
                        queue.popleft()
                if self._protocol.state is ClientState.CLOSED:
                    return
                wakeup.clear()
                await wakeup.wait()
        finally:
            # Cancelled (the loop is shutting down): coroutines of async
            # callbacks that never got their turn are closed, not left to
            # warn "never awaited".
            while queue:
                func, args = queue.popleft()
                if func is _await_result and inspect.iscoroutine(args[0]):
                    args[0].close()


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", type(func).__name__)


async def _await_result(result: Awaitable[Any], name: str) -> None:
    """Await what an async callback ``name`` returned (on the dispatcher task)."""
    await result
