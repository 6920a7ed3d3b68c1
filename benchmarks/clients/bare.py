"""What the two bare reference clients share: token call and message bytes.

The token call uses one pooled ``aiohttp.ClientSession`` for the whole run
(keep-alive connection reuse), so the bare clients' set-up time is the floor
an SDK can reach, not a per-call client object.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from benchmarks.common import (
    API_KEY,
    APP_ID,
    AVATAR_ID,
    SAMPLE_RATE,
    load_wire_pb2,
    protobuf_backend,
)

pb = load_wire_pb2()

REQ_ID = "20250101000000_benchBENCH01"

ANIMATION = pb.MESSAGE_SERVER_RESPONSE_ANIMATION
CONFIRM = pb.MESSAGE_SERVER_CONFIRM_SESSION
ERROR = pb.MESSAGE_SERVER_ERROR


def ws_url(ingress: str) -> str:
    parts = urlsplit(ingress.rstrip("/") + "/websocket")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = (parts.query + "&" if parts.query else "") + f"id={AVATAR_ID}"
    return urlunsplit((scheme, parts.netloc, parts.path, query, ""))


def configure_bytes() -> bytes:
    msg = pb.Message(type=pb.MESSAGE_CLIENT_CONFIGURE_SESSION)
    msg.client_configure_session.sample_rate = SAMPLE_RATE
    return msg.SerializeToString()  # type: ignore[no-any-return]


def audio_bytes(data: bytes, end: bool) -> bytes:
    msg = pb.Message(type=pb.MESSAGE_CLIENT_AUDIO_INPUT)
    a = msg.client_audio_input
    a.req_id = REQ_ID
    a.end = end
    a.audio = data
    return msg.SerializeToString()  # type: ignore[no-any-return]


class TokenClient:
    """POST {console}/session-tokens over one pooled HTTP session."""

    def __init__(self, console: str) -> None:
        self.url = console.rstrip("/") + "/session-tokens"
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()

    async def token(self) -> str:
        assert self.http is not None
        expire = int((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp())
        async with self.http.post(
            self.url, json={"expireAt": expire}, headers={"X-Api-Key": API_KEY}
        ) as resp:
            body: Any = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"token call: HTTP {resp.status}: {body}")
        return str(body.get("sessionToken") or body["session_token"])

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()


def auth_headers(token: str) -> dict[str, str]:
    return {"X-App-ID": APP_ID, "X-Session-Key": token}


class BareAdapter:
    """What the floor and websockets clients share around their WebSocket:
    the pooled token call, the URL, the configure message and ``info()``."""

    name = "bare"
    library = ""

    def __init__(self, args: Any) -> None:
        self.tokens = TokenClient(args.console)
        self.url = ws_url(args.ingress)
        self.configure = configure_bytes()

    async def setup(self) -> None:
        await self.tokens.start()

    async def open_token(self, on_frame: Any) -> tuple[str, Any]:
        return await self.tokens.token(), on_frame

    async def teardown(self) -> None:
        await self.tokens.stop()

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "library": self.library, "protobuf": protobuf_backend()}
