"""Numba CPU backend: @njit(parallel=True) kernels over each large array, one pass per operation.

Determinism: a reduction never uses a scalar `prange` accumulator (numba splits that range per thread, so
the rounding would depend on NUMBA_NUM_THREADS). Instead `prange` runs over fixed-size chunks (`pnorm.CHUNK`
elements), each reduced serially into `partials[c]`, and the partials are added in index order on one thread.

Speed: each chunk is handed to its own small @njit function as a contiguous slice. A loop written inside the
`prange` body does not vectorise; the same loop in a function of its own over a slice does, on AVX2 and
AVX-512 alike (docs/internals.md). The sums are
compiled with `fastmath={"reassoc"}` only, which lets LLVM keep SIMD partial sums while NaN/inf stay IEEE; the
order is fixed at compile time, so the bits do not depend on the thread count (tested with 1, 2 and 4).

Per-call overhead: launching a parallel region costs microseconds, and a Python list of arrays passed to
@njit is a slow "reflected list" (a tuple of many arrays compiles for seconds). So an array below SMALL
elements never goes to a parallel kernel: it gets the serial chunk kernel, called from Python once per array,
which costs less than a NumPy in-place ufunc, and far less than concatenating many small arrays for one
parallel sum (docs/internals.md). Scale and clamp do the same arithmetic in the same dtype as the
reference, so their bits equal its bits. Arrays that are not C-contiguous float32/float64 take the reference
path. `SMALL` and `pnorm.CHUNK` are read at call time, so tests can shrink them.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numba import njit, prange

from minigrad.clip import numpy_backend as ref
from minigrad.clip import pnorm
from minigrad.clip.pnorm import finish, special_scale, unscaled_ok

SMALL = 1 << 16
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# what a chunk sum adds up: x², |x|, |x|^p, or (|x|/scale)^p
_SQUARES, _ABS, _POW, _SCALED, _MAX = 0, 1, 2, 3, -1


@njit(cache=True, fastmath={"reassoc"}, error_model="numpy")
def _sum_squares(x):  # pragma: no cover - compiled
    s = 0.0
    for i in range(x.size):
        v = np.float64(x[i])
        s += v * v
    return s


@njit(cache=True, fastmath={"reassoc"}, error_model="numpy")
def _sum_abs(x):  # pragma: no cover - compiled
    s = 0.0
    for i in range(x.size):
        s += abs(np.float64(x[i]))
    return s


@njit(cache=True, fastmath={"reassoc"}, error_model="numpy")
def _sum_pow(x, p):  # pragma: no cover - compiled
    s = 0.0
    for i in range(x.size):
        s += abs(np.float64(x[i])) ** p
    return s


@njit(cache=True, fastmath={"reassoc"}, error_model="numpy")
def _sum_scaled(x, p, scale):  # pragma: no cover - compiled
    s = 0.0
    if p == 2.0:
        for i in range(x.size):
            v = abs(np.float64(x[i])) / scale
            s += v * v
    else:
        for i in range(x.size):
            s += (abs(np.float64(x[i])) / scale) ** p
    return s


@njit(cache=True, error_model="numpy")
def _chunk_max_abs(x):  # pragma: no cover - compiled
    """max |x| of a slice; NaN when the slice holds a NaN (a NaN compares false, so it is tracked apart)."""
    m = 0.0
    nan = False
    for i in range(x.size):
        v = abs(np.float64(x[i]))
        m = v if v > m else m
        nan |= v != v
    return np.nan if nan else m


@njit(cache=True, error_model="numpy")
def _scale_chunk(x, coef):  # pragma: no cover - compiled
    for i in range(x.size):
        x[i] = x[i] * coef


@njit(cache=True, error_model="numpy")
def _clamp_chunk(x, lo, hi):  # pragma: no cover - compiled
    for i in range(x.size):
        v = x[i]
        v = lo if v < lo else v
        x[i] = hi if v > hi else v


@njit(cache=True, error_model="numpy")
def _reduce(seg, p, scale, mode):  # pragma: no cover - compiled
    """One chunk's partial: Σx², Σ|x|, Σ|x|^p, Σ|x/scale|^p, or max |x| (NaN if any), by `mode`."""
    if mode == _SQUARES:
        return _sum_squares(seg)
    if mode == _ABS:
        return _sum_abs(seg)
    if mode == _POW:
        return _sum_pow(seg, p)
    if mode == _SCALED:
        return _sum_scaled(seg, p, scale)
    return _chunk_max_abs(seg)


