"""Servers the benchmark clients run against: the flood server and the local service.

:class:`Server` is what both launchers share: the process is started on
``with``, its stdout banner is read (at most 30 s) until :meth:`Server.ready`
has what the clients need, and it is stopped on exit (SIGTERM, SIGKILL after
15 s).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


# The smoke run starts its processes from several threads at once, where a
# ``preexec_fn`` is not safe (and pinning means nothing): it turns this off.
PINNING = True


def pinned(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``cpu`` (None, or pinning turned
    off: no pinning); every thread the child ever starts stays on that core."""
    if cpu is None or not PINNING or not hasattr(os, "sched_setaffinity"):
        return None
    cores = {cpu}

    def pin() -> None:
        os.sched_setaffinity(0, cores)

    return pin


class Server:
    """A server process; ``with Server(...) as info`` yields its URLs and pid."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None, cpu: int | None = None):
        self.cmd, self.env, self.cpu = cmd, env, cpu
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def ready(self, line: str) -> bool:
        """Parse one banner line into ``self.info``; True once complete."""
        raise NotImplementedError

    def __enter__(self) -> dict[str, Any]:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=self.env, cwd=str(ROOT),
                                     preexec_fn=pinned(self.cpu))  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # "" once the process has exited
            if not line:
                break
            if self.ready(line):
                self.info.update(pid=self.proc.pid, cpu=self.cpu)
                return self.info
        self.__exit__()
        raise RuntimeError(f"server did not start: {' '.join(self.cmd)}")

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
