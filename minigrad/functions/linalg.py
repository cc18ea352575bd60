"""Linear algebra: matmul with NumPy's rules for 1-d operands and broadcast batch dims."""
from __future__ import annotations

from typing import Any

from minigrad._validation import TensorError
from minigrad.autograd import Context, Function
from minigrad.devices import array_module
from minigrad.functions.broadcast import unbroadcast


class MatMul(Function):
    """a @ b with NumPy's rules: 1-d operands are promoted, leading dims broadcast."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise TensorError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
        inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != inner_b:
            raise TensorError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                              f"({a.shape[-1]} != {inner_b})")
        if a.dtype != b.dtype:
            raise TensorError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype} != {b.dtype}")
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        xp = array_module(grad)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            grad = xp.expand_dims(grad, -1)
        if a.ndim == 1:
            grad = xp.expand_dims(grad, -2)
        need_a, need_b = ctx.needs_input_grad
        grad_a = unbroadcast(grad @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape) if need_a else None
        grad_b = unbroadcast(xp.swapaxes(a2, -1, -2) @ grad, b2.shape).reshape(b.shape) if need_b else None
        return grad_a, grad_b
