"""numba.cuda backend: works in place on any CUDA array (numba device arrays, CuPy, torch.cuda), zero copy.

Imported only when a CUDA array is seen, so `import minigrad` never loads numba.cuda.

A norm is three kinds of launch, none of which waits for the host:
1. per array, `_block_reduce`: each thread accumulates a grid-stride slice in float64 (a power sum, a max or
   min of |x|, or a count of non-zeros), a shared-memory tree combines the block, and thread 0 writes one
   partial per block into a buffer (no atomics, so the result is deterministic for a given size);
2. `_combine`: one thread merges the partials in index order and finishes the norm (scaled norms take a
   max pass first, or a min pass for p < 0: see pnorm.py);
3. `_coefficients`: one thread turns the norm into min(max_norm / (norm + 1e-6), 1), stored once per dtype so
   that `_scale` multiplies in the array's own dtype, as the CPU backends do.
The host only reads the norm when the caller asks for its value or passes `error_if_nonfinite=True`.
Under NUMBA_ENABLE_CUDASIM=1 the same kernels run as Python threads, with small blocks.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numba import config, cuda, float64

from minigrad.clip.pnorm import needs_scaling, scaled_root

SIMULATED = bool(config.ENABLE_CUDASIM)
THREADS = 8 if SIMULATED else 256  # per block, a power of two; the simulator pays dearly for each syncthreads
MAX_BLOCKS = 2 if SIMULATED else 1024  # per array; each block's threads stride over the rest
_SUM, _MAX, _MIN, _COUNT = 0, 1, 2, 3


@cuda.jit(device=True)
def _merge(kind, a, b):  # pragma: no cover - compiled
    """Two partial results into one: a sum (or count), or a max / min in which NaN wins."""
    if kind == _SUM or kind == _COUNT:
        return a + b
    if kind == _MAX:
        return b if (b > a or b != b) else a
    return b if (b < a or b != b) else a


_scaled_root = cuda.jit(device=True)(scaled_root)  # scale · s^(1/p), inf only where that overflows


@cuda.jit(device=True)
def _block_total(shared, tid, kind, acc):  # pragma: no cover - compiled
    """Every thread's `acc` merged by a shared-memory tree; the block's total (read it in thread 0)."""
    shared[tid] = acc
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if tid < step:
            shared[tid] = _merge(kind, shared[tid], shared[tid + step])
        cuda.syncthreads()  # outside the branch: every thread of the block must reach it
        step //= 2
    return shared[0]


@cuda.jit(device=True)
def _finish_sum(acc, p, scale, scaled):  # pragma: no cover - compiled
    """scale · acc^(1/p) for a power sum; a special scale (0: all zeros or a zero for p < 0, inf, NaN) alone
    decides the norm."""
    if scaled and not (0.0 < scale < math.inf):
        return scale
    if p == 1.0:
        return scale * acc
    if p == 2.0:
        return scale * math.sqrt(acc)
    if acc != 0.0:
        return _scaled_root(acc, p, scale)
    return acc


@cuda.jit(device=True)
def _add(kind, p, scaled, scale, acc, x):  # pragma: no cover - compiled
    """acc with one element x merged in: |x| for a max / min, 1 for a non-zero (count), (|x|/scale)^p."""
    v = abs(float64(x))
    if kind == _MAX or kind == _MIN:
        return _merge(kind, acc, v)
    if kind == _COUNT:
        return acc + (0.0 if x == 0 else 1.0)
    if p < 0.0:  # scaled by the min: (|x|/m)^p = (m/|x|)^-p, which cannot overflow (|x| = inf gives 0)
        return acc + (scale / v) ** -p
    if scaled:
        v = v / scale
    return acc + (v * v if p == 2.0 else (v if p == 1.0 else v ** p))


@cuda.jit
def _block_reduce(x, kind, p, scale_buf, scaled, partials, offset):  # pragma: no cover - compiled
    """One partial per block: Σ (|x|/scale)^p (kind _SUM), max / min |x| or a count, accumulated in float64.

    Each thread takes x[i], x[i+g], x[i+2g], ... (g: the grid's size) in that order; the loop body loads four
    of them before adding any, so that four loads per thread are in flight (the order of the additions, and so
    the bits, are those of the plain one-at-a-time loop; docs/benchmarks.md has the timings)."""
    shared = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    scale = scale_buf[0] if scaled else 1.0
    skip = scaled and not (0.0 < scale < math.inf)  # the scale alone decides the norm: no NaN from 0/0
    acc = math.inf if kind == _MIN else 0.0
    i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
    if not skip:
        while i + 3 * g < n:
            a, b, c, d = x[i], x[i + g], x[i + 2 * g], x[i + 3 * g]
            acc = _add(kind, p, scaled, scale, acc, a)
            acc = _add(kind, p, scaled, scale, acc, b)
            acc = _add(kind, p, scaled, scale, acc, c)
            acc = _add(kind, p, scaled, scale, acc, d)
            i += 4 * g
        while i < n:
            acc = _add(kind, p, scaled, scale, acc, x[i])
            i += g
    total = _block_total(shared, tid, kind, acc)
    if tid == 0:
        partials[offset + cuda.blockIdx.x] = total


@cuda.jit
def _combine(partials, count, kind, p, scale_buf, scaled, out):  # pragma: no cover - compiled
    if cuda.grid(1) != 0:
        return
    acc = math.inf if kind == _MIN else 0.0
    for j in range(count):
        acc = _merge(kind, acc, partials[j])
    if kind == _SUM:
        acc = _finish_sum(acc, p, scale_buf[0] if scaled else 1.0, scaled)
    out[0] = acc


@cuda.jit
def _coefficients(norm, max_norm, coef32, coef64):  # pragma: no cover - compiled
    if cuda.grid(1) == 0:
        c = max_norm / (norm[0] + 1e-6)
        if not (c != c or c < 1.0):
            c = 1.0
        coef32[0] = c
        coef64[0] = c


@cuda.jit(device=True)
def _clamped(v, lo, hi):  # pragma: no cover - compiled
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return v


@cuda.jit
def _scale(x, coef):  # pragma: no cover - compiled
    """x *= coef[0], four loads per thread in flight before the stores (as in _block_reduce)."""
    c = coef[0]
    i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
    while i + 3 * g < n:
        a, b, d, e = x[i], x[i + g], x[i + 2 * g], x[i + 3 * g]
        x[i], x[i + g], x[i + 2 * g], x[i + 3 * g] = a * c, b * c, d * c, e * c
        i += 4 * g
    while i < n:
        x[i] = x[i] * c
        i += g


@cuda.jit
def _clamp(x, lo, hi):  # pragma: no cover - compiled
    """x = min(max(x, lo), hi) (NaN stays NaN), four loads per thread in flight before the stores."""
    i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
    while i + 3 * g < n:
        a, b, c, d = x[i], x[i + g], x[i + 2 * g], x[i + 3 * g]
        x[i], x[i + g] = _clamped(a, lo, hi), _clamped(b, lo, hi)
        x[i + 2 * g], x[i + 3 * g] = _clamped(c, lo, hi), _clamped(d, lo, hi)
        i += 4 * g
    while i < n:
        x[i] = _clamped(x[i], lo, hi)
        i += g


@cuda.jit
def _segment_block(x, items, kind, p, scales, scaled, partials):  # pragma: no cover - compiled
    """One block per work item (segment, lo, hi): Σ (|x|/scale_segment)^p or max |x| over its range."""
    shared = cuda.shared.array(THREADS, float64)
    w, tid = cuda.blockIdx.x, cuda.threadIdx.x
    seg, lo, hi = items[w, 0], items[w, 1], items[w, 2]
    scale = scales[seg] if scaled else 1.0
    skip = scaled and not (0.0 < scale < math.inf)
    acc = 0.0
    i = lo + tid
    while i < hi and not skip:
        v = abs(float64(x[i]))
        if kind == _MAX:
            acc = _merge(kind, acc, v)
        else:
            if scaled:
                v = v / scale
            acc += v * v if p == 2.0 else (v if p == 1.0 else v ** p)
        i += THREADS
    total = _block_total(shared, tid, kind, acc)
    if tid == 0:
        partials[w] = total


@cuda.jit
def _segment_combine(partials, item_start, kind, p, scales, scaled, out):  # pragma: no cover - compiled
    """One thread per segment: its items' partials in order, finished into the segment's norm."""
    k = cuda.grid(1)
    if k >= out.size:
        return
    acc = 0.0
    for j in range(item_start[k], item_start[k + 1]):
        acc = _merge(kind, acc, partials[j])
    if kind == _SUM:
        acc = _finish_sum(acc, p, scales[k] if scaled else 1.0, scaled)
    out[k] = acc


@cuda.jit
def _unit_factors(weight_norms, grad_norms, clip_factor, eps, factors):  # pragma: no cover - compiled
    """AGC: limit = max(‖W‖, eps)·clip_factor; limit / max(‖G‖, 1e-6) where ‖G‖ >= limit, else 1."""
    k = cuda.grid(1)
    if k < factors.size:
        limit = max(weight_norms[k], eps) * clip_factor
        factors[k] = limit / max(grad_norms[k], 1e-6) if grad_norms[k] >= limit else 1.0


@cuda.jit
def _scale_items(x, items, factors):  # pragma: no cover - compiled
    """One block per work item: x[lo:hi] *= factors[segment] (factors in x's dtype; 1 leaves it untouched)."""
    w = cuda.blockIdx.x
    f = factors[items[w, 0]]
    if f != 1:
        i = items[w, 1] + cuda.threadIdx.x
        while i < items[w, 2]:
            x[i] = x[i] * f
            i += THREADS


def is_cuda_array(a: Any) -> bool:
    """A CUDA array by the interface, or one of the simulator's arrays (they have no interface)."""
    return hasattr(a, "__cuda_array_interface__") or _is_numba(a)


_ORDERED_STREAMS = (None, 1)  # the interface's "stream": none given, or the legacy default stream
_VIEWS: dict = {}  # (pointer, shape, strides, typestr) of an exported CUDA array -> its flat numba view
_MAX_VIEWS = 4096


def _is_numba(a: Any) -> bool:
    """numba's own device array (or the simulator's): used as it is."""
    return bool(getattr(a, "__cuda_ndarray__", False)) or (SIMULATED and type(a).__name__ == "FakeCUDAArray")


def _is_cupy(a: Any) -> bool:
    return type(a).__module__.startswith("cupy")


def _interface(a: Any) -> dict:
    """a.__cuda_array_interface__, once the array's stream has been waited for where CUDA does not order it.

    Our kernels go to numba's default stream. Work queued on the legacy default stream (stream 1 in the
    interface: CuPy's and torch's default) or with no stream named is ordered before them by CUDA itself, so
    no wait is needed; an array exported on another stream (a torch or CuPy side stream, maybe non-blocking) is
    waited for, as the interface asks. `cuda.as_cuda_array` would synchronise the host for every array, which
    costs more than the kernels of a large clip (docs/internals.md)."""
    iface = a.__cuda_array_interface__
    stream = iface.get("stream")
    if stream not in _ORDERED_STREAMS:
        cuda.external_stream(stream).synchronize()
    return iface


def _flat(a: Any) -> Any:
    """A 1-d numba view of a contiguous CUDA array, sharing its memory.

    Views of exported arrays (CuPy, torch) are cached by (pointer, shape, strides, dtype) and hold no reference
    to their owner: making one costs tens of microseconds of host time, paid two or three times per array and
    call otherwise. A view is only used during a call that holds its array; memory freed and handed to another array
    of the same layout is viewed correctly by the same view, so a cached view is never stale."""
    if _is_numba(a):
        return a.reshape(a.size)
    iface = _interface(a)
    key = (iface["data"][0], tuple(iface["shape"]), iface.get("strides"), iface["typestr"])
    view = _VIEWS.get(key)
    if view is None:
        if len(_VIEWS) >= _MAX_VIEWS:
            _VIEWS.clear()
        d = cuda.from_cuda_array_interface(iface, owner=None, sync=False)
        view = _VIEWS[key] = d.reshape(d.size)
    return view


def _c_contiguous(shape: tuple, strides: tuple | None, itemsize: int) -> bool:
    """C order: no strides given, or strides that step like C's over every axis longer than 1."""
    if strides is None or 0 in shape:
        return True
    step = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n > 1 and s != step:
            return False
        step *= n
    return True


def check_layout(a: Any, index: int) -> None:
    """The kernels read a flat view: a CUDA array must be C-contiguous (checked before any launch)."""
    if _is_numba(a):
        shape, strides, ok = a.shape, a.strides, a.size == 0 or a.is_c_contiguous()
    else:
        iface = a.__cuda_array_interface__
        shape, strides = tuple(iface["shape"]), iface.get("strides")
        ok = _c_contiguous(shape, strides, np.dtype(iface["typestr"]).itemsize)
    if not ok:
        raise ValueError(f"arrays[{index}] is a CUDA array that is not C-contiguous (shape {shape}, strides "
                         f"{strides}); nothing was modified")


def _blocks(n: int) -> int:
    return max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS))


