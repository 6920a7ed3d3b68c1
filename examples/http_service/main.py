"""An aiohttp web service that animates speech for its callers.

    python examples/http_service/main.py [--host 127.0.0.1] [--port 8000] [--fast]

    curl 'http://127.0.0.1:8000/animate?sample_rate=24000'
    curl -X POST 'http://127.0.0.1:8000/animate?sample_rate=16000' \\
         --data-binary @tests/fixtures/speech_16000.pcm -H 'Content-Type: application/octet-stream'
    curl -X POST http://127.0.0.1:8000/animate -H 'Content-Type: application/json' \\
         -d '{"sample_rate": 16000, "audio": "<base64 s16le PCM>"}'

``GET /animate?sample_rate=N`` animates the speech clip bundled with avatarkit,
resampled to N Hz; ``POST`` animates the mono s16le PCM in the body (raw, or
base64 in a JSON ``audio`` field). A POST with no audio or with JSON that does
not parse is answered 400 with ``{"error": "badRequest", "message": ...}``. N is
one of the PCM rates the service takes (8000 ... 48000). The answer::

    {"sample_rate": 24000, "duration_s": 13.61, "req_id": "...",
     "audio": "<base64 of the PCM that was sent>",
     "frames": 341,
     "messages": ["<base64 of one serialized animation Message>", ...]}

Each request opens its own avatar session (the sample rate is fixed per
session), sends the audio, collects every animation ``Message`` through the
``transport_frames`` callback until the one marked last, and closes.

Runs against the hosted service when AVATARKIT_API_KEY, AVATARKIT_APP_ID,
AVATARKIT_AVATAR_ID, AVATARKIT_CONSOLE_ENDPOINT and AVATARKIT_INGRESS_ENDPOINT
are all set; otherwise the app starts a local avatar service with itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from typing import Any

from aiohttp import web

from avatarkit import AvatarSDKError, new_avatar_session
from avatarkit.config import PCM_SAMPLE_RATES

ENV = {
    "api_key": "AVATARKIT_API_KEY",
    "app_id": "AVATARKIT_APP_ID",
    "avatar_id": "AVATARKIT_AVATAR_ID",
    "console_endpoint_url": "AVATARKIT_CONSOLE_ENDPOINT",
    "ingress_endpoint_url": "AVATARKIT_INGRESS_ENDPOINT",
}
CREDENTIALS = web.AppKey("credentials", dict)
MAX_AUDIO_S = 120
CHUNK_S = 1.0


def bundled_clip(sample_rate: int) -> bytes:
    """The avatarkit speech clip (16 kHz) as s16le PCM at ``sample_rate``."""
    import numpy as np

    from avatarkit.audio.files import resample

    pcm = (files("avatarkit") / "data" / "speech_16000.pcm").read_bytes()
    samples = np.frombuffer(pcm, dtype="<i2")
    return resample(samples, 16000, sample_rate).astype("<i2").tobytes()


async def animate(credentials: dict[str, str], pcm: bytes, sample_rate: int) -> dict[str, Any]:
    """Send ``pcm`` through a new session; return the request id and the messages."""
    messages: list[bytes] = []
    done = asyncio.Event()
    failure: list[Exception] = []

    def on_frames(message: bytes, is_last: bool) -> None:
        messages.append(message)
        if is_last:
            done.set()

    def on_error(error: Exception) -> None:
        failure.append(error)
        done.set()

    session = new_avatar_session(
        **credentials,
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=10),
        sample_rate=sample_rate,
        transport_frames=on_frames,
        on_error=on_error,
        on_close=done.set,  # ends the wait if the server closes early
    )
    chunk = int(sample_rate * CHUNK_S) * 2
    async with session:
        req_id = ""
        for offset in range(0, len(pcm), chunk):
            last = offset + chunk >= len(pcm)
            req_id = await session.send_audio(pcm[offset : offset + chunk], end=last)
        duration = len(pcm) / 2 / sample_rate
        await asyncio.wait_for(done.wait(), timeout=2 * duration + 10)
    if failure:
        raise failure[0]
    return {"req_id": req_id, "messages": messages}


def _bad_request(message: str) -> web.HTTPBadRequest:
    body = json.dumps({"error": "badRequest", "message": message})
    return web.HTTPBadRequest(text=body, content_type="application/json")


def _sample_rate(value: Any) -> int:
    try:
        rate = int(value)
    except (TypeError, ValueError):
        raise _bad_request(f"sample_rate must be one of {list(PCM_SAMPLE_RATES)}") from None
    if rate not in PCM_SAMPLE_RATES:
        raise _bad_request(f"sample_rate must be one of {list(PCM_SAMPLE_RATES)}")
    return rate


async def handle_animate(request: web.Request) -> web.Response:
    """GET/POST /animate: the audio and the base64 animation messages for it."""
    query_rate = request.query.get("sample_rate")
    pcm = b""
    if request.method == "POST" and request.content_type == "application/json":
        try:
            body = json.loads(await request.text())
        except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
            raise _bad_request("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _bad_request("the JSON body must be an object")
        rate = _sample_rate(body.get("sample_rate", query_rate))
        try:
            pcm = base64.b64decode(body.get("audio") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise _bad_request("audio must be base64 of s16le PCM") from None
        if not pcm:
            raise _bad_request('no audio: put base64 s16le PCM in "audio"')
    elif request.method == "POST":
        rate = _sample_rate(query_rate)
        pcm = await request.read()
        if not pcm:
            raise _bad_request("no audio: the body is empty (GET /animate for the bundled clip)")
    else:  # GET: the bundled clip
        rate = _sample_rate(query_rate)
        pcm = bundled_clip(rate)
    if len(pcm) % 2:
        raise _bad_request("PCM must hold whole 16-bit samples (odd byte count)")
    if len(pcm) > MAX_AUDIO_S * rate * 2:
        raise _bad_request(f"at most {MAX_AUDIO_S} s of audio per request")
    try:
        result = await animate(request.app[CREDENTIALS], pcm, rate)
    except AvatarSDKError as err:
        return web.json_response({"error": err.code.value, "message": err.message}, status=502)
    except asyncio.TimeoutError:
        return web.json_response(
            {"error": "timeout", "message": "the avatar did not finish in time"}, status=504
        )
    return web.json_response(
        {
            "sample_rate": rate,
            "duration_s": round(len(pcm) / 2 / rate, 3),
            "req_id": result["req_id"],
            "audio": base64.b64encode(pcm).decode("ascii"),
            "frames": len(result["messages"]),
            "messages": [base64.b64encode(m).decode("ascii") for m in result["messages"]],
        }
    )


def create_app(*, pace: str = "realtime") -> web.Application:
    """The web app; it starts a local avatar service (at ``pace``) unless AVATARKIT_* is set."""
    app = web.Application(client_max_size=MAX_AUDIO_S * 48000 * 2 * 2)

    async def avatar_service(app: web.Application) -> AsyncIterator[None]:
        if all(os.environ.get(name) for name in ENV.values()):
            app[CREDENTIALS] = {key: os.environ[name] for key, name in ENV.items()}
            yield
            return
        from avatarkit.devserver import DevServer

        async with DevServer(host="127.0.0.1", port=0, pace=pace) as server:
            app[CREDENTIALS] = {
                "api_key": server.api_key,
                "app_id": server.app_id,
                "avatar_id": server.avatar_id,
                "console_endpoint_url": server.console_url,
                "ingress_endpoint_url": server.ingress_url,
            }
            yield

    app.cleanup_ctx.append(avatar_service)
    app.router.add_get("/animate", handle_animate)
    app.router.add_post("/animate", handle_animate)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="animate speech over HTTP")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fast", action="store_true", help="local service answers unpaced")
    args = parser.parse_args()
    app = create_app(pace="fast" if args.fast else "realtime")
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
