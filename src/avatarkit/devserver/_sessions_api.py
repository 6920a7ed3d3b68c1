"""The sessions API of the local service: ``GET /v1/dev/sessions``.

A developer (or the viewer page, or a test) sees what the service is doing
without reading its log: every live session and the most recent closed ones
(:data:`RECENT_CLOSED`), each as a small JSON object. Only identifiers and
counters are reported: no session token, API key or egress secret (LiveKit or
Agora token, URL credentials, room attributes) ever appears, so the output is
safe to paste into a bug report.

The same dicts are available in process as
:meth:`avatarkit.devserver.DevServer.session_summaries` (the pytest fixture
``avatar_server`` is a ``DevServer``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._state import RequestState, SessionState

__all__ = ["RECENT_CLOSED", "request_summary", "session_summary", "sessions_document"]

RECENT_CLOSED = 100
"""Closed sessions the API lists (the most recent; live sessions are all listed)."""


def request_summary(info: RequestState) -> dict[str, Any]:
    """``{req_id, frames, audio_seconds, ended, interrupted, paused}`` of one request."""
    rate = info.sample_rate or 1
    return {
        "req_id": info.req_id,
        "frames": info.frames_sent,
        "audio_seconds": round(info.audio_samples / rate, 3),
        "ended": info.end_sent,
        "interrupted": info.reason != "",
        "paused": info.paused,
    }


def session_summary(state: SessionState) -> dict[str, Any]:
    """The API's object for one session (identifiers and counters only, no secret)."""
    return {
        "connection_id": state.connection_id,
        "app_id": state.app_id,
        "avatar_id": state.avatar_id,
        "state": "closed" if state.closed else "open",
        "egress": state.egress.kind if state.egress is not None else None,
        "close_code": state.close_code,
        "requests": [request_summary(info) for info in list(state.requests.values())],
    }


def sessions_document(
    live: Iterable[SessionState], closed: Iterable[SessionState]
) -> list[dict[str, Any]]:
    """Live sessions (oldest first), then the last :data:`RECENT_CLOSED` closed ones.

    Connections that closed before they were confirmed (no ``connection_id``)
    are left out: there is nothing to look at.
    """
    recent = [s for s in closed if s.connection_id][-RECENT_CLOSED:]
    return [session_summary(s) for s in live] + [session_summary(s) for s in recent]
