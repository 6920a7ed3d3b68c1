"""Interop: the unmodified published ``spatialreal`` 0.2.2 client against the local service.

Also: the animation over the wire follows the audio (jawOpen rises only
during speech).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from avatarkit.devserver import DevServer, decode_animation
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.proto import avatarkit_wire_pb2 as pb
from tests._helpers import FIXTURES, ROOT, ensure_peer

spatialreal = pytest.importorskip("spatialreal")

pytestmark = pytest.mark.interop

SPEECH = (FIXTURES / "speech_16000.pcm").read_bytes()
SILENCE = (FIXTURES / "silence_1s_16000.pcm").read_bytes()


def seconds(s: float) -> bytes:
    return SPEECH[: int(s * 16000) * 2]


class Recorder:
    """Collects everything a spatialreal session reports."""

    def __init__(self) -> None:
        self.signals: list[Any] = []
        self.states: list[Any] = []
        self.errors: list[Exception] = []
        self.frames: list[tuple[bytes, bool]] = []
        self.closed = 0
        self._changed = asyncio.Event()

    def on_playback(self, signal: Any) -> None:
        self.signals.append(signal)
        self._changed.set()

    def on_playback_state(self, event: Any) -> None:
        self.states.append(event)
        self._changed.set()

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self._changed.set()

    def transport_frames(self, data: bytes, last: bool) -> None:
        self.frames.append((data, last))

    def on_close(self) -> None:
        self.closed += 1

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_playback": self.on_playback,
            "on_playback_state": self.on_playback_state,
            "on_error": self.on_error,
            "transport_frames": self.transport_frames,
            "on_close": self.on_close,
        }

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)

    def state_of(self, req_id: str) -> list[tuple[str, int, str]]:
        return [(e.state.value, e.played_ms, e.reason) for e in self.states if e.req_id == req_id]


def spatialreal_session(server: DevServer, rec: Recorder, **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "avatar_id": server.avatar_id,
        "api_key": server.api_key,
        "app_id": server.app_id,
        # Both URLs given: spatialreal asks no config service. It strips
        # /v1/console and calls {root}/v1/auth/session-token.
        "console_endpoint_url": server.console_url,
        "ingress_endpoint_url": server.ingress_url,
        "expire_at": datetime.now(timezone.utc) + timedelta(minutes=10),
        **rec.callbacks(),
    }
    kwargs.update(overrides)
    return spatialreal.new_avatar_session(**kwargs)


@pytest.mark.avatar_server(pace="realtime")
async def test_spatialreal_request_pause_resume_interrupt(avatar_server: DevServer) -> None:
    rec = Recorder()
    session = spatialreal_session(avatar_server, rec)
    await session.init()
    connection_id = await session.start()
    assert connection_id in avatar_server.sessions
    assert set(session.capabilities) == {"playback_control", "playback_state"}

    # 1. a request streamed in 200 ms chunks, paused and resumed while it plays
    audio = seconds(2.0)
    step = 6400
    req1 = ""
    for i in range(0, len(audio), step):
        req1 = await session.send_audio(audio[i : i + step], end=i + step >= len(audio))
    await rec.wait_for(lambda: len(rec.signals) >= 8)
    await session.pause()
    await rec.wait_for(lambda: any(e.state.value == "paused" for e in rec.states))
    during = len(rec.signals)
    await asyncio.sleep(0.5)
    assert len(rec.signals) <= during + 1  # at most one frame was in flight
    await session.resume()
    await rec.wait_for(lambda: any(e.state.value == "ended" for e in rec.states), timeout=10)
    states = rec.state_of(req1)
    assert [s for s, _, _ in states] == ["playing", "paused", "playing", "ended"]
    assert states[1][1] == states[2][1]  # played_ms frozen while paused
    assert states[3][1] == 2000
    mine = [s for s in rec.signals if s.req_id == req1]
    assert len(mine) == 50 and sum(s.end for s in mine) == 1 and mine[-1].end
    assert all(s.has_animation and s.connection_id == connection_id for s in mine)
    assert all(s.avatar_id == "dev-avatar" for s in mine)
    # transport_frames gets whole envelopes; the payload decodes
    envelope = pb.Message()
    envelope.ParseFromString(rec.frames[-1][0])
    assert rec.frames[-1][1] is True
    last = decode_animation(envelope.server_response_animation.animation)
    assert last["frame_index"] == 49

    # 2. a second request, interrupted while it plays
    req2 = await session.send_audio(seconds(3.0), end=True)
    assert req2 != req1
    await rec.wait_for(lambda: any(s.req_id == req2 for s in rec.signals))
    await asyncio.sleep(0.3)
    assert await session.interrupt() == req2
    await rec.wait_for(lambda: any(e.state.value == "interrupted" for e in rec.states))
    count = sum(1 for s in rec.signals if s.req_id == req2)
    await asyncio.sleep(0.3)
    assert sum(1 for s in rec.signals if s.req_id == req2) == count  # stopped at once
    assert not any(s.end for s in rec.signals if s.req_id == req2)
    (interrupted,) = [e for e in rec.states if e.req_id == req2 and e.state.value == "interrupted"]
    assert interrupted.reason == "explicit" and interrupted.played_ms == 40 * count

    # 3. the session is still usable after the interrupt
    req3 = await session.send_audio(seconds(0.4), end=True)
    await rec.wait_for(lambda: any(s.req_id == req3 and s.end for s in rec.signals))

    await session.close()
    assert rec.closed == 1 and not rec.errors
    await avatar_server.wait_closed_sessions(1)
    state = avatar_server.find_session(connection_id)
    assert state is not None and state.closed and len(state.requests) == 3


async def test_spatialreal_query_auth_and_ogg_opus(avatar_server: DevServer) -> None:
    rec = Recorder()
    session = spatialreal_session(
        avatar_server,
        rec,
        use_query_auth=True,
        sample_rate=24000,
        audio_format=spatialreal.AudioFormat.OGG_OPUS,
    )
    await session.init()
    cid = await session.start()
    ogg = (FIXTURES / "speech_24000.ogg").read_bytes()
    for i in range(0, len(ogg), 4096):
        await session.send_audio(ogg[i : i + 4096], end=i + 4096 >= len(ogg))
    await rec.wait_for(lambda: any(s.end for s in rec.signals))
    assert len(rec.signals) == 341 and not rec.errors
    assert avatar_server.sessions[cid].auth_style == "query"
    await session.close()


async def test_spatialreal_errors(avatar_server: DevServer) -> None:
    rec = Recorder()
    bad_key = spatialreal_session(avatar_server, rec, api_key="nope")
    with pytest.raises(spatialreal.SessionTokenError) as token_err:
        await bad_key.init()
    assert token_err.value.code.value == "sessionTokenInvalid"
    assert token_err.value.http_status == 401

    bad_avatar = spatialreal_session(avatar_server, rec, avatar_id="ghost")
    await bad_avatar.init()
    with pytest.raises(spatialreal.AvatarSDKError) as ws_err:
        await bad_avatar.start()
    assert ws_err.value.http_status == 404  # spatialreal reads 401/403 only: connectionFailed
    assert ws_err.value.code.value == "connectionFailed"

    bad_rate = spatialreal_session(avatar_server, rec, sample_rate=11025)
    await bad_rate.init()
    with pytest.raises(spatialreal.AvatarSDKError) as rate_err:
        await bad_rate.start()
    assert rate_err.value.server_code == "400"
    assert "unsupported sample rate" in (rate_err.value.server_detail or "")
    # spatialreal maps every ServerError code outside 4000-4999 to serverError
    # (PROTOCOL.md section 6): no code would make it say unsupportedSampleRate.
    assert rate_err.value.code.value == "serverError"

    avatar_server.faults.close(4003, "concurrency limit", after_frames=2)
    session = spatialreal_session(avatar_server, rec)
    await session.init()
    await session.start()
    await session.send_audio(seconds(0.4), end=True)
    await rec.wait_for(lambda: bool(rec.errors))
    assert rec.errors[0].code.value == "concurrencyLimit"  # type: ignore[attr-defined]
    assert rec.errors[0].close_code == 4003  # type: ignore[attr-defined]
    await session.close()


# -- the animation follows the audio ------------------------------------------------


async def test_jaw_opens_only_during_speech(
    avatar_server: DevServer, http: aiohttp.ClientSession
) -> None:
    audio = SILENCE + seconds(2.0) + SILENCE  # frames 0-24 silent, 25-74 speech, 75-99 silent
    token = await fetch_token(http, avatar_server.api_root)
    client = await RawClient.connect(http, avatar_server.ingress_url, token=token)
    await client.configure(16000)
    for i in range(0, len(audio), 3200):  # 100 ms chunks
        await client.audio("r", audio[i : i + 3200], end=i + 3200 >= len(audio))
    got = await client.collect("r")
    jaw = [decode_animation(a.animation)["blendshapes"]["jawOpen"] for a in got.animations]
    assert len(jaw) == 100
    lead, speech, tail = jaw[:25], jaw[25:75], jaw[79:]  # 4 frames for the jaw to close
    assert max(lead) < 0.02 and max(tail) < 0.02
    assert max(speech) > 0.4 and sum(speech) / len(speech) > 0.2
    visemes = [decode_animation(a.animation)["viseme"] for a in got.animations]
    assert set(visemes[:25]) == {"sil"} and len(set(visemes[25:75])) > 3
    await client.close()


# -- the published avatarkit 0.1.7 client (in its own virtualenv) ---------------------

_DRIVE_017 = r"""
import asyncio, json, sys
from datetime import datetime, timedelta, timezone
from avatarkit import AudioFormat, new_avatar_session

