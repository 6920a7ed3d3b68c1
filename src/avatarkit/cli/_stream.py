"""``demo`` and ``send``: stream one clip through a session and write what comes back."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._common import DEMO_CLIP, DEMO_RATE, FRAME_MS, CLIError, _note
from ._frames_file import JSONL_FORMAT, JSONL_VERSION, FrameSink
from ._summary import check_out_path, print_summary
from ._target import Target, _base_url, connect_target
from ._viewer_open import DemoViewer

if TYPE_CHECKING:
    from .._request import AvatarRequest
    from ..events import AnimationFrameEvent


@dataclass
class Clip:
    """Mono 16-bit audio ready to send."""

    pcm: bytes
    sample_rate: int
    """Rate of ``pcm`` (what is sent)."""
    source: str | None
    """Absolute path of the file read, if any."""
    source_rate: int
    """The file's own rate (before resampling)."""

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


@dataclass
class StreamResult:
    """What one streamed request gave."""

    req_id: str = ""
    frames: int = 0
    end_markers: int = 0
    chunks: int = 0
    first_audio_at: float = 0.0
    first_frame_at: float | None = None
    last_frame_at: float | None = None
    end_at: float | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    paced: bool = True

    @property
    def time_to_first_frame_s(self) -> float | None:
        if self.first_frame_at is None:
            return None
        return self.first_frame_at - self.first_audio_at

    @property
    def receive_s(self) -> float | None:
        """From the first audio sent to the end frame (or the last frame), in seconds."""
        end = self.end_at or self.last_frame_at
        return None if end is None else end - self.first_audio_at

    @property
    def frames_per_second(self) -> float | None:
        end = self.end_at or self.last_frame_at
        if end is None or end <= self.first_audio_at:
            return None
        return self.frames / (end - self.first_audio_at)


class Progress:
    """A plain-text progress bar on stderr: redrawn with ``\\r`` on a terminal,
    a line at every quarter otherwise."""

    WIDTH = 30

    def __init__(self, total_s: float, expected_frames: int, stream: IO[str] | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total_s = total_s
        self.expected = max(1, expected_frames)
        self.sent_s = 0.0
        self.frames = 0
        self._last_draw = 0.0
        self._quarter = -1

    def update(self, *, sent_s: float | None = None, frames: int | None = None) -> None:
        if sent_s is not None:
            self.sent_s = sent_s
        if frames is not None:
            self.frames = frames
        fraction = min(1.0, self.frames / self.expected)
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or fraction >= 1.0:
                self._last_draw = now
                self._draw(fraction)
        else:
            quarter = int(fraction * 4)
            if quarter > self._quarter:
                self._quarter = quarter
                print(self._text(fraction), file=self.stream, flush=True)

    def _text(self, fraction: float) -> str:
        return (
            f"  {fraction * 100:3.0f}%  audio sent {self.sent_s:5.1f}/{self.total_s:.1f} s"
            f"  frames {self.frames}"
        )

    def _draw(self, fraction: float) -> None:
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}]{self._text(fraction)} ")
        self.stream.flush()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self.tty:
            self._draw(min(1.0, self.frames / self.expected))
            self.stream.write("\n")
            self.stream.flush()


class _Receiver:
    """Session callbacks: count and write frames, note the end and any failure."""

    def __init__(self, result: StreamResult, sink: FrameSink, progress: Progress | None):
        self.result = result
        self.sink = sink
        self.progress = progress
        self.done = asyncio.Event()
        self.error: BaseException | None = None

    def on_animation(self, frame: AnimationFrameEvent) -> None:
        now = time.monotonic()
        result = self.result
        result.frames += 1
        if result.first_frame_at is None:
            result.first_frame_at = now
        result.last_frame_at = now
        self.sink.write(frame, time.time())
        if self.progress is not None:
            self.progress.update(frames=result.frames)
        if frame.end:
            result.end_markers += 1
            if result.end_at is None:
                result.end_at = now
            self.done.set()

    def on_error(self, error: Exception) -> None:
        if self.error is None and not self.done.is_set():
            self.error = error
            self.done.set()

    def on_close(self) -> None:
        if not self.done.is_set():
            self.error = self.error or CLIError(
                "the session closed before the request's end frame arrived",
                "run again; add --debug to see why",
            )
            self.done.set()


