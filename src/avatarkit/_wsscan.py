"""Where WebSocket frames start in a server's byte stream, without I/O.

The chaos proxy (:mod:`avatarkit._chaos`) cuts a server->client frame in the
middle; :class:`FrameScanner` tells it where each frame starts and how long
it is, whatever the reads it gets.
"""

from __future__ import annotations

import struct

__all__ = ["FrameScanner"]

_MAX_HEAD = 64 * 1024  # an HTTP answer head longer than this is not followed


class FrameScanner:
    """Follows one server->client byte stream and says where WebSocket frames start.

    The stream is an HTTP answer head, then, when that head says ``101``,
    WebSocket frames (RFC 6455 section 5.2). :meth:`feed` takes the stream's
    next bytes and returns ``(start, size)`` for every frame whose header
    completed in them: ``start`` is the frame's first byte as an offset in the
    whole stream, ``size`` its header plus payload. A stream that is not a
    WebSocket (any other status, or a head over 64 KiB) yields nothing.
    """

    __slots__ = ("_head", "_header", "_pos", "_skip", "_start", "frames", "websocket")

    def __init__(self) -> None:
        self._head: bytearray | None = bytearray()  # None once the head was read
        self._header = bytearray()  # the current frame's header, as it arrives
        self._pos = 0  # stream offset of the next byte fed
        self._skip = 0  # payload bytes of the current frame still to pass
        self._start = 0  # stream offset of the current frame
        self.frames = 0  # frame headers completed so far
        self.websocket: bool | None = None  # None until the answer head is read

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """Scan ``data`` (the stream's next bytes); the frames it starts."""
        found: list[tuple[int, int]] = []
        i = 0
        n = len(data)
        if self._head is not None:
            i = self._read_head(data)
        if not self.websocket:
            self._pos += n
            return found
        while i < n:
            if self._skip:
                step = min(self._skip, n - i)
                self._skip -= step
                i += step
                continue
            if not self._header:
                self._start = self._pos + i
            need = self._header_size() - len(self._header)
            take = data[i : i + need]
            self._header += take
            i += len(take)
            if len(self._header) == self._header_size():
                payload = self._payload_size()
                found.append((self._start, len(self._header) + payload))
                self.frames += 1
                self._header.clear()
                self._skip = payload
        self._pos += n
        return found

    @property
    def position(self) -> int:
        """Bytes fed so far."""
        return self._pos

    def _read_head(self, data: bytes) -> int:
        """Consume the answer head; the offset in ``data`` just after it (or ``len``)."""
        head = self._head
        assert head is not None
        before = len(head)
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > _MAX_HEAD:
                self._head = None
                self.websocket = False
            return len(data)
        self._head = None
        status = bytes(head[: head.find(b"\r\n")]).split()
        self.websocket = len(status) >= 2 and status[1] == b"101"
        return end + 4 - before

    def _header_size(self) -> int:
        header = self._header
        if len(header) < 2:
            return 2
        size = 2 + (4 if header[1] & 0x80 else 0)
        length = header[1] & 0x7F
        return size + (2 if length == 126 else 8 if length == 127 else 0)

    def _payload_size(self) -> int:
        header = self._header
        length = header[1] & 0x7F
        if length == 126:
            return int(struct.unpack_from("!H", header, 2)[0])
        if length == 127:
            return int(struct.unpack_from("!Q", header, 2)[0])
        return length
