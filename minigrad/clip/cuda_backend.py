"""numba.cuda backend: works in place on any CUDA array (numba device arrays, CuPy, torch.cuda), zero copy.

Imported only when a CUDA array is seen, so `import minigrad` never loads numba.cuda. The kernels are in
cuda_kernels.py; here are the views, the launches and the device buffers.

A norm clip is two or three kinds of launch, none of which waits for the host:
1. per array, a block reduction: each thread accumulates a grid-stride slice in float64 (`_block_sumsq` for the
   common p = 2 case, `_block_reduce` for the others: a power sum, a max or min of |x|, or a count), a
   shared-memory tree combines the block, and thread 0 writes one partial per block (no atomics). The grid is
   sized to the device (a few blocks per multiprocessor). Many CuPy arrays take one launch for all of them
   instead (cuda_multi.py);
2. `_finish`: one block merges the partials in a fixed order and finishes the norm (scaled norms take a max pass
   first, or a min pass for p < 0: see pnorm.py) and, for a clip, the coefficient min(max_norm / (norm + 1e-6), 1),
   stored once per dtype that `_scale` multiplies in;
3. per array, `_scale`.
The host only reads the norm when the caller asks for its value or passes `error_if_nonfinite=True`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numba import cuda

from minigrad.clip import cuda_multi
from minigrad.clip.bfloat16 import is_bfloat16
from minigrad.clip.cuda_kernels import (
    _COUNT,
    _MAX,
    _MIN,
    _SUM,
    SIMULATED,
    THREADS,
    _block_reduce,
    _block_reduce_bf16,
    _block_sumsq,
    _block_sumsq_bf16,
    _clamp,
    _clamp_bf16,
    _finish,
    _scale,
    _scale_bf16,
    _scale_items,
    _scale_items_bf16,
    _segment_block,
    _segment_block_bf16,
    _segment_combine,
    _unit_factors,
)
from minigrad.clip.pnorm import needs_scaling, product_dtype

_F16, _F32, _F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
_BITS = np.dtype(np.uint16)  # how the kernels see a bfloat16 array (bfloat16.py)


def is_device_dtype(dtype: Any) -> bool:
    """The dtypes the kernels take: float16, float32, float64 and bfloat16."""
    return dtype in (_F16, _F32, _F64) or is_bfloat16(dtype)


def device_dtype(a: Any) -> np.dtype:
    """A CUDA array's NumPy dtype: its own for numba and CuPy arrays, else the interface's (torch's dtypes are
    not NumPy's)."""
    dtype = getattr(a, "dtype", None)
    return dtype if isinstance(dtype, np.dtype) else np.dtype(a.__cuda_array_interface__["typestr"])


def _kernel(flat: Any, plain: Any, bf16: Any) -> Any:
    """The kernel for a flat view: its bfloat16 twin for a bfloat16 array's bits."""
    return bf16 if flat.dtype == _BITS else plain


def _factor_dtype(dtype: Any) -> np.dtype:
    """The dtype an array, or its flat view (a bfloat16 array's bits), is multiplied in (`pnorm.product_dtype`)."""
    dtype = np.dtype(dtype)
    return _F32 if dtype == _BITS else product_dtype(dtype)


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
    """A 1-d numba view of a contiguous CUDA array, sharing its memory (of a bfloat16 array: its bits, uint16).

    Views of exported arrays (CuPy, torch) are cached by (pointer, shape, strides, dtype) and hold no reference
    to their owner: making one costs tens of microseconds of host time, paid two or three times per array and
    call otherwise. A view is only used during a call that holds its array; memory freed and handed to another array
    of the same layout is viewed correctly by the same view, so a cached view is never stale."""
    if _is_numba(a):
        f = a.reshape(a.size)
        return f.view(_BITS) if is_bfloat16(f.dtype) else f
    if _is_cupy(a) and is_bfloat16(a.dtype):
        a = a.view(_BITS)
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


def _max_blocks() -> int:
    """Blocks per array: enough to keep every multiprocessor busy (8 of 256 threads each), no more."""
    if SIMULATED:
        return 2
    return 8 * cuda.get_current_device().MULTIPROCESSOR_COUNT


def _blocks(n: int) -> int:
    return max(1, min(_buffers().max_blocks, (n + THREADS - 1) // THREADS))


class _Scratch:
    """Device buffers reused across calls (allocation would otherwise dominate small clips)."""

    def __init__(self) -> None:
        self.max_blocks = _max_blocks()
        self.partials = cuda.device_array(0, np.float64)
        self.max_buf = cuda.device_array(1, np.float64)
        self.coef = {_F32: cuda.device_array(1, np.float32), _F64: cuda.device_array(1, np.float64)}

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


def _reduce(arrays: list, flats: list, kind: int, p: float, scaled: bool, out: Any, max_norm: float = -1.0) -> None:
    """The partials of every array, then `_finish` writing the result into out[0] (and, with max_norm >= 0,
    the clip coefficients)."""
    scratch = _buffers()
    if not flats:  # the arrays take the one-launch path (see total_norm)
        partials, count = cuda_multi.sum_squares(arrays, scratch)
    else:
        blocks = [_blocks(f.size) for f in flats]
        partials = scratch.partial_buffer(max(1, sum(blocks)))
        count = 0
        for f, nb in zip(flats, blocks):
            if kind == _SUM and p == 2.0 and not scaled:
                _kernel(f, _block_sumsq, _block_sumsq_bf16)[nb, THREADS](f, partials, count)
            else:
                _kernel(f, _block_reduce, _block_reduce_bf16)[nb, THREADS](f, kind, p, scratch.max_buf, scaled,
                                                                           partials, count)
            count += nb
    _finish[1, THREADS](partials, count, kind, p, scratch.max_buf, scaled, out, max_norm, scratch.coef[_F32],
                        scratch.coef[_F64])


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


def total_norm(arrays: Sequence[Any], p: float, max_norm: float = -1.0) -> Any:
    """The p-norm of all elements as a 0-d device array (no host synchronisation); with max_norm >= 0 the same
    launch leaves the clip coefficient in the scratch buffers (see `norm_and_coefficient`)."""
    arrays = [a for a in arrays if _size(a)]
    # many CuPy arrays: one launch over a pointer table, without a numba view of each (cuda_multi.py)
    multi = p == 2.0 and cuda_multi.applies(arrays) and not needs_scaling([a.dtype for a in arrays], p)
    flats = [] if multi else [_flat(a) for a in arrays]
    out, result = _output(arrays[0] if arrays else None)
    if multi:
        _reduce(arrays, flats, _SUM, p, False, out, max_norm)
        return result.reshape(())
    if not flats:
        out.copy_to_device(np.zeros(1))
    elif p == math.inf or p == -math.inf:
        _reduce(arrays, flats, _MAX if p > 0 else _MIN, p, False, out, max_norm)
    elif p == 0.0:
        _reduce(arrays, flats, _COUNT, p, False, out, max_norm)
    else:
        scaled = needs_scaling([f.dtype for f in flats], p)
        if scaled:
            _reduce(arrays, flats, _MAX if p > 0 else _MIN, p, False, _buffers().max_buf)
        _reduce(arrays, flats, _SUM, p, scaled, out, max_norm)
    return result.reshape(())


def _size(a: Any) -> int:
    """The number of elements of a CUDA array (torch's tensors have a size() method, not an attribute)."""
    size = getattr(a, "size", None)
    return size if isinstance(size, (int, np.integer)) else math.prod(a.__cuda_array_interface__["shape"])


class DeviceCoefficient:
    """A norm clip's coefficient on the device, once per dtype it is applied in (float32 serves float16 and
    bfloat16 too)."""

    def __init__(self, by_dtype: dict) -> None:
        self.by_dtype = by_dtype

    def for_dtype(self, dtype: Any) -> Any:
        """The coefficient an array of `dtype` (or its flat view) is multiplied by."""
        return self.by_dtype[_factor_dtype(dtype)]

    def copy(self) -> "DeviceCoefficient":
        """A copy in buffers of its own: the next clip overwrites the scratch buffers this one may live in."""
        return DeviceCoefficient({dt: cuda.to_device(buf.copy_to_host()) if SIMULATED else _copy_device(buf)
                                  for dt, buf in self.by_dtype.items()})


def _copy_device(buf: Any) -> Any:
    out = cuda.device_array_like(buf)
    out.copy_to_device(buf)
    return out


def norm_and_coefficient(arrays: Sequence[Any], p: float, max_norm: float) -> tuple[Any, DeviceCoefficient]:
    """The norm and min(max_norm / (norm + 1e-6), 1), both on the device, computed by the same launches."""
    norm = total_norm(arrays, p, float(max_norm))
    if not any(_size(a) for a in arrays):  # nothing was launched: the coefficient of a norm of 0
        return norm, DeviceCoefficient({dt: cuda.to_device(np.array([1.0], dt)) for dt in (_F32, _F64)})
    return norm, DeviceCoefficient(_buffers().coef)


def scale_(arrays: Sequence[Any], coef: Any) -> None:
    """x *= coef; `coef` is a float or a DeviceCoefficient."""
    if not isinstance(coef, DeviceCoefficient):
        coef = DeviceCoefficient({dt: cuda.to_device(np.array([coef], dtype=dt)) for dt in (_F32, _F64)})
    arrays = [a for a in arrays if _size(a)]
    if cuda_multi.applies(arrays):
        cuda_multi.scale_(arrays, coef)
        return
    for a in arrays:
        f = _flat(a)
        _kernel(f, _scale, _scale_bf16)[_blocks(f.size), THREADS](f, coef.for_dtype(f.dtype))


def clamp_(arrays: Sequence[Any], lo: float, hi: float) -> None:
    """x = min(max(x, lo), hi), the bounds rounded to each array's dtype (bfloat16 ones passed as float64)."""
    for a in arrays:
        f = _flat(a)
        if f.size:
            dt = device_dtype(a).type
            if f.dtype == _BITS:
                _clamp_bf16[_blocks(f.size), THREADS](f, float(dt(lo)), float(dt(hi)))
            else:
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
    block = _kernel(flat, _segment_block, _segment_block_bf16)[max(1, n_items), THREADS]
    if n_items:
        block(flat, items, _MAX, p, maxima, False, partials)
    _segment_combine[seg_blocks, THREADS](partials, starts, _MAX, p, maxima, False, maxima)
    if p != math.inf:
        if n_items:
            block(flat, items, _SUM, p, maxima, True, partials)
        _segment_combine[seg_blocks, THREADS](partials, starts, _SUM, p, maxima, True, out)
    else:
        out = maxima
    return _wrap_like(x, out[:n_seg])


def scale_segments_(x: Any, offsets: np.ndarray, factors: Any) -> None:
    """x[segment k] *= factors[k]: host factors (float64) are rounded to the dtype x is multiplied in (float32 for
    float16 and bfloat16, as the CPU backends do); device factors come in it (agc_)."""
    flat = _flat(x)
    items, _, n_items = _items(np.asarray(offsets, dtype=np.int64))
    if isinstance(factors, np.ndarray):
        factors = cuda.to_device(factors.astype(_factor_dtype(flat.dtype)))
    if n_items:
        _kernel(flat, _scale_items, _scale_items_bf16)[n_items, THREADS](flat, items, factors)


def agc_(g: Any, w: Any, offsets: np.ndarray, clip_factor: float, eps: float, p: float) -> None:
    """Unit norms of W and G, the factors and the scaling, all on the device (no host round trip)."""
    wn, gn = segment_norms(w, offsets, p), segment_norms(g, offsets, p)  # held here: _flat's views do not own them
    n_seg = len(offsets) - 1
    if n_seg == 0:
        return
    factors = cuda.device_array(n_seg, _factor_dtype(_flat(g).dtype))
    blocks = max(1, (n_seg + THREADS - 1) // THREADS)
    _unit_factors[blocks, THREADS](_flat(wn), _flat(gn), float(clip_factor), float(eps), factors)
    scale_segments_(g, offsets, factors)
