"""Variable-length batches as torch.nn.utils.rnn has them — PackedSequence, pack_padded_sequence,
pad_packed_sequence, pad_sequence, pack_sequence, unpad_sequence, unpack_sequence — and truncated
backpropagation through time for long streams.

Errors follow torch's types: what torch raises as RuntimeError (unsorted lengths with enforce_sorted=True,
empty input, bad lengths) is a `TensorError`, which is a RuntimeError and also a ValueError.
"""
from __future__ import annotations

from typing import Any, Iterator, NamedTuple

import numpy as np

from minigrad._validation import TensorError, check_positive_int
from minigrad.autograd import no_grad
from minigrad.devices import array_module
from minigrad.functions import Place
from minigrad.tensor import Tensor, cat, stack


def _int64(values: Any) -> Tensor:
    return Tensor(np.asarray(values, dtype=np.int64))


class PackedSequence(NamedTuple):
    """Time-major packed rows: data[sum(batch_sizes[:t]) + j] is step t of the j-th longest sequence.

    `batch_sizes`, `sorted_indices` and `unsorted_indices` are int64 tensors on the CPU (the indices None when
    the batch was already sorted), as in torch. `.to()`, `.cpu()`, `.cuda()` and the dtype casts apply to
    `data` only and return the same object when nothing changes.
    """

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    def _with_data(self, data: Tensor) -> "PackedSequence":
        return self if data is self.data else self._replace(data=data)

    def to(self, *args: Any, **kwargs: Any) -> "PackedSequence":
        return self._with_data(self.data.to(*args, **kwargs))

    def cpu(self) -> "PackedSequence":
        return self.to("cpu")

    def cuda(self, device: Any = None) -> "PackedSequence":
        return self.to("cuda" if device is None else device)

    def double(self) -> "PackedSequence":
        return self._with_data(self.data.double())

    def float(self) -> "PackedSequence":
        return self._with_data(self.data.float())

    def half(self) -> "PackedSequence":
        return self._with_data(self.data.half())

    def long(self) -> "PackedSequence":
        return self._with_data(self.data.long())

    def int(self) -> "PackedSequence":
        return self._with_data(self.data.int())

    def short(self) -> "PackedSequence":
        return self._with_data(self.data._cast(np.int16))

    def char(self) -> "PackedSequence":
        return self._with_data(self.data._cast(np.int8))

    def byte(self) -> "PackedSequence":
        return self._with_data(self.data._cast(np.uint8))

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


