"""Fixtures shared by the test modules (the ``avatar_server`` fixture comes from
the ``avatarkit.testing`` pytest plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp client session for the test, closed after it."""
    async with aiohttp.ClientSession() as session:
        yield session
