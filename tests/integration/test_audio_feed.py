"""``AudioFeed``: a push-style ``stream()`` source, over real sockets.

Whole chunks pushed while the request has no feeder task yet (it starts
idle) or its feeder waits at the feed are sent in the producer's ``push()``
call (no task, no wake-up); everything else goes through the feeder, which
starts when first needed. Either way the service gets the same audio in the same order: the
frames (computed from the audio by the local service) equal those of the same
audio streamed as bytes.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from avatarkit import (
    AnimationFrameEvent,
    AudioFeed,
    AvatarRequest,
    AvatarSDKError,
    SessionClosedError,
)
from avatarkit.devserver import DevServer
from tests._helpers import collector_off, make_session, speech_pcm

CHUNK = 1280  # 40 ms at 16 kHz
PCM = speech_pcm(seconds=2)  # 50 chunks
BOUND = 10.0  # "does not hang"


async def payloads(req: AvatarRequest) -> list[bytes]:
    frames: list[AnimationFrameEvent] = [frame async for frame in req]
    assert frames[-1].end and not any(f.end for f in frames[:-1])
    return [f.payload for f in frames]


async def reference(server: DevServer) -> list[bytes]:
    async with make_session(server) as session:
        return await asyncio.wait_for(payloads(session.stream(PCM)), BOUND)


async def until_parked(feed: AudioFeed, req: AvatarRequest) -> None:
    """Until a whole chunk would go out in ``push()`` again (bounded): nothing
    queued, and no feeder yet (idle) or the feeder back at the feed."""
    for _ in range(100):
        ready = feed._waiter is not None or req._idle is not None
        if feed.queued == 0 and req.audio_sent > 0 and ready:
            return
        await asyncio.sleep(0)
    raise AssertionError("the feeder never came back to the feed")


def stream_tasks() -> list[asyncio.Task[Any]]:
    """The request tasks (feeder, interrupt, time-out) alive now."""
    return [t for t in asyncio.all_tasks() if t.get_name() == "avatarkit-stream" and not t.done()]


async def test_whole_chunks_are_sent_in_push(avatar_server: DevServer) -> None:
    expected = await reference(avatar_server)
    async with make_session(avatar_server) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        chunks = [PCM[i : i + CHUNK] for i in range(0, len(PCM), CHUNK)]
        assert feed.push(chunks[0])  # no feeder yet: sent at once, by this call
        assert req.audio_sent == pytest.approx(0.04) and feed.queued == 0
        await until_parked(feed, req)
        for chunk in chunks[1:]:
            sent = req.audio_sent
            assert feed.push(chunk)
            # On the wire before push() returned: accounted, nothing queued.
            assert req.audio_sent == pytest.approx(sent + 0.04)
            assert feed.queued == 0
        assert stream_tasks() == []  # all of it went out from push()
        feed.end()  # a separate end: a feeder starts, to send it
        got = await asyncio.wait_for(payloads(req), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
    assert got == expected
    assert summary.frames == len(expected) == 50
    assert summary.audio_seconds == pytest.approx(2.0)


async def test_other_sizes_and_rates_go_through_the_feeder(avatar_server: DevServer) -> None:
    expected = await reference(avatar_server)
    async with make_session(avatar_server) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        await asyncio.sleep(0)  # the feeder waits at the feed
        sizes = [CHUNK, 1000, 3, CHUNK, 2000]  # after an odd piece, whole chunks wait too
        pos = 0
        for n in range(len(PCM)):
            if pos >= len(PCM):
                break
            size = sizes[n % len(sizes)]
            piece = bytearray(PCM[pos : pos + size])  # bytes-like is taken too
            pos += size
            sent = req.audio_sent
            assert feed.push(piece)
            if pos > CHUNK:  # not sent in push(): the feeder does it, in order
                assert req.audio_sent == sent
            await asyncio.sleep(0)
        feed.end()
        got = await asyncio.wait_for(payloads(req), BOUND)
    assert got == expected

    async with make_session(avatar_server, sample_rate=16000) as session:
        feed = AudioFeed()
        req = session.stream(feed, sample_rate=24000)  # resampled: always via the feeder
        await asyncio.sleep(0)
        pcm24 = speech_pcm(24000, seconds=2)
        for i in range(0, len(pcm24), CHUNK):
            feed.push(pcm24[i : i + CHUNK])
        assert feed.queued > 0
        feed.end()
        summary = await asyncio.wait_for(req.done(), BOUND)
    assert summary.frames == 50


async def test_realtime_pace_is_never_bypassed(avatar_server: DevServer) -> None:
    async with make_session(avatar_server) as session:
        feed = AudioFeed()
        req = session.stream(feed, pace="realtime")
        await asyncio.sleep(0)
        for i in range(0, 20 * CHUNK, CHUNK):  # 0.8 s: more than the 80 ms lead
            feed.push(PCM[i : i + CHUNK])
        assert feed.queued == 20  # nothing sent by push(): the pacer decides
        feed.end()
        await asyncio.sleep(0.2)
        assert 0 < req.audio_sent < 0.8  # paced, not all at once
        summary = await asyncio.wait_for(req.done(), BOUND)
    assert summary.frames == 20


def _server_request(server: DevServer, req: AvatarRequest) -> Any:
    assert server.last_session is not None and req.req_id is not None
    return server.last_session.requests[req.req_id]


async def test_the_last_chunk_pushed_with_end_carries_the_end(avatar_server: DevServer) -> None:
    expected = await reference(avatar_server)
    chunks = [PCM[i : i + CHUNK] for i in range(0, len(PCM), CHUNK)]
    async with make_session(avatar_server) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        await asyncio.sleep(0)  # the feeder waits at the feed: every push goes out at once
        for chunk in chunks[:-1]:
            assert feed.push(chunk)
        assert feed.push(chunks[-1], end=True)
        assert feed.queued == 0 and repr(feed) == "<AudioFeed ended queued=0>"
        with pytest.raises(RuntimeError, match="after end"):
            feed.push(chunks[0])
        got = await asyncio.wait_for(payloads(req), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        info = _server_request(avatar_server, req)
    assert got == expected and summary.frames == 50
    # One message per chunk, the last with the end: no empty end message after it.
    assert (info.audio_messages, info.end_received) == (50, True)


async def test_a_request_fed_from_push_alone_runs_no_task(avatar_server: DevServer) -> None:
    # Every chunk and the end go out from push(): no feeder starts, and the end
    # frame is awaited on a timer, so the request never has a task of its own.
    chunks = [PCM[i : i + CHUNK] for i in range(0, len(PCM), CHUNK)]
    async with make_session(avatar_server) as session:
        for _ in range(3):  # one after the other on the session
            feed = AudioFeed()
            req = session.stream(feed)
            for i, chunk in enumerate(chunks):
                assert feed.push(chunk, end=i == len(chunks) - 1)
                assert stream_tasks() == []
                await asyncio.sleep(0)
            frames = []
            async for frame in req:
                frames.append(frame)
                assert stream_tasks() == []
            summary = await asyncio.wait_for(req.done(), BOUND)
            assert frames[-1].end and summary.frames == len(frames) == 50
            assert summary.audio_seconds == pytest.approx(2.0) and not summary.interrupted
            assert _server_request(avatar_server, req).audio_messages == 50


async def test_pushed_with_end_but_queued_it_is_push_then_end(avatar_server: DevServer) -> None:
    async with make_session(avatar_server) as session:
        for last in (PCM[:1000], b""):  # a piece for the shaper; nothing at all
            feed = AudioFeed()
            req = session.stream(feed, pace="realtime")  # realtime: never sent in push()
            feed.push(PCM[:CHUNK])
            assert feed.push(last, end=True)
            summary = await asyncio.wait_for(req.done(), BOUND)
            info = _server_request(avatar_server, req)
            assert summary.audio_seconds == pytest.approx((CHUNK + len(last)) / 32000)
            assert info.end_received and info.audio_samples == (CHUNK + len(last)) // 2
            # The feeder sends what was queued, then an empty end: never in push().
            assert info.audio_messages == (3 if last else 2)


async def test_bad_pushes_raise_and_a_stopped_request_drops_audio(avatar_server: DevServer) -> None:
    async with make_session(avatar_server) as session:
        feed = AudioFeed()
        with pytest.raises(TypeError, match="PCM s16le bytes"):
            feed.push("not audio")  # type: ignore[arg-type]
        req = session.stream(feed)
        with pytest.raises(ValueError, match="one feed per stream"):
            feed._attach(req, CHUNK)
        feed.push(PCM[:CHUNK])
        await until_parked(feed, req)
        await asyncio.wait_for(req.interrupt(), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.interrupted
        assert feed.push(PCM[CHUNK : 2 * CHUNK]) is False  # the request took no more
        assert feed.queued == 0
        assert repr(feed) == "<AudioFeed closed queued=0>"
        feed.end()
        with pytest.raises(RuntimeError, match="after end"):
            feed.push(PCM[:CHUNK])
        # The session goes on: the next request streams.
        again = await asyncio.wait_for(session.stream(PCM).done(), BOUND)
    assert again.frames == 50


async def test_close_while_feeding_fails_the_request(avatar_server: DevServer) -> None:
    session = make_session(avatar_server)
    async with session:
        feed = AudioFeed()
        req = session.stream(feed)
        feed.push(PCM[:CHUNK])
        await until_parked(feed, req)
        feed.push(PCM[CHUNK : 2 * CHUNK])
    with pytest.raises(SessionClosedError):
        await asyncio.wait_for(req.done(), BOUND)
    assert feed.push(PCM[:CHUNK]) is False


class _FailingSends:
    """A custom transport (the ``transport_factory`` extension point) around the
    real picows one whose socket fails mid-send: once ``broken`` is set,
    ``send()`` raises ``ConnectionError`` while ``can_send_now()`` still says
    yes, as a connection lost between the check and the write would. The only
    way to reach ``AudioFeed.push()``'s failed direct send over real sockets."""

    def __init__(self) -> None:
        from avatarkit.transport import PicowsTransport

        self.inner = PicowsTransport()
        self.broken = False
        self.held = False  # can_send_now() says no, as under backpressure

    async def connect(
        self, url: str, headers: dict[str, str], timeout: float, listener: Any
    ) -> None:
        await self.inner.connect(url, headers, timeout, listener)

    def send(self, data: bytes) -> None:
        if self.broken:
            raise ConnectionError("connection reset mid-send")
        self.inner.send(data)

    def can_send_now(self) -> bool:
        return not self.held and self.inner.can_send_now()

    async def drain(self) -> None:
        await self.inner.drain()

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        await self.inner.close(code, reason, timeout)

    def abort(self) -> None:
        self.inner.abort()

    @property
    def is_open(self) -> bool:
        return self.inner.is_open


