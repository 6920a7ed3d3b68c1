"""The ``avatarkit`` command: ``demo``, ``send``, ``inspect`` and ``serve``.

::

    avatarkit demo [--fast] [--out FRAMES.jsonl]
    avatarkit send AUDIO [--sample-rate N] [--format pcm|ogg_opus] [--chunk-ms 40]
                         [--realtime] [--bitrate BPS] [--out FRAMES.jsonl|FRAMES.bin]
                         [--force]
    avatarkit inspect FRAMES [--plot OUT.png] [--audio FILE] [--json]
    avatarkit serve [...]          (the local avatar service, see ``avatarkit serve -h``)

``demo`` and ``send`` take the endpoint and credentials from ``--api-key``,
``--app-id``, ``--avatar-id``, ``--console-endpoint`` and ``--ingress-endpoint``
or from ``AVATARKIT_API_KEY``, ``AVATARKIT_APP_ID``, ``AVATARKIT_AVATAR_ID``,
``AVATARKIT_CONSOLE_ENDPOINT`` and ``AVATARKIT_INGRESS_ENDPOINT`` (a flag wins
over its variable). With none of them set, they start the embedded local
avatar service in this process and say so on stderr; with some but not all
set, they stop and name what is missing.

Every command reports a failure as one line on stderr,
``error: <code>: <message> — <what to do>``, and exits with status 1 (2 for
a command line argparse rejects, 130 on Ctrl-C); ``--debug`` adds the
traceback and the SDK's debug log.

Frames files
------------

``--out`` picks the layout from the suffix.

``.jsonl``: UTF-8 text, one JSON object per line.

* Line 1 is a header::

    {"type": "header", "format": "avatarkit-frames", "version": 1,
     "audio": "/abs/path/speech.wav",   # the audio that was sent (null if not a file)
     "audio_sample_rate": 16000,         # the file's own rate (needed to re-read raw PCM)
     "sent_sample_rate": 16000,          # the rate sent to the service, after resampling
     "audio_format": "pcm_s16le",        # or "ogg_opus"
     "audio_duration_s": 13.61, "chunk_ms": 40,
     "service": "local",                 # or "configured"
     "avatar_id": "dev-avatar", "started_at": 1767225600.123}

* Every other line is one animation message, in order of arrival::

    {"type": "frame", "req_id": "...", "end": false,
     "received_at": 1767225600.456,      # Unix time, seconds
     "payload": "<base64 of the animation payload>",
     "animation": {"frame_index": 0, "timestamp_ms": 0, "viseme": "sil",
                   "blendshapes": {"jawOpen": 0.0, ...}}}

  ``animation`` is present only when the payload decodes as the local
  service's animation (:func:`avatarkit.devserver.decode_animation`).

``.bin``: the raw serialized ``Message`` of every animation message, each
preceded by its length as a 4-byte big-endian unsigned integer; no header and
no receive times (``inspect`` then reports no receive gaps).

``inspect`` reads both; for ``.jsonl`` it finds the audio for ``--plot`` in
the header (``--audio`` overrides it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._run import run as _run_loop

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .events import AnimationFrameEvent

__all__ = ["CLIError", "main", "main_async"]

FRAME_MS = 40
"""Animation frame interval of the service (25 frames per second)."""
JSONL_FORMAT = "avatarkit-frames"
JSONL_VERSION = 1
DEFAULT_DEMO_OUT = "avatarkit-demo-frames.jsonl"
DEMO_CLIP = "speech_16000.pcm"
DEMO_RATE = 16000

# (attribute, flag, environment variable, what it is)
_CONNECTION = (
    ("api_key", "--api-key", "AVATARKIT_API_KEY", "API key"),
    ("app_id", "--app-id", "AVATARKIT_APP_ID", "app id"),
    ("avatar_id", "--avatar-id", "AVATARKIT_AVATAR_ID", "avatar id"),
    ("console_endpoint", "--console-endpoint", "AVATARKIT_CONSOLE_ENDPOINT", "console URL"),
    ("ingress_endpoint", "--ingress-endpoint", "AVATARKIT_INGRESS_ENDPOINT", "ingress URL"),
)

_CREDENTIAL_HINT = (
    "check --api-key / AVATARKIT_API_KEY and --app-id / AVATARKIT_APP_ID "
    "(or unset all AVATARKIT_* variables to use the local service)"
)
_HINTS: dict[str, str] = {
    "sessionTokenExpired": _CREDENTIAL_HINT,
    "sessionTokenInvalid": _CREDENTIAL_HINT,
    "appIDUnrecognized": "check --app-id / AVATARKIT_APP_ID and --console-endpoint",
    "appIDMismatch": "the token belongs to another app: check --app-id / AVATARKIT_APP_ID",
    "avatarNotFound": "check --avatar-id / AVATARKIT_AVATAR_ID",
    "billingRequired": "check the account's billing in the console",
    "creditsExhausted": "top up credits in the console, then retry",
    "unsupportedSampleRate": "pass audio at a rate the format allows (send resamples files)",
    "connectionFailed": "check --console-endpoint / --ingress-endpoint and the network",
    "connectionClosed": "run again; add --debug to see the close details",
    "concurrencyLimit": "close other sessions or wait, then retry",
    "serverError": "retry; add --debug for details",
    "upstreamError": "retry in a moment",
    "protocolError": "the service spoke an unexpected protocol: check --ingress-endpoint",
}


# connectionFailed names the endpoint that failed: the token call's or the WebSocket's.
_PHASE_HINTS: dict[tuple[str, str], str] = {
    ("connectionFailed", "session_token"): (
        "check --console-endpoint / AVATARKIT_CONSOLE_ENDPOINT and the network"
    ),
    ("connectionFailed", "websocket_connect"): (
        "check --ingress-endpoint / AVATARKIT_INGRESS_ENDPOINT and the network"
    ),
    ("connectionFailed", "websocket_handshake"): (
        "check --ingress-endpoint / AVATARKIT_INGRESS_ENDPOINT and the network"
    ),
}


class CLIError(Exception):
    """A failure of the command itself, with what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _version() -> str:
    from . import __version__

    return __version__


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "service",
        "Endpoint and credentials of the hosted service (flags win over the variables). "
        "With none set, the embedded local avatar service is started in this process.",
    )
    for attr, flag, env, what in _CONNECTION:
        group.add_argument(flag, dest=attr, metavar="VALUE", help=f"{what} (env {env})")


