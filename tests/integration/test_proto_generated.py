"""The committed generated protobuf code matches its .proto sources."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info < (3, 11):
    import tomli as tomllib  # a dependency on 3.10
else:
    import tomllib

from tests._helpers import ROOT

PROTO_DIR = ROOT / "src" / "avatarkit" / "proto"


def _pinned_grpcio_tools() -> str:
    """The grpcio-tools version the ``protoc`` extra pins (the protoc that wrote the files)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    match = re.fullmatch(r"grpcio-tools==([\d.]+)", extras["protoc"][0].replace(" ", ""))
    assert match, extras["protoc"]
    return match[1]


def _installed_grpcio_tools() -> str | None:
    try:
        return importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        return None


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    # Another protoc writes other version lines, so only the pinned one can
    # judge staleness. The pin needs protobuf<7, so it is not in `dev`; CI's
    # oldest-runtime venv installs it and sets AVATARKIT_PROTOC_REQUIRED=1 so
    # this runs there rather than skipping.
    pinned, installed = _pinned_grpcio_tools(), _installed_grpcio_tools()
    if installed != pinned:
        reason = (
            f"needs grpcio-tools=={pinned} (installed: {installed}): pip install -e '.[protoc]'"
        )
        if os.environ.get("AVATARKIT_PROTOC_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        check=True,
        timeout=120,
    )
    generated = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".py", ".pyi"))
    assert generated == sorted(
        p.name for p in PROTO_DIR.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi"))
    )
    for name in generated:
        fresh = (tmp_path / name).read_text()
        committed = (PROTO_DIR / name).read_text()
        assert fresh == committed, f"{name} is stale: run python scripts/gen_proto.py"


def test_upb_backend_in_use() -> None:
    from avatarkit.proto import PROTOBUF_BACKEND

    assert PROTOBUF_BACKEND == "upb"


def test_pure_python_backend_warns() -> None:
    code = "import warnings; warnings.simplefilter('always'); import avatarkit"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "much slower" in result.stderr
