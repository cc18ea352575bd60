"""Parameters as one flat vector and back (torch.nn.utils.parameters_to_vector / vector_to_parameters)."""
from __future__ import annotations

from typing import Iterable

from minigrad._validation import TensorError
from minigrad.autograd import no_grad
from minigrad.tensor import Tensor, cat


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """The parameters flattened and joined in order into one 1-D tensor (differentiable, a copy)."""
    return cat([p.flatten() for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Each parameter's data becomes its slice of `vec` (a view of it, as in torch); the sizes must add up."""
    params = list(parameters)
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected vec to be a Tensor, but got {type(vec).__name__}")
    if vec.ndim != 1:
        raise TensorError(f"expected vec to be a 1-D Tensor, but it has {vec.ndim} dims")
    sizes = [p.numel() for p in params]
    if sum(sizes) != vec.numel():
        raise ValueError(f"vector_to_parameters: vec has {vec.numel()} elements, the parameters {sum(sizes)}")
    start = 0
    with no_grad():
        for p, n in zip(params, sizes):
            p.data = vec[start:start + n].view(p.shape).data
            start += n


__all__ = ["parameters_to_vector", "vector_to_parameters"]
