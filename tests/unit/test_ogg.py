"""The pure-Python Ogg layer (RFC 3533) and Ogg Opus mapping (RFC 7845)."""

from __future__ import annotations

import random
import struct

import pytest

from avatarkit.audio.ogg import (
    FLAG_BOS,
    FLAG_CONTINUED,
    FLAG_EOS,
    OggError,
    OggOpusReader,
    OggOpusWriter,
    OggPage,
    OggPageReader,
    OpusHead,
    OpusTags,
    build_page,
    ogg_crc32,
    ogg_crc32_table,
    opus_packet_duration,
)
from tests._helpers import FIXTURES

OGG_FIXTURE = FIXTURES / "speech_24000.ogg"

# A CELT-only 20 ms packet (config 31, code 0): TOC byte 0xF8.
TOC_20MS = 0xF8


def opus_like(size: int, rng: random.Random) -> bytes:
    """A packet with a 20 ms Opus TOC byte and random payload (the Ogg layer never decodes)."""
    return bytes([TOC_20MS]) + rng.randbytes(max(size - 1, 0)) if size else b""


def split_feed(reader: OggPageReader, data: bytes, size: int) -> list[OggPage]:
    pages: list[OggPage] = []
    for start in range(0, len(data), size):
        pages += reader.feed(data[start : start + size])
    return pages


# -- CRC ----------------------------------------------------------------------


def test_crc_known_value() -> None:
    # CRC-32/CKSUM's check value is 0x765E7680; Ogg's CRC is the same without the final xor.
    assert ogg_crc32(b"123456789") == 0x89A1897F
    assert ogg_crc32_table(b"123456789") == 0x89A1897F
    assert ogg_crc32(b"") == 0


def test_fast_crc_matches_table_crc() -> None:
    rng = random.Random(7)
    for size in [0, 1, 2, 3, 27, 255, 256, 1000, 65307]:
        data = rng.randbytes(size)
        seed = rng.getrandbits(32)
        assert ogg_crc32(data) == ogg_crc32_table(data)
        assert ogg_crc32(data, seed) == ogg_crc32_table(data, seed)
        # running CRC over pieces equals CRC over the whole
        half = size // 2
        assert ogg_crc32(data[half:], ogg_crc32(data[:half])) == ogg_crc32(data)


def test_crc_of_a_third_party_page() -> None:
    data = OGG_FIXTURE.read_bytes()
    nseg = data[26]
    size = 27 + nseg + sum(data[27 : 27 + nseg])
    page = data[:size]
    stored = struct.unpack_from("<I", page, 22)[0]
    assert ogg_crc32(page[:22] + b"\0\0\0\0" + page[26:]) == stored


# -- pages ---------------------------------------------------------------------


SIZES = [0, 1, 254, 255, 256, 510, 65025, 65026, 255 * 255 + 1, 200_000, 37]


def written_stream(sizes: list[int], seed: int = 1) -> tuple[bytes, list[bytes]]:
    rng = random.Random(seed)
    packets = [opus_like(size, rng) for size in sizes]
    writer = OggOpusWriter(48000, serial=0x1234ABCD)
    out = writer.header_pages()
    for i, packet in enumerate(packets):
        out += writer.add_packet(packet, 960, last=i == len(packets) - 1)
    return out, packets


def test_round_trip_all_packet_sizes_and_split_feeds() -> None:
    stream, packets = written_stream(SIZES)
    for chunk in [1, 2, 3, 7, 26, 27, 28, 255, 4096, 65536, len(stream)]:
        reader = OggOpusReader()
        got: list[bytes] = []
        for start in range(0, len(stream), chunk):
            got += reader.feed(stream[start : start + chunk])
        assert reader.ended
        # zero-length packets carry no audio and are dropped by the Opus reader
        assert got == [p for p in packets if p], chunk


def test_pages_of_large_packets() -> None:
    stream, packets = written_stream([255 * 255 + 1, 10])
    pages = OggPageReader().feed(stream)
    assert [p.sequence for p in pages] == list(range(len(pages)))
    audio = pages[2:]
    # 65026 bytes need 256 lacing values + 1 (terminating) -> two pages
    assert len(audio) == 3
    first, second, third = audio
    assert len(first.lacing) == 255 and first.granule_position == -1 and not first.packets
    assert second.continued and second.packets == (packets[0],)
    assert not third.continued and third.eos and third.packets == (packets[1],)
    assert all(p.serial == 0x1234ABCD for p in pages)


def test_packet_of_exact_multiple_of_255_ends_with_zero_lacing() -> None:
    stream, packets = written_stream([510])
    page = OggPageReader().feed(stream)[2]
    assert page.lacing == b"\xff\xff\x00"
    assert page.packets == (packets[0],)


def test_page_bytes_round_trip() -> None:
    data = OGG_FIXTURE.read_bytes()
    pages = OggPageReader().feed(data)
    assert b"".join(p.to_bytes() for p in pages) == data


