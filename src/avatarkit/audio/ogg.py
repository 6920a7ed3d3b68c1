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

import struct
import zlib
from dataclasses import dataclass

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


# Readers and the writer live in their own modules; their names stay importable here.
from ._oggread import OggOpusReader, OggPage, OggPageReader  # noqa: E402  (re-export)
from ._oggwrite import OggOpusWriter  # noqa: E402  (re-export)
