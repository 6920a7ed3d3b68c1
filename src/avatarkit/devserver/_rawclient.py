"""A bare protocol client for testing the local service at the wire level.

It is deliberately not the SDK session: an aiohttp WebSocket, the protocol
core's encoders, and parsed ``Message`` envelopes handed back as they come,
so a test sees exactly what the service sent (and can send what no client
should).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..proto import avatarkit_wire_pb2 as pb
from ..protocol import (
    MessageType,
    build_websocket_url,
    encode_audio_input,
    encode_interrupt,
    encode_pause,
    encode_resume,
)

__all__ = ["Collected", "RawClient", "fetch_token"]


async def fetch_token(
    http: aiohttp.ClientSession,
    api_root: str,
    *,
    api_key: str = "dev-api-key",
    expire_at: Any = None,
    route: str = "/v1/auth/session-token",
) -> str:
    """A session token from the service (raises ``AssertionError`` on failure)."""
    if expire_at is None:
        expire_at = int(time.time()) + 3600
    async with http.post(
        api_root + route, json={"expireAt": expire_at}, headers={"X-Api-Key": api_key}
    ) as resp:
        body = await resp.read()
        assert resp.status == 200, (resp.status, body)
    token = json.loads(body)["session_token"]
    assert isinstance(token, str)
    return token


@dataclass
class Collected:
    """What arrived for one request."""

    animations: list[pb.ServerResponseAnimation] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)  # loop time of each animation
    states: list[pb.ServerPlaybackState] = field(default_factory=list)
    errors: list[pb.ServerError] = field(default_factory=list)
    others: list[pb.Message] = field(default_factory=list)

    @property
    def ends(self) -> int:
        return sum(1 for a in self.animations if a.end)

    @property
    def state_names(self) -> list[str]:
        return [pb.ServerPlaybackState.State.Name(s.state) for s in self.states]


class RawClient:
    """One raw ingress connection."""

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse[bool], http: aiohttp.ClientSession
    ) -> None:
        self.ws = ws
        self.http = http
        self.connection_id = ""
        self.capabilities: tuple[str, ...] = ()

    @classmethod
    async def connect(
        cls,
        http: aiohttp.ClientSession,
        ingress_url: str,
        *,
        token: str,
        app_id: str = "dev-app-id",
        avatar_id: str = "dev-avatar",
        query_auth: bool = False,
        max_msg_size: int = 1024 * 1024,
    ) -> RawClient:
        url, headers = build_websocket_url(
            ingress_url, avatar_id=avatar_id, app_id=app_id, token=token, use_query_auth=query_auth
        )
        ws = await http.ws_connect(url, headers=headers, max_msg_size=max_msg_size)
        return cls(ws, http)

    # -- sending ------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def configure(
        self,
        sample_rate: int = 16000,
        *,
        audio_format: int = 0,
        bitrate: int = 0,
        livekit: pb.LiveKitEgressConfig | None = None,
        agora: pb.AgoraEgressConfig | None = None,
        egress_type: int | None = None,
        expect_confirm: bool = True,
    ) -> pb.Message:
        """Send ``ClientConfigureSession``; return the answer (confirm or error)."""
        cfg = pb.ClientConfigureSession(
            sample_rate=sample_rate,
            bitrate=bitrate,
            audio_format=audio_format,  # type: ignore[arg-type]
        )
        if livekit is not None:
            cfg.livekit_egress.CopyFrom(livekit)
            cfg.egress_type = pb.EGRESS_TYPE_LIVEKIT
        if agora is not None:
            cfg.agora_egress.CopyFrom(agora)
            cfg.egress_type = pb.EGRESS_TYPE_AGORA
        if egress_type is not None:
            cfg.egress_type = egress_type  # type: ignore[assignment]
        await self.send(
            pb.Message(
                type=pb.MESSAGE_CLIENT_CONFIGURE_SESSION, client_configure_session=cfg
            ).SerializeToString()
        )
        reply = await self.recv()
        assert reply is not None, f"connection closed: {self.ws.close_code}"
        if reply.type == MessageType.SERVER_CONFIRM_SESSION:
            self.connection_id = reply.server_confirm_session.connection_id
            self.capabilities = tuple(reply.server_confirm_session.capabilities)
        elif expect_confirm:
            raise AssertionError(f"expected a confirm, got {reply}")
        return reply

    async def audio(self, req_id: str, audio: bytes, end: bool = False) -> None:
        await self.send(encode_audio_input(req_id, audio, end))

    async def interrupt(self, req_id: str) -> None:
        await self.send(encode_interrupt(req_id))

    async def pause(self, req_id: str) -> None:
        await self.send(encode_pause(req_id))

    async def resume(self, req_id: str) -> None:
        await self.send(encode_resume(req_id))

    # -- receiving ----------------------------------------------------------------

    async def recv(self, timeout: float = 10.0) -> pb.Message | None:
        """The next message, ``None`` once the connection closed."""
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is aiohttp.WSMsgType.BINARY:
            out = pb.Message()
            out.ParseFromString(msg.data)
            return out
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        ):
            return None
        raise AssertionError(f"unexpected frame {msg.type}: {msg.data!r}")

    async def collect(
        self,
        req_id: str,
        *,
        timeout: float = 10.0,
        until_state: int | None = None,
        into: Collected | None = None,
    ) -> Collected:
        """Messages until ``req_id`` ended (``ENDED`` state, or ``until_state``)."""
        got = into if into is not None else Collected()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        want = pb.ServerPlaybackState.ENDED if until_state is None else until_state
        while True:
            msg = await self.recv(timeout=max(0.01, deadline - loop.time()))
            if msg is None:
                return got
            self.sort(msg, got, loop.time())
            if msg.type == MessageType.SERVER_PLAYBACK_STATE:
                ps = msg.server_playback_state
                if ps.req_id == req_id and (
                    ps.state == want or ps.state == pb.ServerPlaybackState.INTERRUPTED
                ):
                    return got

    @staticmethod
    def sort(msg: pb.Message, got: Collected, now: float) -> None:
        if msg.type == MessageType.SERVER_RESPONSE_ANIMATION:
            got.animations.append(msg.server_response_animation)
            got.arrival.append(now)
        elif msg.type == MessageType.SERVER_PLAYBACK_STATE:
            got.states.append(msg.server_playback_state)
        elif msg.type == MessageType.SERVER_ERROR:
            got.errors.append(msg.server_error)
        else:
            got.others.append(msg)

    async def drain_until_closed(self, timeout: float = 10.0) -> Collected:
        """Everything until the server closes the connection."""
        got = Collected()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(timeout=max(0.01, deadline - loop.time()))
            if msg is None:
                return got
            self.sort(msg, got, loop.time())

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
