"""LiveKit Agents integration: :class:`AvatarSession`, an avatar for a voice agent.

Needs the ``livekit`` extra (``pip install 'avatarkit[livekit]'``:
livekit-agents 1.8+, livekit-api 1.2+); importing this module without it
raises an ``ImportError`` naming the extra. See the README's "LiveKit Agents"
section.
"""

from __future__ import annotations

try:
    import livekit.agents.voice.avatar
    import livekit.api  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "avatarkit.integrations.livekit needs LiveKit Agents: pip install "
        "'avatarkit[livekit]' (livekit-agents>=1.8, livekit-api>=1.2); the import failed "
        f"with: {exc}"
    ) from exc

from ._livekit_avatar import AvatarSession
from ._livekit_sink import AvatarAudioSink

__all__ = ["AvatarAudioSink", "AvatarSession"]
