"""torch's dtype rules: what dtype a new tensor gets from its data, and what dtype an op on several operands
computes in (`result_type`, `promote`). Nothing here builds a tensor; functions/ and tensor.py call it.

Three priorities for an op's operands: tensors with dimensions, then 0-d tensors, then Python (and NumPy)
scalars. A lower priority only matters when it brings a higher category (bool < integer < floating < complex):
float32 + a 0-d float64 tensor stays float32, int64 + 2.5 becomes the default float dtype (float32 unless
set_default_dtype changed it), int64 + float32 is float32.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad._validation import TensorError
from minigrad.devices import array_module

_DEFAULT = [np.dtype(np.float32)]  # torch.set_default_dtype's one piece of global state
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def default_dtype(dtype: Any = None) -> np.dtype:
    """`dtype` as a NumPy dtype, or when it is None the dtype of floating tensors made from Python floats and of
    new parameters (float32 unless set_default_dtype changed it)."""
    return _DEFAULT[0] if dtype is None else np.dtype(dtype)


def default_complex_dtype() -> np.dtype:
    return np.dtype(np.complex128) if _DEFAULT[0] == np.float64 else np.dtype(np.complex64)


def set_default_dtype(dtype: Any) -> None:
    """torch.set_default_dtype: float16, float32 or float64 for what a Python float (or a new layer) becomes."""
    is_dtype = isinstance(dtype, np.dtype) or isinstance(dtype, type) and issubclass(dtype, np.generic)
    chosen = np.dtype(dtype) if is_dtype else None  # a dtype object, as torch takes; not a name
    if chosen is None or chosen not in _FLOATS:  # (None == float64 for NumPy dtypes)
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default type, got "
                        f"{dtype!r}")
    _DEFAULT[0] = chosen


def as_array(data: Any, dtype: Any = None) -> Any:
    """An array for `data` with torch's dtype rules: arrays keep their dtype, Python floats take the default."""
    data = getattr(data, "_data", data)  # a Tensor's array
    if isinstance(data, (np.ndarray, np.generic)) or type(data).__module__.startswith("cupy"):
        arr = array_module(data).asarray(data)
    else:
        try:
            arr = np.asarray(data, dtype=dtype)  # straight to the asked dtype: no detour through float32
        except ValueError:
            raise TensorError(f"cannot make a tensor from {type(data).__name__} holding ragged data") from None
        if arr.dtype == np.float64 and dtype is None:
            arr = arr.astype(default_dtype())
        elif arr.dtype == np.complex128 and dtype is None:
            arr = arr.astype(default_complex_dtype())
        elif arr.dtype == object or arr.dtype.kind in "USV":
            raise TensorError(f"cannot make a tensor from {type(data).__name__} holding {arr.dtype.name} data")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def _category(dt: np.dtype) -> int:
    return {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}[dt.kind]


def promote_types(a: np.dtype | None, b: np.dtype | None) -> np.dtype | None:
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
    return lower if ch >= 1 else promote_types(higher, lower)


def _priority(x: Any) -> tuple[int, np.dtype]:
    if isinstance(x, (bool, np.bool_)):
        return 2, np.dtype(np.bool_)
    if isinstance(x, (int, np.integer)):
        return 2, np.dtype(np.int64)
    if isinstance(x, (float, np.floating)):
        return 2, default_dtype()
    if isinstance(x, (complex, np.complexfloating)):
        return 2, default_complex_dtype()
    if not hasattr(x, "dtype") or not hasattr(x, "ndim"):
        raise TypeError(f"unsupported operand of type {type(x).__name__}: use a Tensor, an array or a number")
    return (1 if x.ndim == 0 else 0), x.dtype


def is_bool(x: Any) -> bool:
    """True for a bool scalar or a bool array."""
    return _priority(x)[1] == np.bool_


def result_type(*operands: Any) -> np.dtype:
    """torch.result_type for arrays (the tensors' data; 0-d ones count as 0-d tensors) and Python scalars."""
    levels: list = [None, None, None]
    for x in operands:
        level, dt = _priority(x)
        levels[level] = promote_types(levels[level], dt)
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


def floating(a: Any) -> Any:
    """Integer and bool inputs of a floating op (exp, tanh, ...) become the default float dtype, as in torch."""
    return a if a.dtype.kind in "fc" else a.astype(default_dtype())


__all__ = ["default_dtype", "default_complex_dtype", "set_default_dtype", "as_array", "promote_types", "result_type",
           "promote", "floating", "is_bool"]
