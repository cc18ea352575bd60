"""What every backend shares: how a p-norm is assembled so that it cannot overflow.

For a p-norm the backends sum |x|^p in float64. Squares of float32 (≤ 1.2e77) or float16 values cannot
overflow float64, so for itemsize ≤ 4 and p ≤ UNSCALED_MAX_P one pass suffices. Otherwise (float64 input, or a
large p) the sum is taken of (|x|/m)^p with m = max|x| over all arrays, and the norm is m · s^(1/p): two
passes, no overflow for any finite input (1e200 in float64 works).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

UNSCALED_MAX_P = 7.0  # (3.4e38)^7 ≈ 5e269: even 1e12 such terms stay below float64's 1.8e308
CHUNK = 8192  # elements summed serially per partial; fixed, so the result is the same for any thread count


def needs_scaling(dtypes: Sequence[np.dtype], p: float) -> bool:
    return p > UNSCALED_MAX_P or any(np.dtype(d).itemsize > 4 for d in dtypes)


def finish(power_sum: float, p: float, scale: float = 1.0) -> float:
    """scale · power_sum^(1/p), with the special exponents written out (exact for p = 1, 2)."""
    if p == 1.0:
        return scale * power_sum
    if p == 2.0:
        return scale * math.sqrt(power_sum)
    return scale * power_sum ** (1.0 / p)


def special_max(m: float) -> bool:
    """True when the max |x| alone decides a scaled norm: 0 (all zero), inf, or NaN."""
    return not (0.0 < m < math.inf)


def clip_coef(total_norm: float, max_norm: float) -> float:
    """torch's coefficient min(max_norm / (norm + 1e-6), 1), NaN kept as NaN as torch's clamp keeps it."""
    coef = max_norm / (total_norm + 1e-6)
    return coef if (coef != coef or coef < 1.0) else 1.0
