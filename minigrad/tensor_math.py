"""The Tensor's arithmetic: operators, comparisons, elementwise functions and reductions, each dispatching to
the Function that computes it (minigrad/functions/). `Tensor` inherits these; tensor.py holds the rest."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from minigrad import functions
from minigrad._promotion import as_array, promote
from minigrad._validation import TensorError, check_dims
from minigrad.autograd import TensorBase, unwrap
from minigrad.devices import array_module

if TYPE_CHECKING:  # annotations only: tensor.py builds Tensor from these methods
    from minigrad.tensor import Tensor


class MaxResult(tuple):
    """`(values, indices)` of `Tensor.max(dim)`, reachable by name as in torch."""

    def __new__(cls, values: Any, indices: Any) -> "MaxResult":
        return super().__new__(cls, (values, indices))

    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])


class MathMethods:
    """Arithmetic, comparisons, elementwise functions and reductions of a Tensor."""

    def _as_operand(self, x: Any) -> Any:
        """`x` as a tensor (a matmul operand must be one)."""
        return x if isinstance(x, TensorBase) else self._wrap(as_array(x))

    def __add__(self, other: Any) -> "Tensor":
        return functions.Add.apply(self, other)

    def __radd__(self, other: Any) -> "Tensor":
        return functions.Add.apply(other, self)

    def __sub__(self, other: Any) -> "Tensor":
        return functions.Sub.apply(self, other)

    def __rsub__(self, other: Any) -> "Tensor":
        return functions.Sub.apply(other, self)

    def __mul__(self, other: Any) -> "Tensor":
        return functions.Mul.apply(self, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return functions.Mul.apply(other, self)

    def __truediv__(self, other: Any) -> "Tensor":
        return functions.Div.apply(self, other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return functions.Div.apply(other, self)

    def __pow__(self, other: Any) -> "Tensor":
        return functions.Pow.apply(self, other)

    def __rpow__(self, other: Any) -> "Tensor":
        return functions.Pow.apply(other, self)

    def __matmul__(self, other: Any) -> "Tensor":
        return functions.MatMul.apply(self, self._as_operand(other))

    def __rmatmul__(self, other: Any) -> "Tensor":
        return functions.MatMul.apply(self._as_operand(other), self)

    def __neg__(self) -> "Tensor":
        return functions.Neg.apply(self)

    def _compare(self, other: Any, op: Callable) -> "Tensor":
        other = unwrap(other)
        if isinstance(other, (list, tuple)):
            other = array_module(self._data).asarray(other)
        a, b = promote(self._data, other)
        return self._wrap(array_module(a).asarray(op(a, b)))

    def __lt__(self, other: Any) -> "Tensor":
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other: Any) -> "Tensor":
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other: Any) -> "Tensor":
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other: Any) -> "Tensor":
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, lambda a, b: a != b)

    def pow(self, exponent: Any) -> "Tensor":
        return functions.Pow.apply(self, exponent)

    def exp(self) -> "Tensor":
        return functions.Exp.apply(self)

    def log(self) -> "Tensor":
        return functions.Log.apply(self)

    def tanh(self) -> "Tensor":
        return functions.Tanh.apply(self)

    def sigmoid(self) -> "Tensor":
        return functions.Sigmoid.apply(self)

    def relu(self) -> "Tensor":
        return functions.Relu.apply(self)

    def abs(self) -> "Tensor":
        return functions.Abs.apply(self)

    def sqrt(self) -> "Tensor":
        return functions.Pow.apply(self, 0.5)

    def clamp(self, min: Any = None, max: Any = None) -> "Tensor":
        """Elements limited to [min, max]; the gradient passes where the input was inside (torch's rule)."""
        if min is None and max is None:
            raise TensorError("clamp: at least one of `min` and `max` must be given")
        return functions.Clamp.apply(self, lo=unwrap(min), hi=unwrap(max))

    clip = clamp

    def matmul(self, other: Any) -> "Tensor":
        return self @ other

    def sum(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        return functions.Sum.apply(self, dim=check_dims(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        if self.dtype.kind not in "fc":
            raise TensorError(f"mean(): could not infer output dtype: the input dtype must be floating point or "
                              f"complex, got {self.dtype}")
        dims = check_dims(dim, self.ndim)
        count = math.prod(self.shape[d] for d in dims) if dims is not None else self.numel()
        return functions.Sum.apply(self, dim=dims, keepdim=keepdim) / count

    def max(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """Without `dim` the largest element; with `dim` a `(values, indices)` pair, as in torch."""
        if dim is None:
            return functions.MaxAll.apply(self)
        dim = check_dims(dim, self.ndim)[0]
        values = functions.MaxDim.apply(self, dim=dim, keepdim=keepdim)
        return MaxResult(values, self.argmax(dim, keepdim))

    def min(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """Without `dim` the smallest element; with `dim` a `(values, indices)` pair, as in torch."""
        if dim is None:
            return -functions.MaxAll.apply(-self)
        values, _ = (-self).max(dim, keepdim)
        return MaxResult(-values, self.argmin(dim, keepdim))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        return self._arg(self._data.argmax, dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        return self._arg(self._data.argmin, dim, keepdim)

    def _arg(self, fn: Callable, dim: int | None, keepdim: bool) -> "Tensor":
        if dim is None:
            return self._wrap(array_module(self._data).asarray(fn()))
        dim = check_dims(dim, self.ndim)[0]
        idx = fn(axis=dim)
        return self._wrap(array_module(idx).expand_dims(idx, dim) if keepdim else idx)

    def norm(self, p: Any = 2, dim: Any = None, keepdim: bool = False) -> "Tensor":
        """The p-norm over all elements (or `dim`), as torch.linalg.vector_norm; differentiable."""
        p = 2.0 if p == "fro" else float(p)  # float("inf") reads "inf"
        a = self.abs()
        if p == float("inf"):
            return a.max() if dim is None else a.max(dim, keepdim)[0]
        if p == 2.0:
            return (self * self).sum(dim, keepdim).sqrt()
        return (a ** p).sum(dim, keepdim) ** (1.0 / p)

    def softmax(self, dim: int = -1) -> "Tensor":
        return functions.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim: int = -1) -> "Tensor":
        return functions.LogSoftmax.apply(self, dim=dim)