class _Scratch:
    """Device buffers reused across calls (allocation would otherwise dominate small clips)."""

    def __init__(self) -> None:
        self.partials = cuda.device_array(0, np.float64)
        self.max_buf = cuda.device_array(1, np.float64)
        self.coef = {np.dtype(np.float32): cuda.device_array(1, np.float32),
                     np.dtype(np.float64): cuda.device_array(1, np.float64)}

    def partial_buffer(self, n: int) -> Any:
        if self.partials.size < n:
            self.partials = cuda.device_array(max(n, 2 * self.partials.size), np.float64)
        return self.partials


_scratch: _Scratch | None = None


def _buffers() -> _Scratch:
    global _scratch
    if _scratch is None:
        _scratch = _Scratch()
    return _scratch


def _reduce(flats: list, kind: int, p: float, scaled: bool, out: Any) -> None:
    """Launch the per-array partial kernels, then the combine kernel writing the result into out[0]."""
    scratch = _buffers()
    blocks = [_blocks(f.size) for f in flats]
    partials = scratch.partial_buffer(max(1, sum(blocks)))
    offset = 0
    for f, nb in zip(flats, blocks):
        _block_reduce[nb, THREADS](f, kind, p, scratch.max_buf, scaled, partials, offset)
        offset += nb
    _combine[1, 1](partials, offset, kind, p, scratch.max_buf, scaled, out)


