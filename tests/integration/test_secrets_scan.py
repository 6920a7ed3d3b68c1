"""No secret leaks on any public path (issue 14).

Every public path runs at DEBUG logging (every logger, the local service's
in-process log included) with distinctive secrets: the API key (right and
wrong), the session tokens (the one ``init()`` got, one fetched by hand, a
refused one), a LiveKit token (a JWT with a distinctive signature) and
secret, an Agora token. Collected: the log (formatted records with
tracebacks, and each record's fields), ``repr``/``str`` of every public
object (configs, builder, session, request, pool, metrics events, errors),
exception texts (``str``, ``repr``, ``args``, the formatted traceback with
chained causes), warnings, the CLI's stdout/stderr (a subprocess, with
``--debug``), the sessions API and the viewer pages. Each secret and its
obvious transforms (base64, base64url, URL-quoted, hex) must appear nowhere.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import sys
import time
import traceback
import warnings
import wave
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from aiohttp import web

from avatarkit import (
    AgoraEgressConfig,
    AvatarSDKError,
    AvatarSession,
    LiveKitEgressConfig,
    SessionConfig,
    SessionConfigBuilder,
    SessionPool,
    new_avatar_session,
)
from avatarkit.devserver import DevServer
from avatarkit.devserver._rawclient import fetch_token
from tests._helpers import ROOT, speech_pcm

API_KEY = "sk-SCAN-apikey-4f9c2b7d1e"
WRONG_KEY = "sk-SCAN-wrongkey-8a1d3c55"
BAD_TOKEN = "st-SCAN-badtoken-77e1a0c9"
LK_KEY = "lk-SCAN-apikey-c2d4e6f8"
LK_SECRET = "lk-SCAN-secret-3b8e5f0a"
LK_SIGNATURE = "lkSCANsignature9d8c7b6a"
AGORA_TOKEN = "ag-SCAN-token-91f0d2e4"
APP_ID = "scan-app"
ROOM = "scan-room"


def _jwt(claims: dict[str, object]) -> str:
    def enc(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc(claims)}.{LK_SIGNATURE}"


LK_TOKEN = _jwt({"video": {"room": ROOM, "roomJoin": True}, "exp": time.time() + 3600})


def transforms(secret: str) -> set[str]:
    """``secret`` and the forms a careless log line would carry it in."""
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), binascii.hexlify(raw).decode()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode())
        forms.add(encode(raw).decode().rstrip("="))
    return forms


def token_parts(token: str) -> list[str]:
    """A token and, for ``v1.payload.signature`` / JWT tokens, its signature alone."""
    return [token, token.rsplit(".", 1)[-1]] if "." in token else [token]


class Evidence:
    """Every text the public paths produced, to scan at the end."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def text(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def obj(self, where: str, obj: object) -> None:
        self.text(f"{where} repr", repr(obj))
        self.text(f"{where} str", str(obj))

    def exc(self, where: str, exc: BaseException) -> None:
        """``str``, ``repr``, ``args`` and the traceback of ``exc`` and its chain."""
        self.text(f"{where} traceback", "".join(traceback.format_exception(exc)))
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            self.obj(f"{where} {type(current).__name__}", current)
            self.text(f"{where} args", repr(current.args))
            self.text(f"{where} vars", repr(getattr(current, "__dict__", {})))
            current = current.__cause__ or current.__context__

    def leaks(self, secrets: Iterable[str]) -> list[str]:
        found = []
        for secret in secrets:
            for form in transforms(secret):
                found += [f"{secret!r} as {form!r} in {w}" for w, t in self.texts if form in t]
        return found


@pytest.fixture
async def scan_server() -> Any:
    async with DevServer(
        pace="fast", api_keys={API_KEY: APP_ID}, max_request_audio_bytes=64_000
    ) as server:
        yield server


def kwargs(server: DevServer, **overrides: Any) -> dict[str, Any]:
    return server.session_kwargs(**{"api_key": API_KEY, "app_id": APP_ID, **overrides})


async def run_session(ev: Evidence, server: DevServer, name: str, **overrides: Any) -> list[str]:
    """One session through init/start/send/stream/close; returns its session token."""
    events: list[object] = []
    session = new_avatar_session(
        **kwargs(server, **overrides),
        on_metrics=events.append,
        on_error=lambda err: ev.exc(f"{name} on_error", err),
    )
    ev.obj(f"{name} session before init", session)
    await session.init()
    token = session._token  # what init() got: read only to know what to scan for
    assert token is not None
    await session.start()
    ev.obj(f"{name} session open", session)
    if overrides.get("livekit_egress") is None and overrides.get("agora_egress") is None:
        request = session.stream(speech_pcm(16000, 0.5))
        ev.obj(f"{name} request", request)
        ev.obj(f"{name} summary", await asyncio.wait_for(request.done(), 15))
    else:
        await session.send_audio(speech_pcm(16000, 0.2), end=True)
    await session.close()
    ev.obj(f"{name} session closed", session)
    ev.obj(f"{name} config", session.config)
    for event in events:
        ev.obj(f"{name} metrics", event)
    return token_parts(token)