def _lengths(lengths: Any, batch: int, steps: int) -> np.ndarray:
    """`lengths` as int64, checked: one positive, finite, whole number per sequence, none beyond `steps`."""
    if isinstance(lengths, Tensor):
        lengths = lengths._data
    if hasattr(lengths, "get"):  # CuPy
        lengths = lengths.get()
    arr = np.asarray(lengths)
    if arr.size == 0 or batch == 0 or steps == 0:
        raise TensorError("Cannot pack empty tensors: the input or `lengths` is an empty tensor")
    if arr.dtype == object or arr.dtype.kind in "USVb":
        raise TensorError(f"lengths must be integers, got {lengths!r}")
    if arr.ndim != 1:
        raise TensorError(f"lengths must be 1-D (one length per sequence), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise TensorError(f"lengths must be whole numbers, got {arr.tolist()}")
    arr = arr.astype(np.int64)
    if arr.shape != (batch,):
        raise TensorError(f"Expected `len(lengths)` to be equal to batch_size, but got {arr.size} "
                          f"(batch_size={batch})")
    if arr.min() < 1:
        raise TensorError(f"Length of all samples has to be greater than 0, but found an element in 'lengths' that "
                          f"is <= 0: {arr.tolist()}")
    if arr.max() > steps:
        raise TensorError(f"lengths must be at most the padded length {steps}, got {arr.tolist()}")
    return arr


def _gather_index(batch_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, j) of every packed row, in packed order."""
    batch_sizes = np.asarray(batch_sizes, dtype=np.int64)
    t = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    starts = np.cumsum(batch_sizes) - batch_sizes  # where each step's rows begin
    return t, np.arange(len(t)) - np.repeat(starts, batch_sizes)


def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch of sequences with the given lengths.

    Args:
        input: (T, B, *), or (B, T, *) with batch_first.
        lengths: one positive length <= T per sequence (a list, array or int64 Tensor).
        batch_first: whether `input` is batch-major.
        enforce_sorted: require decreasing lengths (TensorError otherwise); False sorts them and records the
            permutation in the result's sorted_indices / unsorted_indices.

    Returns:
        A PackedSequence; differentiable with respect to `input`.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"pack_padded_sequence: input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        if input.numel() == 0:
            raise TensorError("Cannot pack empty tensors")
        raise TensorError(f"pack_padded_sequence: input must be at least 2-D, got shape {input.shape}")
    x = input.transpose(0, 1) if batch_first else input
    steps, batch = x.shape[0], x.shape[1]
    lengths = _lengths(lengths, batch, steps)
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise TensorError(f"`lengths` array must be sorted in decreasing order when `enforce_sorted` is True, "
                              f"got {lengths.tolist()}. You can pass `enforce_sorted=False` to "
                              "pack_padded_sequence and/or pack_sequence to sidestep this requirement")
        sorted_indices = unsorted_indices = None
        order = np.arange(batch)
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices, unsorted_indices = _int64(order), _int64(np.argsort(order))
    sorted_lengths = lengths[order]
    batch_sizes = np.array([(sorted_lengths > t).sum() for t in range(int(sorted_lengths.max()))], dtype=np.int64)
    t, j = _gather_index(batch_sizes)
    xp = array_module(x._data)
    data = x._gather((xp.asarray(t), xp.asarray(order[j])))
    return PackedSequence(data, _int64(batch_sizes), sorted_indices, unsorted_indices)


def packed_to_padded(sequence: PackedSequence) -> tuple[Tensor, np.ndarray]:
    """(padded (T, B, *) in sorted order with zeros past each end, validity mask (T, B, 1)); differentiable."""
    data, batch_sizes = sequence.data, np.asarray(sequence.batch_sizes)
    steps, batch = len(batch_sizes), int(batch_sizes[0]) if len(batch_sizes) else 0
    t, j = _gather_index(batch_sizes)
    xp = array_module(data._data)
    padded = Place.apply(data, index=(xp.asarray(t), xp.asarray(j)), shape=(steps, batch) + data.shape[1:])
    mask = np.zeros((steps, batch, 1), dtype=bool)
    mask[t, j] = True
    return padded, mask


def padded_to_packed(padded: Tensor, like: PackedSequence) -> PackedSequence:
    """The packed rows of a padded (T, B, *) batch in sorted order, with `like`'s batch sizes and indices."""
    t, j = _gather_index(np.asarray(like.batch_sizes))
    xp = array_module(padded._data)
    return PackedSequence(padded._gather((xp.asarray(t), xp.asarray(j))), like.batch_sizes, like.sorted_indices,
                          like.unsorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Undo pack_padded_sequence.

    Args:
        sequence: a PackedSequence.
        batch_first: return (B, T, *) instead of (T, B, *).
        padding_value: what fills the steps past each sequence's end.
        total_length: pad to this many steps (>= the longest sequence).

    Returns:
        (the padded batch in the original order, the lengths as an int64 tensor).
    """
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence expects a PackedSequence, got {type(sequence).__name__}")
    padded, mask = packed_to_padded(sequence)
    steps = padded.shape[0]
    if total_length is not None:
        if total_length < steps:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {steps}")
        if total_length > steps:
            xp = array_module(padded._data)
            pad = Tensor(xp.zeros((total_length - steps,) + padded.shape[1:], padded.dtype))
            padded = cat([padded, pad], 0)
            mask = np.concatenate([mask, np.zeros((total_length - steps,) + mask.shape[1:], bool)])
    if padding_value != 0.0:
        xp = array_module(padded._data)
        fill = xp.asarray(np.broadcast_to(~mask.reshape(mask.shape[:2] + (1,) * (padded.ndim - 2)), padded.shape)
                          * padding_value, dtype=padded.dtype)
        padded = padded + Tensor(fill)
    lengths = mask[:, :, 0].sum(axis=0)
    if sequence.unsorted_indices is not None:
        order = np.asarray(sequence.unsorted_indices)
        padded = padded[:, array_module(padded._data).asarray(order)]
        lengths = lengths[order]
    return (padded.transpose(0, 1) if batch_first else padded), _int64(lengths)


def pad_sequence(sequences: Any, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack variable-length sequences (each (L_i, *)) into (T, B, *) — (B, T, *) with batch_first — filling
    with `padding_value` after (or, with padding_side="left", before) each sequence; differentiable."""
    if isinstance(sequences, Tensor):
        sequences = list(sequences)
    elif not hasattr(sequences, "__iter__"):
        raise TensorError(f"Expected iterable for input sequences, but got arg of type: {type(sequences).__name__}")
    seqs = [s if isinstance(s, Tensor) else Tensor(s) for s in sequences]
    if not seqs:
        raise TensorError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    trailing = {s.shape[1:] for s in seqs}
    if len(trailing) != 1 or any(s.ndim == 0 for s in seqs):
        raise TensorError(f"pad_sequence: the sequences' trailing dims differ: {[s.shape for s in seqs]}")
    longest = max(s.shape[0] for s in seqs)
    xp = array_module(seqs[0]._data)
    columns = []
    for s in seqs:
        gap = longest - s.shape[0]
        if gap:
            fill = Tensor(xp.full((gap,) + s.shape[1:], padding_value, dtype=s.dtype))
            s = cat([s, fill] if padding_side == "right" else [fill, s], 0)
        columns.append(s)
    return stack(columns, 0 if batch_first else 1)


def unpad_sequence(padded_sequences: Tensor, lengths: Any, batch_first: bool = False) -> list[Tensor]:
    """Undo pad_sequence: the list of sequences, each cut to its length."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    lengths = _lengths(lengths, x.shape[0], x.shape[1])
    return [x[i, :int(n)] for i, n in enumerate(lengths)]


def pack_sequence(sequences: Any, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of variable-length sequences (pad_sequence then pack_padded_sequence)."""
    seqs = list(sequences)
    lengths = [s.shape[0] if isinstance(s, Tensor) else len(s) for s in seqs]
    return pack_padded_sequence(pad_sequence(seqs), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """Undo pack_sequence: the list of sequences in their original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


def truncated_bptt(rnn: Any, input: Tensor, k1: int, k2: int, h0: Tensor | None = None
                   ) -> Iterator[tuple[slice, Tensor, Tensor]]:
    """TBPTT(k1, k2) over one long sequence: every k1 steps, gradients flow back through at most k2 steps.

    Yields `(steps, output, h_n)` per update. `output` is the rnn's output for the window of the last k2
    steps ending at `steps.stop` (time-major or batch-first as the rnn is), computed from the window's
    *detached* start state; compute the loss on its last `steps.stop - steps.start` steps (the k1 new ones),
    call backward, step the optimizer. k2 >= k1 (every new step must be inside the window). With k1 = k2 = k
    this is the usual "carry the state, detach between chunks"; with k2 >= T and no optimizer step in
    between, the summed gradients equal full BPTT.
    """
    k1, k2 = check_positive_int("k1", k1), check_positive_int("k2", k2)
    if k2 < k1:
        raise ValueError(f"k2 ({k2}) must be >= k1 ({k1}): the k1 new steps of each update lie in its window")
    axis = 1 if getattr(rnn, "batch_first", False) and input.ndim == 3 else 0
    steps = input.shape[axis]

    def window(lo: int, hi: int) -> Tensor:
        idx = (slice(None),) * axis + (slice(lo, hi),)
        return input[idx]

    states = {0: h0}  # detached hidden state at known times
    end = 0
    while end < steps:
        new_from, end = end, min(end + k1, steps)
        start = max(0, end - k2)
        known = max(t for t in states if t <= start)
        h_start = states[known]
        if known < start:
            with no_grad():
                _, h_start = rnn(window(known, start), h_start)
        output, h_n = rnn(window(start, end), h_start if h_start is None else h_start.detach())
        states[end] = h_n.detach()
        yield slice(new_from, end), output, h_n


__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "unpad_sequence",
           "pack_sequence", "unpack_sequence", "truncated_bptt"]
