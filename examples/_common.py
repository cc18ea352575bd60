"""What the examples share: the device check, optional extras with one-line hints, progress bars, plots."""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable


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
    except Exception:  # noqa: BLE001 - any CUDA runtime error means: no usable GPU
        fail("--device cuda: CuPy is installed but no CUDA GPU is visible; use --device cpu")


def set_backend(name: str | None) -> None:
    """Force minigrad.clip's backend for this process (the same as MINIGRAD_BACKEND=name)."""
    if name:
        os.environ["MINIGRAD_BACKEND"] = name


def interactive() -> bool:
    """True on a terminal: progress bars instead of periodic plain lines."""
    return sys.stderr.isatty()


def progress(items: Iterable, total: int, desc: str) -> Any:
    """A tqdm bar on a terminal; otherwise the items unchanged (plain lines are printed by the caller)."""
    if not interactive():
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, desc=desc, leave=False)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def bar(total: int, desc: str, initial: int = 0) -> Any:
    """A tqdm bar to `update()` by hand on a terminal; otherwise an object whose methods do nothing."""
    if not interactive():
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, initial=initial, desc=desc, leave=False)


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


class StepRecorder:
    """Per optimizer step: the gradient norm before clipping (what the clip function returned), after clipping,
    the length ‖Δθ‖ of the update the optimizer then made, all parameters taken as one vector, and the largest
    RMS(Δp) = ‖Δp‖ / √numel of a single parameter tensor (what Adam's update clipping bounds by lr·update_clip).

    Call `before_step(norm)` between the clip and `optimizer.step()`, and `after_step()` after it. Only
    tensor methods that torch has too: the example runs unchanged with torch's imports (benchmarks do that).
    """

    def __init__(self, parameters: Iterable, nn: Any) -> None:
        self.params, self.nn = list(parameters), nn
        self.grad_norm: list[float] = []
        self.clipped_norm: list[float] = []
        self.update_norm: list[float] = []
        self.update_rms: list[float] = []
        self._before: list = []

    def before_step(self, pre_clip_norm: Any) -> None:
        self.grad_norm.append(float(pre_clip_norm.item()))
        grads = [p.grad for p in self.params if p.grad is not None]
        self.clipped_norm.append(float(self.nn.utils.get_total_norm(grads).item()))
        self._before = [p.detach().clone() for p in self.params]

    def after_step(self) -> None:
        steps = [p.detach() - b for p, b in zip(self.params, self._before)]
        self.update_norm.append(float(self.nn.utils.get_total_norm(steps).item()))
        self.update_rms.append(max((float(d.norm().item()) / d.numel() ** 0.5 for d in steps if d.numel()),
                                   default=0.0))

    def history(self) -> dict:
        return {"grad_norm": self.grad_norm, "clipped_norm": self.clipped_norm, "update_norm": self.update_norm,
                "update_rms": self.update_rms}
