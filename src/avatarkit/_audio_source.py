"""Turn any ``session.stream()`` source into timed audio chunks for the wire.

``session.stream(source, ...)`` (issue 11) accepts whatever a voice agent has
at hand; this module normalises it, so the session only ever sees
:class:`AudioChunk` objects: mono 16-bit little-endian PCM at the session's
rate, ``chunk_ms`` long (the last one may be shorter), or, for an Ogg Opus
file sent to an Ogg Opus session, the file's own Ogg pages unchanged.

Sources (see :func:`open_source`):

- PCM bytes-like (``bytes``, ``bytearray``, ``memoryview``) at ``sample_rate``
  (default: the session's rate);
- a path (``str`` or ``os.PathLike``) to a WAV file (8/16/24/32-bit integer or
  32/64-bit float, any channel count, downmixed to mono), a raw s16le file
  (``.pcm``/``.raw``; needs ``sample_rate``) or an Ogg Opus file (recognised
  by its ``OggS`` magic bytes, not its suffix). A WAV or Ogg file's own rate
  is used (``sample_rate`` only applies to raw PCM). Files are read with
  :func:`avatarkit.audio.files.read_audio_file` (the CLI's reader) in a worker
  thread, so they are held in memory once;
- a sync or async iterable of PCM chunks (bytes-like) at ``sample_rate``, of
  any sizes: an odd trailing byte is carried over to the next chunk. A source
  that ends on a dangling byte raises :class:`AudioSourceError` (half a sample
  means the audio is not s16le, which silence would hide). A sync iterable is
  iterated on the event loop thread, so it must not block.

Audio at another rate is resampled on the fly by soxr's streaming resampler
(``ResampleStream``, same quality as the CLI's whole-clip ``resample``), so
chunk borders add no gaps or clicks. An empty bytes source or file is an
error (almost always a mistake); an iterable that yields nothing gives no
chunks (a TTS engine may produce nothing).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._feed import AudioFeed
from ._pacing import DEFAULT_CHUNK_MS

__all__ = [
    "DEFAULT_CHUNK_MS",
    "MAX_CHUNK_MS",
    "AudioChunk",
    "AudioFileNotFoundError",
    "AudioSource",
    "AudioSourceError",
    "AudioSourceTypeError",
    "downmix_s16le",
    "open_source",
]

MAX_CHUNK_MS = 10_000
"""Largest ``chunk_ms`` accepted (longer chunks defeat pacing and interrupts)."""

_OGG_MAGIC = b"OggS"
_OPUS_GRANULE_RATE = 48_000

SessionFormat = Literal["pcm", "ogg_opus"]
BytesLike = bytes | bytearray | memoryview
Source = (
    bytes
    | bytearray
    | memoryview
    | str
    | os.PathLike[str]
    | Iterable[BytesLike]
    | AsyncIterable[BytesLike]
)
"""What ``session.stream()`` takes (checked at run time by :func:`open_source`)."""


class AudioSourceError(ValueError):
    """The audio source cannot be streamed; the message says what to change."""


class AudioSourceTypeError(AudioSourceError, TypeError):
    """The source (or an item it yielded) is of a type ``stream()`` does not take."""


class AudioFileNotFoundError(AudioSourceError, FileNotFoundError):
    """The audio file does not exist (also a ``FileNotFoundError``)."""


@dataclass(frozen=True)
class AudioChunk:
    """One piece of audio to send.

    ``data`` is s16le mono PCM at the session's rate (``kind == "pcm"``) or
    whole Ogg pages (``kind == "ogg"``); ``duration_s`` is its playback time,
    which the pacer schedules by (Ogg header pages last 0 s).
    """

    data: bytes
    duration_s: float
    kind: Literal["pcm", "ogg"] = "pcm"


class AudioSource:
    """An async iterator of :class:`AudioChunk` made by :func:`open_source`.

    ``kind`` tells whether the chunks are PCM or pass-through Ogg pages;
    ``close()`` (awaited) closes an async-generator source early.
    """

    def __init__(
        self,
        kind: Literal["pcm", "ogg"],
        chunks: AsyncIterator[AudioChunk],
        origin: object = None,
    ) -> None:
        self.kind: Literal["pcm", "ogg"] = kind
        self._chunks = chunks
        self._origin = origin  # the caller's iterable, closed here if never read

    def __aiter__(self) -> AsyncIterator[AudioChunk]:
        self._origin = None  # the generator owns (and closes) it from now on
        return self._chunks

    @property
    def finished(self) -> bool:
        """The underlying async generator ran to its end (returned or raised):
        nothing left to close, so the feeder skips an awaited ``aclose()``."""
        return getattr(self._chunks, "ag_frame", True) is None

    def close_unread(self) -> None:
        """Close a never-read :class:`~avatarkit.AudioFeed` source now (no await needed).

        For a request stopped before it had a feeder; other sources are left
        to :meth:`aclose`.
        """
        origin = self._origin
        if origin.__class__ is AudioFeed:
            self._origin = None
            origin._close()

    async def aclose(self) -> None:
        """Stop the source early (closes the underlying async generator).

        A source never read (the request stopped before its feeder's first
        step) also closes the caller's iterable: the generator that would
        close it in its ``finally`` never started, so closing it runs nothing.
        An ``AudioFeed`` then refuses further audio, a generator is closed.
        """
        origin, self._origin = self._origin, None
        if origin is not None:  # never read (__aiter__ drops it)
            aclose = getattr(origin, "aclose", None)
            if aclose is not None:
                await aclose()
            else:
                close = getattr(origin, "close", None)
                if close is not None:
                    close()
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


def _check_rate(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AudioSourceTypeError(f"{name} must be an int in Hz, got {type(value).__name__}")
    if value <= 0:
        raise AudioSourceError(f"{name} must be a positive number of Hz, got {value}")
    return value


def open_source(
    source: Any,
    *,
    session_rate: int,
    session_format: SessionFormat = "pcm",
    sample_rate: int | None = None,
    chunk_ms: int = DEFAULT_CHUNK_MS,
) -> AudioSource:
    """Check ``source`` and return an :class:`AudioSource` of wire-ready chunks.

    Type and argument errors are raised here, at once (so ``stream()`` can
    raise them to its caller); problems found while reading (an unreadable
    file, a broken WAV, an item of the wrong type, a dangling byte) are raised
    by the iterator.
    """
    session_rate = _check_rate("session_rate", session_rate)
    if sample_rate is not None:
        sample_rate = _check_rate("sample_rate", sample_rate)
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int):
        raise AudioSourceTypeError(f"chunk_ms must be an int, got {type(chunk_ms).__name__}")
    if not 1 <= chunk_ms <= MAX_CHUNK_MS:
        raise AudioSourceError(f"chunk_ms must be between 1 and {MAX_CHUNK_MS}, got {chunk_ms}")
    if session_format not in ("pcm", "ogg_opus"):
        raise AudioSourceError(
            f"session_format must be 'pcm' or 'ogg_opus', got {session_format!r}"
        )
    chunk_samples = max(1, session_rate * chunk_ms // 1000)
    shaper = _Shaper(session_rate, chunk_samples)

    if source.__class__ is AudioFeed:  # the usual push source: no ABC checks below
        chunks = shaper.run(source, sample_rate or session_rate)
        return AudioSource("pcm", chunks, origin=source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = _as_bytes(source)
        if not data:
            raise AudioSourceError("the audio is empty (0 bytes); pass PCM s16le samples")
        rate = sample_rate or session_rate
        return AudioSource("pcm", shaper.run(_pieces(data), rate))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not isinstance(path, str):
            raise AudioSourceTypeError("a path to an audio file must be str, not bytes")
        if not path:
            raise AudioSourceError("the audio path is empty; pass the path of a WAV/PCM/Ogg file")
        if session_format == "ogg_opus" and _starts_with_ogg(path):
            return AudioSource("ogg", _ogg_pages(path))
        return AudioSource("pcm", _file_pcm(path, sample_rate, shaper))
    if isinstance(source, (Mapping, set, frozenset)):
        pass  # iterable, but not of audio chunks in any meaningful order
    elif isinstance(source, AsyncIterable):
        # The user's iterator straight into the shaper (no wrapper generator: one
        # generator step less per chunk); the shaper checks each item's type.
        chunks = shaper.run(source, sample_rate or session_rate)
        return AudioSource("pcm", chunks, origin=source)
    elif isinstance(source, Iterable):
        chunks = shaper.run(_sync_items(source), sample_rate or session_rate)
        return AudioSource("pcm", chunks, origin=source)
    raise AudioSourceTypeError(
        f"cannot stream a {type(source).__name__}: pass PCM s16le bytes, a path to a "
        "WAV/PCM/Ogg Opus file, or a (sync or async) iterable of PCM bytes chunks"
    )


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    raise AudioSourceTypeError(
        f"the audio iterable yielded a {type(item).__name__}; it must yield PCM s16le "
        "bytes (convert numpy arrays with .astype('<i2').tobytes())"
    )


_PIECE_BYTES = 1 << 16
"""In-memory audio is fed to the shaper this much at a time: the first chunk is
ready (and resampled) at once, and memory stays one piece above the input."""


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), _PIECE_BYTES):
        yield bytes(view[start : start + _PIECE_BYTES])


async def _sync_items(source: Iterable[Any]) -> AsyncIterator[bytes]:
    iterator = iter(source)
    try:
        for item in iterator:
            yield _as_bytes(item)
            await asyncio.sleep(0)  # a long in-memory iterable must not starve the loop
    finally:  # stopping early closes the user's generator too
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


class _Shaper:
    """Bytes of any size at ``rate`` -> fixed-size s16le chunks at the session rate."""

    def __init__(self, session_rate: int, chunk_samples: int) -> None:
        self.session_rate = session_rate
        self.chunk_bytes = chunk_samples * 2

    async def run(self, items: AsyncIterable[Any], rate: int) -> AsyncIterator[AudioChunk]:
        """Chunks of ``items`` (bytes-like; anything else raises ``AudioSourceTypeError``).

        Closes ``items`` (``aclose()``, when it has one) however it ends, so
        stopping early closes the user's async generator too.
        """
        resampler = _Resampler(rate, self.session_rate) if rate != self.session_rate else None
        carry = b""  # an odd byte waiting for its other half
        out = bytearray()
        size = self.chunk_bytes
        whole = AudioChunk  # a source that yields chunks of the right size: passed through
        duration = size / 2 / self.session_rate
        try:
            async for item in items:
                if item.__class__ is not bytes:
                    item = _as_bytes(item)
                if len(item) == size and not carry and not out and resampler is None:
                    yield whole(item, duration)
                    continue
                data = carry + item if carry else item
                even = len(data) & ~1
                carry = data[even:]
                if not even:
                    continue
                if resampler is None:
                    out += data[:even]
                else:
                    out += resampler.feed(data[:even])
                for chunk in self._full(out):
                    yield chunk
            if carry:
                raise AudioSourceError(
                    "the audio ended on a dangling byte (an odd byte count): 16-bit PCM "
                    "needs 2 bytes per sample; check the source sends s16le audio"
                )
            if resampler is not None:
                out += resampler.flush()
            for chunk in self._full(out):
                yield chunk
            if out:
                yield self._chunk(bytes(out))
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:
                await close()

    def _full(self, out: bytearray) -> Iterable[AudioChunk]:
        size = self.chunk_bytes
        taken = 0
        while len(out) - taken >= size:
            yield self._chunk(bytes(out[taken : taken + size]))
            taken += size
        del out[:taken]

    def _chunk(self, data: bytes) -> AudioChunk:
        return AudioChunk(data, len(data) / 2 / self.session_rate)


class _Resampler:
    """soxr's streaming resampler on s16le bytes (state kept across chunk borders)."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        import soxr

        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16", quality="HQ")

    def feed(self, data: bytes) -> bytes:
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(samples)
        return out.astype("<i2").tobytes()

    def flush(self) -> bytes:
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(
            np.zeros(0, dtype=np.int16), last=True
        )
        return out.astype("<i2").tobytes()


