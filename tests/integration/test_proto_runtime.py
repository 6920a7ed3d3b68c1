"""The protobuf runtimes the SDK declares can load its generated code and agree on bytes.

pyproject.toml allows ``protobuf>=6.31.1,<8`` so that ``avatarkit[pipecat]``
(pipecat-ai needs protobuf<7) installs beside the core. The generated modules
refuse any runtime older than the protoc that wrote them, so the gencode
version must not exceed the declared lower bound. CI runs this file (and the
protocol and session tests) both in a venv with the oldest supported runtime
and in the main venv with the newest one, and the golden bytes below must come
out of both.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import google.protobuf

from avatarkit.proto import avatarkit_animation_pb2, avatarkit_wire_pb2

if sys.version_info < (3, 11):
    import tomli as tomllib  # a dependency on 3.10
else:
    import tomllib

ROOT = Path(__file__).resolve().parent.parent.parent
PROTO_DIR = ROOT / "src" / "avatarkit" / "proto"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _declared_protobuf_range() -> tuple[tuple[int, ...], tuple[int, ...]]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in dependencies if re.match(r"protobuf\W", d))
    match = re.fullmatch(r"protobuf>=([\d.]+),<([\d.]+)", spec.replace(" ", ""))
    assert match, f"unexpected protobuf requirement {spec!r}"
    return _version(match[1]), _version(match[2])


def _gencode_version(module_path: Path) -> tuple[int, int, int]:
    """The (major, minor, patch) a generated module passes to ValidateProtobufRuntimeVersion."""
    for node in ast.walk(ast.parse(module_path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "ValidateProtobufRuntimeVersion"
        ):
            major, minor, patch = (ast.literal_eval(arg) for arg in node.args[1:4])
            return major, minor, patch
    raise AssertionError(f"{module_path.name} has no runtime version check")


def test_gencode_is_not_newer_than_the_oldest_declared_runtime() -> None:
    oldest, _ = _declared_protobuf_range()
    modules = sorted(PROTO_DIR.glob("*_pb2.py"))
    assert modules
    for module in modules:
        gencode = _gencode_version(module)
        # A runtime refuses gencode newer than itself (and another major before 7).
        assert gencode[0] == oldest[0], f"{module.name}: gencode {gencode}, oldest {oldest}"
        assert gencode <= oldest[:3], f"{module.name}: gencode {gencode} > runtime {oldest}"


def test_installed_runtime_is_in_the_declared_range() -> None:
    oldest, below = _declared_protobuf_range()
    installed = _version(google.protobuf.__version__)
    assert oldest <= installed < below


# Each message type once, fields set to non-default values; bytes checked in by
# hand from the protocol's field numbers, so any runtime that serializes them
# differently (or reorders fields) fails here.
GOLDEN: list[tuple[str, bytes]] = [
    ("audio", bytes.fromhex("0803 22 0a 0a02 7231 1001 1a02 0102")),
    ("interrupt", bytes.fromhex("0807 42 04 0a02 7231")),
    ("pause", bytes.fromhex("0808 4a 04 0a02 7231")),
    ("resume", bytes.fromhex("0809 52 04 0a02 7231")),
    ("error", bytes.fromhex("0804 2a 0f 0a01 63 1202 7231 18e907 2203 626164")),
    ("animation", bytes.fromhex("0805 32 11 0a01 63 1202 7231 1801 2201 ff 2a03 617631")),
]


def _message(kind: str) -> avatarkit_wire_pb2.Message:
    pb = avatarkit_wire_pb2
    if kind == "audio":
        return pb.Message(
            type=pb.MESSAGE_CLIENT_AUDIO_INPUT,
            client_audio_input=pb.ClientAudioInput(req_id="r1", end=True, audio=b"\x01\x02"),
        )
    if kind == "interrupt":
        return pb.Message(
            type=pb.MESSAGE_CLIENT_INTERRUPT, client_interrupt=pb.ClientInterrupt(req_id="r1")
        )
    if kind == "pause":
        return pb.Message(type=pb.MESSAGE_CLIENT_PAUSE, client_pause=pb.ClientPause(req_id="r1"))
    if kind == "resume":
        return pb.Message(type=pb.MESSAGE_CLIENT_RESUME, client_resume=pb.ClientResume(req_id="r1"))
    if kind == "error":
        return pb.Message(
            type=pb.MESSAGE_SERVER_ERROR,
            server_error=pb.ServerError(connection_id="c", req_id="r1", code=1001, message="bad"),
        )
    assert kind == "animation"
    return pb.Message(
        type=pb.MESSAGE_SERVER_RESPONSE_ANIMATION,
        server_response_animation=pb.ServerResponseAnimation(
            connection_id="c", req_id="r1", end=True, animation=b"\xff", avatar_id="av1"
        ),
    )


def test_wire_bytes_are_the_golden_bytes() -> None:
    for kind, expected in GOLDEN:
        message = _message(kind)
        assert message.SerializeToString() == expected, kind
        parsed = avatarkit_wire_pb2.Message.FromString(expected)
        assert parsed == message, kind


def test_animation_payload_module_loads() -> None:
    assert avatarkit_animation_pb2.DESCRIPTOR.name == "avatarkit_animation.proto"


def test_import_avatarkit_does_not_import_the_integration_frameworks() -> None:
    code = (
        "import sys, avatarkit, avatarkit.testing, avatarkit.devserver, avatarkit.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('livekit', 'pipecat'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"imported by avatarkit: {result.stdout.strip()}"
