"""minigrad: a small, exact reference implementation of autodiff, vanilla RNNs and gradient clipping."""
from __future__ import annotations

import builtins
from typing import Any

import numba
import numpy as np

from minigrad import functions
from minigrad._promotion import as_array, default_dtype, set_default_dtype
from minigrad._promotion import result_type as _result_type
from minigrad._validation import ArgumentTypeError, TensorError, is_int
from minigrad.autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from minigrad.devices import device
from minigrad.random import Generator, generator, manual_seed
from minigrad.serialization import load, save
from minigrad.tensor import Tensor, cat, stack

__version__ = "0.2.0"

# dtypes by torch's names: NumPy dtype objects, so `t.dtype == minigrad.float32` holds
float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
int16 = short = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
complex64 = np.dtype(np.complex64)
complex128 = np.dtype(np.complex128)
globals()["bool"] = np.dtype(np.bool_)  # torch.bool; assigned this way so that this module can still call bool()
globals()["float"] = float32  # torch.float is float32
globals()["int"] = int32  # torch.int is int32


def _shape(shape: tuple) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _made(arr: np.ndarray, requires_grad: bool, device_: Any) -> Tensor:
    t = Tensor(arr, requires_grad=requires_grad)
    return t if device_ is None or device(device_) == "cpu" else t.to(device_)


def _dtype(dtype: Any, default: Any = None) -> np.dtype:
    return default_dtype(default if dtype is None else dtype)


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of `data` (Python floats become float32; arrays keep their dtype)."""
    source = data._data if isinstance(data, Tensor) else data
    arr = as_array(source, dtype)
    if arr is source or (isinstance(source, np.ndarray) and np.may_share_memory(arr, source)):
        arr = arr.copy()
    return _made(arr, requires_grad, device)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """A tensor sharing memory with `data` where it can (an ndarray of the right dtype), as torch.as_tensor."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return _made(as_array(data, dtype), False, device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with `array` (no copy), as torch.from_numpy."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects an np.ndarray, got {type(array).__name__}")
    return Tensor(array)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _made(np.zeros(_shape(size), dtype=_dtype(dtype)), requires_grad, device)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _made(np.ones(_shape(size), dtype=_dtype(dtype)), requires_grad, device)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _made(np.empty(_shape(size), dtype=_dtype(dtype)), requires_grad, device)


