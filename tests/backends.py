"""Run one clipping test against every backend: arrays go to the backend's side and come back to the host.

"cuda" runs on a real GPU when MINIGRAD_REAL_CUDA=1, otherwise under numba's CUDA simulator (enabled in
conftest.py before numba is imported), which runs kernels as Python threads: it gets fewer hypothesis examples
(4 in the default profile, 100 in `thorough`). A backend that cannot run here is reported as skipped with the
reason, never dropped silently.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import settings


def _cuda_unavailable() -> str | None:
    """Why numba.cuda cannot run here (simulated or real), or None when it can."""
    try:
        from numba import cuda
    except ImportError as err:
        return f"numba.cuda cannot be imported ({err}); pip install numba-cuda"
    try:
        cuda.to_device(np.zeros(1)).copy_to_host()
    except Exception as err:  # noqa: BLE001 - any failure means: not here
        return f"numba.cuda cannot run a kernel here ({type(err).__name__}: {err})"
    return None


CUDA_UNAVAILABLE = _cuda_unavailable()
BACKENDS = ["numpy", "numba", pytest.param("cuda", marks=pytest.mark.skipif(
    CUDA_UNAVAILABLE is not None, reason=str(CUDA_UNAVAILABLE)))]


def to_backend(arrays, backend):
    """Copies on the backend's side: host copies keep their layout (views stay views of a copy); device arrays
    are contiguous copies."""
    if backend != "cuda":
        return [_same_layout_copy(a) for a in arrays]
    from numba import cuda

    return [cuda.to_device(np.ascontiguousarray(a)) for a in arrays]


def _same_layout_copy(a: np.ndarray) -> np.ndarray:
    """A copy of `a` with a's strides (a reversed or strided view stays one: of a copy of its owner)."""
    owner = a
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner is a:
        return a.copy(order="K")
    copy = owner.copy(order="K")
    offset = a.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    return np.ndarray(a.shape, a.dtype, buffer=copy, offset=offset, strides=a.strides)


def to_host(arrays, backend):
    if backend != "cuda":
        return [np.array(a, copy=True) for a in arrays]
    return [a.copy_to_host() for a in arrays]


def host_value(norm, backend) -> float:
    if isinstance(norm, np.ndarray):
        return float(norm)
    from minigrad.clip.cuda_backend import to_host as device_to_host

    return float(device_to_host(norm))


def examples(backend):
    """Hypothesis settings for a backend: the simulated GPU gets a fifth of the profile's examples, at least 4
    (4 in `ci`, 100 in `thorough`)."""
    if backend != "cuda":
        return settings()
    return settings(max_examples=max(4, settings().max_examples // 5 if settings().max_examples > 100 else 4))


def reference_norm(arrays, p) -> float:
    """The p-norm by NumPy formulas in float64, written apart from the library (torch's definitions): p = ±inf
    the max / min |x|, p = 0 the count of non-zeros, otherwise (Σ|x|^p)^(1/p) scaled by the max (p > 0) or the
    min (p < 0) so that nothing overflows. NaN anywhere gives NaN (except p = 0); no elements give 0."""
    p = {"inf": math.inf, "-inf": -math.inf}.get(p, p) if isinstance(p, str) else float(p)
    flat = np.concatenate([np.abs(np.asarray(a, dtype=np.float64)).ravel() for a in arrays] + [np.zeros(0)])
    if flat.size == 0:
        return 0.0
    if p == 0:
        return float(np.count_nonzero(flat))
    if np.isnan(flat).any():
        return math.nan
    if p == math.inf:
        return float(flat.max())
    if p == -math.inf:
        return float(flat.min())
    m = flat.max() if p > 0 else flat.min()
    if m == 0 or not np.isfinite(m):
        return float(m)
    with np.errstate(over="ignore", under="ignore"):
        s = np.sum((flat / m) ** p)
        return float(m * s ** (1 / p)) if np.isfinite(s ** (1 / p)) else math.inf
