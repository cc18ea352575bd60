"""Tensor: an array, its gradient, and the edge of the graph that produced it.

The engine is micrograd's idea with minitorch's shape: every op is a `Function` (in functions.py) whose
`forward(ctx, ...)` works on raw arrays and whose `backward(ctx, grad)` returns one gradient per positional
input. `Tensor.backward` walks the graph in an order found *iteratively* (an RNN unrolled over thousands of
steps is a graph deeper than Python's recursion limit) and *accumulates* into the `.grad` of leaves.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, Sequence

import numpy as np

DEFAULT_DTYPE = np.float32
_grad_enabled = True


class no_grad:
    """Context manager and decorator: ops inside record no graph (as `torch.no_grad`)."""

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


def is_grad_enabled() -> bool:
    return _grad_enabled


def array_module(arr: Any) -> Any:
    """NumPy, or CuPy for a CuPy array: the module whose functions an op calls (CuPy is never imported here)."""
    if type(arr).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def as_array(data: Any, dtype: Any = None) -> Any:
    """An array for `data` with torch's dtype rules: arrays keep their dtype, Python floats become float32."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, np.generic)) or type(data).__module__.startswith("cupy"):
        arr = array_module(data).asarray(data)
    else:
        arr = np.asarray(data)
        if arr.dtype == np.float64:
            arr = arr.astype(DEFAULT_DTYPE)
        elif arr.dtype == object:
            raise TypeError(f"cannot make a tensor from {type(data).__name__} holding mixed or ragged data")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


class Context:
    """What a Function keeps between forward and backward."""

    __slots__ = ("fn", "parents", "saved_tensors", "needs_input_grad", "freed", "__dict__")

    def __init__(self) -> None:
        self.saved_tensors: tuple = ()
        self.freed = False

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays


class Function:
    """An op: `forward(ctx, *arrays, **options) -> array`, `backward(ctx, grad) -> grad per positional input`.

    Positional arguments that are Tensors are the differentiable inputs; anything else (a Python number, an
    index) is a constant whose gradient slot backward fills with None.
    """

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> "Tensor":
        ctx = Context()
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx.needs_input_grad = needs
        out = cls.forward(ctx, *raw, **kwargs)
        result = Tensor(array_module(out).asarray(out))
        if _grad_enabled and any(needs):
            result.requires_grad = True
            ctx.fn = cls
            ctx.parents = tuple(a if isinstance(a, Tensor) else None for a in args)
            result._ctx = ctx
        return result


class IndexGrad:
    """The gradient of an indexing op: zero except `values` at `index` of an array of `shape`.

    Kept sparse so that many slices of one tensor (an RNN reading x[t] for every t) accumulate in place into
    one dense array, instead of each allocating a full-size zero array: O(T) work instead of O(T²).
    """

    __slots__ = ("shape", "index", "values", "basic")

    def __init__(self, shape: tuple, index: Any, values: Any, basic: bool) -> None:
        self.shape, self.index, self.values, self.basic = shape, index, values, basic

    def add_into(self, dense: Any) -> Any:
        if self.basic:
            dense[self.index] += self.values
        else:
            array_module(dense).add.at(dense, self.index, self.values)
        return dense

    def dense(self) -> Any:
        return self.add_into(array_module(self.values).zeros(self.shape, dtype=self.values.dtype))


def _sum_grads(acc: Any, grad: Any, owned: dict) -> Any:
    """acc + grad, in place when `acc` is an array the engine allocated itself (listed in `owned`)."""
    if isinstance(acc, IndexGrad):
        acc = acc.dense()
    elif id(acc) not in owned:
        if not isinstance(grad, IndexGrad):
            return acc + grad  # a new array; neither input is ever modified
        acc = acc.copy()
    owned[id(acc)] = acc
    if isinstance(grad, IndexGrad):
        return grad.add_into(acc)
    acc += grad
    return acc


