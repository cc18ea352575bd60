"""Many CuPy arrays in one launch: the norm's partial sums and the scaling of a norm clip over a table of
pointers (torch's multi-tensor apply), instead of one numba launch per array.

A numba launch costs tens of microseconds of host time, so a clip of 1000 separate gradients spent its time
launching (docs/benchmarks.md). Here the arrays of one dtype are cut into chunks of CHUNK elements; a table of
(array pointer, start, length) rows, built once per set of arrays and kept on the device, drives one CUDA kernel
(CuPy's RawKernel, compiled once by NVRTC) in which each block reduces, or scales, one chunk. The partials go
to the same buffer and the same fixed-order `_finish` as the numba path, so the result is deterministic.

Only for CuPy arrays (RawKernel is CuPy's), of float16, float32 or float64, C-contiguous, when there are at least
MIN_ARRAYS of them and the norm is the common unscaled p = 2 (cuda_backend decides); never under the simulator.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad.clip.cuda_kernels import SIMULATED, THREADS

MIN_ARRAYS = 8  # below this, one numba launch per array costs less than reading the table's key
CHUNK = 8 * THREADS * 4  # elements per block: each thread handles about 32
_TABLES: dict = {}  # key of a set of arrays -> its device tables, per dtype
_MAX_TABLES = 64

_SOURCE = r"""
#include <cuda_fp16.h>
__device__ __forceinline__ double load_f16(const __half* x, long long i) { return (double) __half2float(x[i]); }
__device__ __forceinline__ double load_f32(const float* x, long long i) { return (double) x[i]; }
__device__ __forceinline__ double load_f64(const double* x, long long i) { return x[i]; }

#define SUMSQ(NAME, T, LOAD)                                                                                  \
extern "C" __global__ void NAME(const unsigned long long* ptrs, const long long* rows, double* partials,     \
                                long long offset) {                                                          \
    __shared__ double shared[THREADS];                                                                       \
    const long long* row = rows + 3 * blockIdx.x;                                                            \
    const T* x = (const T*) ptrs[row[0]];                                                                    \
    double acc = 0.0;                                                                                        \
    for (long long i = row[1] + threadIdx.x; i < row[2]; i += THREADS) { double v = LOAD(x, i); acc += v * v; } \
    shared[threadIdx.x] = acc;                                                                               \
    __syncthreads();                                                                                         \
    for (int step = THREADS / 2; step > 0; step >>= 1) {                                                     \
        if (threadIdx.x < step) shared[threadIdx.x] += shared[threadIdx.x + step];                           \
        __syncthreads();                                                                                     \
    }                                                                                                        \
    if (threadIdx.x == 0) partials[offset + blockIdx.x] = shared[0];                                         \
}

SUMSQ(sumsq_f16, __half, load_f16)
SUMSQ(sumsq_f32, float, load_f32)
SUMSQ(sumsq_f64, double, load_f64)

extern "C" __global__ void scale_f16(const unsigned long long* ptrs, const long long* rows, const float* coef) {
    const long long* row = rows + 3 * blockIdx.x;
    __half* x = (__half*) ptrs[row[0]];
    const float c = coef[0];
    for (long long i = row[1] + threadIdx.x; i < row[2]; i += THREADS) x[i] = __float2half(__half2float(x[i]) * c);
}

extern "C" __global__ void scale_f32(const unsigned long long* ptrs, const long long* rows, const float* coef) {
    const long long* row = rows + 3 * blockIdx.x;
    float* x = (float*) ptrs[row[0]];
    const float c = coef[0];
    for (long long i = row[1] + threadIdx.x; i < row[2]; i += THREADS) x[i] = x[i] * c;
}

extern "C" __global__ void scale_f64(const unsigned long long* ptrs, const long long* rows, const double* coef) {
    const long long* row = rows + 3 * blockIdx.x;
    double* x = (double*) ptrs[row[0]];
    const double c = coef[0];
    for (long long i = row[1] + threadIdx.x; i < row[2]; i += THREADS) x[i] = x[i] * c;
}
"""
_module: Any = None
_SUFFIX = {np.dtype(np.float16): "f16", np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def applies(arrays: list) -> bool:
    """Whether the multi-array kernels take these arrays (see the module docstring)."""
    if SIMULATED or len(arrays) < MIN_ARRAYS:
        return False
    for a in arrays:
        if not type(a).__module__.startswith("cupy") or a.dtype not in _SUFFIX or not a.flags.c_contiguous:
            return False
    return True


def _kernels() -> Any:
    global _module
    if _module is None:
        import cupy

        _module = cupy.RawModule(code=_SOURCE.replace("THREADS", str(THREADS)), options=("-std=c++14",))
    return _module


def _tables(arrays: list) -> list:
    """[(dtype, pointer table, row table, rows)] per dtype of `arrays`, made once per set of arrays."""
    key = tuple((a.data.ptr, a.size, a.dtype.char) for a in arrays)
    tables = _TABLES.get(key)
    if tables is None:
        import cupy

        groups: dict = {}
        for a in arrays:
            groups.setdefault(a.dtype, []).append(a)
        tables = []
        for dtype, group in groups.items():
            ptrs = np.array([a.data.ptr for a in group], dtype=np.uint64)
            rows = [(k, lo, min(lo + CHUNK, a.size)) for k, a in enumerate(group) for lo in range(0, a.size, CHUNK)]
            tables.append((dtype, cupy.asarray(ptrs), cupy.asarray(np.array(rows, dtype=np.int64).reshape(-1, 3)),
                           len(rows)))
        if len(_TABLES) >= _MAX_TABLES:
            _TABLES.clear()
        _TABLES[key] = tables
    return tables


def sum_squares(arrays: list, scratch: Any) -> tuple[Any, int]:
    """Σ x² of every chunk of every array into the scratch partials; (the partials, how many)."""
    import cupy

    tables = _tables(arrays)
    count = sum(rows for *_, rows in tables)
    partials = scratch.partial_buffer(max(1, count))
    out = cupy.asarray(partials)
    offset = 0
    for dtype, ptrs, rows, n in tables:
        kernel = _kernels().get_function(f"sumsq_{_SUFFIX[dtype]}")
        kernel((n,), (THREADS,), (ptrs, rows, out, np.int64(offset)))
        offset += n
    return partials, count


def scale_(arrays: list, coef: Any) -> None:
    """x *= coef for every array, by dtype (float16 in float32, rounded once), one launch per dtype."""
    import cupy

    for dtype, ptrs, rows, n in _tables(arrays):
        kernel = _kernels().get_function(f"scale_{_SUFFIX[dtype]}")
        kernel((n,), (THREADS,), (ptrs, rows, cupy.asarray(coef.for_dtype(dtype))))


__all__ = ["applies", "sum_squares", "scale_", "MIN_ARRAYS", "CHUNK"]
