"""The local service over TLS: ``DevServer(ssl_context=...)`` and ``avatarkit serve --certfile``.

A throw-away CA is made at test time (trustme): with it an aiohttp client
reaches the token route and completes the WebSocket upgrade on the same port;
without it, certificate verification fails.
"""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from avatarkit.devserver import DevServer
from avatarkit.devserver._rawclient import RawClient, fetch_token


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture
async def trusting_http(ca: trustme.CA) -> AsyncIterator[aiohttp.ClientSession]:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as http:
        yield http


async def _token_and_upgrade(http: aiohttp.ClientSession, api_root: str, ingress: str) -> None:
    token = await fetch_token(http, api_root)
    assert token
    client = await RawClient.connect(http, ingress, token=token)
    try:
        await client.configure()
        await client.audio("r1", b"\0\0" * 1600, end=True)
        assert (await client.collect("r1")).ends == 1
    finally:
        await client.close()


async def test_devserver_serves_https_and_wss_on_one_port(
    server_ssl: ssl.SSLContext, trusting_http: aiohttp.ClientSession
) -> None:
    async with DevServer(pace="fast", ssl_context=server_ssl) as server:
        assert server.api_root == f"https://127.0.0.1:{server.port}"
        assert server.console_url.startswith("https://")
        assert server.ingress_url == f"wss://127.0.0.1:{server.port}/v2/driveningress"
        assert server.websocket_url.startswith("wss://")
        assert server.session_kwargs()["ingress_endpoint_url"].startswith("wss://")
        await _token_and_upgrade(trusting_http, server.api_root, server.ingress_url)
        assert server.last_session is not None  # the session went over WSS


async def test_without_the_ca_verification_fails(server_ssl: ssl.SSLContext) -> None:
    async with (
        DevServer(pace="fast", ssl_context=server_ssl) as server,
        aiohttp.ClientSession() as http,  # default trust store: does not know the test CA
    ):
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as info:
            await fetch_token(http, server.api_root)
        assert isinstance(info.value.certificate_error, ssl.SSLCertVerificationError)
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.ws_connect(server.websocket_url)


async def test_plain_http_client_cannot_talk_to_the_tls_port(
    server_ssl: ssl.SSLContext,
) -> None:
    async with (
        DevServer(pace="fast", ssl_context=server_ssl) as server,
        aiohttp.ClientSession() as http,
    ):
        plain = server.api_root.replace("https://", "http://")
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(fetch_token(http, plain), 10)


def test_ssl_context_must_be_an_sslcontext() -> None:
    with pytest.raises(TypeError, match=r"ssl_context must be an ssl\.SSLContext"):
        DevServer(ssl_context="cert.pem")  # type: ignore[arg-type]


async def test_without_ssl_context_urls_stay_plain() -> None:
    async with DevServer(pace="fast") as server:
        assert server.ssl_context is None
        assert server.api_root.startswith("http://")
        assert server.ingress_url.startswith("ws://")


# -- avatarkit serve --certfile/--keyfile -----------------------------------------


async def _serve(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "avatarkit.devserver",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        if not line:
            err = await asyncio.wait_for(proc.stderr.read(), 20)
            await proc.wait()
            return proc, "".join(lines) + err.decode()
        lines.append(line)
        if line.startswith("Ctrl+C"):
            return proc, "".join(lines)


async def test_serve_with_certfile_and_keyfile(
    ca: trustme.CA, tmp_path: Path, trusting_http: aiohttp.ClientSession
) -> None:
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    proc, banner = await _serve(
        "--port", "0", "--pace", "fast", "--certfile", str(certfile), "--keyfile", str(keyfile)
    )
    try:
        console = re.search(r"console URL:\s+(\S+)", banner)
        ingress = re.search(r"ingress URL:\s+(\S+)", banner)
        assert console and ingress, banner
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+/v1/console", console.group(1))
        assert re.fullmatch(r"wss://127\.0\.0\.1:\d+/v2/driveningress", ingress.group(1))
        root = console.group(1).removesuffix("/v1/console")
        await _token_and_upgrade(trusting_http, root, ingress.group(1))
        assert "PRIVATE KEY" not in banner
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d: ["--keyfile", str(d / "key.pem")], "--keyfile needs --certfile"),
        (lambda d: ["--certfile", str(d / "missing.pem")], "cannot load --certfile"),
        (lambda d: ["--certfile", str(d / "garbage.pem")], "cannot load --certfile"),
    ],
)
async def test_serve_bad_certificate_options_exit_2(
    tmp_path: Path, make_args: object, message: str
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    (tmp_path / "key.pem").write_text("not a key\n")
    args = make_args(tmp_path)  # type: ignore[operator]
    proc, output = await _serve("--port", "0", *args)
    if proc.returncode is None:  # it started: not what this test expects
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2, output
    assert message in output
