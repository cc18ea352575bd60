"""Elementwise ops: arithmetic with torch's type promotion, the activations, clamp, casts and device moves.

`forward` receives raw arrays (NumPy or CuPy) for Tensor inputs and constants as they are; `backward` returns
one gradient per positional input (None for constants), summed back to the input's shape by `unbroadcast`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad._promotion import default_dtype, floating, is_bool, promote, result_type
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
        need_a, need_b = ctx.needs_input_grad
        ctx.shapes = (shape_of(a), shape_of(b))
        ctx.save_for_backward(a if need_b else None, b if need_a else None)  # each factor only for the other
        a, b = promote(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad * b, ctx.shapes[0]) if need_a else None,
                unbroadcast(grad * a, ctx.shapes[1]) if need_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        broadcast_check("div", a, b)
        need_a, need_b = ctx.needs_input_grad
        ctx.shapes = (shape_of(a), shape_of(b))
        ctx.save_for_backward(a if need_b else None, b)
        dtype = result_type(a, b)
        a, b = promote(a, b, dtype if dtype.kind in "fc" else default_dtype())  # true division, as in torch
        return a / b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad / b, ctx.shapes[0]) if need_a else None,
                unbroadcast(-grad * a / (b * b), ctx.shapes[1]) if need_b else None)


class RoundedDiv(Function):
    """a / b rounded toward zero ("trunc") or down ("floor"), in the promoted dtype; piecewise constant, so both
    gradients are 0 (torch's div with a rounding_mode)."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any, mode: str) -> Any:
        broadcast_check("div", a, b)
        ctx.shapes = (shape_of(a), shape_of(b))
        a, b = promote(a, b)
        xp = array_module(a)
        if mode == "floor":
            return xp.asarray(a // b)
        if a.dtype.kind in "fc":
            return xp.trunc(a / b)
        quotient = a // b  # an exact integer floor: one below the truncation where the division leaves a remainder
        return quotient + ((quotient < 0) & (quotient * b != a))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        xp = array_module(grad)
        return tuple(xp.zeros(shape, grad.dtype) if need else None
                     for shape, need in zip(ctx.shapes, ctx.needs_input_grad))


class Pow(Function):
    """a ** b, either side a tensor or a constant."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        broadcast_check("pow", a, b)
        out = _power(*promote(a, b), scalar_exponent=not hasattr(b, "ndim") or isinstance(b, np.generic))
        need_a, need_b = ctx.needs_input_grad
        ctx.shapes = (shape_of(a), shape_of(b))
        ctx.save_for_backward(a, b if need_a else None, out if need_b else None)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = unbroadcast(grad * b * a ** (b - 1), ctx.shapes[0]) if need_a else None
        grad_b = unbroadcast(grad * out * array_module(out).log(a), ctx.shapes[1]) if need_b else None
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


class Log1p(Function):
    """log(1 + a), exact for small a."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).log1p(floating(a))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad / (1 + ctx.saved_tensors[0])


class Expm1(Function):
    """exp(a) − 1, exact for small a."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).expm1(floating(a))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad * (ctx.saved_tensors[0] + 1)


_c_erf = np.frompyfunc(math.erf, 1, 1)


class Erf(Function):
    """erf(a) = 2/√π ∫₀^a exp(−t²) dt; gradient 2/√π exp(−a²). NumPy has no erf: on the CPU each element goes
    through the C library's erf in float64 and is rounded to a's dtype; CuPy's cupyx.scipy.special.erf on a GPU."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        a = floating(a)
        ctx.save_for_backward(a)
        xp = array_module(a)
        if xp is np:
            return np.asarray(_c_erf(a), dtype=np.float64).astype(a.dtype)
        from cupyx.scipy.special import erf
        return erf(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad * (2.0 / math.sqrt(math.pi)) * array_module(a).exp(-(a * a))


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


class LogSigmoid(Function):
    """log(sigmoid(a)) = min(a, 0) − log1p(exp(−|a|)): exact and finite for any a; the gradient is sigmoid(−a)."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        a = floating(a)
        xp = array_module(a)
        ctx.save_for_backward(a)
        return xp.minimum(a, 0) - xp.log1p(xp.exp(-xp.abs(a)))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad * sigmoid(-ctx.saved_tensors[0])


class Silu(Function):
    """a · sigmoid(a); the gradient sigmoid(a)·(1 + a·(1 − sigmoid(a)))."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        a = floating(a)
        ctx.save_for_backward(a)
        return a * sigmoid(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        s = sigmoid(a)
        return grad * s * (1 + a * (1 - s))


class Elu(Function):
    """a where a >= 0, else alpha·(exp(a) − 1); the gradient is read from the result, as torch's elu_ does."""

    @staticmethod
    def forward(ctx: Context, a: Any, alpha: float) -> Any:
        a = floating(a)
        xp = array_module(a)
        # a zero stays itself (-0.0 too), as in torch
        out = xp.where(a >= 0, a, alpha * xp.expm1(xp.minimum(a, 0))).astype(a.dtype, copy=False)
        ctx.alpha = alpha
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * array_module(out).where(out > 0, 1, out + ctx.alpha)


class Relu(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).maximum(a, 0)
        ctx.save_for_backward(out)  # torch saves the result
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad * (ctx.saved_tensors[0] > 0)


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


class Rounding(Function):
    """floor, ceil, round (halves to even, as torch.round) or trunc: piecewise constant, so the gradient is 0."""

    @staticmethod
    def forward(ctx: Context, a: Any, how: str) -> Any:
        if a.dtype.kind in "iub":  # an integer is its own floor, ceiling and rounding
            return a.copy()
        return getattr(array_module(a), how)(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return array_module(grad).zeros_like(grad)


class Remainder(Function):
    """a % b with the sign of b (Python's and torch's rule); the gradient is 1 for a and -floor(a / b) for b."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        broadcast_check("remainder", a, b)
        ctx.shapes = (shape_of(a), shape_of(b))
        a, b = promote(a, b)
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b)
        return a % b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        need_a, need_b = ctx.needs_input_grad
        grad_b = None
        if need_b:
            a, b = ctx.saved_tensors
            grad_b = unbroadcast(-grad * array_module(grad).floor(a / b), ctx.shapes[1])
        return (unbroadcast(grad, ctx.shapes[0]) if need_a else None), grad_b


class Extremum(Function):
    """The elementwise maximum (or minimum) of a and b, NaN where either is NaN; where they tie, each gets half
    of the gradient (torch's rule)."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any, largest: bool) -> Any:
        broadcast_check("maximum" if largest else "minimum", a, b)
        ctx.shapes, ctx.largest = (shape_of(a), shape_of(b)), largest
        a, b = promote(a, b)
        ctx.save_for_backward(a, b)
        xp = array_module(a)
        return xp.maximum(a, b) if largest else xp.minimum(a, b)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        a_wins, b_wins = (a > b, b > a) if ctx.largest else (a < b, b < a)
        half_ties = (a == b) * 0.5
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad * (a_wins + half_ties), ctx.shapes[0]) if need_a else None,
                unbroadcast(grad * (b_wins + half_ties), ctx.shapes[1]) if need_b else None)


class Clone(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return a.copy(order="C")

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


class Sqrt(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).sqrt(floating(a))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad / (2 * ctx.saved_tensors[0])


class Sin(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).sin(floating(a))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad * array_module(grad).cos(ctx.saved_tensors[0])


class Cos(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).cos(floating(a))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return -grad * array_module(grad).sin(ctx.saved_tensors[0])


def _as_mask(mask: Any, op: str) -> Any:
    if not hasattr(mask, "dtype") or mask.dtype != np.bool_:
        raise TensorError(f"{op} expected a boolean mask (condition), got "
                          f"{getattr(mask, 'dtype', type(mask).__name__)}")
    return mask


class Where(Function):
    """torch.where(condition, a, b): a where the condition holds, else b; the three broadcast together and a, b
    promote as in arithmetic. The gradient goes to a where the condition holds, to b elsewhere."""

    @staticmethod
    def forward(ctx: Context, cond: Any, a: Any, b: Any) -> Any:
        cond = _as_mask(cond, "where")
        broadcast_check("where", a, b)
        broadcast_check("where", cond, a)
        broadcast_check("where", cond, b)
        ctx.save_for_backward(cond)
        ctx.shapes = (shape_of(a), shape_of(b))
        a, b = promote(a, b)
        return array_module(a).where(cond, a, b)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        (cond,) = ctx.saved_tensors
        _, need_a, need_b = ctx.needs_input_grad
        xp = array_module(grad)
        return (None, unbroadcast(xp.where(cond, grad, 0), ctx.shapes[0]) if need_a else None,
                unbroadcast(xp.where(cond, 0, grad), ctx.shapes[1]) if need_b else None)


class MaskedFill(Function):
    """a with `value` where `mask` holds (the mask broadcasts to a; a keeps its dtype). A 0-d tensor value gets
    the sum of the gradient over the filled places."""

    @staticmethod
    def forward(ctx: Context, a: Any, mask: Any, value: Any) -> Any:
        mask = _as_mask(mask, "masked_fill")
        if hasattr(value, "ndim") and value.ndim != 0:
            raise TensorError(f"masked_fill only supports a 0-dimensional value tensor, but got tensor with "
                              f"{value.ndim} dimension(s)")
        try:
            np.broadcast_shapes(mask.shape, a.shape)
        except ValueError:
            raise TensorError(f"masked_fill: the mask of shape {mask.shape} does not broadcast to the tensor's "
                              f"shape {a.shape}") from None
        if np.broadcast_shapes(mask.shape, a.shape) != a.shape:
            raise TensorError(f"masked_fill: the mask of shape {mask.shape} would expand the tensor of shape "
                              f"{a.shape}")
        ctx.save_for_backward(mask)
        xp = array_module(a)
        return xp.where(mask, xp.asarray(value).astype(a.dtype), a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        (mask,) = ctx.saved_tensors
        need_a, _, need_value = ctx.needs_input_grad
        xp = array_module(grad)
        return (xp.where(mask, 0, grad) if need_a else None, None,
                xp.where(mask, grad, 0).sum() if need_value else None)


class Fill(Function):
    """An array of a's shape and dtype holding `value` broadcast (fill_, zero_, copy_, the random fills): a's old
    values get a zero gradient; a tensor value gets the gradient summed back to its shape."""

    @staticmethod
    def forward(ctx: Context, a: Any, value: Any) -> Any:
        xp = array_module(a)
        value = xp.asarray(value)
        try:
            out = xp.broadcast_to(value, a.shape)
        except ValueError:
            raise TensorError(f"the source of shape {value.shape} does not broadcast to the tensor's shape "
                              f"{a.shape}") from None
        ctx.shape = value.shape
        return out.astype(a.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        need_a, need_value = ctx.needs_input_grad
        return (array_module(grad).zeros_like(grad) if need_a else None,  # torch sends zeros, not nothing
                unbroadcast(grad, ctx.shape) if need_value else None)


class TriangleMask(Function):
    """triu / tril: the elements on and above (upper) or on and below (lower) the `diagonal`-th diagonal of the
    last two dims; the others are 0, and so is their gradient."""

    @staticmethod
    def forward(ctx: Context, a: Any, diagonal: int, upper: bool) -> Any:
        if a.ndim < 2:
            raise TensorError(f"{'triu' if upper else 'tril'}: input tensor must have at least 2 dimensions")
        ctx.diagonal, ctx.upper = diagonal, upper
        xp = array_module(a)
        return (xp.triu if upper else xp.tril)(a, diagonal)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xp = array_module(grad)
        return (xp.triu if ctx.upper else xp.tril)(grad, ctx.diagonal)
