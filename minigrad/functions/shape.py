"""Ops that move elements without computing new values: reshape, permute, indexing, scatter, stack, cat."""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad._promotion import result_type
from minigrad._validation import TensorError
from minigrad.autograd import Context, Function, IndexGrad
from minigrad.devices import array_module


class Reshape(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, shape: tuple) -> Any:
        ctx.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise TensorError(f"reshape: cannot view shape {a.shape} ({a.size} elements) as {shape}") from None

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad.reshape(ctx.shape)


class Permute(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, axes: tuple) -> Any:
        ctx.axes = axes
        return a.transpose(axes)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad.transpose(np.argsort(ctx.axes))


def _is_basic(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


class GetItem(Function):
    """Indexing with ints, slices, None, Ellipsis and integer/bool arrays; repeated indices accumulate.

    `unique=True` (the library's own gathers: packing, reversing, reading h_n) promises that no element is
    picked twice, so backward adds in place with one fancy assignment instead of sorting for repeats."""

    @staticmethod
    def forward(ctx: Context, a: Any, index: Any, unique: bool = False) -> Any:
        ctx.shape, ctx.index, ctx.unique = a.shape, index, unique
        return a[index]

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return IndexGrad(ctx.shape, ctx.index, grad, ctx.unique or _is_basic(ctx.index)), None


class Scatter(Function):
    """Zeros of `shape` with `a` put at `index` (no element twice): the adjoint of a unique gather."""

    @staticmethod
    def forward(ctx: Context, a: Any, index: Any, shape: tuple) -> Any:
        out = array_module(a).zeros(shape, dtype=a.dtype)
        out[index] = a
        ctx.index = index
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad[ctx.index]


class EmbeddingLookup(Function):
    """weight[idx] for integer idx; rows at `padding_idx` send no gradient back (as torch's Embedding)."""

    @staticmethod
    def forward(ctx: Context, weight: Any, idx: Any, padding_idx: int | None) -> Any:
        ctx.shape, ctx.idx, ctx.padding_idx = weight.shape, idx, padding_idx
        return weight[idx]

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        if ctx.padding_idx is not None:
            grad = grad * (ctx.idx != ctx.padding_idx)[..., None]
        return IndexGrad(ctx.shape, ctx.idx, grad, basic=False), None


class Stack(Function):
    @staticmethod
    def forward(ctx: Context, *arrays: Any, dim: int) -> Any:
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise TensorError(f"stack expects each tensor to be equal size, got {sorted(shapes)}")
        dim = dim % (arrays[0].ndim + 1)
        ctx.dim, ctx.count = dim, len(arrays)
        dtype = result_type(*arrays)
        return array_module(arrays[0]).stack([a.astype(dtype, copy=False) for a in arrays], axis=dim)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        lead = (slice(None),) * ctx.dim
        return tuple(grad[lead + (i,)] for i in range(ctx.count))  # views: xp.take would copy the whole array


class Cat(Function):
    @staticmethod
    def forward(ctx: Context, *arrays: Any, dim: int) -> Any:
        dim = dim % max(arrays[0].ndim, 1)
        rest = {a.shape[:dim] + a.shape[dim + 1:] for a in arrays}
        if len(rest) != 1 or any(a.ndim != arrays[0].ndim for a in arrays):
            raise TensorError(f"cat: shapes {[a.shape for a in arrays]} differ outside dim {dim}")
        ctx.dim = dim
        ctx.bounds = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        dtype = result_type(*arrays)
        return array_module(arrays[0]).concatenate([a.astype(dtype, copy=False) for a in arrays], axis=dim)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return tuple(array_module(grad).split(grad, ctx.bounds, axis=ctx.dim))
