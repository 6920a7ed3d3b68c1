"""Server side: validation of the egress part of ``ClientConfigureSession``.

Pure checks (no I/O, no local-service import) used by
:func:`avatarkit._server_protocol.check_configure`: the configuration is
checked as the hosted service would before dialling out, and the result is an
:class:`EgressSettings` (the local service records it in its
:class:`~avatarkit.devserver._state.EgressState`).

A LiveKit ``api_token`` shaped like a JWT is decoded (base64url) and its
``video.room`` grant and ``exp`` checked. Its signature is **not** verified:
that needs the LiveKit API secret, which only the LiveKit server has. An
opaque (non-JWT) token is accepted as is.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .proto import avatarkit_wire_pb2 as pb

__all__ = ["MAX_EGRESS_FIELD_BYTES", "EgressConfigError", "EgressSettings", "check_egress"]

MAX_EGRESS_FIELD_BYTES = 8192
"""Longest egress text field accepted (URL, names, tokens): real ones are far shorter."""
_MAX_EXTRA_ATTRIBUTES = 64

_EGRESS_UNSPECIFIED = 0
_EGRESS_LIVEKIT = 1
_EGRESS_AGORA = 2


@dataclass(frozen=True)
class EgressSettings:
    """A valid egress configuration: where the session's frames would be published."""

    kind: str  # "livekit" or "agora"
    url: str = ""
    room_name: str = ""
    channel_name: str = ""
    publisher_id: str = ""
    uid: int = 0
    extra_attributes: dict[str, str] = field(default_factory=dict)
    idle_timeout: int = 0
    token_claims: dict[str, object] | None = None
    api_token: str = field(default="", repr=False)  # as received (never in repr or the API)


class EgressConfigError(ValueError):
    """The egress configuration is invalid; the message names the field.

    The service answers it with ``ServerError`` code 3 (gRPC
    INVALID_ARGUMENT), which clients map to ``invalidEgressConfig`` because
    the message mentions ``livekit_egress`` / ``agora_egress``.
    """


def _b64json(part: str) -> object:
    """The JSON value of one base64url JWT part.

    Raises ``ValueError`` for anything that is not base64url JSON, including
    text that is not ASCII, bytes that are not UTF-8 and JSON nested deeper
    than the parser's recursion limit.
    """
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, RecursionError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


