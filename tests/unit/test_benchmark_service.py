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


def test_the_estimate_compares_one_worker_at_s_with_n_workers_at_n_times_s() -> None:
    workers = {
        "1": _rows((300, 60.0), (400, 50.0), (700, 45.0)),
        "2": _rows((600, 55.0), (800, 52.0), (900, 40.0)),
    }
    est = cpu_scaling(workers)
    assert est == {
        "workers": 2,
        "sessions": 800,
        "sessions_1": 400,
        "us_per_frame_1": 50.0,
        "us_per_frame_n": 52.0,
        "estimate": round(2 * 50.0 / 52.0, 3),
    }
    text = section({"cpus": 2, "workers": workers, "cpu_scaling": est})
    assert "2 workers at 800 sessions against 1 worker at 400" in text
    assert "**1.92x** one worker" in text
    assert "| 1.50 |" in text  # the load generator's send lag has its column


def test_no_estimate_without_a_matching_pair() -> None:
    assert cpu_scaling({"1": _rows((300, 60.0)), "2": _rows((500, 55.0))}) is None
    assert cpu_scaling({"1": _rows((300, 60.0)), "2": _rows((300, 55.0))}) is None
    assert cpu_scaling({"2": _rows((600, 55.0))}) is None
    assert cpu_scaling({"1": _rows((300, 60.0)), "2": _rows((600, None))}) is None


def test_a_count_that_failed_by_a_little_is_worth_a_second_run() -> None:
    from benchmarks.service_capacity import borderline

    def res(p99: float, lost: int = 0) -> dict[str, Any]:
        return {"ok": True, "frames_lost": lost, "lateness": {"p99_ms": p99}}

    assert borderline(res(75.0))  # one stall of the host
    assert not borderline(res(450.0))  # past capacity: far behind
    assert not borderline(res(60.0, lost=3))  # a frame lost is never a stall
    assert not borderline({"ok": False})


def test_the_table_marks_a_second_run() -> None:
    from benchmarks.service_capacity import section

    def row(n: int, p99: float, ok: bool, **extra: Any) -> dict[str, Any]:
        return {"ok": True, "sessions": n, "frames_lost": 0, "frames_expected": 10,
                "lateness": {"p99_ms": p99}, "sustained": ok, **extra}  # fmt: skip

    rows = [row(400, 7.0, True), row(600, 75.0, False), row(600, 9.0, True, second_run=True)]
    text = section({"cpus": 2, "workers": {"1": {"pinned": True, "rows": rows, "capacity": 600}}})
    assert "| 1 | 600 |" in text and "yes (second run) |" in text
    assert "1 worker(s): **600 sessions**" in text


def test_the_service_table_shows_the_kernels_part_of_a_frame() -> None:
    import os

    from benchmarks.common import process_cpu_seconds, process_cpu_split
    from benchmarks.service_capacity import _kernel

    assert _kernel({"server_sys_us_per_frame": 12.0, "server_cpu_us_per_frame": 48.0}) == (
        "12.0 (25%)"
    )
    assert _kernel({"server_cpu_us_per_frame": 48.0}) == "n/a"  # an older results file
    split = process_cpu_split(os.getpid())
    assert split is not None and min(split) >= 0
    total = process_cpu_seconds(os.getpid())
    assert total is not None and total >= sum(split)  # (read later: never less)
    assert process_cpu_split(2**22 + 7) is None  # no such process
