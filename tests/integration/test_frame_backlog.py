"""Frames waiting for a slow consumer (``frames()``, a request's iterator).

Frames not yet read are kept as the received message bytes and parsed when
read: a backlog adds no objects for the garbage collector to walk (under a
flood the collector ran over every queued event again and again), and the
reader still gets every frame, in order, the end frame last.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

from avatarkit import AnimationFrameEvent
from avatarkit.devserver import DevServer, decode_animation
from tests._helpers import make_session, speech_pcm

SECONDS = 6  # 150 frames of 40 ms
FRAMES = SECONDS * 25
# Reading the backlog may free a few tracked objects for other reasons; one
# event per queued frame would free FRAMES.
SLACK = FRAMES // 3


def tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


class Got:
    """What the frames read said, kept as lists of untracked values (bytes, ints)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.indexes: list[int] = []
        self.ends: list[bool] = []
        self.ids: set[str] = set()

    def add(self, frame: AnimationFrameEvent) -> bool:
        self.messages.append(frame.message)
        self.indexes.append(decode_animation(frame.payload)["frame_index"])
        self.ends.append(frame.end)
        self.ids.add(f"{frame.req_id} {frame.connection_id}")
        return frame.end

    def check(self, messages: list[bytes]) -> None:
        assert self.messages == messages
        assert self.indexes == list(range(FRAMES))
        assert self.ends == [False] * (FRAMES - 1) + [True]
        assert len(self.ids) == 1


async def test_frames_backlog_holds_no_collected_objects(avatar_server: DevServer) -> None:
    messages: list[bytes] = []
    ended = asyncio.Event()

    def on_frame(data: bytes, last: bool) -> None:
        messages.append(data)
        if last:
            ended.set()

    got = Got()
    async with make_session(avatar_server, transport_frames=on_frame) as session:
        frames: AsyncIterator[AnimationFrameEvent] = session.frames().__aiter__()
        first = asyncio.ensure_future(frames.__anext__())
        await asyncio.sleep(0)  # the iterator is registered and asleep
        await session.send_audio(speech_pcm(seconds=SECONDS), end=True)
        await asyncio.wait_for(ended.wait(), 10)
        got.add(await asyncio.wait_for(first, 5))
        backlog = tracked()  # FRAMES - 1 frames wait unread
        while not got.add(await asyncio.wait_for(frames.__anext__(), 5)):
            pass
        freed = backlog - tracked()
        await frames.aclose()  # type: ignore[attr-defined]
    assert freed < SLACK, f"reading {FRAMES} queued frames freed {freed} tracked objects"
    got.check(messages)


async def test_request_backlog_holds_no_collected_objects(avatar_server: DevServer) -> None:
    messages: list[bytes] = []
    got = Got()
    async with make_session(
        avatar_server, transport_frames=lambda data, last: messages.append(data)
    ) as session:
        req = session.stream(speech_pcm(seconds=SECONDS))
        summary = await asyncio.wait_for(req.done(), 10)  # nothing read yet
        backlog = tracked()
        async for frame in req:
            got.add(frame)
        del frame
        freed = backlog - tracked()
    assert summary.frames == FRAMES
    assert freed < SLACK, f"reading {FRAMES} queued frames freed {freed} tracked objects"
    got.check(messages)
