"""Run one clipping test against every backend: arrays go to the backend's side and come back to the host.

"cuda" runs on a real GPU when MINIGRAD_REAL_CUDA=1, otherwise under numba's CUDA simulator (enabled in
conftest.py before numba is imported), which runs kernels as Python threads: it gets fewer examples.
"""
from __future__ import annotations

import numpy as np
from hypothesis import settings


def _cuda_available() -> bool:
    """numba.cuda importable (built into numba, or the numba-cuda package): simulated or real."""
    try:
        from numba import cuda  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = ["numpy", "numba"] + (["cuda"] if _cuda_available() else [])


def to_backend(arrays, backend):
    if backend != "cuda":
        return [a.copy() for a in arrays]
    from numba import cuda

    return [cuda.to_device(np.ascontiguousarray(a)) for a in arrays]


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
    """Hypothesis settings for a backend: the simulated GPU gets a handful of examples."""
    return settings(max_examples=4) if backend == "cuda" else settings()


def reference_norm(arrays, p) -> float:
    """The float64 NumPy formula, scaled by the max so that it cannot overflow."""
    flat = np.concatenate([np.abs(a.astype(np.float64)).ravel() for a in arrays] + [np.zeros(0)])
    if flat.size == 0:
        return 0.0
    if p == np.inf:
        return float(flat.max())
    m = flat.max()
    if m == 0 or not np.isfinite(m):
        return float(m)
    return float(m * np.sum((flat / m) ** p) ** (1 / p))
