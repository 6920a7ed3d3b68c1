"""The chaos proxy's WebSocket frame scanner (``avatarkit._wsscan.FrameScanner``).

It finds where each server->client frame starts so that the proxy can cut one
in the middle; here it is fed byte streams directly, whole and in every split.
"""

from __future__ import annotations

import random
import struct

from avatarkit._wsscan import FrameScanner

HEAD_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def frame(payload: bytes, *, opcode: int = 2, mask: bool = False) -> bytes:
    """One RFC 6455 frame (the length in 7, 16 or 64 bits as the size needs)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask:
        head += b"\x01\x02\x03\x04"  # payload left unmasked: the scanner reads no payload
    return head + payload


FRAMES = [
    frame(b"a" * 5),
    frame(b""),
    frame(b"b" * 125),
    frame(b"c" * 126),
    frame(b"d" * 70000),
    frame(b"e" * 3, opcode=9, mask=True),
    frame(b"f" * 300, mask=True),
]
STREAM = HEAD_101 + b"".join(FRAMES)


def expected() -> list[tuple[int, int]]:
    out, pos = [], len(HEAD_101)
    for f in FRAMES:
        out.append((pos, len(f)))
        pos += len(f)
    return out


def scan(chunks: list[bytes]) -> tuple[FrameScanner, list[tuple[int, int]]]:
    scanner = FrameScanner()
    found = [start for chunk in chunks for start in scanner.feed(chunk)]
    return scanner, found


def test_frames_found_in_one_read() -> None:
    scanner, found = scan([STREAM])
    assert scanner.websocket is True
    assert found == expected()
    assert scanner.frames == len(FRAMES)
    assert scanner.position == len(STREAM)


def test_frames_found_whatever_the_reads() -> None:
    rng = random.Random(7)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(STREAM)), 40))
        chunks = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
        assert scan(chunks)[1] == expected()
    # One byte at a time: every header split at every byte.
    small = HEAD_101 + b"".join(f for f in FRAMES if len(f) < 1000)
    _, found = scan([small[i : i + 1] for i in range(len(small))])
    assert [size for _, size in found] == [len(f) for f in FRAMES if len(f) < 1000]


def test_a_stream_that_is_not_a_websocket_yields_no_frames() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n" + frame(b"xx")
    scanner, found = scan([answer])
    assert scanner.websocket is False and found == []
    scanner, found = scan([b"HTTP/1.1 101 "[:5]])
    assert scanner.websocket is None  # head not complete yet
    scanner, found = scan([b"x" * (70 * 1024)])  # no head end in 64 KiB: given up
    assert scanner.websocket is False and found == []
