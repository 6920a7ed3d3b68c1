"""The frames-file format: written by ``send``/``demo``, read by ``inspect``.

``--out`` picks the layout from the suffix.

``.jsonl``: UTF-8 text, one JSON object per line.

* Line 1 is a header::

    {"type": "header", "format": "avatarkit-frames", "version": 1,
     "audio": "/abs/path/speech.wav",   # the audio that was sent (null if not a file)
     "audio_sample_rate": 16000,         # the file's own rate (needed to re-read raw PCM)
     "sent_sample_rate": 16000,          # the rate sent to the service, after resampling
     "audio_format": "pcm_s16le",        # or "ogg_opus"
     "audio_duration_s": 13.61, "chunk_ms": 40,
     "service": "local",                 # or "configured"
     "avatar_id": "dev-avatar", "started_at": 1767225600.123}

* Every other line is one animation message, in order of arrival::

    {"type": "frame", "req_id": "...", "end": false,
     "received_at": 1767225600.456,      # Unix time, seconds
     "payload": "<base64 of the animation payload>",
     "animation": {"frame_index": 0, "timestamp_ms": 0, "viseme": "sil",
                   "blendshapes": {"jawOpen": 0.0, ...}}}

  ``animation`` is present only when the payload decodes as the local
  service's animation (:func:`avatarkit.devserver.decode_animation`).

``.bin``: the raw serialized ``Message`` of every animation message, each
preceded by its length as a 4-byte big-endian unsigned integer; no header and
no receive times (``inspect`` then reports no receive gaps).

``inspect`` reads both; for ``.jsonl`` it finds the audio for ``--plot`` in
the header (``--audio`` overrides it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._common import CLIError

if TYPE_CHECKING:
    from ..events import AnimationFrameEvent

JSONL_FORMAT = "avatarkit-frames"
JSONL_VERSION = 1
MAX_JSON_NESTING = 64
"""Deepest ``[``/``{`` nesting a frames-file line may have; deeper is refused as damaged.

Frame lines nest a few levels; a line of 100 000 ``[`` would make ``json``
recurse until ``RecursionError``, so the depth is measured (outside strings)
before parsing.
"""


class FrameSink:
    """Writes received frames to a ``.jsonl`` or ``.bin`` file (see the module doc)."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".jsonl", ".bin"):
            raise CLIError(
                f"--out {path}: unknown frames file type {suffix or '(none)'!r}",
                "name it *.jsonl (JSON lines) or *.bin (length-prefixed Message bytes)",
            )
        if not path.parent.is_dir():
            raise CLIError(f"--out {path}: directory {path.parent} does not exist")
        self.path = path
        self.binary = suffix == ".bin"
        self._decode: Any = None
        self._decode_failures = 0
        # Written beside the target and moved into place by close(): a failed
        # run leaves an earlier frames file as it was.
        self._partial = path.with_name(path.name + ".part")
        self._file: IO[bytes] = self._partial.open("wb")
        if not self.binary:
            self._write_json(header)

    def _write_json(self, obj: dict[str, Any]) -> None:
        import json

        self._file.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def write(self, frame: AnimationFrameEvent, received_at: float) -> None:
        if self.binary:
            message = frame.message
            self._file.write(len(message).to_bytes(4, "big"))
            self._file.write(message)
            return
        import base64

        record: dict[str, Any] = {
            "type": "frame",
            "req_id": frame.req_id,
            "end": frame.end,
            "received_at": round(received_at, 6),
            "payload": base64.b64encode(frame.payload).decode("ascii"),
        }
        animation = self._decode_payload(frame.payload)
        if animation is not None:
            record["animation"] = animation
        self._write_json(record)

    def _decode_payload(self, payload: bytes) -> dict[str, Any] | None:
        if not payload or self._decode_failures >= 3:
            return None
        if self._decode is None:
            from ..devserver import decode_animation

            self._decode = decode_animation
        try:
            decoded = self._decode(payload)
        except Exception:
            self._decode_failures += 1  # not the local service's payload
            return None
        return _jsonable_animation(decoded)

    def close(self, *, keep: bool = True) -> None:
        """Finish the file: move it into place (``keep``) or discard it."""
        if self._file.closed:
            return
        self._file.close()
        if keep:
            self._partial.replace(self.path)
        else:
            self._partial.unlink(missing_ok=True)


def _jsonable_animation(decoded: Any) -> dict[str, Any]:
    if not isinstance(decoded, dict):  # an AnimationFrame dataclass
        decoded = {
            "frame_index": decoded.frame_index,
            "timestamp_ms": decoded.timestamp_ms,
            "viseme": decoded.viseme,
            "blendshapes": decoded.blendshapes,
        }
    shapes = {str(k): round(float(v), 4) for k, v in decoded.get("blendshapes", {}).items()}
    return {
        "frame_index": int(decoded.get("frame_index", 0)),
        "timestamp_ms": int(decoded.get("timestamp_ms", 0)),
        "viseme": str(decoded.get("viseme", "")),
        "blendshapes": shapes,
    }


@dataclass
class FrameRecord:
    """One animation message read back from a frames file."""

    req_id: str
    end: bool
    received_at: float | None
    payload: bytes
    animation: dict[str, Any] | None


@dataclass
class FramesFile:
    """A frames file read back: its header (``.jsonl`` only) and frames."""

    path: Path
    kind: str
    header: dict[str, Any] | None
    frames: list[FrameRecord] = field(default_factory=list)
    other_messages: int = 0


class NotAFramesFileError(ValueError):
    """The file given to ``inspect`` is not a frames file ``send``/``demo`` write.

    A ``ValueError``; its text is one line naming the file and why it was
    refused (empty, audio, JSON of another shape, bytes that are not
    length-prefixed ``Message`` records).
    """

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            f"{path} is not an avatarkit frames file ({why}); inspect reads the .jsonl or "
            ".bin files that 'avatarkit send' and 'avatarkit demo' write"
        )


_AUDIO_MAGIC = (
    (b"RIFF", "a WAV file"),
    (b"OggS", "an Ogg file"),
    (b"fLaC", "a FLAC file"),
    (b"ID3", "an MP3 file"),
)


def read_frames_file(path: str | os.PathLike[str]) -> FramesFile:
    """Read a ``.jsonl`` or ``.bin`` frames file (the suffix decides; else its first byte).

    Raises :class:`NotAFramesFileError` for a file of another kind (empty,
    audio, other JSON, random bytes) and ``ValueError`` naming the line or
    byte for a frames file that is damaged further in.
    """
    file = Path(path)
    data = file.read_bytes()
    if not data.strip():
        raise NotAFramesFileError(file, "it is empty")
    for magic, what in _AUDIO_MAGIC:
        if data.startswith(magic):
            raise NotAFramesFileError(file, f"it is {what}; send it with 'avatarkit send'")
    suffix = file.suffix.lower()
    if suffix == ".jsonl" or (suffix != ".bin" and data.lstrip()[:1] in (b"{", b"[")):
        return _read_jsonl(file, data)
    return _read_bin(file, data)


def _nesting_over(line: str, limit: int) -> bool:
    """Whether ``line`` opens more than ``limit`` nested arrays/objects (strings skipped)."""
    import re

    if line.count("[") + line.count("{") <= limit:
        return False
    depth = 0
    for char in re.findall(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', line):
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _read_jsonl(path: Path, data: bytes) -> FramesFile:
    import base64
    import binascii
    import json

    result = FramesFile(path=path, kind="jsonl", header=None)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotAFramesFileError(path, "it is not UTF-8 text") from None
    first = True
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if _nesting_over(line, MAX_JSON_NESTING):
            why = f"nested more than {MAX_JSON_NESTING} levels deep"
            if first:
                raise NotAFramesFileError(path, f"line {lineno} is JSON {why}")
            raise ValueError(f"{path}:{lineno}: JSON {why}; the file is damaged")
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            if first:
                raise NotAFramesFileError(path, f"line {lineno} is not JSON") from None
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            if first:
                raise NotAFramesFileError(path, f"line {lineno} is JSON but not an object")
            raise ValueError(f"{path}:{lineno}: expected a JSON object")
        kind = obj.get("type")
        if first:
            first = False
            if kind not in ("header", "frame"):
                raise NotAFramesFileError(
                    path, f'line {lineno} is a JSON object with no "type" of header or frame'
                )
            if kind == "header" and obj.get("format", JSONL_FORMAT) != JSONL_FORMAT:
                raise NotAFramesFileError(path, f"its header says format {obj.get('format')!r}")
        if kind == "header":
            result.header = obj
            continue
        if kind != "frame":
            result.other_messages += 1
            continue
        encoded = obj.get("payload") or ""
        if not isinstance(encoded, str):
            raise ValueError(f"{path}:{lineno}: payload is not a base64 string")
        try:
            payload = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{path}:{lineno}: payload is not valid base64") from None
        received = obj.get("received_at")
        if isinstance(received, int) and not -(2**53) <= received <= 2**53:
            # float() of a huge integer raises OverflowError, not a damaged-file error.
            raise ValueError(
                f"{path}:{lineno}: received_at is out of range (not a time in seconds)"
            )
        animation = obj.get("animation")
        result.frames.append(
            FrameRecord(
                req_id=str(obj.get("req_id", "")),
                end=bool(obj.get("end", False)),
                received_at=float(received) if isinstance(received, (int, float)) else None,
                payload=payload,
                animation=animation if isinstance(animation, dict) else None,
            )
        )
    return result


def _read_bin(path: Path, data: bytes) -> FramesFile:
    from google.protobuf.message import DecodeError

    from ..proto import avatarkit_wire_pb2 as pb

    result = FramesFile(path=path, kind="bin", header=None)
    decode: Any = None
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise _bin_error(path, pos, f"truncated length prefix at byte {pos}")
        size = int.from_bytes(data[pos : pos + 4], "big")
        body = data[pos + 4 : pos + 4 + size]
        if len(body) != size:
            why = f"truncated message at byte {pos} ({size} bytes announced, {len(body)} there)"
            raise _bin_error(path, pos, why)
        try:
            msg = pb.Message.FromString(body)
        except DecodeError:
            why = f"the record at byte {pos} is not a protobuf Message"
            raise _bin_error(path, pos, why) from None
        pos += 4 + size
        if not msg.HasField("server_response_animation"):
            result.other_messages += 1
            continue
        anim = msg.server_response_animation
        animation = None
        if anim.animation:
            if decode is None:
                from ..devserver import decode_animation

                decode = decode_animation
            try:
                animation = _jsonable_animation(decode(anim.animation))
            except Exception:
                animation = None
        result.frames.append(
            FrameRecord(
                req_id=anim.req_id,
                end=anim.end,
                received_at=None,
                payload=anim.animation,
                animation=animation,
            )
        )
    if not result.frames:
        raise NotAFramesFileError(path, "it holds no animation message")
    return result


def _bin_error(path: Path, pos: int, why: str) -> ValueError:
    """A damaged first record: the file is something else; a later one: a damaged file."""
    return NotAFramesFileError(path, why) if pos == 0 else ValueError(f"{path}: {why}")


def one_request_animations(
    frames_file: FramesFile, req_id: str | None, option: str, purpose: str
) -> tuple[str, list[FrameRecord]]:
    """The frames with decoded local-service animation of one request.

    ``req_id`` picks the request (else the first one that has animation);
    ``option`` (e.g. ``--plot``) and ``purpose`` (e.g. ``plot``) word the
    error when there is nothing to show: hosted payloads are opaque.
    """
    candidates = [f for f in frames_file.frames if f.animation is not None]
    if req_id is not None:
        candidates = [f for f in candidates if f.req_id == req_id]
        if not candidates:
            raise CLIError(f"--req-id {req_id}: no decodable animation for that request")
    if not candidates:
        raise CLIError(
            f"{frames_file.path}: no local-service animation to {purpose}",
            f"{option} needs frames from the local avatar service (hosted payloads are opaque)",
        )
    chosen = candidates[0].req_id
    return chosen, [f for f in candidates if f.req_id == chosen]
