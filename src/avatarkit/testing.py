"""pytest plugin: a local avatar service per test (registered as ``avatarkit``).

Fixtures:

* ``avatar_server``: a started :class:`~avatarkit.devserver.DevServer` on a
  free loopback port, closed after the test. Pace ``fast`` unless asked
  otherwise, with the marker ``@pytest.mark.avatar_server(pace="realtime",
  idle_timeout=5, ...)`` (any ``DevServer`` keyword) or indirect
  parametrization (``@pytest.mark.parametrize("avatar_server", ["realtime"],
  indirect=True)``, a pace or a dict of keywords).
  What the service saw: ``avatar_server.session_summaries()`` returns the
  sessions API's list (``GET /v1/dev/sessions``: ``connection_id``,
  ``app_id``, ``avatar_id``, ``state``, ``egress``, ``close_code``,
  ``requests``), and ``avatar_server.sessions`` / ``closed_sessions`` /
  ``last_session`` the full :class:`~avatarkit.devserver.SessionState`.
* ``avatar_session_kwargs``: keyword arguments for
  ``avatarkit.new_avatar_session`` pointing at ``avatar_server`` (avatar,
  API key, app id, console and ingress URLs, ``expire_at`` an hour ahead).

Chaos tests: :class:`ChaosProxy` (from :mod:`avatarkit._chaos`) is a TCP proxy
to put between a client and ``avatar_server`` that adds latency, jitter and
a bandwidth cap, and cuts, resets or freezes (half-open) WebSocket
connections on demand.

The async fixture needs pytest-asyncio (any mode; each test's own event
loop). Nothing heavy is imported until a fixture is used, so installing
avatarkit does not slow down pytest's start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from avatarkit.devserver import DevServer

from ._chaos import ChaosProxy, ChaosStats

__all__ = ["ChaosProxy", "ChaosStats", "avatar_server", "avatar_session_kwargs"]

if TYPE_CHECKING:
    from pytest_asyncio import fixture as _async_fixture
else:
    try:
        from pytest_asyncio import fixture as _async_fixture
    except ImportError:  # pragma: no cover - plain pytest cannot run the async fixture
        _async_fixture = pytest.fixture


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "avatar_server(**kwargs): DevServer keyword arguments for the avatar_server fixture "
        "(e.g. pace='realtime')",
    )


def _server_kwargs(request: pytest.FixtureRequest) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "pace": "fast"}
    marker = request.node.get_closest_marker("avatar_server")
    if marker is not None:
        if marker.args:
            kwargs["pace"] = marker.args[0]
        kwargs.update(marker.kwargs)
    param = getattr(request, "param", None)
    if isinstance(param, str):
        kwargs["pace"] = param
    elif isinstance(param, dict):
        kwargs.update(param)
    elif param is not None:
        raise pytest.UsageError(
            f"avatar_server parameter must be a pace or a dict of DevServer options, not {param!r}"
        )
    return kwargs


@_async_fixture
async def avatar_server(request: pytest.FixtureRequest) -> AsyncIterator[DevServer]:
    """A local avatar service on a free port for this test (pace ``fast`` by default)."""
    from avatarkit.devserver import DevServer

    server = DevServer(**_server_kwargs(request))
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def avatar_session_kwargs(avatar_server: DevServer) -> dict[str, Any]:
    """Keyword arguments for ``avatarkit.new_avatar_session`` against ``avatar_server``."""
    return avatar_server.session_kwargs()
