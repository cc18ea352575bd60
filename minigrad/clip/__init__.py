"""Gradient clipping on plain arrays: NumPy arrays, or CUDA arrays (CuPy, torch.cuda, numba) in place, of float16,
float32, float64 or bfloat16 (ml_dtypes' dtype, which CuPy uses too).

    total_norm(arrays, norm_type=2.0)            -> the p-norm of all elements as one vector (float64)
    clip_norm_(arrays, max_norm, norm_type=2.0)  -> scales every array by min(max_norm / (norm + 1e-6), 1)
    clip_value_(arrays, clip_value)              -> clamps every element to [-clip_value, clip_value]
    scale_(arrays, coef), clamp_(arrays, lo, hi) -> the primitives

PyTorch's semantics, made safe: sums are accumulated in float64, float64 input is scaled by its max so 1e200
does not overflow, and every argument — numbers, dtypes, writeability, layout, device — is checked before any
array is touched, so a rejected call changes nothing. With a non-finite norm and `error_if_nonfinite=False`
the coefficient is computed from it exactly as torch does: an inf norm gives a coefficient of 0 (finite
elements become 0, inf elements NaN), a NaN norm gives NaN everywhere.

Norm orders (`norm_type`): any real number or ±inf ("inf", "-inf" too), as torch: 0 counts the non-zero
elements, p < 0 is (Σ|x|^p)^(1/p), -inf the smallest |x|. NaN is rejected.

Backends (each module has total_norm(arrays, p), scale_(arrays, coef), clamp_(arrays, lo, hi)):
"numpy" (the reference), "numba" (parallel CPU kernels), "cuda" (numba.cuda kernels). `backend=None` picks
"cuda" for CUDA arrays, "numba" for NumPy arrays holding at least NUMBA_MIN_ELEMENTS elements, else "numpy";
the environment variable MINIGRAD_BACKEND forces one.
"""
from __future__ import annotations

import functools
import importlib
import math
import operator
import os
from typing import Any

import numpy as np

from minigrad._validation import check_nonnegative, check_norm_type, check_positive_order, check_real
from minigrad.clip.bfloat16 import is_floating
from minigrad.clip.pnorm import clip_coef

# Small arrays take Numba's serial kernel, so Numba's norm is faster at every size; only a value clip of one
# array of a few hundred elements is faster with NumPy (docs/benchmarks.md, "backend threshold").
NUMBA_MIN_ELEMENTS = 1 << 10
_DTYPE = operator.attrgetter("dtype")
_WRITEABLE = operator.attrgetter("flags.writeable")
_SIZE = operator.attrgetter("size")
_C_CONTIGUOUS = operator.attrgetter("flags.c_contiguous")
BACKENDS = ("numpy", "numba", "cuda")


@functools.cache
def _backend_module(name: str) -> Any:
    """A backend's module, imported on first use (numba.cuda only when CUDA arrays come), then from the cache:
    importlib's own lookup costs a noticeable part of a tiny model's clip."""
    return importlib.import_module(f"minigrad.clip.{name}_backend")


def _is_cuda(a: Any) -> bool:
    """Whether `a` (not a NumPy array: callers test for those first) is a CUDA device array."""
    if hasattr(a, "__cuda_array_interface__"):
        return True
    # the simulator's arrays carry no interface; recognising them needs the backend (and numba.cuda) loaded
    return type(a).__name__ == "FakeCUDAArray" and _backend_module("cuda").is_cuda_array(a)


def _as_list(arrays: Any) -> list:
    if arrays is None:
        return []
    if isinstance(arrays, np.ndarray) or _is_cuda(arrays):
        return [arrays]
    try:
        return [a for a in arrays if a is not None]
    except TypeError:
        raise TypeError(f"arrays must be an array or an iterable of arrays, got {type(arrays).__name__}") from None


