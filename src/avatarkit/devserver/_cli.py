"""``avatarkit serve``: run the local avatar service from the command line.

Also ``python -m avatarkit.devserver``. Binds loopback by default, prints the
console and ingress URLs and the dev credentials, and closes every session
(close code 1001) on SIGINT/SIGTERM before exiting 0. While it runs, it logs
to stderr at INFO one line when a session connects, is configured (format,
sample rate, egress kind) and closes (close code, request count), and one
per rejected token call or upgrade; never an API key, token or secret.

A ``--config`` TOML file may hold any option (command-line options win)::

    host = "127.0.0.1"
    port = 8080
    pace = "realtime"            # or "fast"
    idle_timeout = 60            # seconds; 0 = no limit
    max_session_seconds = 0      # 0 = no limit
    max_sessions_per_app = 0     # 0 = no limit
    max_message_size = 16777216  # bytes
    pause_timeout = 0            # seconds; 0 = no limit
    read_timeout = 10            # seconds to send a request head (and a body)
    max_request_audio_bytes = 67108864      # decoded audio waiting to play, per request
    max_connection_audio_bytes = 134217728  # ... summed over a connection's requests
    avatars = ["my-avatar"]
    workers = 1                  # processes sharing the port (Linux; see _workers.py)
    certfile = "cert.pem"        # serve HTTPS/WSS (PEM certificate chain)
    keyfile = "key.pem"          # its private key, if not in certfile

    [api_keys]                   # API key = app id
    "my-key" = "my-app"
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from .._run import run as _run_loop

__all__ = ["add_serve_arguments", "run_serve", "serve_main"]

_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8080,
    "pace": "realtime",
    "idle_timeout": 60.0,
    "max_session_seconds": 0.0,
    "max_sessions_per_app": 0,
    "max_message_size": 16 * 1024 * 1024,
    "pause_timeout": 0.0,
    "read_timeout": 10.0,
    "max_request_audio_bytes": 64 * 1024 * 1024,
    "max_connection_audio_bytes": 128 * 1024 * 1024,
    "certfile": None,
    "keyfile": None,
    "workers": 1,
}


class ServeConfigError(Exception):
    """The options or the config file are wrong; the message says how."""


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser`` (defaults resolved in :func:`run_serve`)."""
    parser.add_argument("--host", help="address to bind (default 127.0.0.1: loopback only)")
    parser.add_argument("--port", type=int, help="TCP port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--pace",
        choices=("realtime", "fast"),
        help="realtime: frames paced like a live avatar (default); fast: as soon as computed",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY:APP_ID",
        help="accept another API key for an app id (repeatable)",
    )
    parser.add_argument(
        "--avatar", action="append", default=[], metavar="ID", help="accept another avatar id"
    )
    parser.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="close sessions with no audio for this long (default 60; 0 = never)",
    )
    parser.add_argument(
        "--max-session-seconds",
        type=float,
        metavar="SECONDS",
        help="close sessions (4002) after this long (default 0 = no limit)",
    )
    parser.add_argument(
        "--max-sessions-per-app",
        type=int,
        metavar="N",
        help="refuse (4003) sessions beyond N per app id (default 0 = no limit)",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        metavar="BYTES",
        help="largest client message accepted (default 16 MiB)",
    )
    parser.add_argument(
        "--pause-timeout",
        type=float,
        metavar="SECONDS",
        help="interrupt requests paused this long (default 0 = never)",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        metavar="SECONDS",
        help="close HTTP connections whose request head or body takes longer (default 10)",
    )
    parser.add_argument(
        "--max-request-audio-bytes",
        type=int,
        metavar="BYTES",
        help="decoded audio a request may buffer ahead of playback (default 64 MiB)",
    )
    parser.add_argument(
        "--max-connection-audio-bytes",
        type=int,
        metavar="BYTES",
        help="the same, summed over a connection's requests (default 128 MiB)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="N service processes sharing the port (default 1; Linux, SO_REUSEPORT); "
        "tokens work on every worker, the sessions API and viewer are per worker",
    )
    parser.add_argument(
        "--certfile",
        metavar="PEM",
        help="serve HTTPS/WSS with this certificate chain (PEM); URLs become https/wss",
    )
    parser.add_argument(
        "--keyfile",
        metavar="PEM",
        help="the certificate's private key (PEM), when it is not in --certfile",
    )


