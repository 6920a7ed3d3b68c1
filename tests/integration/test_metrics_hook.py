"""``on_metrics``: typed events for a whole session, against the local service.

SessionOpened (set-up time split into token/websocket/handshake),
RequestDone (per request: frames, audio seconds, time to first frame, end
latency, interrupted; works for plain ``send_audio()`` requests),
SessionError (code, phase, retryable), SessionClosed (close code, duration).
A hook that raises is logged with its traceback and the session goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from avatarkit import (
    AvatarSDKError,
    AvatarSDKErrorCode,
    RequestDone,
    SessionClosed,
    SessionConfigBuilder,
    SessionError,
    SessionOpened,
    SessionPool,
    SessionTokenError,
    new_avatar_session,
)
from avatarkit.devserver import DevServer

PCM = b"\x01\x00" * 8000  # 0.5 s at 16 kHz


async def _request(session: Any, ended: asyncio.Event) -> str:
    ended.clear()
    req_id: str = await session.send_audio(PCM, end=True)
    await asyncio.wait_for(ended.wait(), 10)
    return req_id


async def test_events_of_a_whole_session(avatar_server: DevServer) -> None:
    events: list[Any] = []
    ended = asyncio.Event()
    session = new_avatar_session(
        **avatar_server.session_kwargs(),
        on_metrics=events.append,
        transport_frames=lambda data, last: ended.set() if last else None,
        on_error=lambda err: None,
    )
    await session.init()
    connection_id = await session.start()
    opened = [e for e in events if isinstance(e, SessionOpened)]
    assert len(opened) == 1
    assert opened[0].connection_id == connection_id
    assert opened[0].token_seconds is not None and opened[0].token_seconds > 0
    assert opened[0].websocket_seconds > 0 and opened[0].handshake_seconds > 0
    assert opened[0].total_seconds == pytest.approx(
        opened[0].token_seconds + opened[0].websocket_seconds + opened[0].handshake_seconds
    )

    # A request sent in chunks with send_audio(): its summary.
    ended.clear()
    for offset in range(0, len(PCM), 3200):
        req_id = await session.send_audio(PCM[offset : offset + 3200])
    assert await session.send_audio(b"", end=True) == req_id
    await asyncio.wait_for(ended.wait(), 10)
    done = [e for e in events if isinstance(e, RequestDone)]
    assert len(done) == 1
    assert done[0].req_id == req_id and done[0].connection_id == connection_id
    assert done[0].frames == 13  # 0.5 s at 25 fps, the end frame included
    assert done[0].audio_seconds == pytest.approx(0.5)
    assert done[0].time_to_first_frame is not None and done[0].time_to_first_frame > 0
    assert done[0].end_latency is not None and done[0].end_latency >= 0
    assert done[0].interrupted is False

    # An interrupted request: reported once, as interrupted.
    second = await session.send_audio(PCM)
    assert await session.interrupt() == second
    done = [e for e in events if isinstance(e, RequestDone)]
    assert [d.req_id for d in done] == [req_id, second]
    assert done[1].interrupted is True and done[1].end_latency is None

    # A runtime server error: SessionError with code, phase, retryable.
    avatar_server.faults.send_error(4001, "credits exhausted", after_frames=1)
    await _request(session, ended)
    await asyncio.sleep(0.05)
    errors = [e for e in events if isinstance(e, SessionError)]
    assert len(errors) == 1, events
    assert errors[0].code is AvatarSDKErrorCode.creditsExhausted
    assert errors[0].phase is not None and errors[0].phase.value == "websocket_runtime"
    assert errors[0].retryable is False
    assert errors[0].connection_id == connection_id

    await session.close()
    closed = [e for e in events if isinstance(e, SessionClosed)]
    assert len(closed) == 1
    assert closed[0].connection_id == connection_id
    assert closed[0].close_code == 1000
    assert closed[0].duration > 0
    assert isinstance(events[-1], SessionClosed)


def test_events_are_frozen_dataclasses() -> None:
    for cls in (SessionOpened, RequestDone, SessionError, SessionClosed):
        assert dataclasses.is_dataclass(cls)
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


async def test_token_failure_is_a_session_error(avatar_server: DevServer) -> None:
    events: list[Any] = []
    session = new_avatar_session(
        **avatar_server.session_kwargs(api_key="wrong-key"), on_metrics=events.append
    )
    with pytest.raises(SessionTokenError):
        await session.init()
    assert [type(e) for e in events] == [SessionError]
    assert events[0].phase.value == "session_token"
    assert events[0].connection_id is None


async def test_refused_upgrade_is_a_session_error(avatar_server: DevServer) -> None:
    events: list[Any] = []
    session = new_avatar_session(
        **avatar_server.session_kwargs(avatar_id="no-such-avatar"), on_metrics=events.append
    )
    await session.init()
    with pytest.raises(AvatarSDKError) as info:
        await session.start()
    await session.close()
    errors = [e for e in events if isinstance(e, SessionError)]
    assert len(errors) == 1
    assert errors[0].code is info.value.code
    assert errors[0].phase is not None and errors[0].phase.value == "websocket_connect"
    assert errors[0].retryable is info.value.retryable
    assert not any(isinstance(e, SessionOpened) for e in events)


async def test_dropped_connection_reports_error_and_close(avatar_server: DevServer) -> None:
    events: list[Any] = []
    session = new_avatar_session(**avatar_server.session_kwargs(), on_metrics=events.append)
    async with session:
        avatar_server.faults.drop_connection(after_frames=2)
        await session.send_audio(PCM, end=True)
        await asyncio.wait_for(session.wait_closed(), 10)
    kinds = [type(e) for e in events]
    assert kinds[0] is SessionOpened and kinds[-1] is SessionClosed
    error = next(e for e in events if isinstance(e, SessionError))
    assert error.code is AvatarSDKErrorCode.connectionClosed and error.retryable is True
    assert events[-1].close_code is None  # no close frame came
    # The request the drop cut off is reported as not completed.
    done = [e for e in events if isinstance(e, RequestDone)]
    assert len(done) == 1 and done[0].interrupted is True


async def test_a_raising_hook_is_logged_and_the_session_goes_on(
    avatar_server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Any] = []

    def hook(event: Any) -> None:
        calls.append(event)
        raise RuntimeError("hook broke")

    ended = asyncio.Event()
    caplog.set_level(logging.ERROR, logger="avatarkit")
    async with new_avatar_session(
        **avatar_server.session_kwargs(),
        on_metrics=hook,
        transport_frames=lambda data, last: ended.set() if last else None,
    ) as session:
        await _request(session, ended)
        await _request(session, ended)
    assert [type(c) for c in calls] == [SessionOpened, RequestDone, RequestDone, SessionClosed]
    broken = [r for r in caplog.records if "on_metrics" in r.getMessage()]
    assert len(broken) == 4
    assert all(r.exc_info and "hook broke" in str(r.exc_info[1]) for r in broken)


async def test_async_hook(avatar_server: DevServer) -> None:
    seen: list[Any] = []

    async def hook(event: Any) -> None:
        await asyncio.sleep(0)
        seen.append(event)

    async with new_avatar_session(**avatar_server.session_kwargs(), on_metrics=hook):
        pass
    assert [type(e) for e in seen] == [SessionOpened, SessionClosed]


def test_builder_and_repr() -> None:
    def hook(event: Any) -> None:
        pass

    cfg = SessionConfigBuilder().with_avatar_id("a").with_on_metrics(hook).build()
    assert cfg.on_metrics is hook
    assert "on_metrics" not in repr(cfg)


async def test_pool_passes_on_metrics_through(avatar_server: DevServer) -> None:
    events: list[Any] = []
    async with SessionPool(2, **avatar_server.session_kwargs(), on_metrics=events.append) as pool:
        await pool.request(PCM, timeout=10)
    assert sum(isinstance(e, SessionOpened) for e in events) == 2
    assert sum(isinstance(e, RequestDone) for e in events) == 1
    assert sum(isinstance(e, SessionClosed) for e in events) == 2
