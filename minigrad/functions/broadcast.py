"""Broadcasting, undone in one place: every op whose forward broadcasts calls `unbroadcast` in its backward."""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad._validation import TensorError


def unbroadcast(grad: Any, shape: tuple) -> Any:
    """Sum `grad` down to `shape`: the adjoint of NumPy broadcasting `shape` up to `grad.shape`."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def shape_of(x: Any) -> tuple:
    return np.shape(x) if not hasattr(x, "shape") else x.shape


def broadcast_check(op: str, a: Any, b: Any) -> None:
    sa, sb = shape_of(a), shape_of(b)
    if sa == sb or not sa or not sb:  # the common cases, without asking NumPy
        return
    try:
        np.broadcast_shapes(shape_of(a), shape_of(b))
    except ValueError:
        raise TensorError(f"{op}: shapes {shape_of(a)} and {shape_of(b)} cannot be broadcast together") from None
