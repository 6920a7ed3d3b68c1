"""``DevServer`` options: refused with a clear error before anything binds, and
the URLs it reports for wildcard and IPv6 binds (pure: nothing is started)."""

from __future__ import annotations

from typing import Any

import pytest

from avatarkit.devserver import DevServer


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pace": "slow"}, "pace must be 'realtime' or 'fast'"),
        ({"idle_timeout": 0}, "idle_timeout must be > 0 seconds"),
        ({"pause_timeout": -1}, "pause_timeout must be > 0 seconds"),
        ({"max_session_seconds": 0}, "max_session_seconds must be > 0"),
        ({"read_timeout": 0}, "read_timeout must be > 0"),
        ({"max_sessions_per_app": -1}, "max_sessions_per_app must be >= 0"),
        ({"max_message_size": 1023}, "max_message_size must be at least 1024 bytes"),
        ({"max_request_audio_bytes": 0}, "max_request_audio_bytes must be > 0"),
        ({"max_connection_audio_bytes": -5}, "max_connection_audio_bytes must be > 0"),
    ],
)
def test_bad_limits_are_refused_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DevServer(**options)


def test_ssl_context_must_be_an_ssl_context() -> None:
    with pytest.raises(TypeError, match=r"ssl_context must be an ssl\.SSLContext"):
        DevServer(ssl_context="cert.pem")  # type: ignore[arg-type]


def test_limits_of_zero_mean_no_limit_only_where_documented() -> None:
    server = DevServer(idle_timeout=None, pause_timeout=None, max_sessions_per_app=0)
    assert server.settings.idle_timeout is None
    assert server.max_sessions_per_app == 0


def test_pace_can_change_but_only_to_a_known_pace() -> None:
    server = DevServer(pace="fast")
    server.pace = "realtime"
    assert server.pace == "realtime" and server.settings.pace == "realtime"
    with pytest.raises(ValueError, match="pace must be"):
        server.pace = "warp"
    assert server.pace == "realtime"


def test_urls_need_a_started_server() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = DevServer().api_root


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("::", "[::1]"),
        ("::1", "[::1]"),
        ("fe80::2", "[fe80::2]"),
        ("192.168.1.7", "192.168.1.7"),
        ("localhost", "localhost"),
    ],
)
def test_url_host_for_wildcard_and_ipv6_binds(host: str, shown: str) -> None:
    """A wildcard bind is reached over loopback; IPv6 literals get brackets."""
    server = DevServer(host=host)
    server._port = 8080  # as start() records it; nothing is bound here
    assert server.api_root == f"http://{shown}:8080"
    assert server.ingress_url.startswith(f"ws://{shown}:8080/")


def test_serve_processes_freeze_the_startup_heap_out_of_the_collector() -> None:
    # `avatarkit serve` (and each --workers process) calls this once it
    # listens: the ~50,000 objects of its imports are never walked again by
    # a full collection, which held the loop (and every session's frames).
    import gc

    from avatarkit.devserver._cli import freeze_startup_heap

    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > max(before, 10_000)
    finally:
        gc.unfreeze()
