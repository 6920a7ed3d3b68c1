"""``websocket_compression=True``: the session on aiohttp's WebSocket client with
permessage-deflate, against the local avatar service over loopback (whose
aiohttp server accepts the extension when offered).

The same behaviours as the default picows transport are checked here: frames,
order, interrupt, refused upgrades, one ``on_close``, and nothing left running
when a session is forgotten (close codes and dropped connections run over both
transports in test_session_integration.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap

import pytest

from avatarkit import AvatarSDKError, AvatarSDKErrorCode, SessionConfigBuilder
from avatarkit.devserver import DevServer
from avatarkit.transport import AiohttpTransport, PicowsTransport
from tests._helpers import SPEECH_16K, Recorder, make_session

# The local service negotiates permessage-deflate only when asked to.
pytestmark = pytest.mark.avatar_server(compress=True)


def _transport(session: object) -> object:
    return session._transport  # type: ignore[attr-defined]


async def test_compressed_session_gets_the_same_frames(avatar_server: DevServer) -> None:
    results = []
    for compression in (False, True):
        rec = Recorder()
        async with make_session(avatar_server, rec, websocket_compression=compression) as session:
            transport = _transport(session)
            if compression:
                assert isinstance(transport, AiohttpTransport)
                assert transport.compression_negotiated
            else:
                assert isinstance(transport, PicowsTransport)
            await session.send_audio(SPEECH_16K[:32000], end=True)
            await asyncio.wait_for(rec.ended.wait(), 10)
        assert rec.closes == 1 and not rec.errors
        # Payloads only: the envelope carries per-connection ids.
        results.append([a.payload for a in rec.animations])
    assert results[0] == results[1]
    assert len(results[0]) == 25  # 1 s of audio at 25 frames/s


async def test_uncompressed_aiohttp_transport(avatar_server: DevServer) -> None:
    rec = Recorder()
    session = make_session(avatar_server, rec)
    session._transport_factory = lambda: AiohttpTransport(compress=False)  # type: ignore[attr-defined]
    async with session:
        assert not _transport(session).compression_negotiated  # type: ignore[attr-defined]
        req = await session.send_audio(SPEECH_16K[:6400], end=True)
        await asyncio.wait_for(rec.ended.wait(), 10)
    assert rec.frames and rec.frames[-1][1] is True
    assert {a.req_id for a in rec.animations} == {req}


async def test_chunks_queued_together_keep_their_order(avatar_server: DevServer) -> None:
    # The writer task sends what send() queued, in order: many chunks started
    # at once give the same animation as the whole clip in one message
    # (the local service's analysis does not depend on the chunking).
    clip = SPEECH_16K[:32000]
    results = []
    for compression, step in ((False, len(clip)), (True, 640)):
        rec = Recorder()
        async with make_session(avatar_server, rec, websocket_compression=compression) as session:
            chunks = [clip[i : i + step] for i in range(0, len(clip), step)]
            await asyncio.gather(*(session.send_audio(c) for c in chunks))
            await session.send_audio(b"", end=True)
            await asyncio.wait_for(rec.ended.wait(), 10)
        results.append([a.payload for a in rec.animations])
    assert len(results[1]) == 25
    assert results[0] == results[1]


async def test_interrupt(avatar_server: DevServer) -> None:
    rec = Recorder()
    async with make_session(avatar_server, rec, websocket_compression=True) as session:
        req = await session.send_audio(SPEECH_16K[:32000])
        await asyncio.sleep(0.05)
        assert await session.interrupt() == req
        for _ in range(100):
            if any(st.state.value == "interrupted" for st in rec.states):
                break
            await asyncio.sleep(0.01)
    assert rec.closes == 1 and not rec.errors
    assert any(st.state.value == "interrupted" and st.req_id == req for st in rec.states)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, AvatarSDKErrorCode.sessionTokenExpired),  # what a bare 401 reads as
        (402, AvatarSDKErrorCode.billingRequired),
        (503, AvatarSDKErrorCode.serverError),
    ],
)
async def test_refused_upgrade_is_classified_by_status(
    avatar_server: DevServer, status: int, code: AvatarSDKErrorCode
) -> None:
    body = json.dumps({"errors": [{"status": str(status), "title": "Rejected"}]})
    avatar_server.faults.reject_upgrade(status, body)
    session = make_session(avatar_server, websocket_compression=True)
    await session.init()
    with pytest.raises(AvatarSDKError) as info:
        await session.start()
    await session.close()
    assert info.value.code is code
    assert info.value.http_status == status
    assert info.value.phase == "websocket_connect"


async def test_unreachable_ingress_is_a_connect_error(avatar_server: DevServer) -> None:
    session = make_session(
        avatar_server,
        websocket_compression=True,
        ingress_endpoint_url="ws://127.0.0.1:9/v2/driveningress",
    )
    await session.init()
    with pytest.raises(AvatarSDKError) as info:
        await session.start()
    await session.close()
    assert info.value.code is AvatarSDKErrorCode.connectionFailed
    assert "cannot connect" in str(info.value)


async def test_reader_cancelled_first_drops_the_connection(avatar_server: DevServer) -> None:
    # At loop shutdown asyncio cancels every task in no set order; when the
    # reader goes first, the connection must still be closed (no "Unclosed
    # response" later) and the session must end without an error.
    rec = Recorder()
    session = make_session(avatar_server, rec, websocket_compression=True)
    await session.init()
    await session.start()
    transport = _transport(session)
    reader = transport._reader  # type: ignore[attr-defined]
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    assert transport._ws._response.closed  # type: ignore[attr-defined]
    assert rec.closes == 1 and not rec.errors
    await session.close()
    assert rec.closes == 1


async def test_shared_aiohttp_client_has_no_connection_limit_or_cookie_jar() -> None:
    # Each WebSocket holds its connection for the session's life: aiohttp's
    # default limit (100) would make the 101st session wait; a shared cookie
    # jar would carry one session's cookies into another's upgrade.
    import aiohttp

    from avatarkit import _loopguard

    client = _loopguard.ws_client()
    assert client.connector is not None and client.connector.limit == 0
    assert isinstance(client.cookie_jar, aiohttp.DummyCookieJar)
    assert _loopguard.ws_client() is client
    await _loopguard.aclose()
    assert client.closed


def test_connect_error_text_is_redacted() -> None:
    from avatarkit.transport import _redact

    text = "Cannot connect to ws://h/v2/driveningress/websocket?appId=a&sessionKey=tok-123&id=x"
    assert "tok-123" not in _redact(text)
    assert "sessionKey=***" in _redact(text)
    assert "tok-9" not in _redact("X-Session-Key: tok-9")


def test_builder_sets_the_option() -> None:
    cfg = SessionConfigBuilder().with_websocket_compression().build()
    assert cfg.websocket_compression is True
    assert SessionConfigBuilder().build().websocket_compression is False


async def test_forgotten_compressed_session_leaves_nothing_behind(
    avatar_server: DevServer,
) -> None:
    # A separate interpreter with warnings as errors: the loop ends with the
    # session still open; the SDK must drop it without ResourceWarnings or
    # "Task was destroyed but it is pending".
    code = textwrap.dedent(
        f"""
        import asyncio, warnings
        from datetime import datetime, timedelta, timezone
        import avatarkit
        warnings.simplefilter("error")
        async def main():
            s = avatarkit.new_avatar_session(
                api_key={avatar_server.api_key!r}, app_id={avatar_server.app_id!r},
                avatar_id={avatar_server.avatar_id!r},
                console_endpoint_url={avatar_server.console_url!r},
                ingress_endpoint_url={avatar_server.ingress_url!r},
                expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
                websocket_compression=True,
            )
            await s.init()
            await s.start()
            await s.send_audio(b"\\x00\\x00" * 640)
        asyncio.run(main())
        print("done")
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", "-c", code,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    stderr = err.decode()
    assert proc.returncode == 0, stderr
    assert out.decode().strip() == "done"
    for text in (
        "Task was destroyed",
        "Unclosed",
        "ResourceWarning",
        "never awaited",
        "Exception ignored",
        "avatarkit:",  # no error or warning logged for the shutdown
    ):
        assert text not in stderr, stderr
