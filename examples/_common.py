"""What the examples share: the device check, optional extras with one-line hints, progress bars, plots."""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable

import numpy as np


def fail(message: str, code: int = 2) -> None:
    """A clear one-line error and a non-zero exit: no traceback wall for a user's mistake."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def check_device(device: str) -> None:
    """Exit with a clear message when `device` is 'cuda' but CuPy or a CUDA GPU is missing."""
    if device != "cuda":
        return
    try:
        import cupy
    except ImportError:
        fail("--device cuda needs CuPy and a CUDA GPU (pip install cupy-cuda12x numba-cuda); "
             "use --device cpu")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no device")
    except Exception:
        fail("--device cuda: CuPy is installed but no CUDA GPU is visible; use --device cpu")


def set_backend(name: str | None) -> None:
    """Force minigrad.clip's backend for this process (the same as MINIGRAD_BACKEND=name)."""
    if name:
        os.environ["MINIGRAD_BACKEND"] = name


def progress(items: Iterable, total: int, desc: str) -> Any:
    """A tqdm bar on a terminal; otherwise the items unchanged (plain lines are printed by the caller)."""
    if not sys.stderr.isatty():
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, desc=desc, leave=False)


def pyplot():
    """matplotlib.pyplot with a headless backend, or None with a one-line hint when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("hint: plots need matplotlib (pip install -e '.[examples]'); skipping the figure")
        return None
    return plt


def running_median_explosions(norms: list[float], factor: float = 10.0, window: int = 20) -> int:
    """Steps whose gradient norm exceeds `factor` x the median of the previous `window` steps."""
    count = 0
    for i in range(window // 2, len(norms)):
        past = norms[max(0, i - window):i]
        if norms[i] > factor * float(np.median(past)):
            count += 1
    return count
