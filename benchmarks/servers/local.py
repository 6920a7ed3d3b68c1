"""The local avatar service (``avatarkit serve``) in its own process, for the driver.

``with LocalService(pace="realtime", cpu=0) as svc:`` starts
``python -m avatarkit.devserver`` (the same entry point as ``avatarkit serve``)
from this repository's ``src/`` on a free port, accepting the benchmark
runner's credentials, optionally pinned to one CPU (``os.sched_setaffinity``
in the child before exec: every thread it ever starts stays on that core),
and yields ``{"console", "ingress", "pid", "cpu"}`` parsed from its banner.
The service is the unmodified command-line product with its defaults (its
own event loop, asyncio's; idle timeout 60 s).
"""

from __future__ import annotations

import os
import re
import sys

from benchmarks.common import API_KEY, APP_ID, AVATAR_ID
from benchmarks.servers import ROOT, Server

_URL = re.compile(r"^\s*(console|ingress) URL:\s*(\S+)\s*$")


def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


class LocalService(Server):
    """``with LocalService("realtime", cpu) as info``: see the module docstring."""

    def __init__(self, pace: str, cpu: int | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "avatarkit.devserver", "--port", "0", "--pace", pace,
               "--api-key", f"{API_KEY}:{APP_ID}", "--avatar", AVATAR_ID]  # fmt: skip
        super().__init__(cmd, env, cpu)
        shown = " ".join(cmd[3:]).replace(API_KEY, "***")  # no credential in the results
        self.info = {"pace": pace, "command": "avatarkit serve " + shown}

    def ready(self, line: str) -> bool:
        m = _URL.match(line)
        if m:
            self.info[m.group(1)] = m.group(2)
        return "console" in self.info and "ingress" in self.info
