"""Functional forms of the layers and losses (torch.nn.functional's names and arguments)."""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import functions
from minigrad._validation import check_probability
from minigrad.devices import array_module
from minigrad.random import generator
from minigrad.tensor import Tensor, _tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {input.shape[-1]} features (shape {input.shape}) "
                         f"but weight expects {weight.shape[1]} (shape {weight.shape})")
    out = input @ weight.T
    return out + bias if bias is not None else out


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= weight.shape[0]):
        raise IndexError(f"embedding: indices must lie in [0, {weight.shape[0]}), "
                         f"got values in [{int(idx.min())}, {int(idx.max())}]")
    return functions.EmbeddingLookup.apply(weight, array_module(weight._data).asarray(idx), padding_idx=padding_idx)


def check_dropout(p: Any) -> float:
    """A dropout probability in [0, 1] (torch's message otherwise)."""
    return check_probability("dropout probability", p)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the others by 1/(1-p) (the identity when not training)."""
    p = check_dropout(p)
    if not training or p == 0.0:
        return input

    xp = array_module(input._data)
    keep = generator().random(input.shape) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return input * Tensor(xp.asarray((keep * scale).astype(input.dtype)))


def relu(x: Tensor) -> Tensor:
    return x.relu()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.log_softmax(dim)


def cross_entropy(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """-log softmax(input)[target] with class-index targets: input (N, C) or (C,) or (N, C, d...)."""
    _check_reduction(reduction)
    tgt = target._data if isinstance(target, Tensor) else np.asarray(target)
    if tgt.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {tgt.dtype}")
    x = input
    if x.ndim == 1:
        x, tgt = x.unsqueeze(0), tgt.reshape(1)
    elif x.ndim > 2:  # (N, C, d1, ...) -> (N*d1*..., C)
        x = x.permute(0, *range(2, x.ndim), 1).reshape(-1, x.shape[1])
        tgt = tgt.reshape(-1)
    if x.ndim != 2 or tgt.shape != (x.shape[0],):
        raise ValueError(f"cross_entropy: target shape {np.shape(target)} does not match input shape "
                         f"{input.shape}: expected one class index per row")
    n_classes = x.shape[1]
    valid = tgt != ignore_index
    if np.any((tgt[valid] < 0) | (tgt[valid] >= n_classes)):
        raise IndexError(f"cross_entropy: target values must lie in [0, {n_classes}), "
                         f"got [{int(tgt.min())}, {int(tgt.max())}]")
    xp = array_module(x._data)
    safe = xp.asarray(np.where(valid, tgt, 0))
    picked = -x.log_softmax(dim=1)[xp.arange(x.shape[0]), safe]
    w = np.ones(n_classes) if weight is None else np.asarray(_tensor(weight)._data, dtype=np.float64)
    row_w = xp.asarray((w[np.where(valid, tgt, 0)] * valid).astype(x.dtype))
    loss = picked * Tensor(row_w)
    if reduction == "mean":
        return loss.sum() / float(row_w.sum())
    return _reduce(loss, reduction)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    _check_reduction(reduction)
    target = _tensor(target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    diff = input - target
    return _reduce(diff * diff, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """Stable for large |logits|: never forms log(sigmoid(x)) directly."""
    _check_reduction(reduction)
    target = _tensor(target)
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: input shape {input.shape} and target shape "
                         f"{target.shape} differ")
    if target.dtype.kind != "f":
        target = target._cast(input.dtype)
    pw = None if pos_weight is None else _tensor(pos_weight)._data
    loss = functions.BCEWithLogits.apply(input, target, pw)
    if weight is not None:
        loss = loss * _tensor(weight)
    return _reduce(loss, reduction)
