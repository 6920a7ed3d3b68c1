"""The committed generated protobuf code matches its .proto sources."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests._helpers import ROOT

PROTO_DIR = ROOT / "src" / "avatarkit" / "proto"


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="needs the dev extra")
def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)], check=True
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
