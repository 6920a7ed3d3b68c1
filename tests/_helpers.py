"""Code the tests share: repository paths, the published-peer virtualenv, and
the session recorder. Not a test module (pytest collects ``test_*.py`` only),
so test modules import from here and never from one another.

Paths are anchored on this file, which stays at ``tests/``, so a test module
finds the clips whichever subfolder (``unit/``, ``integration/``) it lives in.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avatarkit import (
    AnimationFrameEvent,
    AvatarSession,
    PlaybackSignal,
    PlaybackStateEvent,
    new_avatar_session,
)

if TYPE_CHECKING:  # unit tests import this module without the service
    from avatarkit.devserver import DevServer

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
PEERS = TESTS / "peers"
SPEECH_16K = (FIXTURES / "speech_16000.pcm").read_bytes()

#: The variables the CLI and the e2e tests read the hosted service's settings from.
CREDENTIAL_ENV_VARS = (
    "AVATARKIT_API_KEY",
    "AVATARKIT_APP_ID",
    "AVATARKIT_AVATAR_ID",
    "AVATARKIT_CONSOLE_ENDPOINT",
    "AVATARKIT_INGRESS_ENDPOINT",
)


def speech_pcm(rate: int = 16000, seconds: float | None = None) -> bytes:
    """The speech fixture at ``rate`` (a fixture rate), whole or its first ``seconds``."""
    data = (FIXTURES / f"speech_{rate}.pcm").read_bytes()
    return data if seconds is None else data[: int(seconds * rate) * 2]


# The published avatarkit 0.1.7 has our import name, so it runs from its own
# virtualenv (made once, by pip from the package index) in a subprocess.
PEER_VENV = ROOT / ".peers" / "avatarkit017"
PEER_PY = PEER_VENV / "bin" / "python"


def ensure_prometheus_client() -> None:
    """Install ``prometheus_client`` (examples/prometheus_metrics needs it; avatarkit does not)."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "prometheus_client"],
            check=True,
            timeout=600,
        )


def ensure_peer() -> Path:
    """The 0.1.7 peer's interpreter, making its virtualenv on first use."""
    if not PEER_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, timeout=600)
        subprocess.run(
            [str(PEER_PY), "-m", "pip", "install", "--quiet", "avatarkit==0.1.7"],
            check=True,
            timeout=600,
        )
    return PEER_PY


class Recorder:
    """Collects everything the session reports."""

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, bool]] = []
        self.errors: list[Exception] = []
        self.closes = 0
        self.signals: list[PlaybackSignal] = []
        self.states: list[PlaybackStateEvent] = []
        self.animations: list[AnimationFrameEvent] = []
        self.encoded: list[tuple[str, bytes]] = []
        self.ended = asyncio.Event()
        self.closed = asyncio.Event()

    def kwargs(self) -> dict[str, Any]:
        return dict(
            transport_frames=self.on_frame,
            on_error=self.errors.append,
            on_close=self.on_close,
            on_playback=self.signals.append,
            on_playback_state=self.states.append,
            on_animation=self.animations.append,
            on_encoded_audio=lambda req_id, data: self.encoded.append((req_id, data)),
        )

    def on_frame(self, data: bytes, last: bool) -> None:
        self.frames.append((data, last))
        if last:
            self.ended.set()

    def on_close(self) -> None:
        self.closes += 1
        self.closed.set()


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off (after one collection).

    For the tests that hold objects to be freed by reference counting alone:
    with the collector off, an object still alive once its last reference is
    dropped is held by a cycle (or by a stray reference).
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def make_session(server: DevServer, rec: Recorder | None = None, **overrides: Any) -> AvatarSession:
    """A session on ``server``'s settings, reporting to ``rec``; ``overrides`` win."""
    kwargs = server.session_kwargs(**(rec.kwargs() if rec is not None else {}))
    kwargs.update(overrides)
    return new_avatar_session(**kwargs)


def chromium_path() -> str:
    """Debian chromium for the browser tests.

    Skips without it; fails instead under ``AVATARKIT_REQUIRE_BROWSER``.
    """
    import os
    import shutil

    import pytest

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        path = None
        why = "playwright is not installed (pip install -e '.[dev]')"
    else:
        why = "chromium is not installed (bash scripts/install_browser.sh)"
    if path is None:
        if os.environ.get("AVATARKIT_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests required but {why}")
        pytest.skip(f"browser tests skipped: {why}")
    return path


class ServeProcess:
    """``avatarkit serve`` as a real process: to kill, freeze (SIGSTOP) and resume it.

    ``await ServeProcess.start("--pace", "fast")`` runs it on a free loopback
    port (or ``port=``, e.g. to restart it where it was) and reads its banner;
    :meth:`session_kwargs` gives ``new_avatar_session`` keywords for it.
    Always ``await proc.stop()`` (it resumes a frozen process first).
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        port: int,
        banner: dict[str, str],
        workers: list[tuple[int, str]],
    ):
        self.proc = proc
        self.port = port
        self.banner = banner
        self.workers = workers
        """With ``--workers N``: ``(pid, own root URL)`` per worker, from the banner."""

    @property
    def root(self) -> str:
        """The service's root URL (the console URL without ``/v1/console``)."""
        return self.banner["console URL"].removesuffix("/v1/console")

    @classmethod
    async def start(
        cls, *args: str, port: int | None = None, stderr: int = asyncio.subprocess.DEVNULL
    ) -> ServeProcess:
        import re
        import socket

        if port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "avatarkit.devserver",
            "--port",
            str(port),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        assert proc.stdout is not None
        banner: dict[str, str] = {}
        workers: list[tuple[int, str]] = []
        try:
            while True:
                line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
                if not line:
                    raise AssertionError(f"avatarkit serve exited early: {banner}")
                if m := re.match(r"\s+(console URL|ingress URL|API key|avatar id):\s+(\S+)", line):
                    banner.setdefault(m.group(1), m.group(2))
                if m := re.match(r"\s+worker \d+:\s+pid (\d+), own URL (\S+)/", line):
                    workers.append((int(m.group(1)), m.group(2)))
                if line.startswith("Ctrl+C"):
                    return cls(proc, port, banner, workers)
        except BaseException:
            proc.kill()
            await proc.wait()
            raise

    def session_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keywords of ``new_avatar_session`` for this service (dev credentials)."""
        from datetime import datetime, timedelta, timezone

        kwargs: dict[str, Any] = dict(
            api_key=self.banner["API key"],
            app_id="dev-app-id",
            avatar_id=self.banner["avatar id"],
            console_endpoint_url=self.banner["console URL"],
            ingress_endpoint_url=self.banner["ingress URL"],
            expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        )
        kwargs.update(overrides)
        return kwargs

    def freeze(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGCONT)

    async def kill(self) -> None:
        """SIGKILL, as a crash: no close frames, sockets reset by the kernel."""
        self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), 20)

    async def stop(self) -> None:
        """Resume if frozen, then kill and reap the process."""
        if self.proc.returncode is None:
            self.resume()
            self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), 20)
