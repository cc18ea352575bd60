"""Variable-length batches (PackedSequence, pack_padded_sequence, pad_packed_sequence, as torch's) and
truncated backpropagation through time for long streams."""
from __future__ import annotations

from typing import Any, Iterator, NamedTuple

import numpy as np

from minigrad.tensor import Tensor, array_module, cat, no_grad


class PackedSequence(NamedTuple):
    """Time-major packed rows: data[sum(batch_sizes[:t]) + j] is step t of the j-th longest sequence."""

    data: Tensor
    batch_sizes: np.ndarray
    sorted_indices: np.ndarray | None = None
    unsorted_indices: np.ndarray | None = None


def _lengths(lengths: Any, batch: int, steps: int) -> np.ndarray:
    if isinstance(lengths, Tensor):
        lengths = lengths._data
    lengths = np.asarray(lengths.get() if hasattr(lengths, "get") else lengths)
    if lengths.dtype.kind not in "iu" and not (lengths.size and np.all(lengths == np.round(lengths))):
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    lengths = lengths.astype(np.int64)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have one entry per sequence: shape ({batch},), got {lengths.shape}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(f"lengths must lie in [1, {steps}] (the padded length), got {lengths.tolist()}")
    return lengths


def _gather_index(batch_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, j) of every packed row, in packed order."""
    t = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    j = np.concatenate([np.arange(n) for n in batch_sizes]) if len(batch_sizes) else np.zeros(0, np.int64)
    return t, j


def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded (T, B, *) batch ((B, T, *) with batch_first) of sequences with the given lengths."""
    if input.ndim < 2:
        raise ValueError(f"pack_padded_sequence: input must be at least 2-D, got shape {input.shape}")
    x = input.transpose(0, 1) if batch_first else input
    steps, batch = x.shape[0], x.shape[1]
    lengths = _lengths(lengths, batch, steps)
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise ValueError(f"lengths must be sorted in decreasing order with enforce_sorted=True, got "
                             f"{lengths.tolist()}; sort the batch or pass enforce_sorted=False")
        sorted_indices = unsorted_indices = None
        order = np.arange(batch)
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices, unsorted_indices = order, np.argsort(order)
    sorted_lengths = lengths[order]
    batch_sizes = np.array([(sorted_lengths > t).sum() for t in range(int(sorted_lengths.max(initial=0)))],
                           dtype=np.int64)
    t, j = _gather_index(batch_sizes)
    xp = array_module(x._data)
    data = x[xp.asarray(t), xp.asarray(order[j])]
    return PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)


def packed_to_padded(sequence: PackedSequence) -> tuple[Tensor, np.ndarray]:
    """(padded (T, B, *) in sorted order with zeros past each end, validity mask (T, B, 1)); differentiable."""
    data, batch_sizes = sequence.data, np.asarray(sequence.batch_sizes)
    steps, batch = len(batch_sizes), int(batch_sizes[0]) if len(batch_sizes) else 0
    t, j = _gather_index(batch_sizes)
    rows = np.full((steps, batch), data.shape[0], dtype=np.int64)  # index of the zero row appended below
    rows[t, j] = np.arange(len(t))
    xp = array_module(data._data)
    zero = Tensor(xp.zeros((1,) + data.shape[1:], dtype=data.dtype))
    padded = cat([data, zero], 0)[xp.asarray(rows)]
    mask = np.zeros((steps, batch, 1), dtype=bool)
    mask[t, j] = True
    return padded, mask


def padded_to_packed(padded: Tensor, like: PackedSequence) -> PackedSequence:
    """The packed rows of a padded (T, B, *) batch in sorted order, with `like`'s batch sizes and indices."""
    t, j = _gather_index(np.asarray(like.batch_sizes))
    xp = array_module(padded._data)
    return PackedSequence(padded[xp.asarray(t), xp.asarray(j)], like.batch_sizes, like.sorted_indices,
                          like.unsorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, np.ndarray]:
    """Undo pack_padded_sequence: (padded batch in the original order, lengths)."""
    padded, mask = packed_to_padded(sequence)
    steps = padded.shape[0]
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"total_length {total_length} is shorter than the longest sequence ({steps})")
        if total_length > steps:
            xp = array_module(padded._data)
            pad = Tensor(xp.zeros((total_length - steps,) + padded.shape[1:], padded.dtype))
            padded = cat([padded, pad], 0)
            mask = np.concatenate([mask, np.zeros((total_length - steps,) + mask.shape[1:], bool)])
    if padding_value != 0.0:
        xp = array_module(padded._data)
        fill = xp.asarray(np.broadcast_to(~mask, padded.shape) * padding_value, dtype=padded.dtype)
        padded = padded + Tensor(fill)
    lengths = mask[:, :, 0].sum(axis=0)
    if sequence.unsorted_indices is not None:
        padded = padded[:, array_module(padded._data).asarray(sequence.unsorted_indices)]
        lengths = lengths[sequence.unsorted_indices]
    return (padded.transpose(0, 1) if batch_first else padded), lengths


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
    for name, k in (("k1", k1), ("k2", k2)):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"{name} must be a positive int, got {k!r}")
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
