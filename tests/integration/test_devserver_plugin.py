"""The pytest plugin (``avatarkit.testing``, entry point ``pytest11``)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

import pytest

from avatarkit.devserver import DevServer


async def test_default_server_is_fast_on_a_free_loopback_port(avatar_server: DevServer) -> None:
    assert avatar_server.pace == "fast"
    assert avatar_server.host == "127.0.0.1" and avatar_server.port > 0
    assert avatar_server.console_url.startswith("http://127.0.0.1:")


@pytest.mark.avatar_server(pace="realtime", idle_timeout=5, max_sessions_per_app=3)
async def test_marker_passes_devserver_options(avatar_server: DevServer) -> None:
    assert avatar_server.pace == "realtime"
    assert avatar_server.settings.idle_timeout == 5
    assert avatar_server.max_sessions_per_app == 3


@pytest.mark.parametrize(
    ("avatar_server", "pace"),
    [("realtime", "realtime"), ({"pace": "fast", "pause_timeout": 1.0}, "fast")],
    indirect=["avatar_server"],
)
async def test_indirect_parametrization(avatar_server: DevServer, pace: str) -> None:
    assert avatar_server.pace == pace


async def test_session_kwargs_point_at_the_server(
    avatar_server: DevServer, avatar_session_kwargs: dict[str, Any]
) -> None:
    kw = avatar_session_kwargs
    assert kw["console_endpoint_url"] == avatar_server.console_url
    assert kw["ingress_endpoint_url"] == avatar_server.ingress_url
    assert (kw["api_key"], kw["app_id"], kw["avatar_id"]) == (
        "dev-api-key",
        "dev-app-id",
        "dev-avatar",
    )
    assert kw["expire_at"] > datetime.now(timezone.utc)


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, avatarkit.testing; "
        "print(sorted(m for m in ('numpy', 'aiohttp', 'avatarkit.devserver', 'av') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
