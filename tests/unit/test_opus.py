"""The built-in PCM -> Ogg Opus encoder and the Ogg Opus decoder, on real audio and libopus."""

from __future__ import annotations

import io
import sys

import av
import numpy as np
import numpy.typing as npt
import pytest
import soxr

from avatarkit.audio import OPUS_RATES
from avatarkit.audio.ogg import OggError, OggOpusReader, OggPage, OggPageReader, OpusHead
from avatarkit.audio.opus import OggOpusDecoder, OggOpusEncoder, import_av
from tests._helpers import FIXTURES, speech_pcm


def speech(rate: int, seconds: float | None = None) -> bytes:
    """Speech fixture at ``rate`` (12 kHz is made from the 24 kHz one with soxr)."""
    if rate == 12000:
        pcm = np.frombuffer((FIXTURES / "speech_24000.pcm").read_bytes(), dtype=np.int16)
        data: bytes = soxr.resample(pcm, 24000, 12000).astype(np.int16).tobytes()
    else:
        return speech_pcm(rate, seconds)
    return data if seconds is None else data[: int(seconds * rate) * 2]


def encode_all(encoder: OggOpusEncoder, pcm: bytes, chunk: int = 4000) -> bytes:
    parts = [encoder.encode(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    return b"".join(parts) + encoder.finish()


def ffmpeg_decoded_samples(stream: bytes) -> tuple[int, int]:
    """(samples, rate) that FFmpeg's own Ogg demuxer + Opus decoder produce."""
    with av.open(io.BytesIO(stream)) as container:
        audio = container.streams.audio[0]
        samples = 0
        rate = 0
        for frame in container.decode(audio):
            samples += frame.samples
            rate = frame.sample_rate
    return samples, rate


def pages_of(stream: bytes) -> list[OggPage]:
    return OggPageReader().feed(stream)


@pytest.mark.parametrize("rate", OPUS_RATES)
def test_stream_decodes_with_ffmpeg_demuxer_at_every_rate(rate: int) -> None:
    pcm = speech(rate, seconds=3.3)
    stream = encode_all(OggOpusEncoder(rate), pcm)
    samples, out_rate = ffmpeg_decoded_samples(stream)
    expected = len(pcm) // 2 * out_rate // rate
    frame = out_rate * 20 // 1000
    assert abs(samples - expected) <= frame
    assert samples == expected - ffmpeg_end_loss(stream, out_rate)
    assert len(OggOpusDecoder(rate).feed(stream)) == len(pcm) // 2  # ours: exact


def ffmpeg_end_loss(stream: bytes, out_rate: int) -> int:
    """Samples FFmpeg's Ogg demuxer trims off the end of a 0.1.7-convention stream.

    Every page carries pre-skip + input so far (0.1.7's granules, PROTOCOL.md
    6); FFmpeg reads the last page's end trimming relative to the page before,
    so it drops pre-skip samples at the end, as it does for 0.1.7's streams.
    """
    return OpusHead.parse(pages_of(stream)[0].packets[0]).pre_skip * out_rate // 48000


@pytest.mark.parametrize("rate", OPUS_RATES)
@pytest.mark.parametrize("frame_ms", [2.5, 10, 60])
def test_durations_exact_for_other_frame_sizes(rate: int, frame_ms: float) -> None:
    pcm = speech(rate, seconds=1.01)
    stream = encode_all(OggOpusEncoder(rate, frame_duration_ms=frame_ms), pcm, chunk=1234)
    samples, out_rate = ffmpeg_decoded_samples(stream)
    assert samples == len(pcm) // 2 * out_rate // rate - ffmpeg_end_loss(stream, out_rate)
    assert len(OggOpusDecoder(rate).feed(stream)) == len(pcm) // 2


def test_header_fields_flags_and_granules() -> None:
    rate = 16000
    pcm = speech(rate, seconds=2.0)[: (2 * rate + 123) * 2]
    encoder = OggOpusEncoder(rate)
    stream = encode_all(encoder, pcm)
    pages = pages_of(stream)
    head = OpusHead.parse(pages[0].packets[0])
    assert (head.version, head.channels, head.pre_skip) == (1, 1, 312)
    assert (head.input_sample_rate, head.output_gain, head.mapping_family) == (16000, 0, 0)
    reader = OggOpusReader()
    reader.feed(stream)
    assert reader.tags is not None and reader.tags.vendor == "avatarkit"
    assert reader.tags.comments == ()
    assert len(pages[1].packets) == 1 and pages[1].packets[0].startswith(b"OpusTags")
    # BOS only first, EOS only last, sequence numbers consecutive, one serial
    assert [p.bos for p in pages] == [True] + [False] * (len(pages) - 1)
    assert [p.eos for p in pages] == [False] * (len(pages) - 1) + [True]
    assert [p.sequence for p in pages] == list(range(len(pages)))
    assert len({p.serial for p in pages}) == 1
    # one packet per audio page; granules: pre-skip + input so far (0.1.7's), end exact
    audio = pages[2:]
    assert all(len(p.packets) == 1 for p in audio)
    granules = [p.granule_position for p in audio]
    samples = len(pcm) // 2
    assert granules[:-1] == [312 + min(320 * k, samples) * 3 for k in range(1, len(audio))]
    assert granules[-1] == 312 + samples * 48000 // rate
    # just enough packets to cover lookahead + input
    assert (len(audio) - 1) * 960 < granules[-1] <= len(audio) * 960


def test_streaming_output_before_finish_in_37_sample_chunks() -> None:
    # 37 samples = 74 bytes: chunks that never line up with 20 ms frames
    rate = 24000
    pcm = speech(rate, seconds=1.0)
    encoder = OggOpusEncoder(rate)
    outputs = [encoder.encode(pcm[i : i + 74]) for i in range(0, len(pcm), 74)]
    produced = [o for o in outputs if o]
    assert len(produced) > 10  # pages flow while audio arrives
    first = pages_of(produced[0])
    assert first[0].bos and first[0].packets[0].startswith(b"OpusHead")
    assert any(p.sequence >= 2 for p in first)  # headers travel with the first audio page
    stream = b"".join(outputs) + encoder.finish()
    # the concatenation is one valid stream that decodes to the input length
    assert len(OggOpusDecoder(rate).feed(stream)) == len(pcm) // 2
    assert pages_of(stream)[-1].eos


def test_no_output_until_an_audio_page_exists() -> None:
    encoder = OggOpusEncoder(16000)
    assert encoder.encode(bytes(640)) == b""  # one frame: its packet is held back
    out = encoder.encode(bytes(640))
    assert [p.sequence for p in pages_of(out)] == [0, 1, 2]


def test_finish_without_audio_returns_nothing() -> None:
    encoder = OggOpusEncoder(16000)
    assert encoder.finish() == b""
    assert encoder.encode(b"") == b""
    assert encoder.finish() == b""


def test_tiny_input_still_makes_a_valid_stream() -> None:
    encoder = OggOpusEncoder(48000)
    assert encoder.encode(np.arange(10, dtype=np.int16).tobytes()) == b""
    stream = encoder.finish()
    assert ffmpeg_decoded_samples(stream) == (10, 48000)
    assert len(OggOpusDecoder(48000).feed(stream)) == 10


def test_each_stream_gets_a_new_serial_and_starts_with_headers() -> None:
    encoder = OggOpusEncoder(16000)
    pcm = speech(16000, seconds=0.5)
    serials = set()
    for _ in range(4):
        pages = pages_of(encode_all(encoder, pcm))
        assert pages[0].bos and pages[-1].eos
        serials.add(pages[0].serial)
    assert len(serials) == 4


def test_reset_drops_the_stream_in_progress() -> None:
    encoder = OggOpusEncoder(16000)
    pcm = speech(16000, seconds=0.5)
    partial = encoder.encode(pcm)
    assert partial
    encoder.reset()
    assert encoder.serial is None
    stream = encode_all(encoder, pcm)
    pages = pages_of(stream)
    assert pages[0].bos and pages[0].serial != pages_of(partial)[0].serial
    assert len(OggOpusDecoder(16000).feed(stream)) == len(pcm) // 2


def test_invalid_input_and_configuration() -> None:
    encoder = OggOpusEncoder(16000)
    with pytest.raises(ValueError, match="even number of bytes"):
        encoder.encode(b"\x00\x01\x02")
    with pytest.raises(TypeError):
        encoder.encode("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="8000, 12000, 16000, 24000, 48000"):
        OggOpusEncoder(44100)
    with pytest.raises(ValueError, match=r"2\.5, 5, 10, 20, 40, 60"):
        OggOpusEncoder(16000, frame_duration_ms=30)
    with pytest.raises(ValueError, match="audio, voip, lowdelay"):
        OggOpusEncoder(16000, application="music")
    with pytest.raises(ValueError, match="bitrate"):
        OggOpusEncoder(16000, bitrate=100)


def test_odd_chunk_after_buffered_audio_is_rejected_without_losing_state() -> None:
    encoder = OggOpusEncoder(16000)
    pcm = speech(16000, seconds=0.3)
    encoder.encode(pcm[:100])
    with pytest.raises(ValueError):
        encoder.encode(pcm[100:101])
    stream = encoder.encode(pcm[100:]) + encoder.finish()
    assert len(OggOpusDecoder(16000).feed(stream)) == len(pcm) // 2


def test_bitrate_controls_size() -> None:
    pcm = speech(16000, seconds=3.0)
    low = encode_all(OggOpusEncoder(16000, bitrate=8000), pcm)
    high = encode_all(OggOpusEncoder(16000, bitrate=64000), pcm)
    assert len(high) > 2 * len(low)
    assert OggOpusEncoder(16000).bitrate == 19000  # libopus's own default, as opuslib had


def snr_db(reference: npt.NDArray[np.int16], decoded: npt.NDArray[np.int16]) -> float:
    ref = reference.astype(np.float64)
    err = ref - decoded.astype(np.float64)
    return float(10 * np.log10((ref**2).sum() / max((err**2).sum(), 1.0)))


@pytest.mark.parametrize("application", ["audio", "voip", "lowdelay"])
def test_round_trip_is_time_aligned(application: str) -> None:
    # a wrong pre-skip shifts the decoded audio and ruins the waveform match
    pcm = speech(16000, seconds=2.0)
    encoder = OggOpusEncoder(16000, bitrate=48000, application=application)
    stream = encode_all(encoder, pcm)
    assert encoder.pre_skip in (120, 312)
    decoded = OggOpusDecoder(16000).feed(stream)
    reference = np.frombuffer(pcm, dtype=np.int16)
    assert len(decoded) == len(reference)
    assert snr_db(reference, decoded) > 6
    shifted = snr_db(reference[10:], decoded[:-10])
    assert snr_db(reference, decoded) > shifted + 3


def test_decoder_incremental_feeds_match_whole() -> None:
    data = (FIXTURES / "speech_24000.ogg").read_bytes()
    # at 48 kHz (no resampling) chunking changes nothing at all
    whole48 = OggOpusDecoder(48000).feed(data)
    decoder = OggOpusDecoder(48000)
    parts = [decoder.feed(data[i : i + 777]) for i in range(0, len(data), 777)]
    assert decoder.ended
    assert np.array_equal(np.concatenate(parts), whole48)
    # at 24 kHz the streaming resampler may round differently by a step or two
    whole = OggOpusDecoder(24000).feed(data)
    decoder = OggOpusDecoder(24000)
    parts = [decoder.feed(data[i : i + 777]) for i in range(0, len(data), 777)]
    chunked = np.concatenate(parts)
    assert len(chunked) == len(whole)
    assert int(np.abs(chunked.astype(np.int32) - whole).max()) <= 4
    reference = np.frombuffer((FIXTURES / "speech_24000.pcm").read_bytes(), dtype=np.int16)
    assert len(whole) == len(reference)
    assert snr_db(reference, whole) > 3


@pytest.mark.parametrize("output_rate", [48000, 16000, 22050, 44100])
def test_decoder_output_rates(output_rate: int) -> None:
    pcm = speech(24000, seconds=2.0)
    stream = encode_all(OggOpusEncoder(24000), pcm)
    decoder = OggOpusDecoder(output_rate)
    out = np.concatenate(
        [decoder.feed(stream[i : i + 1000]) for i in range(0, len(stream), 1000)]
        + [decoder.finish()]
    )
    assert out.dtype == np.int16 and out.ndim == 1
    expected = len(pcm) // 2 * output_rate / 24000
    assert abs(len(out) - expected) <= 2


def test_decoder_downmixes_a_stereo_stream_from_ffmpeg_muxer() -> None:
    rate = 48000
    t = np.arange(rate) / rate
    left = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    stereo = np.stack([left, left]).T.reshape(1, -1)  # packed s16: interleaved
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    decoder = OggOpusDecoder(rate)
    out = decoder.feed(buffer.getvalue())
    assert decoder.reader.head is not None and decoder.reader.head.channels == 2
    assert abs(len(out) - rate) <= 960
    assert snr_db(left[2000:40000], out[2000:40000]) > 10


def test_decoder_rejects_broken_streams() -> None:
    stream = encode_all(OggOpusEncoder(16000), speech(16000, seconds=1.0))
    broken = stream[:2000] + bytes([stream[2000] ^ 0xFF]) + stream[2001:]
    with pytest.raises(OggError):
        OggOpusDecoder(16000).feed(broken)
    with pytest.raises(OggError):
        OggOpusDecoder(16000).feed(b"RIFF" + bytes(100))


def test_missing_pyav_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImportError, match=r'pip install "avatarkit\[opus\]"'):
        import_av()
    with pytest.raises(ImportError, match="avatarkit"):
        OggOpusEncoder(16000)
