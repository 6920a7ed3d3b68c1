"""The optional integrations stay optional: clear ImportErrors, nothing imported eagerly."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_pipecat_integration_without_pipecat_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry in sys.modules makes ``import pipecat`` raise ImportError,
    # as when the extra is not installed.
    for name in list(sys.modules):
        if name == "pipecat" or name.startswith(("pipecat.", "avatarkit.integrations.")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pipecat", None)
    with pytest.raises(ImportError, match=r"pip install 'avatarkit\[pipecat\]'"):
        import avatarkit.integrations.pipecat  # noqa: F401


def test_import_avatarkit_does_not_import_pipecat() -> None:
    code = (
        "import sys, avatarkit, avatarkit.integrations; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pipecat'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "[]"


def test_livekit_integration_without_livekit_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry in sys.modules makes ``import livekit`` raise ImportError,
    # as when the extra is not installed.
    for name in list(sys.modules):
        if name == "livekit" or name.startswith(("livekit.", "avatarkit.integrations.")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "livekit", None)
    with pytest.raises(ImportError, match=r"pip install 'avatarkit\[livekit\]'"):
        import avatarkit.integrations.livekit  # noqa: F401


def test_import_avatarkit_does_not_import_livekit() -> None:
    code = (
        "import sys, avatarkit, avatarkit.integrations; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'livekit'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "[]"
