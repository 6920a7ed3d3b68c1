"""In-process micro-benchmarks: the Ogg Opus encoder and the animation analysis.

``python -m benchmarks.micro opus [--seconds N] [--repeat R]``: real-time
factor (audio seconds per CPU second) of ``OggOpusEncoder`` fed 20 ms per call
and the whole clip at once, and of PyAV's libopus encoder called directly on
the same frames (no Ogg), interleaved; the cost ratio ours / direct.
``python -m benchmarks.micro anim [--repeat N]``: CPU per frame of the local
service's ``AnimationAnalyzer.push`` (one 40 ms chunk) and ``encode_frame``,
and of ``push`` with 400 ms at a time. Both on the speech fixtures, medians of
the runs, CPU time (``time.process_time``: other processes disturb it less);
the result is the last stdout line, ``RESULT <json>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import emit_result

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
FRAME_MS = 20


def _cpu(fn: Callable[..., Any], *args: Any) -> float:
    start = time.process_time()
    fn(*args)
    return time.process_time() - start


def _speech(rate: int, seconds: float | None) -> bytes:
    """The speech fixture at ``rate``, cut to ``seconds`` (looped if shorter)."""
    pcm = (FIXTURES / f"speech_{rate}.pcm").read_bytes()
    if seconds is None:
        return pcm
    want = int(seconds * rate) * 2
    while len(pcm) < want:
        pcm += pcm
    return pcm[:want]


def opus(seconds: float | None, repeat: int) -> dict[str, Any]:
    from avatarkit.audio.opus import OggOpusEncoder, default_bitrate, import_av

    av = import_av()

    def direct(pcm: bytes, rate: int) -> None:
        samples = rate * FRAME_MS // 1000
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate, ctx.layout, ctx.format = rate, "mono", "s16"
        ctx.bit_rate = default_bitrate(rate, samples)
        ctx.options = {"application": "audio", "frame_duration": str(FRAME_MS)}
        ctx.open()
        usable = len(pcm) // 2 // samples * samples
        for row in np.frombuffer(pcm, np.int16, usable).reshape(-1, 1, samples):
            frame = av.AudioFrame.from_ndarray(row, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in ctx.encode(frame):
                bytes(packet)
        for packet in ctx.encode(None):
            bytes(packet)

    def ours(pcm: bytes, rate: int, step: int | None) -> int:
        encoder = OggOpusEncoder(rate, frame_duration_ms=FRAME_MS)
        step = step or len(pcm)
        size = sum(len(encoder.encode(pcm[i : i + step])) for i in range(0, len(pcm), step))
        return size + len(encoder.finish())

    rates = []
    for rate in (16000, 24000):
        pcm = _speech(rate, seconds)
        audio_s = len(pcm) / 2 / rate
        frame_bytes = rate * FRAME_MS // 1000 * 2
        direct(pcm[: frame_bytes * 10], rate)  # warm up codec and imports
        ours(pcm[: frame_bytes * 10], rate, frame_bytes)
        d, p, w = [], [], []
        for _ in range(repeat):
            d.append(_cpu(direct, pcm, rate))
            p.append(_cpu(ours, pcm, rate, frame_bytes))
            w.append(_cpu(ours, pcm, rate, None))
        md, mp, mw = (statistics.median(x) for x in (d, p, w))
        size = ours(pcm, rate, None)
        rates.append(
            {
                "rate": rate,
                "audio_s": round(audio_s, 2),
                "runs": repeat,
                "direct_x_realtime": round(audio_s / md, 1),
                "per_frame_x_realtime": round(audio_s / mp, 1),
                "whole_x_realtime": round(audio_s / mw, 1),
                "per_frame_x_direct": round(
                    statistics.median(a / b for a, b in zip(p, d, strict=True)), 3
                ),
                "whole_x_direct": round(
                    statistics.median(a / b for a, b in zip(w, d, strict=True)), 3
                ),
                "kbit_s": round(size * 8 / audio_s / 1000, 1),
            }
        )
    return {"ok": True, "pyav": av.__version__, "frame_ms": FRAME_MS, "rates": rates}


def anim(repeat: int) -> dict[str, Any]:
    from avatarkit.devserver._animation import AnimationAnalyzer, encode_frame

    rate, chunk = 16000, 640
    pcm = np.frombuffer((FIXTURES / "speech_16000.pcm").read_bytes(), dtype="<i2").astype(np.int16)
    n = pcm.size // chunk
    chunks = [pcm[i * chunk : (i + 1) * chunk] for i in range(n)]
    batches = [pcm[i : i + 10 * chunk] for i in range(0, n * chunk, 10 * chunk)]

    def one_pass(parts: list[Any], seed: str) -> tuple[float, float, int]:
        push = AnimationAnalyzer(rate, seed=seed).push
        frames: list[Any] = []
        t0 = time.process_time()
        for part in parts:
            frames += push(part)
        t1 = time.process_time()
        for frame in frames:
            encode_frame(frame)
        return t1 - t0, time.process_time() - t1, len(frames)

    one_pass(chunks, "warm-up")
    push_us, enc_us, batch_us = [], [], []
    for r in range(repeat):
        tp, te, frames = one_pass(chunks, f"req-{r}")
        push_us.append(tp / frames * 1e6)
        enc_us.append(te / frames * 1e6)
        tb, _, frames_b = one_pass(batches, f"req-{r}")
        batch_us.append(tb / frames_b * 1e6)
    push, enc = statistics.median(push_us), statistics.median(enc_us)
    return {
        "ok": True,
        "rate": rate,
        "frames_per_pass": n,
        "repeat": repeat,
        "push_us_per_frame": round(push, 2),
        "encode_us_per_frame": round(enc, 2),
        "total_us_per_frame": round(push + enc, 2),
        "push_batch10_us_per_frame": round(statistics.median(batch_us), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("which", choices=("opus", "anim"))
    p.add_argument("--seconds", type=float, default=None, help="opus: audio per run (whole clip)")
    p.add_argument("--repeat", type=int, default=None, help="runs (opus 7, anim 15)")
    args = p.parse_args(argv)
    if args.which == "opus":
        result = opus(args.seconds, args.repeat or 7)
    else:
        result = anim(args.repeat or 15)
    print(result, file=sys.stderr)
    emit_result(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
