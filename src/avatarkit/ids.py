"""Request and log identifiers: ``YYYYMMDDHHMMSS_<12-char nanoid>`` in UTC."""

from __future__ import annotations

import os
import time

__all__ = ["NANOID_ALPHABET", "generate_log_id"]

#: The nanoid URL-safe alphabet: 64 symbols, so one random byte masked to six
#: bits picks one with no bias.
NANOID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_TABLE = bytes(NANOID_ALPHABET, "ascii") * 4  # index with any byte value


def generate_log_id() -> str:
    """A new request id: UTC time to the second, ``_``, 12 random nanoid chars."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return stamp + "_" + os.urandom(12).translate(_TABLE).decode("ascii")
