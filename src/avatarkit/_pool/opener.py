"""How the session pool makes and opens its sessions.

:class:`SessionOpener` checks the pool's session keywords (or factory) once,
up front, then makes each new session with the pool's callbacks installed
and opens it (token call, WebSocket, handshake).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ..config import SessionConfig
from ..errors import AvatarSDKError, AvatarSDKErrorCode, ErrorPhase
from ..session import AvatarSession, new_avatar_session
from .lease import _Member

__all__ = ["HOOKS", "SessionFactory", "SessionOpener"]

SessionFactory = Callable[..., "AvatarSession | Awaitable[AvatarSession]"]
"""``factory(on_animation=..., on_error=..., on_close=...) -> AvatarSession``
(or an awaitable of one): see :class:`~avatarkit.SessionPool`."""

HOOKS = ("on_animation", "on_error", "on_close")
"""The session callbacks the pool installs (the user's own are chained)."""

_CONFIG_FIELDS = frozenset(SessionConfig.__dataclass_fields__)


class SessionOpener:
    """Makes and opens the pool's sessions from keywords or a factory.

    The constructor raises what ``SessionPool()`` documents: ``TypeError``
    for unknown keywords or conflicting options, ``ValueError`` for
    configuration that can never work, before any network call.
    """

    __slots__ = ("avatar_id", "factory", "session_kwargs", "session_ttl", "user_hooks")

    def __init__(
        self,
        session_factory: SessionFactory | None,
        session_ttl: float | None,
        session_kwargs: dict[str, Any],
    ) -> None:
        if session_ttl is not None and not session_ttl > 0:
            raise ValueError("session_ttl must be > 0 seconds")
        self.user_hooks: dict[str, Callable[..., Any] | None] = dict.fromkeys(HOOKS)
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
            for name in HOOKS:
                self.user_hooks[name] = session_kwargs.pop(name, None)
            probe = {k: v for k, v in session_kwargs.items() if k != "transport_factory"}
            if session_ttl is not None:
                probe["expire_at"] = datetime.now(timezone.utc) + timedelta(seconds=session_ttl)
            SessionConfig(**probe).validate()
        self.session_ttl = session_ttl
        self.factory = session_factory
        self.session_kwargs = session_kwargs
        self.avatar_id: str = str(session_kwargs.get("avatar_id") or "")

    async def open(self, member: _Member, hooks: dict[str, Callable[..., Any]]) -> None:
        """Make ``member``'s session with ``hooks`` and open it; closed again on failure."""
        session = await self.new_session(hooks)
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
                    phase=ErrorPhase.WEBSOCKET_RUNTIME,
                )
        except BaseException:
            await session.close()
            raise

    async def new_session(self, hooks: dict[str, Callable[..., Any]]) -> AvatarSession:
        """A new, not yet opened session (or an open one, from an async factory)."""
        if self.factory is None:
            kwargs = dict(self.session_kwargs)
            if self.session_ttl is not None:
                kwargs["expire_at"] = datetime.now(timezone.utc) + timedelta(
                    seconds=self.session_ttl
                )
            return new_avatar_session(**kwargs, **hooks)
        made = self.factory(**hooks)
        if inspect.isawaitable(made):
            made = await made
        if not isinstance(made, AvatarSession):
            raise TypeError(
                f"session_factory must return an AvatarSession, not {type(made).__name__}"
            )
        missing = [name for name in HOOKS if getattr(made.config, name) is None]
        if missing:
            await made.close()
            raise TypeError(
                "session_factory must put the pool's callbacks it is given into the session's "
                f"config; missing: {', '.join(missing)}"
            )
        return made
