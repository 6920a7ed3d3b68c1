"""``new_avatar_session()``: a session from :class:`SessionConfig` keywords (re-exported by
:mod:`avatarkit.session`, its public home)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import SessionConfig

if TYPE_CHECKING:
    from .session import AvatarSession

__all__ = ["new_avatar_session"]


_SESSION_FIELDS = frozenset(SessionConfig.__dataclass_fields__)


def new_avatar_session(**kwargs: Any) -> AvatarSession:
    """Create an :class:`AvatarSession` from :class:`SessionConfig` keywords.

    An unknown keyword raises ``TypeError`` naming it (a typo would otherwise
    be silently ignored).
    """
    transport_factory = kwargs.pop("transport_factory", None)
    unknown = sorted(set(kwargs) - _SESSION_FIELDS)
    if unknown:
        raise TypeError(
            f"new_avatar_session() got unknown keyword argument(s): {', '.join(unknown)}; "
            f"valid ones are the SessionConfig fields"
        )
    from .session import AvatarSession

    return AvatarSession(SessionConfig(**kwargs), transport_factory=transport_factory)


async def open_session(session: AvatarSession) -> AvatarSession:
    """``init()`` then ``start()`` (bounded by ``open_timeout``); on any failure,
    cancellation included, the session is closed before the error propagates.

    The integrations open their sessions this way, so that a failed or
    abandoned open never leaves a half-open session behind.
    """
    try:
        await session.init()
        await session.start()
    except BaseException:
        await session.close()
        raise
    return session
