"""Protobuf definitions (``*.proto``) and their committed generated modules.

Regenerate with ``python scripts/gen_proto.py``. The SDK parses every frame
with these classes, so it checks once at import that protobuf runs on its
compiled upb backend: the pure-Python fallback (selected by
``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python`` or a platform without
wheels) is more than ten times slower per message.
"""

from __future__ import annotations

import warnings

from google.protobuf.internal import api_implementation

#: Which protobuf backend is in use ("upb" expected).
PROTOBUF_BACKEND: str = api_implementation.Type()

if PROTOBUF_BACKEND != "upb":
    warnings.warn(
        f"avatarkit: protobuf is using its '{PROTOBUF_BACKEND}' backend, which is much slower "
        "per frame than 'upb'; install a protobuf wheel for this platform and unset "
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION",
        RuntimeWarning,
        stacklevel=2,
    )
