"""The animation payload codec stands apart from the local service (issue 10).

``avatarkit._frames_codec`` encodes and decodes ``AnimationFrame`` payloads
without numpy, aiohttp or :mod:`avatarkit.devserver`, so a reader of payloads
(``avatarkit inspect``) does not start the local service's imports;
:mod:`avatarkit.devserver._animation` re-exports the same objects.
"""

from __future__ import annotations

import pytest

from avatarkit import _frames_codec as codec
from avatarkit.devserver import _animation as animation


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
