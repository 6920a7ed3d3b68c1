"""The README's API reference documents exactly ``avatarkit.__all__`` (issue 10)."""

from __future__ import annotations

import re
import types
from pathlib import Path

import avatarkit

README = Path(__file__).resolve().parents[2] / "README.md"


def _api_reference() -> str:
    text = README.read_text()
    start = text.index("\n## API reference\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _documented_names() -> set[str]:
    """Names of ``avatarkit`` (not its submodules) the section shows in backticks."""
    names = set()
    for code in re.findall(r"`([^`]+)`", _api_reference()):
        match = re.match(r"(?:avatarkit\.)?([A-Za-z_][A-Za-z0-9_]*)", code)
        if match is None:
            continue
        name = match.group(1)
        if name == "__all__":
            continue
        value = getattr(avatarkit, name, None)
        if value is not None and not isinstance(value, types.ModuleType):
            names.add(name)
    return names


def test_readme_api_reference_lists_exactly_all() -> None:
    documented = _documented_names()
    exported = set(avatarkit.__all__)
    assert sorted(exported - documented) == [], "exported but not in the API reference"
    assert sorted(documented - exported) == [], "in the API reference but not exported"


def test_all_names_exist() -> None:
    for name in avatarkit.__all__:
        assert hasattr(avatarkit, name), name
