"""bfloat16 without a bfloat16 type: the 16 bits of each element held in a uint16, decoded and rounded by
arithmetic.

NumPy has no bfloat16 (ml_dtypes adds one; CuPy uses it), numba.cuda cannot type such arrays, and the CUDA
simulator has no bit casts (docs/internals.md). So the CUDA kernels read a bfloat16 array through a uint16 view
and use the two functions below, which the backend compiles for the device as it compiles `pnorm.scaled_root`.
Both are exact: every bfloat16 is a float64, and a float32 is rounded to the nearest bfloat16 with ties to even,
as ml_dtypes and torch round. minigrad never imports ml_dtypes: an array is bfloat16 when its dtype says so.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def is_bfloat16(dtype: Any) -> bool:
    """Whether `dtype` is ml_dtypes' bfloat16 (a 2-byte dtype of that name; NumPy's kind for it is 'V')."""
    dtype = np.dtype(dtype)
    return dtype.name == "bfloat16" and dtype.itemsize == 2


def is_floating(dtype: Any) -> bool:
    """A floating dtype that clipping takes: NumPy's float16/32/64 (and longer), or bfloat16."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or is_bfloat16(dtype)


def value(bits):  # pragma: no cover - compiled for the device (and run by the tests on the host)
    """The float64 value of a bfloat16 given by its bits (an integer in [0, 2^16)): exact."""
    bits = int(bits)  # a signed integer: a uint16's arithmetic would wrap below 0
    exponent = (bits >> 7) & 0xFF
    mantissa = bits & 0x7F
    if exponent == 0xFF:
        v = math.inf if mantissa == 0 else math.nan
    elif exponent == 0:  # subnormal: mantissa · 2^-133
        v = math.ldexp(float(mantissa), -133)
    else:  # (128 + mantissa) · 2^(exponent - 134), the implicit bit written out
        v = math.ldexp(float(mantissa | 0x80), exponent - 134)
    return -v if bits & 0x8000 else v


def bits(v):  # pragma: no cover - compiled for the device (and run by the tests on the host)
    """The bits of the bfloat16 nearest to the float32 value `v` (given as any float), ties to even; too large a
    value rounds to inf, NaN gives a quiet NaN of v's sign (0x7FC0, 0xFFC0), as ml_dtypes converts."""
    sign = 0x8000 if math.copysign(1.0, v) < 0.0 else 0
    if v != v:
        return sign | 0x7FC0
    a = abs(v)
    if a == math.inf:
        return sign | 0x7F80
    if a == 0.0:
        return sign
    m, e = math.frexp(a)  # a = m · 2^e, 0.5 <= m < 1
    if e < -125:  # below the smallest normal, 2^-126: whole steps of 2^-133
        q = math.ldexp(a, 133)
        base = 0
    else:  # eight significant bits; the exponent field is e + 126, and q >= 128 brings the implicit bit
        q = m * 256.0
        base = ((e + 126) << 7) - 128
    r = math.floor(q)
    rest = q - r  # exact: q has at most 24 significant bits
    if rest > 0.5 or (rest == 0.5 and r % 2 == 1):
        r += 1
    return sign | (base + int(r))  # a carry out of the mantissa steps the exponent; past 254 it is inf (0x7F80)