def check_arrays(arrays: Any, writable: bool = False) -> tuple[list, bool]:
    """The arrays as a list (None entries dropped) and whether they live on a CUDA device.

    Every array is checked — a floating dtype, one side (host or device), C-contiguous on a device, and with
    `writable` writeable on the host — so that a call that will write raises before its first write.
    """
    arrays = _as_list(arrays)
    # the common case, checked in three C-level passes (map + attrgetter: half the time of a Python loop)
    types = set(map(type, arrays))
    if types <= {np.ndarray} and all(map(is_floating, set(map(_DTYPE, arrays)))) and (
            not writable or all(map(_WRITEABLE, arrays))):
        return arrays, False
    # CuPy arrays, the other common case: their flags say the layout without building the CUDA interface
    if len(types) == 1 and next(iter(types)).__module__.startswith("cupy") and all(
            map(_backend_module("cuda").is_device_dtype, set(map(_DTYPE, arrays)))) and all(
            map(_C_CONTIGUOUS, arrays)):
        return arrays, True
    on_device = 0
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray):
            if not is_floating(a.dtype):
                raise TypeError(f"arrays[{i}] has dtype {a.dtype}; clipping needs floating point")
            if writable and not a.flags.writeable:
                raise ValueError(f"arrays[{i}] is read-only; nothing was modified")
            continue
        if not _is_cuda(a):
            raise TypeError(f"arrays[{i}] is a {type(a).__name__}, not a NumPy or CUDA array")
        cuda_backend = _backend_module("cuda")
        if not cuda_backend.is_device_dtype(cuda_backend.device_dtype(a)):
            raise TypeError(f"arrays[{i}] has dtype {a.dtype}; the CUDA backend supports float16, bfloat16, "
                            "float32 and float64")
        cuda_backend.check_layout(a, i)
        on_device += 1
    if 0 < on_device < len(arrays):
        raise ValueError("arrays mix host (NumPy) and CUDA device arrays; put them on one side")
    return arrays, on_device > 0


def host_value(norm: Any) -> float:
    """The float value of a 0-d norm, on the host or on a CUDA device (which synchronises)."""
    if isinstance(norm, (np.ndarray, np.generic, float, int)):
        return float(norm)
    return float(_backend_module("cuda").to_host(norm).reshape(()))


def host_value_array(values: Any) -> np.ndarray:
    """A host NumPy copy of an array of values that may live on a CUDA device (this synchronises)."""
    if isinstance(values, np.ndarray):
        return values
    return np.asarray(_backend_module("cuda").to_host(values))


def _choose(arrays: list, on_cuda: bool, backend: str | None) -> Any:
    name = backend or os.environ.get("MINIGRAD_BACKEND") or None
    if name is not None and name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if not arrays:
        name = "numpy"  # nothing to do; the norm of no elements is a host 0.0
    elif name is None:
        if on_cuda:
            name = "cuda"
        else:
            name = "numba" if sum(map(_SIZE, arrays)) >= NUMBA_MIN_ELEMENTS else "numpy"
    if (name == "cuda") != on_cuda:
        where = "CUDA" if on_cuda else "NumPy"
        raise ValueError(f"backend {name!r} cannot work on {where} arrays")
    return _backend_module(name)


def total_norm(arrays: Any, norm_type: Any = 2.0, *, backend: str | None = None) -> Any:
    """The `norm_type`-norm of all elements of all `arrays` taken as one vector.

    Args:
        arrays: an array or an iterable of arrays (None entries are skipped), all on the host or all on one CUDA
            device, of floating dtypes (mixed dtypes are fine).
        norm_type: any real number or ±inf ("inf" too): 0 counts the non-zero elements, -inf is the smallest
            |x|, negative orders as in torch; NaN is refused.
        backend: "numpy", "numba" or "cuda"; None chooses (see the module docstring).

    Returns:
        A 0-d float64 NumPy array for host arrays; a 0-d device array (CuPy for CuPy input) for CUDA arrays,
        computed without a host synchronisation. No elements give 0.0.

    Raises:
        ValueError: a bad order or backend, or host and device arrays mixed. TypeError: not a float array.
    """
    p = check_norm_type(norm_type)
    arrays, on_cuda = check_arrays(arrays)
    return _choose(arrays, on_cuda, backend).total_norm(arrays, p)


def clip_norm_(arrays: Any, max_norm: Any, norm_type: Any = 2.0, *, error_if_nonfinite: bool = False,
               backend: str | None = None) -> Any:
    """Scale all arrays in place by min(max_norm / (total_norm + 1e-6), 1).

    Args:
        arrays: an array or an iterable of arrays (None entries are skipped), all on the host or all on one
            CUDA device; floating point, writeable.
        max_norm: a real number >= 0; inf changes nothing.
        norm_type: the norm order (see `total_norm`).
        error_if_nonfinite: raise RuntimeError, before anything is modified, when the norm is NaN or inf.
        backend: "numpy", "numba" or "cuda"; None chooses (see the module docstring).

    Returns:
        The total norm before clipping: a 0-d float64 NumPy array, or a 0-d device array for CUDA input.
    """
    norm, coef, impl, arrays = _norm_clip(arrays, max_norm, norm_type, error_if_nonfinite, backend, None)
    if coef is not None:
        impl.scale_(arrays, coef)
    return norm