def test_build_page_rejects_too_many_segments() -> None:
    with pytest.raises(ValueError, match="255 segments"):
        build_page(0, 0, 1, 0, b"\x01" * 256, b"\0" * 256)


# -- Ogg Opus headers and granules ------------------------------------------------


def test_header_pages() -> None:
    writer = OggOpusWriter(16000, serial=42, vendor="avatarkit-test")
    pages = OggPageReader().feed(writer.header_pages())
    assert len(pages) == 2
    head_page, tags_page = pages
    assert head_page.header_type == FLAG_BOS and head_page.granule_position == 0
    assert tags_page.header_type == 0 and tags_page.granule_position == 0
    assert (head_page.sequence, tags_page.sequence) == (0, 1)
    head = OpusHead.parse(head_page.packets[0])
    assert head == OpusHead(1, 1, 312, 16000, 0, 0, 1, 0, b"")
    assert len(head_page.packets[0]) == 19
    tags = OpusTags.parse(tags_page.packets[0])
    assert tags == OpusTags("avatarkit-test", ())
    with pytest.raises(RuntimeError):
        writer.header_pages()


def test_headers_written_automatically_with_first_packet() -> None:
    writer = OggOpusWriter(16000)
    out = writer.add_packet(bytes([TOC_20MS, 1, 2]), 320)
    pages = OggPageReader().feed(out)
    assert len(pages) == 2  # headers only: the packet is held back
    assert pages[0].packets[0].startswith(b"OpusHead")


def test_granules_include_pre_skip_and_end_trims_to_input_length() -> None:
    rate = 16000
    writer = OggOpusWriter(rate, pre_skip=312)
    stream = writer.header_pages()
    for _ in range(5):
        stream += writer.add_packet(bytes([TOC_20MS, 0]), 320)
    # the last frame carried 300 real samples; one more packet flushes the lookahead
    stream += writer.add_packet(bytes([TOC_20MS, 0]), 300)
    stream += writer.add_packet(bytes([TOC_20MS, 0]), 0, last=True)
    pages = OggPageReader().feed(stream)[2:]
    granules = [p.granule_position for p in pages]
    total = 5 * 320 + 300
    # every page: pre-skip + input so far at 48 kHz (RFC 7845 4; what 0.1.7 writes)
    assert granules[:-1] == [312 + 960 * k for k in range(1, 6)] + [6012]
    # the end: pre-skip + unpadded input length at 48 kHz
    assert granules[-1] == 312 + total * 48000 // rate == 6012
    assert [p.eos for p in pages] == [False] * 6 + [True]
    assert writer.finished
    with pytest.raises(RuntimeError):
        writer.add_packet(b"\xf8", 320)


def test_granules_never_decrease_with_surplus_packets() -> None:
    writer = OggOpusWriter(48000, pre_skip=312)
    stream = writer.header_pages()
    stream += writer.add_packet(bytes([TOC_20MS]), 100)
    for _ in range(3):  # more flush packets than needed
        stream += writer.add_packet(bytes([TOC_20MS]), 0)
    stream += writer.finish()
    granules = [p.granule_position for p in OggPageReader().feed(stream)[2:]]
    assert granules == sorted(granules)
    assert granules[-1] == 412


def test_finish_flags_the_held_packet() -> None:
    writer = OggOpusWriter(48000)
    out = writer.header_pages()
    out += writer.add_packet(bytes([TOC_20MS, 1]), 960)
    out += writer.add_packet(bytes([TOC_20MS, 2]), 500)
    out += writer.finish()
    assert writer.finish() == b""
    pages = OggPageReader().feed(out)
    assert len(pages) == 4  # no extra empty EOS page
    assert pages[-1].eos and pages[-1].packets == (bytes([TOC_20MS, 2]),)
    assert pages[-1].granule_position == 312 + 1460


def test_finish_without_packets_writes_an_eos_page() -> None:
    writer = OggOpusWriter(48000)
    pages = OggPageReader().feed(writer.finish())
    assert len(pages) == 3 and pages[-1].eos and pages[-1].packets == (b"",)
    reader = OggOpusReader()
    assert reader.feed(b"".join(p.to_bytes() for p in pages)) == []
    assert reader.ended


def test_serial_is_random_per_stream() -> None:
    serials = {OggOpusWriter(16000).serial for _ in range(8)}
    assert len(serials) > 1
    assert OggOpusWriter(16000, serial=7).serial == 7


def test_opus_packet_duration() -> None:
    assert opus_packet_duration(bytes([0xF8])) == 960  # CELT FB 20 ms, 1 frame
    assert opus_packet_duration(bytes([0x80])) == 120  # CELT NB 2.5 ms
    assert opus_packet_duration(bytes([0x08])) == 960  # SILK NB 20 ms
    assert opus_packet_duration(bytes([0x18])) == 2880  # SILK NB 60 ms
    assert opus_packet_duration(bytes([0xF9])) == 1920  # code 1: two frames
    assert opus_packet_duration(bytes([0xFB, 0x03])) == 2880  # code 3: three frames
    assert opus_packet_duration(b"") == 0


