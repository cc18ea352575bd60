"""Gradient clipping on plain arrays: NumPy arrays, or CUDA arrays (CuPy, torch.cuda, numba) in place.

    total_norm(arrays, norm_type=2.0)            -> the p-norm of all elements as one vector (float64)
    clip_norm_(arrays, max_norm, norm_type=2.0)  -> scales every array by min(max_norm / (norm + 1e-6), 1)
    clip_value_(arrays, clip_value)              -> clamps every element to [-clip_value, clip_value]
    scale_(arrays, coef), clamp_(arrays, lo, hi) -> the primitives

PyTorch's semantics, made safe: sums are accumulated in float64, float64 input is scaled by its max so 1e200
does not overflow, and every argument is checked before any array is touched. With a non-finite norm and
`error_if_nonfinite=False` the coefficient is computed from it exactly as torch does: an inf norm gives a
coefficient of 0 (finite elements become 0, inf elements NaN), a NaN norm gives NaN everywhere.

Backends (each module has total_norm(arrays, p), scale_(arrays, coef), clamp_(arrays, lo, hi)):
"numpy" (the reference), "numba" (parallel CPU kernels), "cuda" (numba.cuda kernels). `backend=None` picks
"cuda" for CUDA arrays, "numba" for NumPy arrays holding at least NUMBA_MIN_ELEMENTS elements, else "numpy";
the environment variable MINIGRAD_BACKEND forces one.
"""
from __future__ import annotations

import importlib
import math
import numbers
import os
from typing import Any

import numpy as np

from minigrad.clip._plan import clip_coef

# Below this many elements NumPy is faster than a parallel kernel: bench_clip.py measured numba 0.8x at 2^14
# elements and 3.7x at 2^16 (one float32 array, 2-core box, 2026-11-25).
NUMBA_MIN_ELEMENTS = 1 << 16
BACKENDS = ("numpy", "numba", "cuda")


def _backend_module(name: str) -> Any:
    return importlib.import_module(f"minigrad.clip.{name}_backend")


def _is_cuda(a: Any) -> bool:
    if isinstance(a, np.ndarray):
        return False
    if hasattr(a, "__cuda_array_interface__"):
        return True
    # the simulator's arrays carry no interface; recognising them needs the backend (and numba.cuda) loaded
    return type(a).__name__ == "FakeCUDAArray" and _backend_module("cuda").is_cuda_array(a)


def _as_list(arrays: Any) -> list:
    if arrays is None:
        return []
    if isinstance(arrays, np.ndarray) or _is_cuda(arrays):
        return [arrays]
    return [a for a in arrays if a is not None]


def check_arrays(arrays: Any) -> tuple[list, bool]:
    """The arrays as a list (None entries dropped) and whether they live on a CUDA device."""
    arrays = _as_list(arrays)
    on_device = 0
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray):
            if a.dtype.kind != "f":
                raise TypeError(f"arrays[{i}] has dtype {a.dtype}; clipping needs floating point")
            continue
        if not _is_cuda(a):
            raise TypeError(f"arrays[{i}] is a {type(a).__name__}, not a NumPy or CUDA array")
        if np.dtype(a.dtype) not in (np.float32, np.float64):
            raise TypeError(f"arrays[{i}] has dtype {a.dtype}; the CUDA backend supports float32 and float64")
        on_device += 1
    if 0 < on_device < len(arrays):
        raise ValueError("arrays mix host (NumPy) and CUDA device arrays; put them on one side")
    return arrays, on_device > 0


def check_norm_type(norm_type: Any) -> float:
    """The norm order as a float: any p > 0, or inf (also "inf"). Anything else is a ValueError."""
    if isinstance(norm_type, str):
        if norm_type.lower() not in ("inf", "infinity"):
            raise ValueError(f"norm_type must be a number > 0 or 'inf', got {norm_type!r}")
        return math.inf
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise ValueError(f"norm_type must be a number > 0 or 'inf', got {norm_type!r}")
    p = float(norm_type)
    if not p > 0:  # also rejects NaN
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type!r}")
    return p


