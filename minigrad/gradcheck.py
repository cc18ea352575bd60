"""gradcheck: autograd against central differences in float64.

The check projects the output on a fixed random direction v and compares d(v·f)/dx from backward with
(v·f(x + εe_i) − v·f(x − εe_i)) / 2ε for every input element i: one backward, 2·n forward evaluations.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from minigrad.autograd import no_grad
from minigrad.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when autograd and finite differences disagree."""


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor] | Tensor, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-4, raise_exception: bool = True, seed: int = 0) -> bool:
    """True when the gradients of `fn(*inputs)` match central differences for every input requiring grad.

    Inputs must be float64 Tensors (float32 differences are too coarse to mean anything).
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for x in checked:
        if x.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs must be float64, got {x.dtype} for an input of shape {x.shape}")
    out = fn(*inputs)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    saved = [x._grad for x in checked]
    for x in checked:
        x._grad = None
    (out * Tensor(v)).sum().backward()
    analytic = [np.zeros(x.shape) if x._grad is None else x._grad._data.copy() for x in checked]
    for x, g in zip(checked, saved):
        x._grad = g

    def projected() -> float:
        with no_grad():
            return float(np.sum(fn(*inputs)._data * v))

    for x, ana in zip(checked, analytic):
        flat = x._data.reshape(-1)
        num = np.empty(flat.size)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = projected()
            flat[i] = orig - eps
            minus = projected()
            flat[i] = orig
            num[i] = (plus - minus) / (2 * eps)
        num = num.reshape(x.shape)
        if not np.allclose(ana, num, rtol=rtol, atol=atol):
            if not raise_exception:
                return False
            worst = np.unravel_index(np.argmax(np.abs(ana - num)), x.shape) if x.shape else ()
            raise GradcheckError(f"gradcheck: input of shape {x.shape} at {worst}: "
                                 f"autograd {ana[worst]!r} vs finite differences {num[worst]!r}")
    return True
