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

Cost: the stages that depend on one frame only (spectrum and features; the
weights and their bytes) run as numpy over a block of frames
(:mod:`avatarkit.devserver._features`), a block that :func:`analyze_blocks`
can make of many requests' frames (the service's frame wheel analyses every
session's due frames at once); a short scalar loop per frame applies the
smoothers, and each frame of a large block carries its encoded weights, so it
is serialized where it is computed.
"""

from __future__ import annotations

import hashlib
from typing import Any

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

from ._features import (
    SIL_LEVEL,
    SMALL_BLOCK,
    VISEME_SIL,
    classify_viseme,
    features,
    pack_weights,
    rate_spec,
    round3,
    shapes,
    shapes_one,
)
from ._packed import make_frame, make_packed_frame

__all__ = [
    "BLENDSHAPE_NAMES",
    "FRAME_MS",
    "VISEMES",
    "AnimationAnalyzer",
    "AnimationFrame",
    "Block",
    "DecodedAnimation",
    "analyze_blocks",
    "decode_animation",
    "encode_frame",
    "encode_frame_reference",
    "frames_for_samples",
]

# --- motion ------------------------------------------------------------------
_ATTACK = 0.7  # one-pole smoother coefficient when opening (per frame)
_RELEASE = 0.65  # ... when closing
_SHAPE_SMOOTH = 0.5  # smoother coefficient of the lip-shape features
_HOLD_LEVEL = 0.15  # closing jaw still above this: a quiet frame holds the last viseme
_SPEECH_DB = -26.0  # typical speech level (dBFS), start of the emphasis average

# --- blinks ------------------------------------------------------------------
_BLINK_PROFILE = (0.55, 1.0, 0.6, 0.2)  # eyeBlink weight over the frames of a blink
_BLINK_MIN_FRAMES = 50  # 2 s
_BLINK_MAX_FRAMES = 150  # 6 s
_FIRST_BLINK_MIN_FRAMES = 20  # the first blink comes 0.8-3 s into the request
_FIRST_BLINK_MAX_FRAMES = 75

_Float = npt.NDArray[np.float64]
_INT16 = np.dtype(np.int16)  # native int16: the fast path of push()

Block = tuple["AnimationAnalyzer", int, npt.NDArray[Any]]
"""Frames to analyse: the analyzer, the index of the first frame, the windows
``(n, len)`` (float64, or the int16 samples themselves when they need no padding)."""


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
        "_blink_count",
        "_blink_start",
        "_buffer",
        "_buffer_start",
        "_finished",
        "_frame_len_max",
        "_fric",
        "_jaw",
        "_last_viseme",
        "_next_frame",
        "_num",
        "_open",
        "_rate",
        "_received",
        "_round",
        "_seed",
        "_slow_db",
        "_spec",
        "_spread",
        "_uniform_len",
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
        self._spec = rate_spec(sample_rate, self._frame_len_max)
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
        self._slow_db = _SPEECH_DB
        self._last_viseme = VISEME_SIL
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
        block = self.take(pcm)
        return analyze_blocks([block])[0] if block is not None else []

    def flush(self) -> list[AnimationFrame]:
        """End the request: return the remaining (partial, zero-padded) frames."""
        if self._finished:
            return []
        self._finished = True
        block = self._emit(self.frames_for(self._received), final=True)
        return analyze_blocks([block])[0] if block is not None else []

    def take(self, pcm: npt.NDArray[np.int16]) -> Block | None:
        """Add samples like :meth:`push`, but return the completed frames' windows
        unanalysed (``None``: none completed), for :func:`analyze_blocks` to
        analyse together with other requests' frames. The blocks of one analyzer
        must be analysed in the order they were taken.
        """
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
            return None
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
                return None
            self._next_frame = start + n
            self._buffer_start += used
            # int16 rows: analyze_blocks converts the whole block at once.
            return (self, start, pcm[:used].reshape(n, length))
        self._received += size
        if self._buffer.size:
            self._buffer = np.concatenate((self._buffer, pcm))
        else:
            self._buffer = pcm.copy()
        # Frames k with b(k + 1) <= received are complete.
        end = self._complete_frames(self._received)
        return self._emit(end, final=False)

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

    def _emit(self, end: int, *, final: bool) -> Block | None:
        start = self._next_frame
        if end <= start:
            return None
        blocks = self._frame_block(start, end, final=final)
        self._next_frame = end
        # Drop the consumed samples.
        consumed = self._boundary(end) - self._buffer_start
        if consumed >= self._buffer.size:
            self._buffer = np.zeros(0, dtype=np.int16)
        else:
            self._buffer = self._buffer[consumed:]
        self._buffer_start += consumed
        return (self, start, blocks)

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

    # -- analysis: the scalar stage --------------------------------------------

    def _smooth(
        self, start: int, f: dict[str, Any], lo: int, hi: int
    ) -> tuple[list[tuple[float, ...]], list[int]]:
        """Stage 2 for rows ``lo:hi`` of the features ``f`` (frames ``start``...):
        what carries from frame to frame. Returns per frame ``(jaw, openness,
        rounding, spreading, frication, emphasis, blink)`` and its viseme."""
        rows: list[tuple[float, ...]] = []
        visemes: list[int] = []
        k = _SHAPE_SMOOTH
        jaw, slow_db, last = self._jaw, self._slow_db, self._last_viseme
        op, ro, sp, fr = self._open, self._round, self._spread, self._fric
        for i in range(lo, hi):
            target = f["target"][i]
            emphasis = 0.0
            # Voice activity gates the shape features, so silence has a neutral face.
            if f["active"][i]:
                op += k * (f["openness"][i] - op)
                ro += k * (f["rounding"][i] - ro)
                sp += k * (f["spreading"][i] - sp)
                fr += k * (f["frication"][i] - fr)
                # Emphasis: a frame well above the recent speech level lifts the
                # inner brows. The average follows voiced frames only, so speech
                # onsets after silence are not all "emphatic".
                db = f["db"][i]
                emphasis = _clip01((db - slow_db - 5.0) / 10.0)
                slow_db += 0.08 * (db - slow_db)
            # Jaw: fast attack, slightly slower release.
            jaw += (_ATTACK if target > jaw else _RELEASE) * (target - jaw)
            if jaw < 1e-4:
                jaw = 0.0
            if target < SIL_LEVEL:
                # No speech in this frame: its spectrum is noise. While the jaw is
                # still closing, keep showing the last speech viseme.
                viseme = last if jaw >= _HOLD_LEVEL else VISEME_SIL
            else:
                viseme = classify_viseme(
                    target,
                    f["openness"][i],
                    f["rounding"][i],
                    f["spreading"][i],
                    f["frication"][i],
                    f["sibilance"][i],
                    f["murmur"][i],
                )
            last = viseme
            visemes.append(viseme)
            rows.append((jaw, op, ro, sp, fr, emphasis, self._blink(start + i - lo)))
        self._jaw, self._slow_db, self._last_viseme = jaw, slow_db, last
        self._open, self._round, self._spread, self._fric = op, ro, sp, fr
        return rows, visemes

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


def analyze_blocks(blocks: list[Block], lazy: bool = False) -> list[list[AnimationFrame]]:
    """Analyse blocks of frames (from :meth:`AnimationAnalyzer.take`): one list
    of frames per block. Blocks of one rate go together: stages 1 and 3
    (:mod:`avatarkit.devserver._features`) as one numpy computation, stage 2
    per analyzer, in order. Frames of a large batch carry their encoded
    weights; with ``lazy`` they are
    :class:`~avatarkit.devserver._packed.PackedFrame` (for the service's frame
    wheel, which only encodes them)."""
    out: list[list[AnimationFrame]] = [[] for _ in blocks]
    groups: dict[int, list[int]] = {}
    for i, (analyzer, _, _) in enumerate(blocks):
        groups.setdefault(id(analyzer._spec), []).append(i)
    for members in groups.values():
        spec = blocks[members[0]][0]._spec
        arrays = [blocks[i][2] for i in members]
        if len(arrays) == 1:
            windows = arrays[0].astype(np.float64, copy=False)
        else:  # int16 -> float64 is exact, so converting the whole block changes nothing
            windows = np.concatenate(arrays, dtype=np.float64)
        feats = features(spec, windows)
        rows: list[tuple[float, ...]] = []
        visemes: list[int] = []
        lo = 0
        for i in members:
            analyzer, start, block = blocks[i]
            hi = lo + block.shape[0]
            r, v = analyzer._smooth(start, feats, lo, hi)
            rows += r
            visemes += v
            lo = hi
        packed: list[bytes | None]
        if len(rows) <= SMALL_BLOCK:
            wl = [shapes_one(r, v) for r, v in zip(rows, visemes, strict=True)]
            packed = [None] * len(rows)  # encode_frame packs them
        else:
            weights = shapes(np.array(rows), np.array(visemes))
            packed = list(pack_weights(round3(weights)))
            wl = weights.tolist()
        # Encoded frames (a large block) for the wheel keep their weights as a
        # list and build the dict only when read (PackedFrame).
        make = make_packed_frame if lazy and packed[0] is not None else make_frame
        lo = 0
        for i in members:
            start = blocks[i][1]
            result = out[i]
            for index in range(start, start + blocks[i][2].shape[0]):
                result.append(make(index, VISEMES[visemes[lo]], wl[lo], packed[lo]))
                lo += 1
    return out