async def expect_error(ev: Evidence, where: str, session: AvatarSession, step: str) -> None:
    with pytest.raises(AvatarSDKError) as info:
        if step in ("init", "both"):
            await session.init()
        if step in ("start", "both"):
            await session.start()
    ev.exc(where, info.value)
    ev.obj(f"{where} session", session)
    await session.close()


def short_wav(tmp: Path) -> Path:
    """Half a second of speech as WAV (the scan server refuses requests over 64 kB)."""
    path = tmp / "short.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(speech_pcm(16000, 0.5))
    return path


async def run_cli(ev: Evidence, server: DevServer, where: str, api_key: str, tmp: Path) -> int:
    """``avatarkit --debug send`` as a subprocess; its stdout and stderr."""
    env = {
        **os.environ,
        "AVATARKIT_API_KEY": api_key,
        "AVATARKIT_APP_ID": APP_ID,
        "AVATARKIT_AVATAR_ID": server.avatar_id,
        "AVATARKIT_CONSOLE_ENDPOINT": server.console_url,
        "AVATARKIT_INGRESS_ENDPOINT": server.ingress_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "avatarkit",
        "--debug",
        "send",
        str(short_wav(tmp)),
        "--out",
        str(tmp / f"{where}.jsonl"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    ev.text(f"{where} stdout", out.decode("utf-8", "replace"))
    ev.text(f"{where} stderr", err.decode("utf-8", "replace"))
    assert proc.returncode is not None
    if proc.returncode not in (0, 1):
        raise AssertionError(f"{where}: exit {proc.returncode}: {err.decode()[-2000:]}")
    return proc.returncode


async def test_no_secret_in_logs_reprs_errors_cli_or_service_pages(
    scan_server: DevServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    ev = Evidence()
    server = scan_server
    secrets = [API_KEY, WRONG_KEY, BAD_TOKEN, LK_KEY, LK_SECRET, LK_SIGNATURE, AGORA_TOKEN]
    secrets += token_parts(LK_TOKEN)

    # Configs, the builder and egress configs, before anything runs.
    livekit = LiveKitEgressConfig(
        url="wss://livekit.example.com", api_token=LK_TOKEN, room_name=ROOM, publisher_id="p"
    )
    agora = AgoraEgressConfig(channel_name="scan-channel", token=AGORA_TOKEN, uid=7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        legacy = LiveKitEgressConfig(
            url="wss://livekit.example.com", api_key=LK_KEY, api_secret=LK_SECRET, room_name=ROOM
        )
    for warning in caught:
        ev.text("egress warning", str(warning.message))
    for name, obj in (("livekit", livekit), ("legacy", legacy), ("agora", agora)):
        ev.obj(name, obj)
    ev.obj("config", SessionConfig(**kwargs(server, livekit_egress=livekit)))
    ev.obj(
        "builder",
        SessionConfigBuilder().with_api_key(API_KEY).with_agora_egress(agora).build(),
    )

    # Sessions that work: plain (stream()), LiveKit and Agora egress.
    secrets += await run_session(ev, server, "plain")
    secrets += await run_session(ev, server, "livekit", livekit_egress=livekit)
    secrets += await run_session(ev, server, "agora", agora_egress=agora)
    # Query auth: the token travels in the upgrade URL's query.
    secrets += await run_session(ev, server, "query-auth", use_query_auth=True)
    # The aiohttp transport (permessage-deflate), with query auth too.
    secrets += await run_session(
        ev, server, "aiohttp", websocket_compression=True, use_query_auth=True
    )
    # A session token the app minted itself.
    minted = await fetch_token(http, server.api_root, api_key=API_KEY)
    secrets += token_parts(minted)
    session = new_avatar_session(**kwargs(server))
    session.use_session_token(minted)
    ev.obj("minted session", session)
    await session.start()
    await session.send_audio(speech_pcm(16000, 0.2), end=True)
    await session.close()

    # Errors of each phase.
    await expect_error(ev, "token", new_avatar_session(**kwargs(server, api_key=WRONG_KEY)), "init")
    refused = new_avatar_session(**kwargs(server))
    refused.use_session_token(BAD_TOKEN)
    await expect_error(ev, "connect", refused, "start")
    refused_query = new_avatar_session(**kwargs(server, use_query_auth=True))
    refused_query.use_session_token(BAD_TOKEN)
    await expect_error(ev, "connect (query auth)", refused_query, "start")
    refused_aiohttp = new_avatar_session(
        **kwargs(server, use_query_auth=True, websocket_compression=True)
    )
    refused_aiohttp.use_session_token(BAD_TOKEN)
    await expect_error(ev, "connect (aiohttp, query auth)", refused_aiohttp, "start")
    await expect_error(
        ev, "handshake", new_avatar_session(**kwargs(server, sample_rate=11025)), "both"
    )
    runtime_errors: list[AvatarSDKError] = []
    session = new_avatar_session(**kwargs(server), on_error=runtime_errors.append)
    await session.init()
    secrets += token_parts(session._token or "")
    await session.start()
    await session.send_audio(speech_pcm(16000, 3.0), end=True)  # over the 64 kB request limit
    for _ in range(250):
        if runtime_errors:
            break
        await asyncio.sleep(0.02)
    assert runtime_errors, "no runtime error"
    await session.close()
    for err in runtime_errors:
        ev.exc("runtime", err)

    # The pool: a working one, and one whose API key is refused.
    async with SessionPool(1, **kwargs(server)) as pool:
        ev.obj("pool", pool)
        frames = await pool.request(speech_pcm(16000, 0.3), timeout=15)
        assert frames
        ev.obj("pool stats", pool.stats)
    ev.obj("pool closed", pool)
    bad_pool = SessionPool(1, **kwargs(server, api_key=WRONG_KEY))
    with pytest.raises(AvatarSDKError) as info:
        await asyncio.wait_for(bad_pool.start(), 15)
    ev.exc("pool failure", info.value)
    ev.obj("failed pool", bad_pool)
    await bad_pool.aclose()

    # The CLI, as a user runs it (with --debug: tracebacks and the SDK's debug log).
    assert await run_cli(ev, server, "cli", API_KEY, tmp_path) == 0, ev.texts[-1][1][-2000:]
    assert await run_cli(ev, server, "cli-refused", WRONG_KEY, tmp_path) != 0

    # The local service's sessions API and viewer pages.
    async with http.get(server.api_root + "/v1/dev/sessions") as resp:
        assert resp.status == 200
        listing = await resp.text()
    ev.text("sessions API", listing)
    ids = [s["connection_id"] for s in json.loads(listing)["sessions"]]
    assert len(ids) >= 4
    for path in ["/", *(f"/sessions/{cid}" for cid in ids)]:
        async with http.get(server.api_root + path) as resp:
            assert resp.status == 200, path
            ev.text(f"viewer {path}", await resp.text())
    for state in [*server.sessions.values(), *server.closed_sessions]:
        ev.obj("service session state", state)

    # Everything logged, with each record's fields (args, extras).
    ev.text("log", caplog.text)
    for record in caplog.records:
        ev.text(f"log record {record.name}", repr(vars(record)))
    assert any(r.name.startswith("avatarkit.devserver") for r in caplog.records)
    assert logging.getLogger("avatarkit.session").isEnabledFor(logging.DEBUG)
    assert len(caplog.records) > 30

    leaks = ev.leaks(dict.fromkeys(s for s in secrets if s))
    assert not leaks, "\n".join(leaks[:20])


@contextlib.asynccontextmanager
async def hostile_server(*routes: tuple[str, Any]) -> AsyncIterator[int]:
    """A raw aiohttp server on loopback playing a hostile service: ``(GET or
    POST path, handler)`` pairs; yields its port."""
    app = web.Application()
    for path, handler in routes:
        if path.startswith("POST "):
            app.router.add_post(path[5:], handler)
        else:
            app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def scan_our_log(ev: Evidence, caplog: pytest.LogCaptureFixture) -> None:
    """Hand every log record but the raw server's own access log (which logs
    the URLs it was sent, and is not ours) to the scan."""
    for record in caplog.records:
        if not record.name.startswith("aiohttp.access"):
            ev.text(f"log record {record.name}", f"{record.getMessage()} {vars(record)!r}")


async def _hostile_upgrade(request: web.Request) -> web.StreamResponse:
    """Upgrade answers no real service gives: a redirect, a dropped connection,
    a plain 200 page, a 500 that echoes the request URL back."""
    kind = request.match_info["kind"]
    if kind == "redirect":
        raise web.HTTPFound("http://127.0.0.1:9/elsewhere")
    if kind == "drop":
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)
    if kind == "page":
        return web.Response(text="<html>not a websocket</html>", content_type="text/html")
    return web.Response(status=500, text=f"internal error for {request.url}")


async def _echoing_console(request: web.Request) -> web.Response:
    """A console whose error page echoes the request's headers (the API key)."""
    detail = f"bad request: {dict(request.headers)!r}"
    return web.json_response({"errors": [{"status": "401", "detail": detail}]}, status=401)


async def test_no_secret_in_errors_of_hostile_upgrades_with_query_auth(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Query auth puts the session token in the upgrade URL: whatever the
    upgrade meets (on either transport), even an error page that echoes the
    URL, the error and the log do not carry it; nor does a token-call error
    whose page echoes the API key header. A raw aiohttp server here plays the
    hostile service and console."""
    caplog.set_level(logging.DEBUG)
    ev = Evidence()
    async with hostile_server(
        ("/{kind}/websocket", _hostile_upgrade),
        ("POST /v1/console/session-tokens", _echoing_console),
    ) as port:
        for kind in ("redirect", "drop", "page", "echo"):
            for compression in (False, True):
                session = new_avatar_session(
                    api_key=API_KEY,
                    app_id=APP_ID,
                    avatar_id="scan-avatar",
                    console_endpoint_url=f"http://127.0.0.1:{port}/v1/console",
                    ingress_endpoint_url=f"http://127.0.0.1:{port}/{kind}",
                    use_query_auth=True,
                    websocket_compression=compression,
                    open_timeout=5,
                )
                session.use_session_token(BAD_TOKEN)
                await expect_error(ev, f"{kind} (compression={compression})", session, "start")
        session = new_avatar_session(
            api_key=API_KEY,
            app_id=APP_ID,
            avatar_id="scan-avatar",
            console_endpoint_url=f"http://127.0.0.1:{port}/v1/console",
            ingress_endpoint_url=f"http://127.0.0.1:{port}/echo",
            expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        )
        await expect_error(ev, "echoing console", session, "init")
    scan_our_log(ev, caplog)
    leaks = ev.leaks([BAD_TOKEN, API_KEY])
    assert not leaks, "\n".join(leaks[:20])


async def _echoing_ingress(request: web.Request) -> web.WebSocketResponse:
    """Refuses the configure with a ServerError, and closes with a reason, that
    quote the session key it was sent."""
    from avatarkit.protocol import encode_server_error

    token = request.headers.get("X-Session-Key", "")
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.receive()  # the configure
    text = f"session key {token} is not allowed here"
    if request.match_info["kind"] == "error":
        await ws.send_bytes(encode_server_error("", "", 3, text))
    await ws.close(code=1008, message=text[:100].encode())
    return ws


async def test_no_secret_in_handshake_errors_that_quote_the_session_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A service (here a raw aiohttp WebSocket server) whose ServerError text or
    close reason quotes the session key: the error ``start()`` raises and the
    log carry it masked. (After the handshake the session holds no copy of the
    token to mask with: see the README.)"""
    caplog.set_level(logging.DEBUG)
    ev = Evidence()
    async with hostile_server(("/{kind}/websocket", _echoing_ingress)) as port:
        for kind in ("error", "close"):
            session = new_avatar_session(
                api_key=API_KEY,
                app_id=APP_ID,
                avatar_id="scan-avatar",
                console_endpoint_url=f"http://127.0.0.1:{port}/v1/console",
                ingress_endpoint_url=f"http://127.0.0.1:{port}/{kind}",
                expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
            )
            session.use_session_token(BAD_TOKEN)
            await expect_error(ev, kind, session, "start")
    assert any("is not allowed here" in text for _, text in ev.texts)
    scan_our_log(ev, caplog)
    leaks = ev.leaks([BAD_TOKEN])
    assert not leaks, "\n".join(leaks[:20])


def test_the_scan_finds_each_transform_of_a_secret() -> None:
    """The scanner itself: a secret in any of its transforms is a leak."""
    for form in transforms(API_KEY):
        probe = Evidence()
        probe.obj("probe", ValueError(f"oops {form} oops"))
        assert probe.leaks([API_KEY]), form
    chained = Evidence()
    try:
        try:
            raise KeyError(quote(LK_SECRET, safe=""))
        except KeyError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as exc:
        chained.exc("chain", exc)
    assert chained.leaks([LK_SECRET])
    assert not Evidence().leaks([API_KEY])
