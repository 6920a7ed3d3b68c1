"""Helpers shared by the benchmark processes (standard library only).

Every client and the flood server import this module, including the SDK
client that executes under avatarkit 0.1.7's own virtualenv, so it must not
import ``avatarkit``, numpy or anything outside the standard library.

Conventions: progress goes to stderr; the one machine-readable result is the
last stdout line, ``RESULT <json>``, which is all the driver reads. Real-time
frames carry two float64 ``time.monotonic()`` values (little endian) in the
last 16 bytes of their animation payload, the server's send time then the
frame's due time; the payload is the envelope's last field (``avatar_id`` is
left empty), so a client reads them the same way from an envelope (what
``transport_frames`` gets) or a parsed payload. CLOCK_MONOTONIC is
system-wide on Linux, so the values compare across processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import struct
import sys
from collections.abc import Sequence
from typing import Any

FRAME_HZ = 25
FRAME_PERIOD = 1.0 / FRAME_HZ
SAMPLE_RATE = 16000
CHUNK_MS = 40
CHUNK_BYTES = SAMPLE_RATE * CHUNK_MS // 1000 * 2  # 16-bit mono PCM: 1280 bytes
DEFAULT_PAYLOAD = 600

_TAIL = struct.Struct("<dd")  # send time, due time
TAIL_BYTES = _TAIL.size

# Credentials every client sends and every server accepts.
APP_ID = "bench-app"
AVATAR_ID = "bench-avatar"
API_KEY = "bench-key"

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIRE_PB2 = os.path.join(REPO_ROOT, "src", "avatarkit", "proto", "avatarkit_wire_pb2.py")


def load_wire_pb2() -> Any:
    """The project's generated wire module, loaded without importing the SDK.

    The floor clients and the flood server need only the message classes;
    importing ``avatarkit.proto`` would run the SDK package's ``__init__``.
    """
    import importlib.util

    name = "avatarkit_wire_pb2"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, WIRE_PB2)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def protobuf_backend() -> str:
    from google.protobuf.internal import api_implementation

    return str(api_implementation.Type())


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def emit_result(result: dict[str, Any]) -> None:
    """Print the machine-readable result line (the last stdout line)."""
    sys.stdout.write("RESULT " + json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])  # type: ignore[no-any-return]
    return None


def cpu_seconds() -> float:
    """User + system CPU time of this process (RUSAGE_SELF)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def vmrss_kib() -> int:
    """Resident set size of this process, from /proc/self/status (KiB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def raise_nofile_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def pack_times(buf: bytearray, send_time: float, due_time: float) -> None:
    """Write (send, due) into the last 16 bytes of ``buf``."""
    _TAIL.pack_into(buf, len(buf) - TAIL_BYTES, send_time, due_time)


def frame_times(buf: bytes | bytearray | memoryview) -> tuple[float, float]:
    """(server send time, due time) from the last 16 bytes."""
    sent, due = _TAIL.unpack_from(buf, len(buf) - TAIL_BYTES)
    return sent, due


def quantiles(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    """Nearest-rank quantiles (q in [0, 1]); None for an empty sample."""
    if not values:
        return [None for _ in qs]
    s = sorted(values)
    n = len(s)
    out: list[float | None] = []
    for q in qs:
        idx = min(n - 1, max(0, int(q * n + 0.999999) - 1))
        out.append(s[idx])
    return out


def summarize_ms(values: Sequence[float]) -> dict[str, Any]:
    """p50/p90/p99/max (and count) of a sample in seconds, reported in ms."""
    p50, p90, p99, p999, pmax = quantiles(values, (0.5, 0.9, 0.99, 0.999, 1.0))

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 4)

    return {
        "count": len(values),
        "p50_ms": ms(p50),
        "p90_ms": ms(p90),
        "p99_ms": ms(p99),
        "p999_ms": ms(p999),
        "max_ms": ms(pmax),
        "mean_ms": ms(sum(values) / len(values)) if values else None,
    }


def install_event_loop(kind: str) -> str:
    """Select the event loop implementation; returns what is in use."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            log("uvloop requested but not installed; using asyncio's default loop")
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of another (live) process, from /proc/PID/stat (10 ms ticks)."""
    split = process_cpu_split(pid)
    return None if split is None else split[0] + split[1]


def process_cpu_split(pid: int) -> tuple[float, float] | None:
    """(utime, stime) of another (live) process: its own code's CPU and the
    kernel's on its behalf (system calls), from /proc/PID/stat (10 ms ticks)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def load_chunks(path: str | None) -> list[bytes]:
    """A 16-bit PCM file cut into 40 ms chunks of CHUNK_BYTES (the partial tail
    dropped); without a file, one chunk of digital silence."""
    if not path:
        return [bytes(CHUNK_BYTES)]
    with open(path, "rb") as f:
        data = f.read()
    n = len(data) // CHUNK_BYTES
    if n == 0:
        raise ValueError(f"{path}: shorter than one {CHUNK_MS} ms chunk")
    return [data[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES] for i in range(n)]
