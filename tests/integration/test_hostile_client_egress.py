"""Local avatar service against egress configurations that cannot be parsed (issue 9).

A LiveKit URL that is not a URL, a JWT whose claims are nested 100000 deep,
NaN or infinite, huge or not base64: each is an invalid configuration, so the
answer is ``ServerError`` code 3 naming ``livekit_egress`` and close 1008
(PROTOCOL.md section 5), never "internal error" 13 and close 1011. A seeded
fuzz loop checks mutated configurations over real sockets, and many more
through :func:`~avatarkit.devserver._egress.validate_egress` directly.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time

import aiohttp
import pytest

from avatarkit.devserver import DevServer
from avatarkit.devserver._egress import EgressConfigError, validate_egress
from avatarkit.devserver._rawclient import RawClient, fetch_token
from avatarkit.errors import AvatarSDKErrorCode, ErrorPhase, classify_server_error
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import MessageType


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


HEADER = b64(b'{"alg":"HS256","typ":"JWT"}')


def jwt_raw(payload: bytes, header: str = HEADER) -> str:
    return f"{header}.{b64(payload)}.c2ln"


def good_claims() -> dict[str, object]:
    return {"video": {"room": "room-1", "roomJoin": True}, "exp": time.time() + 600}


def livekit(**overrides: object) -> pb.LiveKitEgressConfig:
    fields: dict[str, object] = {
        "url": "wss://livekit.example.com",
        "room_name": "room-1",
        "publisher_id": "avatar-pub",
        "api_token": jwt_raw(json.dumps(good_claims()).encode()),
    }
    fields.update(overrides)
    return pb.LiveKitEgressConfig(**fields)  # type: ignore[arg-type]


DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
HOSTILE = {
    "url-open-bracket": livekit(url="ws://["),
    "url-bad-ipv6": livekit(url="wss://[::1"),
    "url-bad-port": livekit(url="wss://host:99999999"),
    "url-port-letters": livekit(url="wss://host:abc/x"),
    "claims-nested": livekit(api_token=jwt_raw(DEEP)),
    "header-nested": livekit(api_token=jwt_raw(b"{}", header=b64(DEEP))),
    "claims-nested-short": livekit(api_token=jwt_raw(b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}")),
    "too-many-attributes": livekit(extra_attributes={str(i): "v" for i in range(1000)}),
    "video-nested": livekit(
        api_token=jwt_raw(b'{"exp":4e9,"video":{"room":' + b"[" * 900 + b"]" * 900 + b"}}")
    ),
    "exp-nan": livekit(api_token=jwt_raw(b'{"video":{"room":"room-1"},"exp":NaN}')),
    "exp-infinity": livekit(api_token=jwt_raw(b'{"video":{"room":"room-1"},"exp":Infinity}')),
    "exp-1e999": livekit(api_token=jwt_raw(b'{"video":{"room":"room-1"},"exp":1e999}')),
    "exp-huge-int": livekit(
        api_token=jwt_raw(b'{"video":{"room":"room-1"},"exp":1' + b"0" * 10_000 + b"}")
    ),
    "claims-huge": livekit(
        api_token=jwt_raw(json.dumps({**good_claims(), "pad": "x" * 500_000}).encode()) + "x" * 10
    ),
    "payload-not-base64": livekit(api_token=HEADER + ".%%%%$$$.c2ln"),
    "payload-not-utf8": livekit(api_token=jwt_raw(b"\xff\xfe{}")),
    "payload-non-ascii": livekit(api_token=HEADER + ".ünïcödé.c2ln"),
}


async def configure_reply(
    server: DevServer, http: aiohttp.ClientSession, **kwargs: object
) -> tuple[pb.Message, RawClient]:
    token = await fetch_token(http, server.api_root)
    client = await RawClient.connect(http, server.ingress_url, token=token)
    reply = await client.configure(expect_confirm=False, **kwargs)  # type: ignore[arg-type]
    return reply, client


async def assert_invalid_config(
    server: DevServer, http: aiohttp.ClientSession, **kwargs: object
) -> str:
    reply, client = await configure_reply(server, http, **kwargs)
    assert reply.type == MessageType.SERVER_ERROR, reply
    err = reply.server_error
    assert err.code == 3, err.message
    assert "egress" in err.message
    code = classify_server_error(
        err.code, err.message, phase=ErrorPhase.WEBSOCKET_HANDSHAKE.value
    ).code
    assert code is AvatarSDKErrorCode.invalidEgressConfig
    assert await client.recv() is None
    assert client.close_code == 1008
    return err.message


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_unparseable_livekit_config_is_code_3(
    avatar_server: DevServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    message = await assert_invalid_config(avatar_server, http, livekit=HOSTILE[name])
    assert "livekit_egress" in message and len(message) <= 1000
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def mutate(rng: random.Random, text: str) -> str:
    """A random edit of ``text``: flip, insert, delete, truncate or duplicate."""
    if not text:
        return rng.choice(["", "[", "%", "\x00", "ws://", "."])
    op = rng.randrange(6)
    i = rng.randrange(len(text))
    junk = rng.choice(["[", "]", ":", ".", "%", "=", "\x00", "é", "{", "NaN", "1e999", "-"])
    if op == 0:
        return text[:i] + junk + text[i + 1 :]
    if op == 1:
        return text[:i] + junk + text[i:]
    if op == 2:
        return text[:i] + text[i + 1 :]
    if op == 3:
        return text[:i]
    if op == 4:
        return text + text[i:]
    return text[:i] + text[i:].swapcase()


def claims_token(rng: random.Random) -> str:
    claims: dict[str, object] = good_claims()
    pick = rng.randrange(6)
    if pick == 0:
        claims["exp"] = rng.choice([float("nan"), float("inf"), -1e308, 10**400, "soon", None])
    elif pick == 1:
        claims["video"] = rng.choice([[], "room-1", {"room": ["room-1"]}, {"room": None}, 7])
    elif pick == 2:
        claims = {"nested": [claims] * rng.randrange(1, 4)}
    payload = json.dumps(claims, allow_nan=True).encode()
    if pick == 3:
        payload = payload[: rng.randrange(len(payload))]
    return jwt_raw(payload)


def mutated_config(rng: random.Random) -> dict[str, object]:
    base = livekit()
    cfg = pb.LiveKitEgressConfig()
    cfg.CopyFrom(base)
    for field in ("url", "room_name", "publisher_id", "api_token", "api_key", "api_secret"):
        if rng.random() < 0.4:
            setattr(cfg, field, mutate(rng, getattr(cfg, field)))
    if rng.random() < 0.3:
        cfg.api_token = claims_token(rng)
    if rng.random() < 0.2:
        cfg.idle_timeout = rng.choice([-1, 0, 2**31 - 1, -(2**31)])
    kwargs: dict[str, object] = {"livekit": cfg}
    if rng.random() < 0.15:
        kwargs["egress_type"] = rng.choice([0, 1, 2, 3, 99])
    if rng.random() < 0.1:
        kwargs["agora"] = pb.AgoraEgressConfig(channel_name=mutate(rng, "chan"))
    return kwargs


async def test_fuzzed_egress_never_internal_error(
    avatar_server: DevServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(9)
    outcomes = {"confirmed": 0, "rejected": 0}
    for _ in range(60):
        reply, client = await configure_reply(avatar_server, http, **mutated_config(rng))
        if reply.type == MessageType.SERVER_CONFIRM_SESSION:
            outcomes["confirmed"] += 1
            await client.close()
            continue
        assert reply.type == MessageType.SERVER_ERROR
        assert reply.server_error.code == 3, reply.server_error.message
        assert await client.recv() is None and client.close_code == 1008
        outcomes["rejected"] += 1
    assert outcomes["rejected"] > 10  # the mutations do reach the checks
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_fuzzed_validate_egress_only_raises_egress_config_error() -> None:
    rng = random.Random(10)
    for _ in range(3000):
        kwargs = mutated_config(rng)
        cfg = pb.ClientConfigureSession()
        lk = kwargs["livekit"]
        assert isinstance(lk, pb.LiveKitEgressConfig)
        cfg.livekit_egress.CopyFrom(lk)
        agora = kwargs.get("agora")
        if isinstance(agora, pb.AgoraEgressConfig):
            cfg.agora_egress.CopyFrom(agora)
        cfg.egress_type = kwargs.get("egress_type", 1)  # type: ignore[assignment]
        try:
            validate_egress(cfg)
        except EgressConfigError as exc:
            assert "egress" in str(exc)
