"""Where arrays live: torch.device's shape (`minigrad.device("cpu")`, `tensor.device`), the array module of an
array (NumPy, or CuPy for CUDA tensors), moving arrays between the two, and the argument parsing of `.to(...)`.

CuPy is imported only when a CUDA array or device is asked for, so the CPU path never needs it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_TYPES = ("cpu", "cuda")


class device(str):
    """A device: "cpu" or "cuda" (CUDA tensors hold CuPy arrays). A str, so `t.device == "cpu"` holds too."""

    def __new__(cls, type: Any, index: int | None = None) -> "device":
        if isinstance(type, device):
            return type
        if not isinstance(type, str):
            raise TypeError(f"device() expects a string such as 'cpu' or 'cuda', got {type!r}")
        name, _, idx = type.partition(":")
        if name not in _TYPES:
            raise ValueError(f"device type must be one of {_TYPES}, got {type!r}")
        if idx:
            if not idx.isdigit():
                raise ValueError(f"device index must be a non-negative integer, got {type!r}")
            index = int(idx)
        if index is not None and name == "cpu" and index != 0:
            raise ValueError(f"the cpu device has index 0 only, got {type!r}")
        obj = super().__new__(cls, name)
        obj._index = index
        return obj

    @property
    def type(self) -> str:
        return str.__str__(self)

    @property
    def index(self) -> int | None:
        return self._index

    def __repr__(self) -> str:
        index = "" if self._index is None else f", index={self._index}"
        return f"device(type='{self.type}'{index})"

    def __reduce__(self) -> tuple:
        return device, (self.type, self._index)


def array_module(arr: Any) -> Any:
    """NumPy, or CuPy for a CuPy array: the module whose functions an op calls (CuPy is never imported here)."""
    if type(arr).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def move_array(a: Any, device: str) -> Any:
    """`a` on "cpu" (NumPy) or "cuda" (CuPy); a clear error when CuPy or a GPU is missing."""
    if device == "cpu":
        return a if array_module(a) is np else a.get()
    if device != "cuda":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    try:
        import cupy
    except ImportError:
        raise RuntimeError("device 'cuda' needs CuPy (pip install cupy-cuda12x) and a CUDA GPU") from None
    return cupy.asarray(a)


def device_of(arr: Any) -> "device":
    """The device an array lives on."""
    return CPU if type(arr) is np.ndarray or array_module(arr) is np else CUDA


def parse_to(args: tuple, kwargs: dict) -> tuple[device | None, np.dtype | None]:
    """(device, dtype) from torch's `to` signatures: to(device), to(dtype), to(device, dtype), to(tensor) (a
    tensor, or anything with a `device` and a `dtype`, gives both)."""
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "copy"}
    if unknown:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(unknown)}")
    dev, dtype = kwargs.get("device"), kwargs.get("dtype")
    for a in args:
        if hasattr(a, "device") and hasattr(a, "dtype"):
            dev, dtype = a.device, a.dtype
        elif isinstance(a, str):
            dev = a
        elif a is not None:
            dtype = a
    if len(args) > 2:
        raise TypeError(f"to() takes at most 2 positional arguments, got {len(args)}")
    return (None if dev is None else device(dev)), (None if dtype is None else np.dtype(dtype))


CPU, CUDA = device("cpu"), device("cuda")  # what Tensor.device returns: made once
