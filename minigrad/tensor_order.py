"""The Tensor's ordering: sort, argsort, topk, kthvalue and median, each with torch's NaN order (NaN counts as
the largest value) and the values differentiable through a gather of the sorted indices. `Tensor` inherits these."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from minigrad import functions
from minigrad._validation import TensorError, check_dims, is_int
from minigrad.devices import array_module
from minigrad.tensor_math import ValuesIndices
from minigrad.tensor_shape import scalar_as_vector

if TYPE_CHECKING:  # annotations only: tensor.py builds Tensor from these methods
    from minigrad.tensor import Tensor


class OrderMethods:
    """Sorting and order statistics of a Tensor."""

    def _order(self, dim: int, descending: bool) -> Any:
        """Stable indices that sort along `dim` (NaN last ascending, first descending, as torch)."""
        xp = array_module(self._data)
        key = self._data
        if descending:
            key = xp.where(xp.isnan(key), -xp.inf, -key) if key.dtype.kind == "f" else \
                (~key if key.dtype == np.bool_ else -key.astype(np.int64))
        return xp.argsort(key, axis=dim, kind="stable")

    @scalar_as_vector
    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> ValuesIndices:
        dim = check_dims(dim, self.ndim)[0]
        index = self._order(dim, descending)
        return ValuesIndices(functions.Gather.apply(self, dim, index), self._wrap(index))

    @scalar_as_vector
    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> "Tensor":
        return self._wrap(self._order(check_dims(dim, self.ndim)[0], descending))

    @scalar_as_vector
    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:
        """The k largest (smallest) elements along `dim`, in order, and their indices."""
        dim = check_dims(dim, self.ndim)[0]
        size = self.shape[dim] if self.ndim else 1
        if not is_int(k) or not 0 <= k <= size:
            raise TensorError(f"topk: k ({k!r}) is out of range for dimension {dim} of size {size}")
        index = self._order(dim, largest)[(slice(None),) * dim + (slice(0, k),)]
        return ValuesIndices(functions.Gather.apply(self, dim, index), self._wrap(index))

    @scalar_as_vector
    def kthvalue(self, k: int, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
        """The k-th smallest element along `dim` (k from 1) and its index, as torch.kthvalue."""
        dim = check_dims(dim, self.ndim)[0]
        size = self.shape[dim]
        if not is_int(k) or not 1 <= k <= size:
            raise TensorError(f"kthvalue(): selected number k out of range for dimension {dim} of size {size}")
        position = array_module(self._data).full(self.shape[:dim] + (1,) + self.shape[dim + 1:], k - 1)
        return self._pick_sorted(dim, position, keepdim)

    @scalar_as_vector
    def median(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """The lower of the two middle elements (not their mean) of all elements, or along `dim` with its index,
        as torch.median; NaN where there is one."""
        if dim is None:
            if self.numel() == 0 and self.dtype.kind == "f":
                return self._wrap(array_module(self._data).asarray(np.nan, dtype=self.dtype))  # torch's answer
            if self.numel() == 0:
                raise TensorError("median() input tensor cannot be empty")
            return self.reshape(-1).median(0).values
        dim = check_dims(dim, self.ndim)[0]
        if self.shape[dim] == 0:
            raise IndexError(f"median(): Expected reduction dim {dim} to have non-zero size.")
        xp = array_module(self._data)
        missing = xp.isnan(self._data).sum(axis=dim, keepdims=True) if self.dtype.kind == "f" else 0
        valid = self.shape[dim] - missing  # NaN sorts last: the first of them is at `valid`
        position = xp.where(missing > 0, valid, (self.shape[dim] - 1) // 2)
        return self._pick_sorted(dim, xp.broadcast_to(xp.asarray(position), self.shape[:dim] + (1,)
                                                      + self.shape[dim + 1:]), keepdim)

    def _pick_sorted(self, dim: int, position: Any, keepdim: bool) -> ValuesIndices:
        """The element at sorted `position` (one per slice along dim, kept as size 1) and its index."""
        index = array_module(self._data).take_along_axis(self._order(dim, False), position, axis=dim)
        values, indices = functions.Gather.apply(self, dim, index), self._wrap(index)
        return ValuesIndices(values, indices) if keepdim else ValuesIndices(values.squeeze(dim), indices.squeeze(dim))
