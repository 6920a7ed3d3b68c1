"""Fuzz targets shared by the property tests and the long campaign (``scripts/fuzz.py``).

Each :class:`Target` is one decoder that reads bytes from outside the
process (a server's WebSocket message, a client's, an Ogg stream, a WAV file,
a token answer, a frames file, an animation payload), the exceptions its
docstring promises (anything else is a finding), and a seed corpus of real,
valid encodings that :func:`mutate` damages. Not a test module: the unit test
(``tests/unit/test_fuzz_decoders.py``) and the script both import it, so
the two always fuzz the same thing.

Everything here is pure: no sockets, no subprocesses; the file readers write
their input into ``workdir`` first.
"""

from __future__ import annotations

import contextlib
import json
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from avatarkit import AvatarSDKError, LiveKitEgressConfig, SessionConfig, SessionTokenError
from avatarkit._audio_source import AudioSourceError
from avatarkit._encode import AnimationEnvelope, encode_audio_input
from avatarkit._frames_codec import AnimationFrame, encode_frame
from avatarkit._server_protocol import (
    ConfigureAccepted,
    ConfigureRejected,
    ProtocolViolation,
    check_configure,
)
from avatarkit.audio.ogg import OggError, OggOpusReader, OggPageReader, ogg_crc32
from avatarkit.events import PlaybackState
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import (
    ClientProtocol,
    ServerProtocol,
    encode_configure,
    encode_confirm,
    encode_interrupt,
    encode_pause,
    encode_playback_state,
    encode_resume,
    encode_server_error,
    parse_token_response,
)
from tests._helpers import FIXTURES

#: Largest input a mutation may grow to (keeps one example fast).
MAX_INPUT = 1 << 16


@dataclass(frozen=True)
class Target:
    """One decoder under fuzz: ``run(data, workdir)`` may raise only ``allowed``."""

    name: str
    run: Callable[[bytes, Path], object]
    allowed: tuple[type[BaseException], ...]
    seeds: Callable[[], list[bytes]]
    doc: str
    structured: Callable[[random.Random, bytes], bytes] | None = field(default=None)


# -- seeds -----------------------------------------------------------------------


def _animation_payload(index: int) -> bytes:
    from avatarkit._frames_codec import BLENDSHAPE_NAMES

    shapes = {name: round((i * 37 % 1000) / 1000, 3) for i, name in enumerate(BLENDSHAPE_NAMES)}
    return encode_frame(AnimationFrame(index, index * 40, "aa", shapes))


@cache
def server_messages() -> list[bytes]:
    """What a server sends: confirm, animation frames, errors, playback states."""
    envelope = AnimationEnvelope("conn-1", "20260101000000_abcdefghijkl", "avatar-1")
    return [
        encode_confirm("conn-1", ("playback_control", "playback_state")),
        envelope.encode(False, _animation_payload(3)),
        envelope.encode(True, b""),
        encode_server_error("conn-1", "req-1", 400, "unsupported sample rate 11025 Hz"),
        encode_server_error("", "", 4001, "credit exhausted"),
        encode_playback_state("conn-1", "req-1", PlaybackState.INTERRUPTED, 1234, "user"),
        encode_playback_state("conn-1", "req-1", PlaybackState.PAUSED, 40),
    ]


@cache
def client_messages() -> list[bytes]:
    """What a client sends: configure (plain, Ogg, LiveKit egress), audio, controls."""
    from avatarkit import AudioFormat

    egress = LiveKitEgressConfig(
        url="wss://livekit.example.com", api_token="a.b.c", room_name="room", publisher_id="p"
    )
    return [
        encode_configure(SessionConfig()),
        encode_configure(
            SessionConfig(sample_rate=24000, bitrate=32000, audio_format=AudioFormat.OGG_OPUS)
        ),
        encode_configure(SessionConfig(livekit_egress=egress)),
        encode_audio_input("20260101000000_abcdefghijkl", b"\x01\x02" * 64, False),
        encode_audio_input("20260101000000_abcdefghijkl", b"", True),
        encode_interrupt("req-1"),
        encode_pause("req-1"),
        encode_resume("req-1"),
    ]


def _raw_page(flags: int, granule: int, serial: int, seq: int, lacing: bytes, body: bytes) -> bytes:
    """An Ogg page with a correct CRC, whatever its (possibly inconsistent) fields."""
    head = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(lacing))
    head += lacing
    crc = ogg_crc32(head + body)
    return head[:22] + crc.to_bytes(4, "little") + head[26:] + body