def _wrap_like(first: Any, d: Any) -> Any:
    """Return CuPy for CuPy inputs (zero copy), otherwise the numba device array."""
    if _is_cupy(first):
        import cupy

        return cupy.asarray(d)
    return d


def _output(first: Any) -> tuple[Any, Any]:
    """A float64 device scalar for a norm, as (numba view, what the caller gets): CuPy's memory pool for CuPy
    input (numba's `device_array` costs several times more host time), else a numba array."""
    if _is_cupy(first):
        import cupy

        c = cupy.empty(1, cupy.float64)
        return _flat(c), c
    d = cuda.device_array(1, np.float64)
    return d, d


def total_norm(arrays: Sequence[Any], p: float) -> Any:
    """The p-norm of all elements as a 0-d device array (no host synchronisation)."""
    flats = [f for f in (_flat(a) for a in arrays) if f.size]
    out, result = _output(arrays[0] if arrays else None)
    if not flats:
        out.copy_to_device(np.zeros(1))
    elif p == math.inf or p == -math.inf:
        _reduce(flats, _MAX if p > 0 else _MIN, p, False, out)
    elif p == 0.0:
        _reduce(flats, _COUNT, p, False, out)
    else:
        scaled = needs_scaling([f.dtype for f in flats], p)
        if scaled:
            _reduce(flats, _MAX if p > 0 else _MIN, p, False, _buffers().max_buf)
        _reduce(flats, _SUM, p, scaled, out)
    return result.reshape(())


