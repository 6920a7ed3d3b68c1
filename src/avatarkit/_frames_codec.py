"""Animation payloads: the ``AnimationFrame`` protobuf codec, without numpy.

The frames the local avatar service computes
(:mod:`avatarkit.devserver._animation`) travel as ``AnimationFrame`` messages
(``avatarkit_animation.proto``). Encoding and decoding live here, apart from the
lip-sync analysis, so that readers of those payloads (``avatarkit inspect``,
users' own tools) import neither numpy nor the local service.
:mod:`avatarkit.devserver._animation` re-exports every name.
"""

from __future__ import annotations

import operator
import struct
from dataclasses import dataclass, field
from typing import TypedDict

from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from avatarkit.proto import avatarkit_animation_pb2 as _pb
from avatarkit.protocol import encode_varint

__all__ = [
    "BLENDSHAPE_NAMES",
    "FRAME_MS",
    "VISEMES",
    "AnimationFrame",
    "DecodedAnimation",
    "decode_animation",
    "encode_frame",
    "encode_frame_reference",
    "frames_for_samples",
]


FRAME_MS = 40
"""Duration of one animation frame (25 frames per second)."""

BLENDSHAPE_NAMES: tuple[str, ...] = (
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "cheekPuff",
    "browInnerUp",
    "eyeBlinkLeft",
    "eyeBlinkRight",
)
"""ARKit blendshape names present in every frame, in this order."""
_NAME_SET = frozenset(BLENDSHAPE_NAMES)

VISEMES: tuple[str, ...] = ("sil", "PP", "FF", "SS", "aa", "E", "ih", "oh", "ou")
"""Viseme labels the analyzer can produce."""


@dataclass(slots=True)
class AnimationFrame:
    """One 40 ms animation frame of a request."""

    frame_index: int
    timestamp_ms: int
    viseme: str
    blendshapes: dict[str, float]
    packed_weights: bytes | None = field(default=None, init=False, repr=False, compare=False)
    """The ``blendshapes`` map already encoded (set by the analyzer, which encodes
    a block of frames at once); ``None`` to encode it from ``blendshapes``. Not
    copied by ``dataclasses.replace``; clear it if you change ``blendshapes``."""


class DecodedAnimation(TypedDict):
    """What :func:`decode_animation` returns (a plain dict)."""

    frame_index: int
    timestamp_ms: int
    viseme: str
    blendshapes: dict[str, float]