def downmix_s16le(audio: bytes, channels: int) -> bytes:
    """s16le audio with ``channels`` interleaved channels, as mono (their mean).

    The voice-agent integrations get multi-channel TTS audio now and then;
    the service takes mono only.
    """
    if channels <= 1:
        return audio
    samples = np.frombuffer(audio[: len(audio) - len(audio) % (2 * channels)], dtype="<i2")
    mixed = samples.reshape(-1, channels).astype(np.int32).mean(axis=1)
    out: bytes = mixed.astype("<i2").tobytes()
    return out


def _starts_with_ogg(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(4) == _OGG_MAGIC
    except OSError:
        return False  # the reader below raises the typed error


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise AudioFileNotFoundError(2, "audio file not found; check the path", path) from None
    except IsADirectoryError:
        raise AudioSourceError(f"{path}: is a directory; pass the path of an audio file") from None
    except OSError as exc:
        raise AudioSourceError(
            f"{path}: cannot read the audio file ({exc.strerror or exc}); "
            "check that it exists and is readable"
        ) from exc


async def _file_pcm(
    path: str, sample_rate: int | None, shaper: _Shaper
) -> AsyncIterator[AudioChunk]:
    from .audio.files import read_audio_file

    def read() -> tuple[npt.NDArray[np.int16], int]:
        try:
            return read_audio_file(path, sample_rate=sample_rate)
        except FileNotFoundError:
            raise AudioFileNotFoundError(2, "audio file not found; check the path", path) from None
        except OSError as exc:
            raise AudioSourceError(
                f"{path}: cannot read the audio file ({exc.strerror or exc}); "
                "check that it exists and is readable"
            ) from exc
        except ValueError as exc:
            raise AudioSourceError(str(exc)) from exc

    samples, rate = await asyncio.to_thread(read)
    if len(samples) == 0:
        raise AudioSourceError(f"{path}: the file holds no audio samples")
    async for chunk in shaper.run(_pieces(samples.astype("<i2").tobytes()), rate):
        yield chunk


async def _ogg_pages(path: str) -> AsyncIterator[AudioChunk]:
    """Yield an Ogg Opus file's pages unchanged, each timed by its granule position."""
    from .audio.ogg import OggError, OggOpusReader, OggPageReader

    data = await asyncio.to_thread(_read_bytes, path)
    check = OggOpusReader()
    try:
        check.feed(data[:65536])
    except OggError as exc:
        if check.head is None:
            raise AudioSourceError(f"{path}: not a readable Ogg Opus file: {exc}") from exc
    if check.head is None:
        raise AudioSourceError(
            f"{path}: an Ogg file but not Ogg Opus (no OpusHead); only Opus can be streamed"
        )
    try:
        pages = OggPageReader().feed(data)
    except OggError as exc:
        raise AudioSourceError(f"{path}: broken Ogg Opus file: {exc}") from exc
    serials = {page.serial for page in pages}
    if len(serials) > 1:
        raise AudioSourceError(
            f"{path}: holds {len(serials)} chained Ogg streams; a request takes one "
            "logical Ogg Opus stream (split the file, or decode it and send PCM)"
        )
    granule = 0
    for page in pages:
        duration = 0.0
        if page.granule_position >= 0 and page.granule_position > granule:
            duration = (page.granule_position - granule) / _OPUS_GRANULE_RATE
            granule = page.granule_position
        yield AudioChunk(page.to_bytes(), duration, "ogg")
