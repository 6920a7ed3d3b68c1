"""The test suite's layout rules (issue 10).

- No test module imports another test module: shared code lives in
  ``tests/_helpers.py`` (and ``tests/_e2e.py``), shared fixtures in
  ``tests/conftest.py``.
- Tests under ``tests/unit/`` open no socket and start no subprocess: the
  autouse guard in ``tests/unit/conftest.py`` makes both raise, and this module
  checks the guard is on. Such tests belong in ``tests/integration/``.
"""

from __future__ import annotations

import ast
import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests._helpers import TESTS


def module_basenames(root: Path) -> list[str]:
    return sorted(p.stem for p in root.rglob("test_*.py"))


def imported_test_modules(path: Path, ours: set[str]) -> list[str]:
    """This suite's test modules (basenames in ``ours``) that ``path`` imports:
    relative imports, ``tests.``-qualified ones and bare basenames."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [(alias.name, False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            relative = node.level > 0
            names = [(base, relative)] + [
                (f"{base}.{a.name}".lstrip("."), relative) for a in node.names
            ]
        else:
            continue
        for name, relative in names:
            last = name.rsplit(".", 1)[-1]
            if last in ours and (relative or name == last or name.startswith("tests.")):
                found.append(name)
    return found


def test_no_test_module_imports_another() -> None:
    offenders = {
        str(path.relative_to(TESTS)): imported
        for path in sorted(TESTS.rglob("*.py"))
        if (imported := imported_test_modules(path, set(module_basenames(TESTS))))
    }
    assert not offenders, (
        f"test modules import other test modules: {offenders}; "
        "move the shared code into tests/_helpers.py or a fixture into tests/conftest.py"
    )


def test_the_import_check_sees_relative_and_absolute_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from .test_a import x\nimport tests.integration.test_b\nfrom tests._helpers import y\n"
        "from aiohttp import test_utils\n"
    )
    ours = {"test_a", "test_b", "test_c"}
    assert imported_test_modules(probe, ours) == ["test_a", "tests.integration.test_b"]


def test_test_module_basenames_are_unique() -> None:
    """pytest's default import mode needs unique basenames outside packages; keep
    them unique anyway so ``pytest -k`` and reports stay unambiguous."""
    names = module_basenames(TESTS)
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_unit_tests_cannot_open_a_socket() -> None:
    with socket.socket() as sock, pytest.raises(RuntimeError, match="tests/integration"):
        sock.bind(("127.0.0.1", 0))
    with socket.socket() as sock, pytest.raises(RuntimeError, match="tests/integration"):
        sock.connect(("127.0.0.1", 9))


async def test_unit_tests_cannot_open_a_loopback_server_or_connection() -> None:
    with pytest.raises(RuntimeError, match="tests/integration"):
        await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="tests/integration"):
        await asyncio.open_connection("127.0.0.1", 9)


def test_unit_tests_cannot_start_a_subprocess() -> None:
    with pytest.raises(RuntimeError, match="tests/integration"):
        subprocess.run([sys.executable, "-c", "pass"], check=False, timeout=10)
