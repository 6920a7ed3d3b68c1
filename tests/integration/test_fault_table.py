"""The fault table: every fault the SDK must survive, measured, and docs/faults.md.

Each row injects one fault into a real local avatar service (the in-process
``DevServer``'s ``faults``, ``avatarkit serve`` as a process that is killed
or frozen, or a loopback server written here for what the service cannot
do) and records what the SDK did three ways: a plain session (its error, the
session's fate, ``on_close``), a ``session.stream()`` request, and a
``SessionPool``. The suite then builds the Markdown table from those
observations and compares it with the committed ``docs/faults.md``: on a
difference it fails and says how to regenerate it
(``AVATARKIT_WRITE_FAULTS=1``). Every row also asserts the invariants:
``on_close`` exactly once per opened session, no exception reaching the
event loop, no SDK task, open session or client socket left behind.

Only the hosted cloud is not here: its faults are played by the local
service. Rows run on the default transport (picows); the close-code rows
run on aiohttp (``websocket_compression=True``) too and must agree.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from avatarkit import AvatarSDKError, AvatarSession, SessionPool, new_avatar_session
from avatarkit.devserver import DevServer
from tests._helpers import ROOT, Recorder, ServeProcess

DOC = ROOT / "docs" / "faults.md"
WRITE_ENV = "AVATARKIT_WRITE_FAULTS"
REGENERATE = f"{WRITE_ENV}=1 python -m pytest tests/integration/test_fault_table.py"
COLUMNS = ("fault", "error", "retryable", "close code", "session", "on_close", "stream()", "pool")


@dataclass
class Outcome:
    """One row: what the SDK did under one fault (cells of docs/faults.md)."""

    fault: str
    error: str = "—"
    retryable: str = "—"
    close_code: str = "—"
    session: str = "—"
    on_close: str = "—"
    stream: str = "—"
    pool: str = "—"

    def note_error(self, error: BaseException) -> None:
        self.error, self.retryable, self.close_code = describe(error)

    def cells(self) -> tuple[str, ...]:
        return (
            self.fault,
            self.error,
            self.retryable,
            self.close_code,
            self.session,
            self.on_close,
            self.stream,
            self.pool,
        )


def describe(error: BaseException) -> tuple[str, str, str]:
    """``(code / phase, retryable, close code)`` of an error, as table cells."""
    if isinstance(error, AvatarSDKError):
        names = type(error).__name__
        kind = "" if names == "AvatarSDKError" else f" ({names})"
        close = "—" if error.close_code is None else str(error.close_code)
        if error.close_reason == "keepalive ping timeout":
            close += " keepalive"
        return (
            f"`{error.code.value}` / `{error.phase}`{kind}",
            "yes" if error.retryable else "no",
            close,
        )
    return f"{type(error).__name__}", "—", "—"


def short(error: BaseException) -> str:
    """An error as a short cell: ``raises connectionClosed (retryable)``."""
    if isinstance(error, AvatarSDKError):
        again = "retryable" if error.retryable else "not retryable"
        extra = f", {type(error).__name__}" if type(error).__name__ != "AvatarSDKError" else ""
        if error.close_code is not None:
            extra += f", close {error.close_code}"
        return f"raises `{error.code.value}` ({again}{extra})"
    return f"raises {type(error).__name__}"


# -- the per-row guard ---------------------------------------------------------------


def _socket_inodes() -> set[str]:
    inodes: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def client_sockets(port: int) -> int:
    """TCP sockets of this process connected *to* ``port`` (client side)."""
    mine = _socket_inodes()
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[9] in mine and remote_port == port and fields[3] != "0A":
                count += 1
    return count


def _is_sdk_task(task: asyncio.Task[Any]) -> bool:
    if task.get_name() == "avatarkit-loop-guard":
        return False  # one per loop, by design
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    where = code.co_filename if code is not None else repr(coro)
    if "/avatarkit/devserver/" in where or "/tests/" in where:
        return False
    return (
        "/avatarkit/" in where
        or "aiohttp/client" in where
        or "picows" in where
        or task.get_name().startswith("avatarkit-")
    )


@dataclass
class Guard:
    """Loop exceptions, leaked tasks, sessions and sockets, for one row."""

    ports: list[int] = field(default_factory=list)
    loop_errors: list[dict[str, Any]] = field(default_factory=list)
    _baseline: set[asyncio.Task[Any]] = field(default_factory=set)
    _previous: Any = None

    async def __aenter__(self) -> Guard:
        loop = asyncio.get_running_loop()
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, context: self.loop_errors.append(context))
        self._baseline = set(asyncio.all_tasks())
        return self

    async def __aexit__(self, *exc: object) -> None:
        asyncio.get_running_loop().set_exception_handler(self._previous)

    async def problems(self, timeout: float = 3.0) -> list[str]:
        """What was left behind once the row's sessions and pools closed ([] = clean)."""
        from avatarkit import _loopguard

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        current = asyncio.current_task()
        while True:
            resources = _loopguard._per_loop.get(loop)
            open_sessions = len(resources.sessions) if resources is not None else 0
            tasks = [
                t
                for t in asyncio.all_tasks()
                if t not in self._baseline and t is not current and _is_sdk_task(t)
            ]
            if (not tasks and not open_sessions) or loop.time() > deadline:
                break
            await asyncio.sleep(0.02)
        found = [f"task left: {t.get_name()} {t.get_coro()!r}" for t in tasks]
        if open_sessions:
            found.append(f"{open_sessions} session(s) still open")
        # Idle kept-alive token-call connections are pooled on purpose: close
        # that client (after the checks above) before counting sockets.
        await _loopguard.aclose()
        for port in self.ports:
            while client_sockets(port) and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # polls /proc: nothing to wait on
            if left := client_sockets(port):
                found.append(f"{left} client socket(s) to port {port} left open")
        found += [
            f"loop exception: {c.get('message')} {c.get('exception')!r}" for c in self.loop_errors
        ]
        return found


