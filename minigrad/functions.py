"""Every differentiable op: forward and backward side by side, one rule each.

`forward` receives raw arrays (NumPy or CuPy) for Tensor inputs and constants as they are; `backward` returns
one gradient per positional input (None for constants). Broadcasting in forward is undone in backward by
`unbroadcast`, the one place that knows how.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad.tensor import DEFAULT_DTYPE, Context, Function, IndexGrad, TensorError, array_module


def unbroadcast(grad: Any, shape: tuple) -> Any:
    """Sum `grad` down to `shape`: the adjoint of NumPy broadcasting `shape` up to `grad.shape`."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def _shape(x: Any) -> tuple:
    return np.shape(x) if not hasattr(x, "shape") else x.shape


def _broadcast_check(op: str, a: Any, b: Any) -> None:
    sa, sb = _shape(a), _shape(b)
    if sa == sb or not sa or not sb:  # the common cases, without asking NumPy
        return
    try:
        np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise TensorError(f"{op}: shapes {_shape(a)} and {_shape(b)} cannot be broadcast together") from None


# ----- torch's type promotion --------------------------------------------------------------------------------
# Three priorities: tensors with dimensions, then 0-d tensors, then Python (and NumPy) scalars. A lower priority
# only matters when it brings a higher category (bool < integer < floating < complex): float32 + a 0-d float64
# tensor stays float32, int64 + 2.5 becomes the default float dtype (float32), int64 + float32 is float32.
def _category(dt: np.dtype) -> int:
    return {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}[dt.kind]


def _promote_types(a: np.dtype | None, b: np.dtype | None) -> np.dtype | None:
    """torch.promote_types: NumPy's rule, except that an integer or bool meeting a float keeps the float."""
    if a is None or b is None:
        return a if b is None else b
    ca, cb = _category(a), _category(b)
    if ca != cb and max(ca, cb) >= 2 and min(ca, cb) <= 1:
        return a if ca > cb else b
    return np.promote_types(a, b)


def _combine(higher: np.dtype | None, lower: np.dtype | None) -> np.dtype | None:
    """Merge a higher-priority result with a lower one: the lower counts only with a higher category."""
    if higher is None or lower is None:
        return lower if higher is None else higher
    ch, cl = _category(higher), _category(lower)
    if cl <= ch:
        return higher
    if ch == 2:  # a float tensor meets a complex scalar: the complex type of the tensor's precision
        return np.result_type(higher, np.complex64)
    return lower if ch >= 1 else _promote_types(higher, lower)


def _priority(x: Any) -> tuple[int, np.dtype]:
    if isinstance(x, (bool, np.bool_)):
        return 2, np.dtype(np.bool_)
    if isinstance(x, (int, np.integer)):
        return 2, np.dtype(np.int64)
    if isinstance(x, (float, np.floating)):
        return 2, DEFAULT_DTYPE
    if isinstance(x, (complex, np.complexfloating)):
        return 2, np.dtype(np.complex64)
    if not hasattr(x, "dtype") or not hasattr(x, "ndim"):
        raise TypeError(f"unsupported operand of type {type(x).__name__}: use a Tensor, an array or a number")
    return (1 if x.ndim == 0 else 0), x.dtype


def result_type(*operands: Any) -> np.dtype:
    """torch.result_type for arrays (the tensors' data; 0-d ones count as 0-d tensors) and Python scalars."""
    levels: list = [None, None, None]
    for x in operands:
        level, dt = _priority(x)
        levels[level] = _promote_types(levels[level], dt)
    return _combine(levels[0], _combine(levels[1], levels[2]))


def _as(x: Any, dtype: np.dtype, like: Any) -> Any:
    """`x` (an array or a scalar) as an array of `dtype` on the device of `like`."""
    if hasattr(x, "dtype") and getattr(x, "ndim", None) is not None:
        return x if x.dtype == dtype else x.astype(dtype)
    return array_module(like).asarray(x, dtype=dtype)


