"""Ogg pages (RFC 3533) and the Ogg Opus mapping (RFC 7845), in pure Python.

The SDK streams one continuous Ogg Opus stream per request and the local avatar
service reads it back, so both directions live here: :class:`OggOpusWriter`
frames Opus packets into pages, :class:`OggPageReader` and
:class:`OggOpusReader` take a byte stream apart again, incrementally and
strictly (every page's capture pattern, version, CRC and sequence number is
checked, so a broken stream fails loudly instead of decoding to noise).

Nothing here needs a codec; the codec lives in :mod:`avatarkit.audio.opus`.

Granule positions include the pre-skip (RFC 7845 section 4): every audio page
carries ``pre_skip + input samples so far * 48000 / rate``, what avatarkit
0.1.7 writes (PROTOCOL.md 6), for every stream alike. On the end-of-stream page
that is the unpadded input length, so decoders trim the padding of the last
frame; see :meth:`OggOpusWriter.add_packet`.
"""

from __future__ import annotations

import secrets
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

__all__ = [
    "FLAG_BOS",
    "FLAG_CONTINUED",
    "FLAG_EOS",
    "OggError",
    "OggOpusReader",
    "OggOpusWriter",
    "OggPage",
    "OggPageReader",
    "OpusHead",
    "OpusTags",
    "build_page",
    "ogg_crc32",
    "ogg_crc32_table",
    "opus_packet_duration",
]

FLAG_CONTINUED = 0x01
"""Header-type bit: the page starts with the continuation of a packet."""
FLAG_BOS = 0x02
"""Header-type bit: first page of a logical stream."""
FLAG_EOS = 0x04
"""Header-type bit: last page of a logical stream."""

CAPTURE_PATTERN = b"OggS"
_HEADER = struct.Struct("<4sBBqIII B")  # capture, version, type, granule, serial, seq, crc, nseg
_HEADER_SIZE = 27
_MAX_SEGMENTS = 255
_MAX_PAGE_BODY = 255 * 255
_NO_GRANULE = -1  # granule position of a page on which no packet completes
OPUS_RATE = 48000
"""Ogg Opus granule positions always count samples at 48 kHz."""


class OggError(ValueError):
    """A byte stream that is not valid Ogg / Ogg Opus (what is wrong is in the message)."""


# ---------------------------------------------------------------------------
# CRC-32 as Ogg defines it: polynomial 0x04C11DB7, MSB first (not reflected),
# initial value 0, no final xor.


