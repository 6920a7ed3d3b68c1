"""Reading Ogg: pages from bytes (:class:`OggPageReader`), Opus packets from pages.

:class:`OggOpusReader` checks the Ogg Opus mapping on top of the page reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

from .ogg import (
    _HEADER,
    _HEADER_SIZE,
    CAPTURE_PATTERN,
    FLAG_BOS,
    FLAG_CONTINUED,
    FLAG_EOS,
    OggError,
    OpusHead,
    OpusTags,
    _page_crc,
    build_page,
)


@dataclass(frozen=True)
class OggPage:
    """One parsed Ogg page, plus the packets that complete on it.

    ``packets`` holds every packet whose last segment is on this page, with the
    parts carried over from earlier pages already joined in front.
    """

    header_type: int
    granule_position: int
    serial: int
    sequence: int
    lacing: bytes
    body: bytes
    packets: tuple[bytes, ...] = ()

    @property
    def continued(self) -> bool:
        """The page starts with the rest of a packet begun on an earlier page."""
        return bool(self.header_type & FLAG_CONTINUED)

    @property
    def bos(self) -> bool:
        """First page of its logical stream."""
        return bool(self.header_type & FLAG_BOS)

    @property
    def eos(self) -> bool:
        """Last page of its logical stream."""
        return bool(self.header_type & FLAG_EOS)

    def to_bytes(self) -> bytes:
        """Serialize the page again (CRC recomputed)."""
        return build_page(
            self.header_type,
            self.granule_position,
            self.serial,
            self.sequence,
            self.lacing,
            self.body,
        )


class OggPageReader:
    """Incremental, strict Ogg page parser.

    Feed it bytes cut anywhere; it returns the pages completed so far with
    their packets reassembled across page boundaries. Capture pattern, stream
    structure version, CRC and per-stream page sequence are all checked, and
    any violation raises :class:`OggError` naming the byte offset.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._offset = 0  # absolute stream offset of self._buf[0]
        self._partial: dict[int, list[bytes]] = {}
        self._next_sequence: dict[int, int] = {}

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole page."""
        return len(self._buf)

    @property
    def has_partial_packet(self) -> bool:
        """True while a packet is open across pages (the stream cannot end cleanly here)."""
        return any(self._partial.values())

    def feed(self, data: bytes | bytearray | memoryview) -> list[OggPage]:
        """Add bytes and return every page they complete, in stream order."""
        buf = self._buf
        buf += data
        pages: list[OggPage] = []
        pos = 0
        size = len(buf)
        while size - pos >= _HEADER_SIZE:
            if buf[pos : pos + 4] != CAPTURE_PATTERN:
                self._fail(
                    pos, "expected the 'OggS' capture pattern (not an Ogg stream, or bytes lost)"
                )
            nseg = buf[pos + 26]
            body_start = pos + _HEADER_SIZE + nseg
            if size < body_start:
                break
            lacing = bytes(buf[pos + _HEADER_SIZE : body_start])
            end = body_start + sum(lacing)
            if size < end:
                break
            _, version, flags, granule, serial, seq, crc, _ = _HEADER.unpack_from(buf, pos)
            if version != 0:
                self._fail(pos, f"unsupported Ogg stream structure version {version}")
            head = bytes(buf[pos:body_start])
            head = head[:22] + b"\0\0\0\0" + head[26:]
            body = bytes(buf[body_start:end])
            if _page_crc(head, body) != crc:
                self._fail(
                    pos, f"CRC mismatch in page {seq} of stream {serial:#010x} (corrupted data)"
                )
            pages.append(self._assemble(pos, flags, granule, serial, seq, lacing, body))
            pos = end
        if pos:
            del buf[:pos]
            self._offset += pos
        return pages

    def _fail(self, pos: int, message: str) -> NoReturn:
        raise OggError(f"broken Ogg stream at byte {self._offset + pos}: {message}")

    def _assemble(
        self, pos: int, flags: int, granule: int, serial: int, seq: int, lacing: bytes, body: bytes
    ) -> OggPage:
        expected = self._next_sequence.get(serial)
        if expected is None:
            if not flags & FLAG_BOS:
                self._fail(pos, f"stream {serial:#010x} starts without a beginning-of-stream page")
        elif flags & FLAG_BOS:
            self._fail(pos, f"second beginning-of-stream page for stream {serial:#010x}")
        elif seq != expected:
            self._fail(pos, f"page sequence jumps from {expected - 1} to {seq} (pages lost)")
        self._next_sequence[serial] = (seq + 1) & 0xFFFFFFFF
        pending = self._partial.pop(serial, [])
        if flags & FLAG_CONTINUED:
            if not pending:
                self._fail(pos, f"page {seq} continues a packet that no earlier page started")
        elif pending:
            self._fail(pos, f"page {seq} drops a packet left unfinished by page {seq - 1}")
        packets: list[bytes] = []
        start = 0
        run = 0
        for value in lacing:
            run += value
            if value < 255:
                piece = body[start : start + run]
                if pending:
                    pending.append(piece)
                    packets.append(b"".join(pending))
                    pending = []
                else:
                    packets.append(piece)
                start += run
                run = 0
        if run:
            pending.append(body[start : start + run])
        if pending:
            if flags & FLAG_EOS:
                self._fail(pos, "the end-of-stream page leaves a packet unfinished")
            self._partial[serial] = pending
        return OggPage(flags, granule, serial, seq, lacing, body, tuple(packets))


class OggOpusReader:
    """Incremental Ogg Opus demuxer for one logical stream.

    Checks the OpusHead/OpusTags headers (exposed as :attr:`head` and
    :attr:`tags`) and returns the audio packets as they complete. Pages of
    other, multiplexed logical streams are ignored; bytes after the
    end-of-stream page are an error (one request carries one stream).
    """

    def __init__(self) -> None:
        self._pages = OggPageReader()
        self._serial: int | None = None
        self._header_packets = 0
        self.head: OpusHead | None = None
        """The identification header, once the first page has arrived."""
        self.tags: OpusTags | None = None
        """The comment header, once complete."""
        self.ended = False
        """True once the end-of-stream page has been read."""
        self.granule_position = 0
        """Granule position of the last page that completed an audio packet."""

    @property
    def has_partial_data(self) -> bool:
        """True while bytes of an unfinished page or packet are buffered."""
        return self._pages.buffered > 0 or self._pages.has_partial_packet

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add bytes; return the Opus audio packets they complete (headers are consumed)."""
        if self.ended:
            if data:
                raise OggError("data after the end of the Ogg Opus stream")
            return []
        packets: list[bytes] = []
        for page in self._pages.feed(data):
            if self._serial is None:
                if not page.bos:
                    raise OggError(
                        "not an Ogg Opus stream: no OpusHead on a beginning-of-stream page"
                    )
                if not page.packets or not page.packets[0].startswith(b"OpusHead"):
                    continue  # another codec's logical stream, multiplexed
                self._serial = page.serial
            elif page.serial != self._serial:
                continue
            if self.ended:
                raise OggError("data after the end of the Ogg Opus stream")
            packets.extend(self._take(page))
        if self.ended and self._pages.buffered:
            raise OggError("data after the end of the Ogg Opus stream")
        return packets

    def _take(self, page: OggPage) -> Iterable[bytes]:
        self.ended = page.eos
        if self._header_packets == 0:
            if len(page.packets) != 1 or page.granule_position != 0:
                raise OggError("the OpusHead header must be alone on the first page, granule 0")
            self.head = OpusHead.parse(page.packets[0])
            self._header_packets = 1
            return ()
        if self._header_packets == 1:
            if not page.packets:
                return ()  # the comment header continues on the next page
            self.tags = OpusTags.parse(page.packets[0])
            self._header_packets = 2
            if len(page.packets) > 1:
                raise OggError("audio data shares the page that ends the OpusTags header")
            return ()
        if page.packets:
            self.granule_position = page.granule_position
        return [p for p in page.packets if p]