def norm_and_coefficient(arrays: Any, max_norm: Any, norm_type: Any = 2.0, *, error_if_nonfinite: bool = False,
                         backend: str | None = None, norm: Any = None) -> tuple[Any, Any]:
    """What `clip_norm_` computes, without the scaling: (total norm, coefficient), every argument checked.

    Args:
        arrays, max_norm, norm_type, error_if_nonfinite, backend: as `clip_norm_`.
        norm: the arrays' norm, when the caller has computed it already (AutoClip; host arrays).

    Returns:
        (norm, coefficient). The coefficient is None when there is nothing to scale (no arrays, max_norm =
        inf, or, on the host, a coefficient of exactly 1); a float for host arrays; for CUDA arrays a
        `DeviceCoefficient` that `scale_` reads on the device (no host synchronisation); it lives in scratch
        buffers that the next norm clip on the device overwrites (`total_norm` leaves them), so keep it longer with
        its `copy()`. The caller scales with it (`scale_`) or hands it on (a GradBuffer keeps a copy pending for a
        fused optimizer step).
    """
    norm, coef, _, _ = _norm_clip(arrays, max_norm, norm_type, error_if_nonfinite, backend, norm)
    return norm, coef


def _norm_clip(arrays: Any, max_norm: Any, norm_type: Any, error_if_nonfinite: bool, backend: str | None,
               norm: Any) -> tuple:
    """(norm, coefficient or None, backend module, arrays as a checked list) of a norm clip."""
    max_norm = check_nonnegative("max_norm", max_norm)
    p = check_norm_type(norm_type)
    arrays, on_cuda = check_arrays(arrays, writable=True)
    impl = _choose(arrays, on_cuda, backend)
    if on_cuda:
        norm, device_coef = impl.norm_and_coefficient(arrays, p, max_norm if max_norm != math.inf else -1.0)
    else:
        norm = impl.total_norm(arrays, p) if norm is None else np.asarray(norm, dtype=np.float64)
    if error_if_nonfinite or not on_cuda:
        value = host_value(norm)
        if error_if_nonfinite and not math.isfinite(value):
            raise RuntimeError(f"the total norm of order {p} of the gradients is non-finite ({value}), so they "
                               "cannot be clipped; set error_if_nonfinite=False to clip anyway (as torch does)")
    if max_norm == math.inf or not arrays:
        return norm, None, impl, arrays
    if on_cuda:
        return norm, device_coef, impl, arrays  # computed by the norm's own launches, read on the device
    coef = clip_coef(value, max_norm)
    return norm, (None if coef == 1.0 else coef), impl, arrays


def clip_value_(arrays: Any, clip_value: Any, *, backend: str | None = None) -> None:
    """Clamp every element of every array in place to [-clip_value, clip_value]; NaN stays NaN.

    Args:
        arrays: as `clip_norm_` (writeable).
        clip_value: a real number >= 0; inf changes nothing.
        backend: as `total_norm`.
    """
    clip_value = check_nonnegative("clip_value", clip_value)
    arrays, on_cuda = check_arrays(arrays, writable=True)
    if clip_value == math.inf or not arrays:
        return
    _choose(arrays, on_cuda, backend).clamp_(arrays, -clip_value, clip_value)


def scale_(arrays: Any, coef: Any, *, backend: str | None = None) -> None:
    """x *= coef for every array, in each array's dtype (the coefficient rounded to it first, as torch does;
    float16 and bfloat16 are multiplied in float32 and rounded once).

    Args:
        arrays: as `clip_norm_` (writeable).
        coef: a real number (NaN and inf allowed), or, for CUDA arrays, the DeviceCoefficient that
            `norm_and_coefficient` returns.
        backend: as `total_norm`.
    """
    if type(coef).__name__ != "DeviceCoefficient":
        coef = check_real("coef", coef, allow_nan=True)
    arrays, on_cuda = check_arrays(arrays, writable=True)
    _choose(arrays, on_cuda, backend).scale_(arrays, coef)


def clamp_(arrays: Any, lo: Any, hi: Any, *, backend: str | None = None) -> None:
    """x = min(max(x, lo), hi) for every array, in place; NaN stays NaN.

    Args:
        arrays: as `clip_norm_` (writeable).
        lo, hi: real numbers, lo <= hi (±inf allowed).
        backend: as `total_norm`.
    """
    lo, hi = check_real("lo", lo), check_real("hi", hi)
    if lo > hi:
        raise ValueError(f"lo must be <= hi, got lo={lo!r} > hi={hi!r}")
    arrays, on_cuda = check_arrays(arrays, writable=True)
    _choose(arrays, on_cuda, backend).clamp_(arrays, lo, hi)


# ----- segments: the norms of consecutive pieces of one array, and unit-wise clipping (AGC) ---------------------
def _check_offsets(offsets: Any, size: int) -> np.ndarray:
    """`offsets` as int64, checked: 1-d, starting at 0, non-decreasing, ending at `size`."""
    arr = np.asarray(offsets)
    if arr.ndim != 1 or arr.size < 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"offsets must be a 1-d array of integers, got {offsets!r}")
    arr = arr.astype(np.int64)
    if arr[0] != 0 or arr[-1] != size or np.any(np.diff(arr) < 0):
        raise ValueError(f"offsets must rise from 0 to the array's {size} elements, got {arr.tolist()[:8]}...")
    return arr