def build_parser(*, with_serve_arguments: bool = False) -> argparse.ArgumentParser:
    """The ``avatarkit`` argument parser.

    ``serve``'s own arguments come from the local service's module, imported
    only when ``with_serve_arguments`` is true (that is, when ``serve`` runs)
    so the other commands start quickly.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and the SDK's debug log",
    )
    parser = argparse.ArgumentParser(
        prog="avatarkit",
        description="Drive a realtime talking avatar: stream speech, receive lip-sync animation.",
        epilog="Run 'avatarkit demo' to see a session work with no account.",
    )
    parser.add_argument("--version", action="version", version=f"avatarkit {_version()}")
    parser.add_argument("--debug", action="store_true", default=False, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="stream a bundled speech clip and summarise the animation (no account needed)",
        description=(
            "Stream the bundled 13.6 s speech clip through an avatar session in 40 ms "
            "chunks at real-time pace, show progress, and summarise the animation frames "
            "received. Uses the embedded local avatar service unless AVATARKIT_* "
            "credentials are configured."
        ),
    )
    demo.add_argument(
        "--fast", action="store_true", help="skip real-time pacing (client and local service)"
    )
    demo.add_argument(
        "--out",
        default=DEFAULT_DEMO_OUT,
        metavar="PATH",
        help=f"frames file, .jsonl or .bin (default: ./{DEFAULT_DEMO_OUT})",
    )
    demo.add_argument("--timeout", type=float, metavar="S", help=argparse.SUPPRESS)
    _add_connection_arguments(demo)

    send = sub.add_parser(
        "send",
        parents=[common],
        help="stream an audio file through a session and write every frame received",
        description=(
            "Read AUDIO (WAV of any width and channel count, raw s16le PCM, or Ogg Opus), "
            "downmix to mono, resample to the nearest rate the chosen format allows, stream "
            "it through an avatar session and write every animation frame received."
        ),
    )
    send.add_argument("audio", metavar="AUDIO", help="WAV, raw PCM (.pcm/.raw) or Ogg Opus file")
    send.add_argument(
        "--sample-rate",
        type=_positive_int,
        metavar="N",
        help="sample rate of raw PCM input (required for .pcm/.raw; ignored for WAV/Ogg)",
    )
    send.add_argument(
        "--format",
        choices=("pcm", "ogg_opus"),
        default="pcm",
        help="wire format: pcm (s16le) or ogg_opus (encoded by the built-in encoder)",
    )
    send.add_argument(
        "--chunk-ms",
        type=_positive_int,
        default=40,
        metavar="MS",
        help="audio per message in milliseconds (default 40)",
    )
    send.add_argument(
        "--realtime",
        action="store_true",
        help="send each chunk when its audio time has come (as a live source would)",
    )
    send.add_argument(
        "--bitrate",
        type=_non_negative_int,
        default=0,
        metavar="BPS",
        help="Opus target bitrate in bit/s for --format ogg_opus (0 = encoder default)",
    )
    send.add_argument(
        "--out",
        default="frames.jsonl",
        metavar="PATH",
        help="frames file: .jsonl (one JSON object per frame) or .bin (length-prefixed "
        "Message bytes); default ./frames.jsonl; an existing file is kept unless --force",
    )
    send.add_argument("--force", action="store_true", help="overwrite the --out file if it exists")
    send.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="seconds to wait for the request's end frame (default: twice the audio + 10)",
    )
    send.add_argument(
        "--local-pace",
        choices=("realtime", "fast"),
        help="pace of the embedded local service (default: realtime with --realtime, else fast)",
    )
    _add_connection_arguments(send)

    inspect = sub.add_parser(
        "inspect",
        parents=[common],
        help="summarise a frames file written by demo or send",
        description=(
            "Summarise a frames file (.jsonl or .bin): requests, frames per request, end "
            "markers and gaps between receive times; --plot draws the audio and blendshapes."
        ),
    )
    inspect.add_argument("frames", metavar="FRAMES", help="a .jsonl or .bin frames file")
    inspect.add_argument(
        "--plot",
        metavar="OUT.png",
        help="draw jawOpen and other blendshapes over time (needs avatarkit[plot])",
    )
    inspect.add_argument(
        "--audio",
        metavar="FILE",
        help="audio to draw under the blendshapes (default: the one in the .jsonl header)",
    )
    inspect.add_argument(
        "--sample-rate",
        type=_positive_int,
        metavar="N",
        help="sample rate of a raw PCM --audio file",
    )
    inspect.add_argument(
        "--req-id", metavar="ID", help="request to plot (default: the first with animation)"
    )
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")

    serve = sub.add_parser(
        "serve",
        parents=[common],
        conflict_handler="resolve",
        help="run the local avatar service (no account needed)",
        description="Run the local avatar service on this machine.",
    )
    if with_serve_arguments:
        from .devserver import cli as devserver_cli

        devserver_cli.add_serve_arguments(serve)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first argument that is not an option)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage, 130 Ctrl-C)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run_loop(main_async(args_list))
    except KeyboardInterrupt:
        print("\navatarkit: interrupted", file=sys.stderr)
        return 130


async def main_async(argv: Sequence[str]) -> int:
    """:func:`main` for a caller that already runs an event loop (e.g. a test)."""
    argv = list(argv)
    parser = build_parser(with_serve_arguments=_command_of(argv) == "serve")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    debug = bool(getattr(args, "debug", False))
    if debug:
        import logging

        logging.basicConfig(
            level=logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        logging.getLogger("avatarkit").setLevel(logging.DEBUG)
    commands = {"demo": _cmd_demo, "send": _cmd_send, "inspect": _cmd_inspect, "serve": _cmd_serve}
    try:
        return await commands[args.command](args)
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        print(error_line(exc), file=sys.stderr)
        return 1


def error_line(exc: BaseException) -> str:
    """One readable line for a failure: ``error: <code>: <message> — <what to do>``."""
    from .errors import AvatarSDKError

    if isinstance(exc, CLIError):
        text = f"error: {exc.message}" + (f" — {exc.hint}" if exc.hint else "")
    elif isinstance(exc, AvatarSDKError):
        code = exc.code.value
        message = exc.message
        hint = _PHASE_HINTS.get((code, exc.phase or "")) or _HINTS.get(code)
        if hint is None:
            hint = "add --debug for details"
        else:  # ours says the same in terms of flags: drop the SDK's advice
            message = _without_sdk_advice(message, exc)
        text = f"error: {code}: {message} — {hint}"
    elif isinstance(exc, FileNotFoundError):
        text = f"error: file not found: {exc.filename if exc.filename is not None else exc}"
    elif isinstance(exc, IsADirectoryError):
        text = f"error: is a directory, not a file: {exc.filename}"
    elif isinstance(exc, PermissionError):
        text = f"error: permission denied: {exc.filename}"
    elif isinstance(exc, (ValueError, ImportError)):
        text = f"error: {exc}"
    elif isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        text = f"error: {exc.strerror or exc}{where}"
    else:
        text = f"error: {type(exc).__name__}: {exc} — add --debug for the traceback"
    return " ".join(text.split())


def _without_sdk_advice(message: str, exc: Any) -> str:
    """``message`` without the advice the SDK appends (in Python API terms).

    Two forms: `` (advice)`` from the error catalogue, and ``; check
    <parameter> and the network`` from the token call and the WebSocket
    connect. The command prints its own hint instead, naming flags.
    """
    generic = _generic_advice(exc)
    if generic and message.endswith(generic):
        message = message[: -len(generic)]
    for advice in _SDK_CONNECT_ADVICE:
        if message.endswith(advice):
            message = message[: -len(advice)]
    return message


_SDK_CONNECT_ADVICE = (
    "; check console_endpoint_url and the network",
    "; check ingress_endpoint_url and the network",
)


def _generic_advice(exc: Any) -> str:
    """The ``" (what to do)"`` suffix the SDK puts on messages of ``exc.code``, if any."""
    from . import errors

    advice = getattr(errors, "_ADVICE", {}).get(exc.code)
    return f" ({advice})" if isinstance(advice, str) else ""


def _note(message: str) -> None:
    print(f"avatarkit: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Where to connect
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Endpoint and credentials of the service a command talks to."""

    api_key: str
    app_id: str
    avatar_id: str
    console_endpoint: str
    ingress_endpoint: str
    local: bool
    """True for the embedded local avatar service."""


