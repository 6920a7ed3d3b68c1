"""Runtime state of one request of the local service.

A :class:`RequestRuntime` holds what a request still producing output needs:
its Ogg Opus decoder, decoded audio waiting for analysis, analysed frames
waiting to be sent, and its schedule (``t0``). The connection
(:mod:`avatarkit.devserver._connection`) feeds it audio and asks it for frames;
the pacer (:mod:`avatarkit.devserver._pacing`) decides when.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

import numpy as np

from .._encode import AnimationEnvelope
from ..audio.ogg import OggError
from ._animation import FRAME_MS, AnimationAnalyzer, AnimationFrame, Block
from ._state import RequestState

__all__ = ["RequestRuntime"]

_LITTLE_ENDIAN = sys.byteorder == "little"
_EMPTY: np.ndarray[Any, np.dtype[np.int16]] = np.zeros(0, dtype=np.int16)


class RequestRuntime:
    """Runtime of one request still producing output (its state is ``info``).

    Audio is analysed lazily: decoded PCM waits in ``raw`` and the pacer runs
    the analyzer a batch at a time just ahead of the frames it sends, so a
    whole clip arriving at once costs no burst of work, and audio of a request
    that gets interrupted is never analysed.
    """

    __slots__ = (
        "analyzer",
        "batch_samples",
        "buffered",
        "carry",
        "decoder",
        "delay_checked",
        "envelope",
        "flushed",
        "frame_bytes",
        "info",
        "pause_started",
        "pending",
        "raw",
        "started",
        "t0",
    )

    def __init__(
        self, info: RequestState, analyzer: AnimationAnalyzer, t0: float, batch_frames: int
    ) -> None:
        self.info = info
        self.analyzer = analyzer
        self.batch_samples = batch_frames * info.sample_rate * FRAME_MS // 1000
        self.frame_bytes = 2 * -(-info.sample_rate * FRAME_MS // 1000)  # the longest frame
        self.decoder: Any = None  # OggOpusDecoder for Ogg Opus sessions
        self.carry = b""  # odd trailing byte of PCM split across messages
        self.raw: deque[np.ndarray[Any, np.dtype[np.int16]]] = deque()  # not yet analysed
        self.buffered = 0  # bytes of PCM in raw
        self.pending: deque[AnimationFrame | None] = deque()  # None: empty end marker
        self.flushed = False  # the analyzer has returned the request's last frame
        self.t0 = t0  # realtime: time frame 0 is due; fast: not before this time
        self.pause_started = 0.0
        self.started = False  # PLAYING was reported
        self.delay_checked = False  # fault delays consulted for the next frame
        self.envelope: AnimationEnvelope | None = None  # set once the request is known

    def can_emit(self) -> bool:
        """Whether the next frame may be sent, analysing more audio if needed.

        The newest frame is held back until more audio or the request's end
        arrives, so that the frame carrying ``end=true`` is the last one.
        """
        pending = self.pending
        if len(pending) < 2:
            self._analyze()
        return len(pending) >= 2 or (self.flushed and len(pending) == 1)

    def _analyze(self) -> None:
        info = self.info
        pending = self.pending
        raw = self.raw
        while len(pending) < 2 and raw:
            frames = self.analyzer.push(self._take(self.batch_samples))
            info.frames_computed += len(frames)
            pending.extend(frames)
        if len(pending) < 2 and not raw and info.end_received and not self.flushed:
            self.flushed = True
            frames = self.analyzer.flush()
            info.frames_computed += len(frames)
            pending.extend(frames)
            if info.frames_computed == 0:
                pending.append(None)

    def take_block(self) -> Block | None:
        """The next batch of waiting audio as frames to analyse (the frame wheel
        analyses many requests' blocks at once); ``None`` if it completes none.
        The caller appends the analysed frames to ``pending``."""
        return self.analyzer.take(self._take(self.batch_samples))

    def _take(self, n: int) -> np.ndarray[Any, np.dtype[np.int16]]:
        raw = self.raw
        parts = []
        got = 0
        while raw and got < n:
            head = raw[0]
            if head.size <= n - got:
                parts.append(raw.popleft())
                got += head.size
            else:
                cut = n - got
                parts.append(head[:cut])
                raw[0] = head[cut:]
                got = n
        self.buffered -= 2 * got
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def ogg_packets(self, data: bytes, decoder_cls: Any, sample_rate: int) -> list[bytes]:
        """The Opus packets one Ogg audio message completes, not decoded yet.

        ``decoder_cls``: the session's Ogg Opus decoder class. Raises
        ``ValueError`` (``OggError``) for a broken Ogg stream.
        """
        if not data:
            # Nothing of the stream may have arrived yet (e.g. an encoder that
            # completed no Opus frame): an empty end ends the request like PCM
            # does, see ogg_decode.
            return []
        decoder = self.decoder
        if decoder is None:
            decoder = self.decoder = decoder_cls(sample_rate)
        packets: list[bytes] = decoder.demux(data)
        return packets

    def ogg_decode(
        self, packets: list[bytes], final: bool, end: bool
    ) -> np.ndarray[Any, np.dtype[np.int16]]:
        """PCM samples of packets from :meth:`ogg_packets` (a slice of one message's).

        ``final``: this is the message's last slice; ``end``: the message ends
        the request. Raises ``ValueError`` (``OggError``).
        """
        decoder = self.decoder
        if decoder is None:
            return _EMPTY  # an empty end before any of the stream: one empty end frame
        pcm: np.ndarray[Any, np.dtype[np.int16]] = decoder.decode(packets, final=final)
        if final and end and not decoder.ended:
            reader = decoder.reader
            if reader.head is None or reader.has_partial_data:
                raise OggError(
                    "the Ogg Opus stream ended inside a page or before its OpusHead "
                    "(send one whole stream per request)"
                )
            # Whole pages but no end-of-stream flag: take what the resampler
            # still holds rather than failing the request.
            tail = decoder.finish()
            if tail.size:
                pcm = np.concatenate((pcm, tail)) if pcm.size else tail
        return pcm

    def decode_pcm(self, data: bytes) -> np.ndarray[Any, np.dtype[np.int16]]:
        """PCM samples of one s16le audio message (an odd byte waits for the next)."""
        if self.carry:
            data = self.carry + data
            self.carry = b""
        if len(data) & 1:
            self.carry = data[-1:]
            data = data[:-1]
        pcm = np.frombuffer(data, dtype=np.int16)
        return pcm if _LITTLE_ENDIAN else pcm.byteswap()

    def drop(self) -> None:
        self.buffered = 0
        self.raw.clear()
        self.pending.clear()
