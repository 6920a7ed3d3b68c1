"""The animation payload codec stands apart from the local service (issue 10).

``avatarkit._frames_codec`` encodes and decodes ``AnimationFrame`` payloads
without numpy, aiohttp or :mod:`avatarkit.devserver`, so a reader of payloads
(``avatarkit inspect``) does not start the local service's imports;
:mod:`avatarkit.devserver.animation` re-exports the same objects.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from avatarkit import _frames_codec as codec
from avatarkit.devserver import animation


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


@pytest.mark.parametrize(
    "name",
    [
        "AnimationFrame",
        "DecodedAnimation",
        "BLENDSHAPE_NAMES",
        "FRAME_MS",
        "VISEMES",
        "decode_animation",
        "encode_frame",
        "encode_frame_reference",
        "frames_for_samples",
    ],
)
def test_devserver_animation_re_exports_the_codec(name: str) -> None:
    assert getattr(animation, name) is getattr(codec, name)


def test_codec_round_trip_matches_protobuf() -> None:
    shapes = {n: i / 20 for i, n in enumerate(codec.BLENDSHAPE_NAMES)}
    frame = codec.AnimationFrame(7, 280, "ou", shapes)
    data = codec.encode_frame(frame)
    assert data == codec.encode_frame_reference(frame)
    decoded = codec.decode_animation(data)
    assert decoded["frame_index"] == 7 and decoded["viseme"] == "ou"
    assert decoded["blendshapes"] == pytest.approx(shapes, abs=1e-6)
    with pytest.raises(ValueError, match="not an AnimationFrame payload"):
        codec.decode_animation(b"\x08\x01\xff")
