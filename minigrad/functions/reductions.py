"""Reductions: sums, maxima, and the softmax family (which reduce along a dim inside)."""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad.autograd import Context, Function
from minigrad.devices import array_module


class Sum(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dim: tuple | None, keepdim: bool) -> Any:
        ctx.shape, ctx.dim, ctx.keepdim = a.shape, dim, keepdim
        return a.sum(axis=dim, keepdims=keepdim)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xp = array_module(grad)
        if ctx.dim is not None and not ctx.keepdim:
            grad = xp.expand_dims(grad, ctx.dim)
        return xp.broadcast_to(grad, ctx.shape)


class Norm(Function):
    """(Σ|a|^p)^(1/p) over `dim` (all elements for None) for a finite p ≠ 0, or the count of non-zeros for p = 0.
    The gradient is sign(a)·|a|^(p−1) · grad / norm^(p−1) (sign(a)·grad for p = 1), and 0 where the norm or the
    element is 0 (torch's subgradient: the formula gives 0/0 or 0·inf there)."""

    @staticmethod
    def forward(ctx: Context, a: Any, p: float, dim: tuple | None, keepdim: bool) -> Any:
        xp = array_module(a)
        if p == 0.0:
            out = (a != 0).sum(axis=dim, keepdims=True).astype(a.dtype)
        elif p == 1.0:
            out = xp.abs(a).sum(axis=dim, keepdims=True)
        elif p == 2.0:
            out = xp.sqrt((a * a).sum(axis=dim, keepdims=True))
        else:
            out = (xp.abs(a) ** p).sum(axis=dim, keepdims=True) ** (1.0 / p)
        ctx.p, ctx.dim, ctx.keepdim = p, dim, keepdim
        ctx.save_for_backward(a, out)
        return out if keepdim else out.squeeze(axis=dim)  # dim None: every axis, all of size 1

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, out = ctx.saved_tensors
        xp, p = array_module(a), ctx.p
        grad = grad.reshape(out.shape)  # the reduced dims back, as size 1
        if p == 0.0:
            return xp.zeros_like(a)
        if p == 1.0:
            return xp.sign(a) * grad
        safe = xp.where(out == 0, 1, out)
        if p == 2.0:
            scaled = a * grad / safe
        else:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0^(p-1) = inf for p < 1: masked just below
                scaled = xp.where(a == 0, 0, xp.sign(a) * xp.abs(a) ** (p - 1) * grad / safe ** (p - 1))
        return xp.where(out == 0, 0, scaled)


class Amax(Function):
    """The largest (`largest`) or smallest elements over `dim` (every element for None); ties share the gradient
    evenly (torch's rule for amax, amin and a full max or min)."""

    @staticmethod
    def forward(ctx: Context, a: Any, dim: tuple | None, keepdim: bool, largest: bool) -> Any:
        out = (a.max if largest else a.min)(axis=dim, keepdims=True)
        ctx.dim, ctx.keepdim = dim, keepdim
        ctx.save_for_backward(a, out)
        return out if keepdim else out.squeeze(axis=dim)  # dim None: every axis, all of size 1

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, out = ctx.saved_tensors
        mask = a == out
        share = grad.reshape(out.shape) / mask.sum(axis=ctx.dim, keepdims=True).astype(grad.dtype)
        return mask * share


