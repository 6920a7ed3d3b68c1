"""Where the e2e tests run: the hosted service when configured, else the local one.

The published SDK's e2e tests are opt-in (``AVATARKIT_RUN_E2E=1``) and skip
without credentials. Ours keep the same entry points and variables, but when
no hosted endpoint is configured they run against the local avatar service,
so they always execute.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass
class E2ETarget:
    hosted: bool
    api_key: str
    app_id: str
    console_endpoint_url: str
    ingress_endpoint_url: str
    avatar_id: str
    missing_avatar_id: str
    livekit_url: str


def hosted_configured() -> bool:
    """True when AVATARKIT_RUN_E2E=1 and the hosted endpoints are set."""
    env = os.environ
    return env.get("AVATARKIT_RUN_E2E") == "1" and bool(
        env.get("AVATARKIT_E2E_API_KEY")
        and env.get("AVATARKIT_E2E_APP_ID")
        and env.get("AVATARKIT_E2E_CONSOLE_ENDPOINT")
        and env.get("AVATARKIT_E2E_INGRESS_ENDPOINT")
    )


@asynccontextmanager
async def e2e_target() -> AsyncIterator[E2ETarget]:
    env = os.environ
    missing = env.get("AVATARKIT_E2E_MISSING_AVATAR_ID", "avatarkit-e2e-missing-avatar-404")
    if hosted_configured():
        yield E2ETarget(
            hosted=True,
            api_key=env["AVATARKIT_E2E_API_KEY"],
            app_id=env["AVATARKIT_E2E_APP_ID"],
            console_endpoint_url=env["AVATARKIT_E2E_CONSOLE_ENDPOINT"],
            ingress_endpoint_url=env["AVATARKIT_E2E_INGRESS_ENDPOINT"],
            avatar_id=env.get("AVATARKIT_E2E_AVATAR_ID", ""),
            missing_avatar_id=missing,
            livekit_url=env.get("AVATARKIT_E2E_LIVEKIT_URL", "wss://livekit.example.com"),
        )
        return
    from avatarkit.devserver import DevServer

    async with DevServer(pace="fast") as server:
        yield E2ETarget(
            hosted=False,
            api_key=server.api_key,
            app_id=server.app_id,
            console_endpoint_url=server.console_url,
            ingress_endpoint_url=server.ingress_url,
            avatar_id=server.avatar_id,
            missing_avatar_id=missing,
            livekit_url=env.get("AVATARKIT_E2E_LIVEKIT_URL", "wss://livekit.example.com"),
        )