def split_pages(data: bytes) -> list[tuple[int, int, int, int, bytes, bytes]]:
    """Page fields ``(flags, granule, serial, seq, lacing, body)`` read without any check."""
    pages = []
    pos = 0
    while pos + 27 <= len(data):
        _, _, flags, granule, serial, seq, _, nseg = struct.unpack_from("<4sBBqIIIB", data, pos)
        lacing = data[pos + 27 : pos + 27 + nseg]
        body = data[pos + 27 + nseg : pos + 27 + nseg + sum(lacing)]
        pages.append((flags, granule, serial, seq, lacing, body))
        pos += 27 + nseg + sum(lacing)
    return pages


@cache
def ogg_streams() -> list[bytes]:
    """The Ogg Opus fixture: its headers and first audio pages, a short whole stream
    (the same pages, the last one flagged end-of-stream), and a raw 6000-byte cut."""
    data = (FIXTURES / "speech_24000.ogg").read_bytes()
    pages = split_pages(data[:8000])[:5]
    head = b"".join(_raw_page(*page) for page in pages)
    flags, granule, serial, seq, lacing, body = pages[-1]
    whole = b"".join(_raw_page(*page) for page in pages[:-1])
    whole += _raw_page(flags | 4, granule, serial, seq, lacing, body)
    return [head, whole, data[:6000]]


def _wav(tag: int, channels: int, rate: int, bits: int, data: bytes, extensible: bool) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack(
        "<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * block, block, bits
    )
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + b"\x00" * 14
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@cache
def wav_files() -> list[bytes]:
    """WAV headers of every supported kind (int 8/16/24/32, float 32/64, extensible)."""
    pcm = (FIXTURES / "speech_16000.wav").read_bytes()[:1200]
    floats = struct.pack("<8f", 0.0, 0.5, -0.5, 1.0, -1.0, 0.25, 0.125, -0.75)
    return [
        pcm,
        _wav(1, 1, 8000, 8, bytes(range(0, 256, 8)), False),
        _wav(1, 2, 22050, 24, bytes(range(48)), False),
        _wav(1, 1, 48000, 32, bytes(range(64)), True),
        _wav(3, 1, 44100, 32, floats, False),
        _wav(3, 2, 16000, 64, struct.pack("<4d", 0.5, -0.5, 0.1, 0.9), True),
    ]


@cache
def token_answers() -> list[bytes]:
    """Token-call answers: both token spellings, error lists, problem documents."""
    return [
        b'{"sessionToken": "st-0123456789abcdef"}',
        b'{"session_token": "st-0123456789abcdef", "expireAt": 1767225600}',
        json.dumps(
            {"errors": [{"status": 401, "code": "unauthorized", "title": "bad key"}]}
        ).encode(),
        json.dumps({"title": "Payment Required", "detail": "credit", "status": 402}).encode(),
        b'{"code": 16, "message": "invalid api key"}',
    ]


@cache
def frames_files() -> list[bytes]:
    """A ``.jsonl`` frames file (header + frames) and a ``.bin`` one, as ``send`` writes."""
    import base64

    payload = _animation_payload(1)
    lines = [
        {"type": "header", "format": "avatarkit-frames", "version": 1, "sample_rate": 16000},
        {
            "type": "frame",
            "req_id": "r1",
            "end": False,
            "received_at": 0.04,
            "payload": base64.b64encode(payload).decode(),
            "animation": {"frame_index": 1, "viseme": "aa"},
        },
        {"type": "frame", "req_id": "r1", "end": True, "received_at": 0.08, "payload": ""},
    ]
    jsonl = "".join(json.dumps(line) + "\n" for line in lines).encode()
    msgs = server_messages()[1:3]
    binary = b"".join(len(m).to_bytes(4, "big") + m for m in msgs)
    return [jsonl, binary]


@cache
def animation_payloads() -> list[bytes]:
    """Animation payloads of the local service."""
    return [_animation_payload(0), _animation_payload(7)]


@cache
def opus_headers() -> list[bytes]:
    """OpusHead (mapping family 0 and 1) and OpusTags packets."""
    from avatarkit.audio.ogg import OpusHead, OpusTags

    return [
        OpusHead(1, 2, 312, 24000, 0, 0, 1, 1, b"").to_bytes(),
        OpusHead(1, 3, 312, 48000, -256, 1, 2, 1, b"\x00\x02\x01").to_bytes(),
        OpusTags("avatarkit", ("TITLE=speech", "ENCODER=x")).to_bytes(),
        OpusTags("", ()).to_bytes(),
    ]


# -- mutation --------------------------------------------------------------------

_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x22, 0x5B, 0x7B)


