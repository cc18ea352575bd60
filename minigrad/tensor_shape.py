"""The Tensor's shape and indexing methods: views, reshapes, permutations and indexing, each dispatching to
the Function that computes it (minigrad/functions/shape.py). `Tensor` inherits these."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from minigrad import functions
from minigrad._validation import TensorError, check_dims, is_int
from minigrad.autograd import TensorBase, unwrap
from minigrad.devices import array_module

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


def scalar_as_vector(method: Callable) -> Callable:
    """torch takes dim 0 (or -1) of a 0-d tensor as the one dim of a 1-element vector, and gives 0-d results:
    the wrapped method runs on that vector, and each tensor it returns is viewed as 0-d again."""
    @functools.wraps(method)
    def wrapper(self: "Tensor", *args: Any, **kwargs: Any) -> Any:
        if self.ndim:
            return method(self, *args, **kwargs)
        out = method(self.reshape(1), *args, **kwargs)
        return type(out)(*(o.reshape(()) for o in out)) if isinstance(out, tuple) else out.reshape(())
    return wrapper


def refuse_a_scalar(self: "Tensor", message: str, error: type = TensorError) -> None:
    """torch's error for an op that needs a dim to cut along, given a 0-d tensor."""
    if self.ndim == 0:
        raise error(message)


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

    def view(self, *shape: Any) -> "Tensor":
        """A view with another shape; RuntimeError where the layout would need a copy (use reshape)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return functions.Reshape.apply(self, shape=shape, strict=True)

    def view_as(self, other: "Tensor") -> "Tensor":
        return self.view(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        if self.ndim == 0:
            return self.reshape(1)
        start, end = (d % self.ndim for d in (start_dim, end_dim))
        if start > end:
            raise TensorError("flatten() has invalid args: start_dim cannot come after end_dim")
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1:])

    def permute(self, *dims: Any) -> "Tensor":
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise TensorError(f"permute: dims {dims} are not a permutation of the {self.ndim} dims of {self.shape}")
        return functions.Permute.apply(self, axes=tuple(d % self.ndim for d in dims))

    @scalar_as_vector
    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        dim0, dim1 = check_dims(dim0, self.ndim)[0], check_dims(dim1, self.ndim)[0]
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return functions.Permute.apply(self, axes=tuple(axes))

    swapaxes = transpose

    @scalar_as_vector
    def movedim(self, source: Any, destination: Any) -> "Tensor":
        """The dims `source` (an int or a sequence) moved to the positions `destination`, the others in order."""
        src = check_dims(source, self.ndim) if isinstance(source, int) else \
            tuple(check_dims(d, self.ndim)[0] for d in source)
        dst = check_dims(destination, self.ndim) if isinstance(destination, int) else \
            tuple(check_dims(d, self.ndim)[0] for d in destination)
        if len(src) != len(dst):
            raise TensorError("movedim: Invalid source or destination dims: source and destination differ in length")
        order = [d for d in range(self.ndim) if d not in src]
        for s, d in sorted(zip(dst, src)):
            order.insert(s, d)
        return self.permute(order)

    def t(self) -> "Tensor":
        """The transpose of a matrix (a vector or a scalar as it is), as torch's t()."""
        if self.ndim > 2:
            raise TensorError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self.transpose(0, 1) if self.ndim == 2 else functions.Permute.apply(self, axes=tuple(range(self.ndim)))

    @property
    def T(self) -> "Tensor":  # noqa: N802 - torch's name
        return functions.Permute.apply(self, axes=tuple(reversed(range(self.ndim))))

    def squeeze(self, dim: Any = None) -> "Tensor":
        """Drop the dims of size 1 (all, or those of `dim`, an int or a tuple: others are left alone)."""
        dims = range(self.ndim) if dim is None else (check_dims(dim, self.ndim) or ())
        drop = {d for d in dims if self.ndim and self.shape[d] == 1}
        return self.reshape(tuple(n for d, n in enumerate(self.shape) if d not in drop))

    def unsqueeze(self, dim: int) -> "Tensor":
        dim = check_dims(dim, self.ndim + 1)[0]
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def narrow(self, dim: int, start: int, length: int) -> "Tensor":
        """A view of `length` elements from `start` along `dim`."""
        refuse_a_scalar(self, "narrow() cannot be applied to a 0-dim tensor.")
        dim = check_dims(dim, self.ndim)[0]
        size = self.shape[dim]
        start = int(start)
        if start < 0:
            start += size
        if not 0 <= start <= size or length < 0 or start + length > size:
            raise TensorError(f"narrow(): start ({start}) + length ({length}) exceeds dimension size ({size}).")
        return self[(slice(None),) * dim + (slice(start, start + length),)]

    def select(self, dim: int, index: int) -> "Tensor":
        """A view of the slice at `index` along `dim` (that dim removed)."""
        refuse_a_scalar(self, "select() cannot be applied to a 0-dim tensor.", IndexError)
        dim = check_dims(dim, self.ndim)[0]
        size = self.shape[dim]
        if not -size <= index < size:
            raise IndexError(f"select(): index {index} out of range for tensor of size {list(self.shape)} at "
                             f"dimension {dim}")
        return self[(slice(None),) * dim + (int(index),)]

    def _pieces(self, dim: int, bounds: list) -> tuple:
        """Views of consecutive pieces along `dim`, marked as the outputs of one multi-view op (torch forbids
        changing them in place while autograd records)."""
        lead = (slice(None),) * dim
        pieces = tuple(self[lead + (slice(lo, hi),)] for lo, hi in zip(bounds[:-1], bounds[1:]))
        for piece in pieces:
            if piece._base is not None:
                piece._view_kind = "multi"
        return pieces

    def unbind(self, dim: int = 0) -> tuple:
        refuse_a_scalar(self, "Dimension specified as 0 but tensor has no dimensions", IndexError)
        dim = check_dims(dim, self.ndim)[0]
        pieces = tuple(self.select(dim, i) for i in range(self.shape[dim]))
        for piece in pieces:
            if piece._base is not None:
                piece._view_kind = "multi"
        return pieces

    def split(self, split_size_or_sections: Any, dim: int = 0) -> tuple:
        """Pieces of `split_size` along `dim` (the last may be smaller), or of the listed sizes."""
        refuse_a_scalar(self, "split expects at least a 1-dimensional tensor")
        dim = check_dims(dim, self.ndim)[0]
        size = self.shape[dim]
        if isinstance(split_size_or_sections, (int, np.integer)):
            step = int(split_size_or_sections)
            if step <= 0 and size:
                raise TensorError(f"split: split_size must be positive, got {step}")
            bounds = list(range(0, size, step)) + [size] if size else [0, 0]
        else:
            sizes = [int(n) for n in split_size_or_sections]
            if sum(sizes) != size or any(n < 0 for n in sizes):
                raise TensorError(f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's "
                                  f"size at dimension {dim}), but got split_sizes={sizes}")
            bounds = [0] + list(np.cumsum(sizes))
        return self._pieces(dim, bounds)

    def chunk(self, chunks: int, dim: int = 0) -> tuple:
        """At most `chunks` pieces of ceil(size / chunks) along `dim`."""
        refuse_a_scalar(self, "chunk expects at least a 1-dimensional tensor")
        if chunks <= 0:
            raise TensorError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
        size = self.shape[check_dims(dim, self.ndim)[0]]
        return self.split(max(1, -(-size // chunks)), dim)

    def expand(self, *sizes: Any) -> "Tensor":
        sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        return functions.Expand.apply(self, shape=tuple(int(n) for n in sizes))

    def reshape_as(self, other: "Tensor") -> "Tensor":
        return self.reshape(other.shape)

    @property
    def mT(self) -> "Tensor":  # noqa: N802 - torch's name
        """The last two dims swapped (a batch of matrices transposed)."""
        if self.ndim < 2:
            raise TensorError(f"tensor.mT is only supported on matrices or batches of matrices. Got {self.ndim}-D "
                              f"tensor.")
        return self.transpose(-2, -1)

    def expand_as(self, other: "Tensor") -> "Tensor":
        return self.expand(other.shape)

    def repeat(self, *repeats: Any) -> "Tensor":
        repeats = tuple(repeats[0]) if len(repeats) == 1 and isinstance(repeats[0], (tuple, list)) else repeats
        return functions.Repeat.apply(self, repeats=tuple(int(n) for n in repeats))

    @scalar_as_vector
    def flip(self, *dims: Any) -> "Tensor":
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return functions.Flip.apply(self, dims=check_dims(dims, self.ndim))

    def roll(self, shifts: Any, dims: Any = None) -> "Tensor":
        """Elements shifted `shifts` places along `dims`, those pushed off one end coming back at the other; with
        no dims, along the flattened tensor (shape kept), as torch.roll."""
        shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
        if dims is None:
            if len(shifts) != 1:
                raise TensorError(f"roll: shifts ({len(shifts)}) given without dims must be one number")
            return self.reshape(-1).roll(shifts, 0).reshape(self.shape)
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if len(shifts) != len(dims):
            raise TensorError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: {len(dims)}")
        out, xp = self, array_module(self._data)
        for shift, dim in zip(shifts, dims):
            dim = check_dims(dim, max(self.ndim, 1))[0]
            n = self.shape[dim] if self.ndim else 1
            if n:
                order = (xp.arange(n) - int(shift)) % n
                out = out._gather((slice(None),) * dim + (order,)) if self.ndim else out
        return out

    @scalar_as_vector
    def index_select(self, dim: int, index: Any) -> "Tensor":
        dim = check_dims(dim, self.ndim)[0]
        idx = raw_index(index)
        if getattr(idx, "ndim", 1) > 1 or getattr(idx, "dtype", np.dtype(np.int64)).kind not in "iu":
            raise IndexError("index_select(): Index is supposed to be a vector of integers")
        return self[(slice(None),) * dim + (idx,)]

    def repeat_interleave(self, repeats: Any, dim: int | None = None) -> "Tensor":
        """Each slice along `dim` (each element of the flattened tensor when dim is None) repeated `repeats` times
        in place: an int, or one count per slice."""
        src, dim = (self.reshape(-1), 0) if dim is None else (self, check_dims(dim, self.ndim)[0])
        xp = array_module(self._data)
        counts = unwrap(repeats)
        if xp.any(xp.asarray(counts) < 0):
            raise TensorError("repeat_interleave: repeats can not be negative")
        return src.index_select(dim, xp.repeat(xp.arange(src.shape[dim]), counts))

    def outer(self, vec2: "Tensor") -> "Tensor":
        """The outer product of two vectors (torch.outer)."""
        if self.ndim != 1 or getattr(vec2, "ndim", None) != 1:
            raise TensorError("outer: expected two 1-D tensors")
        return self.reshape(-1, 1) * vec2.reshape(1, -1)

    def index_add(self, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> "Tensor":
        return self.clone().index_add_(dim, index, source, alpha=alpha)

    def index_fill(self, dim: int, index: Any, value: Any) -> "Tensor":
        return self.clone().index_fill_(dim, index, value)

    def index_put(self, indices: Any, values: Any, accumulate: bool = False) -> "Tensor":
        return self.clone().index_put_(indices, values, accumulate)

    def unfold(self, dimension: int, size: int, step: int) -> "Tensor":
        """Every window of `size` elements along `dimension`, `step` apart, as a new last dim (torch.unfold; here a
        copy, not a view: writes into it do not reach self)."""
        dim = check_dims(dimension, self.ndim)[0] if self.ndim else 0
        length = self.shape[dim] if self.ndim else 1
        if not is_int(size) or not 0 <= size <= length:
            raise TensorError(f"unfold: maximum size for tensor at dimension {dim} is {length} but size is {size}")
        if not is_int(step) or step <= 0:
            raise TensorError(f"unfold: step is {step} but must be > 0")
        xp = array_module(self._data)
        windows = xp.arange((length - size) // step + 1)[:, None] * step + xp.arange(size)[None, :]
        source = self.reshape(1) if self.ndim == 0 else self
        out = source.movedim(dim, -1)[..., windows].movedim(-2, dim)
        return out.reshape(size) if self.ndim == 0 else out

    def diag(self, diagonal: int = 0) -> "Tensor":
        """A vector's elements as the `diagonal`-th diagonal of a square matrix (0 elsewhere), or a matrix's
        `diagonal`-th diagonal as a vector (torch.diag; above the main one for diagonal > 0)."""
        if self.ndim not in (1, 2):
            raise TensorError(f"diag(): Supports 1D or 2D tensors. Got {self.ndim}D")
        xp = array_module(self._data)
        if self.ndim == 1:
            size = self.shape[0] + abs(diagonal)
            rows = xp.arange(self.shape[0]) + max(-diagonal, 0)
            out = self.new_zeros(size, size)
            out[rows, rows + diagonal] = self
            return out
        length = max(0, min(self.shape[0] + min(diagonal, 0), self.shape[1] - max(diagonal, 0)))
        rows = xp.arange(length) + max(-diagonal, 0)
        return self[rows, rows + diagonal]

    def masked_select(self, mask: Any) -> "Tensor":
        mask = raw_index(mask)
        if getattr(mask, "dtype", None) != np.bool_:
            raise TensorError("masked_select: expected a boolean mask")
        return self.expand(np.broadcast_shapes(self.shape, mask.shape))[array_module(mask).broadcast_to(
            mask, np.broadcast_shapes(self.shape, mask.shape))]

    def _scatter_args(self, op: str, dim: int, index: Any) -> tuple:
        """The dim, checked, and the index as an array (its dtype and values are checked by the op)."""
        index = index._data if isinstance(index, TensorBase) else index
        return check_dims(dim, self.ndim)[0], np.asarray(index) if isinstance(index, list) else index

    def gather(self, dim: int, index: Any) -> "Tensor":
        dim, index = self._scatter_args("gather", dim, index)
        if self.ndim == 0 and getattr(index, "ndim", None) == 0:  # torch: a 0-d tensor by a 0-d index, 0-d out
            return functions.Gather.apply(self.reshape(1), dim, index.reshape(1)).reshape(())
        return functions.Gather.apply(self, dim, index)

    def scatter(self, dim: int, index: Any, src: Any = None, value: Any = None) -> "Tensor":
        dim, index = self._scatter_args("scatter", dim, index)
        return functions.Scatter.apply(self, dim, index, src if value is None else value)

    def scatter_add(self, dim: int, index: Any, src: Any) -> "Tensor":
        dim, index = self._scatter_args("scatter_add", dim, index)
        return functions.Scatter.apply(self, dim, index, src, add=True)