def _decode_jwt_claims(token: str) -> dict[str, object] | None:
    """The claims of a JWT-shaped token; ``None`` for an opaque token.

    A token is JWT-shaped when it has three dot-separated parts and the first
    decodes to a JSON object (the JOSE header). Raises
    :class:`EgressConfigError` when such a token's payload is not a JSON object.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = _b64json(parts[0])
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    try:
        claims = _b64json(parts[1])
    except ValueError:  # not base64, not UTF-8, not JSON, or nested too deep
        claims = None
    if not isinstance(claims, dict):
        raise EgressConfigError(
            "livekit_egress.api_token is a malformed JWT: its payload is not a JSON object"
        )
    return claims


def _check_lengths(prefix: str, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_EGRESS_FIELD_BYTES:
            raise EgressConfigError(
                f"{prefix}.{name} is {size} bytes long; at most {MAX_EGRESS_FIELD_BYTES} "
                "are accepted"
            )


def _url_ok(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:  # e.g. "ws://[": an unterminated IPv6 address
        return False
    return parts.scheme.lower() in ("ws", "wss", "http", "https") and bool(parts.hostname)


def _validate_livekit(cfg: pb.LiveKitEgressConfig, now: float) -> EgressSettings:
    _check_lengths(
        "livekit_egress",
        {
            "url": cfg.url,
            "room_name": cfg.room_name,
            "publisher_id": cfg.publisher_id,
            "api_token": cfg.api_token,
            "api_key": cfg.api_key,
            "api_secret": cfg.api_secret,
        },
    )
    if len(cfg.extra_attributes) > _MAX_EXTRA_ATTRIBUTES:
        raise EgressConfigError(
            f"livekit_egress.extra_attributes has {len(cfg.extra_attributes)} entries; "
            f"at most {_MAX_EXTRA_ATTRIBUTES} are accepted"
        )
    for key, value in cfg.extra_attributes.items():
        _check_lengths("livekit_egress.extra_attributes", {"key": key, key[:100]: value})
    if not _url_ok(cfg.url):
        raise EgressConfigError(
            f"livekit_egress.url {cfg.url!r} is invalid: it must be a ws://, wss://, "
            "http:// or https:// URL"
        )
    if not cfg.room_name:
        raise EgressConfigError("livekit_egress.room_name is required")
    if not cfg.publisher_id:
        raise EgressConfigError("livekit_egress.publisher_id is required")
    if not cfg.api_token and not (cfg.api_key and cfg.api_secret):
        raise EgressConfigError(
            "livekit_egress: missing livekit credentials: "
            "provide api_token or both api_key and api_secret"
        )
    if cfg.idle_timeout < 0:
        raise EgressConfigError("livekit_egress.idle_timeout must be >= 0 seconds")
    claims: dict[str, object] | None = None
    if cfg.api_token:
        claims = _decode_jwt_claims(cfg.api_token)
        if claims is not None:
            video = claims.get("video")
            room = video.get("room") if isinstance(video, dict) else None
            if room != cfg.room_name:
                shown = (
                    repr(room[:100]) if isinstance(room, str) else f"a JSON {type(room).__name__}"
                )
                raise EgressConfigError(
                    f"livekit_egress.api_token grants room {shown}, not room_name "
                    f"{cfg.room_name[:100]!r}"
                )
            exp = claims.get("exp")
            if not isinstance(exp, (int, float)) or isinstance(exp, bool):
                raise EgressConfigError("livekit_egress.api_token has no exp claim")
            if isinstance(exp, float) and not math.isfinite(exp):
                raise EgressConfigError(
                    "livekit_egress.api_token exp claim is not a finite number of unix seconds"
                )
            if exp <= now:
                raise EgressConfigError("livekit_egress.api_token is expired (exp is in the past)")
    return EgressSettings(
        kind="livekit",
        url=cfg.url,
        room_name=cfg.room_name,
        publisher_id=cfg.publisher_id,
        extra_attributes=dict(cfg.extra_attributes),
        idle_timeout=cfg.idle_timeout,
        token_claims=claims,
        api_token=cfg.api_token,
    )


def _validate_agora(cfg: pb.AgoraEgressConfig) -> EgressSettings:
    _check_lengths(
        "agora_egress", {"channel_name": cfg.channel_name, "publisher_id": cfg.publisher_id}
    )
    if not cfg.channel_name:
        raise EgressConfigError("agora_egress.channel_name is required")
    return EgressSettings(
        kind="agora",
        channel_name=cfg.channel_name,
        publisher_id=cfg.publisher_id,
        uid=cfg.uid,
    )


def check_egress(
    configure: pb.ClientConfigureSession, *, now: float | None = None
) -> EgressSettings | None:
    """The egress the session asks for (``None``: frames over the WebSocket).

    Raises :class:`EgressConfigError` when it is invalid. When ``egress_type``
    is unspecified the kind is taken from whichever config is present, as
    older clients may not set the type.
    """
    has_livekit = configure.HasField("livekit_egress")
    has_agora = configure.HasField("agora_egress")
    kind = int(configure.egress_type)
    if has_livekit and has_agora:
        raise EgressConfigError(
            "livekit_egress and agora_egress are both set; a session publishes to one "
            "egress at most"
        )
    if kind == _EGRESS_UNSPECIFIED:
        if has_livekit:
            kind = _EGRESS_LIVEKIT
        elif has_agora:
            kind = _EGRESS_AGORA
        else:
            return None
    when = time.time() if now is None else now
    if kind == _EGRESS_LIVEKIT:
        if has_agora:
            raise EgressConfigError("egress_type is LIVEKIT but agora_egress is set")
        if not has_livekit:
            raise EgressConfigError("egress_type is LIVEKIT but livekit_egress is missing")
        return _validate_livekit(configure.livekit_egress, when)
    if kind == _EGRESS_AGORA:
        if has_livekit:
            raise EgressConfigError("egress_type is AGORA but livekit_egress is set")
        if not has_agora:
            raise EgressConfigError("egress_type is AGORA but agora_egress is missing")
        return _validate_agora(configure.agora_egress)
    raise EgressConfigError(
        f"unknown egress_type {kind}; use LIVEKIT (livekit_egress) or AGORA (agora_egress)"
    )
