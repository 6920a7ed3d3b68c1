"""``avatarkit demo --open`` (issue 12): the viewer URL, the browser, the bounded wait.

The demo runs as a subprocess. ``$BROWSER`` (honoured by :mod:`webbrowser`)
points at a small script: in the test with ``--open`` it loads the page in
headless Chromium (like a user's browser would) and waits until the page has
played the clip; without ``--open`` it only records that it was called.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests._helpers import chromium_path as _chromium

OPENER = """
import sys
from pathlib import Path
from playwright.sync_api import sync_playwright

url, marker, chromium = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if chromium == "-":
    marker.write_text("opened " + url)
    sys.exit(0)
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("window.avatarViewer.played.length > 0", timeout=60_000)
    marker.write_text("played " + url)
    browser.close()
"""


def _run_demo(tmp_path: Path, chromium: str, *flags: str) -> subprocess.CompletedProcess[str]:
    opener = tmp_path / "opener.py"
    opener.write_text(OPENER)
    marker = tmp_path / "marker.txt"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AVATARKIT_")},
        "BROWSER": f"{sys.executable} {opener} %s {marker} {chromium}",
    }
    return subprocess.run(
        [sys.executable, "-m", "avatarkit", "demo", "--fast", *flags, "--out", "demo.jsonl"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_open_shows_the_viewer_until_it_played_the_clip(tmp_path: Path) -> None:
    chromium = _chromium()
    proc = _run_demo(tmp_path, chromium, "--open")
    assert proc.returncode == 0, proc.stderr
    match = re.search(
        r"live viewer of this session: (http://127\.0\.0\.1:\d+/sessions/\S+)", proc.stderr
    )
    assert match, proc.stderr
    # The page played the clip to its end while the embedded service was up.
    assert (tmp_path / "marker.txt").read_text() == "played " + match.group(1)
    assert "the viewer played the clip" in proc.stderr


def test_demo_prints_the_viewer_url_without_opening_a_browser(tmp_path: Path) -> None:
    proc = _run_demo(tmp_path, "-")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"live viewer of this session: http://127\.0\.0\.1:\d+/sessions/", proc.stderr)
    assert not (tmp_path / "marker.txt").exists()
