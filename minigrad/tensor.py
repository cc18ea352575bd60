"""Tensor: an array, its gradient, and the node of the graph that produced it.

Every op is a `Function` (minigrad/functions/) whose forward works on raw arrays; the graph, the backward
engine and the version counters live in autograd.py. As in torch, `.grad` is a Tensor (or None) and in-place
methods bump a version counter shared by a tensor and its views.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from minigrad import autograd, functions
from minigrad._promotion import as_array
from minigrad._validation import TensorError
from minigrad.autograd import TensorBase, is_grad_enabled, unwrap
from minigrad.devices import array_module, device_of, parse_to
from minigrad.random import normal_, uniform_
from minigrad.tensor_data import TensorData
from minigrad.tensor_math import MathMethods
from minigrad.tensor_shape import ShapeMethods, raw_index


class Tensor(MathMethods, ShapeMethods, TensorBase):
    """An n-dimensional array with autograd. `.data` is the array, `.grad` its gradient (a Tensor) or None."""

    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__  # == builds a tensor, so hashing must be by identity (as torch does)

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self._data = as_array(data, dtype)
        self._grad: Tensor | None = None
        self._node: Any = None
        self._accumulator: Any = None
        self._versions = [0]  # shared with views of this tensor
        self._grad_view: Any = None  # set by GradBuffer: the slot .grad lives in
        self._grad_buffer: Any = None  # and the GradBuffer itself, kept alive by its parameters
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(arr: Any) -> "Tensor":
        """A Tensor around `arr` itself (no copy, no checks): the engine's fast constructor."""
        t = Tensor.__new__(Tensor)
        t._data, t._grad, t._node, t._versions, t._accumulator = arr, None, None, [0], None
        t._grad_view = t._grad_buffer = None
        t.requires_grad = False
        return t

    def __getstate__(self) -> dict:
        """What copy.deepcopy and pickle take: everything but the weak reference to the leaf's graph node."""
        return {**self.__dict__, "_accumulator": None}

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
        if buf is not None:  # a clip that a fused step would apply as it reads it (grad_buffer.py)
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
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        """The node of the op that produced this tensor (its Context), or None for a leaf."""
        return self._node

    @property
    def device(self) -> Any:
        return device_of(self._data)

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
        grad = ", requires_grad=True" if self.requires_grad and self._node is None else ""
        fn = f", grad_fn=<{self._node.name()}>" if self._node is not None else ""
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
        if not requires_grad and self._node is not None:
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
        self._node = None
        self.requires_grad = False
        return self

    def clone(self) -> "Tensor":
        return functions.Clone.apply(self)

    def contiguous(self) -> "Tensor":
        return self

    # ----- in-place methods (torch's names); each bumps the version counter --------------------------
    def _inplace(self, op: str) -> Any:
        """Check that `op` may write into this tensor, bump its version, and return the array to write into."""
        if is_grad_enabled() and self.requires_grad:
            kind = "a leaf Variable that requires grad" if self._node is None else "a tensor that is part of a graph"
            raise TensorError(f"{op}: {kind} is being used in an in-place operation; do it under "
                              f"minigrad.no_grad() or on .data (minigrad does not record in-place ops)")
        self._versions[0] += 1
        return self._data

    def zero_(self) -> "Tensor":
        self._inplace("zero_")[...] = 0
        return self

    def fill_(self, value: Any) -> "Tensor":
        self._inplace("fill_")[...] = unwrap(value)
        return self

    def copy_(self, src: Any) -> "Tensor":
        self._inplace("copy_")[...] = unwrap(src)
        return self

    def _ufunc_(self, op: str, ufunc: Any, other: Any) -> "Tensor":
        arr = self._inplace(op)
        ufunc(arr, unwrap(other), out=arr, casting="same_kind")
        return self

    def add_(self, other: Any, alpha: Any = 1) -> "Tensor":
        return self._ufunc_("add_", np.add, unwrap(other) * alpha if alpha != 1 else other)

    def sub_(self, other: Any, alpha: Any = 1) -> "Tensor":
        return self._ufunc_("sub_", np.subtract, unwrap(other) * alpha if alpha != 1 else other)

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
        array_module(arr).clip(arr, unwrap(min), unwrap(max), out=arr)
        return self

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "Tensor":
        uniform_(self._inplace("uniform_"), a, b)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "Tensor":
        normal_(self._inplace("normal_"), mean, std)
        return self

    # ----- autograd ---------------------------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · gradient into every leaf's `.grad` (see autograd.backward).

        Without `retain_graph` the graph's saved arrays are freed, and a second backward through it raises.
        """
        if gradient is not None:
            gradient = as_array(gradient, self._data.dtype)
        autograd.backward(self, gradient, retain_graph)

    def _accumulate(self, grad: Any, owned: bool = False) -> None:
        """Add `grad` into `.grad` in place (GradBuffer views stay views; aliases are never stored: `grad` itself
        becomes `.grad` only when the engine `owned` it, i.e. nothing else refers to it, as torch steals it)."""
        self._settled_grad()
        if isinstance(grad, autograd.IndexGrad):
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

    def __setitem__(self, index: Any, value: Any) -> None:
        self._inplace("__setitem__")[raw_index(index)] = unwrap(value)

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

    def _cast(self, dtype: Any) -> "Tensor":
        dtype = np.dtype(dtype)
        if self._data.dtype == dtype:
            return self
        if dtype.kind not in "fc" and self.requires_grad:
            return Tensor._wrap(self._data.astype(dtype))  # integer results carry no gradient
        return functions.Cast.apply(self, dtype=dtype)

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
        device, dtype = parse_to(args, kwargs)
        out = self if dtype is None else self._cast(dtype)
        if device is not None and device != out.device:
            out = functions.ToDevice.apply(out, device=device)
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors of equal shape along a new dimension `dim`."""
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise TensorError("stack expects a non-empty list of tensors")
    return functions.Stack.apply(*tensors, dim=dim)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along the existing dimension `dim`."""
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise TensorError("cat expects a non-empty list of tensors")
    return functions.Cat.apply(*tensors, dim=dim)
