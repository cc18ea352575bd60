"""minigrad: a small, exact reference implementation of autodiff, vanilla RNNs and gradient clipping."""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad.random import manual_seed
from minigrad.serialization import load, save
from minigrad.tensor import DEFAULT_DTYPE, Tensor, cat, is_grad_enabled, no_grad, stack

__version__ = "0.1.0"


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """A new leaf tensor (Python floats become float32; arrays keep their dtype)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _shape(shape: tuple) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape: Any, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape: Any, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def randn(*shape: Any, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    from minigrad.random import generator

    return Tensor(generator().standard_normal(_shape(shape)).astype(dtype), requires_grad=requires_grad)


__all__ = ["Tensor", "tensor", "zeros", "ones", "randn", "no_grad", "is_grad_enabled", "manual_seed",
           "save", "load", "stack", "cat", "nn", "optim"]

from minigrad import nn, optim  # noqa: E402  (torch users reach these as attributes)