# -- reading a third-party stream ------------------------------------------------


def test_reads_fixture_in_any_chunking() -> None:
    data = OGG_FIXTURE.read_bytes()
    whole = OggOpusReader()
    packets = whole.feed(data)
    assert whole.head is not None and whole.tags is not None
    head = whole.head
    assert (head.channels, head.pre_skip, head.input_sample_rate) == (1, 312, 24000)
    assert whole.head.mapping_family == 0
    assert whole.tags.vendor.startswith("libopus")
    assert whole.ended
    assert whole.granule_position == 312 + 326631 * 2
    assert sum(opus_packet_duration(p) for p in packets) >= whole.granule_position
    for size in [1, 5, 27, 100, 999]:
        reader = OggOpusReader()
        got: list[bytes] = []
        for start in range(0, len(data), size):
            got += reader.feed(data[start : start + size])
        assert got == packets
        assert reader.ended


def test_split_page_feeds_return_same_pages() -> None:
    data = OGG_FIXTURE.read_bytes()[:20000]
    expected = OggPageReader().feed(data)
    for size in range(1, 40):
        assert split_feed(OggPageReader(), data, size) == expected


# -- broken streams ------------------------------------------------------------------


def corrupt(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x40]) + data[index + 1 :]


def test_broken_crc_raises() -> None:
    data = OGG_FIXTURE.read_bytes()
    for index in [30, 5000, len(data) - 3]:  # header packet, audio body, last page
        with pytest.raises(OggError, match="CRC mismatch"):
            OggOpusReader().feed(corrupt(data, index))
    assert issubclass(OggError, ValueError)


def test_broken_crc_raises_with_split_feed() -> None:
    data = corrupt(OGG_FIXTURE.read_bytes(), 3000)
    with pytest.raises(OggError, match="CRC"):
        split_feed(OggPageReader(), data, 13)


def test_lost_sync_raises() -> None:
    data = OGG_FIXTURE.read_bytes()
    with pytest.raises(OggError, match="capture pattern"):
        OggPageReader().feed(b"RIFF" + data)
    pages = OggPageReader().feed(data)
    boundary = sum(len(p.to_bytes()) for p in pages[:3])
    with pytest.raises(OggError, match="capture pattern"):
        OggPageReader().feed(data[:boundary] + b"junk" + data[boundary:])


def test_bad_version_raises() -> None:
    data = bytearray(OGG_FIXTURE.read_bytes())
    data[4] = 1
    with pytest.raises(OggError, match="version"):
        OggPageReader().feed(bytes(data))


def test_lost_page_raises() -> None:
    stream, _ = written_stream([10, 20, 30, 40])
    pages = OggPageReader().feed(stream)
    without_third = b"".join(p.to_bytes() for i, p in enumerate(pages) if i != 3)
    with pytest.raises(OggError, match="sequence"):
        OggOpusReader().feed(without_third)


def test_continuation_without_start_raises() -> None:
    stream, _ = written_stream([70000, 10])
    pages = OggPageReader().feed(stream)
    # drop the first page of the big packet and renumber so only continuation is wrong
    kept = [pages[0], pages[1], *pages[3:]]
    renumbered = b"".join(
        build_page(p.header_type, p.granule_position, p.serial, i, p.lacing, p.body)
        for i, p in enumerate(kept)
    )
    with pytest.raises(OggError, match="continues a packet"):
        OggOpusReader().feed(renumbered)


def test_data_after_end_of_stream_raises() -> None:
    stream, _ = written_stream([10, 20])
    reader = OggOpusReader()
    reader.feed(stream)
    assert reader.ended
    with pytest.raises(OggError, match="after the end"):
        reader.feed(b"OggS")


def test_not_opus_raises() -> None:
    vorbis = build_page(FLAG_BOS, 0, 9, 0, bytes([30]), b"\x01vorbis" + bytes(23))
    more = build_page(0, 0, 9, 1, bytes([3]), b"abc")
    with pytest.raises(OggError, match="not an Ogg Opus stream"):
        OggOpusReader().feed(vorbis + more)


def test_bad_opus_head_raises() -> None:
    head = OpusHead(1, 1, 312, 16000, 0, 0).to_bytes()
    bad = head[:8] + bytes([0x10]) + head[9:]  # major version 1
    page = build_page(FLAG_BOS, 0, 1, 0, bytes([len(bad)]), bad)
    with pytest.raises(OggError, match="version"):
        OggOpusReader().feed(page)


def test_flags_constants() -> None:
    assert (FLAG_CONTINUED, FLAG_BOS, FLAG_EOS) == (1, 2, 4)
