"""``avatarkit serve --workers N``: N service processes sharing one port.

The supervisor (the ``avatarkit serve`` process) reserves the port, starts N
worker processes (``python -m avatarkit.devserver._workers``) and prints the
banner once they all listen. Each worker is a whole local service
(:class:`~avatarkit.devserver.DevServer`) bound with ``SO_REUSEPORT`` to the
shared port, so the kernel spreads new connections over the workers (Linux
balances them; elsewhere ``--workers`` above 1 is refused, because other
systems either lack the option or give every connection to one socket).

* **Tokens**: the supervisor draws one random signing secret and hands it to
  every worker, so a session token minted by any worker is accepted by all.
* **Sessions API and viewer**: per worker. On the shared port they show the
  worker that accepted that TCP connection (``GET /v1/dev/sessions`` then
  carries ``"worker": {"index", "workers", "pid", "url"}``); each worker also
  listens on a port of its own (``url``, listed in the banner), where its
  sessions and its viewer can always be reached.
* **Stopping**: SIGINT or SIGTERM to the supervisor stops every worker (each
  closes its sessions with 1001, as one service does) and waits for them
  (bounded; a worker still running after that is killed); a worker that
  exits stops the others. Each worker also stops when its supervisor goes
  away without a word: its stdin (a pipe from the supervisor) reaches EOF.

The hand-over: the supervisor writes one JSON line on the worker's stdin
(options, port, index, secret: the secret never goes on a command line or in
the environment); the worker answers one line on stdout,
``AVATARKIT-WORKER-READY <pid> <own URL>``, and keeps stdin open to watch it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
from typing import Any

from aiohttp import web

from .._run import run as _run_loop

__all__ = ["READY", "reuse_port_supported", "run_workers", "worker_main"]

log = logging.getLogger("avatarkit.devserver")

READY = "AVATARKIT-WORKER-READY"
START_TIMEOUT = 30.0
"""Seconds each worker has to listen before the supervisor gives up."""
STOP_GRACE = 10.0
"""Seconds the workers have to close their sessions and exit once told to stop."""


def reuse_port_supported() -> bool:
    """Whether the kernel balances connections over sockets sharing a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound, not listening, SO_REUSEPORT socket: it fixes the port number
    (``--port 0``) for the workers and takes no connection itself."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
    except BaseException:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


def _plain_args(args: argparse.Namespace) -> dict[str, Any]:
    """The options as JSON values (what a worker re-resolves)."""
    return {
        k: v
        for k, v in vars(args).items()
        if v is None or isinstance(v, (str, int, float, bool, list))
    }