console, ingress, fixtures = sys.argv[1:4]

async def run(fmt, path, rate, interrupt):
    frames, errors, closes = [], [], []
    done = asyncio.Event()
    def on_frame(data, last):
        frames.append((len(data), last))
        if last:
            done.set()
    session = new_avatar_session(
        api_key="dev-api-key", app_id="dev-app-id", avatar_id="dev-avatar",
        console_endpoint_url=console, ingress_endpoint_url=ingress, sample_rate=rate,
        audio_format=AudioFormat.OGG_OPUS if fmt == "ogg" else AudioFormat.PCM_S16LE,
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        transport_frames=on_frame, on_error=lambda e: errors.append(repr(e)),
        on_close=lambda: closes.append(1))
    await session.init()
    await session.start()
    data = open(f"{fixtures}/{path}", "rb").read()
    await session.send_audio(data, end=True)  # the whole clip in one message
    if interrupt:
        await asyncio.sleep(0.3)
        await session.interrupt()
        await asyncio.sleep(0.3)
    else:
        await asyncio.wait_for(done.wait(), 30)
    await session.close()
    return {"frames": len(frames), "ends": sum(last for _, last in frames), "errors": errors}

async def main():
    if sys.argv[4] == "interrupt":
        out = [await run("pcm", "speech_16000.pcm", 16000, True)]
    else:
        out = [
            await run("pcm", "speech_48000.pcm", 48000, False),
            await run("ogg", "speech_24000.ogg", 24000, False),
        ]
    print(json.dumps(out))