def _configured(args: argparse.Namespace) -> dict[str, str]:
    values: dict[str, str] = {}
    for attr, _flag, env, _what in _CONNECTION:
        value = getattr(args, attr, None) or os.environ.get(env, "")
        if value:
            values[attr] = value
    return values


@contextlib.asynccontextmanager
async def connect_target(args: argparse.Namespace, *, local_pace: str) -> AsyncIterator[Target]:
    """The hosted service when configured, else the embedded local service for the block."""
    values = _configured(args)
    if values:
        missing = [f"{flag} (or {env})" for attr, flag, env, _ in _CONNECTION if attr not in values]
        if missing:
            raise CLIError(
                "incomplete service settings: missing " + ", ".join(missing),
                "set all five to use the hosted service, or none to use the local service",
            )
        yield Target(local=False, **values)
        return
    from .devserver import DevServer

    async with DevServer(host="127.0.0.1", port=0, pace=local_pace) as server:
        _note(
            f"embedded local avatar service at {_base_url(server.console_url)} "
            f"(no AVATARKIT_* settings; {local_pace} pace)"
        )
        yield Target(
            api_key=server.api_key,
            app_id=server.app_id,
            avatar_id=server.avatar_id,
            console_endpoint=server.console_url,
            ingress_endpoint=server.ingress_url,
            local=True,
        )


def _base_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# ---------------------------------------------------------------------------
# Streaming one clip
# ---------------------------------------------------------------------------


@dataclass
class Clip:
    """Mono 16-bit audio ready to send."""

    pcm: bytes
    sample_rate: int
    """Rate of ``pcm`` (what is sent)."""
    source: str | None
    """Absolute path of the file read, if any."""
    source_rate: int
    """The file's own rate (before resampling)."""

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


@dataclass
class StreamResult:
    """What one streamed request gave."""

    req_id: str = ""
    frames: int = 0
    end_markers: int = 0
    chunks: int = 0
    first_audio_at: float = 0.0
    first_frame_at: float | None = None
    last_frame_at: float | None = None
    end_at: float | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    paced: bool = True

    @property
    def time_to_first_frame_s(self) -> float | None:
        if self.first_frame_at is None:
            return None
        return self.first_frame_at - self.first_audio_at

    @property
    def receive_s(self) -> float | None:
        """From the first audio sent to the end frame (or the last frame), in seconds."""
        end = self.end_at or self.last_frame_at
        return None if end is None else end - self.first_audio_at

    @property
    def frames_per_second(self) -> float | None:
        end = self.end_at or self.last_frame_at
        if end is None or end <= self.first_audio_at:
            return None
        return self.frames / (end - self.first_audio_at)