def check_nonnegative(name: str, value: Any) -> float:
    """A real number >= 0 (inf allowed). Bools, NaN, negatives and non-numbers are a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if getattr(value, "shape", None) == () or getattr(value, "size", 0) == 1:
            value = float(np.asarray(value).reshape(()))
        else:
            raise ValueError(f"{name} must be a real number >= 0, got {value!r}")
    value = float(value)
    if not value >= 0:
        raise ValueError(f"{name} must be a real number >= 0, got {value!r}")
    return value


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
            name = "numba" if sum(a.size for a in arrays) >= NUMBA_MIN_ELEMENTS else "numpy"
    if (name == "cuda") != on_cuda:
        where = "CUDA" if on_cuda else "NumPy"
        raise ValueError(f"backend {name!r} cannot work on {where} arrays")
    return _backend_module(name)


def total_norm(arrays: Any, norm_type: Any = 2.0, *, backend: str | None = None) -> Any:
    """The `norm_type`-norm of all elements of all `arrays` taken as one vector.

    A 0-d float64 NumPy array for host arrays; a 0-d device array (CuPy for CuPy input) for CUDA arrays.
    """
    p = check_norm_type(norm_type)
    arrays, on_cuda = check_arrays(arrays)
    return _choose(arrays, on_cuda, backend).total_norm(arrays, p)


def _host_value(norm: Any, on_cuda: bool) -> float:
    return float(_backend_module("cuda").to_host(norm).reshape(())) if on_cuda else float(norm)


def clip_norm_(arrays: Any, max_norm: Any, norm_type: Any = 2.0, *, error_if_nonfinite: bool = False,
               backend: str | None = None) -> Any:
    """Scale all arrays in place by min(max_norm / (total_norm + 1e-6), 1); return the total norm (pre-clip).

    `max_norm=inf` changes nothing. With `error_if_nonfinite=True` a NaN/inf norm raises RuntimeError before
    anything is modified.
    """
    max_norm = check_nonnegative("max_norm", max_norm)
    p = check_norm_type(norm_type)
    arrays, on_cuda = check_arrays(arrays)
    impl = _choose(arrays, on_cuda, backend)
    norm = impl.total_norm(arrays, p)
    if error_if_nonfinite or not on_cuda:
        value = _host_value(norm, on_cuda)
        if error_if_nonfinite and not math.isfinite(value):
            raise RuntimeError(f"the total norm of order {p} of the gradients is {value}, so they cannot be "
                               "clipped; set error_if_nonfinite=False to clip anyway (as torch does)")
    if max_norm == math.inf or not arrays:
        return norm
    if on_cuda:
        impl.scale_(arrays, impl.coefficient(norm, max_norm))  # computed and read on the device
    else:
        coef = clip_coef(value, max_norm)
        if coef != 1.0:
            impl.scale_(arrays, coef)
    return norm


def clip_value_(arrays: Any, clip_value: Any, *, backend: str | None = None) -> None:
    """Clamp every element of every array in place to [-clip_value, clip_value]; NaN stays NaN."""
    clip_value = check_nonnegative("clip_value", clip_value)
    arrays, on_cuda = check_arrays(arrays)
    if clip_value == math.inf or not arrays:
        return
    _choose(arrays, on_cuda, backend).clamp_(arrays, -clip_value, clip_value)


def scale_(arrays: Any, coef: Any, *, backend: str | None = None) -> None:
    """x *= coef for every array, in each array's dtype."""
    if isinstance(coef, bool) or not isinstance(coef, numbers.Real):
        raise ValueError(f"coef must be a real number, got {coef!r}")
    arrays, on_cuda = check_arrays(arrays)
    _choose(arrays, on_cuda, backend).scale_(arrays, float(coef))


def clamp_(arrays: Any, lo: Any, hi: Any, *, backend: str | None = None) -> None:
    """x = min(max(x, lo), hi) for every array; NaN stays NaN."""
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != v:
            raise ValueError(f"{name} must be a real number, got {v!r}")
    if lo > hi:
        raise ValueError(f"lo must be <= hi, got lo={lo!r} > hi={hi!r}")
    arrays, on_cuda = check_arrays(arrays)
    _choose(arrays, on_cuda, backend).clamp_(arrays, float(lo), float(hi))


__all__ = ["total_norm", "clip_norm_", "clip_value_", "scale_", "clamp_", "BACKENDS", "NUMBA_MIN_ELEMENTS",
           "check_norm_type", "check_nonnegative", "check_arrays"]