async def stream_clip(
    target: Target,
    clip: Clip,
    *,
    sink: FrameSink,
    audio_format: str = "pcm",
    chunk_ms: int = 40,
    realtime: bool = True,
    bitrate: int = 0,
    timeout: float | None = None,
    progress: Progress | None = None,
    on_started: Callable[[str], Awaitable[None]] | None = None,
) -> StreamResult:
    """Open a session, send ``clip`` in ``chunk_ms`` chunks and wait for its end frame.

    ``on_started(connection_id)`` runs once the session is open, before any
    audio is sent (``demo`` uses it for its live viewer).
    """
    from datetime import datetime, timedelta, timezone

    from .._request import RequestTimeoutError
    from ..config import AudioFormat, OggOpusEncoderConfig
    from ..session import new_avatar_session

    result = StreamResult(started_at=time.monotonic(), paced=realtime)
    receiver = _Receiver(result, sink, progress)
    opus = audio_format == "ogg_opus"
    session = new_avatar_session(
        api_key=target.api_key,
        app_id=target.app_id,
        avatar_id=target.avatar_id,
        console_endpoint_url=target.console_endpoint,
        ingress_endpoint_url=target.ingress_endpoint,
        expire_at=datetime.now(timezone.utc) + timedelta(hours=1),
        sample_rate=clip.sample_rate,
        bitrate=bitrate,
        audio_format=AudioFormat.OGG_OPUS if opus else AudioFormat.PCM_S16LE,
        ogg_opus_encoder=OggOpusEncoderConfig() if opus else None,
        on_animation=receiver.on_animation,
        on_error=receiver.on_error,
        on_close=receiver.on_close,
        ssl_context=target.ssl_context,
    )
    chunk_s = max(1, clip.sample_rate * chunk_ms // 1000) / clip.sample_rate
    wait = timeout if timeout is not None else 2 * clip.duration_s + 10
    async with session:
        if on_started is not None:
            await on_started(session.connection_id or "")
        result.first_audio_at = time.monotonic()
        # The same code path as users: stream() chunks, paces and bounds the
        # wait for the end frame (end_timeout after the audio played out).
        request = session.stream(
            clip.pcm,
            pace="realtime" if realtime else "fast",
            chunk_ms=chunk_ms,
            end_timeout=wait,
        )
        report = None if progress is None else asyncio.create_task(_report(request, progress))
        try:
            summary = await request.done()
        except RequestTimeoutError:
            raise CLIError(
                f"no end frame for request {request.req_id} within {wait:g} s "
                f"({result.frames} frames received)",
                "raise --timeout, or check the service",
            ) from None
        except Exception as exc:
            if receiver.error is not None and receiver.error is not exc:
                raise receiver.error from exc  # the cause came in first; report it
            raise
        finally:
            if report is not None:
                report.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await report
        result.req_id = summary.req_id or ""
        result.chunks = math.ceil(round(summary.audio_seconds / chunk_s, 6))
        if progress is not None:
            progress.update(sent_s=summary.audio_seconds)
    result.finished_at = time.monotonic()
    if receiver.error is not None:
        raise receiver.error
    return result


async def _report(request: AvatarRequest, progress: Progress) -> None:
    """Move the progress bar with the audio sent (the bar is redrawn at most 10 times/s)."""
    while True:
        progress.update(sent_s=request.audio_sent)
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------
# demo and send
# ---------------------------------------------------------------------------


def _demo_clip() -> Clip:
    from importlib.resources import files

    resource = files("avatarkit") / "data" / DEMO_CLIP
    pcm = resource.read_bytes()
    source = str(Path(str(resource)).resolve()) if isinstance(resource, Path) else None
    return Clip(pcm=pcm, sample_rate=DEMO_RATE, source=source, source_rate=DEMO_RATE)


def load_clip(path: str, *, sample_rate: int | None, audio_format: str) -> Clip:
    """Read ``path``, downmix to mono and resample to the nearest rate the format allows."""
    from ..audio import OPUS_RATES, PCM_RATES
    from ..audio.files import nearest_supported_rate, read_audio_file, resample

    samples, rate = read_audio_file(path, sample_rate=sample_rate)
    if sample_rate and sample_rate != rate:
        _note(f"--sample-rate {sample_rate} ignored: {path} says {rate} Hz in its header")
    if len(samples) == 0:
        raise CLIError(f"{path}: the file holds no audio samples")
    rates = OPUS_RATES if audio_format == "ogg_opus" else PCM_RATES
    target = nearest_supported_rate(rate, rates)
    if target != rate:
        _note(f"resampling {rate} Hz -> {target} Hz ({audio_format} allows {rates})")
        samples = resample(samples, rate, target)
    return Clip(
        pcm=samples.astype("<i2").tobytes(),
        sample_rate=target,
        source=str(Path(path).resolve()),
        source_rate=rate,
    )


def _header(clip: Clip, target: Target, audio_format: str, chunk_ms: int) -> dict[str, Any]:
    return {
        "type": "header",
        "format": JSONL_FORMAT,
        "version": JSONL_VERSION,
        "audio": clip.source,
        "audio_sample_rate": clip.source_rate,
        "sent_sample_rate": clip.sample_rate,
        "audio_format": "ogg_opus" if audio_format == "ogg_opus" else "pcm_s16le",
        "audio_duration_s": round(clip.duration_s, 4),
        "chunk_ms": chunk_ms,
        "service": "local" if target.local else "configured",
        "avatar_id": target.avatar_id,
        "started_at": round(time.time(), 6),
    }


async def _run_stream(
    args: argparse.Namespace,
    clip: Clip,
    *,
    title: str,
    audio_format: str,
    chunk_ms: int,
    realtime: bool,
    local_pace: str,
    bitrate: int,
    out: Path,
    open_viewer: bool = False,
) -> int:
    async with connect_target(args, local_pace=local_pace) as target:
        viewer = DemoViewer(target, open_browser=open_viewer, clip_seconds=clip.duration_s)
        sink = FrameSink(out, _header(clip, target, audio_format, chunk_ms))
        progress = Progress(clip.duration_s, math.ceil(clip.duration_s * 1000 / FRAME_MS))
        try:
            result = await stream_clip(
                target,
                clip,
                sink=sink,
                audio_format=audio_format,
                chunk_ms=chunk_ms,
                realtime=realtime,
                bitrate=bitrate,
                timeout=getattr(args, "timeout", None),
                progress=progress,
                on_started=viewer.on_started if title == "avatarkit demo" else None,
            )
        except BaseException:
            progress.finish()
            sink.close(keep=False)
            raise
        progress.finish()
        sink.close()
        await viewer.after(result.req_id)
        service = (
            f"local (embedded, {_base_url(target.console_endpoint)})"
            if target.local
            else f"configured ({_base_url(target.ingress_endpoint)})"
        )
    pace = "sent at real-time pace" if realtime else "sent unpaced"
    print_summary(
        title,
        result,
        clip,
        service=service,
        detail=f"{clip.sample_rate} Hz {audio_format}, {result.chunks} chunks of {chunk_ms} ms, "
        f"{pace}",
        out=out,
        plot_hint=target.local and out.suffix.lower() == ".jsonl",
    )
    return 0


async def _cmd_demo(args: argparse.Namespace) -> int:
    check_out_path(Path(args.out), overwrite=True)
    clip = _demo_clip()
    return await _run_stream(
        args,
        clip,
        title="avatarkit demo",
        audio_format="pcm",
        chunk_ms=40,
        realtime=not args.fast,
        local_pace="fast" if args.fast else "realtime",
        bitrate=0,
        out=Path(args.out),
        open_viewer=args.open,
    )


async def _cmd_send(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_out_path(out, overwrite=args.force)
    clip = load_clip(args.audio, sample_rate=args.sample_rate, audio_format=args.format)
    local_pace = args.local_pace or ("realtime" if args.realtime else "fast")
    return await _run_stream(
        args,
        clip,
        title="avatarkit send",
        audio_format=args.format,
        chunk_ms=args.chunk_ms,
        realtime=args.realtime,
        local_pace=local_pace,
        bitrate=args.bitrate,
        out=out,
    )