def promote(a: Any, b: Any, dtype: np.dtype | None = None) -> tuple[Any, Any]:
    """Both operands as arrays of torch's result type (or `dtype`)."""
    if dtype is None:
        ta, tb = type(a), type(b)
        if ta is tb is np.ndarray and a.dtype == b.dtype:
            return a, b  # the common case: nothing to promote
        if ta is np.ndarray and tb is float and a.dtype.kind == "f" or tb is np.ndarray and ta is float and \
                b.dtype.kind == "f":
            return a, b  # a Python float adopts a float tensor's dtype (NumPy's weak scalars and torch agree)
        dtype = result_type(a, b)
    like = a if hasattr(a, "ndim") else b
    return _as(a, dtype, like), _as(b, dtype, like)


def _floating(a: Any) -> Any:
    """Integer and bool inputs of a floating op (exp, tanh, ...) become the default float dtype, as in torch."""
    return a if a.dtype.kind in "fc" else a.astype(DEFAULT_DTYPE)


class Add(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _broadcast_check("add", a, b)
        ctx.shapes = (_shape(a), _shape(b))
        a, b = promote(a, b)
        return a + b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return unbroadcast(grad, ctx.shapes[0]), unbroadcast(grad, ctx.shapes[1])


class Sub(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _broadcast_check("sub", a, b)
        ctx.shapes = (_shape(a), _shape(b))
        if any(_priority(x)[1] == np.bool_ for x in (a, b)):
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
        _broadcast_check("mul", a, b)
        ctx.save_for_backward(a, b)
        a, b = promote(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad * b, _shape(a)) if need_a else None,
                unbroadcast(grad * a, _shape(b)) if need_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _broadcast_check("div", a, b)
        ctx.save_for_backward(a, b)
        dtype = result_type(a, b)
        a, b = promote(a, b, dtype if dtype.kind in "fc" else DEFAULT_DTYPE)  # true division, as in torch
        return a / b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad / b, _shape(a)) if need_a else None,
                unbroadcast(-grad * a / (b * b), _shape(b)) if need_b else None)


class Pow(Function):
    """a ** b, either side a tensor or a constant."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _broadcast_check("pow", a, b)
        out = _power(*promote(a, b), scalar_exponent=not hasattr(b, "ndim") or isinstance(b, np.generic))
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = unbroadcast(grad * b * a ** (b - 1), _shape(a)) if need_a else None
        grad_b = unbroadcast(grad * out * array_module(out).log(a), _shape(b)) if need_b else None
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


class Exp(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        a = _floating(a)
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
        return array_module(a).log(_floating(a))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad / ctx.saved_tensors[0]


class Tanh(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        a = _floating(a)
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
        a = _floating(a)
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


class MaxAll(Function):
    """The largest element; ties share the gradient evenly (torch's rule for a full reduction)."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        if a.size == 0:
            raise TensorError("max(): expected a non-empty tensor")
        out = a.max()
        ctx.save_for_backward(a == out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (mask,) = ctx.saved_tensors
        return grad * mask / mask.sum()


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
        ctx.dim = dim
        ctx.bounds = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        dtype = result_type(*arrays)
        return array_module(arrays[0]).concatenate([a.astype(dtype, copy=False) for a in arrays], axis=dim)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return tuple(array_module(grad).split(grad, ctx.bounds, axis=ctx.dim))


def _log_softmax(a: Any, dim: int) -> Any:
    xp = array_module(a)
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


class BCEWithLogits(Function):
    """Elementwise max(x, 0) - x·y + log(1 + exp(-|x|)): the stable form of -[y log σ(x) + (1-y) log(1-σ(x))]."""

    @staticmethod
    def forward(ctx: Context, x: Any, y: Any, pos_weight: Any = None) -> Any:
        xp = array_module(x)
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)  # log(1 + exp(-x))
        ctx.save_for_backward(x, y, softplus_neg)
        ctx.pos_weight = pos_weight
        if pos_weight is None:
            return (1 - y) * x + softplus_neg
        return (1 - y) * x + (1 + (pos_weight - 1) * y) * softplus_neg

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, y, softplus_neg = ctx.saved_tensors
        s = sigmoid(x)
        pw = ctx.pos_weight
        dx = s - y if pw is None else (1 - y) * s - pw * y * (1 - s)
        dy = -x if pw is None else -x + (pw - 1) * softplus_neg
        need_x, need_y = ctx.needs_input_grad[:2]
        return (grad * dx if need_x else None, grad * dy if need_y else None)  # x and y have one shape