def _recording_factory() -> tuple[list[_FailingSends], Callable[[], _FailingSends]]:
    """A ``transport_factory`` making :class:`_FailingSends`, and the list of those made."""
    made: list[_FailingSends] = []

    def factory() -> _FailingSends:
        made.append(_FailingSends())
        return made[-1]

    return made, factory


async def test_a_direct_send_that_fails_fails_the_request(avatar_server: DevServer) -> None:
    made, factory = _recording_factory()
    async with make_session(avatar_server, transport_factory=factory) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        assert feed.push(PCM[:CHUNK])
        await until_parked(feed, req)
        made[0].broken = True
        # The chunk could not go out: push() says so, and the request fails.
        assert feed.push(PCM[CHUNK : 2 * CHUNK]) is False
        assert feed.push(PCM[2 * CHUNK : 3 * CHUNK]) is False  # it takes no more
        with pytest.raises(SessionClosedError):
            await asyncio.wait_for(req.done(), BOUND)
        await asyncio.sleep(0)
        assert [t for t in asyncio.all_tasks() if t.get_name() == "avatarkit-stream"] == []


async def test_a_request_stopped_before_its_first_step_closes_the_feed(
    avatar_server: DevServer,
) -> None:
    """close() right after stream(), before the feeder ran: the feed refuses
    audio from then on (push() returns False), as after any other end."""
    session = make_session(avatar_server)
    async with session:
        feed = AudioFeed()
        req = session.stream(feed)
    with pytest.raises(SessionClosedError):
        await asyncio.wait_for(req.done(), BOUND)
    assert feed.push(PCM[:CHUNK]) is False
    assert feed.queued == 0


