"""The Tensor's shape and indexing methods: views, reshapes, permutations and indexing, each dispatching to
the Function that computes it (minigrad/functions/shape.py). `Tensor` inherits these."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from minigrad import functions
from minigrad._validation import TensorError
from minigrad.autograd import TensorBase

if TYPE_CHECKING:  # annotations only: tensor.py builds Tensor from these methods
    from minigrad.tensor import Tensor


def raw_index(index: Any) -> Any:
    """Tensors inside an index become their arrays; integer-array indices are checked to be integers."""
    if isinstance(index, tuple):
        return tuple(raw_index(i) for i in index)
    if isinstance(index, TensorBase):
        index = index._data
    if isinstance(index, list):
        index = np.asarray(index)
    if hasattr(index, "dtype") and getattr(index, "ndim", 0) >= 0 and index.dtype.kind not in "iub":
        raise IndexError(f"tensors used as indices must be integer or bool, got dtype {index.dtype}")
    return index


class ShapeMethods:
    """Views, reshapes, permutations and indexing of a Tensor."""

    def __getitem__(self, index: Any) -> "Tensor":
        return functions.GetItem.apply(self, index=raw_index(index))

    def _gather(self, index: Any) -> "Tensor":
        """self[index] for an index that picks no element twice (a permutation, a gather): cheaper backward."""
        return functions.GetItem.apply(self, index=index, unique=True)

    def reshape(self, *shape: Any) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return functions.Reshape.apply(self, shape=shape)

    view = reshape

    def view_as(self, other: "Tensor") -> "Tensor":
        return self.reshape(other.shape)

    def flatten(self) -> "Tensor":
        return self.reshape(-1)

    def permute(self, *dims: Any) -> "Tensor":
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        if sorted(d % self.ndim for d in dims) != list(range(self.ndim)):
            raise TensorError(f"permute: dims {dims} are not a permutation of the {self.ndim} dims of {self.shape}")
        return functions.Permute.apply(self, axes=tuple(d % self.ndim for d in dims))

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return functions.Permute.apply(self, axes=tuple(axes))

    @property
    def T(self) -> "Tensor":  # noqa: N802 - torch's name
        return functions.Permute.apply(self, axes=tuple(reversed(range(self.ndim))))

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