def _make_crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        reg = byte << 24
        for _ in range(8):
            reg = ((reg << 1) ^ 0x04C11DB7) if reg & 0x80000000 else (reg << 1)
        table.append(reg & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _make_crc_table()
# Bit-reversal of every byte value: lets zlib's (reflected) CRC-32 engine, which
# is C code, compute Ogg's non-reflected CRC with the same polynomial.
_BITREV = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def ogg_crc32_table(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Ogg's CRC-32 computed byte by byte from the precomputed table.

    The plain reference implementation; :func:`ogg_crc32` gives the same value
    much faster and is what the page code uses. ``crc`` continues a running CRC.
    """
    table = _CRC_TABLE
    reg = crc & 0xFFFFFFFF
    for byte in bytes(data):
        reg = ((reg << 8) & 0xFFFFFFFF) ^ table[(reg >> 24) ^ byte]
    return reg


def _bitrev32(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "little").translate(_BITREV), "big")


def ogg_crc32(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Ogg's CRC-32 (poly 0x04C11DB7, not reflected, init 0, no final xor).

    Runs once per page, so it is table driven in C: a reflected CRC over
    bit-reversed bytes is the bit-reversed non-reflected CRC, which lets
    :func:`zlib.crc32` do the work. ``crc`` continues a running CRC.
    """
    raw = zlib.crc32(bytes(data).translate(_BITREV), _bitrev32(crc) ^ 0xFFFFFFFF)
    return _bitrev32(raw ^ 0xFFFFFFFF)


def _page_crc(head: bytes, body: bytes | bytearray | memoryview) -> int:
    """CRC of a page given its header (CRC field zeroed, segment table included) and body."""
    raw = zlib.crc32(head.translate(_BITREV), 0xFFFFFFFF)
    if body:
        raw = zlib.crc32(bytes(body).translate(_BITREV), raw)
    return _bitrev32(raw ^ 0xFFFFFFFF)


def build_page(
    header_type: int,
    granule_position: int,
    serial: int,
    sequence: int,
    lacing: bytes,
    body: bytes | bytearray | memoryview,
) -> bytes:
    """Serialize one Ogg page (CRC filled in); the low-level writer building block.

    ``lacing`` is the segment table (at most 255 values) and must add up to
    ``len(body)``; ``granule_position`` -1 means "no packet ends on this page".
    """
    if len(lacing) > _MAX_SEGMENTS:
        raise ValueError(f"an Ogg page holds at most 255 segments, got {len(lacing)}")
    head = (
        _HEADER.pack(
            CAPTURE_PATTERN,
            0,
            header_type,
            granule_position,
            serial & 0xFFFFFFFF,
            sequence & 0xFFFFFFFF,
            0,
            len(lacing),
        )
        + lacing
    )
    crc = _page_crc(head, body)
    return b"".join((head[:22], crc.to_bytes(4, "little"), head[26:], body))


def _lacing_for(length: int) -> bytes:
    """Segment table of one whole packet: 255-runs then the remainder (0 if a multiple)."""
    full, rest = divmod(length, 255)
    return b"\xff" * full + bytes((rest,))


def _packet_pages(
    packet: bytes,
    header_type: int,
    granule_position: int,
    serial: int,
    sequence: int,
    eos: bool,
) -> tuple[bytes, int]:
    """Pages carrying exactly one packet (several if it needs more than 255 segments).

    Returns the serialized pages and the next sequence number. Only the page that
    completes the packet gets ``granule_position`` and, if ``eos``, the EOS flag.
    """
    lacing = _lacing_for(len(packet))
    if len(lacing) <= _MAX_SEGMENTS:  # the common case: one page
        flags = header_type | (FLAG_EOS if eos else 0)
        return build_page(flags, granule_position, serial, sequence, lacing, packet), sequence + 1
    pages = []
    view = memoryview(packet)
    offset = 0
    flags = header_type
    for start in range(0, len(lacing), _MAX_SEGMENTS):
        seg = lacing[start : start + _MAX_SEGMENTS]
        size = sum(seg)
        last = start + _MAX_SEGMENTS >= len(lacing)
        page_flags = flags | (FLAG_EOS if (eos and last) else 0)
        granule = granule_position if last else _NO_GRANULE
        pages.append(
            build_page(page_flags, granule, serial, sequence, seg, view[offset : offset + size])
        )
        offset += size
        sequence += 1
        flags = (header_type & ~FLAG_BOS) | FLAG_CONTINUED
    return b"".join(pages), sequence


# ---------------------------------------------------------------------------
# Opus specifics


_SILK_HYBRID_CELT_FRAME_48K = (
    # configs 0-11: SILK-only NB/MB/WB at 10, 20, 40, 60 ms
    *([480, 960, 1920, 2880] * 3),
    # configs 12-15: hybrid SWB/FB at 10, 20 ms
    *([480, 960] * 2),
    # configs 16-31: CELT-only NB/WB/SWB/FB at 2.5, 5, 10, 20 ms
    *([120, 240, 480, 960] * 4),
)


def opus_packet_duration(packet: bytes | bytearray | memoryview) -> int:
    """Duration of one Opus packet in 48 kHz samples, read from its TOC byte (RFC 6716 3.1).

    Ogg Opus granule positions count decoded samples, so the writer derives
    them from the packets themselves rather than trusting the caller.
    """
    if not packet:
        return 0
    toc = packet[0]
    frame = _SILK_HYBRID_CELT_FRAME_48K[toc >> 3]
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(packet) < 2:
            raise OggError("Opus packet with TOC code 3 lacks its frame-count byte")
        count = packet[1] & 0x3F
    return frame * count


@dataclass(frozen=True)
class OpusHead:
    """The Ogg Opus identification header (RFC 7845 section 5.1)."""

    version: int
    channels: int
    pre_skip: int
    input_sample_rate: int
    output_gain: int
    mapping_family: int
    stream_count: int = 1
    coupled_count: int = 0
    channel_mapping: bytes = b""

    @classmethod
    def parse(cls, packet: bytes) -> OpusHead:
        """Parse and validate an ``OpusHead`` packet; raises :class:`OggError`."""
        if len(packet) < 19 or packet[:8] != b"OpusHead":
            raise OggError("first packet is not an OpusHead identification header")
        version, channels, pre_skip, rate, gain, family = struct.unpack_from("<BBHIhB", packet, 8)
        if version >> 4 != 0:
            raise OggError(f"unsupported Ogg Opus version {version} (only major version 0 exists)")
        if channels == 0:
            raise OggError("OpusHead declares 0 channels")
        if family == 0:
            if channels > 2:
                raise OggError(f"OpusHead mapping family 0 allows 1 or 2 channels, got {channels}")
            return cls(version, channels, pre_skip, rate, gain, family, 1, channels - 1, b"")
        if len(packet) < 21 + channels:
            raise OggError("OpusHead channel mapping table is truncated")
        streams, coupled = packet[19], packet[20]
        if streams == 0 or coupled > streams:
            raise OggError(
                f"OpusHead has invalid stream counts ({streams} streams, {coupled} coupled)"
            )
        mapping = bytes(packet[21 : 21 + channels])
        return cls(version, channels, pre_skip, rate, gain, family, streams, coupled, mapping)

    def to_bytes(self) -> bytes:
        """Serialize the header packet."""
        head = b"OpusHead" + struct.pack(
            "<BBHIhB",
            self.version,
            self.channels,
            self.pre_skip,
            self.input_sample_rate,
            self.output_gain,
            self.mapping_family,
        )
        if self.mapping_family != 0:
            head += bytes((self.stream_count, self.coupled_count)) + self.channel_mapping
        return head


@dataclass(frozen=True)
class OpusTags:
    """The Ogg Opus comment header (RFC 7845 section 5.2)."""

    vendor: str
    comments: tuple[str, ...] = ()

    @classmethod
    def parse(cls, packet: bytes) -> OpusTags:
        """Parse and validate an ``OpusTags`` packet; raises :class:`OggError`."""
        if packet[:8] != b"OpusTags":
            raise OggError("second packet is not an OpusTags comment header")
        try:
            (vendor_len,) = struct.unpack_from("<I", packet, 8)
            pos = 12 + vendor_len
            if pos > len(packet):
                raise OggError("OpusTags vendor string is truncated")
            vendor = packet[12:pos].decode("utf-8", "replace")
            (count,) = struct.unpack_from("<I", packet, pos)
            pos += 4
            comments = []
            for _ in range(count):
                (length,) = struct.unpack_from("<I", packet, pos)
                pos += 4
                if pos + length > len(packet):
                    raise OggError("OpusTags comment is truncated")
                comments.append(packet[pos : pos + length].decode("utf-8", "replace"))
                pos += length
        except struct.error:
            raise OggError("OpusTags comment header is truncated") from None
        return cls(vendor, tuple(comments))

    def to_bytes(self) -> bytes:
        """Serialize the header packet."""
        vendor = self.vendor.encode("utf-8")
        parts = [
            b"OpusTags",
            struct.pack("<I", len(vendor)),
            vendor,
            struct.pack("<I", len(self.comments)),
        ]
        for comment in self.comments:
            data = comment.encode("utf-8")
            parts += [struct.pack("<I", len(data)), data]
        return b"".join(parts)


# ---------------------------------------------------------------------------
# Writing


class OggOpusWriter:
    """Frames Opus packets into one Ogg Opus logical stream, one packet per page.

    Output is produced page by page so it can be sent while audio is still
    arriving. The writer holds back the most recent packet until the next one
    (or :meth:`finish`) arrives, so that the end-of-stream flag can go on the
    last audio page itself instead of on an extra empty page.
    """

    def __init__(
        self,
        sample_rate: int,
        serial: int | None = None,
        pre_skip: int = 312,
        vendor: str = "avatarkit",
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if not 0 <= pre_skip <= 0xFFFF:
            raise ValueError(f"pre_skip must fit 16 bits, got {pre_skip}")
        self.sample_rate = sample_rate
        """Input sample rate, written to OpusHead and used to scale sample counts to 48 kHz."""
        self.serial = secrets.randbits(32) if serial is None else serial & 0xFFFFFFFF
        """Bitstream serial number (random per stream unless given)."""
        self.pre_skip = pre_skip
        """48 kHz samples the decoder discards at the start (the encoder's lookahead)."""
        self.vendor = vendor
        """Vendor string written to OpusTags."""
        self._sequence = 0
        self._headers_written = False
        self._held: bytes | None = None
        self._held_granule = 0
        self._input_samples = 0  # unpadded input samples at sample_rate
        self._finished = False

    @property
    def granule_position(self) -> int:
        """Granule position that the most recent packet's page carries (or will carry)."""
        return self._held_granule

    @property
    def finished(self) -> bool:
        """True once the end-of-stream page has been produced."""
        return self._finished

    def header_pages(self) -> bytes:
        """The two header pages: OpusHead (BOS, alone on page 0) then OpusTags.

        Called implicitly by the first :meth:`add_packet` if not called before;
        calling it twice is an error.
        """
        if self._headers_written:
            raise RuntimeError("the Ogg Opus header pages were already written")
        self._headers_written = True
        head = OpusHead(1, 1, self.pre_skip, self.sample_rate, 0, 0).to_bytes()
        tags = OpusTags(self.vendor).to_bytes()
        first, seq = _packet_pages(head, FLAG_BOS, 0, self.serial, self._sequence, False)
        second, seq = _packet_pages(tags, 0, 0, self.serial, seq, False)
        self._sequence = seq
        return first + second

    def add_packet(self, packet: bytes, samples_at_rate: int, last: bool = False) -> bytes:
        """Add one Opus packet; returns the pages completed by this call (maybe ``b""``).

        ``samples_at_rate`` is how many samples of real (unpadded) input audio,
        at ``sample_rate``, this packet carries: a full frame for a normal
        packet, fewer for a zero-padded last frame, 0 for packets that only
        flush the encoder's lookahead. The page granule position is

            pre_skip + total input samples * 48000 / sample_rate

        (pre-skip included, RFC 7845 section 4), the value avatarkit 0.1.7
        writes on every page: 1272, 2232, ... for 20 ms frames at 16 kHz.
        On the last page it trims the padding, so the stream decodes to
        exactly the input length. It never decreases (flush packets add 0).

        The packet is held back until the next call (pages lag one packet);
        ``last=True`` writes it at once with the end-of-stream flag.
        """
        if self._finished:
            raise RuntimeError("the Ogg Opus stream is already finished")
        if samples_at_rate < 0:
            raise ValueError(f"samples_at_rate must be >= 0, got {samples_at_rate}")
        out = b"" if self._headers_written else self.header_pages()
        if self._held is not None:
            out += self._write_held(eos=False)
        self._input_samples += samples_at_rate
        self._held = bytes(packet)
        self._held_granule = self.pre_skip + self._input_samples * OPUS_RATE // self.sample_rate
        if last:
            out += self._write_held(eos=True)
            self._finished = True
        return out

    def finish(self) -> bytes:
        """End the stream: write the held packet with the EOS flag.

        With no audio packet at all, writes the headers (if still due) and an
        EOS page holding one empty packet, the only way to end such a stream.
        Idempotent: returns ``b""`` once finished.
        """
        if self._finished:
            return b""
        out = b"" if self._headers_written else self.header_pages()
        self._finished = True
        if self._held is not None:
            return out + self._write_held(eos=True)
        page, self._sequence = _packet_pages(
            b"", 0, self._held_granule, self.serial, self._sequence, True
        )
        return out + page

    def _write_held(self, eos: bool) -> bytes:
        assert self._held is not None
        pages, self._sequence = _packet_pages(
            self._held, 0, self._held_granule, self.serial, self._sequence, eos
        )
        self._held = None
        return pages


# ---------------------------------------------------------------------------
# Reading


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
