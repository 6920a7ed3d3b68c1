"""The unmodified published avatarkit 0.1.7 client against the local service.

0.1.7 has our import name, so it runs from its own virtualenv (made once, in
``.peers/avatarkit017`` at the repo root, by pip from the package index) in a
subprocess. This is the real peer, not a fake.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from avatarkit.devserver import DevServer
from tests._helpers import FIXTURES, PEERS, ensure_peer

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def peer_python() -> Path:
    return ensure_peer()


@pytest.mark.avatar_server(pace="fast")
async def test_published_0_1_7_client_completes_a_request(
    avatar_server: DevServer, peer_python: Path, tmp_path: Path
) -> None:
    pcm = tmp_path / "clip.pcm"
    pcm.write_bytes((FIXTURES / "speech_16000.pcm").read_bytes()[: 16000 * 2 * 2])  # 2 s
    proc = await asyncio.create_subprocess_exec(
        str(peer_python),
        str(PEERS / "avatarkit017_client.py"),
        avatar_server.console_url,
        avatar_server.ingress_url,
        avatar_server.api_key,
        avatar_server.app_id,
        avatar_server.avatar_id,
        str(pcm),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["connection_id"]
    assert seen["frames"] == 50 and seen["ends"] == 1
    assert seen["interrupted"] == seen["req_id"]
    assert seen["errors"] == []
