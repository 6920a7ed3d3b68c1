"""Benchmark of the built-in PCM -> Ogg Opus encoder.

Prints, for the 16 kHz and 24 kHz speech fixtures:

- the real-time factor of :class:`avatarkit.audio.opus.OggOpusEncoder` on one
  core (seconds of audio encoded per CPU second; the target is >= 100x), fed
  one 20 ms frame per call (the worst case for per-call overhead) and fed the
  whole clip in one call;
- the same for PyAV's libopus encoder called directly on the same frames
  (AudioFrame.from_ndarray + CodecContext.encode + bytes(packet), no Ogg);
- the ratio of the two costs (the target is <= 1.2x).

Each measurement is repeated, direct and ours interleaved, and the median is
reported. CPU time (``time.process_time``) is used so that other processes on
the machine disturb the figures less. It prints and asserts nothing.

Usage: ``python benchmarks/bench_opus.py [--seconds N] [--repeat R]``;
``--seconds 1`` is a quick smoke run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

try:
    from avatarkit.audio.opus import OggOpusEncoder, default_bitrate, import_av
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(ROOT / "src"))
    from avatarkit.audio.opus import OggOpusEncoder, default_bitrate, import_av

FRAME_MS = 20


def load_pcm(rate: int, seconds: float | None) -> bytes:
    """The speech fixture at ``rate``, cut to ``seconds`` (looped if shorter)."""
    pcm = (FIXTURES / f"speech_{rate}.pcm").read_bytes()
    if seconds is None:
        return pcm
    want = int(seconds * rate) * 2
    while len(pcm) < want:
        pcm += pcm
    return pcm[:want]


def encode_direct(av: Any, pcm: bytes, rate: int) -> int:
    """Encode with PyAV's libopus encoder directly, one call per frame; returns bytes out."""
    frame_samples = rate * FRAME_MS // 1000
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    ctx.format = "s16"
    ctx.bit_rate = default_bitrate(rate, frame_samples)
    ctx.options = {"application": "audio", "frame_duration": str(FRAME_MS)}
    ctx.open()
    usable = len(pcm) // 2 // frame_samples * frame_samples
    frames = np.frombuffer(pcm, dtype=np.int16, count=usable).reshape(-1, 1, frame_samples)
    size = 0
    for row in frames:
        frame = av.AudioFrame.from_ndarray(row, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in ctx.encode(frame):
            size += len(bytes(packet))
    for packet in ctx.encode(None):
        size += len(bytes(packet))
    return size


def encode_ours(pcm: bytes, rate: int, chunk_bytes: int | None) -> int:
    """Encode with OggOpusEncoder, ``chunk_bytes`` per call (None: all at once)."""
    encoder = OggOpusEncoder(rate, frame_duration_ms=FRAME_MS)
    size = 0
    step = chunk_bytes or len(pcm)
    for start in range(0, len(pcm), step):
        size += len(encoder.encode(pcm[start : start + step]))
    size += len(encoder.finish())
    return size


def cpu_seconds(fn: Any, *args: Any) -> float:
    """CPU time of one call."""
    start = time.process_time()
    fn(*args)
    return time.process_time() - start


def bench_rate(av: Any, rate: int, seconds: float | None, repeat: int) -> None:
    """Measure and print one sample rate."""
    pcm = load_pcm(rate, seconds)
    audio_s = len(pcm) / 2 / rate
    frame_bytes = rate * FRAME_MS // 1000 * 2
    encode_direct(av, pcm[: frame_bytes * 10], rate)  # warm up codec and imports
    encode_ours(pcm[: frame_bytes * 10], rate, frame_bytes)
    direct, per_frame, whole = [], [], []
    for _ in range(repeat):
        direct.append(cpu_seconds(encode_direct, av, pcm, rate))
        per_frame.append(cpu_seconds(encode_ours, pcm, rate, frame_bytes))
        whole.append(cpu_seconds(encode_ours, pcm, rate, None))
    ratios = [ours / base for ours, base in zip(per_frame, direct, strict=True) if base > 0]
    ratios_whole = [ours / base for ours, base in zip(whole, direct, strict=True) if base > 0]
    d, p, w = (statistics.median(x) for x in (direct, per_frame, whole))
    size = encode_ours(pcm, rate, None)
    print(f"{rate} Hz speech, {audio_s:.1f} s of audio, {FRAME_MS} ms frames, {repeat} runs:")
    print(f"  PyAV libopus direct        {audio_s / d:7.1f}x real time ({d * 1e3:7.1f} ms CPU)")
    print(f"  OggOpusEncoder, 20 ms/call {audio_s / p:7.1f}x real time ({p * 1e3:7.1f} ms CPU)")
    print(f"  OggOpusEncoder, one call   {audio_s / w:7.1f}x real time ({w * 1e3:7.1f} ms CPU)")
    print(
        f"  cost vs direct: {statistics.median(ratios):.3f}x (20 ms/call), "
        f"{statistics.median(ratios_whole):.3f}x (one call); "
        f"stream {size} bytes = {size * 8 / audio_s / 1000:.1f} kbit/s"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``argv`` as for the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=None, help="seconds of audio per run (default: whole clip)"
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per measurement")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.seconds is not None and args.seconds <= 2 else 7)
    av = import_av()
    print(f"PyAV {av.__version__}, FFmpeg libopus encoder, CPU time on one core")
    for rate in (16000, 24000):
        bench_rate(av, rate, args.seconds, repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
