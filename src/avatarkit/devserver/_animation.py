"""Audio-driven lip-sync animation of the local avatar service.

The local service (``avatarkit serve``) answers every request with 25 animation
frames per second of received audio. This module computes those frames from the
audio itself, in a streaming and deterministic way, and (de)serializes them as
the project's ``AnimationFrame`` protobuf (``avatarkit_animation.proto``).

Framing
    Frame ``k`` of a request covers samples ``[b(k), b(k + 1))`` with
    ``b(k) = round(k * rate * 0.040)`` (exact integer arithmetic), so a request
    of ``n`` samples yields exactly ``ceil(n / (rate * 0.040))`` frames; the last,
    partial window is zero-padded by :meth:`AnimationAnalyzer.flush`.

Analysis (per frame, from that frame's samples only)
    * level: RMS in dBFS mapped linearly from a fixed noise floor
      (``-50 dBFS`` -> 0) to ``-15 dBFS`` (-> 1). Dithered or digital silence sits
      far below the floor, so it gives 0.
    * spectrum: one Hann-windowed ``rfft`` per frame, summed into segments
      between 80, 200, 400, 1000, 2500, 3000, 4000 and 8000 Hz (segments above
      Nyquist are empty), with their power centroids. From these: *openness*
      (centroid of 200-1000 Hz, ~F1), *rounding* (little or low-lying energy in
      1-3 kHz, i.e. F2 below ~1 kHz, as in u/o), *spreading* (high centroid of
      1-3 kHz, ~F2 of i/e), *frication* (energy share above 2.5 kHz),
      *sibilance* (share above 4 kHz) and *murmur* (share below 400 Hz: nasal or
      bilabial closure).

Motion
    ``jawOpen`` follows the level with an attack/release smoother (fast opening,
    slightly slower closing, about 2-3 frames to close). Lip shape (funnel and
    pucker for back rounded vowels, stretch and smile for front vowels) follows
    the smoothed spectral features, scaled by voice activity. ``mouthClose`` is
    high at rest. Each frame gets a viseme label (``sil``, ``PP``, ``FF``, ``SS``,
    ``aa``, ``E``, ``ih``, ``oh``, ``ou``); ``PP`` also puffs the cheeks a
    little, and a frame well above the recent speech level raises the inner
    brows. Both eyes blink every 2-6 s (the first one 0.8-3 s into the
    request; intervals drawn from a BLAKE2 hash of the seed and the blink
    number), each blink lasting 4 frames. Give each request its own seed (e.g.
    session and request id) so that requests do not all blink alike.

All the state carried between frames is scalar and updated frame by frame, and
every frame's features depend only on its own samples, so the output does not
depend on how the audio is chunked: the same audio and seed always give the
same frames. (This relies on numpy computing each row of a batched ``rfft``,
sum or ``cumsum`` exactly as it computes that row alone, which the tests check
at every rate.)

Cost: complete frames of one :meth:`AnimationAnalyzer.push` are analysed as one
batch (a single 2-D ``rfft``), then a short scalar loop per frame applies the
smoothers and builds the result.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt

from avatarkit._frames_codec import (
    BLENDSHAPE_NAMES,
    FRAME_MS,
    VISEMES,
    AnimationFrame,
    DecodedAnimation,
    decode_animation,
    encode_frame,
    encode_frame_reference,
    frames_for_samples,
)

__all__ = [
    "BLENDSHAPE_NAMES",
    "FRAME_MS",
    "VISEMES",
    "AnimationAnalyzer",
    "AnimationFrame",
    "DecodedAnimation",
    "decode_animation",
    "encode_frame",
    "encode_frame_reference",
    "frames_for_samples",
]

# --- level mapping -----------------------------------------------------------
_FLOOR_DB = -50.0  # RMS (dBFS) at and below which the jaw is closed
_FULL_DB = -15.0  # RMS (dBFS) at which the level reaches 1
_DB_EPS = 1e-10  # power added before log10 (digital zeros -> -100 dBFS)
_JAW_MAX = 0.8  # jawOpen at full level
_JAW_GAMMA = 1.3  # level -> jaw curve (soft for quiet speech)
_ATTACK = 0.7  # one-pole smoother coefficient when opening (per frame)
_RELEASE = 0.65  # ... when closing
_SHAPE_SMOOTH = 0.5  # smoother coefficient of the lip-shape features
_SIL_LEVEL = 0.06  # jaw target below this: no speech in the frame
_HOLD_LEVEL = 0.15  # ... and the closing jaw still above this: hold the last viseme
_SPEECH_DB = -26.0  # typical speech level (dBFS), start of the emphasis average

_F1_CLOSE_HZ = 350.0  # F1 region centroid of close vowels (i, u) -> openness 0
_F1_OPEN_HZ = 700.0  # ... of open vowels (a) -> openness 1
_ROUND_DB = -22.0  # F2 region (1-3 kHz) level re F1 region where rounding starts
_ROUND_DB_RANGE = 8.0  # ... and the dB below that where it is complete
_ROUND_F2_HZ = 1400.0  # or: F2 region centroid below this (complete 300 Hz lower) ...
_ROUND_F2_RANGE_HZ = 300.0
_ROUND_SKIRT_DB = -8.0  # ... and the F2 region weaker than this (complete 6 dB lower)
_ROUND_SKIRT_DB_RANGE = 6.0
_SPREAD_F2_HZ = 1600.0  # F2 region centroid where spreading starts (front vowels)
_SPREAD_F2_RANGE_HZ = 600.0

# --- spectral bands (Hz) -----------------------------------------------------
# Segments: 80-200, 200-400, 400-1000, 1000-2500, 2500-3000, 3000-4000, 4000-8000.
_BAND_EDGES_HZ = (80.0, 200.0, 400.0, 1000.0, 2500.0, 3000.0, 4000.0, 8000.0)

# --- blinks ------------------------------------------------------------------
_BLINK_PROFILE = (0.55, 1.0, 0.6, 0.2)  # eyeBlink weight over the frames of a blink
_BLINK_MIN_FRAMES = 50  # 2 s
_BLINK_MAX_FRAMES = 150  # 6 s
_FIRST_BLINK_MIN_FRAMES = 20  # the first blink comes 0.8-3 s into the request
_FIRST_BLINK_MAX_FRAMES = 75

_Float = npt.NDArray[np.float64]
_INT16 = np.dtype(np.int16)  # native int16: the fast path of push()


def _clip01(value: float) -> float:
    return 0.0 if value <= 0.0 else (1.0 if value >= 1.0 else value)


class AnimationAnalyzer:
    """Streaming audio -> animation analyzer for one request.

    Feed int16 mono PCM in chunks of any size with :meth:`push`; each call
    returns the frames whose 40 ms window is now complete. :meth:`flush` ends the
    request and returns the last, zero-padded partial frame (if any). The output
    depends only on the audio and ``seed``, never on the chunking.
    """

    __slots__ = (
        "_band_bins",
        "_band_pos",
        "_band_starts",
        "_band_weights",
        "_blink_count",
        "_blink_start",
        "_buffer",
        "_buffer_start",
        "_finished",
        "_frame_len_max",
        "_fric",
        "_jaw",
        "_last_viseme",
        "_murmur",
        "_next_frame",
        "_num",
        "_open",
        "_power_scale",
        "_rate",
        "_received",
        "_round",
        "_seed",
        "_sib",
        "_slow_db",
        "_spread",
        "_uniform_len",
        "_window",
    )

    def __init__(self, sample_rate: int, seed: str = "") -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int):
            raise TypeError(f"sample_rate must be an int, got {type(sample_rate).__name__}")
        if not 1000 <= sample_rate <= 384000:
            raise ValueError(f"unsupported sample rate {sample_rate}")
        self._rate = sample_rate
        self._seed = seed.encode("utf-8")
        self._num = sample_rate * FRAME_MS  # b(k) = round(k * _num / 1000)
        # Frame lengths are b(k+1) - b(k): constant when rate * 40 ms is an integer
        # number of samples, else alternating between floor and ceil.
        self._uniform_len = self._num // 1000 if self._num % 1000 == 0 else 0
        self._frame_len_max = -(-self._num // 1000)
        n = self._frame_len_max
        # Periodic Hann window over the (longest) frame.
        self._window: _Float = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
        bin_hz = sample_rate / n
        # Band edges as rfft bin indices; bands above Nyquist are empty.
        self._band_bins: tuple[int, ...] = tuple(
            min(n // 2, max(1, math.ceil(hz / bin_hz))) for hz in _BAND_EDGES_HZ
        )
        # Band sums are taken over the interleaved (re^2, im^2) pairs of the
        # spectrum: row 0 weights 1 (energy), row 1 the bin's frequency (for the
        # centroid). Only non-empty bands are reduced; the others stay 0.
        top = self._band_bins[-1]
        bin_hz_pairs = np.repeat(np.arange(top, dtype=np.float64) * bin_hz, 2)
        self._band_weights: _Float = np.stack((np.ones(2 * top), bin_hz_pairs))
        edges = self._band_bins
        nonempty = [i for i in range(len(edges) - 1) if edges[i] < edges[i + 1]]
        self._band_starts = np.asarray([2 * edges[i] for i in nonempty], dtype=np.intp)
        # Where the reduced bands go among all of them (None: all are non-empty).
        all_bands = len(edges) - 1
        self._band_pos = None if len(nonempty) == all_bands else np.asarray(nonempty, np.intp)
        self._power_scale = 1.0 / (32768.0 * 32768.0 * n)
        # Streaming state.
        self._buffer: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self._buffer_start = 0  # absolute index of _buffer[0]
        self._received = 0
        self._next_frame = 0
        self._finished = False
        # Smoother state.
        self._jaw = 0.0
        self._open = 0.0
        self._round = 0.0
        self._spread = 0.0
        self._fric = 0.0
        self._sib = 0.0
        self._murmur = 0.0
        self._slow_db = _SPEECH_DB
        self._last_viseme = "sil"
        # Blink schedule.
        self._blink_count = 0
        self._blink_start = self._blink_interval(0)

    # -- public -----------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def frames_emitted(self) -> int:
        """Frames returned so far by :meth:`push` and :meth:`flush`."""
        return self._next_frame

    @property
    def samples_received(self) -> int:
        return self._received

    def frames_for(self, n_samples: int) -> int:
        """Frames produced for a request of ``n_samples`` samples at this rate."""
        return frames_for_samples(n_samples, self._rate)

    def push(self, pcm: npt.NDArray[np.int16]) -> list[AnimationFrame]:
        """Add int16 mono samples; return the frames completed by them."""
        if self._finished:
            raise RuntimeError("push() after flush(): the request is finished")
        if type(pcm) is not np.ndarray or pcm.dtype is not _INT16 or pcm.ndim != 1:
            if (
                not isinstance(pcm, np.ndarray)
                or pcm.ndim != 1
                or pcm.dtype.kind != "i"
                or pcm.dtype.itemsize != 2
            ):
                raise TypeError("pcm must be a 1-D numpy int16 array")
            if pcm.dtype != np.int16:  # int16 of the other byte order
                pcm = pcm.astype(np.int16)
        size = int(pcm.size)
        if size == 0:
            return []
        length = self._uniform_len
        if length and not self._buffer.size:
            # The common case (whole frames, e.g. 40 ms chunks): the frames come
            # straight from the caller's samples; only an incomplete tail is kept.
            self._received += size
            start = self._next_frame
            n = size // length
            used = n * length
            if used < size:
                self._buffer = pcm[used:].copy()
            if n == 0:
                return []
            self._next_frame = start + n
            self._buffer_start += used
            return self._analyze(start, pcm[:used].reshape(n, length).astype(np.float64))
        self._received += size
        if self._buffer.size:
            self._buffer = np.concatenate((self._buffer, pcm))
        else:
            self._buffer = pcm.copy()
        # Frames k with b(k + 1) <= received are complete.
        end = self._complete_frames(self._received)
        return self._emit(end, final=False)

    def flush(self) -> list[AnimationFrame]:
        """End the request: return the remaining (partial, zero-padded) frames."""
        if self._finished:
            return []
        self._finished = True
        return self._emit(self.frames_for(self._received), final=True)

    # -- framing ----------------------------------------------------------------

    def _boundary(self, k: int) -> int:
        """First sample of frame ``k``: round(k * rate * 0.040), halves rounded up."""
        return (2 * k * self._num + 1000) // 2000

    def _complete_frames(self, n: int) -> int:
        """Number of frames k (from 0) with b(k + 1) <= n."""
        m = (n * 1000) // self._num + 1
        while m > 0 and self._boundary(m) > n:
            m -= 1
        return m

    def _emit(self, end: int, *, final: bool) -> list[AnimationFrame]:
        start = self._next_frame
        if end <= start:
            return []
        blocks = self._frame_block(start, end, final=final)
        self._next_frame = end
        # Drop the consumed samples.
        consumed = self._boundary(end) - self._buffer_start
        if consumed >= self._buffer.size:
            self._buffer = np.zeros(0, dtype=np.int16)
        else:
            self._buffer = self._buffer[consumed:]
        self._buffer_start += consumed
        return self._analyze(start, blocks)

    def _frame_block(self, start: int, end: int, *, final: bool) -> _Float:
        """The windows of frames [start, end) as a (n, frame_len_max) float array."""
        n = end - start
        buf = self._buffer
        off = self._buffer_start
        if self._uniform_len and not final:
            length = self._uniform_len
            first = self._boundary(start) - off
            return buf[first : first + n * length].reshape(n, length).astype(np.float64)
        out = np.zeros((n, self._frame_len_max), dtype=np.float64)
        for i in range(n):
            a = self._boundary(start + i) - off
            b = min(self._boundary(start + i + 1) - off, buf.size)
            if b > a:
                out[i, : b - a] = buf[a:b]
        return out

    # -- analysis ---------------------------------------------------------------

    def _analyze(self, start: int, frames: _Float) -> list[AnimationFrame]:
        count = frames.shape[0]
        # Level: mean power of the frame (zero padding of a last partial frame
        # counts as silence), in full-scale units.
        power = (frames * frames).sum(axis=1) * self._power_scale
        # Band energies from one windowed rfft per frame (relative units: only
        # their ratios are used). The complex spectrum viewed as (re, im) float
        # pairs and squared in place gives the power of each bin as two terms.
        spec = np.fft.rfft(frames * self._window, axis=1)
        pairs = spec.view(np.float64)[:, : self._band_weights.shape[1]]
        np.square(pairs, out=pairs)
        # Energy and frequency-weighted energy per segment, summed directly
        # (no running sums, so no cancellation): shape (count, 2, bands).
        seg = np.add.reduceat(pairs[:, None, :] * self._band_weights, self._band_starts, axis=2)
        if self._band_pos is not None:  # bands above Nyquist are empty
            full = np.zeros((count, 2, len(self._band_bins) - 1), dtype=np.float64)
            full[:, :, self._band_pos] = seg
            seg = full
        power_l = power.tolist()
        seg_l = seg.tolist()
        frame = self._frame
        return [frame(start + i, power_l[i], *seg_l[i]) for i in range(count)]

    def _frame(
        self, index: int, power: float, energy: list[float], weighted: list[float]
    ) -> AnimationFrame:
        db = 10.0 * math.log10(power + _DB_EPS)
        level = _clip01((db - _FLOOR_DB) / (_FULL_DB - _FLOOR_DB))
        target = _JAW_MAX * level**_JAW_GAMMA if level > 0.0 else 0.0

        eps = 1e-12
        e80, e200, e400, e1000, e2500, e3000, e4000 = energy
        total = sum(energy) + eps
        # Formant-region estimates: power centroid of 200-1000 Hz (~F1) and of
        # 1000-3000 Hz (~F2), and the strength of the F2 region relative to F1.
        e_f1 = e200 + e400 + eps
        e_f2 = e1000 + e2500 + eps
        f1_hz = (weighted[1] + weighted[2]) / e_f1
        f2_hz = (weighted[3] + weighted[4]) / e_f2
        f2_db = 10.0 * math.log10(e_f2 / e_f1)
        # Lip-shape features in [0, 1].
        openness = _clip01((f1_hz - _F1_CLOSE_HZ) / (_F1_OPEN_HZ - _F1_CLOSE_HZ))
        # Back rounded vowels (u, o) have F2 below ~1 kHz, inside the F1 region:
        # the 1-3 kHz region then holds only F3 (very weak), or F2's upper skirt
        # (weak, low centroid). Front vowels (i, e) have a high F2 centroid.
        rounding = max(
            _clip01((_ROUND_DB - f2_db) / _ROUND_DB_RANGE),
            _clip01((_ROUND_F2_HZ - f2_hz) / _ROUND_F2_RANGE_HZ)
            * _clip01((_ROUND_SKIRT_DB - f2_db) / _ROUND_SKIRT_DB_RANGE),
        )
        spreading = _clip01((f2_hz - _SPREAD_F2_HZ) / _SPREAD_F2_RANGE_HZ) * (1.0 - rounding)
        frication = (e2500 + e3000 + e4000) / total
        sibilance = e4000 / total
        murmur = (e80 + e200) / total

        # Voice activity gates the shape features, so silence has a neutral face.
        active = level > 0.0
        if active:
            k = _SHAPE_SMOOTH
            self._open += k * (openness - self._open)
            self._round += k * (rounding - self._round)
            self._spread += k * (spreading - self._spread)
            self._fric += k * (frication - self._fric)
            self._sib += k * (sibilance - self._sib)
            self._murmur += k * (murmur - self._murmur)

        # Jaw: fast attack, slightly slower release.
        jaw = self._jaw
        jaw += (_ATTACK if target > jaw else _RELEASE) * (target - jaw)
        if jaw < 1e-4:
            jaw = 0.0
        self._jaw = jaw
        # Emphasis: a frame well above the recent speech level lifts the inner
        # brows. The average follows voiced frames only, so speech onsets after
        # silence are not all "emphatic".
        emphasis = 0.0
        if active:
            emphasis = _clip01((db - self._slow_db - 5.0) / 10.0)
            self._slow_db += 0.08 * (db - self._slow_db)

        if target < _SIL_LEVEL:
            # No speech in this frame: its spectrum is noise. While the jaw is
            # still closing, keep showing the last speech viseme.
            viseme = self._last_viseme if jaw >= _HOLD_LEVEL else "sil"
        else:
            viseme = self._viseme(
                target, openness, rounding, spreading, frication, sibilance, murmur
            )
        self._last_viseme = viseme

        # Activity of the lips: how much the mouth is "speaking" right now.
        act = _clip01(jaw * 3.0)
        rounded = self._round
        spread = self._spread
        fric = _clip01((self._fric - 0.35) * 2.5)
        closure = 1.0 if viseme == "PP" else 0.0

        jaw_open = jaw * (1.0 - 0.45 * fric) * (1.0 - 0.5 * closure)
        funnel = act * rounded * (0.3 + 0.5 * self._open)
        pucker = act * rounded * (0.75 - 0.45 * self._open)
        stretch = act * (0.5 * spread + 0.3 * fric)
        smile = act * 0.35 * spread
        lower = jaw_open * 0.45 + act * 0.2 * spread
        upper = act * (0.25 * spread + 0.3 * fric)
        mouth_close = _clip01(1.0 - jaw * 3.0) * 0.85 + 0.15 * closure
        cheek = 0.25 * closure * act
        brow = 0.5 * emphasis
        blink = self._blink(index)

        values = (
            jaw_open,
            mouth_close,
            funnel,
            pucker,
            smile,
            smile,
            stretch,
            stretch,
            lower,
            lower,
            upper,
            upper,
            cheek,
            brow,
            blink,
            blink,
        )
        shapes = {
            name: 0.0 if v <= 0.0 else (1.0 if v >= 1.0 else v)  # _clip01, inlined
            for name, v in zip(BLENDSHAPE_NAMES, values, strict=True)
        }
        return AnimationFrame(index, index * FRAME_MS, viseme, shapes)

    def _viseme(
        self,
        target: float,
        openness: float,
        rounding: float,
        spreading: float,
        frication: float,
        sibilance: float,
        murmur: float,
    ) -> str:
        if frication > 0.5:
            # Sibilants have most of their energy above 4 kHz (not visible at 8 kHz).
            return "SS" if sibilance > 0.6 * frication else "FF"
        if murmur > 0.85 and target < 0.35:
            return "PP"  # low, quiet murmur: nasal / bilabial closure
        if rounding > 0.5:
            return "ou" if openness < 0.4 else "oh"
        if spreading > 0.5:
            return "ih" if openness < 0.4 else "E"
        return "aa" if openness >= 0.4 else "ih"

    # -- blinks -----------------------------------------------------------------

    def _blink_interval(self, number: int) -> int:
        digest = hashlib.blake2b(
            self._seed + b"\0blink\0" + number.to_bytes(8, "little"), digest_size=8
        ).digest()
        u1 = int.from_bytes(digest[:4], "little") / 2**32
        u2 = int.from_bytes(digest[4:], "little") / 2**32
        u = 0.5 * (u1 + u2)  # triangular: intervals cluster in the middle
        if number == 0:
            lo, hi = _FIRST_BLINK_MIN_FRAMES, _FIRST_BLINK_MAX_FRAMES
        else:
            lo, hi = _BLINK_MIN_FRAMES, _BLINK_MAX_FRAMES
        return lo + int(u * (hi - lo + 1))

    def _blink(self, index: int) -> float:
        """eyeBlink weight of frame ``index`` (frames are visited in order)."""
        phase = index - self._blink_start
        while phase >= len(_BLINK_PROFILE):
            self._blink_count += 1
            self._blink_start += self._blink_interval(self._blink_count)
            phase = index - self._blink_start
        return _BLINK_PROFILE[phase] if phase >= 0 else 0.0
