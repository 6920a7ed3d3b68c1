"""The README's resource-bounds table says what the code does (issue 14).

Each row's default is parsed (``10 s``, ``1 MiB``, ``8190 bytes``, ``no
limit``, a count) and compared with the constant or keyword default it
documents, read from the code; a row without a check here, or a check
without a row, fails too, so the table and this list stay complete.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

_UNITS = {"s": 1, "ms": 1, "bytes": 1, "KiB": 1024, "MiB": 1024**2, "levels": 1, "characters": 1}
_ROW = re.compile(r"^\| (?P<bound>[^|]+?) \| (?P<default>[^|]+?) \| (?P<how>[^|]+?) \|$")


def table_rows() -> dict[str, str]:
    """``{bound: default}`` of both tables in the README's "Resource bounds" section."""
    text = README.read_text()
    section = text.split("## Resource bounds\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match and match["bound"] not in ("Bound", "---"):
            rows[match["bound"]] = match["default"]
    return rows


def parse_default(text: str) -> float | None:
    """The number a default cell states (``None`` for "no limit")."""
    if text.startswith("no limit"):
        return None
    match = re.match(r"(?P<n>[\d.]+) ?(?P<unit>[A-Za-z]+)?", text)
    assert match, f"cannot read the default {text!r}"
    return float(match["n"]) * _UNITS.get(match["unit"] or "", 1)


def kw_default(func: Callable[..., Any], name: str) -> Any:
    return inspect.signature(func).parameters[name].default


def _checks() -> dict[str, Callable[[], float | None]]:
    from avatarkit import SessionConfig, SessionPool, _http, _request, session, transport
    from avatarkit._audio_source import MAX_CHUNK_MS
    from avatarkit._classify import MAX_JSON_BODY, MAX_JSON_DEPTH
    from avatarkit._egress_check import _MAX_EXTRA_ATTRIBUTES, MAX_EGRESS_FIELD_BYTES
    from avatarkit._pool import core as pool_core
    from avatarkit._streaming import SessionStreaming
    from avatarkit.cli._frames_file import MAX_JSON_NESTING
    from avatarkit.cli._replay_html import MAX_AUDIO_SECONDS
    from avatarkit.cli._viewer_open import CONNECT_TIMEOUT
    from avatarkit.devserver import DevServer
    from avatarkit.devserver import _core as dev_core
    from avatarkit.devserver import _server as dev_server
    from avatarkit.devserver import _state as dev_state
    from avatarkit.devserver import _workers as dev_workers
    from avatarkit.devserver._jsonapi import MAX_BODY_BYTES
    from avatarkit.devserver._sessions_api import RECENT_CLOSED
    from avatarkit.devserver._viewer import MAX_QUEUED

    def dev(name: str) -> Callable[[], float | None]:
        return lambda: kw_default(DevServer, name)

    def pipecat_end_timeout() -> float:
        source = (Path(transport.__file__).parent / "integrations/_pipecat_service.py").read_text()
        match = re.search(r"end_timeout: float = ([\d.]+)", source)
        assert match
        return float(match[1])

    def livekit_default(name: str) -> Callable[[], float]:
        # The LiveKit glue needs its extra to import: read its signature's text.
        def read() -> float:
            source = (
                Path(transport.__file__).parent / "integrations/_livekit_avatar.py"
            ).read_text()
            match = re.search(rf"{name}: \w+ = (?:timedelta\(minutes=)?([\d.]+)", source)
            assert match, name
            return float(match[1]) * (60 if name == "token_ttl" else 1)

        return read

    return {
        "`open_timeout`: `start()` (TCP, TLS, upgrade, handshake)": lambda: (
            SessionConfig().open_timeout
        ),
        "`close()` wait for queued audio and the close answer": lambda: session._CLOSE_TIMEOUT,
        "`keepalive_interval`: silence from the service before a ping": lambda: (
            SessionConfig().keepalive_interval
        ),
        "`keepalive_timeout`: wait for the pong": lambda: SessionConfig().keepalive_timeout,
        "Token call: connect": lambda: _http.CONNECT_TIMEOUT,
        "Token call: in all": lambda: _http.TOTAL_TIMEOUT,
        "Token answer body": lambda: _http.MAX_BODY,
        "Token answer header line": lambda: _http.MAX_HEADER_LINE,
        "Token call: idle connections kept for reuse": lambda: _http.MAX_IDLE_CONNECTIONS,
        "Token call: idle connection lifetime": lambda: _http.IDLE_SECONDS,
        "Error body read (token call, upgrade rejection)": lambda: MAX_JSON_BODY,
        "Error body JSON nesting": lambda: MAX_JSON_DEPTH,
        "Incoming WebSocket message": lambda: transport.MAX_MESSAGE_SIZE,
        "Upgrade answer header block": lambda: 16 * 1024,  # picows's; not ours to read
        "`stream()` `end_timeout`: end frame after the audio played out": lambda: (
            _request.DEFAULT_END_TIMEOUT
            if kw_default(SessionStreaming.stream, "end_timeout") == _request.DEFAULT_END_TIMEOUT
            else -1
        ),
        "`stream()` `chunk_ms`: audio per message": lambda: (
            kw_default(SessionStreaming.stream, "chunk_ms") if MAX_CHUNK_MS == 10_000 else -1
        ),
        "`stream()` interrupt of a failed or timed-out request": lambda: _request._CONTROL_TIMEOUT,
        "Pool: interrupt sent when a lease is released early": lambda: pool_core._RELEASE_TIMEOUT,
        "Pool: first retry delay": lambda: kw_default(SessionPool, "backoff_initial"),
        "Pool: longest retry delay": lambda: kw_default(SessionPool, "backoff_max"),
        "Pool: failed attempts in a row before it stops": lambda: kw_default(
            SessionPool, "max_retries"
        ),
        "Pool: `acquire()`, `session()`, `request()`, `wait_ready()`": lambda: next(
            (
                d
                for f in ("acquire", "session", "request", "wait_ready")
                if (d := kw_default(getattr(SessionPool, f), "timeout")) is not None
            ),
            None,
        ),
        "Pipecat service: end frame after the audio": pipecat_end_timeout,
        "LiveKit avatar: end frame after the audio": livekit_default("end_timeout"),
        "LiveKit avatar: wait for the service's playback end, then finish the segment": (
            livekit_default("playback_timeout")
        ),
        "LiveKit avatar: egress token lifetime": livekit_default("token_ttl"),
        "LiveKit avatar: attempts to open a session again after a retryable failure": (
            livekit_default("max_reconnects")
        ),
        "Frames not yet read (`frames()`, a request's iterator)": lambda: None,
        "Audio pushed into an `AudioFeed` and not yet sent": lambda: None,
        "Async callbacks queued": lambda: None,
        "Frames file line nesting (`inspect`)": lambda: MAX_JSON_NESTING,
        "Replay page audio (`inspect --html`)": lambda: MAX_AUDIO_SECONDS,
        "`demo --open`: wait for the browser page": lambda: CONNECT_TIMEOUT,
        # Local service
        "`read_timeout`: request head and token body": dev("read_timeout"),
        "Token request body": lambda: MAX_BODY_BYTES,
        "`max_message_size`: WebSocket message": dev("max_message_size"),
        "`max_request_audio_bytes`: decoded audio waiting, per request": dev(
            "max_request_audio_bytes"
        ),
        "`max_connection_audio_bytes`: the same, per connection": dev("max_connection_audio_bytes"),
        "`req_id`": lambda: dev_core.MAX_REQ_ID_BYTES,
        "`idle_timeout`: no audio in and no frame out": dev("idle_timeout"),
        "`pause_timeout`: a paused request is interrupted": dev("pause_timeout"),
        "`max_session_seconds`: session duration (close 4002)": dev("max_session_seconds"),
        "`max_sessions_per_app`: concurrent sessions (close 4003)": dev("max_sessions_per_app"),
        "`max_token_ttl`: session token lifetime": dev("max_token_ttl"),
        "`close_timeout`: wait for the client's close answer": dev("close_timeout"),
        "`avatarkit serve --workers N`: wait for the workers to stop, then kill them": lambda: (
            dev_workers.STOP_GRACE
        ),
        "Egress config text fields": lambda: MAX_EGRESS_FIELD_BYTES,
        "LiveKit `extra_attributes`": lambda: _MAX_EXTRA_ATTRIBUTES,
        "`ServerError` message text": lambda: dev_core._MAX_TEXT,
        "Viewer: messages queued per page (then dropped)": lambda: MAX_QUEUED,
        "Viewer: message from a page": _viewer_message_size,
        "Closed sessions remembered (`DevServer.closed_sessions`)": lambda: (
            dev_server._MAX_CLOSED_SESSIONS
        ),
        "Closed sessions in the sessions API": lambda: RECENT_CLOSED,
        "Requests remembered per session": lambda: dev_state.MAX_REQUESTS_KEPT,
        "Errors remembered per session": lambda: dev_state.MAX_ERRORS_KEPT,
        "Egress frames remembered per session": lambda: dev_state.MAX_PUBLISHED_KEPT,
    }


def _viewer_message_size() -> float:
    from avatarkit.devserver import _viewer

    match = re.search(r"max_msg_size=(\d+)", inspect.getsource(_viewer))
    assert match
    return float(match[1])


def test_every_row_has_a_check_and_every_check_a_row() -> None:
    rows, checks = set(table_rows()), set(_checks())
    assert rows - checks == set(), "rows of the README table with no check here"
    assert checks - rows == set(), "checks here with no row in the README table"


@pytest.mark.parametrize("bound", sorted(_checks()))
def test_readme_default_matches_the_code(bound: str) -> None:
    stated = parse_default(table_rows()[bound])
    actual = _checks()[bound]()
    assert stated == (None if actual is None else float(actual)), (bound, stated, actual)


def test_the_table_parser_reads_units() -> None:
    assert parse_default("16 MiB") == 16 * 1024 * 1024
    assert parse_default("256 KiB") == 256 * 1024
    assert parse_default("8190 bytes") == 8190
    assert parse_default("0.2 s") == 0.2
    assert parse_default("no limit (none is dropped)") is None
