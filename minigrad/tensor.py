"""Tensor: an array, its gradient, and the edge of the graph that produced it.

The engine is micrograd's idea with minitorch's shape: every op is a `Function` (in functions.py) whose
`forward(ctx, ...)` works on raw arrays and whose `backward(ctx, grad)` returns one gradient per positional
input. `Tensor.backward` walks the graph in an order found *iteratively* (an RNN unrolled over thousands of
steps is a graph deeper than Python's recursion limit) and *accumulates* into the `.grad` of leaves.

As in torch, `.grad` is a Tensor (or None) and in-place methods bump a version counter shared by a tensor and
its views; backward raises when an array it saved has been modified in place since.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np

DEFAULT_DTYPE = np.dtype(np.float32)
_grad_enabled = True


class TensorError(RuntimeError, ValueError):
    """A bad argument that torch reports as RuntimeError (shapes that do not broadcast, mismatched dtypes, ...).

    Also a ValueError, so code written against earlier minigrad releases (`except ValueError`) still catches it.
    """


class no_grad:
    """Context manager and decorator: ops inside record no graph (as `torch.no_grad`)."""

    _enabled = False

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self._enabled

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager and decorator: record the graph again inside a `no_grad` block."""

    _enabled = True


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
        data = data._data
    if isinstance(data, (np.ndarray, np.generic)) or type(data).__module__.startswith("cupy"):
        arr = array_module(data).asarray(data)
    else:
        try:
            arr = np.asarray(data)
        except ValueError:
            raise TypeError(f"cannot make a tensor from {type(data).__name__} holding ragged data") from None
        if arr.dtype == np.float64:
            arr = arr.astype(DEFAULT_DTYPE)
        elif arr.dtype == np.complex128:
            arr = arr.astype(np.complex64)
        elif arr.dtype == object or arr.dtype.kind in "USV":
            raise TypeError(f"cannot make a tensor from {type(data).__name__} holding {arr.dtype.name} data")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


class TensorData(np.ndarray):
    """What `Tensor.data` hands out: the tensor's own array (same memory, a NumPy view), plus torch's in-place
    methods, so that `p.grad.data.clamp_(-1, 1)`, `p.data.copy_(w)` or `p.grad.data.zero_()` work as in torch.

    It is still an ndarray: NumPy functions, arithmetic and indexing behave as on any array (and their results
    keep the type, so `p.grad.data.abs().pow(2).sum()` chains as in torch). Writes through it are not seen by
    the version counter (as writes through torch's `.data` are not).
    """

    def _binary_(self, other: Any, ufunc: Any) -> "TensorData":
        ufunc(self, np.asarray(other), out=self, casting="unsafe")
        return self

    def zero_(self) -> "TensorData":
        self[...] = 0
        return self

    def fill_(self, value: Any) -> "TensorData":
        self[...] = value
        return self

    def copy_(self, src: Any) -> "TensorData":
        self[...] = np.asarray(src)
        return self

    def add_(self, other: Any, alpha: Any = 1) -> "TensorData":
        return self._binary_(np.asarray(other) * alpha if alpha != 1 else other, np.add)

    def sub_(self, other: Any, alpha: Any = 1) -> "TensorData":
        return self._binary_(np.asarray(other) * alpha if alpha != 1 else other, np.subtract)

    def mul_(self, other: Any) -> "TensorData":
        return self._binary_(other, np.multiply)

    def div_(self, other: Any) -> "TensorData":
        return self._binary_(other, np.true_divide)

    def clamp_(self, min: Any = None, max: Any = None) -> "TensorData":
        if min is None and max is None:
            raise TensorError("clamp_: at least one of `min` and `max` must be given")
        np.clip(self, min, max, out=self)
        return self

    def clamp(self, min: Any = None, max: Any = None) -> "TensorData":
        return np.clip(self, min, max)

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "TensorData":
        from minigrad.random import uniform_

        uniform_(self, a, b)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "TensorData":
        from minigrad.random import normal_

        normal_(self, mean, std)
        return self

    def abs(self) -> "TensorData":
        return np.abs(self)

    def pow(self, exponent: Any) -> "TensorData":
        return np.power(self, exponent)

    def numpy(self) -> np.ndarray:
        return self.view(np.ndarray)

    def cpu(self) -> "TensorData":
        return self

    def float(self) -> "TensorData":
        return self.astype(np.float32)

    def double(self) -> "TensorData":
        return self.astype(np.float64)

    def long(self) -> "TensorData":
        return self.astype(np.int64)


