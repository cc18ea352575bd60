"""What every backend shares: how a p-norm is assembled so that it cannot overflow, the clip coefficient and the
dtype it multiplies an array in.

For p > 0 the CPU backends first sum |x|^p in float64 in one pass. When that sum is a normal, not tiny,
finite number (`unscaled_ok`) it is exact to rounding and the norm is s^(1/p): squares of float32 (≤ 1.2e77)
cannot overflow float64, so float32 gradients always finish here. Otherwise (float64 values beyond ~1e154, a
large p, or values so small that their powers underflow) the sum is taken again of (|x|/m)^p with m = max|x|
over all arrays, and the norm is m · s^(1/p): no overflow or underflow for any finite input (1e200 and
1e-200 in float64 work). The CUDA backend, which cannot look at the first sum without a host round trip,
decides up front with `needs_scaling`.

The other orders, as torch defines them: p = inf is max |x|; p = -inf is min |x|; p = 0 counts the non-zero
elements (NaN counts); p < 0 is (Σ|x|^p)^(1/p), taken as m · (Σ(|x|/m)^p)^(1/p) with m = min |x| so that no term
exceeds 1 (a zero element makes the norm 0, as |0|^p = inf does in torch). NaN anywhere gives NaN, except for
p = 0. No input and no order raises: a norm too large for float64 (a tiny p) is inf.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from minigrad.clip.bfloat16 import is_bfloat16

UNSCALED_MAX_P = 7.0  # (3.4e38)^7 ≈ 5e269: even 1e12 such terms stay below float64's 1.8e308
# Below this an unscaled power sum may have lost terms to underflow (each lost term is < 2.2e-308; even 1e12 of
# them are < 1e-16 of 2^-900), so the norm is recomputed scaled.
TINY_SUM = 2.0 ** -900
CHUNK = 8192  # elements summed serially per partial; fixed, so the result is the same for any thread count
_LOG_MAX = math.log(np.finfo(np.float64).max)


def needs_scaling(dtypes: Sequence[np.dtype], p: float) -> bool:
    """True when a power sum must be scaled: float64 input, a large p, or any negative p (scaled by the min)."""
    return p < 0 or p > UNSCALED_MAX_P or any(np.dtype(d).itemsize > 4 for d in dtypes)


def unscaled_ok(power_sum):
    """True where an unscaled power sum can be trusted: finite, and large enough that underflow lost nothing
    (False for NaN). Elementwise for an array of sums (the segment norms)."""
    return (TINY_SUM <= power_sum) & (power_sum < math.inf)


def scaled_root(power_sum: float, p: float, scale: float) -> float:
    """scale · power_sum^(1/p) for power_sum > 0 (or NaN) and 0 < scale < inf: inf only where the result itself
    overflows float64, never an OverflowError (the CUDA backend compiles this same function for the device).

    `power_sum` is NaN or in [TINY_SUM, inf): an unscaled sum is used only there (`unscaled_ok`), and a sum scaled by
    the largest |x| (the smallest for p < 0) lies in [1, n]. For p < 1, power_sum^(1/p) alone can overflow while
    the norm does not (n^128 for p = 1/128, times a scale < 1): within a factor e of the overflow, of the result or
    of that power, the result is exp(log(power_sum)/p + log(scale)), relative error about 700 · 2^-52 ≈ 2e-13;
    elsewhere the direct product. A NaN passes through (log(NaN) compares false)."""
    log_root = math.log(power_sum) / p
    log_norm = log_root + math.log(scale)
    if log_norm > _LOG_MAX:
        return math.inf
    if log_root > _LOG_MAX - 1.0 or log_norm > _LOG_MAX - 1.0:
        return math.exp(log_norm)
    return scale * power_sum ** (1.0 / p)


def finish(power_sum: float, p: float, scale: float = 1.0) -> float:
    """scale · power_sum^(1/p), with the special exponents written out (exact for p = 1, 2)."""
    if p == 1.0:
        return scale * power_sum
    if p == 2.0:
        return scale * math.sqrt(power_sum)
    return scaled_root(power_sum, p, scale)


def special_scale(m: float) -> bool:
    """True when the scale alone decides a scaled norm: 0 (all zero, or a zero for p < 0), inf, or NaN."""
    return not (0.0 < m < math.inf)


def product_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype an array is multiplied by a coefficient (or a segment's factor) in: its own, except float16 and
    bfloat16, multiplied in float32 and rounded once: a float16 coefficient below 6e-5 is subnormal and keeps only a
    few bits, a bfloat16 one keeps 8 (torch rounds the coefficient to them, and clips these gradients less
    exactly)."""
    return np.dtype(np.float32) if dtype == np.float16 or is_bfloat16(dtype) else dtype


def clip_coef(total_norm: float, max_norm: float) -> float:
    """torch's coefficient min(max_norm / (norm + 1e-6), 1), NaN kept as NaN as torch's clamp keeps it.

    `total_norm` is a norm (≥ 0, inf or NaN), so the denominator is never 0.
    """
    coef = max_norm / (total_norm + 1e-6)
    return coef if (coef != coef or coef < 1.0) else 1.0
