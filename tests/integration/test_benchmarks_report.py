"""The benchmark report: rendered from a template and a results file, verdicts
computed from the numbers, re-renderable without measuring; the history page
(docs/benchmark-history.md) rendered from the files no run rewrites.

These tests read the committed ``benchmarks/results/*.json``; they run no
benchmark (``python -m benchmarks --smoke`` is CI's job).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import history, report
from benchmarks.__main__ import failures, wall_times
from tests._helpers import ROOT

LATEST = ROOT / "benchmarks" / "results" / "latest.json"
BEFORE_AFTER = ROOT / "benchmarks" / "results" / "before_after.json"
MEMORY_CURVE = ROOT / "benchmarks" / "results" / "memory_curve.json"


@pytest.fixture
def results() -> dict[str, Any]:
    return json.loads(LATEST.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def before_after() -> dict[str, Any]:
    return json.loads(BEFORE_AFTER.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def memory_curve() -> dict[str, Any]:
    return json.loads(MEMORY_CURVE.read_text())  # type: ignore[no-any-return]


def _goal_row(markdown: str, words: str) -> str:
    rows = [line for line in markdown.splitlines() if line.startswith("|") and words in line]
    assert rows, words
    return rows[0]


def test_every_template_field_is_computed_from_the_committed_results(
    results: dict[str, Any], before_after: dict[str, Any], memory_curve: dict[str, Any]
) -> None:
    names = set(re.findall(r"\$\{(\w+)\}", report.TEMPLATE.read_text()))
    assert names, "the template has fields"
    assert names - set(report.fields(results)) == set()
    names = set(re.findall(r"\$\{(\w+)\}", history.TEMPLATE.read_text()))
    computed = {**history.before_after_fields(before_after),
                **history.memory_curve_fields(memory_curve)}  # fmt: skip
    assert names and names - set(computed) == set()


def test_the_committed_report_is_the_rendering_of_the_committed_results(
    results: dict[str, Any],
) -> None:
    assert (ROOT / "BENCHMARKS.md").read_text() == report.render(results)


def test_the_history_page_is_the_rendering_of_its_two_files(
    before_after: dict[str, Any], memory_curve: dict[str, Any]
) -> None:
    page = (ROOT / "docs" / "benchmark-history.md").read_text()
    assert page == history.render(before_after, memory_curve)
    assert "docs/benchmark-history.md" in (ROOT / "BENCHMARKS.md").read_text()


def test_the_report_carries_no_figure_of_the_files_no_run_rewrites(
    results: dict[str, Any],
) -> None:
    markdown = report.render(results)
    assert "Before/after the architecture change" not in markdown
    assert "as a curve" not in markdown
    assert "before_after.json" not in markdown and "memory_curve.json" not in markdown
    assert report.render(results) == markdown  # nothing but the results file feeds it


def test_the_before_after_table_shows_the_numbers_of_its_file(
    before_after: dict[str, Any], memory_curve: dict[str, Any]
) -> None:
    changed = copy.deepcopy(before_after)
    changed["after"]["stats"]["flood_x_017"] = {"median": 0.123, "min": 0.1, "max": 0.2}
    changed["after_x_before"]["flood_x_017"] = 4.567
    row = _goal_row(
        history.render(changed, memory_curve), "flood: client CPU per frame, ours / avatarkit"
    )
    assert "0.123 (0.100-0.200)" in row and "4.567" in row
    missing = _goal_row(history.render(None, None), "flood: client CPU per frame, ours / avatarkit")
    assert missing.count("n/a") == 3


def test_compare_reduces_interleaved_runs_to_medians_and_after_over_before(
    tmp_path: Path, results: dict[str, Any]
) -> None:
    from benchmarks import compare

    slower = copy.deepcopy(results)
    for run in slower["flood"]["ours"]:
        run["cpu_us_per_frame"] *= 1.25
    dirs = {}
    for name, data, p50 in (("b1", results, 2.0), ("b2", results, 4.0), ("a1", slower, 3.5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "latest.json").write_text(json.dumps(data))
        log = f"set-up ...\nRESULT {json.dumps({'p50_ms': p50, 'p99_ms': 9.0, 'n': 3})}\n"
        (tmp_path / f"{name}.setup_latency.log").write_text(log)
        dirs[name] = str(tmp_path / name)
    out = tmp_path / "before_after.json"
    argv = ["--before-commit", "aaa", "--after-commit", "bbb", "--before", dirs["b1"],
            dirs["b2"], "--after", dirs["a1"], "--method", "test", "--out", str(out)]  # fmt: skip
    assert compare.main(argv) == 0
    data = json.loads(out.read_text())
    assert data["before"]["commit"] == "aaa" and len(data["before"]["runs"]) == 2
    assert data["after_x_before"]["flood_ours_us"] == pytest.approx(1.25)
    assert data["after_x_before"]["flood_floor_us"] == pytest.approx(1.0)
    assert data["before"]["stats"]["sl_p50_ms"] == {"median": 3.0, "min": 2.0, "max": 4.0}
    assert data["after_x_before"]["sl_p50_ms"] == pytest.approx(3.5 / 3.0)
    assert "n/a" not in _goal_row(history.render(data, None), "setup_latency.py`, p99")


def test_compare_refuses_a_folder_without_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--before-commit", "a", "--after-commit",
         "b", "--before", str(tmp_path), "--after", str(tmp_path), "--out",
         str(tmp_path / "x.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "latest.json" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x.json").exists()


def test_verdicts_follow_the_numbers(results: dict[str, Any]) -> None:
    assert "**PASS**" in _goal_row(report.render(results), "ours / floor")
    slow = copy.deepcopy(results)
    for run in slow["flood"]["ours"]:
        run["cpu_us_per_frame"] = 100.0  # far above the floor's and 0.1.7's
    markdown = report.render(slow)
    assert "**MISS**" in _goal_row(markdown, "ours / floor")
    assert "**MISS**" in _goal_row(markdown, "flood), ours / avatarkit 0.1.7")
    lines = report.summary_lines(slow)
    assert any(line.startswith("[MISS] cpu_floor") for line in lines)


def test_the_local_service_goals_come_from_the_service_scenario(
    results: dict[str, Any],
) -> None:
    changed = copy.deepcopy(results)
    changed["service"]["workers"]["1"]["capacity"] = 1100
    changed["service"]["scaling"] = 1.8
    markdown = report.render(changed)
    assert "**PASS**" in _goal_row(markdown, "concurrent real-time sessions")
    assert "1100 sessions" in _goal_row(markdown, "concurrent real-time sessions")
    assert "**PASS**" in _goal_row(markdown, "x one worker")
    changed["service"]["workers"]["1"]["capacity"] = 900
    assert "**MISS**" in _goal_row(report.render(changed), "concurrent real-time sessions")
    del changed["service"]
    assert "n/a sessions" in _goal_row(report.render(changed), "concurrent real-time sessions")


def test_the_client_capacity_table_shows_the_end_frames_and_server_lateness_of_each_trial(
    results: dict[str, Any],
) -> None:
    changed = copy.deepcopy(results)
    trial = changed["clientcap"]["clients"]["floor"]["runs"][0]
    trial["server"]["lateness"]["p99_ms"] = 7.25
    trial["delay_end_frame"] = {"p99_ms": 3.25}
    row = _goal_row(report.render(changed), "(end frames 3.2, server 7.2)")
    assert row.startswith("| floor | ") and f"{trial['sessions']}: " in row


def test_the_wall_time_of_each_scenario_is_printed_and_reported(
    results: dict[str, Any],
) -> None:
    changed = {**results, "scenario_wall_s": {"flood": 20.4, "clientcap": 95.0}, "wall_s": 300}
    line = wall_times(changed)
    assert line.index("clientcap 95 s") < line.index("flood 20 s") and "total 300 s" in line
    assert "flood 20 s, clientcap 95 s" in report.render(changed)


def test_a_missing_figure_renders_as_not_available_not_as_a_verdict() -> None:
    markdown = report.render({"flood": {}, "config": {}})
    row = _goal_row(markdown, "ours / floor")
    assert "n/a" in row
    assert "PASS" not in row and "MISS" not in row


def test_failed_runs_are_found_but_unavailable_clients_are_not() -> None:
    section = {
        "ours": [{"ok": True}, {"ok": False, "error": "timed out"}],
        "avatarkit-0.1.7": [{"ok": False, "available": False}],
    }
    assert failures("flood", section) == ["flood/ours[1]"]


def test_render_rewrites_the_report_from_a_results_file_without_measuring(
    tmp_path: Path, results: dict[str, Any]
) -> None:
    (tmp_path / "latest.json").write_text(json.dumps(results))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--render", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "BENCHMARKS.md").read_text() == report.render(results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCHMARKS.md", "latest.json"]


def test_benchmarks_do_not_edit_sys_path() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "benchmarks").rglob("*.py")
        if not any(part.startswith(".venv") for part in path.parts)
        and "sys.path" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--render"], "latest.json"),
        (["--only", "flood,nonsense"], "nonsense"),
        (["--sessions", "100,many"], "--sessions"),
    ],
)
def test_bad_command_lines_exit_2_with_what_to_do(
    tmp_path: Path, argv: list[str], says: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *argv, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_smoke_and_the_full_run_cover_every_scenario_and_client() -> None:
    from benchmarks.__main__ import CONFIG, SMOKE
    from benchmarks.scenarios import FLOOD_CLIENTS, SCENARIOS, client_command

    assert set(SMOKE) == set(CONFIG) == set(SCENARIOS)
    assert "capacity" not in SCENARIOS  # superseded by "service"
    assert SMOKE["service"]["plan"] and SMOKE["realtime"]["sessions"]
    ctx = {"py017": "/0.1.7/bin/python"}
    modules = {" ".join(client_command(name, ctx)[0][1:]) for name in FLOOD_CLIENTS}  # type: ignore[index]
    assert len(modules) == len(FLOOD_CLIENTS)  # each client is a distinct command