def mutate(rng: random.Random, data: bytes, rounds: int = 1) -> bytes:
    """``data`` damaged by ``rounds`` random edits (flip, set, insert, delete, splice,
    duplicate, truncate, varint-sized length bumps), capped at :data:`MAX_INPUT`."""
    buf = bytearray(data)
    for _ in range(rounds):
        op = rng.randrange(9)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[pos % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[pos % len(buf)] = rng.choice(_INTERESTING)
        elif op == 2:
            buf[pos:pos] = rng.randbytes(rng.randrange(1, 16))
        elif op == 3 and buf:
            del buf[pos : pos + rng.randrange(1, 32)]
        elif op == 4:
            del buf[pos:]  # truncate
        elif op == 5 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start : start + rng.randrange(1, 64)]
        elif op == 6 and buf:
            buf[pos % len(buf)] = (buf[pos % len(buf)] + rng.choice((1, -1, 0x40, -0x40))) & 0xFF
        elif op == 7:
            buf[pos:pos] = rng.choice((b"\xff" * 10, b"\x80" * 5 + b"\x01", b"\xff\xff\xff\x7f"))
        elif op == 8 and buf:
            buf = buf[: rng.randrange(len(buf) + 1)] + bytearray(rng.randbytes(rng.randrange(64)))
    return bytes(buf[:MAX_INPUT])


def mutate_ogg_pages(rng: random.Random, data: bytes) -> bytes:
    """Structure-aware Ogg mutation: edit page fields or bodies, then fix each CRC.

    Plain byte edits nearly always fail the CRC check first; this reaches the
    page assembly and the OpusHead/OpusTags parsers behind it.
    """
    out = []
    for flags, granule, serial, seq, lacing, body in split_pages(data):
        if rng.random() < 0.5:
            which = rng.randrange(6)
            if which == 0:
                flags = rng.randrange(256)
            elif which == 1:
                granule = rng.choice((-1, 0, 1, 2**63 - 1, -(2**63), rng.randrange(2**32)))
            elif which == 2:
                serial = rng.randrange(2**32)
            elif which == 3:
                seq = rng.randrange(2**32)
            elif which == 4:
                lacing = mutate(rng, lacing)[:255]
            elif body[:8] in (b"OpusHead", b"OpusTags") and rng.random() < 0.7:
                # Keep the magic so the header parsers behind it are reached; one
                # packet on the page, its lacing rebuilt to match.
                body = (body[:8] + mutate(rng, body[8:], rng.randrange(1, 4)))[:4000]
                full, rest = divmod(len(body), 255)
                lacing = b"\xff" * full + bytes((rest,))
            else:
                body = mutate(rng, body, rng.randrange(1, 4))
            body = body[: sum(lacing)] if sum(lacing) <= len(body) else body
        out.append(_raw_page(flags & 0xFF, granule, serial, seq, lacing, body))
        if rng.random() < 0.1:
            out.append(out[-1])  # a repeated page
    if rng.random() < 0.1:
        rng.shuffle(out)
    return b"".join(out)[:MAX_INPUT]


def _json_value(rng: random.Random, depth: int = 0) -> object:
    """A random JSON value: the odd types and sizes a hand-edited file may hold."""
    pick = rng.randrange(11 if depth < 3 else 8)
    simple: list[object] = [
        None,
        rng.choice((True, False)),
        rng.choice((0, -1, 2**31, 2**64, 10**400, -(10**400))),
        rng.choice((0.5, -1e308, 1e308, float("inf"), float("nan"))),
        "",
        rng.choice(("AAAA", "====", "not base64!", "\u0000", "\ud800", "x" * 300)),
        rng.choice(("header", "frame", "avatarkit-frames", "sessionToken")),
        rng.randbytes(rng.randrange(8)).decode("latin-1"),
    ]
    if pick < len(simple):
        return simple[pick]
    if pick == 8:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {
        rng.choice(("type", "payload", "errors", "status", "code")): _json_value(rng, depth + 1)
        for _ in range(rng.randrange(3))
    }


def mutate_json_lines(rng: random.Random, data: bytes) -> bytes:
    """JSON-aware mutation of a JSON (lines) document: replace, add or drop a key's value
    with a value of any type; lines that are not JSON objects are byte-mutated."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            out.append(mutate(rng, line.encode()).decode("utf-8", "replace"))
            continue
        if isinstance(obj, dict) and rng.random() < 0.7:
            keys = [*obj, "type", "payload", "received_at", "req_id", "end", "animation"]
            key = rng.choice(keys)
            if rng.random() < 0.2:
                obj.pop(key, None)
            else:
                obj[key] = _json_value(rng)
        out.append(json.dumps(obj))
    return ("\n".join(out) + "\n").encode()[:MAX_INPUT]


# -- targets ---------------------------------------------------------------------


def _client_decode(data: bytes, workdir: Path) -> object:
    """The client's receive path in both states: handshake, then open."""
    handshake = ClientProtocol()
    handshake.configure(SessionConfig())
    with contextlib.suppress(AvatarSDKError):
        handshake.receive(data)
    client = ClientProtocol()
    client.configure(SessionConfig())
    client.receive(server_messages()[0])
    return client.receive(data)


