"""Tensor: an array, its gradient, and the node of the graph that produced it.

Every op is a `Function` (minigrad/functions/) whose forward works on raw arrays; the graph, the backward
engine and the version counters live in minigrad/autograd/. As in torch, `.grad` is a Tensor (or None) and in-place
methods bump a version counter shared by a tensor and its views.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from minigrad import functions
from minigrad._promotion import as_array, default_dtype
from minigrad._validation import ArgumentTypeError, TensorError
from minigrad.autograd import TensorBase, engine, unwrap
from minigrad.devices import array_module, device_of, parse_to
from minigrad.tensor_data import TensorData
from minigrad.tensor_inplace import InplaceMethods
from minigrad.tensor_math import MathMethods
from minigrad.tensor_order import OrderMethods
from minigrad.tensor_shape import ShapeMethods


def _constructed(data: Any, sizes: tuple, dtype: Any) -> Any:
    """The array behind `Tensor(data, *sizes)`: integers are sizes, a Python sequence is data in the default
    dtype (torch.Tensor's rules); anything else is an array, a scalar or a Tensor (see as_array)."""
    if data is None or (isinstance(data, int) and not isinstance(data, bool)):
        shape = (0,) if data is None else (data, *sizes)
        if sizes and data is None or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
            raise ArgumentTypeError(f"Tensor(*sizes): the sizes must be ints, got {(data, *sizes)}")
        if min(shape) < 0:
            raise TensorError(f"Tensor(*sizes): Trying to create tensor with negative dimension {min(shape)}")
        return np.empty(shape, dtype=default_dtype(dtype))
    if sizes:
        raise ArgumentTypeError(f"Tensor(data, *sizes): sizes are taken only without data, as in Tensor(2, 3); "
                                f"got data of type {type(data).__name__} and sizes {sizes}")
    if dtype is None and isinstance(data, (list, tuple)):
        dtype = default_dtype()
    return as_array(data, dtype)


class Tensor(MathMethods, OrderMethods, ShapeMethods, InplaceMethods, TensorBase):
    """An n-dimensional array with autograd. `.data` is the array, `.grad` its gradient (a Tensor) or None.

    The methods live by kind: arithmetic and reductions in tensor_math.py, sorting in tensor_order.py, shapes and
    indexing in tensor_shape.py, in-place methods in tensor_inplace.py; here are storage, the gradient,
    conversions and autograd."""

    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__  # == builds a tensor, so hashing must be by identity (as torch does)

    def __init__(self, data: Any = None, *sizes: int, requires_grad: bool = False, dtype: Any = None) -> None:
        """As torch.Tensor: `Tensor(2, 3)` is uninitialised, `Tensor([1, 2])` holds the data in the default float
        dtype, `Tensor()` is empty. An array (or a Tensor) keeps its dtype and memory, unless `dtype` is given."""
        self._data = _constructed(data, sizes, dtype)
        self._grad: Tensor | None = None
        self._node: Any = None
        self._accumulator: Any = None
        self._versions = [0]  # shared with views of this tensor
        self._grad_view: Any = None  # set by GradBuffer: the slot .grad lives in
        self._grad_buffer: Any = None  # and the GradBuffer itself, kept alive by its parameters
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(arr: Any) -> "Tensor":
        """A Tensor around `arr` itself (no copy, no checks): the engine's fast constructor."""
        t = Tensor.__new__(Tensor)
        t._data, t._grad, t._node, t._versions, t._accumulator = arr, None, None, [0], None
        t._grad_view = t._grad_buffer = None
        t._requires_grad = False
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
        return self.grad_fn is None  # grad_fn: a stale view's node is rebuilt first

    @property
    def grad_fn(self) -> Any:
        """The node of the op that produced this tensor (its Context), or None for a leaf."""
        if self._base is not None:
            self.requires_grad  # noqa: B018 - rebuilds a stale view's node
        return self._node

    @property
    def requires_grad(self) -> bool:
        return TensorBase.requires_grad.fget(self)

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

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

    def stride(self, dim: int | None = None) -> Any:
        """The steps between elements along each dim, in elements (torch's stride; NumPy's strides are bytes)."""
        steps = tuple(s // self._data.itemsize for s in self._data.strides)
        return steps if dim is None else steps[dim]

    def element_size(self) -> int:
        return int(self._data.itemsize)

    itemsize = property(element_size)
    nbytes = property(lambda self: int(self._data.nbytes))

    nelement = numel

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __repr__(self) -> str:
        data = self._data if array_module(self._data) is np else self._data.get()
        body = np.array2string(data, separator=", ", prefix="tensor(")
        extra = "" if data.dtype in (default_dtype(), np.int64, np.bool_) else f", dtype={data.dtype}"
        grad = ", requires_grad=True" if self.requires_grad and self._node is None else ""
        fn = f", grad_fn=<{self._node.name()}>" if self._node is not None else ""
        return f"tensor({body}{extra}{grad}{fn})"

    def __format__(self, format_spec: str) -> str:
        """A 0-d tensor formats as its number (f"{loss:.4f}"), as in torch."""
        return format(self.item(), format_spec) if self.ndim == 0 else object.__format__(self, format_spec)

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
            raise TensorError("you can only change requires_grad flags of leaf variables. If you want to use a "
                              "computed variable in a subgraph that doesn't require differentiation use "
                              "var_no_grad = var.detach().")
        self._requires_grad = bool(requires_grad)
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
        if self._base is not None:
            raise TensorError("Can't detach views in-place. Use detach() instead")
        self._node = None
        self._requires_grad = False
        return self

    def clone(self) -> "Tensor":
        return functions.Clone.apply(self)

    def contiguous(self, memory_format: Any = None) -> "Tensor":
        """self when its elements lie in C order, else a C-ordered copy (differentiable), as torch."""
        return self if self.is_contiguous() else functions.Clone.apply(self)

    def is_contiguous(self, memory_format: Any = None) -> bool:
        return bool(self._data.flags.c_contiguous)

    # ----- autograd ---------------------------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs: Any = None) -> None:
        """Accumulate d(self)/d(leaf) · gradient into every leaf's `.grad` (see autograd.backward).

        Args:
            gradient: d(loss)/d(self), of self's shape; None for a one-element tensor (then 1).
            retain_graph: keep the graph's saved arrays; without it a second backward through the graph raises.
            create_graph: not supported (no higher-order gradients).
            inputs: accumulate into these tensors' `.grad` only (torch's `inputs=`).
        """
        if gradient is not None:
            gradient = as_array(gradient, self._data.dtype)
        engine.backward(self, [gradient], retain_graph, create_graph, inputs)

    def register_hook(self, hook: Any) -> Any:
        """Call `hook(grad)` with the gradient of this tensor during backward; a returned tensor replaces it.

        Returns:
            A handle whose `remove()` takes the hook off.
        """
        if not self.requires_grad:
            raise TensorError("cannot register a hook on a tensor that doesn't require gradient")
        if self._node is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            hooks = self._node.__dict__.setdefault("hooks", [])
            self._node.wrap = Tensor._wrap
        hooks.append(hook)
        return HookHandle(hooks, hook)

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in `.grad` during backward (a leaf keeps it anyway)."""
        if not self.requires_grad:
            raise TensorError("can't retain_grad on Tensor that has requires_grad=False")
        if self._node is None or self.__dict__.get("_retains_grad"):
            return
        self._retains_grad = True

        def keep(grad: Any) -> None:  # runs after the node's other hooks, as torch's retains_grad hook does
            self._grad = Tensor._wrap(grad.copy()) if self._grad is None else Tensor._wrap(self._grad._data + grad)

        self._node.retains = keep

    @property
    def retains_grad(self) -> bool:
        return bool(self.__dict__.get("_retains_grad"))

    def _accumulate(self, grad: Any, owned: bool) -> None:  # see TensorBase
        """Add `grad` into `.grad` in place (GradBuffer views stay views; aliases are never stored: `grad` itself
        becomes `.grad` only when the engine `owned` it, i.e. nothing else refers to it, as torch steals it)."""
        self._settled_grad()
        if isinstance(grad, engine.IndexGrad):
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

    def cuda(self, device: Any = None) -> "Tensor":
        return self.to("cuda")

    def type(self, dtype: Any = None) -> Any:
        """Without an argument the type's name (torch's "torch.FloatTensor"); with a dtype, a cast to it."""
        if dtype is None:
            names = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
                     "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}
            prefix = "torch.cuda." if self.is_cuda else "torch."
            return f"{prefix}{names.get(self.dtype.name, self.dtype.name)}Tensor"
        return self._cast(dtype)

    # ----- new tensors like this one (torch's new_* methods: this one's dtype and device by default) --------------
    def _new(self, arr: Any, dtype: Any, device: Any, requires_grad: bool) -> "Tensor":
        t = Tensor(arr, dtype=self.dtype if dtype is None else np.dtype(dtype))
        device = self.device if device is None else device
        if device != "cpu":
            t = Tensor._wrap(t.to(device)._data)
        return t.requires_grad_(requires_grad) if requires_grad else t

    def new_zeros(self, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> "Tensor":
        return self._new(np.zeros(_size(size)), dtype, device, requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> "Tensor":
        return self._new(np.ones(_size(size)), dtype, device, requires_grad)

    def new_full(self, size: Any, fill_value: Any, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False) -> "Tensor":
        return self._new(np.full(_size((size,)), fill_value), dtype, device, requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> "Tensor":
        return self._new(np.empty(_size(size)), dtype, device, requires_grad)

    def new_tensor(self, data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> "Tensor":
        """A copy of `data` as a new leaf, of this tensor's dtype unless `dtype` is given (torch's rule)."""
        return self._new(np.array(unwrap(data), copy=True), dtype, device, requires_grad)


class HookHandle:
    """What register_hook (and a Module's register_forward_hook) returns: `remove()` takes the hook off."""

    def __init__(self, hooks: list, hook: Any) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _size(size: tuple) -> tuple:
    """torch's size arguments: f(2, 3) or f((2, 3)) or f([2, 3])."""
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)


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