def full(size: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Filled with `fill_value`; the dtype follows it as in torch (a bool, an int or a float)."""
    if dtype is None:
        dtype = (np.bool_ if isinstance(fill_value, (builtins.bool, np.bool_)) else
                 np.int64 if isinstance(fill_value, (builtins.int, np.integer)) else default_dtype())
    return _made(np.full(_shape((size,)), fill_value, dtype=np.dtype(dtype)), requires_grad, device)


def _like(input: Tensor, dtype: Any) -> tuple:
    return input.shape, np.dtype(input.dtype if dtype is None else dtype), input.device


def zeros_like(input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(input, dtype)
    return _made(np.zeros(shape, dt), requires_grad, device or dev)


def ones_like(input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(input, dtype)
    return _made(np.ones(shape, dt), requires_grad, device or dev)


def full_like(input: Tensor, fill_value: Any, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(input, dtype)
    return _made(np.full(shape, fill_value, dt), requires_grad, device or dev)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """U[0, 1) from the generator `manual_seed` seeds."""
    return _made(generator().random(_shape(size)).astype(_dtype(dtype)), requires_grad, device)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """N(0, 1) from the generator `manual_seed` seeds."""
    return _made(generator().standard_normal(_shape(size)).astype(_dtype(dtype)), requires_grad, device)


def rand_like(input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(input, dtype)
    return _made(generator().random(shape).astype(dt), requires_grad, device or dev)


def randn_like(input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(input, dtype)
    return _made(generator().standard_normal(shape).astype(dt), requires_grad, device or dev)


def randint(low: Any, high: Any = None, size: Any = None, dtype: Any = None, device: Any = None) -> Tensor:
    """Integers in [low, high) (int64), as torch.randint(low=0, high, size)."""
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint() needs a size, e.g. randint(10, (3,))")
    return _made(generator().integers(low, high, size=_shape((size,))).astype(_dtype(dtype, np.int64)), False,
                 device)


def randint_like(input: Tensor, low: Any, high: Any = None, dtype: Any = None, device: Any = None) -> Tensor:
    """Integers in [low, high) shaped like `input`, in its dtype unless `dtype` is given (torch.randint_like)."""
    if high is None:  # randint_like(input, high)
        low, high = 0, low
    shape, dt, dev = _like(input, dtype)
    return _made(generator().integers(low, high, size=shape).astype(dt), False, device or dev)


def randperm(n: Any, dtype: Any = None, device: Any = None) -> Tensor:
    return _made(generator().permutation(n).astype(_dtype(dtype, np.int64)), False, device)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """[start, end) in steps; int64 for integer arguments, float32 otherwise (torch's rule)."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = builtins.all(isinstance(v, (builtins.int, np.integer)) and not isinstance(v, builtins.bool)
                   for v in (start, end, step))
        dtype = np.int64 if ints else default_dtype()
    if step == 0:
        raise TensorError("arange: step must be nonzero")
    return _made(np.arange(start, end, step).astype(np.dtype(dtype)), requires_grad, device)


def linspace(start: Any, end: Any, steps: Any, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    if not is_int(steps) or steps < 0:
        raise TensorError(f"linspace: steps must be a non-negative integer, got {steps!r}")
    return _made(np.linspace(start, end, steps).astype(_dtype(dtype)), requires_grad, device)


def eye(n: Any, m: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _made(np.eye(n, m, dtype=_dtype(dtype)), requires_grad, device)


# ----- functions on tensors: torch.f(x, ...) is x.f(...) ------------------------------------------------------
def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._wrap(as_array(x))


def _function_of_method(name: str) -> Any:
    def fn(input: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(_t(input), name)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"torch.{name}(input, ...): the same as input.{name}(...) (see Tensor.{name})."
    return fn


_METHODS = ("abs", "add", "addcdiv", "addcmul", "all", "allclose", "amax", "amin", "any", "argmax", "argmin", "argsort",
            "argwhere", "bernoulli", "bmm", "ceil", "chunk", "clamp", "clamp_max", "clamp_min", "cos", "cumprod",
            "cumsum", "diag", "div", "divide", "dot", "eq", "erf", "exp", "flatten", "flip", "floor", "floor_divide",
            "gather", "ge", "gt", "index_add", "index_fill", "index_put", "index_select", "is_floating_point",
            "isclose", "isfinite", "isinf", "isnan", "kthvalue", "le", "lerp", "log", "log_softmax", "logical_and",
            "logical_not", "logical_or", "logical_xor", "logsumexp", "lt", "masked_fill", "masked_select", "matmul",
            "max", "maximum", "mean", "median", "min", "minimum", "mm", "mul", "multinomial", "mv", "nan_to_num",
            "narrow", "ne", "neg", "nonzero", "norm", "outer", "permute", "pow", "prod", "reciprocal", "relu",
            "remainder", "repeat_interleave", "reshape", "roll", "round", "rsqrt", "scatter", "scatter_add", "select",
            "sigmoid", "sign", "sin", "softmax", "sort", "split", "sqrt", "square", "squeeze", "std", "sub", "sum", "t",
            "tanh", "topk", "transpose", "tril", "triu", "true_divide", "trunc", "unbind", "unfold", "unsqueeze", "var")
globals().update({name: _function_of_method(name) for name in _METHODS})


class finfo:  # noqa: N801 - torch's name
    """The limits of a floating dtype (the default one when omitted) as Python numbers, as torch.finfo: bits,
    eps, max, min, tiny (= smallest_normal) and resolution (10 to the minus the decimal digits it keeps)."""

    def __init__(self, type: Any = None) -> None:
        info = np.finfo(_dtype(type))
        self.dtype, self.bits, self.resolution = info.dtype.name, builtins.int(info.bits), 10.0 ** -info.precision
        self.eps, self.max, self.min = builtins.float(info.eps), builtins.float(info.max), builtins.float(info.min)
        self.tiny = self.smallest_normal = builtins.float(info.smallest_normal)


def iinfo(type: Any) -> np.iinfo:
    """The limits of an integer dtype: max, min, bits."""
    return np.iinfo(np.dtype(type))


def set_num_threads(n: builtins.int) -> None:
    """The number of threads minigrad's Numba kernels use, as torch.set_num_threads (capped at the number Numba
    started with, NUMBA_NUM_THREADS). Norms are the same to the bit for any number."""
    if not is_int(n) or n < 1:
        raise TensorError(f"set_num_threads: n must be a positive int, got {n!r}")
    numba.set_num_threads(builtins.min(builtins.int(n), numba.config.NUMBA_NUM_THREADS))


def get_num_threads() -> builtins.int:
    return numba.get_num_threads()


_deterministic = [False]


def use_deterministic_algorithms(mode: builtins.bool, *, warn_only: builtins.bool = False) -> None:
    """Accepted and remembered for torch scripts: minigrad's ops give the same bits on every run either way."""
    _deterministic[0] = builtins.bool(mode)


def are_deterministic_algorithms_enabled() -> builtins.bool:
    return _deterministic[0]


def get_default_dtype() -> np.dtype:
    """The dtype of floating tensors made from Python floats and of new layers' parameters (float32, as torch's,
    unless set_default_dtype changed it)."""
    return default_dtype()


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """`input` where `condition` holds, else `other`; they broadcast together (torch.where)."""
    first = input if isinstance(input, Tensor) or isinstance(other, Tensor) else _t(input)
    return functions.Where.apply(_t(condition)._data, first, other)


def einsum(equation: str, *operands: Any) -> Tensor:
    """torch.einsum: operands as separate arguments or one list; '...' and the implicit output supported."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): the equation must be a string, got {type(equation).__name__}")
    return functions.Einsum.apply(*[_t(x) for x in operands], equation=equation)


def equal(input: Tensor, other: Tensor) -> builtins.bool:
    """True when both have the same shape and elements."""
    return _t(input).equal(_t(other))


concat = concatenate = cat


# ----- torch's legacy typed constructors: LongTensor([1, 2]) holds the data, FloatTensor(2, 3) is uninitialised --
def _typed_constructor(name: str, dtype: np.dtype) -> Any:
    def make(*args: Any) -> Tensor:
        if len(args) == 1 and not isinstance(args[0], (builtins.int, np.integer)) or not args:
            return Tensor(np.array(args[0] if args else [], dtype=dtype))
        return Tensor(np.empty(_shape(args), dtype=dtype))

    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"torch.{name}(data) or torch.{name}(*sizes): a {dtype} tensor."
    return make


LongTensor = _typed_constructor("LongTensor", int64)
FloatTensor = _typed_constructor("FloatTensor", float32)
DoubleTensor = _typed_constructor("DoubleTensor", float64)
IntTensor = _typed_constructor("IntTensor", int32)
BoolTensor = _typed_constructor("BoolTensor", np.dtype(np.bool_))
ByteTensor = _typed_constructor("ByteTensor", uint8)


def is_tensor(obj: Any) -> builtins.bool:
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> builtins.int:
    return input.numel()


def result_type(tensor1: Any, tensor2: Any) -> np.dtype:
    """torch.result_type: the dtype an arithmetic op on the two would give."""
    return _result_type(*(x._data if isinstance(x, Tensor) else x for x in (tensor1, tensor2)))


__all__ = ["Tensor", "TensorError", "ArgumentTypeError", "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty",
           "full", "zeros_like", "ones_like", "full_like", "rand", "randn", "rand_like", "randn_like", "randint",
           "randperm", "arange", "linspace", "eye", "get_default_dtype", "set_default_dtype", "no_grad", "enable_grad",
           "inference_mode", "set_grad_enabled", "is_grad_enabled", "manual_seed", "save", "load", "stack", "cat",
           "concat", "concatenate", "device", "Generator", "where", "einsum", "allclose", "equal", "is_tensor", "numel",
           "result_type", "LongTensor", "FloatTensor", "DoubleTensor", "IntTensor", "BoolTensor", "ByteTensor",
           "float16", "half", "float32", "float64", "double", "int8", "uint8", "int16", "short", "int32", "int64",
           "long", "complex64", "complex128", "autograd", "backends", "cuda", "nn", "optim", "utils", "randint_like",
           "finfo", "iinfo", "set_num_threads", "get_num_threads", "use_deterministic_algorithms",
           "are_deterministic_algorithms_enabled"]

from minigrad import autograd, backends, cuda, nn, optim, utils  # noqa: E402  (torch users reach these as attributes)