class Prod(Function):
    """The product over `dim` (every element for None). The gradient of each element is the product of the
    others, formed as (product of those before it) x (product of those after it) along the dim: exact where
    elements are zero, no division."""

    @staticmethod
    def forward(ctx: Context, a: Any, dim: int | None, keepdim: bool, dtype: Any = None) -> Any:
        xp = array_module(a)
        ctx.dim, ctx.keepdim, ctx.shape = dim, keepdim, a.shape
        ctx.save_for_backward(a)
        if dim is None:
            return xp.asarray(a.prod(dtype=dtype))
        return a.prod(axis=dim, keepdims=keepdim, dtype=dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        xp = array_module(grad)
        axis = 0 if ctx.dim is None else ctx.dim
        x = xp.moveaxis((a.reshape(-1) if ctx.dim is None else a).astype(grad.dtype, copy=False), axis, 0)
        before, after = xp.ones_like(x), xp.ones_like(x)
        before[1:] = xp.cumprod(x[:-1], axis=0)  # empty slices for a dim of size 0 or 1
        after[:-1] = xp.flip(xp.cumprod(xp.flip(x[1:], 0), axis=0), 0)
        others = xp.moveaxis(before * after, 0, axis)
        if ctx.dim is None:
            return (others * grad).reshape(ctx.shape)
        return others * (grad if ctx.keepdim else xp.expand_dims(grad, ctx.dim))


class MaxDim(Function):
    """Largest element along `dim`; the gradient goes to the index `argmax` picks."""

    @staticmethod
    def forward(ctx: Context, a: Any, dim: int, keepdim: bool) -> Any:
        xp = array_module(a)
        idx = xp.expand_dims(a.argmax(axis=dim), dim)
        ctx.shape, ctx.dim, ctx.keepdim, ctx.idx = a.shape, dim, keepdim, idx
        out = xp.take_along_axis(a, idx, axis=dim)
        return out if keepdim else out.squeeze(dim)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xp = array_module(grad)
        if not ctx.keepdim:
            grad = xp.expand_dims(grad, ctx.dim)
        out = xp.zeros(ctx.shape, dtype=grad.dtype)
        xp.put_along_axis(out, ctx.idx, grad, axis=ctx.dim)
        return out


def _log_softmax(a: Any, dim: int) -> Any:
    xp = array_module(a)
    if a.size == 0:  # no row to take the max of
        return a.copy()
    shifted = a - a.max(axis=dim, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dim: int) -> Any:
        out = _log_softmax(a, dim)
        ctx.dim = dim
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad - array_module(out).exp(out) * grad.sum(axis=ctx.dim, keepdims=True)


class Softmax(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dim: int) -> Any:
        out = array_module(a).exp(_log_softmax(a, dim))
        ctx.dim = dim
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return out * (grad - (grad * out).sum(axis=ctx.dim, keepdims=True))


class Cumsum(Function):
    """Running sums along `dim`; the gradient is the running sum of the gradient taken from the other end."""

    @staticmethod
    def forward(ctx: Context, a: Any, dim: int, dtype: Any = None) -> Any:
        ctx.dim = dim
        return array_module(a).cumsum(a, axis=dim, dtype=dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xp = array_module(grad)
        return xp.flip(xp.cumsum(xp.flip(grad, ctx.dim), axis=ctx.dim), ctx.dim)


class Cumprod(Function):
    """Running products along `dim`. Backward without dividing by the input (zeros are exact): with P_k the
    product of the elements before k and R_k = g_k + a_{k+1} R_{k+1} (from the far end), grad_k = P_k R_k."""

    @staticmethod
    def forward(ctx: Context, a: Any, dim: int, dtype: Any = None) -> Any:
        ctx.dim = dim
        ctx.save_for_backward(a)
        return array_module(a).cumprod(a, axis=dim, dtype=dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        xp = array_module(grad)
        a = xp.moveaxis(a.astype(grad.dtype, copy=False), ctx.dim, 0)
        g = xp.moveaxis(grad, ctx.dim, 0)
        n = a.shape[0]
        before = xp.ones_like(g)  # P_k: the product of a_0 .. a_{k-1}
        before[1:] = xp.cumprod(a[:-1], axis=0)  # empty slices for n = 0 or 1
        rest = xp.empty_like(g)  # R_k
        carry = xp.zeros_like(g[0]) if n else None
        for k in range(n - 1, -1, -1):
            carry = g[k] + (a[k + 1] * carry if k + 1 < n else 0)
            rest[k] = carry
        return xp.moveaxis(before * rest, 0, ctx.dim)
