"""Smoke tests of examples/: each runs with no credentials against the local service.

The examples are scripts, not a package: each is loaded from its file and its
main coroutine run in the test's loop (or the script run as a subprocess).
"""

from __future__ import annotations

import base64
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from avatarkit.devserver import decode_animation
from avatarkit.proto import avatarkit_wire_pb2 as pb
from tests._helpers import CREDENTIAL_ENV_VARS as ENV_VARS
from tests._helpers import FIXTURES, ROOT, speech_pcm

# No hosted-service settings from the environment: these tests use the local service.
pytestmark = pytest.mark.usefixtures("no_credentials")

EXAMPLES = ROOT / "examples"


def load_example(name: str) -> ModuleType:
    path = EXAMPLES / name / "main.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def frames_for(n_bytes: int, rate: int) -> int:
    return math.ceil(n_bytes / 2 * 25 / rate)


def speech(seconds: float) -> bytes:
    return speech_pcm(16000, seconds)


def test_every_example_has_a_readme_and_main() -> None:
    for name in ("single_audio_clip", "http_service", "connection_pool"):
        assert (EXAMPLES / name / "main.py").is_file()
        readme = (EXAMPLES / name / "README.md").read_text()
        assert "python examples/" in readme


# ---------------------------------------------------------------------------
# single_audio_clip
# ---------------------------------------------------------------------------


async def test_single_audio_clip_fast(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("single_audio_clip")
    pcm, rate = example.bundled_clip()
    frames = await example.run(pcm, rate, fast=True)
    assert frames == frames_for(len(pcm), rate) == 341
    out = capsys.readouterr().out
    assert "local avatar service" in out
    assert "341 frames" in out


async def test_single_audio_clip_realtime_short_clip() -> None:
    example = load_example("single_audio_clip")
    pcm = speech(0.5)
    assert await example.run(pcm, 16000) == frames_for(len(pcm), 16000) == 13


def test_single_audio_clip_script_with_a_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            str(EXAMPLES / "single_audio_clip" / "main.py"),
            str(FIXTURES / "speech_24000.ogg"),
            "--fast",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "341 frames" in proc.stdout


# ---------------------------------------------------------------------------
# http_service
# ---------------------------------------------------------------------------


def check_messages(body: dict[str, Any], rate: int) -> None:
    audio = base64.b64decode(body["audio"])
    messages = [pb.Message.FromString(base64.b64decode(m)) for m in body["messages"]]
    assert body["sample_rate"] == rate
    assert body["frames"] == len(messages) == frames_for(len(audio), rate)
    animations = [m.server_response_animation for m in messages]
    assert all(m.HasField("server_response_animation") for m in messages)
    assert {a.req_id for a in animations} == {body["req_id"]}
    assert [a.end for a in animations].count(True) == 1 and animations[-1].end
    decoded = [decode_animation(a.animation) for a in animations]
    assert [d["frame_index"] for d in decoded] == list(range(len(decoded)))


async def test_http_service() -> None:
    example = load_example("http_service")
    app = example.create_app(pace="fast")
    async with (
        TestServer(app, host="127.0.0.1", port=0) as server,
        TestClient(server) as client,
    ):
        assert server.port and server.port > 0  # a real loopback port

        # GET: the bundled clip at the asked rate
        resp = await client.get("/animate", params={"sample_rate": "24000"})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        check_messages(body, 24000)
        assert body["duration_s"] == pytest.approx(13.61, abs=0.01)

        # POST raw PCM
        pcm = speech(1.0)
        resp = await client.post(
            "/animate",
            params={"sample_rate": "16000"},
            data=pcm,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        check_messages(body, 16000)
        assert base64.b64decode(body["audio"]) == pcm
        assert body["frames"] == 25

        # POST JSON
        resp = await client.post(
            "/animate",
            json={"sample_rate": 16000, "audio": base64.b64encode(speech(0.5)).decode()},
        )
        assert resp.status == 200, await resp.text()
        check_messages(await resp.json(), 16000)

        # a rate the service does not take
        resp = await client.get("/animate", params={"sample_rate": "11025"})
        assert resp.status == 400
        assert "sample_rate must be one of" in (await resp.json())["message"]
        resp = await client.get("/animate")
        assert resp.status == 400


async def test_http_service_refuses_malformed_requests() -> None:
    """Malformed JSON and a POST without audio get 400 with a JSON error, not the bundled clip."""
    example = load_example("http_service")
    app = example.create_app(pace="fast")
    async with (
        TestServer(app, host="127.0.0.1", port=0) as server,
        TestClient(server) as client,
    ):
        cases: list[tuple[str, dict[str, Any]]] = [
            (
                "not valid JSON",
                {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            ),
            ("not valid JSON", {"data": b"", "headers": {"Content-Type": "application/json"}}),
            ("no audio", {"json": {"sample_rate": 16000}}),
            ("no audio", {"json": {"sample_rate": 16000, "audio": ""}}),
            ("no audio", {"data": b"", "headers": {"Content-Type": "application/octet-stream"}}),
            ("no audio", {"data": b""}),
        ]
        for fragment, kwargs in cases:
            resp = await client.post("/animate", params={"sample_rate": "16000"}, **kwargs)
            assert resp.status == 400, (kwargs, await resp.text())
            assert resp.content_type == "application/json"
            body = await resp.json()
            assert body["error"] == "badRequest", body
            assert fragment in body["message"], body
        # GET still means "the bundled clip"
        resp = await client.get("/animate", params={"sample_rate": "16000"})
        assert resp.status == 200


# ---------------------------------------------------------------------------
# connection_pool
# ---------------------------------------------------------------------------


async def test_connection_pool(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("connection_pool")
    summaries = await example.run(sessions=2, rounds=3, requests=3, clip_s=1.0, fast=True)
    assert len(summaries) == 3
    for number, summary in enumerate(summaries, 1):
        assert summary.round == number
        assert summary.requests == 3
        assert summary.failed == 0
        assert summary.frames == summary.expected_frames == 3 * 25
        assert summary.p50_first_frame_ms is not None and summary.p50_first_frame_ms >= 0
    out = capsys.readouterr().out
    assert out.count("p50 time to first frame") == 3


async def test_connection_pool_realtime_round() -> None:
    example = load_example("connection_pool")
    (summary,) = await example.run(sessions=2, rounds=1, requests=2, clip_s=0.5, fast=False)
    assert summary.failed == 0
    assert summary.frames == summary.expected_frames == 2 * 13


async def test_connection_pool_survives_a_dropped_connection(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = load_example("connection_pool")
    summaries = await example.run(
        sessions=2, rounds=3, requests=3, clip_s=1.0, fast=True, inject_drop=True
    )
    assert [s.failed for s in summaries] == [0, 0, 0]
    assert [s.retried for s in summaries] == [0, 1, 0]  # the request caught on the drop
    assert all(s.frames == s.expected_frames == 3 * 25 for s in summaries)
    out = capsys.readouterr().out
    assert "(round 2: the service drops one connection mid-request)" in out
    assert "pool: 1 session(s) replaced (connectionClosed: 1); 2 of 2 ready" in out


def test_connection_pool_script_with_inject_drop(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            str(EXAMPLES / "connection_pool" / "main.py"),
            "--fast",
            "--inject-drop",
            "--sessions",
            "2",
            "--rounds",
            "2",
            "--requests",
            "3",
            "--clip-s",
            "0.5",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "round 2: 3 requests (0 failed, 1 retried), 39/39 frames" in proc.stdout
    assert "pool: 1 session(s) replaced" in proc.stdout