asyncio.run(main())
"""


def _python_017() -> str | None:
    import os

    candidates = [
        os.environ.get("AVATARKIT017_PYTHON", ""),
        str(ROOT / "benchmarks" / ".venv-avatarkit017" / "bin" / "python"),
    ]
    return next((c for c in candidates if c and Path(c).exists()), None)


async def _drive_017(python: str, server: DevServer, tmp_path: Path, what: str) -> Any:
    script = tmp_path / "drive017.py"
    script.write_text(_DRIVE_017)
    proc = await asyncio.create_subprocess_exec(
        python,
        str(script),
        server.console_url,
        server.ingress_url,
        str(FIXTURES),
        what,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,  # keep this checkout's avatarkit off its sys.path
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out)


async def test_avatarkit_017_client(avatar_server: DevServer, tmp_path: Path) -> None:
    """Whole clips in one message (its quick start), PCM 48 kHz and Ogg Opus; interrupt."""
    python = _python_017()
    if python is None:  # make the peer's virtualenv (pip, from the package index)
        python = str(await asyncio.to_thread(ensure_peer))
    pcm48, ogg24 = await _drive_017(python, avatar_server, tmp_path, "requests")
    assert (pcm48["frames"], pcm48["ends"], pcm48["errors"]) == (341, 1, [])
    assert (ogg24["frames"], ogg24["ends"], ogg24["errors"]) == (341, 1, [])
    async with DevServer(pace="realtime") as realtime:
        (interrupted,) = await _drive_017(python, realtime, tmp_path, "interrupt")
        assert 3 <= interrupted["frames"] < 341 and interrupted["ends"] == 0
        assert not interrupted["errors"]
        await realtime.wait_closed_sessions(1)
        (request,) = realtime.closed_sessions[0].requests.values()
        assert request.reason == "explicit"


_BAD_RATE_PEER = """
import asyncio, json, sys
from datetime import datetime, timedelta, timezone
from avatarkit import new_avatar_session

async def main():
    console, ingress, api_key, app_id, avatar_id = sys.argv[1:6]
    session = new_avatar_session(
        api_key=api_key, app_id=app_id, avatar_id=avatar_id,
        console_endpoint_url=console, ingress_endpoint_url=ingress, sample_rate=11025,
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        transport_frames=lambda data, last: None,
    )
    await session.init()
    try:
        await session.start()
    except Exception as exc:
        code = getattr(exc, "code", None)
        print(json.dumps({"type": type(exc).__name__, "code": getattr(code, "value", str(code)),
                          "text": str(exc)}))
    else:
        print(json.dumps({"started": True}))
    await session.close()

asyncio.run(main())
"""


@pytest.mark.avatar_server(pace="fast")
async def test_unsupported_rate_is_unsupported_sample_rate_for_0_1_7(
    avatar_server: DevServer, tmp_path: Path
) -> None:
    """PROTOCOL.md section 6: code 400 with the text, classified by 0.1.7's text rules."""
    script = tmp_path / "bad_rate.py"
    script.write_text(_BAD_RATE_PEER)
    proc = await asyncio.create_subprocess_exec(
        str(ensure_peer()),
        str(script),
        avatar_server.console_url,
        avatar_server.ingress_url,
        avatar_server.api_key,
        avatar_server.app_id,
        avatar_server.avatar_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["type"] == "AvatarSDKError" and seen["code"] == "unsupportedSampleRate", seen
    assert "unsupported sample rate 11025" in seen["text"] and "400" in seen["text"]
    assert avatar_server.closed_sessions[-1].errors_sent[-1][0] == 400
