"""Every log record of the SDK carries the connection id and request id, and no secret.

A whole session runs against the local service with every ``avatarkit``
logger at its lowest level (picows logs the upgrade at level 9): start, a
request whose ``transport_frames`` callback raises, a runtime ServerError
with no ``on_error`` (logged as a warning), close. Records of the local
service itself (``avatarkit.devserver``) are not the SDK's and are skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from avatarkit import new_avatar_session
from avatarkit.devserver import DevServer
from avatarkit.transport import AiohttpTransport, PicowsTransport

API_KEY = "sk-DISTINCTIVE-api-key-7f3a9c1e"
PCM = b"\x01\x00" * 8000


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    root = logging.getLogger("avatarkit")
    handler = _Capture()
    old = root.level
    root.addHandler(handler)
    root.setLevel(1)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def _sdk(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if not r.name.startswith("avatarkit.devserver")]


@pytest.mark.parametrize("transport", [PicowsTransport, AiohttpTransport])
async def test_every_record_carries_ids_and_no_secret(
    captured: list[logging.LogRecord], transport: Any
) -> None:
    async with DevServer(pace="fast", api_keys={API_KEY: "app-logctx"}) as server:
        ended = asyncio.Event()

        def on_frame(data: bytes, last: bool) -> None:
            if last:
                ended.set()
            raise RuntimeError("callback broke")

        session = new_avatar_session(
            **server.session_kwargs(api_key=API_KEY, app_id="app-logctx"),
            transport_frames=on_frame,
            transport_factory=transport,
        )
        await session.init()
        token = session._token
        assert token and len(token) > 16
        connection_id = await session.start()
        server.faults.send_error(3001, "something odd", after_frames=1)
        req_id = await session.send_audio(PCM, end=True)
        await asyncio.wait_for(ended.wait(), 10)
        await asyncio.sleep(0.05)
        await session.close()

    records = _sdk(captured)
    assert records, "the SDK logged nothing"
    for record in records:
        assert hasattr(record, "avatarkit_connection_id"), record.name
        assert hasattr(record, "avatarkit_req_id"), record.name
        text = record.getMessage()
        assert "connection_id=" in text and "req_id=" in text, text
        formatted = logging.Formatter().format(record)
        assert API_KEY not in formatted and token not in formatted, formatted
    # The records of the session's life after the confirm name it and the request.
    raised = [r for r in records if "transport_frames callback raised" in r.getMessage()]
    warned = [r for r in records if "something odd" in r.getMessage()]
    assert raised and warned
    for record in raised + warned:
        assert record.avatarkit_connection_id == connection_id  # type: ignore[attr-defined]
        assert record.avatarkit_req_id == req_id  # type: ignore[attr-defined]
        assert f"connection_id={connection_id}" in record.getMessage()
        assert f"req_id={req_id}" in record.getMessage()


async def test_records_before_the_confirm_say_there_is_no_id_yet(
    captured: list[logging.LogRecord],
) -> None:
    async with DevServer(pace="fast") as server:
        server.faults.drop_connection(phase="handshake")
        session = new_avatar_session(**server.session_kwargs(), open_timeout=2)
        await session.init()
        with pytest.raises(Exception):  # noqa: B017 - any failure to start
            await session.start()
        await session.close()
    for record in _sdk(captured):
        assert record.avatarkit_connection_id is None  # type: ignore[attr-defined]
        assert "connection_id=-" in record.getMessage()