def frames_for_samples(n_samples: int, sample_rate: int) -> int:
    """Number of frames for ``n_samples`` of audio: ``ceil(n / (rate * 0.040))``."""
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    # n / (rate * 40 / 1000) = n * 25 / rate, computed exactly.
    return -(-n_samples * 1000 // (sample_rate * FRAME_MS))


# -- payload ---------------------------------------------------------------------


def _map_entry_prefix(name: str) -> bytes:
    """Bytes of a ``blendshapes`` map entry up to its float value."""
    key = name.encode()
    # key: field 1, length-delimited; then the tag of the value: field 2, fixed32
    entry = b"\x0a" + encode_varint(len(key)) + key + b"\x15"
    return b"\x22" + encode_varint(len(entry) + 4) + entry


def _weights_struct(names: tuple[str, ...]) -> struct.Struct:
    """One struct that lays out every map entry, in the serializer's (sorted) order."""
    fmt = "<" + "".join(f"{len(_map_entry_prefix(n))}sf" for n in names)
    return struct.Struct(fmt)


_SORTED_NAMES = tuple(sorted(BLENDSHAPE_NAMES))
_SORTED_PREFIXES = tuple(_map_entry_prefix(n) for n in _SORTED_NAMES)
_WEIGHTS = _weights_struct(_SORTED_NAMES)
_get_sorted = operator.itemgetter(*_SORTED_NAMES)
# pack() arguments: each entry's prefix, then its weight (filled in per frame).
_WEIGHT_ARGS: list[bytes | float] = [x for p in _SORTED_PREFIXES for x in (p, 0.0)]
_THREES = (3,) * len(_SORTED_NAMES)
_VISEME_FIELDS = {v: b"\x1a" + encode_varint(len(v)) + v.encode() for v in VISEMES}


def encode_frame(frame: AnimationFrame) -> bytes:
    """Serialize ``frame`` as an ``AnimationFrame`` protobuf (weights to 3 decimals).

    Written out by hand (one ``struct.pack`` for the weights) because the
    service encodes every frame of every session; the bytes equal protobuf's
    deterministic serialization (tests compare them).
    """
    head = b""
    index = frame.frame_index
    if index:
        head = b"\x08" + encode_varint(index)
    timestamp = frame.timestamp_ms
    if timestamp:
        head += b"\x10" + encode_varint(timestamp)
    viseme = frame.viseme
    if viseme:
        field = _VISEME_FIELDS.get(viseme)
        if field is None:
            data = viseme.encode()
            field = b"\x1a" + encode_varint(len(data)) + data
        head += field
    if frame.packed_weights is not None:
        return head + frame.packed_weights
    shapes = frame.blendshapes
    if len(shapes) == len(_SORTED_NAMES):
        try:
            weights = _get_sorted(shapes)
        except KeyError:  # other names
            pass
        else:
            args = _WEIGHT_ARGS.copy()
            args[1::2] = map(round, weights, _THREES)
            return head + _WEIGHTS.pack(*args)
    # Any other set of names: the general path.
    return head + b"".join(
        _map_entry_prefix(name) + struct.pack("<f", round(shapes[name], 3))
        for name in sorted(shapes)
    )


def encode_frame_reference(frame: AnimationFrame) -> bytes:
    """Serialize ``frame`` with protobuf itself (what :func:`encode_frame` must equal)."""
    msg = _pb.AnimationFrame(
        frame_index=frame.frame_index,
        timestamp_ms=frame.timestamp_ms,
        viseme=frame.viseme,
        blendshapes={name: round(value, 3) for name, value in frame.blendshapes.items()},
    )
    data: bytes = msg.SerializeToString(deterministic=True)
    return data


def decode_animation(payload: bytes) -> DecodedAnimation:
    """Parse an animation payload of the local service.

    Returns ``{"frame_index": int, "timestamp_ms": int, "viseme": str,
    "blendshapes": {name: float}}``. Raises :class:`ValueError` if ``payload``
    is not such a payload.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
    data = bytes(payload)
    msg = _pb.AnimationFrame()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise ValueError(f"not an AnimationFrame payload: {exc}") from None
    if len(UnknownFieldSet(msg)):
        raise ValueError("not an AnimationFrame payload: it has fields the message does not define")
    if not msg.viseme or not msg.blendshapes:
        raise ValueError("not an AnimationFrame payload: missing viseme or blendshapes")
    if msg.timestamp_ms != msg.frame_index * FRAME_MS:
        raise ValueError(
            f"not an AnimationFrame payload: timestamp_ms {msg.timestamp_ms} "
            f"!= {FRAME_MS} * frame_index {msg.frame_index}"
        )
    stored = dict(msg.blendshapes)
    # Canonical names first, in BLENDSHAPE_NAMES order, then any others by name.
    order = [n for n in BLENDSHAPE_NAMES if n in stored]
    order += sorted(n for n in stored if n not in _NAME_SET)
    shapes: dict[str, float] = {}
    for name in order:
        value = stored[name]
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise ValueError(
                f"not an AnimationFrame payload: blendshape {name!r} = {value} outside [0, 1]"
            )
        # Weights travel as float32: 6 decimals recovers the encoded 3-decimal value.
        shapes[name] = round(float(value), 6)
    return {
        "frame_index": int(msg.frame_index),
        "timestamp_ms": int(msg.timestamp_ms),
        "viseme": msg.viseme,
        "blendshapes": shapes,
    }