class DeviceCoefficient:
    """A norm clip's coefficient on the device, once per dtype it is applied in (float32, float64)."""

    def __init__(self, by_dtype: dict) -> None:
        self.by_dtype = by_dtype


def coefficient(norm: Any, max_norm: float) -> DeviceCoefficient:
    """min(max_norm / (norm + 1e-6), 1) on the device, per dtype; `norm` stays on the device."""
    scratch = _buffers()
    _coefficients[1, 1](_flat(norm), float(max_norm), scratch.coef[np.dtype(np.float32)],
                        scratch.coef[np.dtype(np.float64)])
    return DeviceCoefficient(scratch.coef)


def scale_(arrays: Sequence[Any], coef: Any) -> None:
    """x *= coef; `coef` is a float or the DeviceCoefficient of `coefficient`."""
    if not isinstance(coef, DeviceCoefficient):
        coef = DeviceCoefficient({dt: cuda.to_device(np.array([coef], dtype=dt)) for dt in _buffers().coef})
    for a in arrays:
        f = _flat(a)
        if f.size:
            _scale[_blocks(f.size), THREADS](f, coef.by_dtype[np.dtype(f.dtype)])


def clamp_(arrays: Sequence[Any], lo: float, hi: float) -> None:
    for a in arrays:
        f = _flat(a)
        if f.size:
            dt = np.dtype(f.dtype).type
            _clamp[_blocks(f.size), THREADS](f, dt(lo), dt(hi))