def _topological_order(root: "Tensor") -> list["Tensor"]:
    """Every tensor `root` depends on that needs a gradient, each after all of its inputs (no recursion)."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for parent in node._ctx.parents:
                if parent is not None and parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


class Tensor:
    """An n-dimensional array with autograd. `.data` is the array, `.grad` its gradient array or None."""

    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__  # == builds a tensor, so hashing must be by identity (as torch does)

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self.data = as_array(data, dtype)
        self.grad: Any = None
        self._ctx: Context | None = None
        self._grad_view: Any = None  # set by GradBuffer: the slot .grad lives in
        self._grad_buffer: Any = None  # and the GradBuffer itself, kept alive by its parameters
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ----- basic properties -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def device(self) -> str:
        return "cuda" if array_module(self.data) is not np else "cpu"

    def size(self, dim: int | None = None) -> Any:
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        data = self.data if array_module(self.data) is np else self.data.get()
        body = np.array2string(data, separator=", ", prefix="tensor(")
        extra = "" if data.dtype in (np.float32, np.int64, np.bool_) else f", dtype={data.dtype}"
        return f"tensor({body}{extra}{', requires_grad=True' if self.requires_grad else ''})"

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = requires_grad
        return self

    def item(self) -> Any:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.data.shape}")
        return self.data.reshape(()).item()

    def numpy(self) -> np.ndarray:
        if array_module(self.data) is not np:
            raise TypeError("numpy() of a CUDA tensor: call .cpu() first")
        return self.data

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def clone(self) -> "Tensor":
        return F.Clone.apply(self)

    def zero_(self) -> "Tensor":
        self.data[...] = 0
        return self

    # ----- autograd ---------------------------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · gradient into every leaf's `.grad`.

        Without `retain_graph` the graph's saved arrays are freed, and a second backward through it raises.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad and has no grad_fn")
        xp = array_module(self.data)
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without `gradient` needs a scalar output, got shape {self.data.shape}")
            gradient = xp.ones_like(self.data)
        else:
            gradient = as_array(gradient, self.data.dtype)
            if gradient.shape != self.data.shape:
                raise ValueError(f"`gradient` has shape {gradient.shape} but the tensor has shape {self.data.shape}")
        order = _topological_order(self)
        for node in order:
            if node._ctx is not None and node._ctx.freed:
                raise RuntimeError("trying to backward through the graph a second time; "
                                   "use backward(retain_graph=True) the first time")
        grads: dict[int, Any] = {id(self): gradient}
        owned: dict[int, Any] = {}  # accumulators allocated here, safe to add into in place
        for node in reversed(order):
            grad = grads.pop(id(node), None)
            if grad is None:
                continue
            owned.pop(id(grad), None)
            if isinstance(grad, IndexGrad) and not (node._ctx is None and node.grad is not None):
                grad = grad.dense()
            ctx = node._ctx
            if ctx is None:
                node._accumulate(grad)
                continue
            input_grads = ctx.fn.backward(ctx, grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, parent_grad in zip(ctx.parents, input_grads):
                if parent is None or parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = _sum_grads(grads[key], parent_grad, owned) if key in grads else parent_grad
            if not retain_graph:
                ctx.saved_tensors = ()
                ctx.__dict__.clear()
                ctx.freed = True

    def _accumulate(self, grad: Any) -> None:
        """Add `grad` into `.grad` in place (GradBuffer views stay views; aliases are never stored)."""
        if isinstance(grad, IndexGrad):
            grad.values = grad.values.astype(self.data.dtype, copy=False)
            grad.add_into(self.grad)  # backward only keeps it sparse when .grad exists
            return
        if grad.dtype != self.data.dtype:
            grad = grad.astype(self.data.dtype)
        if self.grad is not None:
            self.grad += grad
        elif self._grad_view is not None:
            self._grad_view[...] = grad
            self.grad = self._grad_view
        else:
            self.grad = array_module(grad).array(grad, copy=True)

    # ----- ops ---------------------------------------------------------------------------------------
    def __add__(self, other: Any) -> "Tensor":
        return F.Add.apply(self, other)

    def __radd__(self, other: Any) -> "Tensor":
        return F.Add.apply(other, self)

    def __sub__(self, other: Any) -> "Tensor":
        return F.Sub.apply(self, other)

    def __rsub__(self, other: Any) -> "Tensor":
        return F.Sub.apply(other, self)

    def __mul__(self, other: Any) -> "Tensor":
        return F.Mul.apply(self, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return F.Mul.apply(other, self)

    def __truediv__(self, other: Any) -> "Tensor":
        return F.Div.apply(self, other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return F.Div.apply(other, self)

    def __pow__(self, other: Any) -> "Tensor":
        return F.Pow.apply(self, other)

    def __rpow__(self, other: Any) -> "Tensor":
        return F.Pow.apply(other, self)

    def __matmul__(self, other: Any) -> "Tensor":
        return F.MatMul.apply(self, _tensor(other))

    def __rmatmul__(self, other: Any) -> "Tensor":
        return F.MatMul.apply(_tensor(other), self)

    def __neg__(self) -> "Tensor":
        return F.Neg.apply(self)

    def __getitem__(self, index: Any) -> "Tensor":
        return F.GetItem.apply(self, index=_raw_index(index))

    def _compare(self, other: Any, op: Callable) -> "Tensor":
        return Tensor(op(self.data, other.data if isinstance(other, Tensor) else other))

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

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with shape {self.data.shape} is ambiguous")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __iter__(self) -> Iterator["Tensor"]:
        return (self[i] for i in range(len(self)))

    def pow(self, exponent: Any) -> "Tensor":
        return F.Pow.apply(self, exponent)

    def exp(self) -> "Tensor":
        return F.Exp.apply(self)

    def log(self) -> "Tensor":
        return F.Log.apply(self)

    def tanh(self) -> "Tensor":
        return F.Tanh.apply(self)

    def sigmoid(self) -> "Tensor":
        return F.Sigmoid.apply(self)

    def relu(self) -> "Tensor":
        return F.Relu.apply(self)

    def abs(self) -> "Tensor":
        return F.Abs.apply(self)

    def sqrt(self) -> "Tensor":
        return F.Pow.apply(self, 0.5)

    def matmul(self, other: Any) -> "Tensor":
        return self @ other

    def sum(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        return F.Sum.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        dims = _dims(dim, self.ndim)
        count = int(np.prod([self.shape[d] for d in dims])) if dims is not None else self.numel()
        return F.Sum.apply(self, dim=dims, keepdim=keepdim) / count

    def max(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """Without `dim` the largest element; with `dim` a `(values, indices)` pair, as in torch."""
        if dim is None:
            return F.MaxAll.apply(self)
        dim = _dims(dim, self.ndim)[0]
        values = F.MaxDim.apply(self, dim=dim, keepdim=keepdim)
        return MaxResult(values, self.argmax(dim, keepdim))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        if dim is None:
            return Tensor(self.data.argmax())
        idx = self.data.argmax(axis=dim)
        return Tensor(array_module(idx).expand_dims(idx, dim) if keepdim else idx)

    def softmax(self, dim: int = -1) -> "Tensor":
        return F.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim: int = -1) -> "Tensor":
        return F.LogSoftmax.apply(self, dim=dim)

    def reshape(self, *shape: Any) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return F.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self) -> "Tensor":
        return self.reshape(-1)

    def permute(self, *dims: Any) -> "Tensor":
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        if sorted(d % self.ndim for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: dims {dims} are not a permutation of the {self.ndim} dims of {self.shape}")
        return F.Permute.apply(self, axes=tuple(d % self.ndim for d in dims))

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return F.Permute.apply(self, axes=tuple(axes))

    @property
    def T(self) -> "Tensor":
        return F.Permute.apply(self, axes=tuple(reversed(range(self.ndim))))

    def squeeze(self, dim: int | None = None) -> "Tensor":
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        dim = dim % max(self.ndim, 1)
        if self.ndim == 0 or self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def unsqueeze(self, dim: int) -> "Tensor":
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def _cast(self, dtype: Any) -> "Tensor":
        if self.data.dtype == dtype:
            return self
        return F.Cast.apply(self, dtype=np.dtype(dtype))

    def float(self) -> "Tensor":
        return self._cast(np.float32)

    def double(self) -> "Tensor":
        return self._cast(np.float64)

    def long(self) -> "Tensor":
        return Tensor(self.data.astype(np.int64))

    def to(self, device: str) -> "Tensor":
        """A copy on `device` ("cpu" or "cuda"; CUDA tensors hold CuPy arrays). Gradients flow back."""
        if device == self.device:
            return self
        return F.ToDevice.apply(self, device=device)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")


class MaxResult(tuple):
    """`(values, indices)` of `Tensor.max(dim)`, reachable by name as in torch."""

    def __new__(cls, values: Tensor, indices: Tensor) -> "MaxResult":
        return super().__new__(cls, (values, indices))

    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _dims(dim: Any, ndim: int) -> tuple | None:
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dims")
    return tuple(sorted(d % max(ndim, 1) for d in dims))


def _raw_index(index: Any) -> Any:
    """Tensors inside an index become their arrays; integer-array indices are checked to be integers."""
    if isinstance(index, tuple):
        return tuple(_raw_index(i) for i in index)
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, list):
        index = np.asarray(index)
    if hasattr(index, "dtype") and getattr(index, "ndim", 0) >= 0 and index.dtype.kind not in "iub":
        raise IndexError(f"tensors used as indices must be integer or bool, got dtype {index.dtype}")
    return index


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors of equal shape along a new dimension `dim`."""
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: `tensors` is empty")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: every tensor must have the same shape, got {sorted(shapes)}")
    return F.Stack.apply(*tensors, dim=dim % (tensors[0].ndim + 1))


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along the existing dimension `dim`."""
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: `tensors` is empty")
    dim = dim % max(tensors[0].ndim, 1)
    rest = {t.shape[:dim] + t.shape[dim + 1:] for t in tensors}
    if len(rest) != 1 or any(t.ndim != tensors[0].ndim for t in tensors):
        raise ValueError(f"cat: shapes {[t.shape for t in tensors]} differ outside dim {dim}")
    return F.Cat.apply(*tensors, dim=dim)


from minigrad import functions as F  # noqa: E402  (functions.py needs Function and Tensor from here)
