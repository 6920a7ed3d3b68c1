"""Pure parts of the benchmark suite: the capacity search, its pass rule, and the
report's memory slope and capacity ratios (no benchmark is run here)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from benchmarks import report
from benchmarks.scenarios import borderline, search, sustained


@pytest.mark.parametrize("limit", [0, 1, 7, 250, 399, 400, 401, 1234, 5000, 6399, 6400])
def test_search_finds_the_largest_count_that_holds_within_its_resolution(limit: int) -> None:
    tried: list[int] = []

    def trial(n: int) -> bool:
        tried.append(n)
        return n <= limit

    held, failed = search(trial, start=400, most=6400, resolution=0.25)
    assert held <= limit < failed  # never claims a count that failed
    assert max(tried) <= 6400 and len(tried) == len(set(tried))
    if limit >= 6400:
        assert (held, failed) == (6400, 6401)  # every count held, up to the cap
    else:
        assert failed - held <= max(0.25 * held, 1)
    assert len(tried) <= 12  # a short search: each trial is a run of seconds


def test_sustained_needs_a_complete_run_nothing_lost_and_p99_under_the_bound() -> None:
    good: dict[str, Any] = {"ok": True, "timed_out": False, "frames_lost": 0,
                            "setup_failures": 0, "send_failures": 0,
                            "delay": {"p99_ms": 19.9}}  # fmt: skip
    assert sustained(good, 20.0)
    for change in ({"ok": False}, {"timed_out": True}, {"frames_lost": 1},
                   {"setup_failures": 2}, {"send_failures": 1}, {"delay": {"p99_ms": 20.0}},
                   {"delay": {"p99_ms": None}}):  # fmt: skip
        assert not sustained({**good, **change}, 20.0), change


def test_memory_per_session_is_the_slope_between_the_counts() -> None:
    realtime = {
        100: {"ours": {"kib": 13.9}, "avatarkit-0.1.7": {"kib": 18.0}},
        1000: {"ours": {"kib": 9.0}, "avatarkit-0.1.7": {"kib": 20.0}},
    }
    mem = report._memory(realtime)
    ours = mem["rows"]["ours"]
    assert (mem["lo"], mem["hi"]) == (100, 1000)
    assert ours["slope"] == pytest.approx((9000 - 1390) / 900)
    assert ours["fixed"] == pytest.approx(1390 - 100 * ours["slope"])
    assert ours["x_017"] == pytest.approx(ours["slope"] / ((20000 - 1800) / 900))
    assert report._memory({100: realtime[100]}) == {}  # one count: no slope


def test_client_capacity_ratios_and_the_cpu_bound_estimate() -> None:
    def trials(*runs: tuple[int, bool, float]) -> list[dict[str, Any]]:
        return [{"sessions": n, "sustained": ok, "cpu_share": share,
                 "delay": {"p99_ms": 5.0 if ok else 50.0},
                 "delay_end_frame": {"p99_ms": 4.0 if ok else 60.0},
                 "server": {"lateness": {"p99_ms": n / 1000}}}
                for n, ok, share in runs]  # fmt: skip

    results = {"clientcap": {"clients": {
        "floor": {"capacity": 1000, "failed_at": 1200, "runs": trials((1000, True, 0.8))},
        "ours": {"capacity": 900, "failed_at": 1000,
                 "runs": trials((500, True, 0.4), (900, True, 0.75), (1000, False, 0.9))},
        "avatarkit-0.1.7": {"capacity": 300, "failed_at": 400,
                            "runs": trials((300, True, 0.6), (400, False, 0.9))},
    }}}  # fmt: skip
    rows = report._clientcap(results)
    assert list(rows) == ["floor", "avatarkit-0.1.7", "ours"]  # the report's order
    assert rows["ours"]["x_017"] == pytest.approx(3.0)
    assert rows["ours"]["x_floor"] == pytest.approx(0.9)
    assert rows["ours"]["cpu_bound"] == pytest.approx(900 / 0.75)  # at the largest that held
    assert rows["ours"]["cpu_x_017"] == pytest.approx((900 / 0.75) / (300 / 0.6))
    assert "1000: 50.0 ms (end frames 60.0, server 1.0) **no**" in rows["ours"]["trials"]
    # The server's lateness: the worst over the counts that held and the first that failed.
    assert rows["ours"]["srv_late"] == pytest.approx(1.0)
    assert rows["avatarkit-0.1.7"]["srv_late"] == pytest.approx(0.4)


def test_a_trial_that_failed_by_a_little_is_worth_a_second_run_but_an_overload_is_not() -> None:
    run: dict[str, Any] = {"ok": True, "timed_out": False, "frames_lost": 0,
                           "delay": {"p99_ms": 33.0}}  # fmt: skip
    assert borderline(run, 20.0)  # one stall: run the count again
    for change in ({"delay": {"p99_ms": 19.0}}, {"delay": {"p99_ms": 100.0}},
                   {"delay": {"p99_ms": 754.0}}, {"frames_lost": 3}, {"ok": False},
                   {"timed_out": True}, {"delay": {"p99_ms": None}}):  # fmt: skip
        assert not borderline({**run, **change}, 20.0), change


def test_host_slowdown_is_measured_against_the_median_speed_seen() -> None:
    from benchmarks.scenarios import host_slowdown

    ctx: dict[str, Any] = {}
    host_slowdown(ctx, 90.0, 100.0, 100.0, 105.0, 110.0)  # the suite's start: usual 100
    assert host_slowdown(ctx, 101.0) == pytest.approx(0.01)
    assert host_slowdown(ctx, 180.0) == pytest.approx(180 / 101 - 1)  # a stalled host
    assert host_slowdown(ctx, 85.0) < 0  # faster than usual
    assert len(ctx["host_speeds_us"]) == 8


def test_host_speed_is_a_positive_time_and_leaves_the_affinity_alone() -> None:
    import os

    from benchmarks.scenarios import host_speed_us

    before = os.sched_getaffinity(0)
    assert host_speed_us() > 0
    assert os.sched_getaffinity(0) == before


def test_the_report_counts_runs_the_host_slowed() -> None:
    runs = [{"interference": {"foreign_cores": 0.0, "host_slowdown": v}, "disturbed": v > 0.12}
            for v in (0.01, 0.05, 0.3)]  # fmt: skip
    results = {"sections_run": {"flood": 1}, "flood": {"runs": runs}, "quiet": {"host_slow": 0.12}}
    load = report._machine_load(results)
    assert (load["host_slow_runs"], load["disturbed"]) == (1, 1)
    assert load["host_slow_max"] == pytest.approx(30.0)


def test_the_report_says_how_slow_the_host_ran() -> None:
    import json
    from pathlib import Path

    latest = Path(report.__file__).parent / "results" / "latest.json"
    results = json.loads(latest.read_text())
    results["quiet"]["host_slow"] = 0.95  # above every run's own figure
    results["flood"]["floor"][0]["interference"]["host_slowdown"] = 0.97
    text = report.render(results)
    assert "more than 95% slower than its median speed" in text
    assert "at most 97%) slower than its median, 1 runs over the limit" in text


def _always_disturbed(spare_s: float | None) -> dict[str, Any]:
    # disturbed_cores below zero: every run counts as disturbed (the machine is real).
    ctx = {"max_retries": 5, "retry_budget": 10, "disturbed_cores": -1.0,
           "quiet_wait_s": 0.0, "host_slow": 1e9}  # fmt: skip
    if spare_s is not None:  # a deadline that leaves this much beyond what is left
        ctx.update(deadline=time.monotonic() + spare_s + 1.0, after_s=1.0)
    return ctx


def test_disturbed_runs_are_repeated_only_while_the_suite_can_still_end_in_time() -> None:
    from benchmarks.scenarios import measured

    # Each run moves the deadline so that, when it ends, the suite can still
    # spare 10 s, 10 s, then nothing: no wall-clock race in the test.
    spares = [10.0, 10.0, 0.0, 10.0]

    def run() -> dict[str, Any]:
        time.sleep(0.01)
        ctx["deadline"] = time.monotonic() + ctx["after_s"] + spares.pop(0)
        return {"ok": True}

    ctx = _always_disturbed(spare_s=10.0)
    attempts = measured("budget", run, ctx, None)
    assert len(attempts) == 3 and all(a["disturbed"] for a in attempts)  # not a 4th
    assert 0.02 <= ctx["spent_s"] < 1.0  # the two repeats' time
    assert ctx["retry_budget"] == 8
    ctx = _always_disturbed(spare_s=10.0)
    spares[:] = [10.0] * 6
    assert len(measured("budget", run, ctx, None)) == 6  # then max_retries bounds it
    ctx = _always_disturbed(spare_s=None)  # no deadline: only the counts bound the repeats
    ctx["retry_budget"] = 3

    def plain() -> dict[str, Any]:
        return {"ok": True}

    assert len(measured("budget", plain, ctx, None)) == 4


def test_what_is_left_of_the_suite_is_counted_ahead() -> None:
    from benchmarks.scenarios import spare_s

    now = time.monotonic()
    ctx: dict[str, Any] = {"deadline": now + 100.0, "section_end": now + 30.0, "after_s": 50.0}
    assert spare_s(ctx) == pytest.approx(20.0, abs=0.5)
    ctx["section_end"] = now - 10.0  # the scenario overran its usual time: now counts
    assert spare_s(ctx) == pytest.approx(50.0, abs=0.5)
    assert spare_s({}) == math.inf


def test_the_report_says_what_waiting_and_repeating_took() -> None:
    text = report._budget({"budget_s": 295.0, "spent_s": 12.3})
    assert "took 12 s" in text and "within 295 s" in text
    assert report._budget(None) == ""  # a smoke run, or an older results file


def test_a_second_run_needs_the_time_it_took_to_be_spare() -> None:
    from benchmarks.scenarios import second_run_allowed

    now = time.monotonic()
    ctx: dict[str, Any] = {"deadline": now + 20.0, "section_end": now, "after_s": 10.0}
    assert second_run_allowed(ctx, 6.0) and ctx["spent_s"] == pytest.approx(6.0)
    assert not second_run_allowed(ctx, 11.0)  # it would end the suite late
    assert ctx["spent_s"] == pytest.approx(6.0)
    assert second_run_allowed({}, 1e9)  # no deadline: unbounded, as before
