"""Regenerate the committed protobuf modules from src/avatarkit/proto/*.proto.

Usage: python scripts/gen_proto.py [--out DIR]

Needs the pinned ``grpcio-tools`` (the ``protoc`` extra), which bundles protoc,
so no system protoc is required. Another grpcio-tools writes other version
lines (and may emit code the oldest supported protobuf refuses), so this
refuses to run with any version but the pinned one. tests/integration/test_proto_generated.py
runs this into a temporary folder and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from pathlib import Path

if sys.version_info < (3, 11):
    import tomli as tomllib  # a dependency on 3.10
else:
    import tomllib

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "src" / "avatarkit" / "proto"
SOURCES = ("avatarkit_wire.proto", "avatarkit_animation.proto")


def pinned_grpcio_tools() -> str:
    """The version the ``protoc`` extra in pyproject.toml pins."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for requirement in extras["protoc"]:
        match = re.fullmatch(r"grpcio-tools==([\d.]+)", requirement.replace(" ", ""))
        if match:
            return match[1]
    raise SystemExit("pyproject.toml: the protoc extra pins no grpcio-tools==VERSION")


def check_grpcio_tools() -> None:
    """Exit with what to install unless the pinned grpcio-tools is the one installed."""
    pinned = pinned_grpcio_tools()
    try:
        installed: str | None = importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != pinned:
        raise SystemExit(
            f"gen_proto.py needs grpcio-tools=={pinned} (installed: {installed}); "
            "run: pip install -e '.[protoc]'"
        )


def generate(out_dir: Path) -> None:
    """Run protoc over every source, writing ``*_pb2.py`` and ``*_pb2.pyi``."""
    check_grpcio_tools()
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        args = [
            "protoc",
            f"--proto_path={PROTO_DIR}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            str(PROTO_DIR / source),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {source}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_DIR)
    generate(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