class Progress:
    """A plain-text progress bar on stderr: redrawn with ``\\r`` on a terminal,
    a line at every quarter otherwise."""

    WIDTH = 30

    def __init__(self, total_s: float, expected_frames: int, stream: IO[str] | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total_s = total_s
        self.expected = max(1, expected_frames)
        self.sent_s = 0.0
        self.frames = 0
        self._last_draw = 0.0
        self._quarter = -1

    def update(self, *, sent_s: float | None = None, frames: int | None = None) -> None:
        if sent_s is not None:
            self.sent_s = sent_s
        if frames is not None:
            self.frames = frames
        fraction = min(1.0, self.frames / self.expected)
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or fraction >= 1.0:
                self._last_draw = now
                self._draw(fraction)
        else:
            quarter = int(fraction * 4)
            if quarter > self._quarter:
                self._quarter = quarter
                print(self._text(fraction), file=self.stream, flush=True)

    def _text(self, fraction: float) -> str:
        return (
            f"  {fraction * 100:3.0f}%  audio sent {self.sent_s:5.1f}/{self.total_s:.1f} s"
            f"  frames {self.frames}"
        )

    def _draw(self, fraction: float) -> None:
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}]{self._text(fraction)} ")
        self.stream.flush()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self.tty:
            self._draw(min(1.0, self.frames / self.expected))
            self.stream.write("\n")
            self.stream.flush()


