"""avatarkit 0.1.7's module path for the session (see :mod:`avatarkit.session`)."""

from .session import AvatarSession, new_avatar_session

__all__ = ["AvatarSession", "new_avatar_session"]
