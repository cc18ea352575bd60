"""Ops that move elements without computing new values: reshape, permute, indexing, scatter, stack, cat."""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad._promotion import result_type
from minigrad._validation import TensorError, check_dims
from minigrad.autograd import Context, Function, IndexGrad, scatter_add
from minigrad.devices import array_module
from minigrad.functions.broadcast import shape_of, unbroadcast


class Reshape(Function):
    """a with another shape: a view where the layout allows, else a copy; with `strict` (torch's view) a copy
    is refused."""

    view = True

    @staticmethod
    def forward(ctx: Context, a: Any, shape: tuple, strict: bool = False) -> Any:
        ctx.shape = a.shape
        try:
            out = a.reshape(shape)
        except ValueError:
            raise TensorError(f"shape '{list(shape)}' is invalid for input of size {a.size}") from None
        if strict and out.size and not array_module(a).may_share_memory(out, a):
            raise TensorError("view size is not compatible with input tensor's size and stride (at least one "
                              "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad.reshape(ctx.shape)


class Permute(Function):
    view = True

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
    picked twice, so backward adds in place with one fancy assignment instead of sorting for repeats. A basic
    index gives a view (an element too: a 0-d view, as in torch)."""

    view = True

    @staticmethod
    def forward(ctx: Context, a: Any, index: Any, unique: bool = False) -> Any:
        ctx.shape, ctx.index, ctx.unique = a.shape, index, unique
        if _is_basic(index):
            parts = index if isinstance(index, tuple) else (index,)
            if Ellipsis not in parts:
                return a[parts + (Ellipsis,)]  # an array even when every dim is indexed by an int
        return a[index]

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return IndexGrad(ctx.shape, ctx.index, grad, ctx.unique or _is_basic(ctx.index)), None


class Place(Function):
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
    """weight[idx] for integer idx; rows at `padding_idx` send no gradient back, and with `scale_grad_by_freq`
    each row's gradient is divided by the number of times idx holds it (as torch's Embedding)."""

    @staticmethod
    def forward(ctx: Context, weight: Any, idx: Any, padding_idx: int | None, scale_grad_by_freq: bool) -> Any:
        ctx.shape, ctx.idx, ctx.padding_idx, ctx.by_freq = weight.shape, idx, padding_idx, scale_grad_by_freq
        return weight[idx]

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        if ctx.padding_idx is not None:
            grad = grad * (ctx.idx != ctx.padding_idx)[..., None]
        if ctx.by_freq:
            counts = array_module(grad).bincount(ctx.idx.ravel())  # long enough for every index in idx
            grad = grad / counts[ctx.idx][..., None].astype(grad.dtype)
        return IndexGrad(ctx.shape, ctx.idx, grad, basic=False), None


class Stack(Function):
    @staticmethod
    def forward(ctx: Context, *arrays: Any, dim: int) -> Any:
        (dim,) = check_dims(dim, arrays[0].ndim + 1)
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise TensorError(f"stack expects each tensor to be equal size, got {sorted(shapes)}")
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
        other = next((a.ndim for a in arrays if a.ndim != arrays[0].ndim), None)
        if other is not None:
            raise TensorError(f"Tensors must have same number of dimensions: got {arrays[0].ndim} and {other}")
        (dim,) = check_dims(dim, arrays[0].ndim)
        if len({a.shape[:dim] + a.shape[dim + 1:] for a in arrays}) != 1:
            raise TensorError(f"cat: shapes {[a.shape for a in arrays]} differ outside dim {dim}")
        ctx.dim = dim
        ctx.bounds = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        dtype = result_type(*arrays)
        return array_module(arrays[0]).concatenate([a.astype(dtype, copy=False) for a in arrays], axis=dim)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return tuple(array_module(grad).split(grad, ctx.bounds, axis=ctx.dim))


class Expand(Function):
    """a broadcast to `shape` (a read-only view, as torch's expand); the gradient is summed back."""

    view = True

    @staticmethod
    def forward(ctx: Context, a: Any, shape: tuple) -> Any:
        lead = len(shape) - a.ndim
        if lead < 0:
            raise TensorError(f"expand: the number of sizes provided ({len(shape)}) must be greater or equal to the "
                              f"number of dimensions in the tensor ({a.ndim})")
        target = tuple(a.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
        for i, n in enumerate(target):
            if n < 0 or (i >= lead and a.shape[i - lead] not in (1, n)):
                raise TensorError(f"expand: the expanded size of the tensor ({n}) must match the existing size "
                                  f"({a.shape[i - lead] if i >= lead else 'new'}) at non-singleton dimension {i}; "
                                  f"target sizes {list(shape)}, tensor sizes {list(a.shape)}")
        ctx.shape = a.shape
        return array_module(a).broadcast_to(a, target)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return unbroadcast(grad, ctx.shape)


class Repeat(Function):
    """a tiled `repeats` times along each dim (torch's repeat: more repeats than dims adds leading dims)."""

    @staticmethod
    def forward(ctx: Context, a: Any, repeats: tuple) -> Any:
        if len(repeats) < a.ndim:
            raise TensorError(f"repeat: number of dimensions of repeat dims ({len(repeats)}) can not be smaller "
                              f"than number of dimensions of tensor ({a.ndim})")
        if any(r < 0 for r in repeats):
            raise TensorError(f"repeat: repeats must be non-negative, got {list(repeats)}")
        shape = (1,) * (len(repeats) - a.ndim) + a.shape
        ctx.shape, ctx.padded, ctx.repeats = a.shape, shape, repeats
        return array_module(a).tile(a.reshape(shape), repeats)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        split = []
        for r, n in zip(ctx.repeats, ctx.padded):
            split += [r, n]
        summed = grad.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return summed.reshape(ctx.shape)


class Flip(Function):
    """a reversed along `dims` (a copy, as torch's flip)."""

    @staticmethod
    def forward(ctx: Context, a: Any, dims: tuple) -> Any:
        ctx.dims = dims
        return array_module(a).flip(a, dims).copy()

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return array_module(grad).flip(grad, ctx.dims)


def _along(index: Any, dim: int) -> tuple:
    """The fancy index that picks index[i0, ..., ik] along `dim` at every other position (gather's meaning)."""
    xp = array_module(index)
    grids = [xp.arange(n).reshape((1,) * d + (n,) + (1,) * (index.ndim - d - 1)) for d, n in enumerate(index.shape)]
    grids[dim] = index
    return tuple(grids)


def check_gather_index(op: str, a: Any, dim: int, index: Any, src_shape: tuple | None = None) -> None:
    """torch's rules for gather and scatter: an int64 index with a's number of dims, no larger than a (and than
    src) outside `dim`, and every value in [0, size) along `dim` (unlike indexing, no negative index)."""
    if not hasattr(index, "dtype") or index.dtype != np.int64:
        raise TensorError(f"{op}(): Expected dtype int64 for index, got {getattr(index, 'dtype', type(index))}")
    if index.ndim != a.ndim:
        raise TensorError(f"{op}(): Index tensor must have the same number of dimensions as input tensor")
    for d in range(a.ndim):
        if d != dim and index.shape[d] > a.shape[d]:
            raise TensorError(f"{op}(): Size does not match at dimension {d} expected index {list(index.shape)} to "
                              f"be no larger than self {list(a.shape)} apart from dimension {dim}")
        if src_shape is not None and index.shape[d] > src_shape[d]:
            raise TensorError(f"{op}(): Expected index {list(index.shape)} to be no larger than src "
                              f"{list(src_shape)}")
    if index.size:
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= a.shape[dim]:
            raise TensorError(f"{op}(): index {lo if lo < 0 else hi} is out of bounds for dimension {dim} with size "
                              f"{a.shape[dim]}")


class Gather(Function):
    """out[i][j][k] = a[index[i][j][k]][j][k] along dim 0 (and likewise for any `dim`); repeats accumulate."""

    @staticmethod
    def forward(ctx: Context, a: Any, dim: int, index: Any) -> Any:
        check_gather_index("gather", a, dim, index)
        ctx.shape, ctx.where = a.shape, _along(index, dim)
        return a[ctx.where]

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return IndexGrad(ctx.shape, ctx.where, grad, basic=False), None, None


class Scatter(Function):
    """a with src written at index along `dim` (out-of-place scatter; with reduce="add", scatter_add). The
    gradient reaches a where nothing was written (everywhere, for add), and src gathered from the same places."""

    @staticmethod
    def forward(ctx: Context, a: Any, dim: int, index: Any, src: Any, add: bool = False) -> Any:
        src_shape = getattr(src, "shape", None)
        check_gather_index("scatter_add" if add else "scatter", a, dim, index, src_shape if src_shape else None)
        where = _along(index, dim)
        xp = array_module(a)
        values = src[tuple(slice(0, n) for n in index.shape)] if src_shape else xp.asarray(src)
        out = a.copy()
        if add:
            xp.add.at(out, where, xp.broadcast_to(values, index.shape).astype(a.dtype))
        else:
            out[where] = values
        ctx.where, ctx.add, ctx.index_shape, ctx.src_shape = where, add, index.shape, src_shape
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        need_a, _, _, need_src = ctx.needs_input_grad  # (a, dim, index, src)
        grad_a = grad_src = None
        if need_a:
            grad_a = grad
            if not ctx.add:
                grad_a = grad.copy()
                grad_a[ctx.where] = 0
        if need_src:
            picked = grad[ctx.where]
            grad_src = array_module(grad).zeros(ctx.src_shape, dtype=grad.dtype)
            grad_src[tuple(slice(0, n) for n in ctx.index_shape)] = picked
        return grad_a, None, None, grad_src

    @staticmethod
    def refuses_any_overlap(**kwargs: Any) -> bool:
        return True


class AddAt(Function):
    """a with `values` added at an advanced `index` (integer arrays; repeated places add up), as torch's
    index_put_ with accumulate=True. The gradient is grad for a, and grad gathered from the places for values."""

    @staticmethod
    def forward(ctx: Context, a: Any, values: Any, index: Any) -> Any:
        out = a.copy()
        xp = array_module(a)
        try:
            spread = xp.broadcast_to(xp.asarray(values, dtype=a.dtype), out[index].shape)
        except ValueError as err:
            raise TensorError(f"index_put_: shape mismatch: values of shape {list(shape_of(values))} cannot be "
                              f"broadcast to indexing result of shape {list(out[index].shape)} ({err})") from None
        scatter_add(out, index, spread)
        ctx.index, ctx.values_shape = index, shape_of(values)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        need_a, need_values = ctx.needs_input_grad
        return grad if need_a else None, unbroadcast(grad[ctx.index], ctx.values_shape) if need_values else None

    @staticmethod
    def refuses_any_overlap(**kwargs: Any) -> bool:
        return True


class SetItem(Function):
    """a[index] = value (the in-place op behind `x[i] = v`): written into a's own array. The gradient reaches a
    where nothing was written, and the value gathered from the written places (summed where it broadcast)."""

    @staticmethod
    def forward(ctx: Context, a: Any, value: Any, index: Any) -> Any:
        value_shape = getattr(value, "shape", ())
        if isinstance(a, np.ndarray) and not a.flags.writeable:
            raise TensorError("setitem: the tensor's array is read-only")
        try:
            a[index] = value.astype(a.dtype, copy=False) if hasattr(value, "astype") else value
        except ValueError as err:
            raise TensorError(f"setitem: shape mismatch: value tensor of shape {list(value_shape)} cannot be "
                              f"broadcast to indexing result ({err})") from None
        ctx.index, ctx.value_shape = index, value_shape
        return a

    @staticmethod
    def written(a: Any, index: Any = None) -> Any:
        return a[index] if _is_basic(index) else a

    @staticmethod
    def refuses_any_overlap(index: Any = None) -> bool:
        return not _is_basic(index)  # an advanced index is torch's index_put_

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        need_a, need_value = ctx.needs_input_grad  # (a, value)
        grad_a = grad_value = None
        if need_a:
            grad_a = array_module(grad).array(grad)  # a copy, and an array even where grad is a NumPy scalar
            grad_a[ctx.index] = 0
        if need_value:
            grad_value = unbroadcast(grad[ctx.index], ctx.value_shape)
        return grad_a, grad_value
