"""What a connected session keeps in memory, over real sockets to the local service.

A voice-agent process may hold a thousand sessions, so per-session state is
kept small on purpose (BENCHMARKS.md, "Memory per session"): no instance
dicts, picows's copies of the upgrade request and response emptied once the
handshake is done (they also held the session token), and on uvloop the
loop's own socket transport rather than aiofastnet's larger one.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import pytest

import avatarkit
from avatarkit import AvatarSession, SessionConfig, new_avatar_session
from avatarkit.devserver import DevServer


def make(server: DevServer, **overrides: Any) -> AvatarSession:
    return new_avatar_session(**server.session_kwargs(**overrides))


def _picows_transport(session: AvatarSession) -> Any:
    return session._transport._ws  # type: ignore[union-attr]


async def test_upgrade_messages_are_emptied_after_the_handshake(
    avatar_server: DevServer,
) -> None:
    session = make(avatar_server)
    await session.init()
    token = session._token
    assert token
    async with session:
        ws = _picows_transport(session)
        assert ws.request is not None and ws.response is not None
        assert len(ws.request.headers) == 0
        assert len(ws.response.headers) == 0
        # The session keeps no copy of the token once connected.
        assert session._token is None
        # The connection still works after that.
        await session.send_audio(b"\x00\x00" * 640, end=True)


async def test_query_auth_token_is_not_kept_in_the_request_path(
    avatar_server: DevServer,
) -> None:
    session = make(avatar_server, use_query_auth=True)
    await session.init()
    token = session._token
    assert token
    async with session:
        ws = _picows_transport(session)
        assert token.encode() not in ws.request.path
        assert ws.request.path.endswith(b"/websocket")


async def test_no_instance_dicts(avatar_server: DevServer) -> None:
    session = make(avatar_server)
    assert vars(session) == {}  # slots; the dict is only there for patching
    assert not hasattr(session.config, "__dict__")
    assert weakref.ref(session)() is session
    with pytest.raises(AttributeError):
        session.config.not_a_field = 1  # type: ignore[attr-defined]
    assert isinstance(session.config, SessionConfig)


def _underlying_module(server_loop_kind: str) -> str:
    async def connect() -> str:
        async with DevServer() as server, make(server) as session:
            return type(_picows_transport(session).underlying_transport).__module__

    if server_loop_kind == "uvloop":
        return avatarkit.run(connect())
    return asyncio.run(connect())


def test_uvloop_uses_the_loops_own_transport() -> None:
    pytest.importorskip("uvloop")  # the dev extra installs it
    assert _underlying_module("uvloop").startswith("uvloop")


def test_asyncio_loop_uses_aiofastnet_when_installed() -> None:
    pytest.importorskip("aiofastnet")  # a picows dependency
    assert _underlying_module("asyncio").startswith("aiofastnet")


async def test_a_session_method_can_be_patched(avatar_server: DevServer) -> None:
    from unittest import mock

    session = make(avatar_server)
    with mock.patch.object(session, "send_audio", autospec=True) as fake:
        await session.send_audio(b"x")
    fake.assert_awaited_once()


async def test_async_with_after_use_session_token_needs_no_api_key(
    avatar_server: DevServer,
) -> None:
    # A backend minted the token; this process has no API key.
    minted = make(avatar_server)
    await minted.init()
    token = minted._token
    assert token
    session = new_avatar_session(
        app_id=avatar_server.app_id,
        avatar_id=avatar_server.avatar_id,
        ingress_endpoint_url=avatar_server.ingress_url,
    )
    session.use_session_token(token)
    async with session:
        assert session.connection_id
    with pytest.raises(ValueError, match=r"already started|closed"):
        await session.start()
