"""The SDK over TLS: ``ssl_context`` for the token call and the WebSocket.

A throw-away CA is made at test time (trustme) and the local service serves
HTTPS/WSS with a certificate it issued. With ``ssl_context`` trusting that
CA, a whole session works (token, start, a request with its end frame) on
both transports; without it, the default verified context refuses the
certificate, for the token call and for the WebSocket separately.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import trustme

from avatarkit import (
    AvatarSDKError,
    AvatarSDKErrorCode,
    SessionConfigBuilder,
    SessionPool,
    SessionTokenError,
    new_avatar_session,
)
from avatarkit.devserver import DevServer
from avatarkit.transport import AiohttpTransport, PicowsTransport

# Python 3.10's asyncio sslproto (rewritten in 3.11) leaves a server-side TLS
# transport of the local service unclosed when the service shuts down with a
# kept-alive client connection still open: a ResourceWarning from the
# standard library, not from the SDK (reproduced with the service alone;
# 3.11 and 3.12 run these tests with no filter).
if sys.version_info < (3, 11):
    pytestmark = pytest.mark.filterwarnings(
        "ignore:Exception ignored in.*_SSLProtocolTransport.__del__"
        ":pytest.PytestUnraisableExceptionWarning"
    )

PCM = b"\x01\x00" * 3200  # 0.2 s at 16 kHz


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[DevServer]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    async with DevServer(pace="fast", ssl_context=server_ctx) as server:
        yield server


@pytest.mark.parametrize("transport", [PicowsTransport, AiohttpTransport])
async def test_whole_session_over_tls_with_the_ca(
    tls_server: DevServer, client_ssl: ssl.SSLContext, transport: Any
) -> None:
    ended = asyncio.Event()
    session = new_avatar_session(
        **tls_server.session_kwargs(),
        ssl_context=client_ssl,
        transport_frames=lambda data, last: ended.set() if last else None,
        transport_factory=transport,
    )
    assert tls_server.ingress_url.startswith("wss://")
    await session.init()
    try:
        connection_id = await session.start()
        assert connection_id
        await session.send_audio(PCM, end=True)
        await asyncio.wait_for(ended.wait(), 10)
    finally:
        await session.close()
    assert tls_server.last_session is not None


async def test_compression_transport_uses_the_ssl_context(
    tls_server: DevServer, client_ssl: ssl.SSLContext
) -> None:
    async with new_avatar_session(
        **tls_server.session_kwargs(), ssl_context=client_ssl, websocket_compression=True
    ) as session:
        assert session.connection_id


async def test_token_call_without_the_ca_fails_verification(tls_server: DevServer) -> None:
    session = new_avatar_session(**tls_server.session_kwargs())
    with pytest.raises(SessionTokenError) as info:
        await session.init()
    err = info.value
    assert err.code is AvatarSDKErrorCode.connectionFailed
    assert "certificate verification failed" in str(err)
    assert "ssl_context" in str(err)  # says what to do
    assert tls_server.api_key not in str(err)


@pytest.mark.parametrize("transport", [PicowsTransport, AiohttpTransport])
async def test_websocket_without_the_ca_fails_verification(
    tls_server: DevServer, client_ssl: ssl.SSLContext, transport: Any
) -> None:
    # The token call trusts the CA (a token minted by the TLS service); the
    # WebSocket is then opened with a session whose context does not.
    minted = new_avatar_session(**tls_server.session_kwargs(), ssl_context=client_ssl)
    await minted.init()
    token = minted._token
    assert token
    session = new_avatar_session(**tls_server.session_kwargs(), transport_factory=transport)
    session.use_session_token(token)
    with pytest.raises(AvatarSDKError) as info:
        await session.start()
    err = info.value
    assert err.code is AvatarSDKErrorCode.connectionFailed
    assert err.phase is not None and err.phase.value == "websocket_connect"
    assert "certificate verification failed" in str(err)
    assert token not in str(err)
    await session.close()
    assert tls_server.connection_count == 0


async def test_builder_and_repr(client_ssl: ssl.SSLContext) -> None:
    cfg = SessionConfigBuilder().with_avatar_id("a").with_ssl_context(client_ssl).build()
    assert cfg.ssl_context is client_ssl
    text = repr(cfg)
    assert "ssl_context=<SSLContext>" in text
    assert "0x" not in text.split("ssl_context=")[1].split(",")[0]
    assert "ssl_context" not in repr(SessionConfigBuilder().with_avatar_id("a").build())


def test_ssl_context_must_be_an_sslcontext() -> None:
    session = new_avatar_session(
        avatar_id="a",
        api_key="k",
        app_id="app",
        console_endpoint_url="https://example.invalid/v1/console",
        ingress_endpoint_url="wss://example.invalid/v2/driveningress",
        expire_at=datetime.now(timezone.utc) + timedelta(hours=1),
        ssl_context="ca.pem",
    )
    with pytest.raises(TypeError, match=r"ssl_context must be an ssl\.SSLContext"):
        session.config.validate()


async def test_pool_passes_ssl_context_through(
    tls_server: DevServer, client_ssl: ssl.SSLContext
) -> None:
    async with SessionPool(1, **tls_server.session_kwargs(), ssl_context=client_ssl) as pool:
        frames = await pool.request(PCM, timeout=10)
        assert frames and frames[-1].end
