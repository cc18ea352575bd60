"""The reference backend: plain NumPy, one array at a time, written to be obviously correct."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from minigrad.clip.pnorm import finish, product_dtype, special_scale, unscaled_ok

# np.clip's own ufunc: np.clip wraps it in Python argument handling that costs more than the clip itself on
# small arrays, and clipping many small arrays is common. Fall back to np.clip where NumPy's layout differs.
try:
    from numpy._core.umath import clip as _clip_ufunc
except ImportError:  # pragma: no cover - older NumPy
    _clip_ufunc = np.clip


def max_abs(arrays: Sequence[np.ndarray]) -> float:
    """max |x| over all arrays as float64; NaN if any element is NaN; 0.0 when there are no elements."""
    m = 0.0
    for a in arrays:
        if a.size:
            am = float(np.max(np.abs(a)))
            if am != am:
                return math.nan
            m = max(m, am)
    return m


def min_abs(arrays: Sequence[np.ndarray]) -> float:
    """min |x| over all arrays as float64; NaN if any element is NaN; inf when there are no elements."""
    m = math.inf
    for a in arrays:
        if a.size:
            am = float(np.min(np.abs(a)))
            if am != am:
                return math.nan
            m = min(m, am)
    return m


def count_nonzero(arrays: Sequence[np.ndarray]) -> float:
    """The number of elements that are not 0 (NaN counts), as torch's norm of order 0."""
    return float(sum(np.count_nonzero(a) for a in arrays))


def power_sum(a: np.ndarray, p: float, scale: float = 1.0) -> float:
    """Σ (|x|/scale)^p over one array, in float64."""
    return power_sum_all([a], p, scale)


def power_sum_all(arrays: Sequence[np.ndarray], p: float, scale: float = 1.0) -> float:
    """Σ (|x|/scale)^p over all arrays, in float64: one float64 copy of all elements (a few NumPy calls in all,
    which is what small arrays cost), then the sum. Overflow and underflow are expected here (an unscaled first
    try; |0|^-p = inf) and handled by the caller, so NumPy is not asked to warn about them."""
    # a bfloat16 NaN cast to float64 raises NumPy's invalid flag (ml_dtypes): NaN in, NaN out, no warning
    with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
        if len(arrays) == 1:
            x = arrays[0].reshape(-1).astype(np.float64)
        else:
            x = np.concatenate(arrays, axis=None, dtype=np.float64)
        if scale != 1.0:
            x /= scale
        if p == 2.0:
            return float(np.dot(x, x))
        np.abs(x, out=x)
        return float(np.sum(x)) if p == 1.0 else float(np.sum(x ** p))


def special_order(arrays: Sequence[np.ndarray], p: float) -> float | None:
    """The norm for the orders every backend answers the same way: no elements (0), ±inf, 0; else None."""
    if not any(a.size for a in arrays):
        return 0.0
    if p == math.inf:
        return max_abs(arrays)
    if p == -math.inf:
        return min_abs(arrays)
    if p == 0.0:
        return count_nonzero(arrays)
    return None


def total_norm(arrays: Sequence[np.ndarray], p: float) -> np.ndarray:
    """The p-norm of all elements of all arrays as one vector, as a 0-d float64 array (see pnorm.py for the orders)."""
    special = special_order(arrays, p)
    if special is not None:
        return np.asarray(special)
    if p > 0:
        s = power_sum_all(arrays, p)
        if s != s or unscaled_ok(s):  # NaN in, NaN out; or a sum that lost nothing
            return np.asarray(finish(s, p))
    scale = max_abs(arrays) if p > 0 else min_abs(arrays)
    if special_scale(scale):
        return np.asarray(scale)
    return np.asarray(finish(power_sum_all(arrays, p, scale), p, scale))


def typed(values: tuple, dtype: np.dtype, cache: dict) -> tuple:
    """`values` as scalars of `dtype`, converted once per dtype (a conversion costs as much as a small op)."""
    if dtype not in cache:
        cache[dtype] = tuple(dtype.type(v) for v in values)
    return cache[dtype]


def scale_(arrays: Sequence[np.ndarray], coef: float) -> None:
    """x *= coef in each array's own dtype (the coefficient rounded to that dtype first, as torch does), except
    float16 and bfloat16 (`pnorm.product_dtype`)."""
    cache: dict = {}
    for a in arrays:
        np.multiply(a, typed((coef,), product_dtype(a.dtype), cache)[0], out=a, casting="unsafe")


def clamp_(arrays: Sequence[np.ndarray], lo: float, hi: float) -> None:
    """x = min(max(x, lo), hi) in place (np.clip's definition); NaN stays NaN."""
    cache: dict = {}
    for a in arrays:
        _clip_ufunc(a, *typed((lo, hi), a.dtype, cache), out=a)


# ----- segments: the norms of consecutive pieces of one flat array (per-parameter norms, AGC's units) ------------
def segment_norms(x: np.ndarray, offsets: np.ndarray, p: float) -> np.ndarray:
    """The p-norm (p > 0 or inf) of each segment x[offsets[k]:offsets[k + 1]] of a 1-d array, in float64; an
    empty segment has norm 0. One power sum per segment; a segment whose sum overflowed or underflowed is
    recomputed by `total_norm` (scaled), as a whole-array norm would be."""
    sizes = np.diff(offsets)
    out = np.zeros(sizes.size)
    keep = sizes > 0
    if not keep.any():
        return out
    starts = offsets[:-1][keep]
    with np.errstate(invalid="ignore"):  # a bfloat16 NaN (see power_sum_all)
        magnitude = np.abs(x.astype(np.float64))
    if p == math.inf:
        out[keep] = np.maximum.reduceat(magnitude, starts)
        return out
    with np.errstate(over="ignore", under="ignore"):
        sums = np.add.reduceat(magnitude * magnitude if p == 2.0 else magnitude ** p, starts)
        roots = sums ** (1.0 / p)
    out[keep] = roots
    redo = ~unscaled_ok(sums) & ~np.isnan(sums)
    for k in np.flatnonzero(keep)[redo]:
        out[k] = float(total_norm([x[offsets[k]:offsets[k + 1]]], p))
    return out


def scale_segments_(x: np.ndarray, offsets: np.ndarray, factors: np.ndarray) -> None:
    """x[segment k] *= factors[k] in x's dtype (float16 and bfloat16: in float32, rounded once, as scale_). A
    factor of 1 leaves its segment bit-identical."""
    dtype = product_dtype(x.dtype)
    per_element = np.repeat(np.asarray(factors, dtype=np.float64).astype(dtype), np.diff(offsets))
    np.multiply(x, per_element, out=x, casting="unsafe")


def unit_clip_factors(weight_norms: np.ndarray, grad_norms: np.ndarray, clip_factor: float, eps: float) -> np.ndarray:
    """AGC's factor per unit: limit = max(‖W‖, eps)·clip_factor; limit / max(‖G‖, 1e-6) where ‖G‖ >= limit,
    else 1."""
    limit = np.maximum(weight_norms, eps) * clip_factor
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(grad_norms >= limit, limit / np.maximum(grad_norms, 1e-6), 1.0)


def agc_(g: np.ndarray, w: np.ndarray, offsets: np.ndarray, clip_factor: float, eps: float, p: float) -> None:
    """Unit-wise adaptive gradient clipping of the flat gradient g against the flat weights w."""
    factors = unit_clip_factors(segment_norms(w, offsets, p), segment_norms(g, offsets, p), clip_factor, eps)
    scale_segments_(g, offsets, factors)