class FrameSink:
    """Writes received frames to a ``.jsonl`` or ``.bin`` file (see the module doc)."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".jsonl", ".bin"):
            raise CLIError(
                f"--out {path}: unknown frames file type {suffix or '(none)'!r}",
                "name it *.jsonl (JSON lines) or *.bin (length-prefixed Message bytes)",
            )
        if not path.parent.is_dir():
            raise CLIError(f"--out {path}: directory {path.parent} does not exist")
        self.path = path
        self.binary = suffix == ".bin"
        self._decode: Any = None
        self._decode_failures = 0
        # Written beside the target and moved into place by close(): a failed
        # run leaves an earlier frames file as it was.
        self._partial = path.with_name(path.name + ".part")
        self._file: IO[bytes] = self._partial.open("wb")
        if not self.binary:
            self._write_json(header)

    def _write_json(self, obj: dict[str, Any]) -> None:
        import json

        self._file.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def write(self, frame: AnimationFrameEvent, received_at: float) -> None:
        if self.binary:
            message = frame.message
            self._file.write(len(message).to_bytes(4, "big"))
            self._file.write(message)
            return
        import base64

        record: dict[str, Any] = {
            "type": "frame",
            "req_id": frame.req_id,
            "end": frame.end,
            "received_at": round(received_at, 6),
            "payload": base64.b64encode(frame.payload).decode("ascii"),
        }
        animation = self._decode_payload(frame.payload)
        if animation is not None:
            record["animation"] = animation
        self._write_json(record)

    def _decode_payload(self, payload: bytes) -> dict[str, Any] | None:
        if not payload or self._decode_failures >= 3:
            return None
        if self._decode is None:
            from .devserver import decode_animation

            self._decode = decode_animation
        try:
            decoded = self._decode(payload)
        except Exception:
            self._decode_failures += 1  # not the local service's payload
            return None
        return _jsonable_animation(decoded)

    def close(self, *, keep: bool = True) -> None:
        """Finish the file: move it into place (``keep``) or discard it."""
        if self._file.closed:
            return
        self._file.close()
        if keep:
            self._partial.replace(self.path)
        else:
            self._partial.unlink(missing_ok=True)


def _jsonable_animation(decoded: Any) -> dict[str, Any]:
    if not isinstance(decoded, dict):  # an AnimationFrame dataclass
        decoded = {
            "frame_index": decoded.frame_index,
            "timestamp_ms": decoded.timestamp_ms,
            "viseme": decoded.viseme,
            "blendshapes": decoded.blendshapes,
        }
    shapes = {str(k): round(float(v), 4) for k, v in decoded.get("blendshapes", {}).items()}
    return {
        "frame_index": int(decoded.get("frame_index", 0)),
        "timestamp_ms": int(decoded.get("timestamp_ms", 0)),
        "viseme": str(decoded.get("viseme", "")),
        "blendshapes": shapes,
    }


class _Receiver:
    """Session callbacks: count and write frames, note the end and any failure."""

    def __init__(self, result: StreamResult, sink: FrameSink, progress: Progress | None):
        self.result = result
        self.sink = sink
        self.progress = progress
        self.done = asyncio.Event()
        self.error: BaseException | None = None

    def on_animation(self, frame: AnimationFrameEvent) -> None:
        now = time.monotonic()
        result = self.result
        result.frames += 1
        if result.first_frame_at is None:
            result.first_frame_at = now
        result.last_frame_at = now
        self.sink.write(frame, time.time())
        if self.progress is not None:
            self.progress.update(frames=result.frames)
        if frame.end:
            result.end_markers += 1
            if result.end_at is None:
                result.end_at = now
            self.done.set()

    def on_error(self, error: Exception) -> None:
        if self.error is None and not self.done.is_set():
            self.error = error
            self.done.set()

    def on_close(self) -> None:
        if not self.done.is_set():
            self.error = self.error or CLIError(
                "the session closed before the request's end frame arrived",
                "run again; add --debug to see why",
            )
            self.done.set()


async def stream_clip(
    target: Target,
    clip: Clip,
    *,
    sink: FrameSink,
    audio_format: str = "pcm",
    chunk_ms: int = 40,
    realtime: bool = True,
    bitrate: int = 0,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> StreamResult:
    """Open a session, send ``clip`` in ``chunk_ms`` chunks and wait for its end frame."""
    from datetime import datetime, timedelta, timezone

    from .config import AudioFormat, OggOpusEncoderConfig
    from .session import new_avatar_session

    result = StreamResult(started_at=time.monotonic(), paced=realtime)
    receiver = _Receiver(result, sink, progress)
    opus = audio_format == "ogg_opus"
    session = new_avatar_session(
        api_key=target.api_key,
        app_id=target.app_id,
        avatar_id=target.avatar_id,
        console_endpoint_url=target.console_endpoint,
        ingress_endpoint_url=target.ingress_endpoint,
        expire_at=datetime.now(timezone.utc) + timedelta(hours=1),
        sample_rate=clip.sample_rate,
        bitrate=bitrate,
        audio_format=AudioFormat.OGG_OPUS if opus else AudioFormat.PCM_S16LE,
        ogg_opus_encoder=OggOpusEncoderConfig() if opus else None,
        on_animation=receiver.on_animation,
        on_error=receiver.on_error,
        on_close=receiver.on_close,
    )
    chunk_bytes = max(2, clip.sample_rate * chunk_ms // 1000 * 2)
    data = clip.pcm
    count = max(1, math.ceil(len(data) / chunk_bytes))
    chunk_s = chunk_bytes / 2 / clip.sample_rate
    wait = timeout if timeout is not None else 2 * clip.duration_s + 10
    loop = asyncio.get_running_loop()
    async with session:
        t0 = loop.time()
        result.first_audio_at = time.monotonic()
        try:
            for i in range(count):
                if realtime:
                    delay = t0 + i * chunk_s - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if receiver.error is not None:
                    break
                chunk = data[i * chunk_bytes : (i + 1) * chunk_bytes]
                result.req_id = await session.send_audio(chunk, end=i == count - 1)
                result.chunks += 1
                if progress is not None:
                    progress.update(sent_s=min(clip.duration_s, (i + 1) * chunk_s))
        except Exception as exc:
            if receiver.error is not None:  # the cause came in first; report it
                raise receiver.error from exc
            raise
        try:
            await asyncio.wait_for(receiver.done.wait(), wait)
        except asyncio.TimeoutError:
            raise CLIError(
                f"no end frame for request {result.req_id} within {wait:g} s "
                f"({result.frames} frames received)",
                "raise --timeout, or check the service",
            ) from None
    result.finished_at = time.monotonic()
    if receiver.error is not None:
        raise receiver.error
    return result


# ---------------------------------------------------------------------------
# demo and send
# ---------------------------------------------------------------------------


def _demo_clip() -> Clip:
    from importlib.resources import files

    resource = files("avatarkit") / "data" / DEMO_CLIP
    pcm = resource.read_bytes()
    source = str(Path(str(resource)).resolve()) if isinstance(resource, Path) else None
    return Clip(pcm=pcm, sample_rate=DEMO_RATE, source=source, source_rate=DEMO_RATE)


def load_clip(path: str, *, sample_rate: int | None, audio_format: str) -> Clip:
    """Read ``path``, downmix to mono and resample to the nearest rate the format allows."""
    from .audio import OPUS_RATES, PCM_RATES
    from .audio.files import nearest_supported_rate, read_audio_file, resample

    samples, rate = read_audio_file(path, sample_rate=sample_rate)
    if sample_rate and sample_rate != rate:
        _note(f"--sample-rate {sample_rate} ignored: {path} says {rate} Hz in its header")
    if len(samples) == 0:
        raise CLIError(f"{path}: the file holds no audio samples")
    rates = OPUS_RATES if audio_format == "ogg_opus" else PCM_RATES
    target = nearest_supported_rate(rate, rates)
    if target != rate:
        _note(f"resampling {rate} Hz -> {target} Hz ({audio_format} allows {rates})")
        samples = resample(samples, rate, target)
    return Clip(
        pcm=samples.astype("<i2").tobytes(),
        sample_rate=target,
        source=str(Path(path).resolve()),
        source_rate=rate,
    )


def _header(clip: Clip, target: Target, audio_format: str, chunk_ms: int) -> dict[str, Any]:
    return {
        "type": "header",
        "format": JSONL_FORMAT,
        "version": JSONL_VERSION,
        "audio": clip.source,
        "audio_sample_rate": clip.source_rate,
        "sent_sample_rate": clip.sample_rate,
        "audio_format": "ogg_opus" if audio_format == "ogg_opus" else "pcm_s16le",
        "audio_duration_s": round(clip.duration_s, 4),
        "chunk_ms": chunk_ms,
        "service": "local" if target.local else "configured",
        "avatar_id": target.avatar_id,
        "started_at": round(time.time(), 6),
    }


async def _run_stream(
    args: argparse.Namespace,
    clip: Clip,
    *,
    title: str,
    audio_format: str,
    chunk_ms: int,
    realtime: bool,
    local_pace: str,
    bitrate: int,
    out: Path,
) -> int:
    async with connect_target(args, local_pace=local_pace) as target:
        sink = FrameSink(out, _header(clip, target, audio_format, chunk_ms))
        progress = Progress(clip.duration_s, math.ceil(clip.duration_s * 1000 / FRAME_MS))
        try:
            result = await stream_clip(
                target,
                clip,
                sink=sink,
                audio_format=audio_format,
                chunk_ms=chunk_ms,
                realtime=realtime,
                bitrate=bitrate,
                timeout=getattr(args, "timeout", None),
                progress=progress,
            )
        except BaseException:
            progress.finish()
            sink.close(keep=False)
            raise
        progress.finish()
        sink.close()
        service = (
            f"local (embedded, {_base_url(target.console_endpoint)})"
            if target.local
            else f"configured ({_base_url(target.ingress_endpoint)})"
        )
    pace = "sent at real-time pace" if realtime else "sent unpaced"
    print_summary(
        title,
        result,
        clip,
        service=service,
        detail=f"{clip.sample_rate} Hz {audio_format}, {result.chunks} chunks of {chunk_ms} ms, "
        f"{pace}",
        out=out,
        plot_hint=target.local and out.suffix.lower() == ".jsonl",
    )
    return 0


PACED_FRACTION = 0.8
"""Frames received over at least this share of the audio's duration were paced."""


