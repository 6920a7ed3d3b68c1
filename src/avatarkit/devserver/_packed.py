"""The frames the local service's analysis makes (see
:func:`~avatarkit.devserver._animation.analyze_blocks`).

A frame of a large analysed block carries its encoded weights already; the
service's frame wheel only sends those bytes, so such a frame
(:class:`PackedFrame`) builds its ``blendshapes`` dict only when something
reads it (the viewer page does).
"""

from __future__ import annotations

from typing import Any

from avatarkit._frames_codec import BLENDSHAPE_NAMES, FRAME_MS, AnimationFrame

__all__ = ["PackedFrame", "make_frame", "make_packed_frame"]


_SHAPES_SLOT: Any = AnimationFrame.__dict__["blendshapes"]  # the slot, behind the property below


class PackedFrame(AnimationFrame):
    """A frame whose weights are encoded already (``packed_weights``) and whose
    ``blendshapes`` dict is built only when read: the service sends most of
    its frames without ever reading it (the viewer page does read it)."""

    __slots__ = ("_weights",)
    _weights: list[float]  # the weights in BLENDSHAPE_NAMES order

    @property
    def blendshapes(self) -> dict[str, float]:
        try:
            shapes: dict[str, float] = _SHAPES_SLOT.__get__(self)
        except AttributeError:
            shapes = dict(zip(BLENDSHAPE_NAMES, self._weights, strict=True))
            _SHAPES_SLOT.__set__(self, shapes)
        return shapes

    @blendshapes.setter
    def blendshapes(self, value: dict[str, float]) -> None:
        _SHAPES_SLOT.__set__(self, value)


_new_frame = object.__new__


def make_frame(
    index: int, viseme: str, weights: list[float], packed: bytes | None
) -> AnimationFrame:
    """A plain frame (its ``blendshapes`` dict built now); ``packed``: its encoded weights."""
    frame = AnimationFrame(
        index, index * FRAME_MS, viseme, dict(zip(BLENDSHAPE_NAMES, weights, strict=True))
    )
    frame.packed_weights = packed
    return frame


def make_packed_frame(
    index: int, viseme: str, weights: list[float], packed: bytes | None
) -> AnimationFrame:
    """A :class:`PackedFrame`, built without ``__init__`` (its dict stays unbuilt)."""
    frame: PackedFrame = _new_frame(PackedFrame)
    frame.frame_index = index
    frame.timestamp_ms = index * FRAME_MS
    frame.viseme = viseme
    frame.packed_weights = packed
    frame._weights = weights
    return frame