async def test_a_generator_never_read_is_closed_with_its_request(
    avatar_server: DevServer,
) -> None:
    async def tts() -> Any:
        yield PCM[:CHUNK]

    source = tts()
    session = make_session(avatar_server)
    async with session:
        req = session.stream(source)
    with pytest.raises(SessionClosedError):
        await asyncio.wait_for(req.done(), BOUND)
    assert source.ag_frame is None  # closed (it never started, so nothing ran)


async def test_an_idle_request_starts_on_its_first_push_and_stops_without_audio(
    avatar_server: DevServer,
) -> None:
    async with make_session(avatar_server) as session:
        # started() waits for the first push, which needs no feeder.
        feed = AudioFeed()
        req = session.stream(feed)
        waiting = asyncio.ensure_future(req.started())
        await asyncio.sleep(0.05)
        assert not waiting.done() and stream_tasks() == []
        feed.push(PCM[:CHUNK])
        assert await asyncio.wait_for(waiting, BOUND) == req.req_id is not None
        await asyncio.wait_for(req.interrupt(), BOUND)
        assert (await asyncio.wait_for(req.done(), BOUND)).interrupted
        assert stream_tasks() == []

        # Interrupted before any audio: resolves at once, nothing was sent.
        feed = AudioFeed()
        req = session.stream(feed)
        await asyncio.wait_for(req.interrupt(), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.interrupted and summary.req_id is None and summary.audio_seconds == 0
        assert feed.push(PCM[:CHUNK]) is False and stream_tasks() == []

        # A separate end() with nothing pushed: a feeder starts to send it.
        feed = AudioFeed()
        req = session.stream(feed)
        feed.push(PCM[:CHUNK])
        feed.end()
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.frames == 1 and not summary.interrupted
        assert _server_request(avatar_server, req).audio_messages == 2  # the chunk, the end


async def test_a_feed_used_twice_is_refused_and_the_session_goes_on(
    avatar_server: DevServer,
) -> None:
    async with make_session(avatar_server) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        feed.push(PCM[:CHUNK], end=True)
        await asyncio.wait_for(req.done(), BOUND)
        with pytest.raises(ValueError, match="one feed per stream"):
            session.stream(feed)
        # Refused before a request existed: the session's one slot is still free.
        assert (await asyncio.wait_for(session.stream(PCM).done(), BOUND)).frames == 50
        assert stream_tasks() == []


async def test_started_waits_across_the_feeder_starting(avatar_server: DevServer) -> None:
    # started() awaited while the request is idle; the first audio is not a
    # whole chunk, so a feeder takes over: started() still returns the req_id
    # as soon as that audio goes out, not after the request.
    async with make_session(avatar_server) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        waiting = asyncio.ensure_future(req.started())
        await asyncio.sleep(0.02)
        feed.push(PCM[:1000])  # queued: the feeder starts; the shaper waits for more
        await asyncio.sleep(0.02)
        assert not waiting.done()
        feed.push(PCM[1000 : 3 * CHUNK])
        assert await asyncio.wait_for(waiting, BOUND) == req.req_id is not None
        assert "streaming" in repr(req)  # long before the request ends
        feed.end()
        assert (await asyncio.wait_for(req.done(), BOUND)).frames == 3


async def test_an_idle_request_stopped_under_backpressure_interrupts_from_a_feeder(
    avatar_server: DevServer,
) -> None:
    # While the socket takes no writes at once, an idle request's interrupt
    # cannot go out from interrupt()'s call: a feeder starts to send it (the
    # awaited path, bounded), then the request resolves as interrupted.
    made, factory = _recording_factory()
    async with make_session(avatar_server, transport_factory=factory) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        assert feed.push(PCM[:CHUNK]) and req.audio_sent > 0  # idle: sent from push()
        assert stream_tasks() == []
        made[0].held = True
        await asyncio.wait_for(req.interrupt(), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.interrupted
        await asyncio.sleep(0.1)
        assert _server_request(avatar_server, req).reason == "explicit"
        assert stream_tasks() == []
        made[0].held = False
        again = AudioFeed()
        req = session.stream(again)
        made[0].held = True  # idle, nothing sent, then interrupted: nothing to send
        await asyncio.wait_for(req.interrupt(), BOUND)
        assert (await asyncio.wait_for(req.done(), BOUND)).interrupted
        assert again.push(PCM[:CHUNK]) is False and stream_tasks() == []


async def test_push_after_interrupt_began_is_refused(avatar_server: DevServer) -> None:
    # interrupt() has begun (its task not yet run) while a feeder waits at the
    # feed: push() must not put audio on the wire after it, nor accept it.
    made, factory = _recording_factory()
    async with make_session(avatar_server, transport_factory=factory) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        made[0].held = True
        assert feed.push(PCM[:CHUNK])  # queued: a feeder starts and sends it
        made[0].held = False
        await until_parked(feed, req)
        stopping = asyncio.ensure_future(req.interrupt())
        await asyncio.sleep(0)
        assert feed.push(PCM[CHUNK : 2 * CHUNK]) is False
        assert feed.push(PCM[:CHUNK], end=True) is False
        await asyncio.wait_for(stopping, BOUND)
        assert (await asyncio.wait_for(req.done(), BOUND)).interrupted
        await asyncio.sleep(0.1)
        info = _server_request(avatar_server, req)
        assert (info.audio_messages, info.end_received, info.reason) == (1, False, "explicit")


async def test_an_idle_stop_from_user_code_logs_with_the_ids(
    avatar_server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    # interrupt() of an idle request runs in the caller's task, outside the
    # session's scope: its records still carry the session's ids.
    made, factory = _recording_factory()
    caplog.set_level(logging.INFO, logger="avatarkit")
    async with make_session(avatar_server, transport_factory=factory) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        assert feed.push(PCM[:CHUNK])
        made[0].broken = True  # the interrupt cannot go out
        await asyncio.wait_for(req.interrupt(), BOUND)
        assert (await asyncio.wait_for(req.done(), BOUND)).interrupted
        made[0].broken = False
        records = [r for r in caplog.records if "could not interrupt" in r.getMessage()]
        assert records
        for record in records:
            assert record.avatarkit_connection_id == session.connection_id  # type: ignore[attr-defined]
            assert record.avatarkit_req_id == req.req_id  # type: ignore[attr-defined]


async def _end_plainly(feed: AudioFeed, req: AvatarRequest) -> None:
    for i in range(0, 4 * CHUNK, CHUNK):  # whole chunks: sent in push(), no feeder
        feed.push(PCM[i : i + CHUNK])
    feed.push(PCM[4 * CHUNK : 5 * CHUNK], end=True)
    assert (await asyncio.wait_for(req.done(), BOUND)).frames == 5


async def _end_through_the_feeder(feed: AudioFeed, req: AvatarRequest) -> None:
    feed.push(PCM[: 3 * CHUNK // 2])  # not a whole chunk: a feeder task sends it
    feed.end()  # a separate end: the feeder sends it
    assert (await asyncio.wait_for(req.done(), BOUND)).frames == 2


async def _interrupt_idle(feed: AudioFeed, req: AvatarRequest) -> None:
    feed.push(PCM[:CHUNK])  # sent in push(): the request has no feeder
    await until_parked(feed, req)
    assert req._idle is not None
    await asyncio.wait_for(req.interrupt(), BOUND)
    assert (await asyncio.wait_for(req.done(), BOUND)).interrupted


async def _interrupt_the_feeder(feed: AudioFeed, req: AvatarRequest) -> None:
    feed.push(PCM[: 3 * CHUNK // 2])  # a feeder task starts and sends a chunk
    await until_parked(feed, req)
    assert req._idle is None and feed._waiter is not None  # the feeder waits at the feed
    await asyncio.wait_for(req.interrupt(), BOUND)
    assert (await asyncio.wait_for(req.done(), BOUND)).interrupted


@pytest.mark.parametrize(
    "ending", [_end_plainly, _end_through_the_feeder, _interrupt_idle, _interrupt_the_feeder]
)
async def test_a_finished_request_needs_no_garbage_collection(
    avatar_server: DevServer, ending: Callable[[AudioFeed, AvatarRequest], Awaitable[None]]
) -> None:
    # A request on a feed used to stay in a reference cycle (request -> its
    # source -> the feed -> the request) after it finished: every request was
    # garbage for the cyclic collector, whose pauses grow with the garbage
    # (at 1,000 sessions making requests, a 57 ms full collection). Finished,
    # it is now freed as soon as the caller drops it: with the collector off,
    # a request still alive then is held by a cycle (or a stray reference).
    async with make_session(avatar_server) as session:
        await asyncio.wait_for(session.stream(PCM[:CHUNK]).done(), BOUND)  # warm: lazy imports
        with collector_off():
            feed = AudioFeed()
            req = session.stream(feed)
            await ending(feed, req)
            if feed._ended:
                with pytest.raises(RuntimeError, match="after end"):
                    feed.push(PCM[:CHUNK])
                assert repr(feed) == "<AudioFeed ended queued=0>"
            else:  # interrupted: the feed refuses audio
                assert feed.push(PCM[:CHUNK]) is False
                assert repr(feed) == "<AudioFeed closed queued=0>"
            gone = weakref.ref(req)
            del req
            assert gone() is None, "the finished request is still referenced"
            assert feed._request is None
            with pytest.raises(ValueError, match="one feed per stream"):
                session.stream(feed)


async def test_audio_pushed_once_the_request_failed_is_refused(avatar_server: DevServer) -> None:
    # The service fails the request while the feeder waits at the feed: from
    # that moment push() refuses audio (it used to queue it and say True) and
    # nothing more goes out for that request.
    avatar_server.faults.send_error(13, "internal", after_frames=2)
    async with make_session(avatar_server) as session:
        feed = AudioFeed()
        req = session.stream(feed)
        feed.push(PCM[: 3 * CHUNK // 2])  # a feeder task starts and sends a chunk
        feed.push(PCM[3 * CHUNK // 2 : 3 * CHUNK])
        await until_parked(feed, req)
        with pytest.raises(AvatarSDKError, match="internal"):
            await asyncio.wait_for(req.done(), BOUND)
        assert feed.push(PCM[3 * CHUNK : 4 * CHUNK], end=True) is False
        assert feed._request is None and feed.queued == 0
        await asyncio.sleep(0.1)
        info = _server_request(avatar_server, req)
        assert (info.audio_messages, info.end_received) == (3, False)  # the 3 chunks, no end