# -- scenario parts ------------------------------------------------------------------


async def open_session(kwargs: dict[str, Any], rec: Recorder | None = None) -> AvatarSession:
    hooks = rec.kwargs() if rec is not None else {}
    session = new_avatar_session(**{**hooks, **kwargs})  # the row's own hooks win
    await asyncio.wait_for(session.init(), 10)
    try:
        await asyncio.wait_for(session.start(), 10)
    except BaseException:
        await session.close()
        raise
    return session


async def end_session(session: AvatarSession, rec: Recorder) -> str:
    """Close, wait for callbacks, return the ``on_close`` count as a cell."""
    await asyncio.wait_for(session.close(), 5)
    await asyncio.wait_for(session.wait_closed(), 5)
    return str(rec.closes)


async def stream_outcome(session: AvatarSession, audio: bytes, **options: Any) -> str:
    """Stream one request; say how its handle resolved."""
    req = session.stream(audio, **options)
    try:
        summary = await asyncio.wait_for(req.done(), 15)
    except Exception as error:
        return short(error)
    return "completes, interrupted" if summary.interrupted else "completes"


async def pool_request_outcome(pool: SessionPool, audio: bytes) -> str:
    """``pool.request(retries=1)``, then what became of the pool."""
    try:
        frames = await pool.request(audio, timeout=15, retries=1)
    except Exception as error:
        result = f"request {short(error)}"
    else:
        ok = frames and frames[-1].end and sum(f.end for f in frames) == 1
        result = "request completes" if ok else f"request returns {len(frames)} frames, no end"
    return result + "; " + await pool_state(pool)


async def pool_state(pool: SessionPool) -> str:
    if not pool.stats.failed:
        try:
            await pool.wait_ready(timeout=10)
        except Exception as error:  # stopped meanwhile
            return f"pool stops ({type(error).__name__})"
    stats = pool.stats
    if stats.failed:
        assert pool.failure is not None
        return f"pool stops: {short(pool.failure).removeprefix('raises ')}"
    if stats.replacements:
        return f"session replaced ({stats.replacements})"
    return "session kept"


# -- the table -----------------------------------------------------------------------


def render(title: str, intro: str, rows: list[Outcome]) -> str:
    """One section of docs/faults.md (Markdown)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"## {title}", "", intro, ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(cell(c) for c in row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def check_table(body: str) -> None:
    """Compare docs/faults.md with the table built from the observations.

    With ``AVATARKIT_WRITE_FAULTS=1`` it writes the file instead.
    """
    text = _HEADER + "\n" + body
    if os.environ.get(WRITE_ENV) == "1":
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(text)
        return
    committed = DOC.read_text() if DOC.exists() else ""
    assert committed == text, (
        "docs/faults.md differs from what the fault suite observed; if the new behaviour is "
        f"right, regenerate it: {REGENERATE}\n\nobserved:\n{text}"
    )


_HEADER = """# Fault table

