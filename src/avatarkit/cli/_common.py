"""What every part of the command shares: constants, :class:`CLIError`, notes on stderr."""

from __future__ import annotations

import sys

FRAME_MS = 40
"""Animation frame interval of the service (25 frames per second)."""
DEFAULT_DEMO_OUT = "avatarkit-demo-frames.jsonl"
DEMO_CLIP = "speech_16000.pcm"
DEMO_RATE = 16000


class CLIError(Exception):
    """A failure of the command itself, with what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _note(message: str) -> None:
    print(f"avatarkit: {message}", file=sys.stderr, flush=True)
