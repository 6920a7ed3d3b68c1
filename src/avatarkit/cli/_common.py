"""What every part of the command shares: constants, :class:`CLIError`, notes on stderr."""

from __future__ import annotations

import sys

from .._frames_codec import FRAME_MS  # the service's frame interval, defined there once

__all__ = ["DEFAULT_DEMO_OUT", "DEMO_CLIP", "DEMO_RATE", "FRAME_MS", "CLIError"]
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