async def _stop_all(procs: list[asyncio.subprocess.Process]) -> bool:
    """Tell every worker to stop, wait (bounded), kill the rest; True if all exited 0."""
    for proc in procs:
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    clean = True
    for proc in procs:
        try:
            code = await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except asyncio.TimeoutError:
            print(f"avatarkit serve: worker {proc.pid} did not stop; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            code = -1
        clean = clean and code == 0
    return clean


async def run_workers(args: argparse.Namespace, count: int, kwargs: dict[str, Any]) -> int:
    """The supervisor: start ``count`` workers on one port and serve until a
    signal (0), a worker's exit (1), or a start that fails (1)."""
    from ._cli import _banner
    from ._server import DevServer

    if not reuse_port_supported():
        print(
            "avatarkit serve: error: --workers above 1 needs SO_REUSEPORT with load "
            "balancing (Linux); run one worker here (--workers 1)",
            file=sys.stderr,
        )
        return 2
    try:
        reserved, port = _reserve_port(kwargs["host"], kwargs["port"])
    except OSError as exc:
        where = f"{kwargs['host']}:{kwargs['port']}"
        print(f"avatarkit serve: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    spec = {"args": _plain_args(args), "port": port, "workers": count}
    spec["secret"] = secrets.token_bytes(32).hex()  # one token secret for all workers
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    procs: list[asyncio.subprocess.Process] = []
    urls: list[str] = []
    try:
        for index in range(count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "avatarkit.devserver._workers",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({**spec, "index": index}).encode() + b"\n")
            await proc.stdin.drain()
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
            words = line.decode(errors="replace").split()
            if len(words) != 3 or words[0] != READY:
                raise RuntimeError(f"worker {proc.pid} exited before listening")
            urls.append(words[2])
    except (OSError, RuntimeError, asyncio.TimeoutError) as exc:
        print(f"avatarkit serve: workers did not start: {exc or 'timed out'}", file=sys.stderr)
        await _stop_all(procs)
        for sig in installed:
            loop.remove_signal_handler(sig)
        return 1
    finally:
        reserved.close()
    shown = DevServer(**kwargs)
    shown._port = port  # for the banner's URLs only; never started
    lines = [_banner(shown, kwargs).rsplit("\n", 1)[0]]
    lines.append(f"  workers:      {count} processes sharing port {port} (SO_REUSEPORT)")
    for index, (proc, url) in enumerate(zip(procs, urls, strict=True)):
        lines.append(f"  worker {index}:     pid {proc.pid}, own URL {url}/")
    lines.append("Ctrl+C stops it.")
    print("\n".join(lines), flush=True)

    exited = [asyncio.ensure_future(proc.wait()) for proc in procs]
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([stopper, *exited], return_when=asyncio.FIRST_COMPLETED)
        failed = stopper not in done
        if failed:
            print("avatarkit serve: a worker exited; stopping the others", file=sys.stderr)
        else:
            print("avatarkit serve: stopping the workers...", file=sys.stderr, flush=True)
        clean = await _stop_all(procs)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        stopper.cancel()
        for fut in exited:
            fut.cancel()
        await asyncio.gather(stopper, *exited, return_exceptions=True)
    return 0 if clean and not failed else 1


async def _add_own_site(server: Any) -> str:
    """Listen on a port of this worker's own too; returns its root URL."""
    site = web.TCPSite(server._runner, server.host, 0, ssl_context=server.ssl_context)
    await site.start()
    own = int(server._runner.addresses[-1][1])
    scheme = "https" if server.ssl_context is not None else "http"
    return f"{scheme}://{server._url_host}:{own}"


async def _watch_stdin(stop: asyncio.Event) -> None:
    """Set ``stop`` when the supervisor's pipe closes (it stopped us, or died)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        while await reader.read(4096):
            pass
    finally:
        transport.close()
        stop.set()


async def _serve_worker(spec: dict[str, Any]) -> int:
    from ._cli import ServeConfigError, _resolve, freeze_startup_heap
    from ._server import DevServer

    index, count = int(spec["index"]), int(spec["workers"])
    args = argparse.Namespace(**spec["args"])
    args.port = int(spec["port"])
    try:
        kwargs = _resolve(args)
    except ServeConfigError as exc:
        print(f"avatarkit serve: worker {index}: error: {exc}", file=sys.stderr)
        return 2
    kwargs.pop("workers")
    server = DevServer(**kwargs, secret=bytes.fromhex(spec["secret"]), reuse_port=True)
    await server.start()
    freeze_startup_heap()
    stop = asyncio.Event()
    handler = logging.StreamHandler(sys.stderr)
    fmt = f"%(asctime)s %(levelname)s worker {index}: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    service_log = logging.getLogger("avatarkit.devserver")
    service_log.addHandler(handler)
    if not service_log.isEnabledFor(logging.INFO):
        service_log.setLevel(logging.INFO)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.ensure_future(_watch_stdin(stop))
    try:
        url = await _add_own_site(server)
        server.worker = {"index": index, "workers": count, "pid": os.getpid(), "url": url}
        try:
            print(f"{READY} {os.getpid()} {url}", flush=True)
        except BrokenPipeError:  # the supervisor is gone already
            return 1
        sys.stdout = sys.stderr  # nothing more on the pipe the supervisor stopped reading
        await stop.wait()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await server.close()
        service_log.removeHandler(handler)
    return 0


def worker_main() -> int:
    """Entry point of one worker (``python -m avatarkit.devserver._workers``)."""
    line = sys.stdin.buffer.readline()
    if not line:
        return 2
    try:
        return _run_loop(_serve_worker(json.loads(line)))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(worker_main())
