"""torch.cuda's questions, answered through CuPy: whether a CUDA GPU can be used, and how many there are.

minigrad's CUDA tensors hold CuPy arrays (`.to("cuda")`), so "available" means CuPy imports and sees a device.
"""
from __future__ import annotations

from typing import Any


def device_count() -> int:
    """The number of CUDA devices CuPy sees (0 without CuPy or a driver)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device: none to use
        return 0


def is_available() -> bool:
    """True when CuPy can use at least one CUDA device."""
    return device_count() > 0


def manual_seed(seed: int) -> None:
    """Accepted for torch scripts: minigrad draws every initial value from one generator (minigrad.manual_seed)."""


manual_seed_all = manual_seed


def synchronize(device: Any = None) -> None:
    """Wait for the current CUDA device to finish its work (nothing to wait for without one)."""
    if is_available():
        import cupy

        cupy.cuda.Device().synchronize()


__all__ = ["device_count", "is_available", "manual_seed", "manual_seed_all", "synchronize"]
