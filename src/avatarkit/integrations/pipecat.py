"""Pipecat integration: :class:`AvatarService`, an avatar between the TTS and the output.

Needs the ``pipecat`` extra (``pip install 'avatarkit[pipecat]'``: pipecat-ai
1.14+, Python 3.11+); importing this module without it raises an
``ImportError`` naming the extra. See the README's "Pipecat" section.
"""

from __future__ import annotations

try:
    import pipecat.frames.frames
    import pipecat.processors.frame_processor  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "avatarkit.integrations.pipecat needs Pipecat: pip install 'avatarkit[pipecat]' "
        f"(pipecat-ai>=1.14, Python 3.11+); the import failed with: {exc}"
    ) from exc

from ._pipecat_service import AvatarAnimationFrame, AvatarService

__all__ = ["AvatarAnimationFrame", "AvatarService"]