def to_host(x: Any) -> np.ndarray:
    """The value of a device scalar or array on the host (this synchronises)."""
    if _is_cupy(x):
        return x.get()
    return x.copy_to_host()


# ----- segments -------------------------------------------------------------------------------------------------
SEGMENT_ITEM = 8 * THREADS  # elements per block of the segment kernels


def _items(offsets: np.ndarray) -> tuple[Any, Any, int]:
    """(items on the device, where each segment's items start, how many items): (segment, lo, hi) rows."""
    rows, starts = [], [0]
    for k, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:])):
        rows += [(k, a, min(a + SEGMENT_ITEM, int(hi))) for a in range(int(lo), int(hi), SEGMENT_ITEM)]
        starts.append(len(rows))
    items = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return cuda.to_device(items if len(rows) else np.zeros((1, 3), np.int64)), cuda.to_device(
        np.array(starts, dtype=np.int64)), len(rows)


def segment_norms(x: Any, offsets: np.ndarray, p: float) -> Any:
    """Per-segment p-norms (p > 0 or inf) as a device float64 array: a max pass, then the scaled power sums."""
    flat = _flat(x)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_seg = len(offsets) - 1
    items, starts, n_items = _items(offsets)
    partials = cuda.device_array(max(1, n_items), np.float64)
    maxima = cuda.device_array(max(1, n_seg), np.float64)
    out = cuda.device_array(max(1, n_seg), np.float64)
    seg_blocks = max(1, (n_seg + THREADS - 1) // THREADS)
    if n_items:
        _segment_block[n_items, THREADS](flat, items, _MAX, p, maxima, False, partials)
    _segment_combine[seg_blocks, THREADS](partials, starts, _MAX, p, maxima, False, maxima)
    if p != math.inf:
        if n_items:
            _segment_block[n_items, THREADS](flat, items, _SUM, p, maxima, True, partials)
        _segment_combine[seg_blocks, THREADS](partials, starts, _SUM, p, maxima, True, out)
    else:
        out = maxima
    return _wrap_like(x, out[:n_seg])


def _typed_factors(factors: Any, dtype: Any) -> Any:
    if isinstance(factors, np.ndarray):
        return cuda.to_device(factors.astype(dtype))
    return factors


def scale_segments_(x: Any, offsets: np.ndarray, factors: Any) -> None:
    flat = _flat(x)
    items, _, n_items = _items(np.asarray(offsets, dtype=np.int64))
    if n_items:
        _scale_items[n_items, THREADS](flat, items, _typed_factors(factors, flat.dtype))


def agc_(g: Any, w: Any, offsets: np.ndarray, clip_factor: float, eps: float, p: float) -> None:
    """Unit norms of W and G, the factors and the scaling, all on the device (no host round trip)."""
    wn, gn = segment_norms(w, offsets, p), segment_norms(g, offsets, p)  # held here: _flat's views do not own them
    n_seg = len(offsets) - 1
    if n_seg == 0:
        return
    factors = cuda.device_array(n_seg, _flat(g).dtype)
    blocks = max(1, (n_seg + THREADS - 1) // THREADS)
    _unit_factors[blocks, THREADS](_flat(wn), _flat(gn), float(clip_factor), float(eps), factors)
    scale_segments_(g, offsets, factors)
