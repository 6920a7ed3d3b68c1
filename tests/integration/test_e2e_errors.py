"""End-to-end error cases (same entry point and variables as the published SDK).

Against the hosted service with ``AVATARKIT_RUN_E2E=1`` and the
``AVATARKIT_E2E_*`` variables; otherwise against the local avatar service.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from avatarkit import AvatarSDKError, AvatarSDKErrorCode, LiveKitEgressConfig, new_avatar_session
from tests._e2e import e2e_target

pytestmark = pytest.mark.e2e


def _expire() -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=5)


async def test_invalid_websocket_credentials_session_token_invalid() -> None:
    async with e2e_target() as target:
        session = new_avatar_session(
            api_key=target.api_key,
            app_id=target.app_id,
            avatar_id=target.avatar_id or "x",
            console_endpoint_url=target.console_endpoint_url,
            ingress_endpoint_url=target.ingress_endpoint_url,
            expire_at=_expire(),
        )
        session.use_session_token("not-a-valid-session-token")
        with pytest.raises(AvatarSDKError) as info:
            await session.start()
        await session.close()
        assert info.value.code is AvatarSDKErrorCode.sessionTokenInvalid
        assert info.value.phase == "websocket_connect"
        assert "not-a-valid-session-token" not in str(info.value)


async def test_missing_avatar_avatar_not_found() -> None:
    async with e2e_target() as target:
        session = new_avatar_session(
            api_key=target.api_key,
            app_id=target.app_id,
            avatar_id=target.missing_avatar_id,
            console_endpoint_url=target.console_endpoint_url,
            ingress_endpoint_url=target.ingress_endpoint_url,
            expire_at=_expire(),
        )
        await session.init()
        with pytest.raises(AvatarSDKError) as info:
            await session.start()
        await session.close()
        assert info.value.code is AvatarSDKErrorCode.avatarNotFound
        assert info.value.http_status == 404


async def test_invalid_livekit_token_invalid_egress_config() -> None:
    async with e2e_target() as target:
        session = new_avatar_session(
            api_key=target.api_key,
            app_id=target.app_id,
            avatar_id=target.avatar_id,
            console_endpoint_url=target.console_endpoint_url,
            ingress_endpoint_url=target.ingress_endpoint_url,
            expire_at=_expire(),
            livekit_egress=LiveKitEgressConfig(
                url=target.livekit_url,
                api_token="invalid-livekit-token",
                room_name="avatarkit-e2e",
                publisher_id="avatarkit-e2e-publisher",
            ),
        )
        await session.init()
        if target.hosted:
            # The hosted service may accept the config and fail at egress time.
            try:
                await session.start()
                await session.send_audio(b"\x00\x00" * 1600, end=True)
            except AvatarSDKError as err:
                assert err.code in (
                    AvatarSDKErrorCode.invalidEgressConfig,
                    AvatarSDKErrorCode.egressUnavailable,
                )
            finally:
                await session.close()
            return
        # The local service checks a JWT api_token; this one is not a JWT, so
        # it is accepted as opaque. Use a JWT for the wrong room instead.
        import base64
        import json

        def b64(obj: object) -> str:
            raw = json.dumps(obj).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        jwt = ".".join(
            [
                b64({"alg": "HS256", "typ": "JWT"}),
                b64({"video": {"room": "another-room", "roomJoin": True}, "exp": 4102444800}),
                "c2ln",
            ]
        )
        assert session.config.livekit_egress is not None
        session.config.livekit_egress.api_token = jwt
        with pytest.raises(AvatarSDKError) as info:
            await session.start()
        await session.close()
        assert info.value.code is AvatarSDKErrorCode.invalidEgressConfig
        assert info.value.phase == "websocket_handshake"
        assert jwt not in str(info.value)