class Context:
    """What a Function keeps between forward and backward."""

    __slots__ = ("fn", "parents", "saved_tensors", "needs_input_grad", "freed", "watched", "__dict__")

    def __init__(self) -> None:
        self.saved_tensors: tuple = ()
        self.freed = False
        self.watched: tuple = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays


class Function:
    """An op: `forward(ctx, *arrays, **options) -> array`, `backward(ctx, grad) -> grad per positional input`.

    Positional arguments that are Tensors are the differentiable inputs; anything else (a Python number, an
    index) is a constant whose gradient slot backward fills with None.
    """

    # True where backward promises that every array it returns is new (allocated by this call, kept nowhere):
    # the engine may then add into it in place and store it as a leaf's .grad without a copy. One array
    # returned for two inputs is never taken over (the engine checks that).
    fresh_grads = False

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> "Tensor":
        ctx = Context()
        raw = [a._data if isinstance(a, Tensor) else a for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx.needs_input_grad = needs
        out = cls.forward(ctx, *raw, **kwargs)
        result = Tensor._wrap(out if type(out) is np.ndarray else array_module(out).asarray(out))
        base = getattr(out, "base", None)
        if base is not None:  # a view of an input shares its version counter, as in torch
            for a in args:
                if isinstance(a, Tensor) and (a._data is base or a._data.base is base):
                    result._versions = a._versions
                    break
        if _grad_enabled and any(needs):
            result.requires_grad = True
            ctx.fn = cls
            ctx.parents = tuple(a if isinstance(a, Tensor) else None for a in args)
            if ctx.saved_tensors:
                ctx.watched = _watch(ctx.saved_tensors, args, result, out)
            result._ctx = ctx
        return result


def _watch(saved: tuple, args: tuple, result: "Tensor", out: Any) -> tuple:
    """(tensor, version) for every saved array that is an input's or the output's own array (or the array the
    output is a view of: an op that saves a buffer and returns a view of it)."""
    watched = []
    out_base = getattr(out, "base", None)
    for arr in saved:
        if arr is out or (out_base is not None and out_base is arr):
            watched.append((result, result._versions[0], "output"))
            continue
        for i, a in enumerate(args):
            if isinstance(a, Tensor) and a._data is arr:
                watched.append((a, a._versions[0], f"input {i}"))
                break
    return tuple(watched)


def _check_versions(ctx: Context) -> None:
    for tensor, version, role in ctx.watched:
        now = tensor._versions[0]
        if now != version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: the {role} of {ctx.fn.__name__} (a tensor of shape {tuple(tensor.shape)}) is at "
                f"version {now}; expected version {version} instead")


class IndexGrad:
    """The gradient of an indexing op: zero except `values` at `index` of an array of `shape`.

    Kept sparse so that many slices of one tensor (an RNN reading x[t] for every t) accumulate in place into
    one dense array, instead of each allocating a full-size zero array: O(T) work instead of O(T²). `basic`:
    the index picks no element twice (basic indexing, or a gather known to be unique), so `dense[index] +=
    values` is exact; otherwise repeats are summed by `scatter_add`.
    """

    __slots__ = ("shape", "index", "values", "basic")

    def __init__(self, shape: tuple, index: Any, values: Any, basic: bool) -> None:
        self.shape, self.index, self.values, self.basic = shape, index, values, basic

    @property
    def dtype(self) -> Any:
        return self.values.dtype

    def astype(self, dtype: Any) -> "IndexGrad":
        return IndexGrad(self.shape, self.index, self.values.astype(dtype), self.basic)

    def add_into(self, dense: Any) -> Any:
        if self.basic:
            dense[self.index] += self.values
        else:
            scatter_add(dense, self.index, self.values)
        return dense

    def dense(self) -> Any:
        return self.add_into(array_module(self.values).zeros(self.shape, dtype=self.values.dtype))


