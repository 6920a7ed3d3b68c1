"""The local avatar service (``avatarkit serve``) in its own process, for the driver.

``with LocalService(pace="realtime", cpu=0) as svc:`` starts
``python -m avatarkit.devserver`` (the same entry point as ``avatarkit serve``)
from this repository's ``src/`` on a free port, accepting the benchmark
runner's credentials, optionally pinned to one CPU (``os.sched_setaffinity``
in the child before exec: every thread it ever starts stays on that core),
and yields ``{"console", "ingress", "pid", "cpu"}`` parsed from its banner.
The service is the unmodified command-line product with its defaults (its
own event loop, asyncio's; idle timeout 60 s).

Also a helper for pinning the load generator: :func:`pinned` returns a
``preexec_fn`` for ``subprocess``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

API_KEY = "bench-key"  # what sdk_runner.py sends
APP_ID = "bench-app"
AVATAR_ID = "bench-avatar"

_URL = re.compile(r"^\s*(console|ingress) URL:\s*(\S+)\s*$")


def pinned(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``cpu`` (None: no pinning)."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    cores = {cpu}

    def pin() -> None:
        os.sched_setaffinity(0, cores)

    return pin


def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


class LocalService:
    def __init__(
        self, pace: str, cpu: int | None = None, *extra: str, src: Path | None = None
    ) -> None:
        self.pace = pace
        self.cpu = cpu
        self.extra = list(extra)
        self.src = src or ROOT / "src"  # another tree: e.g. an earlier commit, to compare
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> dict[str, Any]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.src)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        cmd = [
            sys.executable,
            "-m",
            "avatarkit.devserver",
            "--port",
            "0",
            "--pace",
            self.pace,
            "--api-key",
            f"{API_KEY}:{APP_ID}",
            "--avatar",
            AVATAR_ID,
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=str(ROOT),
            preexec_fn=pinned(self.cpu),  # the driver has no threads
        )
        assert self.proc.stdout is not None
        urls: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(urls) < 2:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = _URL.match(line)
            if m:
                urls[m.group(1)] = m.group(2)
        if len(urls) < 2:
            self.__exit__()
            raise RuntimeError(f"the local service did not start: {' '.join(cmd)}")
        # Nothing more comes on stdout (the stop message goes to stderr).
        self.info = {
            "console": urls["console"],
            "ingress": urls["ingress"],
            "pid": self.proc.pid,
            "cpu": self.cpu,
            "pace": self.pace,
            "src": str(self.src),
            "command": "python -m avatarkit.devserver (= avatarkit serve) " + " ".join(cmd[3:]),
        }
        return self.info

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM: the service closes its sessions and exits
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
