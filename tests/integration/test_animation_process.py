"""The local service's animation is the same in a fresh interpreter (a subprocess),
so nothing in it depends on hash randomization or other per-process state.

Split from tests/unit/test_animation.py, which runs no subprocess.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import numpy.typing as npt

from avatarkit.devserver._animation import AnimationAnalyzer, AnimationFrame, encode_frame
from tests._helpers import FIXTURES, speech_pcm


def speech(rate: int) -> npt.NDArray[np.int16]:
    return np.frombuffer(speech_pcm(rate), dtype="<i2").astype(np.int16)


def analyze(pcm: npt.NDArray[np.int16], rate: int, seed: str = "") -> list[AnimationFrame]:
    analyzer = AnimationAnalyzer(rate, seed)
    return analyzer.push(pcm) + analyzer.flush()


def _digest(frames: list[AnimationFrame]) -> str:
    return hashlib.sha256(b"".join(encode_frame(f) for f in frames)).hexdigest()


def test_frames_are_the_same_in_another_process() -> None:
    # Nothing depends on hash randomization or other per-process state.
    code = (
        "import hashlib, numpy as np, sys\n"
        "from avatarkit.devserver._animation import AnimationAnalyzer, encode_frame\n"
        "pcm = np.fromfile(sys.argv[1], dtype='<i2').astype(np.int16)\n"
        "a = AnimationAnalyzer(16000, 'seed-x')\n"
        "frames = a.push(pcm) + a.flush()\n"
        "print(hashlib.sha256(b''.join(encode_frame(f) for f in frames)).hexdigest())\n"
    )
    expected = _digest(analyze(speech(16000), 16000, seed="seed-x"))
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code, str(FIXTURES / "speech_16000.pcm")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert out.stdout.strip() == expected
