"""Opus codec for the built-in PCM -> Ogg Opus encoder and the decoder of the local service.

The codec comes from PyAV (``av``, the optional extra ``avatarkit[opus]``),
imported only when an encoder or decoder is created. The Ogg layer is our own
(:mod:`avatarkit.audio.ogg`): PyAV is used to encode and decode bare Opus
packets, never to mux or demux.

Why PyAV (measured on this project's 2-core machine: 20 ms frames, mono,
complexity 10, the 13.6 s speech fixtures, CPU time on one core, medians):

=====================================================  ===========  ===========
codec path                                             16 kHz       24 kHz
=====================================================  ===========  ===========
libopus 1.6.1 bundled in the ``av`` 18 wheel, called    ~149x RT     ~140x RT
  through ctypes (the bare library: the floor)
PyAV ``CodecContext.encode`` on that library            124-137x RT  125-130x RT
  (+~8 %: PyAV's frame and filter-graph plumbing)
``opuslib-next`` 1.3.1 on Debian's libopus 1.3.1        ~100x RT     ~102x RT
:class:`OggOpusEncoder` (Ogg pages included),           116-124x RT  118-122x RT
  one 20 ms chunk per call / whole clip in one call     1.06-1.08x   1.04-1.07x
                                                        PyAV direct  PyAV direct
=====================================================  ===========  ===========

PyAV wins on every count that matters here: its wheels bundle libopus, so
``pip install "avatarkit[opus]"`` works on machines with no system library
(the published SDK's ``opuslib``, like ``opuslib-next``, loads ``libopus.so``
with ctypes and fails without it), it brings a newer, faster libopus than the
distribution's 1.3.1, and the same package decodes Opus for the local avatar
service. Its overhead over the bare library is a few microseconds a frame,
and ours (Ogg framing with a C-speed CRC, buffering) a few more.
``python -m benchmarks.micro opus`` re-measures the last two rows.

Two FFmpeg details shape the encoder:

- FFmpeg's libopus wrapper treats bit rate 0 as 64 kbit/s, while avatarkit
  0.1.7 (on opuslib) left libopus at its own default. ``bitrate=0`` therefore
  sets libopus's own default formula, ``60 * rate / frame_size + rate`` bit/s
  for mono (19 kbit/s at 16 kHz, 20 ms).
- FFmpeg flushes the encoder's lookahead at the end of the stream (extra
  packets), so the final ``pre_skip`` samples of input are really in the
  stream; the end-of-stream granule position then trims the padding exactly.
- Every page's granule position is ``pre_skip + input samples so far * 48000 /
  rate`` (pre-skip included, RFC 7845 section 4), byte-compatible with 0.1.7
  on every request of a session. FFmpeg's own Ogg demuxer reads such a
  stream's end trimming against the page before, so it plays ``pre_skip``
  samples less at the end (as it does with 0.1.7's streams); our
  :class:`OggOpusDecoder` (the local service's) decodes exactly the input.
  The pre-skip written to OpusHead is the encoder's real lookahead as FFmpeg
  reports it: 312 (6.5 ms, what avatarkit 0.1.7 always wrote) for the default
  ``audio``/``voip`` modes with 10-60 ms frames, 120 for ``lowdelay`` and for
  2.5/5 ms frames; a fixed 312 there would cut the first 4 ms of speech.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._facts import OGG_OPUS_SAMPLE_RATES
from .ogg import OPUS_RATE, OggError, OggOpusReader, OggOpusWriter

if TYPE_CHECKING:
    import soxr

__all__ = [
    "APPLICATIONS",
    "ENCODER_RATES",
    "FRAME_DURATIONS_MS",
    "OggOpusDecoder",
    "OggOpusEncoder",
    "default_bitrate",
    "import_av",
]

ENCODER_RATES = OGG_OPUS_SAMPLE_RATES
"""Sample rates libopus encodes natively (the Ogg Opus rates of the protocol)."""
FRAME_DURATIONS_MS = (2.5, 5, 10, 20, 40, 60)
"""Opus frame durations the encoder accepts, in milliseconds."""
APPLICATIONS = ("audio", "voip", "lowdelay")
"""libopus application modes."""

_INSTALL_HINT = 'Opus support needs PyAV: pip install "avatarkit[opus]"'


def import_av() -> Any:
    """Import PyAV, or raise ``ImportError`` telling how to install the ``opus`` extra."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    return av


