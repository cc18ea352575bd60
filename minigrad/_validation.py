"""Argument checks, one rule each, used by every layer (tensors, clipping, nn, optim) so that the same bad value
gets the same message everywhere. Nothing here imports the rest of minigrad.

Every check runs before the caller touches anything: a call that raises has changed nothing.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


class TensorError(RuntimeError, ValueError):
    """A bad argument that torch reports as RuntimeError (shapes that do not broadcast, mismatched dtypes, ...).

    Also a ValueError, so code written against earlier minigrad releases (`except ValueError`) still catches it.
    """


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a float where torch wants an int, None where it wants a bool, ...): a
    TypeError as torch raises, and a ValueError as minigrad's other argument errors are."""


def check_real(name: str, value: Any, minimum: float | None = None, allow_nan: bool = False) -> float:
    """`value` as a float, by one rule for every numeric argument.

    Args:
        name: the argument's name, for the message.
        value: Python and NumPy numbers, 0-d arrays and 0-d Tensors are accepted; bools, strings, arrays with
            dimensions and other objects are not. inf is a number.
        minimum: values below it are rejected.
        allow_nan: NaN is rejected unless this is True.

    Returns:
        The value as a Python float.

    Raises:
        ArgumentTypeError: naming `name`, for a value that is not a real number (a TypeError and a ValueError).
        ValueError: naming `name`, for NaN or a value below `minimum`.
    """
    if type(value) is float or type(value) is int:  # the common case, first
        number = float(value)
    else:
        raw = getattr(value, "_data", value)  # a Tensor's array
        if isinstance(raw, (bool, np.bool_, str, bytes)):
            raise ArgumentTypeError(f"{name} must be a real number, got {value!r}")
        if isinstance(raw, numbers.Real):
            number = float(raw)
        elif getattr(raw, "shape", None) == () and getattr(raw, "dtype", np.dtype(object)).kind in "iuf":
            number = float(raw.item() if hasattr(raw, "item") else raw)
        else:
            raise ArgumentTypeError(f"{name} must be a real number (a Python or NumPy number, or a 0-d array), "
                             f"got {value!r}")
    if number != number and not allow_nan:
        raise ValueError(f"{name} must not be NaN")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {number!r}")
    return number


def check_nonnegative(name: str, value: Any) -> float:
    """A real number >= 0 (inf allowed), by check_real's rule."""
    return check_real(name, value, minimum=0.0)


def check_norm_type(norm_type: Any) -> float:
    """The norm order as a float: any real number or ±inf (also "inf" and "-inf"); NaN is a ValueError."""
    if isinstance(norm_type, str):
        spelled = norm_type.strip().lower()
        if spelled in ("inf", "+inf", "infinity"):
            return math.inf
        if spelled in ("-inf", "-infinity"):
            return -math.inf
        raise ValueError(f"norm_type must be a real number or 'inf', got {norm_type!r}")
    return check_real("norm_type", norm_type)


def check_positive_order(name: str, norm_type: Any) -> float:
    """A norm order > 0 or inf (the orders whose per-unit norms make sense to compare), by check_norm_type."""
    p = check_norm_type(norm_type)
    if not p > 0:
        raise ValueError(f"{name} must be > 0 or inf, got {norm_type!r}")
    return p


def is_int(value: Any) -> bool:
    """Whether `value` is an int or a NumPy integer, and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_positive_int(name: str, value: Any, optional: bool = False) -> int | None:
    """A positive int (NumPy integers too; not a bool), or None when `optional`."""
    if value is None and optional:
        return None
    if not is_int(value):
        raise ArgumentTypeError(f"{name} must be a positive int{' or None' if optional else ''}, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if optional else ''}, got {value!r}")
    return int(value)


def check_probability(name: str, p: Any) -> float:
    """A probability in [0, 1], by check_real's rule."""
    p = check_real(name, p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} has to be between 0 and 1, but got {p}")
    return p


def check_flag(name: str, value: Any, optional: bool = False) -> None:
    """`value` must be True or False (a NumPy bool too), or None when `optional`."""
    if not ((value is None and optional) or isinstance(value, (bool, np.bool_))):
        raise ArgumentTypeError(f"{name} must be True or False{' or None' if optional else ''}, got {value!r}")


def check_dims(dim: Any, ndim: int) -> tuple | None:
    """`dim` (an int, a sequence of ints, or None for all) as sorted non-negative dims of an `ndim`-d tensor;
    IndexError for one out of range, as torch raises."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"Dimension out of range (expected to be in range of [{-max(ndim, 1)}, "
                             f"{max(ndim, 1) - 1}], but got {d})")
    return tuple(sorted(d % max(ndim, 1) for d in dims))


__all__ = ["TensorError", "ArgumentTypeError", "check_real", "check_nonnegative", "check_norm_type",
           "check_positive_order", "is_int", "check_positive_int", "check_probability", "check_flag", "check_dims"]
