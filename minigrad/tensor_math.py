"""The Tensor's arithmetic: operators, comparisons, elementwise functions and reductions, each dispatching to
the Function that computes it (minigrad/functions/). `Tensor` inherits these; tensor.py holds the rest."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from minigrad import functions
from minigrad._promotion import as_array, promote
from minigrad._validation import TensorError, check_dims
from minigrad.autograd import TensorBase, unwrap
from minigrad.devices import array_module
from minigrad.random import bernoulli, rng_of
from minigrad.tensor_shape import scalar_as_vector

if TYPE_CHECKING:  # annotations only: tensor.py builds Tensor from these methods
    from minigrad.tensor import Tensor


class ValuesIndices(tuple):
    """`(values, indices)` of max(dim), min(dim), topk and sort, reachable by name as in torch."""

    def __new__(cls, values: Any, indices: Any) -> "ValuesIndices":
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

    def __mod__(self, other: Any) -> "Tensor":
        return functions.Remainder.apply(self, other)

    def __rmod__(self, other: Any) -> "Tensor":
        return functions.Remainder.apply(other, self)

    remainder = __mod__

    def __floordiv__(self, other: Any) -> "Tensor":
        """floor(self / other), without a gradient (torch's floor_divide has none)."""
        a, b = promote(self._data, unwrap(other))
        return self._wrap(array_module(a).asarray(a // b))

    def __rfloordiv__(self, other: Any) -> "Tensor":
        a, b = promote(unwrap(other), self._data)
        return self._wrap(array_module(b).asarray(a // b))

    floor_divide = __floordiv__

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

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def _logical(self, other: Any, op: Callable, name: str) -> "Tensor":
        a, b = self._data, unwrap(other)
        if a.dtype.kind == "f" or getattr(b, "dtype", np.dtype(int)).kind == "f" or isinstance(b, float):
            raise TensorError(f'"{name}" is not implemented for floating point tensors (as in torch)')
        return self._wrap(array_module(a).asarray(op(a, b)))

    def __and__(self, other: Any) -> "Tensor":
        return self._logical(other, lambda a, b: a & b, "bitwise_and")

    def __or__(self, other: Any) -> "Tensor":
        return self._logical(other, lambda a, b: a | b, "bitwise_or")

    def __xor__(self, other: Any) -> "Tensor":
        return self._logical(other, lambda a, b: a ^ b, "bitwise_xor")

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self) -> "Tensor":
        return self._logical(0, lambda a, b: ~a, "bitwise_not")

    def _test(self, name: str) -> "Tensor":
        """A bool tensor from the array module's elementwise test `name` (an array even for a 0-d tensor)."""
        xp = array_module(self._data)
        return self._wrap(xp.asarray(getattr(xp, name)(self._data)))

    def isnan(self) -> "Tensor":
        return self._test("isnan")

    def isinf(self) -> "Tensor":
        return self._test("isinf")

    def isfinite(self) -> "Tensor":
        return self._test("isfinite")

    def equal(self, other: "Tensor") -> bool:
        """True when both have the same shape and elements (torch.equal)."""
        return self.shape == other.shape and bool((self._data == unwrap(other)).all())

    def logical_not(self) -> "Tensor":
        return self._wrap(array_module(self._data).logical_not(self._data))

    def logical_and(self, other: Any) -> "Tensor":
        """Elementwise `self != 0 and other != 0`, for any dtypes (torch.logical_and); or, xor alike."""
        return self._wrap(array_module(self._data).logical_and(self._data, unwrap(other)))

    def logical_or(self, other: Any) -> "Tensor":
        return self._wrap(array_module(self._data).logical_or(self._data, unwrap(other)))

    def logical_xor(self, other: Any) -> "Tensor":
        return self._wrap(array_module(self._data).logical_xor(self._data, unwrap(other)))

    def pow(self, exponent: Any) -> "Tensor":
        return functions.Pow.apply(self, exponent)

    def exp(self) -> "Tensor":
        return functions.Exp.apply(self)

    def log(self) -> "Tensor":
        return functions.Log.apply(self)

    def log1p(self) -> "Tensor":
        return functions.Log1p.apply(self)

    def erf(self) -> "Tensor":
        return functions.Erf.apply(self)

    def expm1(self) -> "Tensor":
        return functions.Expm1.apply(self)

    def tanh(self) -> "Tensor":
        return functions.Tanh.apply(self)

    def sigmoid(self) -> "Tensor":
        return functions.Sigmoid.apply(self)

    def relu(self) -> "Tensor":
        return functions.Relu.apply(self)

    def abs(self) -> "Tensor":
        return functions.Abs.apply(self)

    def sqrt(self) -> "Tensor":
        return functions.Sqrt.apply(self)

    def sin(self) -> "Tensor":
        return functions.Sin.apply(self)

    def cos(self) -> "Tensor":
        return functions.Cos.apply(self)

    def neg(self) -> "Tensor":
        return functions.Neg.apply(self)

    negative = neg

    def reciprocal(self) -> "Tensor":
        return functions.Div.apply(1.0, self)

    def square(self) -> "Tensor":
        return self * self

    def rsqrt(self) -> "Tensor":
        return self.sqrt().reciprocal()

    def isclose(self, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> "Tensor":
        """|self − other| ≤ atol + rtol·|other| elementwise, as torch.isclose (a bool tensor)."""
        a, b = promote(self._data, unwrap(other))
        return self._wrap(array_module(a).asarray(array_module(a).isclose(a, b, rtol, atol, equal_nan)))

    def allclose(self, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        """Whether isclose holds everywhere (torch.allclose)."""
        return bool(self.isclose(other, rtol, atol, equal_nan).all())

    def nonzero(self, *, as_tuple: bool = False) -> Any:
        """The indices of the non-zero elements: an (n, ndim) int64 tensor, or with `as_tuple` one 1-d tensor per
        dim (a 0-d tensor counts as a 1-d one there, as torch)."""
        xp = array_module(self._data)
        found = xp.argwhere(self._data).astype(np.int64)
        if not as_tuple:
            return self._wrap(found)
        if self.ndim == 0:
            return (self._wrap(xp.zeros(found.shape[0], dtype=np.int64)),)
        return tuple(self._wrap(xp.ascontiguousarray(found[:, d])) for d in range(self.ndim))

    def argwhere(self) -> "Tensor":
        return self.nonzero()

    def sign(self) -> "Tensor":
        return self._wrap(array_module(self._data).sign(self._data))  # piecewise constant: no gradient

    def add(self, other: Any, alpha: Any = 1) -> "Tensor":
        return functions.Add.apply(self, other if alpha == 1 else other * alpha)

    def sub(self, other: Any, alpha: Any = 1) -> "Tensor":
        return functions.Sub.apply(self, other if alpha == 1 else other * alpha)

    subtract = sub

    def mul(self, other: Any) -> "Tensor":
        return functions.Mul.apply(self, other)

    multiply = mul

    def div(self, other: Any, *, rounding_mode: str | None = None) -> "Tensor":
        """self / other; with `rounding_mode` "trunc" or "floor" the quotient rounded that way, in the promoted
        dtype (integers stay integers) and with a gradient of 0, as torch.div."""
        if rounding_mode is None:
            return functions.Div.apply(self, other)
        if rounding_mode not in ("trunc", "floor"):
            raise TensorError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                              f"{rounding_mode!r}")
        return functions.RoundedDiv.apply(self, other, mode=rounding_mode)

    divide = true_divide = div

    def where(self, condition: Any, other: Any) -> "Tensor":
        """self where `condition` holds, else `other` (torch's x.where(condition, y))."""
        return functions.Where.apply(unwrap(condition), self, other)

    def masked_fill(self, mask: Any, value: Any) -> "Tensor":
        return functions.MaskedFill.apply(self, unwrap(mask), value)

    def triu(self, diagonal: int = 0) -> "Tensor":
        return functions.TriangleMask.apply(self, diagonal=diagonal, upper=True)

    def tril(self, diagonal: int = 0) -> "Tensor":
        return functions.TriangleMask.apply(self, diagonal=diagonal, upper=False)

    def clamp(self, min: Any = None, max: Any = None) -> "Tensor":
        """Elements limited to [min, max]; the gradient passes where the input was inside (torch's rule)."""
        if min is None and max is None:
            raise TensorError("clamp: at least one of `min` and `max` must be given")
        return functions.Clamp.apply(self, lo=unwrap(min), hi=unwrap(max))

    clip = clamp

    def maximum(self, other: Any) -> "Tensor":
        return functions.Extremum.apply(self, other, largest=True)

    def minimum(self, other: Any) -> "Tensor":
        return functions.Extremum.apply(self, other, largest=False)

    def floor(self) -> "Tensor":
        return functions.Rounding.apply(self, how="floor")

    def ceil(self) -> "Tensor":
        return functions.Rounding.apply(self, how="ceil")

    def trunc(self) -> "Tensor":
        return functions.Rounding.apply(self, how="trunc")

    def round(self, decimals: int = 0) -> "Tensor":
        """Halves to even, as torch.round; with `decimals`, of self · 10^decimals, scaled back."""
        if decimals == 0:
            return functions.Rounding.apply(self, how="round")
        scale = 10.0 ** decimals
        return functions.Rounding.apply(self * scale, how="round") / scale

    def clamp_min(self, min: Any) -> "Tensor":
        return self.clamp(min=min)

    def clamp_max(self, max: Any) -> "Tensor":
        return self.clamp(max=max)

    def nan_to_num(self, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> "Tensor":
        """NaN, +inf and -inf replaced (by default by 0 and the dtype's largest and lowest finite values); the
        gradient passes where the input was finite, as torch.nan_to_num."""
        if self.dtype.kind != "f":
            return self.clone()
        xp = array_module(self._data)
        replaced = xp.nan_to_num(self._data, nan=nan, posinf=posinf, neginf=neginf)
        return functions.Where.apply(xp.isfinite(self._data), self, replaced)

    def addcmul(self, tensor1: Any, tensor2: Any, value: Any = 1) -> "Tensor":
        """self + value · tensor1 · tensor2 (torch.addcmul)."""
        return self.add(tensor1 * tensor2, alpha=value)

    def addcdiv(self, tensor1: Any, tensor2: Any, value: Any = 1) -> "Tensor":
        """self + value · tensor1 / tensor2 (torch.addcdiv)."""
        return self.add(tensor1 / tensor2, alpha=value)

    def lerp(self, end: Any, weight: Any) -> "Tensor":
        """self + weight · (end − self), the linear interpolation (torch.lerp)."""
        return self + (end - self) * weight

    def matmul(self, other: Any) -> "Tensor":
        return self @ other

    def mm(self, mat2: Any) -> "Tensor":
        if self.ndim != 2 or getattr(mat2, "ndim", 0) != 2:
            raise TensorError(f"mm: both arguments must be 2-D matrices, got {self.ndim}-D and "
                              f"{getattr(mat2, 'ndim', 0)}-D")
        return self @ mat2

    def bmm(self, mat2: Any) -> "Tensor":
        if self.ndim != 3 or getattr(mat2, "ndim", 0) != 3:
            raise TensorError(f"bmm: both arguments must be 3-D batches of matrices, got {self.ndim}-D and "
                              f"{getattr(mat2, 'ndim', 0)}-D")
        if self.shape[0] != mat2.shape[0]:
            raise TensorError(f"bmm: the batch sizes differ: {self.shape[0]} and {mat2.shape[0]}")
        return self @ mat2

    def dot(self, other: Any) -> "Tensor":
        if self.ndim != 1 or getattr(other, "ndim", 0) != 1:
            raise TensorError("dot: 1D tensors expected")
        return self @ other

    def mv(self, vec: Any) -> "Tensor":
        if self.ndim != 2 or getattr(vec, "ndim", 0) != 1:
            raise TensorError(f"mv: expected a 2-D matrix and a 1-D vector, got {self.ndim}-D and "
                              f"{getattr(vec, 'ndim', 0)}-D")
        return self @ vec

    @scalar_as_vector
    def sum(self, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> "Tensor":
        """The sum over `dim` (all dims for None), of self cast to `dtype` first when it is given."""
        source = self if dtype is None else self._cast(dtype)
        return functions.Sum.apply(source, dim=check_dims(dim, self.ndim), keepdim=keepdim)

    @scalar_as_vector
    def mean(self, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> "Tensor":
        """The mean over `dim` (all dims for None), of self cast to `dtype` first when it is given."""
        source = self if dtype is None else self._cast(dtype)
        if source.dtype.kind not in "fc":
            raise TensorError(f"mean(): could not infer output dtype: the input dtype must be floating point or "
                              f"complex, got {source.dtype}")
        dims = check_dims(dim, self.ndim)
        count = math.prod(self.shape[d] for d in dims) if dims is not None else self.numel()
        return functions.Sum.apply(source, dim=dims, keepdim=keepdim) / count

    def max(self, dim: Any = None, keepdim: bool = False) -> Any:
        """Without `dim` the largest element; with `dim` a `(values, indices)` pair; given a tensor instead of a
        dim, the elementwise maximum (torch.max(a, b)), as in torch."""
        return self.maximum(dim) if isinstance(dim, MathMethods) else self._max(dim, keepdim)

    def min(self, dim: Any = None, keepdim: bool = False) -> Any:
        """As max, for the smallest."""
        return self.minimum(dim) if isinstance(dim, MathMethods) else self._min(dim, keepdim)

    @scalar_as_vector
    def _max(self, dim: int | None, keepdim: bool) -> Any:
        if dim is None:
            return self._extreme("max", None, False, True)
        dim = self._reduction_dim("max", dim)
        values = functions.MaxDim.apply(self, dim=dim, keepdim=keepdim)
        return ValuesIndices(values, self.argmax(dim, keepdim))

    @scalar_as_vector
    def _min(self, dim: int | None, keepdim: bool) -> Any:
        if dim is None:
            return self._extreme("min", None, False, False)
        self._reduction_dim("min", dim)  # torch's name in the message
        values, _ = (-self).max(dim, keepdim)
        return ValuesIndices(-values, self.argmin(dim, keepdim))

    def _extreme(self, name: str, dim: Any, keepdim: bool, largest: bool) -> "Tensor":
        dims = check_dims(dim, self.ndim)
        if dims is None and self.numel() == 0:
            raise TensorError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
        for d in dims or ():
            self._reduction_dim(name, d)
        return functions.Amax.apply(self, dim=dims, keepdim=keepdim, largest=largest)

    @scalar_as_vector
    def amax(self, dim: Any = (), keepdim: bool = False) -> "Tensor":
        """The largest elements over `dim` (every dim for the default ()); ties share the gradient evenly."""
        return self._extreme("amax", None if dim == () else dim, keepdim, True)

    @scalar_as_vector
    def amin(self, dim: Any = (), keepdim: bool = False) -> "Tensor":
        """The smallest elements over `dim` (every dim for the default ()); ties share the gradient evenly."""
        return self._extreme("amin", None if dim == () else dim, keepdim, False)

    @scalar_as_vector
    def prod(self, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None) -> "Tensor":
        """The product of all elements, or along `dim`; integers and bools give int64, as torch."""
        if dtype is None and self.dtype.kind in "biu":
            dtype = np.int64
        dim = None if dim is None else check_dims(dim, self.ndim)[0]
        return functions.Prod.apply(self, dim=dim, keepdim=keepdim, dtype=dtype)

    @scalar_as_vector
    def argmax(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        return self._arg(self._data.argmax, dim, keepdim)

    @scalar_as_vector
    def argmin(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        return self._arg(self._data.argmin, dim, keepdim)

    def _arg(self, fn: Callable, dim: int | None, keepdim: bool) -> "Tensor":
        if dim is None:
            if self.numel() == 0:
                raise IndexError(f"{fn.__name__}(): Expected reduction dim to be specified for input.numel() == 0.")
            return self._wrap(array_module(self._data).asarray(fn()))
        dim = self._reduction_dim(fn.__name__, dim)
        idx = fn(axis=dim)
        return self._wrap(array_module(idx).expand_dims(idx, dim) if keepdim else idx)

    def _reduction_dim(self, name: str, dim: Any) -> int:
        """`dim` checked, for a reduction that picks one element (max, argmax, ...): that dim must not be empty."""
        dim = check_dims(dim, self.ndim)[0]
        if self.shape[dim] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {dim} to have non-zero size.")
        return dim

    @scalar_as_vector
    def norm(self, p: Any = 2, dim: Any = None, keepdim: bool = False) -> "Tensor":
        """The p-norm over all elements (or `dim`), as torch.linalg.vector_norm; differentiable."""
        p = 2.0 if p == "fro" else float(p)  # float("inf") reads "inf"
        if math.isinf(p):
            a = self.abs() if p > 0 else -self.abs()
            m = a.max() if dim is None else a.max(dim, keepdim)[0]
            return m if p > 0 else -m
        return functions.Norm.apply(self, p=p, dim=check_dims(dim, self.ndim), keepdim=keepdim)

    @scalar_as_vector
    def var(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
            correction: Any = None) -> "Tensor":
        """The variance over `dim` (all elements by default) with Bessel's correction (1) unless `unbiased=False`
        or another `correction`, as torch.var; NaN where the count does not exceed the correction."""
        if isinstance(dim, bool):  # torch's older var(unbiased)
            dim, unbiased = None, dim
        if correction is None:
            correction = 1 if unbiased is None else int(bool(unbiased))
        if self.dtype.kind not in "fc":
            raise TensorError(f"var(): could not infer output dtype: the input must be floating point, got "
                              f"{self.dtype}")
        dims = check_dims(dim, self.ndim)
        count = math.prod(self.shape[d] for d in dims) if dims is not None else self.numel()
        deviation = self - self.mean(dims, keepdim=True)
        squares = (deviation * deviation).sum(dims, keepdim)
        return squares / (count - correction) if count > correction else squares * math.nan

    def std(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
            correction: Any = None) -> "Tensor":
        """The square root of `var` with the same arguments."""
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    @scalar_as_vector
    def logsumexp(self, dim: Any, keepdim: bool = False) -> "Tensor":
        """log Σ exp(x) over `dim`, computed with the largest element shifted out (no overflow)."""
        dims = check_dims(dim, self.ndim)
        xp = array_module(self._data)
        top = xp.max(self._data, axis=dims, keepdims=True) if self._data.size else xp.zeros((1,) * self.ndim)
        top = xp.where(xp.isfinite(top), top, 0).astype(self.dtype)
        out = (self - top).exp().sum(dims, keepdim=True).log() + top
        return out if keepdim else out.squeeze(dims)

    @scalar_as_vector
    def cumsum(self, dim: int, dtype: Any = None) -> "Tensor":
        return functions.Cumsum.apply(self, dim=check_dims(dim, self.ndim)[0], dtype=dtype)

    @scalar_as_vector
    def cumprod(self, dim: int, dtype: Any = None) -> "Tensor":
        return functions.Cumprod.apply(self, dim=check_dims(dim, self.ndim)[0], dtype=dtype)

    @scalar_as_vector
    def any(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        return self._wrap(array_module(self._data).asarray(self._data.any(axis=check_dims(dim, self.ndim),
                                                                          keepdims=keepdim)))

    @scalar_as_vector
    def all(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        return self._wrap(array_module(self._data).asarray(self._data.all(axis=check_dims(dim, self.ndim),
                                                                          keepdims=keepdim)))

    def multinomial(self, num_samples: int, replacement: bool = False, *, generator: Any = None) -> "Tensor":
        """Indices drawn from each row's categorical distribution (weights >= 0, not necessarily summing to 1),
        from minigrad's generator; int64, no gradient (torch's draws differ: another generator)."""
        probs = np.asarray(self.detach().cpu()._data, dtype=np.float64)
        if probs.ndim not in (1, 2):
            raise TensorError(f"multinomial: prob_dist must be 1 or 2 dim, got {probs.ndim}")
        rows = probs.reshape(-1, probs.shape[-1])
        if np.any(rows < 0) or not np.all(np.isfinite(rows)) or np.any(rows.sum(axis=1) <= 0):
            raise TensorError("multinomial: probability tensor contains either `inf`, `nan` or element < 0, or a "
                              "row that sums to zero")
        if not replacement and num_samples > np.count_nonzero(rows, axis=1).min():
            raise TensorError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without "
                              "replacement")
        rng = rng_of(generator)
        out = np.stack([rng.choice(rows.shape[1], size=num_samples, replace=replacement, p=r / r.sum())
                        for r in rows]).astype(np.int64)
        result = self._wrap(out.reshape(probs.shape[:-1] + (num_samples,)))
        return result if isinstance(self._data, np.ndarray) else result.to(self.device)

    def bernoulli(self, p: Any = None, *, generator: Any = None) -> "Tensor":
        """Draws of 1 with probability given by this tensor's elements (or `p`), else 0, in this tensor's dtype;
        no gradient (torch's draws differ: another generator)."""
        probs = self.detach().cpu().numpy() if p is None else p
        result = self._wrap(bernoulli(probs, self.shape, self.dtype, generator))
        return result if isinstance(self._data, np.ndarray) else result.to(self.device)

    def softmax(self, dim: int = -1) -> "Tensor":
        return functions.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim: int = -1) -> "Tensor":
        return functions.LogSoftmax.apply(self, dim=dim)
