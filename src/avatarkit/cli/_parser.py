"""The argument parser, :func:`main` and the one-line error report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from .._run import run as _run_loop
from ._common import DEFAULT_DEMO_OUT, CLIError
from ._inspect_frames import _cmd_inspect
from ._stream import _cmd_demo, _cmd_send
from ._target import _CONNECTION

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


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _version() -> str:
    from .. import __version__

    return __version__


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "service",
        "Endpoint and credentials of the hosted service (flags win over the variables). "
        "With none set, the embedded local avatar service is started in this process.",
    )
    for attr, flag, env, what in _CONNECTION:
        group.add_argument(flag, dest=attr, metavar="VALUE", help=f"{what} (env {env})")
    group.add_argument(
        "--cafile",
        metavar="PEM",
        help="trust the CA certificate(s) in this PEM file for an https/wss service "
        "(besides the system's; env AVATARKIT_CAFILE)",
    )


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
    demo.add_argument(
        "--open",
        action="store_true",
        help="open the session's live viewer in the default browser and keep the local "
        "service up until it has played the clip (bounded; the URL is printed either way)",
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
        "--html",
        metavar="OUT.html",
        help="write one self-contained HTML file replaying the request (face, waveform, "
        "curves; opens offline)",
    )
    inspect.add_argument(
        "--audio",
        metavar="FILE",
        help="audio to draw under the blendshapes / play in the --html replay (default: the "
        "one in the .jsonl header)",
    )
    inspect.add_argument(
        "--sample-rate",
        type=_positive_int,
        metavar="N",
        help="sample rate of a raw PCM --audio file",
    )
    inspect.add_argument(
        "--req-id",
        metavar="ID",
        help="request to plot or replay (default: the first with animation)",
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
        from ..devserver import _cli as devserver_cli

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
    from ..errors import AvatarSDKError

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
    from .._advice import CONNECT_ADVICE, advice

    generic = advice(exc.code)
    if generic and message.endswith(generic):
        message = message[: -len(generic)]
    for suffix in CONNECT_ADVICE:
        if message.endswith(suffix):
            message = message[: -len(suffix)]
    return message


# ---------------------------------------------------------------------------
# serve
# ---------------------------------------------------------------------------


async def _cmd_serve(args: argparse.Namespace) -> int:
    from ..devserver import _cli as devserver_cli

    status: int = await devserver_cli.run_serve(args)
    return status
