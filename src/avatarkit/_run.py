"""Run a coroutine on uvloop when it is installed (the ``uvloop`` extra), else asyncio.

The SDK itself runs on whatever loop the application uses; this is for the
entry points it owns (the ``avatarkit`` command and ``avatarkit serve``) and
for applications that want the same choice: ``avatarkit.run(main())``.
uvloop's faster loop lowers the per-frame and per-set-up cost (BENCHMARKS.md
runs every client on it). ``AVATARKIT_LOOP=asyncio`` forces the standard loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

_T = TypeVar("_T")


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)``, on uvloop's event loop when uvloop is installed."""
    if os.environ.get("AVATARKIT_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            result: _T = uvloop.run(main)
            return result
    return asyncio.run(main)