def _flat_view(a: Any, on_cuda: bool) -> tuple[Any, bool]:
    """A 1-d view of `a`'s elements, and whether it is a copy (a non-contiguous host array) to write back."""
    if on_cuda or a.flags.c_contiguous:
        return a.reshape(-1), False
    return np.ascontiguousarray(a).reshape(-1), True


def segment_norms(array: Any, offsets: Any, norm_type: Any = 2.0, *, backend: str | None = None) -> Any:
    """The norm of each segment array.flat[offsets[k]:offsets[k + 1]], in one pass: the per-parameter norms of a
    GradBuffer's flat array, or the unit (row) norms AGC needs.

    Args:
        array: one float array, host or CUDA (a non-contiguous host array is read in C order).
        offsets: 1-d integers rising from 0 to array.size; segment k lies between offsets[k] and offsets[k + 1].
        norm_type: > 0 or inf.
        backend: as `total_norm`.

    Returns:
        One norm per segment: float64 on the host, a device array for CUDA input. An empty segment has norm 0.
    """
    p = check_positive_order("norm_type", norm_type)
    (array,), on_cuda = check_arrays([array])
    offsets = _check_offsets(offsets, array.size)
    flat, _ = _flat_view(array, on_cuda)
    return _choose([array], on_cuda, backend).segment_norms(flat, offsets, p)


def scale_segments_(array: Any, offsets: Any, factors: Any, *, backend: str | None = None) -> None:
    """array.flat[segment k] *= factors[k] in place, in the array's dtype; a factor of 1 leaves its segment
    bit-identical.

    Args:
        array, offsets, backend: as `segment_norms` (the array writeable).
        factors: one real number per segment (for CUDA input, host numbers or a device array in the dtype the
            array is multiplied in: float32 for float16 and bfloat16, else the array's own).
    """
    (array,), on_cuda = check_arrays([array], writable=True)
    offsets = _check_offsets(offsets, array.size)
    if not (on_cuda and _is_cuda(factors)):  # host numbers (a NumPy array has no CUDA interface): checked
        factors = np.asarray(factors, dtype=np.float64)
        if factors.shape != (len(offsets) - 1,):
            raise ValueError(f"factors must hold one number per segment ({len(offsets) - 1}), got shape "
                             f"{factors.shape}")
    flat, copied = _flat_view(array, on_cuda)
    _choose([array], on_cuda, backend).scale_segments_(flat, offsets, factors)
    if copied:
        array[...] = flat.reshape(array.shape)


def adaptive_clip_(grad: Any, weight: Any, offsets: Any, clip_factor: Any = 0.01, eps: Any = 1e-3,
                   norm_type: Any = 2.0, *, backend: str | None = None) -> None:
    """Unit-wise adaptive gradient clipping of one gradient against its weight, the units being the segments
    `offsets` marks: where ‖G_u‖ >= max(‖W_u‖, eps)·clip_factor, G_u is scaled to that limit (divided by
    max(‖G_u‖, 1e-6)); other units are left bit-identical.

    Args:
        grad: the gradient (writeable); weight: the parameter, of grad's shape and on its side.
        offsets: the units, as `segment_norms` takes them.
        clip_factor: > 0; eps: >= 0, the floor of a unit's weight norm; norm_type: > 0 or inf.
        backend: as `total_norm`.

    References:
        Brock, De, Smith & Simonyan (2021), "High-Performance Large-Scale Image Recognition Without
        Normalization".
    """
    clip_factor = check_real("clip_factor", clip_factor)
    if not clip_factor > 0:
        raise ValueError(f"clip_factor must be > 0, got {clip_factor!r}")
    eps = check_real("eps", eps, minimum=0.0)
    p = check_positive_order("norm_type", norm_type)
    (grad, weight), on_cuda = check_arrays([grad, weight])
    check_arrays([grad], writable=True)
    if grad.shape != weight.shape:
        raise ValueError(f"grad and weight must have one shape, got {grad.shape} and {weight.shape}")
    offsets = _check_offsets(offsets, grad.size)
    g_flat, copied = _flat_view(grad, on_cuda)
    w_flat, _ = _flat_view(weight, on_cuda)
    _choose([grad], on_cuda, backend).agc_(g_flat, w_flat, offsets, clip_factor, eps, p)
    if copied:
        grad[...] = g_flat.reshape(grad.shape)


__all__ = ["total_norm", "clip_norm_", "norm_and_coefficient", "clip_value_", "scale_", "clamp_", "segment_norms",
           "scale_segments_", "adaptive_clip_", "BACKENDS", "NUMBA_MIN_ELEMENTS", "check_arrays", "host_value",
           "host_value_array", "clip_coef"]
