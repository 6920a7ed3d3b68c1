"""Regenerate the committed protobuf modules from src/avatarkit/proto/*.proto.

Usage: python scripts/gen_proto.py [--out DIR]

Needs the ``grpcio-tools`` package (a dev dependency), which bundles protoc,
so no system protoc is required. tests/integration/test_proto_generated.py
runs this into a temporary folder and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent.parent / "src" / "avatarkit" / "proto"
SOURCES = ("avatarkit_wire.proto", "avatarkit_animation.proto")


def generate(out_dir: Path) -> None:
    """Run protoc over every source, writing ``*_pb2.py`` and ``*_pb2.pyi``."""
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