def pacing_label(result: StreamResult, audio_s: float) -> str:
    """How the frames were paced, from the measured receive time (not from flags).

    A hosted service paces its answer to the audio whatever the client does,
    so ``--fast`` alone does not make a run unpaced. Rule: the frames took at
    least :data:`PACED_FRACTION` of the audio's duration to arrive (from the
    first audio sent to the end frame) -> real time; less -> faster than real
    time. Who paced is said when known: the client when it sent in real time,
    else the service.
    """
    span = result.receive_s
    if span is None or audio_s <= 0:
        return "n/a (no frames)"
    figures = f"received over {span:.2f} s for {audio_s:.2f} s of audio"
    if span >= PACED_FRACTION * audio_s:
        who = "audio sent in real time" if result.paced else "paced by the service"
        return f"real time, {who} ({figures})"
    return f"faster than real time, {audio_s / max(span, 1e-6):.1f}x ({figures})"


def print_summary(
    title: str,
    result: StreamResult,
    clip: Clip,
    *,
    service: str,
    detail: str,
    out: Path,
    plot_hint: bool = False,
    stream: IO[str] | None = None,
) -> None:
    """The closing summary of ``demo`` and ``send`` (on stdout)."""
    stream = stream if stream is not None else sys.stdout
    fps = result.frames_per_second
    ttff = result.time_to_first_frame_s
    ends = "yes" if result.end_markers else "no"
    try:
        shown = out.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = out.resolve()
    rows = (
        ("service", service),
        ("request", result.req_id),
        ("frames received", f"{result.frames} (end marker: {ends})"),
        ("frames per second", f"{fps:.1f}" if fps is not None else "n/a"),
        ("pacing", pacing_label(result, clip.duration_s)),
        ("time to first frame", f"{ttff * 1000:.0f} ms" if ttff is not None else "n/a"),
        ("audio duration", f"{clip.duration_s:.2f} s ({detail})"),
        ("wall time", f"{result.finished_at - result.started_at:.2f} s"),
        ("frames written to", str(shown)),
    )
    lines = [f"{title}: done"] + [f"  {name:<20} {value}" for name, value in rows]
    plot = " --plot frames.png" if plot_hint else ""
    lines.append(f"next: avatarkit inspect {shown}{plot}")
    print("\n".join(lines), file=stream, flush=True)


async def _cmd_demo(args: argparse.Namespace) -> int:
    check_out_path(Path(args.out), overwrite=True)
    clip = _demo_clip()
    return await _run_stream(
        args,
        clip,
        title="avatarkit demo",
        audio_format="pcm",
        chunk_ms=40,
        realtime=not args.fast,
        local_pace="fast" if args.fast else "realtime",
        bitrate=0,
        out=Path(args.out),
    )


