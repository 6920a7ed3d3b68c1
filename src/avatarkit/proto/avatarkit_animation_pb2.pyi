from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AnimationFrame(_message.Message):
    __slots__ = ("frame_index", "timestamp_ms", "viseme", "blendshapes")
    class BlendshapesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    VISEME_FIELD_NUMBER: _ClassVar[int]
    BLENDSHAPES_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    timestamp_ms: int
    viseme: str
    blendshapes: _containers.ScalarMap[str, float]
    def __init__(self, frame_index: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., viseme: _Optional[str] = ..., blendshapes: _Optional[_Mapping[str, float]] = ...) -> None: ...