What the SDK does under each fault, **measured**: the fault suite
(`tests/integration/test_fault_table.py`) injects every fault into a real
local avatar service (or a loopback server written for the test), records
what it observes and compares it with this file, which is generated from
those observations; a difference fails CI.
Regenerate after a deliberate change:

```bash
AVATARKIT_WRITE_FAULTS=1 python -m pytest tests/integration/test_fault_table.py -p no:cacheprovider
```

Columns: **error** is the `AvatarSDKError` the application gets (code /
phase; from `on_error`, or raised by the call that failed), **retryable** its
`retryable`, **close code** its `close_code`; **session** what became of the
session; **on_close** how often `on_close` ran; **stream()** how a
`session.stream()` request under the same fault resolved; **pool** what
`SessionPool(1).request(audio, retries=1)` (runtime faults) or
`SessionPool(1, max_retries=1)` start-up (faults before the session opens)
did. The close-code and upgrade rows run on both transports (picows, and
aiohttp with `websocket_compression=True`): one row means both behaved the
same. Every row is also checked, and fails the suite otherwise: `on_close` ran
exactly once for every session that opened, no exception reached the event
loop's exception handler, and no SDK task, open session or client socket was
left behind.
"""


# -- services for what DevServer cannot do ---------------------------------------------


class FakeService:
    """A minimal avatar service on aiohttp: tokens, confirm, 3 frames per request.

    When ``armed``, the next request gets 2 frames and then a close frame
    *without a code* (reported as 1005), which the local service cannot send.
    """

    def __init__(self) -> None:
        self.armed = False
        self.connections = 0
        self.runner: Any = None
        self.port = 0

    async def _token(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"sessionToken": "fake-token"})

    async def _ws(self, request: Any) -> Any:
        import aiohttp
        from aiohttp import web

        from avatarkit.protocol import (
            ClientAudio,
            ClientControl,
            ServerProtocol,
            encode_animation,
            encode_confirm,
        )

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        cid = f"fake-{self.connections}"
        proto = ServerProtocol()
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.BINARY:
                continue
            event = proto.receive(msg.data)
            if event is None or isinstance(event, ClientControl):
                continue
            if not isinstance(event, ClientAudio):  # the ClientConfigureSession
                await ws.send_bytes(encode_confirm(cid))
            elif event.end:
                armed, self.armed = self.armed, False
                for n in range(2 if armed else 3):
                    last = not armed and n == 2
                    await ws.send_bytes(encode_animation(cid, event.req_id, last, b"x", "avatar"))
                if armed:
                    await ws._writer.send_frame(b"", aiohttp.WSMsgType.CLOSE)  # no code
        return ws

    async def __aenter__(self) -> FakeService:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/console/session-tokens", self._token)
        app.router.add_get("/v2/driveningress/websocket", self._ws)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    def session_kwargs(self, **overrides: Any) -> dict[str, Any]:
        return _kwargs(
            f"http://127.0.0.1:{self.port}/v1/console",
            f"ws://127.0.0.1:{self.port}/v2/driveningress",
            **overrides,
        )


def _kwargs(console: str, ingress: str, **overrides: Any) -> dict[str, Any]:
    from datetime import datetime, timedelta, timezone

    kwargs: dict[str, Any] = dict(
        api_key="dev-api-key",
        app_id="dev-app-id",
        avatar_id="dev-avatar",
        console_endpoint_url=console,
        ingress_endpoint_url=ingress,
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
    )
    kwargs.update(overrides)
    return kwargs


def pool_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    pooled = dict(kwargs)
    del pooled["expire_at"]
    return dict(pooled, session_ttl=300)


# -- row runners -----------------------------------------------------------------------


async def wait_any(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def runtime_row(
    fault: str,
    arm: Callable[[], None],
    kwargs: dict[str, Any],
    audio: bytes,
    stream_options: dict[str, Any] | None = None,
) -> Outcome:
    """A fault during a request: a session, a stream() request, a pooled request."""
    out = Outcome(fault)
    rec = Recorder()
    arm()
    session = await open_session(kwargs, rec)
    await session.send_audio(audio, end=True)
    await wait_any(rec.closed, rec.ended, timeout=15)
    if rec.errors:
        out.note_error(rec.errors[0])
        if len(rec.errors) > 1:
            out.error += f" ×{len(rec.errors)}"
    out.session = "goes on" if session.is_open else "ends"
    if not rec.errors and not session.is_open:
        out.error = "none: a normal close only ends the session (as 0.1.7)"
    out.on_close = await end_session(session, rec)
    assert rec.closes == 1, f"{fault}: on_close ran {rec.closes} times"

    rec = Recorder()
    arm()
    session = await open_session(kwargs, rec)
    out.stream = await stream_outcome(session, audio, **(stream_options or {}))
    await end_session(session, rec)
    assert rec.closes == 1, f"{fault}: on_close ran {rec.closes} times (stream)"

    arm()
    pool = SessionPool(1, backoff_initial=0.05, max_retries=2, **pool_kwargs(kwargs))
    async with pool:
        out.pool = await pool_request_outcome(pool, audio)
    return out


async def opening_row(fault: str, arm: Callable[[], None], kwargs: dict[str, Any]) -> Outcome:
    """A fault before the session opens (token call, upgrade, handshake)."""
    out = Outcome(fault)
    rec = Recorder()
    arm()
    session = new_avatar_session(**kwargs, **rec.kwargs())
    step = "init()"
    try:
        await asyncio.wait_for(session.init(), 10)
        step = "start()"
        await asyncio.wait_for(session.start(), 10)
    except AvatarSDKError as error:
        out.note_error(error)
        out.session = f"{step} raises"
    else:
        out.session = "opens"
    out.on_close = await end_session(session, rec)

    arm()
    pool = SessionPool(1, backoff_initial=0.05, max_retries=1, **pool_kwargs(kwargs))
    try:
        await asyncio.wait_for(pool.start(), 20)
    except Exception as error:
        attempts = sum(pool.stats.failures.values())
        out.pool = f"start() {short(error)} after {attempts} attempt(s)"
    else:
        failed = sum(pool.stats.failures.values())
        out.pool = f"opens after {failed} failed attempt(s)" if failed else "opens"
    finally:
        await pool.aclose()
    return out


# -- the rows ------------------------------------------------------------------------

AUDIO = bytes(32000)  # 1 s of silence (16 kHz PCM): 25 frames from the local service

CLOSES: list[tuple[str, int, str]] = [
    ("close 1000 (normal)", 1000, "bye"),
    ("close 1001 (going away)", 1001, "restarting"),
    ("close 1008 (policy)", 1008, "policy violation"),
    ("close 1009 (too big)", 1009, "message too big"),
    ("close 1011 (internal error)", 1011, "internal error"),
    ("close 4001 (credits exhausted)", 4001, "credits exhausted"),
    ("close 4002 (duration limit)", 4002, "session time limit reached"),
    ("close 4003 (concurrency limit)", 4003, "concurrency limit"),
    ("close 4010 (authentication failed)", 4010, "authentication failed"),
    ("close 4503 (upstream unavailable)", 4503, "upstream unavailable"),
]

SERVER_ERRORS: list[tuple[int, str]] = [
    (3, "invalid audio payload"),
    (3, "livekit_egress: room_name is required"),
    (16, "credentials rejected"),
    (14, "unavailable"),
    (4001, "out of credits"),
    (4002, "too long"),
    (4003, "concurrency limit reached"),
    (4503, "upstream unavailable"),
    (13, "credits exhausted"),
    (13, "session time limit reached"),
    (13, "session denied"),
    (13, "invalid session token"),
    (13, "token is expired"),
    (13, "app id mismatch"),
    (13, "app id unrecognized"),
    (13, "avatar not found"),
    (400, "unsupported sample rate"),
    (13, "no audio input for 10 seconds"),
    (13, "missing livekit credentials"),
    (13, "failed to create egress connection"),
    (13, "driven server request failed"),
    (13, "unexpected message type"),
    (13, "internal"),
    (0, ""),
]

UPGRADE_STATUSES = [400, 401, 402, 404, 500, 502, 503]

TRANSPORTS = {"picows": False, "aiohttp": True}


def merge_transports(results: dict[str, Outcome]) -> list[Outcome]:
    """One row when both transports agree, else one per transport (labelled)."""
    first, second = results["picows"], results["aiohttp"]
    if first.cells()[1:] == second.cells()[1:]:
        return [first]
    first.fault += " (picows)"
    second.fault += " (aiohttp)"
    return [first, second]


# -- the tests -------------------------------------------------------------------------

#: Row id -> outcomes, filled by the row tests, in the order of ROW_IDS.
OBSERVED: dict[str, list[Outcome]] = {}
ROW_IDS: list[str] = []


def row_id(group: str, name: object) -> str:
    ident = f"{group}:{name}"
    if ident not in ROW_IDS:
        ROW_IDS.append(ident)
    return ident


CLOSE_IDS = [row_id("close", c) for c in (1000, 1001, 1005, 1006, 1008, 1009, 1011)]
CLOSE_IDS += [row_id("close", c) for c in (4001, 4002, 4003, 4010, 4503)]
RUNTIME_ERROR_IDS = [row_id("error", f"{c}:{m}") for c, m in SERVER_ERRORS]
HANDSHAKE_ERROR_IDS = [row_id("handshake", f"{c}:{m}") for c, m in SERVER_ERRORS]
UPGRADE_IDS = [row_id("upgrade", s) for s in UPGRADE_STATUSES]
TOKEN_IDS = [
    row_id("token", name)
    for name in ("timeout", "refused", "reset", "non-JSON", "huge", "nested", "200 errors")
]
SERVICE_IDS = [
    row_id("service", name) for name in ("killed", "frozen", "slow", "too slow", "slow consumer")
]


async def guarded(ports: list[int], run: Callable[[], Awaitable[list[Outcome]]]) -> list[Outcome]:
    """Run one row under a :class:`Guard`; fail on anything it finds."""
    async with Guard(ports=list(ports)) as guard:
        outcomes = await run()
        problems = await guard.problems()
    assert not problems, problems
    return outcomes


@pytest.fixture
async def server() -> AsyncIterator[DevServer]:
    async with DevServer(pace="fast") as dev:
        yield dev


@pytest.mark.parametrize("ident", CLOSE_IDS)
async def test_close_code(ident: str, server: DevServer) -> None:
    code = int(ident.split(":")[1])
    if code == 1005:
        async with FakeService() as fake:

            async def fake_row() -> list[Outcome]:
                def arm() -> None:
                    fake.armed = True

                return [
                    await runtime_row(
                        "close frame without a code (1005)", arm, fake.session_kwargs(), AUDIO
                    )
                ]

            OBSERVED[ident] = await guarded([fake.port], fake_row)
        return
    label, reason = next(((lab, r) for lab, c, r in CLOSES if c == code), ("", ""))

    def arm() -> None:
        server.faults.clear()
        if code == 1006:
            server.faults.drop_connection(after_frames=2)
        else:
            server.faults.close(code, reason, after_frames=2)

    async def both() -> list[Outcome]:
        results = {}
        for name, compression in TRANSPORTS.items():
            kwargs = server.session_kwargs(websocket_compression=compression)
            fault = label or "connection dropped, no close frame (1006)"
            results[name] = await runtime_row(fault, arm, kwargs, AUDIO)
        return merge_transports(results)

    OBSERVED[ident] = await guarded([server.port], both)


@pytest.mark.parametrize("ident", RUNTIME_ERROR_IDS)
async def test_server_error_at_run_time(ident: str, server: DevServer) -> None:
    code, message = SERVER_ERRORS[RUNTIME_ERROR_IDS.index(ident)]

    def arm() -> None:
        server.faults.clear()
        server.faults.send_error(code, message, after_frames=2)

    fault = f"ServerError {code} {message!r} during a request"

    async def row() -> list[Outcome]:
        return [await runtime_row(fault, arm, server.session_kwargs(), AUDIO)]

    OBSERVED[ident] = await guarded([server.port], row)


@pytest.mark.parametrize("ident", HANDSHAKE_ERROR_IDS)
async def test_server_error_answering_the_configure(ident: str, server: DevServer) -> None:
    code, message = SERVER_ERRORS[HANDSHAKE_ERROR_IDS.index(ident)]

    def arm() -> None:
        server.faults.clear()
        server.faults.send_error(code, message, phase="handshake")

    fault = f"ServerError {code} {message!r} instead of the confirm"

    async def row() -> list[Outcome]:
        return [await opening_row(fault, arm, server.session_kwargs())]

    OBSERVED[ident] = await guarded([server.port], row)


@pytest.mark.parametrize("ident", UPGRADE_IDS)
async def test_upgrade_rejected(ident: str, server: DevServer) -> None:
    status = int(ident.split(":")[1])

    def arm() -> None:
        server.faults.clear()
        server.faults.reject_upgrade(status)

    async def both() -> list[Outcome]:
        results = {}
        for name, compression in TRANSPORTS.items():
            kwargs = server.session_kwargs(websocket_compression=compression)
            results[name] = await opening_row(f"upgrade answered HTTP {status}", arm, kwargs)
        return merge_transports(results)

    OBSERVED[ident] = await guarded([server.port], both)


@pytest.mark.parametrize("ident", TOKEN_IDS)
async def test_token_call_fails(ident: str, server: DevServer) -> None:
    from avatarkit import _loopguard
    from avatarkit._http import new_client

    name = ident.split(":", 1)[1]
    ingress = server.session_kwargs()["ingress_endpoint_url"]
    rules: dict[str, tuple[int, Any]] = {
        "non-JSON": (200, "<html>gateway error</html>"),
        "huge": (200, b"{" + b" " * (1 << 20) + b"}"),  # 1 MiB + 2 bytes
        "nested": (200, "[" * 100 + "]" * 100),
        "200 errors": (
            200,
            {"errors": [{"status": "401", "title": "Bad key", "detail": "invalid api key"}]},
        ),
    }
    labels = {
        "timeout": "token call: no answer (client timeout 0.5 s)",
        "refused": "token call: connection refused",
        "reset": "token call: connection reset",
        "non-JSON": "token call: 200, body not JSON",
        "huge": "token call: 200, body over 1 MiB",
        "nested": "token call: 200, JSON nested 100 deep",
        "200 errors": "token call: 200 with an `errors` list (401)",
    }

    async def blackhole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1 << 16)
            await asyncio.sleep(30)  # never answers
        finally:
            writer.transport.abort()

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)  # the rest of the request stays unread: abort() sends a RST
        writer.transport.abort()

    if name in rules:
        status, body = rules[name]

        def arm() -> None:
            server.faults.clear()
            server.faults.reject_token(status, body, persistent=True)

        async def row() -> list[Outcome]:
            try:
                return [await opening_row(labels[name], arm, server.session_kwargs())]
            finally:
                server.faults.clear()

        OBSERVED[ident] = await guarded([server.port], row)
        return

    handlers = {"timeout": blackhole, "reset": reset}
    raw = await asyncio.start_server(handlers.get(name, reset), "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    if name == "refused":
        raw.close()
        await raw.wait_closed()

    async def raw_row() -> list[Outcome]:
        if name == "timeout":  # this loop's token client, with a short timeout for the test
            _loopguard._resources().client = new_client(total_timeout=0.5)
        kwargs = _kwargs(f"http://127.0.0.1:{port}/v1/console", ingress)
        return [await opening_row(labels[name], lambda: None, kwargs)]

    try:
        OBSERVED[ident] = await guarded([port], raw_row)
    finally:
        raw.close()
        await raw.wait_closed()


async def _first_frame_then(
    kwargs: dict[str, Any], audio: bytes, act: Callable[[], Awaitable[None]]
) -> tuple[Outcome, Recorder]:
    """A session sends ``audio``; at its first frame ``act()`` runs (kill, freeze)."""
    out = Outcome("")
    rec = Recorder()
    first = asyncio.Event()

    def on_animation(frame: Any) -> None:
        first.set()

    session = await open_session({**kwargs, "on_animation": on_animation}, rec)
    await session.send_audio(audio, end=True)
    await asyncio.wait_for(first.wait(), 10)
    await act()
    await asyncio.wait_for(rec.closed.wait(), 10)
    if rec.errors:
        out.note_error(rec.errors[0])
    out.session = "ends" if not session.is_open else "goes on"
    out.on_close = await end_session(session, rec)
    assert rec.closes == 1
    return out, rec


async def _stream_with(
    kwargs: dict[str, Any], audio: bytes, act: Callable[[], Awaitable[None]]
) -> str:
    rec = Recorder()
    session = await open_session(kwargs, rec)
    req = session.stream(audio)
    async for _frame in req:
        break  # the first frame is there
    await act()
    try:
        await asyncio.wait_for(req.done(), 15)
        result = "completes"
    except Exception as error:
        result = short(error)
    await end_session(session, rec)
    assert rec.closes == 1
    return result


async def _pool_with(
    kwargs: dict[str, Any],
    audio: bytes,
    act: Callable[[], Awaitable[None]],
    recover: Callable[[], Awaitable[None]],
) -> str:
    """A pooled lease streams; ``act()`` at its first frame; ``recover()``; then a new request."""
    pool = SessionPool(
        1, backoff_initial=0.05, backoff_max=0.5, **pool_kwargs({**kwargs, "open_timeout": 2})
    )
    async with pool:
        async with pool.session(timeout=10) as lease:
            req = lease.stream(audio)
            async for _frame in req:
                break
            await act()
            try:
                await asyncio.wait_for(req.done(), 15)
                during = "request completes"
            except Exception as error:
                during = f"request {short(error)}"
        await recover()
        await pool.wait_ready(timeout=20)
        frames = await pool.request(b"\0\0" * 8000, timeout=15)
        after = "next request completes" if frames and frames[-1].end else "next request fails"
        replaced = pool.stats.replacements
        return f"{during}; session replaced ({replaced}) once the service is back; {after}"


async def test_service_killed_mid_request_and_restarted() -> None:
    audio = b"\0\0" * 16000 * 3  # 3 s, paced in real time by the service
    service = await ServeProcess.start()
    port = service.port

    async def kill() -> None:
        await service.kill()

    async def restart() -> None:
        nonlocal service
        service = await ServeProcess.start(port=port)

    async def kill_and_restart() -> None:
        await kill()
        await restart()

    async def row() -> list[Outcome]:
        kwargs = service.session_kwargs()
        out, _ = await _first_frame_then(kwargs, audio, kill)
        out.fault = "`avatarkit serve` killed (SIGKILL) mid-request, then restarted"
        await restart()
        out.stream = await _stream_with(kwargs, audio, kill_and_restart)
        out.pool = await _pool_with(kwargs, audio, kill, restart)
        return [out]

    try:
        OBSERVED[SERVICE_IDS[0]] = await guarded([port], row)
    finally:
        await service.stop()


async def test_service_frozen_and_resumed() -> None:
    audio = b"\0\0" * 16000 * 3
    service = await ServeProcess.start()

    async def freeze() -> None:
        service.freeze()

    async def resume() -> None:
        service.resume()

    async def row() -> list[Outcome]:
        kwargs = service.session_kwargs(keepalive_interval=0.3, keepalive_timeout=0.3)
        try:
            out, _ = await _first_frame_then(kwargs, audio, freeze)
        finally:
            service.resume()
        out.fault = (
            "`avatarkit serve` frozen (SIGSTOP) mid-request, resumed (keepalive 0.3 s + 0.3 s)"
        )
        try:  # resumed once the request resolved (keepalive ended the session)
            out.stream = await _stream_with(kwargs, audio, freeze)
        finally:
            service.resume()
        try:
            out.pool = await _pool_with(kwargs, audio, freeze, resume)
        finally:
            service.resume()
        return [out]

    try:
        OBSERVED[SERVICE_IDS[1]] = await guarded([service.port], row)
    finally:
        await service.stop()


@pytest.mark.parametrize(("ident", "stall"), [(SERVICE_IDS[2], 0.5), (SERVICE_IDS[3], 2.0)])
async def test_slow_service(ident: str, stall: float, server: DevServer) -> None:
    def arm() -> None:
        server.faults.clear()
        server.faults.delay_frames(stall, after_frames=2)

    fault = f"service stalls {stall:g} s mid-request" + (
        " (stream() end_timeout 0.5 s)" if stall > 1 else ""
    )
    options = {"end_timeout": 0.5} if stall > 1 else {}

    async def row() -> list[Outcome]:
        return [await runtime_row(fault, arm, server.session_kwargs(), AUDIO, options)]

    OBSERVED[ident] = await guarded([server.port], row)


async def test_slow_consumer(server: DevServer) -> None:
    """The application takes 10 ms per frame (async callback, slow iteration)."""

    async def row() -> list[Outcome]:
        out = Outcome("slow consumer: 10 ms per frame (async callback, slow iteration)")
        rec = Recorder()
        got: list[bool] = []

        async def slow_frames(data: bytes, last: bool) -> None:
            await asyncio.sleep(0.01)
            got.append(last)
            rec.on_frame(data, last)

        session = await open_session(
            {**server.session_kwargs(), "transport_frames": slow_frames}, rec
        )
        await session.send_audio(AUDIO, end=True)
        await asyncio.wait_for(rec.ended.wait(), 15)
        state = server.find_session(session.connection_id or "")
        assert state is not None
        complete = len(got) == state.frames_sent and got[-1] and sum(got) == 1
        out.session = "goes on; all frames, end last" if complete else f"{len(got)} frames"
        out.on_close = await end_session(session, rec)

        rec = Recorder()
        session = await open_session(server.session_kwargs(), rec)
        req = session.stream(AUDIO)
        frames = []
        async for frame in req:
            await asyncio.sleep(0.01)
            frames.append(frame)
        await asyncio.wait_for(req.done(), 15)
        out.stream = "completes; all frames, end last" if frames[-1].end else "incomplete"
        await end_session(session, rec)

        pool = SessionPool(1, **pool_kwargs(server.session_kwargs()))
        async with pool, pool.session(timeout=10) as lease:
            req = lease.stream(AUDIO)
            pooled = []
            async for frame in req:
                await asyncio.sleep(0.01)
                pooled.append(frame)
            await asyncio.wait_for(req.done(), 15)
            complete = pooled and pooled[-1].end and sum(f.end for f in pooled) == 1
            out.pool = "request completes; session kept" if complete else "incomplete"
        return [out]

    OBSERVED[SERVICE_IDS[4]] = await guarded([server.port], row)


def test_docs_faults_md_matches_what_was_observed() -> None:
    """Last: build the table from every row's observations, compare with docs/faults.md."""
    missing = [i for i in ROW_IDS if i not in OBSERVED]
    if missing:
        pytest.skip(f"{len(missing)} row(s) did not run (run the whole module): {missing[:3]}")
    groups = [
        (
            "Close codes during a request",
            "close",
            "The service closes the WebSocket (or drops the connection) after 2 animation "
            "frames of a 1 s request.",
        ),
        (
            "ServerError during a request",
            "error",
            "The service sends a `ServerError` after 2 animation frames (classification: "
            "PROTOCOL.md section 5).",
        ),
        (
            "ServerError instead of the confirm",
            "handshake",
            "The service answers `ClientConfigureSession` with a `ServerError` and closes.",
        ),
        (
            "Upgrade rejected",
            "upgrade",
            "The WebSocket upgrade is answered with an HTTP error (the local service's "
            "JSON:API body).",
        ),
        (
            "Token call fails",
            "token",
            "`init()` (`POST .../session-tokens`) meets a broken console.",
        ),
        (
            "The service process, slowness, slow consumers",
            "service",
            "`avatarkit serve` as a real process, killed or frozen; stalls; an application "
            "slower than the frames.",
        ),
    ]
    sections = []
    for title, group, intro in groups:
        rows = [o for i in ROW_IDS if i.startswith(group + ":") for o in OBSERVED[i]]
        sections.append(render(title, intro, rows))
    check_table("\n".join(sections))