def default_bitrate(sample_rate: int, frame_samples: int) -> int:
    """libopus's own default bit rate for mono (``OPUS_AUTO``), which FFmpeg does not expose."""
    return 60 * sample_rate // frame_samples + sample_rate


class OggOpusEncoder:
    """Streaming mono PCM s16le -> Ogg Opus encoder, one logical stream per request.

    Feed PCM in chunks of any (even) size with :meth:`encode`; it returns the
    Ogg pages completed so far (the header pages travel with the first audio
    page), so audio can be sent while it is still being produced. :meth:`finish`
    pads and flushes the last frame and returns the rest, ending with the
    end-of-stream page, then leaves the encoder ready for the next stream (new
    serial). :meth:`reset` drops a stream half way (e.g. on interrupt).
    """

    def __init__(
        self,
        sample_rate: int,
        bitrate: int = 0,
        frame_duration_ms: float = 20,
        application: str = "audio",
    ) -> None:
        if sample_rate not in ENCODER_RATES:
            raise ValueError(
                f"Ogg Opus sample rate must be one of {', '.join(map(str, ENCODER_RATES))}, "
                f"got {sample_rate!r}"
            )
        if frame_duration_ms not in FRAME_DURATIONS_MS:
            raise ValueError(
                "Opus frame duration must be one of "
                f"{', '.join(map(str, FRAME_DURATIONS_MS))} ms, got {frame_duration_ms!r}"
            )
        if application not in APPLICATIONS:
            raise ValueError(
                f"Opus application must be one of {', '.join(APPLICATIONS)}, got {application!r}"
            )
        frame_samples = int(sample_rate * frame_duration_ms) // 1000
        if isinstance(bitrate, bool) or not isinstance(bitrate, int):
            raise ValueError(f"bitrate must be an int (bit/s, 0 = default), got {bitrate!r}")
        if bitrate != 0 and not 500 <= bitrate <= 256_000:
            raise ValueError(
                f"Opus bitrate must be 0 (encoder default) or 500..256000 bit/s, got {bitrate}"
            )
        self._av = import_av()
        self.sample_rate = sample_rate
        """Input sample rate (Hz)."""
        self.frame_samples = frame_samples
        """Samples per Opus frame at the input rate."""
        self.frame_duration_ms = frame_duration_ms
        """Opus frame duration."""
        self.application = application
        """libopus application mode."""
        self.bitrate = bitrate or default_bitrate(sample_rate, frame_samples)
        """Target bit rate actually configured (bit/s)."""
        self._frame_bytes = 2 * frame_samples
        self._options = {"application": application, "frame_duration": f"{frame_duration_ms:g}"}
        self._start_stream()

    def _start_stream(self) -> None:
        self._ctx: Any = None
        self._writer: OggOpusWriter | None = None
        self._pending = b""
        self._carry = b""  # header pages waiting for the first audio page
        self._frames = 0  # full frames handed to the codec
        self._packets = 0  # packets handed to the Ogg writer
        self._pre_skip = 312

    def _open(self) -> Any:
        ctx = self._av.CodecContext.create("libopus", "w")
        ctx.sample_rate = self.sample_rate
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = self.bitrate
        ctx.options = self._options
        ctx.open()
        extradata = ctx.extradata  # FFmpeg's OpusHead: its pre-skip is the true lookahead
        if extradata and len(extradata) >= 12 and extradata[:8] == b"OpusHead":
            self._pre_skip = int.from_bytes(extradata[10:12], "little")
        self._writer = OggOpusWriter(self.sample_rate, pre_skip=self._pre_skip)
        self._ctx = ctx
        return ctx

    @property
    def serial(self) -> int | None:
        """Serial number of the current stream, once its first frame was encoded."""
        return self._writer.serial if self._writer is not None else None

    @property
    def pre_skip(self) -> int:
        """Pre-skip written to OpusHead (the encoder lookahead in 48 kHz samples; 312 or 120)."""
        return self._pre_skip

    @property
    def samples_in(self) -> int:
        """Input samples received for the current stream."""
        return self._frames * self.frame_samples + len(self._pending) // 2

    def encode(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Add mono s16le PCM; return the Ogg pages completed so far (possibly ``b""``).

        Chunks may have any even length; less than a frame stays buffered.
        """
        if not isinstance(pcm, (bytes, bytearray, memoryview)):
            raise TypeError(f"PCM audio must be bytes, got {type(pcm).__name__}")
        data = pcm if isinstance(pcm, bytes) else bytes(pcm)
        if len(data) % 2:
            raise ValueError(
                f"PCM s16le audio needs an even number of bytes (2 per sample), got {len(data)}"
            )
        if self._pending:
            data = self._pending + data
        usable = len(data) - len(data) % self._frame_bytes
        if not usable:
            self._pending = data
            return b""
        self._pending = data[usable:]
        return self._encode_frames(data, usable)

    def _encode_frames(self, data: bytes, usable: int) -> bytes:
        ctx = self._ctx if self._ctx is not None else self._open()
        writer = self._writer
        assert writer is not None
        av_frame = self._av.AudioFrame.from_ndarray
        rate = self.sample_rate
        samples = self.frame_samples
        frames = np.frombuffer(data, dtype=np.int16, count=usable // 2).reshape(-1, 1, samples)
        out = [self._carry]
        for row in frames:
            frame = av_frame(row, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in ctx.encode(frame):
                out.append(writer.add_packet(bytes(packet), samples))
        self._frames += len(frames)
        self._packets += len(out) - 1
        result = b"".join(out)
        if self._packets < 2:  # only header pages so far: send them with the first audio page
            self._carry = result
            return b""
        self._carry = b""
        return result

    def finish(self) -> bytes:
        """Pad and flush the last frame; return the rest of the stream, EOS page included.

        Returns ``b""`` when the stream received no audio at all. Afterwards the
        encoder starts a new stream (new serial) on the next :meth:`encode`.
        """
        total = self.samples_in
        if total == 0:
            self._start_stream()
            return b""
        ctx = self._ctx if self._ctx is not None else self._open()
        writer = self._writer
        assert writer is not None
        # (input samples, packet) for everything still inside the codec
        tail: list[tuple[int, bytes]] = []
        if self._pending:
            rest = len(self._pending) // 2
            padded = self._pending + bytes(self._frame_bytes - len(self._pending))
            row = np.frombuffer(padded, dtype=np.int16).reshape(1, -1)
            frame = self._av.AudioFrame.from_ndarray(row, format="s16", layout="mono")
            frame.sample_rate = self.sample_rate
            tail += [(rest, bytes(p)) for p in ctx.encode(frame)]
        tail += [(0, bytes(p)) for p in ctx.encode(None)]
        # Keep only the packets needed to cover lookahead + input; FFmpeg's flush
        # may produce one more than that.
        lookahead = self._pre_skip * self.sample_rate // OPUS_RATE
        needed = math.ceil((lookahead + total) / self.frame_samples) - self._packets
        tail = tail[: max(needed, 1)]
        out = [self._carry]
        for index, (count, packet) in enumerate(tail):
            out.append(writer.add_packet(packet, count, last=index == len(tail) - 1))
        out.append(writer.finish())
        self._start_stream()
        return b"".join(out)

    def reset(self) -> None:
        """Drop the current stream, if any; the next :meth:`encode` starts a new one."""
        self._start_stream()


class OggOpusDecoder:
    """Incremental Ogg Opus -> mono int16 PCM decoder at a chosen output rate.

    Demuxes with :class:`OggOpusReader` (no FFmpeg container code) and decodes
    each packet with PyAV's libopus decoder at 48 kHz, honouring the pre-skip
    and the end trimming of the end-of-stream page. Stereo streams are
    downmixed; rates other than 48 kHz are produced with a streaming soxr
    resampler. Broken streams raise :class:`OggError`.
    """

    def __init__(self, output_rate: int = OPUS_RATE) -> None:
        if isinstance(output_rate, bool) or not isinstance(output_rate, int) or output_rate <= 0:
            raise ValueError(f"output_rate must be a positive int, got {output_rate!r}")
        self._av = import_av()
        self.output_rate = output_rate
        """Sample rate of the PCM returned by :meth:`feed`."""
        self._reader = OggOpusReader()
        self._ctx: Any = None
        self._channels = 1
        self._skip = 0  # 48 kHz samples still to drop at the start
        self._emitted = 0  # 48 kHz samples kept so far
        self._gain = 1.0
        self._resampler: soxr.ResampleStream | None = None
        self._flushed = False
        if output_rate != OPUS_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(OPUS_RATE, output_rate, 1, dtype="int16")

    @property
    def reader(self) -> OggOpusReader:
        """The underlying demuxer (``.head``, ``.tags``, ``.ended``)."""
        return self._reader

    @property
    def ended(self) -> bool:
        """True once the end-of-stream page was decoded."""
        return self._reader.ended

    def feed(self, data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
        """Add Ogg bytes; return the PCM they complete (may be empty)."""
        return self.decode(self.demux(data))

    def demux(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add Ogg bytes; return the Opus packets they complete, not decoded yet.

        With :meth:`decode`, this lets a caller weigh the packets first (each
        declares its duration in its TOC byte, see
        :func:`~avatarkit.audio.ogg.opus_packet_duration`) and refuse them
        before paying for decoding: a two-byte packet can stand for 120 ms.
        """
        reader = self._reader
        packets = reader.feed(data)
        if self._ctx is None and reader.head is not None:
            self._open()
        return packets

    def decode(self, packets: list[bytes], final: bool = True) -> npt.NDArray[np.int16]:
        """Decode packets returned by :meth:`demux`, in order.

        ``final``: ``False`` while more packets of the same :meth:`demux` call
        follow (a caller decoding them in slices); the end-of-stream trimming
        and the resampler's flush apply to the final slice only.
        """
        reader = self._reader
        pcm = self._decode(packets) if packets else np.zeros(0, dtype=np.int16)
        last = final and reader.ended
        if last:
            head = reader.head
            assert head is not None
            allowed = max(reader.granule_position - head.pre_skip, 0) - self._emitted
            if allowed < len(pcm):
                pcm = pcm[: max(allowed, 0)]
        self._emitted += len(pcm)
        return self._output(pcm, last=last)

    def finish(self) -> npt.NDArray[np.int16]:
        """Return what the resampler still holds (for a stream cut off without an EOS page)."""
        return self._output(np.zeros(0, dtype=np.int16), last=True)

    def _open(self) -> None:
        head = self._reader.head
        assert head is not None
        if head.mapping_family != 0:
            raise OggError(
                f"Ogg Opus channel mapping family {head.mapping_family} is not supported "
                "(only family 0: mono or stereo)"
            )
        ctx = self._av.CodecContext.create("libopus", "r")
        ctx.sample_rate = OPUS_RATE
        ctx.layout = "mono" if head.channels == 1 else "stereo"
        ctx.open()
        self._ctx = ctx
        self._channels = head.channels
        self._skip = head.pre_skip
        self._gain = 10 ** (head.output_gain / (20 * 256)) if head.output_gain else 1.0

    def _decode(self, packets: list[bytes]) -> npt.NDArray[np.int16]:
        ctx = self._ctx
        packet_cls = self._av.Packet
        chunks = []
        try:
            for data in packets:
                for frame in ctx.decode(packet_cls(data)):
                    chunks.append(frame.to_ndarray().reshape(-1))
        except self._av.error.FFmpegError as exc:
            raise OggError(f"invalid Opus packet in the Ogg stream: {exc}") from exc
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        pcm: npt.NDArray[Any] = np.concatenate(chunks)
        if self._channels == 2:
            pcm = pcm.reshape(-1, 2).astype(np.int32).sum(axis=1) // 2
        if self._gain != 1.0:
            pcm = np.clip(np.rint(pcm * self._gain), -32768, 32767)
        pcm = pcm.astype(np.int16, copy=False)
        if self._skip:
            dropped = min(self._skip, len(pcm))
            self._skip -= dropped
            pcm = pcm[dropped:]
        return pcm

    def _output(self, pcm: npt.NDArray[np.int16], last: bool) -> npt.NDArray[np.int16]:
        if self._resampler is None:
            return pcm
        if self._flushed:
            return np.zeros(0, dtype=np.int16)
        if last:
            self._flushed = True
        out: npt.NDArray[np.int16] = self._resampler.resample_chunk(pcm, last=last)
        return out
