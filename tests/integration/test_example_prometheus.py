"""examples/prometheus_metrics: the metrics endpoint, scraped while it serves.

The example runs as a subprocess against the local service it starts;
``prometheus_client`` (a dependency of the example only) is installed first.
"""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp

from tests._helpers import ROOT, ensure_prometheus_client

EXAMPLE = ROOT / "examples" / "prometheus_metrics" / "main.py"


def _sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} not in:\n{text}"
    return float(match.group(1))


async def test_scrape_the_metrics_endpoint() -> None:
    ensure_prometheus_client()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--fast",
        "--port",
        "0",
        "--requests",
        "4",
        "--linger",
        "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        url = None
        while url is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, "the example ended before serving its metrics"
            found = re.search(r"metrics served at (\S+)", line)
            url = found.group(1) if found else None
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.communicate(), 20)
    assert _sample(text, 'avatarkit_requests_total{interrupted="false"}') == 4
    assert _sample(text, "avatarkit_time_to_first_frame_seconds_count") == 4
    assert _sample(text, "avatarkit_end_latency_seconds_count") == 4
    assert _sample(text, "avatarkit_frames_total") >= 340  # the 13.6 s clip at 25 fps
    assert 13 < _sample(text, "avatarkit_audio_seconds_total") < 14
    for stage in ("token", "websocket", "handshake"):
        assert _sample(text, f'avatarkit_session_setup_seconds_count{{stage="{stage}"}}') == 1
    assert _sample(text, 'avatarkit_sessions_closed_total{close_code="1000"}') == 1
    assert not re.search(r"^avatarkit_session_errors_total\{", text, re.M)  # no error happened
