"""``avatarkit serve --workers N``: worker processes sharing one port (real processes).

The supervisor is ``python -m avatarkit.devserver --workers 2``; its banner
names each worker's pid and own URL. Checked: connections to the shared port
reach both workers; a token minted by one worker opens a session on the
other; the sessions API is per worker and says which; SIGINT/SIGTERM stop
every worker and a killed supervisor leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import aiohttp
import pytest

from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.devserver._workers import reuse_port_supported
from tests._helpers import ServeProcess

pytestmark = pytest.mark.skipif(not reuse_port_supported(), reason="--workers needs Linux")


async def start_workers(
    count: int = 2,
) -> tuple[asyncio.subprocess.Process, str, list[tuple[int, str]]]:
    """Start the supervisor; (process, shared root URL, [(worker pid, own URL)])."""
    serve = await ServeProcess.start(
        "--pace", "fast", "--workers", str(count), stderr=asyncio.subprocess.PIPE
    )
    return serve.proc, serve.root, serve.workers


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


async def wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        await asyncio.sleep(0.05)


async def sessions(http: aiohttp.ClientSession, root: str) -> dict:
    async with http.get(root + "/v1/dev/sessions") as resp:
        assert resp.status == 200
        return await resp.json()  # type: ignore[no-any-return]


async def test_workers_share_the_port_and_accept_each_others_tokens(
    http: aiohttp.ClientSession,
) -> None:
    proc, root, workers = await start_workers(2)
    try:
        assert len(workers) == 2 and root
        # New connections to the shared port land on both workers (kernel balancing).
        seen = set()
        for _ in range(60):
            async with aiohttp.ClientSession() as fresh:  # a new TCP connection each time
                seen.add((await sessions(fresh, root))["worker"]["index"])
            if seen == {0, 1}:
                break
        assert seen == {0, 1}
        # A token minted by worker 0 opens a session on worker 1.
        (_, own0), (pid1, own1) = workers
        token = await fetch_token(http, own0)
        ingress1 = own1.replace("http://", "ws://") + "/v2/driveningress"
        client = await RawClient.connect(http, ingress1, token=token)
        try:
            confirm = await client.configure()
            cid = confirm.server_confirm_session.connection_id
            await client.audio("r", b"\0\0" * 1600, end=True)
            assert (await client.collect("r")).ends == 1
            # The sessions API is per worker, and says which.
            doc1, doc0 = await sessions(http, own1), await sessions(http, own0)
            assert doc1["worker"]["index"] == 1 and doc1["worker"]["pid"] == pid1
            assert doc1["worker"]["workers"] == 2 and doc1["worker"]["url"] == own1
            assert [s["connection_id"] for s in doc1["sessions"]] == [cid]
            assert doc0["sessions"] == []
        finally:
            await client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 20)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_stops_every_worker(sig: signal.Signals) -> None:
    proc, _, workers = await start_workers(2)
    pids = [pid for pid, _ in workers]
    assert all(alive(p) for p in pids)
    proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    await wait_gone(pids, 5)


async def test_workers_exit_when_the_supervisor_is_killed() -> None:
    proc, _, workers = await start_workers(2)
    pids = [pid for pid, _ in workers]
    proc.kill()  # no chance to stop them: their stdin pipe closes
    await asyncio.wait_for(proc.communicate(), 20)
    await wait_gone(pids, 10)
    for pid in pids:  # reparented to init or a subreaper: nothing for us to reap
        assert not alive(pid)


async def test_workers_option_is_checked() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avatarkit.devserver", "--port", "0", "--workers", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "workers must be a whole number 1-64" in err.decode()
    assert os.environ.get("AVATARKIT_SERVE_SECRET") is None  # nothing leaks via the env
