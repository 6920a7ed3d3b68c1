"""The benchmark report: rendered from a template and a results file, verdicts
computed from the numbers, re-renderable without measuring.

These tests read the committed ``benchmarks/results/latest.json``; they run no
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

from benchmarks import report
from benchmarks.__main__ import failures
from tests._helpers import ROOT

LATEST = ROOT / "benchmarks" / "results" / "latest.json"


@pytest.fixture
def results() -> dict[str, Any]:
    return json.loads(LATEST.read_text())  # type: ignore[no-any-return]


def _goal_row(markdown: str, words: str) -> str:
    rows = [line for line in markdown.splitlines() if line.startswith("|") and words in line]
    assert rows, words
    return rows[0]


def test_every_template_field_is_computed_from_the_committed_results(
    results: dict[str, Any],
) -> None:
    names = set(re.findall(r"\$\{(\w+)\}", report.TEMPLATE.read_text()))
    assert names, "the template has fields"
    assert names - set(report.fields(results)) == set()


def test_the_committed_report_is_the_rendering_of_the_committed_results(
    results: dict[str, Any],
) -> None:
    assert (ROOT / "BENCHMARKS.md").read_text() == report.render(results)


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


def test_capacity_is_the_largest_count_sustained_with_all_smaller_ones(
    results: dict[str, Any],
) -> None:
    broken = copy.deepcopy(results)
    runs = broken["capacity"]["runs"]
    smallest = min(runs, key=int)
    runs[smallest][0]["frames_lost"] = 1
    assert report.summarize(broken)["capacity"]["sessions"] is None
    assert "**MISS**" in _goal_row(report.render(broken), "concurrent real-time sessions")


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
    assert SMOKE["capacity"]["sessions"] and SMOKE["realtime"]["sessions"]
    ctx = {"py017": "/0.1.7/bin/python"}
    modules = {" ".join(client_command(name, ctx)[0][1:]) for name in FLOOD_CLIENTS}  # type: ignore[index]
    assert len(modules) == len(FLOOD_CLIENTS)  # each client is a distinct command
