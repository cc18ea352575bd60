"""TensorData: what `Tensor.data` hands out for a NumPy tensor, an ndarray with torch's in-place methods."""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad._validation import TensorError
from minigrad.random import normal_, uniform_


class TensorData(np.ndarray):
    """What `Tensor.data` hands out: the tensor's own array (same memory, a NumPy view), plus torch's in-place
    methods, so that `p.grad.data.clamp_(-1, 1)`, `p.data.copy_(w)` or `p.grad.data.zero_()` work as in torch.

    It is still an ndarray: NumPy functions, arithmetic and indexing behave as on any array (and their results
    keep the type, so `p.grad.data.abs().pow(2).sum()` chains as in torch). Writes through it are not seen by
    the version counter (as writes through torch's `.data` are not).
    """

    def _binary_(self, other: Any, ufunc: Any) -> "TensorData":
        ufunc(self, np.asarray(other), out=self, casting="unsafe")
        return self

    def zero_(self) -> "TensorData":
        self[...] = 0
        return self

    def fill_(self, value: Any) -> "TensorData":
        self[...] = value
        return self

    def copy_(self, src: Any) -> "TensorData":
        self[...] = np.asarray(src)
        return self

    def add_(self, other: Any, alpha: Any = 1) -> "TensorData":
        return self._binary_(np.asarray(other) * alpha if alpha != 1 else other, np.add)

    def sub_(self, other: Any, alpha: Any = 1) -> "TensorData":
        return self._binary_(np.asarray(other) * alpha if alpha != 1 else other, np.subtract)

    def mul_(self, other: Any) -> "TensorData":
        return self._binary_(other, np.multiply)

    def div_(self, other: Any) -> "TensorData":
        return self._binary_(other, np.true_divide)

    def clamp_(self, min: Any = None, max: Any = None) -> "TensorData":
        if min is None and max is None:
            raise TensorError("clamp_: at least one of `min` and `max` must be given")
        np.clip(self, min, max, out=self)
        return self

    def clamp(self, min: Any = None, max: Any = None) -> "TensorData":
        return np.clip(self, min, max)

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "TensorData":
        uniform_(self, a, b)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "TensorData":
        normal_(self, mean, std)
        return self

    def abs(self) -> "TensorData":
        return np.abs(self)

    def pow(self, exponent: Any) -> "TensorData":
        return np.power(self, exponent)

    def norm(self, p: Any = 2, dim: Any = None, keepdim: bool = False) -> Any:
        """The p-norm of all elements (a NumPy scalar), or along `dim`, so that the gradient-norm loop of torch
        scripts, `p.grad.data.norm(2).item() ** 2` summed, runs as it is."""
        order = 2 if p == "fro" else float(p)
        if dim is None:
            return np.linalg.norm(self.view(np.ndarray).ravel(), ord=order)
        return np.linalg.norm(self.view(np.ndarray), ord=order, axis=dim, keepdims=keepdim).view(TensorData)

    def numpy(self) -> np.ndarray:
        return self.view(np.ndarray)

    def cpu(self) -> "TensorData":
        return self

    def float(self) -> "TensorData":
        return self.astype(np.float32)

    def double(self) -> "TensorData":
        return self.astype(np.float64)

    def long(self) -> "TensorData":
        return self.astype(np.int64)