def scatter_add(dense: Any, index: Any, values: Any) -> None:
    """dense[index] += values with repeated indices adding up (np.add.at's meaning), for the indices a gather
    makes: an integer array, or a tuple of integer arrays, over the leading dims.

    np.add.at is ~10x slower than this: the indices are flattened and sorted, repeats summed with one
    np.add.reduceat, and the sums added with one fancy assignment (which is exact when no index repeats).
    Other index forms (slices mixed with arrays, bool masks) go to np.add.at.
    """
    xp = array_module(dense)
    parts = index if isinstance(index, tuple) else (index,)
    if not all(hasattr(i, "dtype") and i.dtype.kind in "iu" for i in parts) or not dense.flags.c_contiguous:
        xp.add.at(dense, index, values)
        return
    lead = dense.shape[:len(parts)]
    flat_index = xp.ravel_multi_index(xp.broadcast_arrays(*parts), lead, mode="wrap") if len(parts) > 1 else \
        xp.where(parts[0] < 0, parts[0] + lead[0], parts[0])
    flat_index = flat_index.reshape(-1)
    rows = values.reshape((flat_index.size,) + dense.shape[len(parts):])
    target = dense.reshape((-1,) + dense.shape[len(parts):])
    order = xp.argsort(flat_index, kind="stable")
    ordered = flat_index[order]
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, bool), ordered[1:] != ordered[:-1]]))
    if starts.size == ordered.size:  # no index repeats
        target[flat_index] += rows
    else:
        target[ordered[starts]] += xp.add.reduceat(rows[order], starts, axis=0)


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
    """An n-dimensional array with autograd. `.data` is the array, `.grad` its gradient (a Tensor) or None."""

    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__  # == builds a tensor, so hashing must be by identity (as torch does)

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self._data = as_array(data, dtype)
        self._grad: Tensor | None = None
        self._ctx: Context | None = None
        self._versions = [0]  # shared with views of this tensor
        self._grad_view: Any = None  # set by GradBuffer: the slot .grad lives in
        self._grad_buffer: Any = None  # and the GradBuffer itself, kept alive by its parameters
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, arr: Any) -> "Tensor":
        """A tensor around `arr` itself (no copy, no checks): the engine's fast constructor."""
        t = cls.__new__(cls)
        t._data, t._grad, t._ctx, t._versions = arr, None, None, [0]
        t._grad_view = t._grad_buffer = None
        t.requires_grad = False
        return t

    # ----- data and grad ----------------------------------------------------------------------------
    @property
    def data(self) -> Any:
        """The array (NumPy: a TensorData view with torch's in-place methods; CuPy: the array itself)."""
        d = self._data
        return d.view(TensorData) if type(d) is np.ndarray else d

    @data.setter
    def data(self, value: Any) -> None:
        if isinstance(value, TensorData):
            value = value.view(np.ndarray)
        self._data = as_array(value)

    @property
    def grad(self) -> "Tensor | None":
        """The gradient, with any clip coefficient still pending on its GradBuffer applied first."""
        return self._settled_grad()

    def _settled_grad(self) -> "Tensor | None":
        """`.grad` for the library's own readers: a pending clip coefficient applied first."""
        buf = self._grad_buffer
        if buf is not None and buf.pending != 1.0:  # a clip that a fused step applies as it reads (grad_buffer.py)
            buf.settle()
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        """None, a Tensor, or an array (wrapped without a copy); its shape, dtype and device must be the tensor's."""
        if value is None:
            self._grad = None
            return
        grad = value if isinstance(value, Tensor) else Tensor._wrap(as_array(value))
        if grad.shape != self.shape:
            raise TensorError(f"assigned grad has data of a different size: {tuple(grad.shape)} for a tensor of "
                              f"shape {tuple(self.shape)}")
        if grad.dtype != self.dtype:
            raise TensorError(f"assigned grad has data of a different type: {grad.dtype} for a tensor of "
                              f"dtype {self.dtype}")
        if grad.device != self.device:
            raise TensorError(f"assigned grad is on {grad.device}, the tensor on {self.device}")
        self._grad = grad

    def _grad_array(self) -> Any:
        """The gradient's array or None (the hot paths read this, not `.grad`)."""
        g = self._grad
        return None if g is None else g._data

    def _set_grad_array(self, arr: Any) -> None:
        """Make `arr` the gradient, reusing the current grad Tensor so that references to it stay valid."""
        if self._grad is None:
            self._grad = Tensor._wrap(arr)
        else:
            self._grad._data = arr

    @property
    def _version(self) -> int:
        return self._versions[0]

    # ----- basic properties -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Any:
        """The Function that produced this tensor, or None for a leaf."""
        return None if self._ctx is None else self._ctx.fn

    @property
    def device(self) -> Any:
        from minigrad.devices import CPU, CUDA

        return CPU if type(self._data) is np.ndarray or array_module(self._data) is np else CUDA

    @property
    def is_cuda(self) -> bool:
        return array_module(self._data) is not np

    def size(self, dim: int | None = None) -> Any:
        return self._data.shape if dim is None else self._data.shape[dim]

    def numel(self) -> int:
        return int(self._data.size)

    def dim(self) -> int:
        return self._data.ndim

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __repr__(self) -> str:
        data = self._data if array_module(self._data) is np else self._data.get()
        body = np.array2string(data, separator=", ", prefix="tensor(")
        extra = "" if data.dtype in (np.float32, np.int64, np.bool_) else f", dtype={data.dtype}"
        grad = ", requires_grad=True" if self.requires_grad and self._ctx is None else ""
        fn = f", grad_fn=<{self._ctx.fn.__name__}Backward>" if self._ctx is not None else ""
        return f"tensor({body}{extra}{grad}{fn})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if array_module(self._data) is not np:
            raise TypeError("can't convert a CUDA tensor to a NumPy array: call .cpu() first")
        arr = self._data
        if dtype is not None and arr.dtype != dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self._data.dtype.kind not in "fc":
            raise TensorError(f"only floating point tensors can require gradients, got dtype {self._data.dtype}")
        if not requires_grad and self._ctx is not None:
            raise TensorError("you can only change requires_grad flags of leaf tensors; use detach()")
        self.requires_grad = requires_grad
        return self

    def item(self) -> Any:
        if self._data.size != 1:
            raise TensorError(f"item() needs a tensor with one element, got shape {self._data.shape}")
        return self._data.reshape(()).item()

    def numpy(self) -> np.ndarray:
        if array_module(self._data) is not np:
            raise TypeError("numpy() of a CUDA tensor: call .cpu() first")
        if self.requires_grad:
            raise TensorError("can't call numpy() on a tensor that requires grad: use tensor.detach().numpy()")
        return self._data

    def tolist(self) -> Any:
        return self._data.tolist()

    def detach(self) -> "Tensor":
        """The same array, without the graph; shares the version counter (in-place changes are seen by both)."""
        t = Tensor._wrap(self._data)
        t._versions = self._versions
        return t

    def detach_(self) -> "Tensor":
        self._ctx = None
        self.requires_grad = False
        return self

    def clone(self) -> "Tensor":
        return F.Clone.apply(self)

    def contiguous(self) -> "Tensor":
        return self

    # ----- in-place methods (torch's names); each bumps the version counter --------------------------
    def _inplace(self, op: str) -> Any:
        """Check that `op` may write into this tensor, bump its version, and return the array to write into."""
        if _grad_enabled and self.requires_grad:
            kind = "a leaf Variable that requires grad" if self._ctx is None else "a tensor that is part of a graph"
            raise TensorError(f"{op}: {kind} is being used in an in-place operation; do it under "
                              f"minigrad.no_grad() or on .data (minigrad does not record in-place ops)")
        self._versions[0] += 1
        return self._data

    def zero_(self) -> "Tensor":
        self._inplace("zero_")[...] = 0
        return self

    def fill_(self, value: Any) -> "Tensor":
        self._inplace("fill_")[...] = _raw(value)
        return self

    def copy_(self, src: Any) -> "Tensor":
        self._inplace("copy_")[...] = _raw(src)
        return self

    def _ufunc_(self, op: str, ufunc: Any, other: Any) -> "Tensor":
        arr = self._inplace(op)
        ufunc(arr, _raw(other), out=arr, casting="same_kind")
        return self

    def add_(self, other: Any, alpha: Any = 1) -> "Tensor":
        return self._ufunc_("add_", np.add, _raw(other) * alpha if alpha != 1 else other)

    def sub_(self, other: Any, alpha: Any = 1) -> "Tensor":
        return self._ufunc_("sub_", np.subtract, _raw(other) * alpha if alpha != 1 else other)

    def mul_(self, other: Any) -> "Tensor":
        return self._ufunc_("mul_", np.multiply, other)

    def div_(self, other: Any) -> "Tensor":
        return self._ufunc_("div_", np.true_divide, other)

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    def clamp_(self, min: Any = None, max: Any = None) -> "Tensor":
        if min is None and max is None:
            raise TensorError("clamp_: at least one of `min` and `max` must be given")
        arr = self._inplace("clamp_")
        array_module(arr).clip(arr, _raw(min), _raw(max), out=arr)
        return self

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "Tensor":
        from minigrad.random import uniform_

        uniform_(self._inplace("uniform_"), a, b)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "Tensor":
        from minigrad.random import normal_

        normal_(self._inplace("normal_"), mean, std)
        return self

    # ----- autograd ---------------------------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · gradient into every leaf's `.grad`.

        Without `retain_graph` the graph's saved arrays are freed, and a second backward through it raises.
        """
        if not self.requires_grad:
            raise TensorError("element 0 of tensors does not require grad and does not have a grad_fn")
        xp = array_module(self._data)
        if gradient is None:
            if self._data.size != 1:
                raise TensorError(f"grad can be implicitly created only for scalar outputs; backward() needs "
                                  f"`gradient` for an output of shape {self._data.shape}")
            gradient = xp.ones_like(self._data)
        else:
            gradient = as_array(gradient, self._data.dtype)
            if gradient.shape != self._data.shape:
                raise TensorError(f"`gradient` has shape {gradient.shape} but the tensor has shape "
                                  f"{self._data.shape}")
        order = _topological_order(self)
        for node in order:  # every check before the first gradient is written
            if node._ctx is not None:
                if node._ctx.freed:
                    raise RuntimeError("trying to backward through the graph a second time; "
                                       "use backward(retain_graph=True) the first time")
                _check_versions(node._ctx)
        grads: dict[int, Any] = {id(self): gradient}
        owned: dict[int, Any] = {}  # accumulators allocated here, safe to add into in place
        for node in reversed(order):
            grad = grads.pop(id(node), None)
            if grad is None:
                continue
            is_owned = owned.pop(id(grad), None) is not None
            if isinstance(grad, IndexGrad) and not (node._ctx is None and node._grad is not None):
                grad = grad.dense()
            ctx = node._ctx
            if ctx is None:
                node._accumulate(grad, is_owned)
                continue
            input_grads = ctx.fn.backward(ctx, grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, parent_grad in zip(ctx.parents, input_grads):
                if parent is None or parent_grad is None or not parent.requires_grad:
                    continue
                if parent_grad.dtype != parent._data.dtype:  # an op that promoted: back to the input's dtype
                    parent_grad = parent_grad.astype(parent._data.dtype)
                key = id(parent)
                if key in grads:
                    grads[key] = _sum_grads(grads[key], parent_grad, owned)
                else:
                    grads[key] = parent_grad
                    if ctx.fn.fresh_grads and sum(g is parent_grad for g in input_grads) == 1:
                        owned[id(parent_grad)] = parent_grad
            if not retain_graph:
                ctx.saved_tensors = ()
                ctx.__dict__.clear()
                ctx.freed = True

    def _accumulate(self, grad: Any, owned: bool = False) -> None:
        """Add `grad` into `.grad` in place (GradBuffer views stay views; aliases are never stored: `grad` itself
        becomes `.grad` only when the engine `owned` it, i.e. nothing else refers to it, as torch steals it)."""
        self._settled_grad()
        if isinstance(grad, IndexGrad):
            grad.values = grad.values.astype(self._data.dtype, copy=False)
            grad.add_into(self._grad._data)  # backward only keeps it sparse when .grad exists
            return
        if self._grad is not None:
            self._grad._data += grad
        elif self._grad_view is not None:
            self._grad_view[...] = grad
            self._grad = Tensor._wrap(self._grad_view)
        elif owned and grad.flags.c_contiguous:
            self._grad = Tensor._wrap(grad)
        else:
            self._grad = Tensor._wrap(array_module(grad).array(grad, copy=True))

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

    def _gather(self, index: Any) -> "Tensor":
        """self[index] for an index that picks no element twice (a permutation, a gather): cheaper backward."""
        return F.GetItem.apply(self, index=index, unique=True)

    def __setitem__(self, index: Any, value: Any) -> None:
        self._inplace("__setitem__")[_raw_index(index)] = _raw(value)

    def _compare(self, other: Any, op: Callable) -> "Tensor":
        other = _raw(other)
        if isinstance(other, (list, tuple)):
            other = array_module(self._data).asarray(other)
        a, b = F.promote(self._data, other)
        return Tensor._wrap(array_module(a).asarray(op(a, b)))

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
        if self._data.size != 1:
            raise TensorError(f"the truth value of a tensor with shape {self._data.shape} is ambiguous")
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
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

    def clamp(self, min: Any = None, max: Any = None) -> "Tensor":
        """Elements limited to [min, max]; the gradient passes where the input was inside (torch's rule)."""
        if min is None and max is None:
            raise TensorError("clamp: at least one of `min` and `max` must be given")
        return F.Clamp.apply(self, lo=_raw(min), hi=_raw(max))

    clip = clamp

    def matmul(self, other: Any) -> "Tensor":
        return self @ other

    def sum(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        return F.Sum.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        if self.dtype.kind not in "fc":
            raise TensorError(f"mean(): could not infer output dtype: the input dtype must be floating point or "
                              f"complex, got {self.dtype}")
        dims = _dims(dim, self.ndim)
        count = math.prod(self.shape[d] for d in dims) if dims is not None else self.numel()
        return F.Sum.apply(self, dim=dims, keepdim=keepdim) / count

    def max(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """Without `dim` the largest element; with `dim` a `(values, indices)` pair, as in torch."""
        if dim is None:
            return F.MaxAll.apply(self)
        dim = _dims(dim, self.ndim)[0]
        values = F.MaxDim.apply(self, dim=dim, keepdim=keepdim)
        return MaxResult(values, self.argmax(dim, keepdim))

    def min(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """Without `dim` the smallest element; with `dim` a `(values, indices)` pair, as in torch."""
        if dim is None:
            return -F.MaxAll.apply(-self)
        values, _ = (-self).max(dim, keepdim)
        return MaxResult(-values, self.argmin(dim, keepdim))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        return self._arg(self._data.argmax, dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        return self._arg(self._data.argmin, dim, keepdim)

    def _arg(self, fn: Callable, dim: int | None, keepdim: bool) -> "Tensor":
        if dim is None:
            return Tensor._wrap(array_module(self._data).asarray(fn()))
        dim = _dims(dim, self.ndim)[0]
        idx = fn(axis=dim)
        return Tensor._wrap(array_module(idx).expand_dims(idx, dim) if keepdim else idx)

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
        return F.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim: int = -1) -> "Tensor":
        return F.LogSoftmax.apply(self, dim=dim)

    def reshape(self, *shape: Any) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return F.Reshape.apply(self, shape=shape)

    view = reshape

    def view_as(self, other: "Tensor") -> "Tensor":
        return self.reshape(other.shape)

    def flatten(self) -> "Tensor":
        return self.reshape(-1)

    def permute(self, *dims: Any) -> "Tensor":
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        if sorted(d % self.ndim for d in dims) != list(range(self.ndim)):
            raise TensorError(f"permute: dims {dims} are not a permutation of the {self.ndim} dims of {self.shape}")
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
        dtype = np.dtype(dtype)
        if self._data.dtype == dtype:
            return self
        if dtype.kind not in "fc" and self.requires_grad:
            return Tensor._wrap(self._data.astype(dtype))  # integer results carry no gradient
        return F.Cast.apply(self, dtype=dtype)

    def float(self) -> "Tensor":
        return self._cast(np.float32)

    def double(self) -> "Tensor":
        return self._cast(np.float64)

    def half(self) -> "Tensor":
        return self._cast(np.float16)

    def long(self) -> "Tensor":
        return self._cast(np.int64)

    def int(self) -> "Tensor":
        return self._cast(np.int32)

    def bool(self) -> "Tensor":
        return self._cast(np.bool_)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self._cast(other.dtype)

    def to(self, *args: Any, **kwargs: Any) -> "Tensor":
        """A copy on another device ("cpu" or "cuda"; CUDA tensors hold CuPy arrays) and/or of another dtype,
        as torch's `to(device)`, `to(dtype)`, `to(device, dtype)` or `to(other)`. Gradients flow back."""
        if len(args) == 1 and isinstance(args[0], str) and args[0] == "cpu" and not kwargs and \
                type(self._data) is np.ndarray:
            return self  # the common `.to(device)` of a CPU script: nothing to do
        from minigrad.devices import parse_to

        device, dtype = parse_to(args, kwargs)
        out = self if dtype is None else self._cast(dtype)
        if device is not None and device != out.device:
            out = F.ToDevice.apply(out, device=device)
        return out

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


def _raw(x: Any) -> Any:
    """A Tensor's array, anything else as it is."""
    return x._data if isinstance(x, Tensor) else x


def _dims(dim: Any, ndim: int) -> tuple | None:
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dims")
    return tuple(sorted(d % max(ndim, 1) for d in dims))


def _raw_index(index: Any) -> Any:
    """Tensors inside an index become their arrays; integer-array indices are checked to be integers."""
    if isinstance(index, tuple):
        return tuple(_raw_index(i) for i in index)
    if isinstance(index, Tensor):
        index = index._data
    if isinstance(index, list):
        index = np.asarray(index)
    if hasattr(index, "dtype") and getattr(index, "ndim", 0) >= 0 and index.dtype.kind not in "iub":
        raise IndexError(f"tensors used as indices must be integer or bool, got dtype {index.dtype}")
    return index


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors of equal shape along a new dimension `dim`."""
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise TensorError("stack expects a non-empty list of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise TensorError(f"stack expects each tensor to be equal size, got {sorted(shapes)}")
    return F.Stack.apply(*tensors, dim=dim % (tensors[0].ndim + 1))


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along the existing dimension `dim`."""
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise TensorError("cat expects a non-empty list of tensors")
    dim = dim % max(tensors[0].ndim, 1)
    rest = {t.shape[:dim] + t.shape[dim + 1:] for t in tensors}
    if len(rest) != 1 or any(t.ndim != tensors[0].ndim for t in tensors):
        raise TensorError(f"cat: shapes {[t.shape for t in tensors]} differ outside dim {dim}")
    return F.Cat.apply(*tensors, dim=dim)


from minigrad import functions as F  # noqa: E402  (functions.py needs Function and Tensor from here)