def _server_decode(data: bytes, workdir: Path) -> object:
    """The service's receive path before and after configure, and its configure check."""
    fresh = ServerProtocol()
    try:
        event = fresh.receive(data)
    except ProtocolViolation:
        event = None
    if isinstance(event, pb.ClientConfigureSession):
        verdict = check_configure(event, now=1_767_225_600.0)
        assert isinstance(verdict, (ConfigureAccepted, ConfigureRejected)), verdict
    configured = ServerProtocol()
    configured.receive(client_messages()[0])
    return configured.receive(data)


def _ogg_decode(data: bytes, workdir: Path) -> object:
    """The Ogg page reader and the Ogg Opus demuxer, fed whole and in 7-byte slices."""
    OggPageReader().feed(data)
    reader = OggOpusReader()
    for start in range(0, len(data), 7):
        reader.feed(data[start : start + 7])
    return reader.head


def _wav_read(data: bytes, workdir: Path) -> object:
    from avatarkit.audio.files import read_audio_file

    path = workdir / "fuzz.wav"
    path.write_bytes(data)
    return read_audio_file(path)


def _token_parse(data: bytes, workdir: Path) -> object:
    status = (200, 200, 401, 402, 429, 500)[len(data) % 6]
    return parse_token_response(status, data)


def _frames_read(data: bytes, workdir: Path) -> object:
    from avatarkit.cli._frames_file import read_frames_file

    suffix = ".jsonl" if data.lstrip()[:1] == b"{" else ".bin"
    path = workdir / f"fuzz{suffix}"
    path.write_bytes(data)
    return read_frames_file(path)


def _animation_decode(data: bytes, workdir: Path) -> object:
    from avatarkit._frames_codec import decode_animation

    return decode_animation(data)


def _opus_headers(data: bytes, workdir: Path) -> object:
    """Both header parsers on the same packet (one of them refuses its magic)."""
    from avatarkit.audio.ogg import OpusHead, OpusTags

    for parse in (OpusHead.parse, OpusTags.parse):
        with contextlib.suppress(OggError):
            parse(data)
    return OpusHead.parse(data) if data[:8] == b"OpusHead" else OpusTags.parse(data)


def _stream_file(data: bytes, workdir: Path) -> object:
    """``stream()``'s file source, for a PCM and an Ogg Opus session: read to the end."""
    import asyncio

    from avatarkit._audio_source import open_source

    path = workdir / ("fuzz.ogg" if data[:4] == b"OggS" else "fuzz.wav")
    path.write_bytes(data)

    async def drain(session_format: Literal["pcm", "ogg_opus"], rate: int) -> int:
        source = open_source(str(path), session_rate=rate, session_format=session_format)
        return sum([len(chunk.data) async for chunk in source])

    return [asyncio.run(drain("pcm", 16000)), asyncio.run(drain("ogg_opus", 24000))]


def _mutate_file(rng: random.Random, data: bytes) -> bytes:
    """Ogg files get the page-aware mutation, WAV files the byte mutation."""
    return mutate_ogg_pages(rng, data) if data[:4] == b"OggS" else mutate(rng, data, 3)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "client_message",
            _client_decode,
            (AvatarSDKError,),
            server_messages,
            "ClientProtocol.receive: AvatarSDKError (protocolError) for anything it cannot use",
        ),
        Target(
            "server_message",
            _server_decode,
            (ProtocolViolation,),
            client_messages,
            "ServerProtocol.receive: ProtocolViolation; check_configure never raises",
        ),
        Target(
            "ogg_pages",
            _ogg_decode,
            (OggError,),
            ogg_streams,
            "OggPageReader / OggOpusReader.feed: OggError",
            structured=mutate_ogg_pages,
        ),
        Target(
            "wav_file",
            _wav_read,
            (ValueError,),
            wav_files,
            "read_audio_file: ValueError for audio it cannot read",
        ),
        Target(
            "token_answer",
            _token_parse,
            (SessionTokenError,),
            token_answers,
            "parse_token_response: SessionTokenError only",
            structured=mutate_json_lines,
        ),
        Target(
            "frames_file",
            _frames_read,
            (ValueError,),
            frames_files,
            "read_frames_file: NotAFramesFileError / ValueError",
            structured=mutate_json_lines,
        ),
        Target(
            "opus_headers",
            _opus_headers,
            (OggError,),
            opus_headers,
            "OpusHead.parse / OpusTags.parse: OggError",
        ),
        Target(
            "stream_file",
            _stream_file,
            (AudioSourceError,),
            lambda: [*wav_files(), *ogg_streams()[:2]],
            "stream()'s file source (WAV, Ogg Opus; decoded or passed through): AudioSourceError",
            structured=_mutate_file,
        ),
        Target(
            "animation_payload",
            _animation_decode,
            (ValueError,),
            animation_payloads,
            "decode_animation: ValueError",
        ),
    )
}
