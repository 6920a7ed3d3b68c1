"""``avatarkit._frames_codec`` imports neither numpy, aiohttp nor the local service,
checked in a fresh interpreter (a subprocess) whose ``sys.modules`` starts empty.

Split from tests/unit/test_devserver_frames_codec.py, which runs no subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys


def test_codec_imports_neither_numpy_nor_the_service() -> None:
    probe = (
        "import sys, json\n"
        "import avatarkit._frames_codec as c\n"
        "frame = c.AnimationFrame(3, 120, 'aa', {n: 0.5 for n in c.BLENDSHAPE_NAMES})\n"
        "decoded = c.decode_animation(c.encode_frame(frame))\n"
        "heavy = [m for m in ('numpy', 'aiohttp', 'avatarkit.devserver') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'viseme': decoded['viseme']}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(out.stdout)
    assert seen == {"heavy": [], "viseme": "aa"}