async def test_the_guard_sees_what_a_row_leaves_behind() -> None:
    """The row checks can fail: a loop exception, an SDK task and a socket left open."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # the server side closes; the client side stays open until closed

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with Guard(ports=[port]) as guard:
            loop = asyncio.get_running_loop()
            stuck = loop.create_task(asyncio.sleep(30), name="avatarkit-stuck")
            loop.call_soon(lambda: 1 / 0)
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.05)
            problems = await guard.problems(timeout=0.3)
        writer.close()
        await writer.wait_closed()
        stuck.cancel()
        await asyncio.gather(stuck, return_exceptions=True)
    finally:
        listener.close()
        await listener.wait_closed()
    assert any("avatarkit-stuck" in p for p in problems), problems
    assert any("ZeroDivisionError" in p for p in problems), problems
    assert any(f"to port {port}" in p for p in problems), problems


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [(200, "protocolError", 200), (502, "serverError", 502), (404, "appIDUnrecognized", 404)],
)
async def test_an_oversized_token_answer_is_classified_as_0_1_7_does(
    status: int, code: str, http_status: int, server: DevServer
) -> None:
    """An answer over 1 MiB is not read, but still classified: a 200 is a broken
    answer (protocolError, not retryable), an HTTP error goes by its status
    (0.1.7 reads the whole body and classifies the same way); it is not a
    connection failure."""
    server.faults.reject_token(status, b"<html>" + b" " * (2 << 20) + b"</html>")
    session = new_avatar_session(**server.session_kwargs())
    with pytest.raises(AvatarSDKError) as info:
        await asyncio.wait_for(session.init(), 10)
    assert info.value.code.value == code
    assert info.value.phase == "session_token"
    assert info.value.http_status == http_status
    assert "larger than 1048576 bytes" in str(info.value)
    await session.close()