@njit(cache=True, parallel=True, error_model="numpy")
def _power_sum(x, p, scale, mode, chunk):  # pragma: no cover - compiled
    n = x.size
    nchunks = (n + chunk - 1) // chunk
    partials = np.empty(nchunks)
    for c in prange(nchunks):
        partials[c] = _reduce(x[c * chunk:min((c + 1) * chunk, n)], p, scale, mode)
    total = 0.0
    for c in range(nchunks):  # in index order, on one thread: the same bits for any thread count
        total += partials[c]
    return total


@njit(cache=True, parallel=True, error_model="numpy")
def _max_abs(x, chunk):  # pragma: no cover - compiled
    n = x.size
    nchunks = (n + chunk - 1) // chunk
    partials = np.empty(nchunks)
    for c in prange(nchunks):
        partials[c] = _chunk_max_abs(x[c * chunk:min((c + 1) * chunk, n)])
    m = 0.0
    for c in range(nchunks):
        if partials[c] != partials[c]:
            return np.nan
        m = max(m, partials[c])
    return m


@njit(cache=True, parallel=True, error_model="numpy")
def _scale(x, coef, chunk):  # pragma: no cover - compiled
    n = x.size
    for c in prange((n + chunk - 1) // chunk):
        _scale_chunk(x[c * chunk:min((c + 1) * chunk, n)], coef)


@njit(cache=True, parallel=True, error_model="numpy")
def _clamp(x, lo, hi, chunk):  # pragma: no cover - compiled
    n = x.size
    for c in prange((n + chunk - 1) // chunk):
        _clamp_chunk(x[c * chunk:min((c + 1) * chunk, n)], lo, hi)


@njit(cache=True, parallel=True, error_model="numpy")
def _segment_partials(x, items, p, mode):  # pragma: no cover - compiled
    """One partial per work item (segment, lo, hi): its power sum or, mode _MAX, max |x|."""
    partials = np.empty(items.shape[0])
    for w in prange(items.shape[0]):
        partials[w] = _reduce(x[items[w, 1]:items[w, 2]], p, 1.0, mode)
    return partials


@njit(cache=True, parallel=True, error_model="numpy")
def _scale_items(x, items, factors):  # pragma: no cover - compiled
    for w in prange(items.shape[0]):
        f = factors[items[w, 0]]
        if f != 1:
            _scale_chunk(x[items[w, 1]:items[w, 2]], f)


def _items(offsets: np.ndarray) -> np.ndarray:
    """(segment, lo, hi) work items of at most CHUNK elements, never straddling two segments, in order."""
    rows = [(k, a, min(a + pnorm.CHUNK, int(hi))) for k, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:]))
            for a in range(int(lo), int(hi), pnorm.CHUNK)]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def segment_norms(x: np.ndarray, offsets: np.ndarray, p: float) -> np.ndarray:
    """Per-segment p-norms in one parallel pass; the partials of each segment are added in order (the same
    bits for any thread count), and a segment whose sum overflowed or underflowed is redone by the reference."""
    if not _kernel_ready(x) or x.size < SMALL:
        return ref.segment_norms(x, offsets, p)
    items = _items(offsets)
    mode = _MAX if p == math.inf else _SQUARES if p == 2.0 else _ABS if p == 1.0 else _POW
    partials = _segment_partials(x, items, p, mode)
    out = np.zeros(len(offsets) - 1)
    if p == math.inf:
        np.maximum.at(out, items[:, 0], np.where(np.isnan(partials), 0.0, partials))
        out[items[np.isnan(partials), 0]] = np.nan  # a NaN anywhere in a segment makes its max NaN
        return out
    sums = np.bincount(items[:, 0], weights=partials, minlength=out.size)  # adds in item order
    with np.errstate(over="ignore", under="ignore"):
        out[:] = sums ** (1.0 / p)
    sizes = np.diff(offsets)
    redo = (sizes > 0) & ~unscaled_ok(sums) & ~np.isnan(sums)
    for k in np.flatnonzero(redo):
        out[k] = float(ref.total_norm([x[offsets[k]:offsets[k + 1]]], p))
    return out


def scale_segments_(x: np.ndarray, offsets: np.ndarray, factors: np.ndarray) -> None:
    if not _kernel_ready(x) or x.size < SMALL:
        ref.scale_segments_(x, offsets, factors)
        return
    _scale_items(x, _items(offsets), np.asarray(factors, dtype=np.float64).astype(x.dtype))


