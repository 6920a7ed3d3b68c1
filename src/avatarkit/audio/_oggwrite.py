"""Writing Ogg Opus: packets in, pages out (:class:`OggOpusWriter`)."""

from __future__ import annotations

import secrets

from .ogg import (
    FLAG_BOS,
    OPUS_RATE,
    OpusHead,
    OpusTags,
    _packet_pages,
)


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
