"""Hypothesis strategies shared by every test module: bounded sizes, finite floats, broadcastable shapes."""
from __future__ import annotations

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
clip_dtypes = st.sampled_from([np.float32, np.float64])
norm_types = st.one_of(st.sampled_from([1.0, 2.0, 3.0, 0.5, float("inf")]), st.floats(0.25, 6.0))


@st.composite
def array_lists(draw, max_arrays: int = 5, max_size: int = 40, dtype=None, lo: float = -1e3, hi: float = 1e3,
                min_arrays: int = 1):
    """A list of 1-3 d arrays of one drawn float dtype (or `dtype`), finite values, sometimes empty arrays."""
    dt = dtype or draw(clip_dtypes)
    count = draw(st.integers(min_arrays, max_arrays))
    out = []
    for _ in range(count):
        size = draw(st.integers(0, max_size))
        shape = draw(st.sampled_from([(size,), (1, size), (size, 1)]))
        out.append(draw(hnp.arrays(dt, shape, elements=st.floats(lo, hi, allow_subnormal=False,
                                                                    width=np.dtype(dt).itemsize * 8))))
    return out


@st.composite
def mixed_dtype_lists(draw, max_arrays: int = 4, max_size: int = 30):
    """Arrays of float32 and float64 together."""
    out = []
    for _ in range(draw(st.integers(1, max_arrays))):
        out += draw(array_lists(max_arrays=1, max_size=max_size))
    return out
