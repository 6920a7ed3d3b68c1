"""CPU per frame of the local service's animation analysis, in isolation.

What the service does for every 40 ms of audio of every real-time session:
``AnimationAnalyzer.push`` of one 40 ms chunk (640 samples at 16 kHz: one
frame each), then ``encode_frame`` of the frame it returns. Fed the 16 kHz
speech fixture (13.6 s, 340 frames) chunk by chunk, ``--repeat`` times, one
analyzer per pass (as a request); CPU time (``time.process_time``) of each
part, per frame; the median of the passes is reported. For context, the same
audio pushed 10 frames (400 ms) at a time, which is how the service analyses
audio that arrives ahead of real time.

Prints a summary and, as its last stdout line, ``RESULT <json>`` for the
driver. ``python benchmarks/bench_animation.py [--repeat N]``; run it with the
SDK importable (``PYTHONPATH=src``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "speech_16000.pcm"
RATE = 16000
CHUNK = RATE * 40 // 1000

try:
    from avatarkit.devserver.animation import AnimationAnalyzer, encode_frame
except ImportError:  # a checkout without an installed package
    sys.path.insert(0, str(ROOT / "src"))
    from avatarkit.devserver.animation import AnimationAnalyzer, encode_frame


Pcm = np.ndarray[Any, np.dtype[np.int16]]


def one_pass(chunks: list[Pcm], seed: str) -> tuple[float, float, int]:
    analyzer = AnimationAnalyzer(RATE, seed=seed)
    push = analyzer.push
    frames = []
    t0 = time.process_time()
    for chunk in chunks:
        frames += push(chunk)
    t1 = time.process_time()
    for frame in frames:
        encode_frame(frame)
    t2 = time.process_time()
    return t1 - t0, t2 - t1, len(frames)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args(argv)
    pcm = np.frombuffer(FIXTURE.read_bytes(), dtype="<i2").astype(np.int16)
    n = pcm.size // CHUNK
    chunks = [pcm[i * CHUNK : (i + 1) * CHUNK] for i in range(n)]
    batches = [pcm[i : i + 10 * CHUNK] for i in range(0, n * CHUNK, 10 * CHUNK)]
    one_pass(chunks, "warm-up")
    push_us, enc_us, batch_us = [], [], []
    for r in range(args.repeat):
        tp, te, frames = one_pass(chunks, f"req-{r}")
        push_us.append(tp / frames * 1e6)
        enc_us.append(te / frames * 1e6)
        tb, _, frames_b = one_pass(batches, f"req-{r}")
        batch_us.append(tb / frames_b * 1e6)
    push = statistics.median(push_us)
    enc = statistics.median(enc_us)
    result = {
        "ok": True,
        "rate": RATE,
        "frames_per_pass": n,
        "repeat": args.repeat,
        "push_us_per_frame": round(push, 2),
        "encode_us_per_frame": round(enc, 2),
        "total_us_per_frame": round(push + enc, 2),
        "push_min_max": [round(min(push_us), 2), round(max(push_us), 2)],
        "push_batch10_us_per_frame": round(statistics.median(batch_us), 2),
        "numpy": np.__version__,
    }
    print(
        f"AnimationAnalyzer.push, 40 ms chunks: {push:.2f} us/frame; encode_frame: {enc:.2f} "
        f"us/frame; together {push + enc:.2f} us/frame "
        f"(push of 400 ms at a time: {result['push_batch10_us_per_frame']:.2f} us/frame)"
    )
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
