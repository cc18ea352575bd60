"""Hypothesis strategies shared by every test module: bounded sizes, broadcastable shapes, and the clipping
domain in full.

The clipping strategies reach every branch of the backends: sizes on both sides of every threshold and over
many chunks (the tests shrink `pnorm.CHUNK`, `numba_backend.SMALL` and `clip.NUMBA_MIN_ELEMENTS` so that a
few hundred elements span dozens of chunks — see the `small_kernels` fixture), float16/32/64, values from
subnormal to the dtype's largest (1e30 in float32, 1e200 in float64) with NaN and ±inf on request,
contiguous, transposed, negative-stride and strided layouts, and every norm order.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

small_dims = st.integers(1, 4)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def float_arrays(shape=shapes, dtype=np.float64, lo: float = -3.0, hi: float = 3.0):
    """Arrays of finite values in [lo, hi] (no subnormals)."""
    width = np.dtype(dtype).itemsize * 8
    return hnp.arrays(dtype, shape, elements=st.floats(lo, hi, allow_subnormal=False, width=width))


@st.composite
def broadcast_pair(draw, lo: float = -3.0, hi: float = 3.0):
    """Two float64 arrays whose shapes broadcast together (either may be the smaller one)."""
    shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3)
    shape_a, shape_b = draw(shapes).input_shapes
    return draw(float_arrays(shape_a, lo=lo, hi=hi)), draw(float_arrays(shape_b, lo=lo, hi=hi))


@st.composite
def matmul_pair(draw):
    """Operands of a matmul: 1-d or 2-d or batched 3-d with matching inner dims."""
    n, k, m = draw(small_dims), draw(small_dims), draw(small_dims)
    a_shape = draw(st.sampled_from([(k,), (n, k), (2, n, k)]))
    b_shape = draw(st.sampled_from([(k,), (k, m), (2, k, m)]))
    return draw(float_arrays(a_shape)), draw(float_arrays(b_shape))


# ----- clipping ---------------------------------------------------------------------------------------------
CLIP_DTYPES = (np.float16, np.float32, np.float64)
DEVICE_DTYPES = (np.float16, np.float32, np.float64)  # what the CUDA backend takes
LAYOUTS = ("contiguous", "transposed", "reversed", "strided")
# the largest magnitude drawn per dtype: 1e30 in float32 and 1e200 in float64 need the overflow-safe norm
MAGNITUDE = {np.dtype(np.float16): 6e4, np.dtype(np.float32): 1e30, np.dtype(np.float64): 1e200}

positive_orders = st.one_of(st.sampled_from([1.0, 2.0, 3.0, 0.5, 8.0, 20.0, math.inf]),
                            st.floats(1e-3, 20.0))
"""Orders p > 0, tiny to 20, and inf: every order for which ‖x‖_p is a norm (homogeneous, monotone in p)."""

norm_types = st.one_of(positive_orders, st.sampled_from([0.0, -1.0, -2.0, -math.inf, "inf", "-inf"]),
                       st.floats(-20.0, -1e-3))
"""Every order torch accepts: p > 0, 0 (count of non-zeros), p < 0 and ±inf, as numbers or strings."""


def values(dtype, special: bool = False, lo: float = 0.0):
    """Elements of `dtype` from the subnormal range up to MAGNITUDE (both signs); with `special`, also NaN and
    ±inf. `lo` > 0 excludes magnitudes below it (for properties that need no underflow)."""
    dtype = np.dtype(dtype)
    width = dtype.itemsize * 8
    big, low = float(dtype.type(MAGNITUDE[dtype])), float(dtype.type(lo))  # bounds the dtype can hold
    magnitude = st.one_of(st.floats(low, big, width=width, allow_subnormal=lo == 0.0),
                          st.sampled_from([v for v in (1.0, big, float(np.finfo(dtype).tiny)) if v >= low]))
    finite = st.builds(lambda m, s: s * m, magnitude, st.sampled_from([1.0, -1.0]))
    if not special:
        return finite
    return st.one_of(finite, finite, finite, st.sampled_from([math.nan, math.inf, -math.inf]))


def laid_out(base: np.ndarray, layout: str) -> np.ndarray:
    """A view of `base`'s elements (1-d) in the given memory layout; the values, in order, are base's."""
    n = base.size
    if layout == "contiguous" or n < 2:
        return base
    if layout == "reversed":  # a negative stride
        return base[::-1].copy()[::-1]
    if layout == "strided":
        room = np.zeros(2 * n, base.dtype)
        room[::2] = base
        return room[::2]
    cols = next(k for k in (3, 2, 1) if n % k == 0)  # transposed: a Fortran-ordered 2-d array
    return np.asfortranarray(base.reshape(n // cols, cols))


@st.composite
def array_lists(draw, max_arrays: int = 5, max_size: int = 300, dtypes=CLIP_DTYPES, special: bool = False,
                lo: float = 0.0, min_arrays: int = 1, layouts=LAYOUTS):
    """A list of arrays, each of a drawn dtype (mixed dtypes in one list), size 0..max_size, values by
    `values(dtype, special, lo)`, in a drawn layout."""
    out = []
    for _ in range(draw(st.integers(min_arrays, max_arrays))):
        dtype = np.dtype(draw(st.sampled_from(dtypes)))
        size = draw(st.integers(0, max_size))
        base = draw(hnp.arrays(dtype, size, elements=values(dtype, special, lo)))
        out.append(laid_out(base, draw(st.sampled_from(layouts))))
    return out


def device_lists(**kwargs):
    """array_lists that the CUDA backend accepts: float32/float64 (the test copies them to the device)."""
    return array_lists(dtypes=DEVICE_DTYPES, **kwargs)
