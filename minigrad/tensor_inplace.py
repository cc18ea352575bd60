"""The Tensor's in-place methods (torch's names, ending in `_`, and `+=`, `x[i] = v`).

Each writes into the tensor's own array, bumps its version counter, and, when autograd records it, rebases the
tensor's history onto the op (autograd.apply_inplace: torch's rules, views included). When nothing needs a
gradient (no_grad, or no input requires grad) the common arithmetic runs as one NumPy ufunc with `out=`.
`Tensor` inherits these.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from minigrad import functions
from minigrad._validation import TensorError
from minigrad.autograd import TensorBase, apply_inplace, check_inplace, check_overlap, is_grad_enabled, unwrap
from minigrad.devices import array_module, device_of
from minigrad.random import bernoulli, normal_, uniform_
from minigrad.tensor_shape import raw_index

if TYPE_CHECKING:  # annotations only: tensor.py builds Tensor from these methods
    from minigrad.tensor import Tensor


def _scaled(other: Any, alpha: Any) -> Any:
    """other · alpha (torch's `alpha=` of add_ and sub_), differentiable when other is a tensor."""
    return other if alpha == 1 else other * alpha


class InplaceMethods:
    """In-place methods of a Tensor."""

    def _records(self, *others: Any) -> bool:
        """Whether an in-place op on self with these other inputs would be recorded by autograd."""
        return is_grad_enabled() and (self.requires_grad or any(isinstance(a, TensorBase) and a.requires_grad
                                                                 for a in others))

    def _ufunc_(self, op: str, fn: type, ufunc: Any, other: Any, alpha: Any = 1) -> "Tensor":
        """self = ufunc(self, other · alpha) in place: one ufunc pass when nothing records, else the recorded op."""
        check_overlap(self._data, [unwrap(other)], op)  # the input as given, before any scaling
        other = _scaled(other, alpha)
        if self._records(other):
            return apply_inplace(fn, self, other, op=op)
        check_inplace(self, op)
        arr = self._data
        raw = unwrap(other)
        try:
            fits = not hasattr(raw, "shape") or np.broadcast_shapes(np.shape(raw), arr.shape) == arr.shape
        except ValueError:
            fits = False
        if fits:
            try:
                ufunc(arr, raw, out=arr, casting="same_kind")
            except TypeError:  # NumPy's UFuncTypeError: a result this dtype cannot hold
                raise TensorError(f"{op}: result type {np.result_type(arr, raw)} can't be cast to the desired "
                                  f"output type {arr.dtype}") from None
            self._versions[0] += 1
            return self
        return apply_inplace(fn, self, other, op=op)  # the general path names the bad shape

    def add_(self, other: Any, alpha: Any = 1) -> "Tensor":
        return self._ufunc_("add_", functions.Add, np.add, other, alpha)

    def sub_(self, other: Any, alpha: Any = 1) -> "Tensor":
        return self._ufunc_("sub_", functions.Sub, np.subtract, other, alpha)

    def mul_(self, other: Any) -> "Tensor":
        return self._ufunc_("mul_", functions.Mul, np.multiply, other)

    def div_(self, other: Any) -> "Tensor":
        return self._ufunc_("div_", functions.Div, np.true_divide, other)

    def pow_(self, exponent: Any) -> "Tensor":
        return apply_inplace(functions.Pow, self, exponent, op="pow_")

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    def clamp_(self, min: Any = None, max: Any = None) -> "Tensor":
        if min is None and max is None:
            raise TensorError("clamp_: at least one of `min` and `max` must be given")
        return apply_inplace(functions.Clamp, self, op="clamp_", lo=unwrap(min), hi=unwrap(max))

    clip_ = clamp_

    def clamp_min_(self, min: Any) -> "Tensor":
        return self.clamp_(min=min)

    def clamp_max_(self, max: Any) -> "Tensor":
        return self.clamp_(max=max)

    def addcmul_(self, tensor1: Any, tensor2: Any, value: Any = 1) -> "Tensor":
        return self.add_(tensor1 * tensor2, alpha=value)

    def addcdiv_(self, tensor1: Any, tensor2: Any, value: Any = 1) -> "Tensor":
        return self.add_(tensor1 / tensor2, alpha=value)

    def lerp_(self, end: Any, weight: Any) -> "Tensor":
        return self.add_((end - self) * weight)

    def _unary_(self, fn: type, op: str) -> "Tensor":
        return apply_inplace(fn, self, op=op)

    def neg_(self) -> "Tensor":
        return self._unary_(functions.Neg, "neg_")

    def exp_(self) -> "Tensor":
        return self._unary_(functions.Exp, "exp_")

    def log_(self) -> "Tensor":
        return self._unary_(functions.Log, "log_")

    def tanh_(self) -> "Tensor":
        return self._unary_(functions.Tanh, "tanh_")

    def sigmoid_(self) -> "Tensor":
        return self._unary_(functions.Sigmoid, "sigmoid_")

    def relu_(self) -> "Tensor":
        return self._unary_(functions.Relu, "relu_")

    def abs_(self) -> "Tensor":
        return self._unary_(functions.Abs, "abs_")

    def sqrt_(self) -> "Tensor":
        return self._unary_(functions.Sqrt, "sqrt_")

    def sin_(self) -> "Tensor":
        return self._unary_(functions.Sin, "sin_")

    def cos_(self) -> "Tensor":
        return self._unary_(functions.Cos, "cos_")

    def masked_fill_(self, mask: Any, value: Any) -> "Tensor":
        return apply_inplace(functions.MaskedFill, self, unwrap(mask), value, op="masked_fill_")

    def _fill_(self, value: Any, op: str) -> "Tensor":
        """self[...] = value (broadcast): zero_, fill_, copy_ and the random fills."""
        if self._records(value):
            return apply_inplace(functions.Fill, self, value, op=op)
        check_inplace(self, op)
        raw = unwrap(value)
        check_overlap(self._data, [raw], op)
        xp = array_module(self._data)
        try:
            xp.broadcast_to(xp.asarray(raw), self._data.shape)
        except ValueError:
            raise TensorError(f"{op}: the source of shape {np.shape(raw)} does not broadcast to the tensor's shape "
                              f"{self._data.shape}") from None
        if isinstance(self._data, np.ndarray) and not self._data.flags.writeable:
            raise TensorError(f"{op}: the tensor's array is read-only")
        self._data[...] = raw
        self._versions[0] += 1
        return self

    def zero_(self) -> "Tensor":
        return self._fill_(0, "zero_")

    def fill_(self, value: Any) -> "Tensor":
        if isinstance(value, TensorBase) and value.ndim != 0:
            raise TensorError(f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} "
                              f"dimensions")
        return self._fill_(value, "fill_")

    def copy_(self, src: Any, non_blocking: bool = False) -> "Tensor":
        if isinstance(src, TensorBase) and device_of(src._data) != device_of(self._data):
            src = src.to(device_of(self._data))  # a copy across devices, differentiable
        return self._fill_(src, "copy_")

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "Tensor":
        return self._fill_(uniform_(np.empty(self.shape, self.dtype), a, b), "uniform_")

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "Tensor":
        return self._fill_(normal_(np.empty(self.shape, self.dtype), mean, std), "normal_")

    def bernoulli_(self, p: Any = 0.5, *, generator: Any = None) -> "Tensor":
        """Fill with draws of 1 (probability `p`, a number or a tensor broadcast to this one) or 0."""
        probs = p.detach().cpu().numpy() if isinstance(p, TensorBase) else p
        return self._fill_(bernoulli(probs, self.shape, self.dtype, generator), "bernoulli_")

    def scatter_(self, dim: int, index: Any, src: Any = None, value: Any = None) -> "Tensor":
        dim, index = self._scatter_args("scatter_", dim, index)
        return apply_inplace(functions.Scatter, self, dim, index, src if value is None else value, op="scatter_")

    def scatter_add_(self, dim: int, index: Any, src: Any) -> "Tensor":
        dim, index = self._scatter_args("scatter_add_", dim, index)
        return apply_inplace(functions.Scatter, self, dim, index, src, add=True, op="scatter_add_")

    def _along_index(self, op: str, dim: int, index: Any) -> tuple:
        """(dim, index) for index_add_ and index_fill_: a 0-d or 1-D integer index over `dim` (index_fill_ also
        takes negative ones), spread as scatter's index over self's shape with len(index) along dim. torch's
        exception types, which differ between the two."""
        dim, index = self._scatter_args(op, dim, index)
        xp = array_module(self._data)
        index = xp.asarray(index).reshape(-1) if getattr(index, "ndim", 0) == 0 else xp.asarray(index)
        if index.dtype.kind not in "iu":
            raise TensorError(f"{op}: Expected dtype int32/int64 for index but got: {index.dtype}")
        if index.ndim > 1:
            raise (IndexError if op == "index_add_" else TensorError)(
                f"{op}: Index is supposed to be a vector, but got dim: {index.ndim}")
        size, lowest = self.shape[dim], (0 if op == "index_add_" else -self.shape[dim])
        if index.size and (int(index.min()) < lowest or int(index.max()) >= size):
            bad = int(index.min()) if int(index.min()) < lowest else int(index.max())
            raise (TensorError if op == "index_add_" else IndexError)(
                f"{op}: index {bad} is out of bounds for dimension {dim} with size {size}")
        shape = [1] * self.ndim
        shape[dim] = -1
        spread = self.shape[:dim] + (index.size,) + self.shape[dim + 1:]
        return dim, xp.broadcast_to(index.reshape(shape) % max(size, 1), spread)

    def index_add_(self, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> "Tensor":
        """self[..., index[i], ...] += alpha · source[..., i, ...] along `dim`, repeats adding up (torch's)."""
        dim, spread = self._along_index("index_add_", dim, index)
        check_overlap(self._data, [unwrap(source)], "index_add_", same_ok=False)  # the source as given, unscaled
        if tuple(getattr(source, "shape", ())) != spread.shape:
            raise TensorError(f"index_add_: source of shape {tuple(getattr(source, 'shape', ()))} does not match "
                              f"{spread.shape}: self's shape with len(index) along dim {dim}")
        return self.scatter_add_(dim, spread, _scaled(source, alpha))

    def index_fill_(self, dim: int, index: Any, value: Any) -> "Tensor":
        """`value` written at every index along `dim` (torch's index_fill_)."""
        dim, spread = self._along_index("index_fill_", dim, index)
        return self.scatter_(dim, spread, value=value)

    def index_put_(self, indices: Any, values: Any, accumulate: bool = False) -> "Tensor":
        """self[indices] = values, for a tuple of index tensors; with `accumulate`, added, repeats adding up."""
        if not isinstance(indices, (tuple, list)):
            raise TypeError(f"index_put_: indices must be a tuple of tensors, got {type(indices).__name__}")
        index = raw_index(tuple(indices))
        if not accumulate:
            self[index] = values
            return self
        return apply_inplace(functions.AddAt, self, values, index=index, op="index_put_")

    def __setitem__(self, index: Any, value: Any) -> None:
        apply_inplace(functions.SetItem, self, value, index=raw_index(index), op="__setitem__")
