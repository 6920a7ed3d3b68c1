"""The quick start's ``pip install -e .`` is enough for ``avatarkit demo``.

The README's quick start installs no extra, so the demo must run without any
module that only an extra (opus, uvloop, plot, dev) brings in. A subprocess
refuses those imports and runs the demo against the embedded local service.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests._helpers import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib


# Importable names of what the extras add on top of the base dependencies.
EXTRA_MODULES = ("av", "uvloop", "matplotlib", "pytest", "mypy", "grpc_tools", "spatialreal")

BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed (blocked: extras only)")
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["avatarkit", "demo", "--fast", "--out", sys.argv[2]]
from avatarkit.cli import main
raise SystemExit(main())
"""


def test_the_user_facing_extras_are_blocked() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for extra in ("opus", "uvloop", "plot"):
        for requirement in extras[extra]:
            name = requirement.split(">")[0].split("=")[0].split(";")[0].strip()
            assert name in EXTRA_MODULES, f"{extra}: {name} is not blocked"


def test_demo_runs_with_no_extra_installed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARKIT_")}
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(EXTRA_MODULES), str(tmp_path / "f.jsonl")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "frames received" in result.stdout
    assert (tmp_path / "f.jsonl").stat().st_size > 0
