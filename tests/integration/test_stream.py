"""``session.stream()`` and ``AvatarRequest`` over real sockets (issue 11).

Every case runs the SDK against the local avatar service (``avatar_server``);
its fault injection makes the dropped connection, the server error and the
missing end frame (output stalled far beyond ``end_timeout``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from avatarkit import (
    AnimationFrameEvent,
    AudioFormat,
    AvatarRequest,
    AvatarSDKError,
    AvatarSDKErrorCode,
    OggOpusEncoderConfig,
    RequestInProgressError,
    RequestSummary,
    RequestTimeoutError,
    SessionClosedError,
    new_avatar_session,
)
from avatarkit.devserver import DevServer
from tests._helpers import FIXTURES

PCM16 = (FIXTURES / "speech_16000.pcm").read_bytes()[: 16000 * 2 * 2]  # 2 s
PCM24 = (FIXTURES / "speech_24000.pcm").read_bytes()[: 24000 * 2 * 2]  # 2 s

BOUND = 10.0  # "does not hang": far above every configured bound used here


async def tts(data: bytes, seed: int = 1) -> AsyncIterator[bytes]:
    """A TTS-like stream: chunks of random (odd too) sizes, yielding to the loop."""
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        size = rng.randint(1, 3000)
        yield data[pos : pos + size]
        pos += size
        await asyncio.sleep(0)


def feeders() -> list[asyncio.Task[Any]]:
    """The stream feeder tasks still alive (none once a request resolved)."""
    return [t for t in asyncio.all_tasks() if t.get_name() == "avatarkit-stream" and not t.done()]


async def collect(req: AvatarRequest) -> list[AnimationFrameEvent]:
    return [frame async for frame in req]


async def test_tts_generator_24k_into_16k_session(avatar_server: DevServer) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs(sample_rate=16000)) as session:
        req = session.stream(tts(PCM24), sample_rate=24000)
        assert isinstance(req, AvatarRequest)
        frames, summary = await asyncio.wait_for(asyncio.gather(collect(req), req.done()), BOUND)
        req_id = await req.started()
        assert req.req_id == req_id
        assert isinstance(summary, RequestSummary)
        assert summary.req_id == req_id and not summary.interrupted
        assert [f.end for f in frames] == [False] * (len(frames) - 1) + [True]
        assert {f.req_id for f in frames} == {req_id}
        assert summary.frames == len(frames) >= 40  # 25 fps, 2 s
        assert summary.audio_seconds == pytest.approx(2.0, abs=0.01)
        assert summary.time_to_first_frame is not None and summary.time_to_first_frame >= 0
        assert summary.real_time_factor is not None and summary.real_time_factor > 0
        # The service got 2 s at 16 kHz.
        state = _request_state(avatar_server, req_id)
        assert state.audio_samples == pytest.approx(32000, abs=16)


async def test_late_iterator_gets_every_frame_beside_callbacks_and_frames(
    avatar_server: DevServer,
) -> None:
    seen: list[str] = []
    kwargs = avatar_server.session_kwargs(on_animation=lambda f: seen.append(f.req_id))
    async with new_avatar_session(**kwargs) as session:
        all_frames: list[AnimationFrameEvent] = []

        async def session_frames() -> None:
            async for frame in session.frames():
                all_frames.append(frame)
                if frame.end:
                    return

        watcher = asyncio.create_task(session_frames())
        await asyncio.sleep(0)
        req = session.stream(PCM16)
        summary = await asyncio.wait_for(req.done(), BOUND)  # nobody iterated yet
        frames = await collect(req)  # late: still every frame, from the first
        await asyncio.wait_for(watcher, BOUND)
        assert len(frames) == summary.frames == len(all_frames) == len(seen)
        assert [f.message for f in frames] == [f.message for f in all_frames]
        assert frames[-1].end


async def test_fifty_requests_in_sequence_never_leak(avatar_server: DevServer) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        ids = set()
        for i in range(50):
            req = session.stream(PCM16[: 3200 * (1 + i % 3)])
            frames = await asyncio.wait_for(collect(req), BOUND)
            summary = await req.done()
            assert {f.req_id for f in frames} == {summary.req_id}
            assert frames[-1].end and summary.frames == len(frames)
            ids.add(summary.req_id)
        assert len(ids) == 50


async def test_one_request_at_a_time(avatar_server: DevServer) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(tts(PCM16), pace="realtime")
        with pytest.raises(RequestInProgressError) as info:
            session.stream(PCM16)
        assert isinstance(info.value, AvatarSDKError) and isinstance(info.value, RuntimeError)
        assert info.value.code is AvatarSDKErrorCode.invalidRequest
        assert "done()" in str(info.value)
        with pytest.raises(RequestInProgressError):
            await session.send_audio(PCM16[:3200])
        await req.interrupt()
        summary = await req.done()
        assert summary.interrupted
        again = await asyncio.wait_for(session.stream(PCM16[:6400]).done(), BOUND)
        assert not again.interrupted and again.frames > 0


async def test_bad_arguments_raise_at_once(avatar_server: DevServer) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        with pytest.raises(TypeError, match="cannot stream"):
            session.stream(12345)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="pace"):
            session.stream(PCM16, pace="slow")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="end_timeout"):
            session.stream(PCM16, end_timeout=0)
        # The slot was not taken by the refused calls.
        assert (await asyncio.wait_for(session.stream(PCM16[:3200]).done(), BOUND)).frames


async def test_interrupt_mid_stream(avatar_server: DevServer) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(tts(PCM16 * 5), pace="realtime")
        got: list[AnimationFrameEvent] = []
        async for frame in req:
            got.append(frame)
            if len(got) == 3:
                await req.interrupt()
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.interrupted and summary.audio_seconds < 10
        assert feeders() == []
        assert not got[-1].end  # it stopped without an end frame
        await req.interrupt()  # no-op once resolved
        assert (await req.done()).interrupted


async def test_session_interrupt_resolves_the_request(avatar_server: DevServer) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(tts(PCM16 * 5), pace="realtime")
        req_id = await asyncio.wait_for(req.started(), BOUND)
        assert await session.interrupt() == req_id
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.interrupted


async def test_connection_drop_raises_connection_closed(avatar_server: DevServer) -> None:
    avatar_server.faults.drop_connection(after_frames=3)
    errors: list[AvatarSDKError] = []
    kwargs = avatar_server.session_kwargs(on_error=errors.append)
    async with new_avatar_session(**kwargs) as session:
        req = session.stream(tts(PCM16 * 5), pace="realtime")
        frames: list[AnimationFrameEvent] = []
        with pytest.raises(AvatarSDKError) as info:
            async for frame in req:
                frames.append(frame)
        assert len(frames) >= 1
        assert info.value.code is AvatarSDKErrorCode.connectionClosed
        with pytest.raises(AvatarSDKError) as again:
            await asyncio.wait_for(req.done(), BOUND)
        assert again.value.code is AvatarSDKErrorCode.connectionClosed
        assert again.value.retryable == info.value.retryable
        assert feeders() == []


async def test_close_code_decides_retryable(avatar_server: DevServer) -> None:
    avatar_server.faults.close(4002, "session duration exceeded", after_frames=2)
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(tts(PCM16 * 5), pace="realtime")
        with pytest.raises(AvatarSDKError) as info:
            await asyncio.wait_for(req.done(), BOUND)
        assert info.value.code is AvatarSDKErrorCode.connectionClosed
        # 4002 (duration exceeded): a new session may go on.
        assert info.value.close_code == 4002 and info.value.retryable is True


async def test_server_error_for_the_request(avatar_server: DevServer) -> None:
    avatar_server.faults.send_error(13, "internal", after_frames=3)
    errors: list[AvatarSDKError] = []
    kwargs = avatar_server.session_kwargs(on_error=errors.append)
    async with new_avatar_session(**kwargs) as session:
        req = session.stream(tts(PCM16 * 5), pace="realtime")
        with pytest.raises(AvatarSDKError) as info:
            await asyncio.wait_for(req.done(), BOUND)
        assert info.value.req_id == req.req_id is not None
        assert info.value.code is AvatarSDKErrorCode.serverError
        assert [e.req_id for e in errors] == [req.req_id]  # on_error still sees it
        assert session.is_open  # the session goes on
        assert (await asyncio.wait_for(session.stream(PCM16[:3200]).done(), BOUND)).frames > 0


async def test_source_raising_interrupts_and_done_raises_it(avatar_server: DevServer) -> None:
    class TTSFailed(Exception):
        pass

    async def failing() -> AsyncIterator[bytes]:
        yield PCM16[:6400]
        await asyncio.sleep(0.05)
        raise TTSFailed("tts engine went away")

    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(failing())
        with pytest.raises(TTSFailed):
            await asyncio.wait_for(req.done(), BOUND)
        with pytest.raises(TTSFailed):
            await collect(req)
        assert feeders() == []
        req_id = req.req_id
        assert req_id is not None
        # The interrupt is on the wire when done() raises; the service may
        # not have read it yet: wait (bounded) for its record.
        for _ in range(200):
            if _request_state(avatar_server, req_id).reason == "explicit":
                break
            await asyncio.sleep(0.01)
        assert _request_state(avatar_server, req_id).reason == "explicit"
        assert (await asyncio.wait_for(session.stream(PCM16[:3200]).done(), BOUND)).frames


@pytest.mark.avatar_server(pace="realtime")
async def test_missing_end_frame_times_out(avatar_server: DevServer) -> None:
    avatar_server.faults.delay_frames(60.0)  # the output stalls: no end frame comes
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(PCM16[:3200], end_timeout=0.5)
        with pytest.raises(RequestTimeoutError) as info:
            await asyncio.wait_for(req.done(), BOUND)
        err = info.value
        assert isinstance(err, AvatarSDKError) and isinstance(err, TimeoutError)
        assert err.req_id == req.req_id and err.retryable
        assert "end_timeout" in str(err)
        assert feeders() == []
        with pytest.raises(RequestTimeoutError):
            await collect(req)


@pytest.mark.avatar_server(pace="realtime")
async def test_pause_longer_than_end_timeout_does_not_time_out(avatar_server: DevServer) -> None:
    # end_timeout does not run while the session holds the request (pause .. resume).
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(PCM16[:32000], end_timeout=0.5)  # 1 s of audio
        await asyncio.wait_for(req.started(), BOUND)
        await asyncio.sleep(0.2)
        await session.pause()
        await asyncio.sleep(1.5)  # three times end_timeout
        await session.resume()
        done = await asyncio.wait_for(req.done(), BOUND)
        assert not done.interrupted
        assert done.audio_seconds == pytest.approx(1.0, abs=0.01)
        assert _request_state(avatar_server, req.req_id).reason != "explicit"
        assert feeders() == []


async def test_user_close_resolves_the_request(avatar_server: DevServer) -> None:
    session = new_avatar_session(**avatar_server.session_kwargs())
    await session.init()
    await session.start()

    async def stalls() -> AsyncIterator[bytes]:
        yield PCM16[:3200]
        await asyncio.sleep(3600)  # a TTS that never yields again
        yield b""

    req = session.stream(stalls())
    await asyncio.wait_for(req.started(), BOUND)
    await asyncio.wait_for(session.close(), BOUND)
    with pytest.raises(SessionClosedError) as info:
        await asyncio.wait_for(req.done(), BOUND)
    assert info.value.code is AvatarSDKErrorCode.connectionClosed
    assert feeders() == []  # close() awaited the feeder
    with pytest.raises(SessionClosedError):
        session.stream(PCM16)


async def test_built_in_encoder_encodes_pcm_sources(avatar_server: DevServer) -> None:
    kwargs = avatar_server.session_kwargs(
        audio_format=AudioFormat.OGG_OPUS,
        sample_rate=16000,
        ogg_opus_encoder=OggOpusEncoderConfig(),
    )
    async with new_avatar_session(**kwargs) as session:
        summary = await asyncio.wait_for(session.stream(tts(PCM16)).done(), BOUND)
        assert summary.frames >= 40 and not summary.interrupted
        # An Ogg file goes through as is (24 kHz Ogg into a 16 kHz session is
        # still one valid Ogg Opus stream; Opus decodes at any rate).
        ogg = await asyncio.wait_for(session.stream(FIXTURES / "speech_24000.ogg").done(), BOUND)
        assert ogg.frames > 0


async def test_pcm_into_ogg_session_without_encoder_is_refused(avatar_server: DevServer) -> None:
    kwargs = avatar_server.session_kwargs(audio_format=AudioFormat.OGG_OPUS, sample_rate=24000)
    async with new_avatar_session(**kwargs) as session:
        with pytest.raises(TypeError, match="ogg_opus_encoder"):
            session.stream(PCM24)


async def test_hundred_sessions_stream_concurrently(avatar_server: DevServer) -> None:
    async def one(i: int) -> int:
        async with new_avatar_session(**avatar_server.session_kwargs()) as session:
            summary = await session.stream(tts(PCM16[:6400], seed=i)).done()
            return summary.frames

    counts = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(100))), 60)
    assert min(counts) >= 5, counts


async def test_lease_stream(avatar_server: DevServer) -> None:
    from avatarkit import SessionPool

    async with SessionPool(size=1, **avatar_server.session_kwargs()) as pool:
        async with pool.session() as lease:
            req = lease.stream(tts(PCM16))
            frames = await asyncio.wait_for(collect(req), BOUND)
            assert frames[-1].end and (await req.done()).frames == len(frames)
            unfinished = lease.stream(tts(PCM16 * 5), pace="realtime")
            await asyncio.wait_for(unfinished.started(), BOUND)
        # Released with a request streaming: it was interrupted, not left behind.
        assert (await asyncio.wait_for(unfinished.done(), BOUND)).interrupted


def _request_state(server: DevServer, req_id: str) -> Any:
    for session in [*server.sessions.values(), *server.closed_sessions]:
        if req_id in session.requests:
            return session.requests[req_id]
    raise AssertionError(f"the service never saw request {req_id}")


async def test_empty_iterable_sync_iterable_and_wav_file(avatar_server: DevServer) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:

        async def nothing() -> AsyncIterator[bytes]:
            return
            yield b""

        empty = await asyncio.wait_for(session.stream(nothing()).done(), BOUND)
        assert empty.audio_seconds == 0 and not empty.interrupted
        half = PCM16[:16000]  # 0.5 s
        chunks = [half[i : i + 999] for i in range(0, len(half), 999)]  # odd sizes
        sync = await asyncio.wait_for(session.stream(iter(chunks)).done(), BOUND)
        assert sync.audio_seconds == pytest.approx(0.5, abs=0.001) and sync.frames >= 12
        wav = await asyncio.wait_for(session.stream(FIXTURES / "speech_16000.wav").done(), BOUND)
        assert wav.frames > 0


async def test_cancelling_a_done_waiter_does_not_cancel_the_request(
    avatar_server: DevServer,
) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(tts(PCM16))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(req.done(), 0.0001)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert not summary.interrupted and summary.frames >= 40


# -- after the end is sent: the end bound is a timer, no task waits -------------------


async def _all_sent(session: Any, seconds: float) -> AvatarRequest:
    """A request whose audio (``seconds`` of it) went out at once, its end with it."""
    req = session.stream(PCM16[: int(32000 * seconds)], end_timeout=2)
    for _ in range(200):  # fast pace: a few loop turns
        if req.audio_sent >= seconds:
            break
        await asyncio.sleep(0.005)
    assert req.audio_sent == pytest.approx(seconds)
    await asyncio.sleep(0.02)  # the feeder's last step: arm the timer, return
    return req


@pytest.mark.avatar_server(pace="realtime")
async def test_no_task_waits_for_the_end_frame(avatar_server: DevServer) -> None:
    # The service plays 1 s of audio out in real time; the client sent it at once.
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = await _all_sent(session, 1.0)
        assert "streaming" in repr(req)  # the end frame is still ~1 s away
        assert feeders() == []  # and no task waits for it
        frames = await asyncio.wait_for(collect(req), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert frames[-1].end and summary.frames == len(frames) and not summary.interrupted
        assert feeders() == []
        assert (await asyncio.wait_for(session.stream(PCM16[:3200]).done(), BOUND)).frames


@pytest.mark.avatar_server(pace="realtime")
async def test_interrupt_while_only_the_end_timer_runs(avatar_server: DevServer) -> None:
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = await _all_sent(session, 1.0)
        assert feeders() == []
        await asyncio.wait_for(req.interrupt(), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.interrupted
        assert feeders() == []  # the task that sent the interrupt ended with it
        await asyncio.sleep(0.1)  # the service has the interrupt
        assert _request_state(avatar_server, req.req_id).reason == "explicit"
        frames = await asyncio.wait_for(collect(req), BOUND)
        assert not frames or not frames[-1].end
        assert (await asyncio.wait_for(session.stream(PCM16[:3200]).done(), BOUND)).frames


@pytest.mark.avatar_server(pace="realtime")
async def test_close_while_only_the_end_timer_runs(avatar_server: DevServer) -> None:
    session = new_avatar_session(**avatar_server.session_kwargs())
    await session.init()
    await session.start()
    req = await _all_sent(session, 1.0)
    await asyncio.wait_for(session.close(), BOUND)
    with pytest.raises(SessionClosedError):
        await asyncio.wait_for(req.done(), BOUND)
    assert feeders() == []


@pytest.mark.avatar_server(pace="realtime")
async def test_frames_still_coming_move_the_end_bound_on(avatar_server: DevServer) -> None:
    # Every frame comes 0.4 s late, the last ~1.4 s after the audio was sent, past
    # playback end + end_timeout (1.3 s): the timer finds a frame of the last
    # 40 ms when it runs out, and waits on instead of failing the request.
    avatar_server.faults.delay_frames(0.4)
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = session.stream(PCM16[:32000], end_timeout=0.3)
        frames = await asyncio.wait_for(collect(req), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert frames[-1].end and not summary.interrupted
        assert feeders() == []


@pytest.mark.avatar_server(pace="realtime")
async def test_two_interrupts_while_only_the_end_timer_runs(avatar_server: DevServer) -> None:
    # The second interrupt() must not cancel the task the first one started
    # before it ran: the request resolves interrupted, the service gets it.
    async with new_avatar_session(**avatar_server.session_kwargs()) as session:
        req = await _all_sent(session, 1.0)
        await asyncio.wait_for(asyncio.gather(req.interrupt(), req.interrupt()), BOUND)
        summary = await asyncio.wait_for(req.done(), BOUND)
        assert summary.interrupted
        await asyncio.sleep(0.1)
        assert _request_state(avatar_server, req.req_id).reason == "explicit"
        assert feeders() == []