def _read_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib as toml
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as toml  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ServeConfigError(
                "--config needs Python 3.11+ (tomllib) or the 'tomli' package: pip install tomli"
            ) from None
    try:
        with open(path, "rb") as fh:
            data: dict[str, Any] = toml.load(fh)
    except OSError as exc:
        raise ServeConfigError(f"cannot read --config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # TOMLDecodeError
        raise ServeConfigError(f"--config {path} is not valid TOML: {exc}") from None
    return data


def _parse_api_key(text: str) -> tuple[str, str]:
    key, sep, app_id = text.partition(":")
    if not sep or not key or not app_id:
        raise ServeConfigError(f"--api-key {text!r} must look like KEY:APP_ID")
    return key, app_id


def _resolve(args: argparse.Namespace) -> dict[str, Any]:
    """DevServer keyword arguments from the options, the config file and the defaults."""
    file_cfg: dict[str, Any] = _read_toml(args.config) if getattr(args, "config", None) else {}
    known = set(_DEFAULTS) | {"api_keys", "avatars"}
    unknown = sorted(set(file_cfg) - known)
    if unknown:
        raise ServeConfigError(
            f"unknown option(s) in --config: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    opts: dict[str, Any] = {}
    for name, default in _DEFAULTS.items():
        value = getattr(args, name, None)
        if value is None:
            value = file_cfg.get(name, default)
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ServeConfigError(f"{name} must be a number, not {value!r}")
            if value < 0:
                raise ServeConfigError(f"{name} must be >= 0")
        opts[name] = value
    if isinstance(opts["workers"], float) or not 1 <= opts["workers"] <= 64:
        raise ServeConfigError(f"workers must be a whole number 1-64, not {opts['workers']}")
    if not 0 <= opts["port"] <= 65535:
        raise ServeConfigError(f"port must be 0-65535 (0 = any free port), not {opts['port']}")
    if opts["pace"] not in ("realtime", "fast"):
        raise ServeConfigError(f"pace must be 'realtime' or 'fast', not {opts['pace']!r}")
    if not isinstance(opts["host"], str):
        raise ServeConfigError("host must be a string")
    api_keys: dict[str, str] = {}
    file_keys = file_cfg.get("api_keys", {})
    if not isinstance(file_keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in file_keys.items()
    ):
        raise ServeConfigError('api_keys in --config must be a table of "key" = "app id"')
    api_keys.update(file_keys)
    for text in getattr(args, "api_key", None) or ():
        key, app_id = _parse_api_key(text)
        api_keys[key] = app_id
    avatars = file_cfg.get("avatars", [])
    if not isinstance(avatars, list) or not all(isinstance(a, str) and a for a in avatars):
        raise ServeConfigError("avatars in --config must be a list of avatar ids")
    avatars = [*avatars, *(getattr(args, "avatar", None) or ())]
    ssl_context = _server_ssl(opts["certfile"], opts["keyfile"])
    return {
        "host": opts["host"],
        "port": int(opts["port"]),
        "pace": opts["pace"],
        "api_keys": api_keys,
        "avatars": avatars,
        "idle_timeout": float(opts["idle_timeout"]) or None,
        "max_session_seconds": float(opts["max_session_seconds"]) or None,
        "max_sessions_per_app": int(opts["max_sessions_per_app"]) or None,
        "max_message_size": int(opts["max_message_size"]),
        "pause_timeout": float(opts["pause_timeout"]) or None,
        "read_timeout": float(opts["read_timeout"]),
        "max_request_audio_bytes": int(opts["max_request_audio_bytes"]),
        "max_connection_audio_bytes": int(opts["max_connection_audio_bytes"]),
        "ssl_context": ssl_context,
        "workers": int(opts["workers"]),
    }


def _server_ssl(certfile: Any, keyfile: Any) -> ssl.SSLContext | None:
    """A server TLS context from ``--certfile``/``--keyfile``, or None without them."""
    for name, value in (("certfile", certfile), ("keyfile", keyfile)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ServeConfigError(f"{name} must be a file path")
    if certfile is None:
        if keyfile is not None:
            raise ServeConfigError("--keyfile needs --certfile (the certificate chain, PEM)")
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        # the reason only (file name and OpenSSL's words), never the key material
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ServeConfigError(
            f"cannot load --certfile {certfile}"
            + (f" / --keyfile {keyfile}" if keyfile else "")
            + f": {reason}; give a PEM certificate chain and its private key"
        ) from None
    return ctx


def _banner(server: Any, kwargs: dict[str, Any]) -> str:
    lines = [
        f"avatarkit local avatar service, pace {server.pace}",
        f"  console URL:  {server.console_url}",
        f"  ingress URL:  {server.ingress_url}",
        f"  API key:      {server.api_key}   (app id {server.app_id})",
        f"  avatar id:    {server.avatar_id}",
        f"  viewer:       {server.api_root}/   (sessions, live face; sessions API "
        "/v1/dev/sessions)",
    ]
    for key, app_id in kwargs["api_keys"].items():
        lines.append(f"  API key:      {key}   (app id {app_id})")
    for avatar in kwargs["avatars"]:
        lines.append(f"  avatar id:    {avatar}")
    if kwargs["host"] not in ("127.0.0.1", "::1", "localhost"):
        lines.append(f"  warning: bound to {kwargs['host']}, reachable beyond this machine")
    lines.append("Ctrl+C stops it.")
    return "\n".join(lines)


async def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 1 if it cannot start, 2 on bad options."""
    try:
        kwargs = _resolve(args)
    except ServeConfigError as exc:
        print(f"avatarkit serve: error: {exc}", file=sys.stderr)
        return 2
    from ._server import DevServer

    workers = kwargs.pop("workers")
    try:
        server = DevServer(**kwargs)
    except ValueError as exc:
        print(f"avatarkit serve: error: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        from ._workers import run_workers

        return await run_workers(args, workers, kwargs)
    try:
        await server.start()
    except OSError as exc:
        print(
            f"avatarkit serve: cannot listen on {kwargs['host']}:{kwargs['port']}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    freeze_startup_heap()
    # One INFO line per session and per rejected call on stderr (the banner
    # goes to stdout); the lines carry no API key, token or egress secret.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    service_log = logging.getLogger("avatarkit.devserver")
    previous_level = service_log.level
    service_log.addHandler(handler)
    if not service_log.isEnabledFor(logging.INFO):
        service_log.setLevel(logging.INFO)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
    try:
        print(_banner(server, kwargs), flush=True)
        await stop.wait()
        print("avatarkit serve: stopping, closing sessions...", file=sys.stderr, flush=True)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        try:
            await server.close()
        finally:
            service_log.removeHandler(handler)
            service_log.setLevel(previous_level)
    return 0


def freeze_startup_heap() -> None:
    """Leave the objects alive once the service listens out of every later
    garbage collection (``gc.freeze()``, after one collection).

    A full collection walks every tracked object; the modules a service
    imports (numpy, aiohttp, protobuf) leave about 50,000 of them, so each
    full collection held the event loop for 10-13 ms for nothing (all of
    them live as long as the process), late frames for every session at
    once. Only for the ``serve`` processes, which own their interpreter:
    an application embedding :class:`~avatarkit.devserver.DevServer` keeps
    its own collector settings.
    """
    gc.collect()
    gc.freeze()


def serve_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m avatarkit.devserver`` (and ``avatarkit serve``)."""
    parser = argparse.ArgumentParser(
        prog="avatarkit serve",
        description="Run the local avatar service: the avatar protocol, offline, on one port.",
    )
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _run_loop(run_serve(args))
    except KeyboardInterrupt:  # platforms without loop signal handlers
        return 0
