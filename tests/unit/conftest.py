"""Unit tests run pure code: this guard makes opening a socket or starting a
subprocess raise, so a test that needs either fails here with a pointer to
``tests/integration/`` instead of quietly making the unit run slow or flaky.

The event loop still works: its self-pipe is a ``socketpair``, which neither
binds nor connects.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import NoReturn

import pytest


def _refuse(*args: object, **kwargs: object) -> NoReturn:
    raise RuntimeError(
        "a unit test opened a socket or started a subprocess: "
        "move it to tests/integration (loopback sockets, subprocesses, published clients)"
    )


@pytest.fixture(autouse=True)
def no_sockets_or_subprocesses(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse bind/connect/sendto on every socket and any subprocess, for one test."""
    for name in ("bind", "connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, _refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse)
    yield
