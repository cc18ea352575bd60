"""torch.nn.utils' clipping functions, with torch's signatures and semantics. They collect the `.grad` arrays
(skipping None) and hand them to `minigrad.clip`; grads that are exactly a GradBuffer's go as its flat arrays.

Deliberate differences from torch (README, "Differences from PyTorch"): norms are accumulated in float64 and
float64 gradients are scaled by their largest element first, so ±2e200 gives a finite norm where torch
overflows to inf; the returned norm is then rounded to the gradients' dtype, as torch returns it.
"""
from __future__ import annotations

import math
import operator
import types
import warnings
from typing import Any

import numpy as np

from minigrad import clip
from minigrad._promotion import default_dtype
from minigrad._validation import check_real
from minigrad.devices import array_module
from minigrad.nn.utils.grad_buffer import as_tensors, clip_norm_grads_, fuse_buffer_views, grad_arrays, grads_and_buffer
from minigrad.tensor import Tensor


def _norm_tensor(norm: Any, arrays: list) -> Tensor:
    """The norm as a 0-d Tensor in the gradients' promoted dtype (the default dtype for no gradients), as torch
    returns it."""
    if not isinstance(norm, np.ndarray) and not type(norm).__module__.startswith("cupy"):
        import cupy  # a numba device array: CuPy views it without a copy

        norm = cupy.asarray(norm)
    if not arrays:
        dtype = default_dtype()
    else:
        dtypes = set(map(operator.attrgetter("dtype"), arrays))
        dtype = dtypes.pop() if len(dtypes) == 1 else np.result_type(*dtypes)
    return Tensor._wrap(norm.astype(dtype))


def _parameters(parameters: Any) -> Any:
    """Materialise a generator once (torch warns when it is empty: a consumed `model.parameters()`)."""
    if isinstance(parameters, types.GeneratorType):
        parameters = list(parameters)
        if not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    return parameters


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: Any = None) -> Tensor:
    """Scale all gradients by min(max_norm / (total_norm + 1e-6), 1), the total norm taken over all gradients
    as one vector.

    Args:
        parameters: a Tensor or an iterable of Tensors; gradients that are None are skipped.
        max_norm: a real number >= 0 (inf: nothing is scaled).
        norm_type: any real number or ±inf ("inf" too): 0 counts the non-zero elements (of all gradients;
            torch counts the non-zero tensors), negative orders and -inf (the smallest |g|) as in torch.
        error_if_nonfinite: raise RuntimeError, before any gradient changes, when the norm is NaN or inf.
        foreach: accepted for torch's signature; `minigrad.clip`'s backend choice decides the kernels.

    Returns:
        The total norm before clipping, a 0-d Tensor in the gradients' dtype.

    When the gradients are a GradBuffer's and a fused optimizer steps on it, the scaling is left to that step
    (see grad_buffer.py): `p.grad` still reads as clipped.
    """
    grads, buffer = grads_and_buffer(_parameters(parameters))
    norm = clip_norm_grads_(grads, buffer, max_norm, norm_type, error_if_nonfinite)
    return _norm_tensor(norm, grads)


def clip_grad_value_(parameters: Any, clip_value: float, foreach: Any = None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value] in place (NaN stays NaN).

    Args:
        parameters: a Tensor or an iterable of Tensors; gradients that are None are skipped.
        clip_value: a real number >= 0.
        foreach: accepted for torch's signature.
    """
    clip.clip_value_(grad_arrays(_parameters(parameters)), clip_value)


def get_total_norm(tensors: Any, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: Any = None) -> Tensor:
    """The norm of `tensors` taken as one vector.

    Args:
        tensors: a Tensor or an iterable of Tensors or arrays (typically the gradients); None entries skipped.
        norm_type: as `clip_grad_norm_`.
        error_if_nonfinite: raise RuntimeError when the norm is NaN or inf.
        foreach: accepted for torch's signature.

    Returns:
        The norm, a 0-d Tensor in the tensors' promoted dtype (the default dtype for none).
    """
    items = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    arrays = [t._data if isinstance(t, Tensor) else t for t in items if t is not None]
    norm = clip.total_norm(fuse_buffer_views(arrays), norm_type)
    if error_if_nonfinite:
        value = clip.host_value(norm)
        if not math.isfinite(value):
            raise RuntimeError(f"the total norm of order {norm_type} of the gradients is {value}, so they cannot "
                               "be clipped; set error_if_nonfinite=False to clip anyway")
    return _norm_tensor(norm, arrays)


def clip_grads_with_norm_(parameters: Any, max_norm: float, total_norm: Any, foreach: Any = None) -> None:
    """Scale the gradients by min(max_norm / (total_norm + 1e-6), 1) for a norm computed beforehand.

    Args:
        parameters: a Tensor or an iterable of Tensors; gradients that are None are skipped.
        max_norm: a real number >= 0.
        total_norm: the norm (a number or a 0-d Tensor, >= 0; NaN allowed, as in torch), e.g. from
            `get_total_norm`.
        foreach: accepted for torch's signature.
    """
    max_norm = check_real("max_norm", max_norm, minimum=0.0)
    if isinstance(total_norm, Tensor):
        total_norm = total_norm._data
    norm = check_real("total_norm", clip.host_value(array_module(total_norm).asarray(total_norm))
                           if hasattr(total_norm, "shape") else total_norm, minimum=0.0, allow_nan=True)
    grads = grad_arrays(_parameters(parameters))
    coef = clip.clip_coef(norm, max_norm)
    if grads and max_norm != math.inf and coef != 1.0:
        clip.scale_(grads, coef)


__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_", "as_tensors"]
