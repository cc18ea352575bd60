"""The reference backend: plain NumPy, one array at a time, written to be obviously correct."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from minigrad.clip._plan import finish, needs_scaling, special_max

# np.clip's own ufunc: np.clip wraps it in ~3 us of Python argument handling per call, which dominates
# clipping many small arrays. Fall back to np.clip where NumPy's layout differs.
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


def power_sum(a: np.ndarray, p: float, scale: float = 1.0) -> float:
    """Σ (|x|/scale)^p over one array, in float64."""
    x = a.reshape(-1).astype(np.float64)
    if scale != 1.0:
        x /= scale
    if p == 2.0:
        return float(np.dot(x, x))
    np.abs(x, out=x)
    return float(np.sum(x)) if p == 1.0 else float(np.sum(x ** p))


def total_norm(arrays: Sequence[np.ndarray], p: float) -> np.ndarray:
    """The p-norm of all elements of all arrays as one vector, as a 0-d float64 array."""
    if p == math.inf:
        return np.asarray(max_abs(arrays))
    scale = 1.0
    if needs_scaling([a.dtype for a in arrays], p):
        scale = max_abs(arrays)
        if special_max(scale):
            return np.asarray(scale)
    return np.asarray(finish(sum(power_sum(a, p, scale) for a in arrays), p, scale))


def typed(values: tuple, dtype: np.dtype, cache: dict) -> tuple:
    """`values` as scalars of `dtype`, converted once per dtype (a conversion costs as much as a small op)."""
    if dtype not in cache:
        cache[dtype] = tuple(dtype.type(v) for v in values)
    return cache[dtype]


def scale_(arrays: Sequence[np.ndarray], coef: float) -> None:
    """x *= coef in each array's own dtype (the coefficient is rounded to that dtype first, as torch does)."""
    cache: dict = {}
    for a in arrays:
        np.multiply(a, typed((coef,), a.dtype, cache)[0], out=a)


def clamp_(arrays: Sequence[np.ndarray], lo: float, hi: float) -> None:
    """x = min(max(x, lo), hi) in place (np.clip's definition); NaN stays NaN."""
    cache: dict = {}
    for a in arrays:
        _clip_ufunc(a, *typed((lo, hi), a.dtype, cache), out=a)
