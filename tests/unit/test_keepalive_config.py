"""Keepalive settings: defaults (0.1.7's, from ``websockets``), builder, validation."""

from __future__ import annotations

import pytest

from avatarkit import SessionConfig, SessionConfigBuilder


def test_defaults_are_on_and_match_0_1_7() -> None:
    cfg = SessionConfig()
    assert (cfg.keepalive_interval, cfg.keepalive_timeout) == (20.0, 20.0)


def test_builder_sets_both() -> None:
    cfg = SessionConfigBuilder().with_keepalive_interval(5).with_keepalive_timeout(2).build()
    assert (cfg.keepalive_interval, cfg.keepalive_timeout) == (5, 2)
    off = SessionConfigBuilder().with_keepalive_interval(None).build()
    assert off.keepalive_interval is None
    off.validate_keepalive()  # None: pings off, accepted


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        (dict(keepalive_interval=0), ValueError, "keepalive_interval must be > 0.*None turns"),
        (dict(keepalive_timeout=-1), ValueError, "keepalive_timeout must be > 0"),
        (dict(keepalive_timeout=float("nan")), ValueError, "keepalive_timeout must be > 0"),
        (
            dict(keepalive_interval=5, keepalive_timeout=6),
            ValueError,
            r"keepalive_timeout \(6 s\) must not exceed keepalive_interval \(5 s\)",
        ),
        (dict(keepalive_timeout="5"), TypeError, "keepalive_timeout must be a number"),
        (dict(keepalive_interval=True), TypeError, "keepalive_interval must be a number"),
    ],
)
def test_unusable_settings_are_refused(
    fields: dict[str, object], error: type[Exception], match: str
) -> None:
    cfg = SessionConfig(**fields)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        cfg.validate_keepalive()