def agc_(g: np.ndarray, w: np.ndarray, offsets: np.ndarray, clip_factor: float, eps: float, p: float) -> None:
    factors = ref.unit_clip_factors(segment_norms(w, offsets, p), segment_norms(g, offsets, p), clip_factor, eps)
    scale_segments_(g, offsets, factors)


def _kernel_ready(a: np.ndarray) -> bool:
    return a.dtype in _KERNEL_DTYPES and a.flags.c_contiguous


def _partial(a: np.ndarray, p: float, scale: float, mode: int) -> float:
    """One array's power sum (or, mode _MAX, its max |x|, NaN if any): chunked in parallel when it is large, one
    serial kernel call when it is small (a parallel launch costs microseconds; no copy, unlike concatenating the
    small arrays, which costs more than their sums), the reference when no kernel takes its dtype or layout."""
    if not _kernel_ready(a):
        return ref.max_abs([a]) if mode == _MAX else ref.power_sum(a, p, scale)
    x = a if a.ndim == 1 else a.reshape(-1)
    if a.size < SMALL:
        return _reduce(x, p, scale, mode)
    return _max_abs(x, pnorm.CHUNK) if mode == _MAX else _power_sum(x, p, scale, mode, pnorm.CHUNK)


def _max_abs_all(arrays: Sequence[np.ndarray]) -> float:
    """max |x| over all arrays, NaN if any is NaN; 0.0 without elements."""
    m = 0.0
    for a in arrays:
        if a.size:
            v = _partial(a, 0.0, 1.0, _MAX)
            if v != v:
                return math.nan
            m = max(m, v)
    return m


def total_norm(arrays: Sequence[np.ndarray], p: float) -> np.ndarray:
    if p == math.inf:
        return np.asarray(_max_abs_all(arrays))
    special = ref.special_order(arrays, p)  # no elements, -inf and 0: the reference (rare, never hot)
    if special is not None:
        return np.asarray(special)
    if p > 0:
        s = _sum(arrays, p, 1.0, _SQUARES if p == 2.0 else _ABS if p == 1.0 else _POW)
        if s != s or unscaled_ok(s):  # one pass: the usual case
            return np.asarray(finish(s, p))
    scale = _max_abs_all(arrays) if p > 0 else ref.min_abs(arrays)
    if special_scale(scale):
        return np.asarray(scale)
    return np.asarray(finish(_sum(arrays, p, scale, _SCALED), p, scale))


def _sum(arrays: Sequence[np.ndarray], p: float, scale: float, mode: int) -> float:
    """Σ of the arrays' power sums, added in order (each array's own sum is thread-independent)."""
    total = 0.0
    for a in arrays:
        if a.size:
            total += _partial(a, p, scale, mode)
    return total


def _elementwise(arrays: Sequence[np.ndarray], values: tuple, parallel_kernel, serial_kernel, reference) -> None:
    """An in-place elementwise op with scalar `values` (rounded to each array's dtype): the parallel chunked
    kernel on a large array, the serial kernel on a small one, the reference on what no kernel takes. One pass
    with one dtype lookup per array: the per-array Python work is most of the cost for many small arrays."""
    typed = {}  # the values in each kernel dtype met, converted once
    other = []
    for a in arrays:
        d = a.dtype
        args = typed.get(d)
        if args is None and d in _KERNEL_DTYPES:
            args = typed[d] = tuple(map(d.type, values))
        if args is None or not a.flags.c_contiguous:
            other.append(a)
        elif a.size >= SMALL:
            parallel_kernel(a.reshape(-1), *args, pnorm.CHUNK)
        else:
            serial_kernel(a if a.ndim == 1 else a.reshape(-1), *args)
    reference(other, *values)


def scale_(arrays: Sequence[np.ndarray], coef: float) -> None:
    _elementwise(arrays, (coef,), _scale, _scale_chunk, ref.scale_)


def clamp_(arrays: Sequence[np.ndarray], lo: float, hi: float) -> None:
    _elementwise(arrays, (lo, hi), _clamp, _clamp_chunk, ref.clamp_)


def warm_up() -> float:
    """Compile (or load from cache) every kernel for float32 and float64; returns the seconds it took."""
    import time

    start = time.perf_counter()
    for dtype in _KERNEL_DTYPES:
        x = np.ones(SMALL, dtype)
        for p in (2.0, math.inf):  # the power-sum kernel (its mode is a run-time argument) and the max kernel
            total_norm([x], p)
        scale_([x], 0.5)
        clamp_([x], -1.0, 1.0)
    return time.perf_counter() - start


__all__ = ["total_norm", "scale_", "clamp_", "segment_norms", "scale_segments_", "agc_", "warm_up"]
