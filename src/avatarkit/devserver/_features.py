"""The vectorised halves of the lip-sync analysis: per-frame features and mouth shapes.

:class:`~avatarkit.devserver._animation.AnimationAnalyzer` computes a frame
in three stages. The first and the last depend only on the frame itself, so
they run here as numpy over a block of frames, from one request or from many
sessions at once (the local service analyses every session's due frames
together, once per tick of its frame wheel):

1. :func:`features`: level, spectral band energies (one windowed ``rfft`` per
   row) and what follows from them (openness, rounding, spreading, frication,
   sibilance, murmur, the unsmoothed viseme);
2. (in the analyzer, a short scalar loop per frame: the smoothers, the jaw,
   the emphasis average, the viseme hold and the blinks, which carry state
   from frame to frame);
3. :func:`shapes`: the 16 blendshape weights of each frame, and
   :func:`pack_weights`, their protobuf bytes (the ``blendshapes`` map, weights
   rounded to 3 decimals as :func:`~avatarkit._frames_codec.encode_frame`
   does), so a frame is encoded once, where it is computed.

Every operation is elementwise (or a reduction along a row), so a frame's
result does not depend on which block it was computed in; the tests check
this. Transcendental functions are used in stage 1 only. Stage 2's viseme
choice (:func:`classify_viseme`, scalar, per speech frame) lives here too,
beside the feature thresholds it reads.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from avatarkit._frames_codec import _SORTED_NAMES, _SORTED_PREFIXES, BLENDSHAPE_NAMES, VISEMES

__all__ = [
    "VISEME_SIL",
    "RateSpec",
    "classify_viseme",
    "features",
    "pack_weights",
    "rate_spec",
    "round3",
    "shapes",
    "shapes_one",
]

_Float = npt.NDArray[np.float64]

# --- level mapping -----------------------------------------------------------
FLOOR_DB = -50.0  # RMS (dBFS) at and below which the jaw is closed
FULL_DB = -15.0  # RMS (dBFS) at which the level reaches 1
DB_EPS = 1e-10  # power added before log10 (digital zeros -> -100 dBFS)
JAW_MAX = 0.8  # jawOpen at full level
JAW_GAMMA = 1.3  # level -> jaw curve (soft for quiet speech)
SIL_LEVEL = 0.06  # jaw target below this: no speech in the frame

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

# Segments: 80-200, 200-400, 400-1000, 1000-2500, 2500-3000, 3000-4000, 4000-8000.
_BAND_EDGES_HZ = (80.0, 200.0, 400.0, 1000.0, 2500.0, 3000.0, 4000.0, 8000.0)

#: Indices into ``VISEMES`` (sil, PP, FF, SS, aa, E, ih, oh, ou); PP: lips closed.
VISEME_SIL, _PP, _FF, _SS, _AA, _E, _IH, _OH, _OU = range(len(VISEMES))


class RateSpec:
    """What the analysis of one sample rate needs: frame length, window, bands."""

    __slots__ = (
        "band_pos",
        "band_starts",
        "bin_hz_pairs",
        "frame_len",
        "pairs",
        "power_scale",
        "window",
    )

    def __init__(self, sample_rate: int, frame_len: int) -> None:
        n = self.frame_len = frame_len
        # Periodic Hann window over the (longest) frame.
        self.window: _Float = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
        bin_hz = sample_rate / n
        # Band edges as rfft bin indices; bands above Nyquist are empty.
        edges = tuple(min(n // 2, max(1, math.ceil(hz / bin_hz))) for hz in _BAND_EDGES_HZ)
        # Band sums are taken over the interleaved (re^2, im^2) pairs of the
        # spectrum: the energy, and the energy weighted by the bin's frequency
        # (for the centroid). Only non-empty bands are reduced; the others stay 0.
        top = edges[-1]
        self.pairs = 2 * top
        self.bin_hz_pairs: _Float = np.repeat(np.arange(top, dtype=np.float64) * bin_hz, 2)
        nonempty = [i for i in range(len(edges) - 1) if edges[i] < edges[i + 1]]
        self.band_starts = np.asarray([2 * edges[i] for i in nonempty], dtype=np.intp)
        all_bands = len(edges) - 1
        self.band_pos = None if len(nonempty) == all_bands else np.asarray(nonempty, np.intp)
        self.power_scale = 1.0 / (32768.0 * 32768.0 * n)


@functools.lru_cache(maxsize=64)
def rate_spec(sample_rate: int, frame_len: int) -> RateSpec:
    """The shared :class:`RateSpec` of a rate (built once per rate)."""
    return RateSpec(sample_rate, frame_len)


def _clip01(x: _Float) -> _Float:
    # + 0.0 turns -0.0 into 0.0 (a weight of -0.0 would encode differently)
    return np.minimum(np.maximum(x, 0.0), 1.0) + 0.0


CHUNK_ROWS = 32
"""Rows :func:`features` computes at a time. Its temporaries stay small enough
to be reused from the heap and the CPU cache: in one piece, 64 rows and more
cost more than twice as much per row (fresh pages for every temporary)."""


def features(spec: RateSpec, frames: _Float) -> dict[str, Any]:
    """Stage 1 for a block of frames ``(n, frame_len)``: per-frame feature lists.

    Returns Python lists (the scalar stage 2 reads them one frame at a time):
    ``db``, ``target`` (jaw target), ``active`` (speech level above the
    floor), ``openness``, ``rounding``, ``spreading``, ``frication``,
    ``sibilance`` and ``murmur``. A large block is computed ``CHUNK_ROWS``
    at a time (each row's result is the same in any block).
    """
    count = frames.shape[0]
    if count <= CHUNK_ROWS:
        return _features(spec, frames)
    out: dict[str, list[Any]] = {k: [] for k in _FEATURES}
    pieces = -(-count // CHUNK_ROWS)
    size = -(-count // pieces)  # pieces of equal size: no small remainder
    for lo in range(0, count, size):
        part = _features(spec, frames[lo : lo + size])
        for key, values in out.items():
            values += part[key]
    return out


def _features(spec: RateSpec, frames: _Float) -> dict[str, Any]:
    count = frames.shape[0]
    # Level: mean power of the frame (zero padding of a last partial frame
    # counts as silence), in full-scale units.
    power = (frames * frames).sum(axis=1) * spec.power_scale
    # Band energies from one windowed rfft per frame (relative units: only
    # their ratios are used). The complex spectrum viewed as (re, im) float
    # pairs and squared in place gives the power of each bin as two terms.
    spec_c = np.fft.rfft(frames * spec.window, axis=1)
    pairs = spec_c.view(np.float64)[:, : spec.pairs]
    np.square(pairs, out=pairs)
    energy = np.add.reduceat(pairs, spec.band_starts, axis=1)
    weighted = np.add.reduceat(pairs * spec.bin_hz_pairs, spec.band_starts, axis=1)
    seg = np.stack((energy, weighted), axis=1)
    if spec.band_pos is not None:  # bands above Nyquist are empty
        full = np.zeros((count, 2, len(_BAND_EDGES_HZ) - 1), dtype=np.float64)
        full[:, :, spec.band_pos] = seg
        seg = full
    if count <= SMALL_BLOCK:
        return _features_few(power, seg)
    e80, e200, e400, e1000, e2500, e3000, e4000 = (seg[:, 0, i] for i in range(7))
    w200, w400, w1000, w2500 = (seg[:, 1, i] for i in (1, 2, 3, 4))

    db = 10.0 * np.log10(power + DB_EPS)
    level = _clip01((db - FLOOR_DB) / (FULL_DB - FLOOR_DB))
    active = level > 0.0
    target = np.where(active, JAW_MAX * np.power(level, JAW_GAMMA), 0.0)

    eps = 1e-12
    total = e80 + e200 + e400 + e1000 + e2500 + e3000 + e4000 + eps
    # Formant-region estimates: power centroid of 200-1000 Hz (~F1) and of
    # 1000-3000 Hz (~F2), and the strength of the F2 region relative to F1.
    e_f1 = e200 + e400 + eps
    e_f2 = e1000 + e2500 + eps
    f1_hz = (w200 + w400) / e_f1
    f2_hz = (w1000 + w2500) / e_f2
    f2_db = 10.0 * np.log10(e_f2 / e_f1)
    openness = _clip01((f1_hz - _F1_CLOSE_HZ) / (_F1_OPEN_HZ - _F1_CLOSE_HZ))
    # Back rounded vowels (u, o) have F2 below ~1 kHz, inside the F1 region:
    # the 1-3 kHz region then holds only F3 (very weak), or F2's upper skirt
    # (weak, low centroid). Front vowels (i, e) have a high F2 centroid.
    rounding = np.maximum(
        _clip01((_ROUND_DB - f2_db) / _ROUND_DB_RANGE),
        _clip01((_ROUND_F2_HZ - f2_hz) / _ROUND_F2_RANGE_HZ)
        * _clip01((_ROUND_SKIRT_DB - f2_db) / _ROUND_SKIRT_DB_RANGE),
    )
    spreading = _clip01((f2_hz - _SPREAD_F2_HZ) / _SPREAD_F2_RANGE_HZ) * (1.0 - rounding)
    frication = (e2500 + e3000 + e4000) / total
    sibilance = e4000 / total
    murmur = (e80 + e200) / total

    return {
        "db": db.tolist(),
        "target": target.tolist(),
        "active": active.tolist(),
        "openness": openness.tolist(),
        "rounding": rounding.tolist(),
        "spreading": spreading.tolist(),
        "frication": frication.tolist(),
        "sibilance": sibilance.tolist(),
        "murmur": murmur.tolist(),
    }


SMALL_BLOCK = 6
"""Up to this many frames, the arithmetic of stages 1 and 3 runs in plain floats."""


def _clip(value: float) -> float:
    return 0.0 if value <= 0.0 else (1.0 if value >= 1.0 else value)


def _features_few(power: _Float, seg: _Float) -> dict[str, Any]:
    """:func:`features` after the spectrum, for a few frames: the same operations
    in the same order in plain floats (IEEE arithmetic gives the same bits), the
    logarithms and powers still by numpy, so that a frame's features do not
    depend on the size of its block (the tests compare them)."""
    db = (10.0 * np.log10(power + DB_EPS)).tolist()
    levels = [_clip((d - FLOOR_DB) / (FULL_DB - FLOOR_DB)) for d in db]
    powered = np.power(np.array(levels), JAW_GAMMA).tolist()
    bands = seg.tolist()
    ratios = []
    for energy, _ in bands:
        e_f1 = energy[1] + energy[2] + 1e-12
        e_f2 = energy[3] + energy[4] + 1e-12
        ratios.append(e_f2 / e_f1)
    f2_dbs = (10.0 * np.log10(np.array(ratios))).tolist()
    out: dict[str, list[Any]] = {k: [] for k in _FEATURES}
    for i, (energy, weighted) in enumerate(bands):
        e80, e200, e400, e1000, e2500, e3000, e4000 = energy
        eps = 1e-12
        total = e80 + e200 + e400 + e1000 + e2500 + e3000 + e4000 + eps
        e_f1 = e200 + e400 + eps
        e_f2 = e1000 + e2500 + eps
        f1_hz = (weighted[1] + weighted[2]) / e_f1
        f2_hz = (weighted[3] + weighted[4]) / e_f2
        f2_db = f2_dbs[i]
        rounding = max(
            _clip((_ROUND_DB - f2_db) / _ROUND_DB_RANGE),
            _clip((_ROUND_F2_HZ - f2_hz) / _ROUND_F2_RANGE_HZ)
            * _clip((_ROUND_SKIRT_DB - f2_db) / _ROUND_SKIRT_DB_RANGE),
        )
        level = levels[i]
        out["db"].append(db[i])
        out["active"].append(level > 0.0)
        out["target"].append(JAW_MAX * powered[i] if level > 0.0 else 0.0)
        out["openness"].append(_clip((f1_hz - _F1_CLOSE_HZ) / (_F1_OPEN_HZ - _F1_CLOSE_HZ)))
        out["rounding"].append(rounding)
        spread = _clip((f2_hz - _SPREAD_F2_HZ) / _SPREAD_F2_RANGE_HZ) * (1.0 - rounding)
        out["spreading"].append(spread)
        out["frication"].append((e2500 + e3000 + e4000) / total)
        out["sibilance"].append(e4000 / total)
        out["murmur"].append((e80 + e200) / total)
    return out


_FEATURES = (
    "db",
    "target",
    "active",
    "openness",
    "rounding",
    "spreading",
    "frication",
    "sibilance",
    "murmur",
)


def shapes(state: _Float, viseme: npt.NDArray[np.int64]) -> _Float:
    """Stage 3: blendshape weights ``(n, 16)`` in ``BLENDSHAPE_NAMES`` order, in [0, 1].

    ``state`` is ``(n, 7)``: per frame the smoothed jaw, openness, rounding,
    spreading and frication, the emphasis and the blink weight, as the
    scalar stage 2 left them after that frame.
    """
    jaw, openness, rounded, spread, fric_s, emphasis, blink = state.T
    # Activity of the lips: how much the mouth is "speaking" right now.
    act = _clip01(jaw * 3.0)
    fric = _clip01((fric_s - 0.35) * 2.5)
    closure = (viseme == _PP).astype(np.float64)

    jaw_open = jaw * (1.0 - 0.45 * fric) * (1.0 - 0.5 * closure)
    funnel = act * rounded * (0.3 + 0.5 * openness)
    pucker = act * rounded * (0.75 - 0.45 * openness)
    stretch = act * (0.5 * spread + 0.3 * fric)
    smile = act * 0.35 * spread
    lower = jaw_open * 0.45 + act * 0.2 * spread
    upper = act * (0.25 * spread + 0.3 * fric)
    mouth_close = _clip01(1.0 - jaw * 3.0) * 0.85 + 0.15 * closure
    cheek = 0.25 * closure * act
    brow = 0.5 * emphasis
    out = np.stack(
        (
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
        ),
        axis=1,
    )
    return _clip01(out)


def shapes_one(state: tuple[float, ...], viseme: int) -> list[float]:
    """:func:`shapes` for one frame, in plain floats (cheaper for a few frames).

    The same operations in the same order as :func:`shapes`, so the same
    results to the last bit (IEEE arithmetic; the tests compare them).
    """
    jaw, openness, rounded, spread, fric_s, emphasis, blink = state
    act = _clip(jaw * 3.0)
    fric = _clip((fric_s - 0.35) * 2.5)
    closure = 1.0 if viseme == _PP else 0.0
    jaw_open = jaw * (1.0 - 0.45 * fric) * (1.0 - 0.5 * closure)
    smile = act * 0.35 * spread
    stretch = act * (0.5 * spread + 0.3 * fric)
    lower = jaw_open * 0.45 + act * 0.2 * spread
    upper = act * (0.25 * spread + 0.3 * fric)
    values = (
        jaw_open,
        _clip(1.0 - jaw * 3.0) * 0.85 + 0.15 * closure,
        act * rounded * (0.3 + 0.5 * openness),
        act * rounded * (0.75 - 0.45 * openness),
        smile,
        smile,
        stretch,
        stretch,
        lower,
        lower,
        upper,
        upper,
        0.25 * closure * act,
        0.5 * emphasis,
        blink,
        blink,
    )
    return [_clip(v) for v in values]


# Packed layout of the ``blendshapes`` map: each entry's fixed prefix, then
# its float32 weight, in the serializer's (sorted) order.
_SORT = [BLENDSHAPE_NAMES.index(n) for n in _SORTED_NAMES]
_PACKED = np.dtype(
    [
        (f"{kind}{i}", f"S{len(p)}" if kind == "p" else "<f4")
        for i, p in enumerate(_SORTED_PREFIXES)
        for kind in ("p", "w")
    ]
)
_TEMPLATE = np.zeros(1, dtype=_PACKED)
for _i, _p in enumerate(_SORTED_PREFIXES):
    _TEMPLATE[f"p{_i}"] = _p


def round3(weights: _Float) -> _Float:
    """``weights`` rounded to 3 decimals exactly as Python's ``round(w, 3)`` does.

    numpy rounds ``w * 1000`` (itself rounded); Python rounds the exact
    decimal value of ``w``. They can differ only where ``w * 1000`` lies within
    a hair of a half: those few are redone with ``round``.
    """
    scaled = weights * 1000.0
    out: _Float = np.rint(scaled) / 1000.0
    near = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    if near.any():
        idx = np.nonzero(near)
        out[idx] = [round(w, 3) for w in weights[idx].tolist()]
    return out


def pack_weights(weights: _Float) -> list[bytes]:
    """The ``blendshapes`` map bytes of each row of ``weights`` (``(n, 16)``, rounded)."""
    n = weights.shape[0]
    packed = np.repeat(_TEMPLATE, n)
    for i, col in enumerate(_SORT):
        packed[f"w{i}"] = weights[:, col]
    blob = packed.tobytes()
    size = _PACKED.itemsize
    return [blob[i * size : (i + 1) * size] for i in range(n)]


def classify_viseme(
    target: float,
    openness: float,
    rounding: float,
    spreading: float,
    frication: float,
    sibilance: float,
    murmur: float,
) -> int:
    """The viseme of a speech frame (an index into ``VISEMES``)."""
    if frication > 0.5:
        # Sibilants have most of their energy above 4 kHz (not visible at 8 kHz).
        return _SS if sibilance > 0.6 * frication else _FF
    if murmur > 0.85 and target < 0.35:
        return _PP  # low, quiet murmur: nasal / bilabial closure
    if rounding > 0.5:
        return _OU if openness < 0.4 else _OH
    if spreading > 0.5:
        return _IH if openness < 0.4 else _E
    return _AA if openness >= 0.4 else _IH
