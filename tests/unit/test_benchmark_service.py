"""The local-service scenario's CPU-bound scaling estimate (benchmarks/service_capacity.py)."""

from __future__ import annotations

from typing import Any

from benchmarks.service_capacity import cpu_scaling, section


def _rows(*pairs: tuple[int, float | None]) -> dict[str, Any]:
    return {
        "pinned": False,
        "capacity": 0,
        "rows": [
            {"ok": True, "sessions": n, "server_cpu_us_per_frame": us, "send_lag": {"p99_ms": 1.5}}
            for n, us in pairs
        ],
    }


def test_the_estimate_compares_cpu_per_frame_at_the_largest_common_count() -> None:
    workers = {
        "1": _rows((300, 60.0), (500, 50.0), (700, 45.0)),
        "2": _rows((300, 70.0), (500, 55.0)),
    }
    est = cpu_scaling(workers)
    assert est == {
        "workers": 2,
        "sessions": 500,
        "us_per_frame_1": 50.0,
        "us_per_frame_n": 55.0,
        "estimate": round(2 * 50.0 / 55.0, 3),
    }
    text = section({"cpus": 2, "workers": workers, "cpu_scaling": est})
    assert "**1.82x** one worker" in text
    assert "| 1.50 |" in text  # the load generator's send lag has its column


def test_no_estimate_without_a_count_both_ran() -> None:
    assert cpu_scaling({"1": _rows((300, 60.0)), "2": _rows((500, 55.0))}) is None
    assert cpu_scaling({"2": _rows((500, 55.0))}) is None
    assert cpu_scaling({"1": _rows((300, 60.0)), "2": _rows((300, None))}) is None
