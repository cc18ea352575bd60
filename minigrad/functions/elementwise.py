"""Elementwise ops: arithmetic with torch's type promotion, the activations, clamp, casts and device moves.

`forward` receives raw arrays (NumPy or CuPy) for Tensor inputs and constants as they are; `backward` returns
one gradient per positional input (None for constants), summed back to the input's shape by `unbroadcast`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad._promotion import DEFAULT_DTYPE, floating, is_bool, promote, result_type
from minigrad._validation import TensorError
from minigrad.autograd import Context, Function
from minigrad.devices import array_module, move_array
from minigrad.functions.broadcast import broadcast_check, shape_of, unbroadcast


class Add(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        broadcast_check("add", a, b)
        ctx.shapes = (shape_of(a), shape_of(b))
        a, b = promote(a, b)
        return a + b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return unbroadcast(grad, ctx.shapes[0]), unbroadcast(grad, ctx.shapes[1])


class Sub(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        broadcast_check("sub", a, b)
        ctx.shapes = (shape_of(a), shape_of(b))
        if is_bool(a) or is_bool(b):
            raise TensorError("subtraction with a bool tensor is not supported (as in torch); to invert a mask "
                              "use ~ or logical_not")
        a, b = promote(a, b)
        return a - b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return unbroadcast(grad, ctx.shapes[0]), unbroadcast(-grad, ctx.shapes[1])


class Neg(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return -a

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return -grad


class Mul(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        broadcast_check("mul", a, b)
        ctx.save_for_backward(a, b)
        a, b = promote(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad * b, shape_of(a)) if need_a else None,
                unbroadcast(grad * a, shape_of(b)) if need_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        broadcast_check("div", a, b)
        ctx.save_for_backward(a, b)
        dtype = result_type(a, b)
        a, b = promote(a, b, dtype if dtype.kind in "fc" else DEFAULT_DTYPE)  # true division, as in torch
        return a / b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad / b, shape_of(a)) if need_a else None,
                unbroadcast(-grad * a / (b * b), shape_of(b)) if need_b else None)


class Pow(Function):
    """a ** b, either side a tensor or a constant."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        broadcast_check("pow", a, b)
        out = _power(*promote(a, b), scalar_exponent=not hasattr(b, "ndim") or isinstance(b, np.generic))
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = unbroadcast(grad * b * a ** (b - 1), shape_of(a)) if need_a else None
        grad_b = unbroadcast(grad * out * array_module(out).log(a), shape_of(b)) if need_b else None
        return grad_a, grad_b


def _power(a: Any, b: Any, scalar_exponent: bool) -> Any:
    """a ** b; for integers, a negative scalar exponent is an error and a negative tensor exponent gives
    torch's answers (1 for a base of 1, ±1 for -1, otherwise 0)."""
    if not hasattr(a, "dtype"):  # a Python number's power of a tensor
        return a ** b
    if a.dtype == np.bool_:
        if not scalar_exponent:
            raise TensorError('"pow" is not implemented for bool tensors (as in torch)')
        return a | ~b  # x ** True is x, x ** False is True
    if a.dtype.kind not in "iu":
        return a ** b
    xp = array_module(a)
    negative = b < 0
    if not xp.any(negative):
        return a ** b
    if scalar_exponent:
        raise TensorError("integers to negative integer powers are not allowed")
    out = a ** xp.where(negative, 0, b)
    odd = (b % 2) != 0
    small = xp.where(a == 1, 1, xp.where(a == -1, xp.where(odd, -1, 1), 0)).astype(out.dtype)
    return xp.where(negative, small, out)


class Exp(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        a = floating(a)
        out = array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad * ctx.saved_tensors[0]


class Log(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).log(floating(a))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad / ctx.saved_tensors[0]


class Tanh(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        a = floating(a)
        out = array_module(a).tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        a = floating(a)
        out = sigmoid(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * out * (1 - out)


class Relu(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a > 0)
        return array_module(a).maximum(a, 0)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad * ctx.saved_tensors[0]


class Abs(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).abs(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad * array_module(grad).sign(ctx.saved_tensors[0])


class Clamp(Function):
    """min(max(a, lo), hi); the gradient passes where lo <= a <= hi (torch's rule at the bounds)."""

    @staticmethod
    def forward(ctx: Context, a: Any, lo: Any, hi: Any) -> Any:
        ctx.save_for_backward(a)
        ctx.lo, ctx.hi = lo, hi
        return array_module(a).clip(a, lo, hi).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        inside = True
        if ctx.lo is not None:
            inside = inside & (a >= ctx.lo)
        if ctx.hi is not None:
            inside = inside & (a <= ctx.hi)
        return grad * inside


class Clone(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return a.copy()

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad


class Cast(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dtype: Any) -> Any:
        ctx.in_dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad.astype(ctx.in_dtype)


class ToDevice(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, device: str) -> Any:
        ctx.device = "cpu" if array_module(a) is np else "cuda"
        return move_array(a, device)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return move_array(grad, ctx.device)
