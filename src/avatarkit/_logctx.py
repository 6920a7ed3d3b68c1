"""Log records that say which session and request they are about.

Every logger of the SDK (``avatarkit.session``, ``avatarkit.transport``,
``avatarkit.picows``, ``avatarkit.pool``) is a :class:`SessionLogger`: each
record gets the ``extra`` fields ``avatarkit_connection_id`` and
``avatarkit_req_id`` (the most recent request; ``None`` when there is none
yet) and the same at the start of its message
(``[connection_id=... req_id=...]``, ``-`` for none), so a plain text log is
as searchable as a structured one.

Which session a record is about is found without passing it around: the
session's calls run inside :func:`scoped` (a context variable holding the
session, reset when the call returns), and what the event loop runs for the
session later (the transport's receive callbacks, reader/writer tasks, the
callback dispatcher) inherits that context from ``start()``, where it was
created. The ids are read when the record is made, so they are current.

The variable holds a weak reference to the session, not the session: the
event loop's socket transport and the tasks keep a copy of the context they
were created in, and the session keeps them, so a strong reference would
make every closed session cyclic garbage, left for the (pausing) cyclic
collector rather than freed by reference counting (issue 15).
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar, cast

__all__ = ["EXTRA_CONNECTION_ID", "EXTRA_REQ_ID", "SessionLogger", "current", "scope", "scoped"]

#: ``LogRecord`` attribute holding the connection id (``None`` before the confirm).
EXTRA_CONNECTION_ID = "avatarkit_connection_id"
#: ``LogRecord`` attribute holding the most recent request id (``None`` before one).
EXTRA_REQ_ID = "avatarkit_req_id"

_current: ContextVar[Callable[[], Any] | None] = ContextVar("avatarkit_session", default=None)


def _none() -> None:
    return None


def _ref(session: object) -> Callable[[], Any]:
    """A weak reference to ``session`` (a strong one for an object without weakrefs)."""
    try:
        return weakref.ref(session)  # the same object for every call: no allocation
    except TypeError:
        return lambda: session


def current() -> Any:
    """The session the running code works for, or ``None``."""
    return (_current.get() or _none)()


class scope:  # lower case: used as a function, ``with scope(session):``
    """Run the block as work for ``session`` (its records carry its ids).

    A class, not a ``@contextmanager`` generator: a request enters it on its
    way to the end, and the generator's machinery cost about a microsecond
    per use.
    """

    __slots__ = ("_session", "_token")

    def __init__(self, session: object) -> None:
        self._session = session

    def __enter__(self) -> None:
        self._token = _current.set(_ref(self._session))

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def scoped(func: _F) -> _F:
    """Decorate a session coroutine method: it runs in :func:`scope` of its session."""

    @functools.wraps(func)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _current.set(_ref(self))
        try:
            return await func(self, *args, **kwargs)
        finally:
            _current.reset(token)

    return cast("_F", method)


def _ids(session: Any) -> tuple[str | None, str | None]:
    if session is None:
        return None, None
    protocol = getattr(session, "_protocol", None)
    return (
        getattr(session, "connection_id", None),
        getattr(protocol, "last_req_id", None) if protocol is not None else None,
    )


class SessionLogger(logging.LoggerAdapter):  # type: ignore[type-arg, unused-ignore]
    """A logger whose records carry the current session's connection and request ids."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter) -> None:  # type: ignore[type-arg, unused-ignore]
        super().__init__(logger, {})  # type: ignore[arg-type, unused-ignore]

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        extra = dict(kwargs.get("extra") or {})
        connection_id, req_id = _ids(extra.pop("avatarkit_session", None) or current())
        extra[EXTRA_CONNECTION_ID] = connection_id
        extra[EXTRA_REQ_ID] = req_id
        kwargs["extra"] = extra
        prefix = f"[connection_id={connection_id or '-'} req_id={req_id or '-'}] "
        if args:  # the message is %-formatted later: keep a '%' in an id literal
            prefix = prefix.replace("%", "%%")
        self.logger.log(level, prefix + str(msg), *args, **kwargs)
