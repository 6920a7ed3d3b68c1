"""The demo/send summary says how the frames were paced, from what was measured.

A remote service paces its answer to the audio's duration whatever the client
does (``--fast`` only skips the client's own pacing), so the label comes from
the receive times: frames that arrive over at least 80 % of the audio's
duration were paced in real time; faster, they were not.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path
from typing import Any

import pytest

from avatarkit.cli import main_async
from avatarkit.devserver import DevServer
from tests._helpers import FIXTURES

# No hosted-service settings from the environment: these tests use the local service.
pytestmark = pytest.mark.usefixtures("no_credentials")


def one_second_wav(tmp_path: Path) -> Path:
    pcm = (FIXTURES / "speech_16000.pcm").read_bytes()[: 16000 * 2]
    path = tmp_path / "one_second.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    return path


def row(out: str, name: str) -> str:
    match = re.search(rf"^\s+{re.escape(name)}\s+(.+)$", out, re.MULTILINE)
    assert match, f"{name!r} not in summary:\n{out}"
    return match.group(1)


async def send_unpaced(server: DevServer, tmp_path: Path, capsys: Any) -> str:
    """``send`` without --realtime (the client does not pace) to a configured service."""
    argv = ["send", str(one_second_wav(tmp_path)), "--out", str(tmp_path / "f.jsonl")]
    argv += ["--api-key", server.api_key, "--app-id", server.app_id]
    argv += ["--avatar-id", server.avatar_id, "--console-endpoint", server.console_url]
    argv += ["--ingress-endpoint", server.ingress_url]
    assert await main_async(argv) == 0
    out: str = capsys.readouterr().out
    return out


@pytest.mark.avatar_server("realtime")
async def test_a_service_that_paces_is_reported_as_paced(
    avatar_server: DevServer, tmp_path: Path, capsys: Any
) -> None:
    out = await send_unpaced(avatar_server, tmp_path, capsys)
    pacing = row(out, "pacing")
    assert pacing.startswith("real time, paced by the service ("), pacing
    assert "no pacing" not in row(out, "frames per second")
    assert "sent unpaced" in row(out, "audio duration")


async def test_an_unpaced_service_is_reported_as_unpaced(
    avatar_server: DevServer, tmp_path: Path, capsys: Any
) -> None:
    out = await send_unpaced(avatar_server, tmp_path, capsys)  # the fixture's pace is fast
    pacing = row(out, "pacing")
    assert pacing.startswith("faster than real time"), pacing
    assert re.search(r"received over \d+\.\d+ s for 1\.00 s of audio", pacing), pacing