def check_out_path(out: Path, *, overwrite: bool) -> None:
    """Refuse an output path that cannot work, before anything starts.

    Checked: the suffix (``.jsonl``/``.bin``), that it is not a directory,
    that its directory exists and is writable, and (unless ``overwrite``)
    that no file is there already. ``send`` keeps an existing file unless
    given ``--force``; ``demo`` rewrites its own output (it is a demo).
    """
    if out.suffix.lower() not in (".jsonl", ".bin"):
        raise CLIError(
            f"--out {out}: unknown frames file type {out.suffix or '(none)'!r}",
            "name it *.jsonl (JSON lines) or *.bin (length-prefixed Message bytes)",
        )
    if out.is_dir():
        raise CLIError(
            f"--out {out} is a directory", f"give a file name, e.g. {out / 'frames.jsonl'}"
        )
    parent = out.parent
    if not parent.exists():
        raise CLIError(f"--out {out}: directory {parent} does not exist", "create it first")
    if not parent.is_dir():
        raise CLIError(f"--out {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"--out {out}: directory {parent} is not writable")
    if out.exists() and not overwrite:
        raise CLIError(
            f"--out {out} already exists",
            "pass --force to overwrite it, or choose another --out",
        )


async def _cmd_send(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_out_path(out, overwrite=args.force)
    clip = load_clip(args.audio, sample_rate=args.sample_rate, audio_format=args.format)
    local_pace = args.local_pace or ("realtime" if args.realtime else "fast")
    return await _run_stream(
        args,
        clip,
        title="avatarkit send",
        audio_format=args.format,
        chunk_ms=args.chunk_ms,
        realtime=args.realtime,
        local_pace=local_pace,
        bitrate=args.bitrate,
        out=out,
    )


# ---------------------------------------------------------------------------
# inspect
# ---------------------------------------------------------------------------


@dataclass
class FrameRecord:
    """One animation message read back from a frames file."""

    req_id: str
    end: bool
    received_at: float | None
    payload: bytes
    animation: dict[str, Any] | None


@dataclass
class FramesFile:
    """A frames file read back: its header (``.jsonl`` only) and frames."""

    path: Path
    kind: str
    header: dict[str, Any] | None
    frames: list[FrameRecord] = field(default_factory=list)
    other_messages: int = 0


class NotAFramesFileError(ValueError):
    """The file given to ``inspect`` is not a frames file ``send``/``demo`` write.

    A ``ValueError``; its text is one line naming the file and why it was
    refused (empty, audio, JSON of another shape, bytes that are not
    length-prefixed ``Message`` records).
    """

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            f"{path} is not an avatarkit frames file ({why}); inspect reads the .jsonl or "
            ".bin files that 'avatarkit send' and 'avatarkit demo' write"
        )


_AUDIO_MAGIC = (
    (b"RIFF", "a WAV file"),
    (b"OggS", "an Ogg file"),
    (b"fLaC", "a FLAC file"),
    (b"ID3", "an MP3 file"),
)


def read_frames_file(path: str | os.PathLike[str]) -> FramesFile:
    """Read a ``.jsonl`` or ``.bin`` frames file (the suffix decides; else its first byte).

    Raises :class:`NotAFramesFileError` for a file of another kind (empty,
    audio, other JSON, random bytes) and ``ValueError`` naming the line or
    byte for a frames file that is damaged further in.
    """
    file = Path(path)
    data = file.read_bytes()
    if not data.strip():
        raise NotAFramesFileError(file, "it is empty")
    for magic, what in _AUDIO_MAGIC:
        if data.startswith(magic):
            raise NotAFramesFileError(file, f"it is {what}; send it with 'avatarkit send'")
    suffix = file.suffix.lower()
    if suffix == ".jsonl" or (suffix != ".bin" and data.lstrip()[:1] in (b"{", b"[")):
        return _read_jsonl(file, data)
    return _read_bin(file, data)


def _read_jsonl(path: Path, data: bytes) -> FramesFile:
    import base64
    import binascii
    import json

    result = FramesFile(path=path, kind="jsonl", header=None)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotAFramesFileError(path, "it is not UTF-8 text") from None
    first = True
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            if first:
                raise NotAFramesFileError(path, f"line {lineno} is not JSON") from None
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            if first:
                raise NotAFramesFileError(path, f"line {lineno} is JSON but not an object")
            raise ValueError(f"{path}:{lineno}: expected a JSON object")
        kind = obj.get("type")
        if first:
            first = False
            if kind not in ("header", "frame"):
                raise NotAFramesFileError(
                    path, f'line {lineno} is a JSON object with no "type" of header or frame'
                )
            if kind == "header" and obj.get("format", JSONL_FORMAT) != JSONL_FORMAT:
                raise NotAFramesFileError(path, f"its header says format {obj.get('format')!r}")
        if kind == "header":
            result.header = obj
            continue
        if kind != "frame":
            result.other_messages += 1
            continue
        try:
            payload = base64.b64decode(obj.get("payload") or "", validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{path}:{lineno}: payload is not valid base64") from None
        received = obj.get("received_at")
        animation = obj.get("animation")
        result.frames.append(
            FrameRecord(
                req_id=str(obj.get("req_id", "")),
                end=bool(obj.get("end", False)),
                received_at=float(received) if isinstance(received, (int, float)) else None,
                payload=payload,
                animation=animation if isinstance(animation, dict) else None,
            )
        )
    return result


def _read_bin(path: Path, data: bytes) -> FramesFile:
    from google.protobuf.message import DecodeError

    from .proto import avatarkit_wire_pb2 as pb

    result = FramesFile(path=path, kind="bin", header=None)
    decode: Any = None
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise _bin_error(path, pos, f"truncated length prefix at byte {pos}")
        size = int.from_bytes(data[pos : pos + 4], "big")
        body = data[pos + 4 : pos + 4 + size]
        if len(body) != size:
            why = f"truncated message at byte {pos} ({size} bytes announced, {len(body)} there)"
            raise _bin_error(path, pos, why)
        try:
            msg = pb.Message.FromString(body)
        except DecodeError:
            why = f"the record at byte {pos} is not a protobuf Message"
            raise _bin_error(path, pos, why) from None
        pos += 4 + size
        if not msg.HasField("server_response_animation"):
            result.other_messages += 1
            continue
        anim = msg.server_response_animation
        animation = None
        if anim.animation:
            if decode is None:
                from .devserver import decode_animation

                decode = decode_animation
            try:
                animation = _jsonable_animation(decode(anim.animation))
            except Exception:
                animation = None
        result.frames.append(
            FrameRecord(
                req_id=anim.req_id,
                end=anim.end,
                received_at=None,
                payload=anim.animation,
                animation=animation,
            )
        )
    if not result.frames:
        raise NotAFramesFileError(path, "it holds no animation message")
    return result


def _bin_error(path: Path, pos: int, why: str) -> ValueError:
    """A damaged first record: the file is something else; a later one: a damaged file."""
    return NotAFramesFileError(path, why) if pos == 0 else ValueError(f"{path}: {why}")


def summarize(frames_file: FramesFile) -> dict[str, Any]:
    """Requests, frames, end markers and receive gaps of a frames file."""
    by_request: dict[str, list[FrameRecord]] = {}
    for frame in frames_file.frames:
        by_request.setdefault(frame.req_id, []).append(frame)
    threshold_ms = 2 * FRAME_MS
    requests = []
    warnings: list[str] = []
    for req_id, frames in by_request.items():
        ends = sum(1 for f in frames if f.end)
        times = [f.received_at for f in frames if f.received_at is not None]
        gaps_ms = [(b - a) * 1000 for a, b in itertools.pairwise(times)]
        decoded = [f.animation for f in frames if f.animation is not None]
        indices = [int(a.get("frame_index", 0)) for a in decoded]
        info: dict[str, Any] = {
            "req_id": req_id,
            "frames": len(frames),
            "end_markers": ends,
            "end_on_last_frame": frames[-1].end,
            "decoded_frames": len(decoded),
            "receive_span_s": round(times[-1] - times[0], 4) if len(times) > 1 else None,
            "max_gap_ms": round(max(gaps_ms), 1) if gaps_ms else None,
            "gaps_over_threshold": sum(1 for g in gaps_ms if g > threshold_ms) if gaps_ms else None,
            "animation_s": round((max(indices) + 1) * FRAME_MS / 1000, 3) if indices else None,
        }
        requests.append(info)
        if ends == 0:
            warnings.append(f"request {req_id}: no end marker (interrupted or cut short?)")
        elif ends > 1:
            warnings.append(f"request {req_id}: {ends} end markers")
        elif not frames[-1].end:
            warnings.append(f"request {req_id}: frames arrived after the end marker")
        if indices and indices != list(range(indices[0], indices[0] + len(indices))):
            warnings.append(f"request {req_id}: frame indices are not consecutive")
    header = frames_file.header or {}
    return {
        "file": str(frames_file.path),
        "kind": frames_file.kind,
        "audio": header.get("audio"),
        "audio_sample_rate": header.get("audio_sample_rate"),
        "service": header.get("service"),
        "requests": len(requests),
        "frames": len(frames_file.frames),
        "end_markers": sum(r["end_markers"] for r in requests),
        "decoded_frames": sum(r["decoded_frames"] for r in requests),
        "other_messages": frames_file.other_messages,
        "frame_interval_ms": FRAME_MS,
        "gap_threshold_ms": threshold_ms,
        "per_request": requests,
        "warnings": warnings,
    }


def _print_summary_text(summary: dict[str, Any]) -> None:
    out = sys.stdout
    print(f"{summary['file']} ({summary['kind']})", file=out)
    if summary["audio"]:
        print(f"  audio          {summary['audio']} ({summary['audio_sample_rate']} Hz)", file=out)
    if summary["service"]:
        print(f"  service        {summary['service']}", file=out)
    print(f"  requests       {summary['requests']}", file=out)
    print(f"  frames         {summary['frames']}", file=out)
    print(f"  end markers    {summary['end_markers']}", file=out)
    decoded = summary["decoded_frames"]
    print(
        f"  payloads       {decoded} decoded as local-service animation"
        + ("" if decoded else " (opaque payloads)"),
        file=out,
    )
    if summary["other_messages"]:
        print(f"  other records  {summary['other_messages']} (skipped)", file=out)
    threshold = summary["gap_threshold_ms"]
    print(
        f"\n  {'request':<34}{'frames':>7}{'ends':>6}{'span s':>9}{'max gap ms':>12}"
        f"{f'gaps>{threshold}ms':>12}",
        file=out,
    )
    for req in summary["per_request"]:
        span = req["receive_span_s"]
        gap = req["max_gap_ms"]
        late = req["gaps_over_threshold"]
        print(
            f"  {req['req_id'] or '(none)':<34}{req['frames']:>7}{req['end_markers']:>6}"
            f"{'n/a' if span is None else f'{span:.2f}':>9}"
            f"{'n/a' if gap is None else f'{gap:.1f}':>12}"
            f"{'n/a' if late is None else late:>12}",
            file=out,
        )
    if summary["kind"] == "bin":
        print("  (.bin files hold no receive times: gaps are n/a)", file=out)
    for warning in summary["warnings"]:
        print(f"  warning: {warning}", file=out)
    out.flush()


PLOT_SHAPES = ("jawOpen", "mouthClose", "mouthFunnel", "mouthSmileLeft")
"""Blendshapes ``inspect --plot`` draws."""


def plot_frames(
    frames_file: FramesFile,
    out: Path,
    *,
    audio: str | None = None,
    sample_rate: int | None = None,
    req_id: str | None = None,
) -> str:
    """Draw the audio waveform (when known) over the blendshapes of one request.

    Returns the request id drawn. Needs matplotlib (``avatarkit[plot]``).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        from .errors import OptionalDependencyError

        raise OptionalDependencyError("inspect --plot", "plot") from exc

    candidates = [f for f in frames_file.frames if f.animation is not None]
    if req_id is not None:
        candidates = [f for f in candidates if f.req_id == req_id]
        if not candidates:
            raise CLIError(f"--req-id {req_id}: no decodable animation for that request")
    if not candidates:
        raise CLIError(
            f"{frames_file.path}: no local-service animation to plot",
            "--plot needs frames from the local avatar service (hosted payloads are opaque)",
        )
    chosen = candidates[0].req_id
    animations = [f.animation for f in candidates if f.req_id == chosen and f.animation]
    times = [a["timestamp_ms"] / 1000 for a in animations]

    header = frames_file.header or {}
    audio_path = audio or header.get("audio")
    rate = sample_rate or (header.get("audio_sample_rate") if audio is None else None)
    wave: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
    if audio_path:
        if Path(audio_path).is_file():
            wave = _waveform(str(audio_path), rate)
        elif audio is not None:
            raise FileNotFoundError(2, "audio file not found", audio)
        else:
            _note(f"audio {audio_path} from the header is not there: drawing without it")

    rows = 2 if wave is not None else 1
    fig = Figure(figsize=(12, 3 + 2.5 * rows), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    if wave is not None:
        t, y = wave
        ax = axes[0]
        ax.plot(t, y, linewidth=0.4, color="#555555")
        ax.set_ylabel("audio")
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(f"{frames_file.path.name} — request {chosen}")
    ax = axes[-1]
    for name in PLOT_SHAPES:
        values = [float(a.get("blendshapes", {}).get(name, 0.0)) for a in animations]
        ax.plot(times, values, label=name, linewidth=1.2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("blendshape weight")
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", ncols=len(PLOT_SHAPES), fontsize="small")
    if wave is None:
        ax.set_title(f"{frames_file.path.name} — request {chosen}")
    fig.savefig(out, dpi=100)
    return chosen


def _waveform(
    path: str, rate: int | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    import numpy as np

    from .audio.files import read_audio_file

    samples, file_rate = read_audio_file(path, sample_rate=rate)
    step = max(1, len(samples) // 200_000)
    y = samples[::step].astype(np.float64) / 32768.0
    t = np.arange(len(y), dtype=np.float64) * step / file_rate
    return t, y


async def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    frames_file = read_frames_file(args.frames)
    summary = summarize(frames_file)
    if args.plot:
        chosen = plot_frames(
            frames_file,
            Path(args.plot),
            audio=args.audio,
            sample_rate=args.sample_rate,
            req_id=args.req_id,
        )
        summary["plot"] = {"path": str(Path(args.plot)), "req_id": chosen}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary_text(summary)
        if args.plot:
            print(f"\nplot of request {summary['plot']['req_id']} written to {args.plot}")
    return 0


# ---------------------------------------------------------------------------
# serve
# ---------------------------------------------------------------------------


async def _cmd_serve(args: argparse.Namespace) -> int:
    from .devserver import cli as devserver_cli

    status: int = await devserver_cli.run_serve(args)
    return status
