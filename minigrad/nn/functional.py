"""Functional forms of the layers and losses (torch.nn.functional's names and arguments)."""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from minigrad import functions
from minigrad._validation import TensorError, check_probability, check_real
from minigrad.autograd import apply_inplace
from minigrad.devices import array_module
from minigrad.random import generator
from minigrad.tensor import Tensor, _tensor, cat

_REDUCTIONS = ("mean", "sum", "none")
KL_REDUCTIONS = _REDUCTIONS + ("batchmean",)  # kl_div's, with the divergence itself


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(reduction: str, allowed: tuple = _REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")


def _same_shapes(who: str, input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        raise ValueError(f"{who}: input shape {input.shape} and target shape {target.shape} differ")


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {input.shape[-1]} features (shape {input.shape}) "
                         f"but weight expects {weight.shape[1]} (shape {weight.shape})")
    out = input @ weight.T
    return out + bias if bias is not None else out


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """weight[input], as torch's: the `padding_idx` row gets no gradient; with `max_norm`, each row looked up
    whose `norm_type`-norm exceeds it is first scaled in place by max_norm / (norm + 1e-7) (torch's
    embedding_renorm_); `scale_grad_by_freq` divides each row's gradient by how often input holds it. `sparse` is
    accepted: the gradient is dense."""
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= weight.shape[0]):
        raise IndexError(f"embedding: indices must lie in [0, {weight.shape[0]}), "
                         f"got values in [{int(idx.min())}, {int(idx.max())}]")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    xp = array_module(weight._data)
    idx = xp.asarray(idx)
    if max_norm is not None:
        _renorm_rows_(weight, xp.unique(idx), max_norm, norm_type)
    return functions.EmbeddingLookup.apply(weight, idx, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq)


def _renorm_rows_(weight: Tensor, rows: Any, max_norm: float, norm_type: float) -> None:
    """Scale each of weight's `rows` whose norm exceeds max_norm down to it, in place and outside autograd (a
    write that a backward needing the old weight will notice, as in torch)."""
    xp = array_module(weight._data)
    picked = xp.abs(weight._data[rows]).astype(np.float64)
    norms = picked.max(axis=1) if math.isinf(norm_type) else (picked ** norm_type).sum(axis=1) ** (1 / norm_type)
    over = norms > max_norm
    if bool(over.any()):
        weight._data[rows[over]] *= (max_norm / (norms[over] + 1e-7))[:, None].astype(weight.dtype)
        weight._versions[0] += 1


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


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope · x."""
    out = functions.Where.apply((input > 0)._data, input, input * negative_slope)
    return input.copy_(out) if inplace else out


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha · (exp(x) − 1)."""
    alpha = check_real("alpha", alpha)
    if inplace:
        return apply_inplace(functions.Elu, input, alpha=alpha, op="elu_")
    return functions.Elu.apply(input, alpha=alpha)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta · x)) / beta, and x itself where beta · x > threshold (torch's rule)."""
    scaled = input * beta
    smooth = scaled.clamp(max=threshold).exp().log1p() / beta
    return functions.Where.apply((scaled > threshold)._data, input, smooth)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x · sigmoid(x)."""
    return apply_inplace(functions.Silu, input, op="silu_") if inplace else functions.Silu.apply(input)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x·Φ(x) with Φ the standard normal CDF, 0.5·x·(1 + erf(x/√2)); with approximate="tanh",
    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (torch's two forms)."""
    if approximate == "tanh":
        return 0.5 * input * (1 + (math.sqrt(2 / math.pi) * (input + 0.044715 * input * input * input)).tanh())
    if approximate != "none":
        raise TensorError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * input * (1 + (input * math.sqrt(0.5)).erf())


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)), finite for any x."""
    return functions.LogSigmoid.apply(input)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    return input.clamp_(min_val, max_val) if inplace else input.clamp(min_val, max_val)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.log_softmax(dim)


def pad(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """`input` padded with `value` (0 by default, in input's dtype): pad = (before, after) for the last dim, then
    (before, after) for the one before it, and so on, as torch's; a negative count cuts that many elements off
    instead. Only torch's "constant" mode."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    pad = [int(n) for n in pad]
    if len(pad) % 2:
        raise TensorError("Padding length must be divisible by 2")
    if len(pad) > 2 * input.ndim:
        raise TensorError(f"Padding length should be less than or equal to two times the input dimension but got "
                          f"padding length {len(pad)} and input of dimension {input.ndim}")
    out = input
    for i in range(len(pad) // 2):
        dim, before, after = input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]
        kept = out.shape[dim] + min(before, 0) + min(after, 0)
        if kept < 0:
            raise TensorError(f"pad: the padding {pad} cuts more than the {out.shape[dim]} elements of dim {dim}")
        out = out.narrow(dim, -min(before, 0), kept)
        parts = []
        for n in (before, None, after):
            if n is None:
                parts.append(out)
            elif n > 0:
                parts.append(out.new_full(out.shape[:dim] + (n,) + out.shape[dim + 1:], 0 if value is None else value))
        out = cat(parts, dim) if len(parts) > 1 else out
    return out


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """int64 one-hot rows: out[..., k] = 1 where tensor == k (num_classes = max + 1 by default)."""
    idx = tensor._data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if idx.dtype.kind not in "iu":
        raise TensorError("one_hot is only applicable to index tensor of type LongTensor.")
    xp = array_module(idx)
    n = int(idx.max()) + 1 if num_classes == -1 and idx.size else max(int(num_classes), 0)
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise TensorError("one_hot: Class values must be smaller than num_classes and non-negative.")
    return Tensor(xp.asarray(idx[..., None] == xp.arange(n)).astype(np.int64))


def _class_layout(input: Tensor, target: Any, who: str) -> tuple[Tensor, Any]:
    """input (N, C, d1...) as (M, C) rows with the target (N, d1...) as (M,) class indices; (C,) with () too."""
    tgt = target._data if isinstance(target, Tensor) else np.asarray(target)
    if tgt.dtype not in (np.int64, np.uint8):
        raise TensorError(f"{who}: expected target dtype to be Long or Byte (int64 or uint8 class indices), but got "
                          f"{tgt.dtype}")
    if input.ndim == 0:
        raise ValueError(f"{who}: the input needs a class dimension, got a 0-d tensor")
    if input.ndim == 1:
        if tgt.ndim != 0:
            raise ValueError(f"{who}: a 1-D input of class scores takes a 0-D target, got shape {tgt.shape}")
        return input.unsqueeze(0), tgt.reshape(1)
    expected = (input.shape[0],) + input.shape[2:]
    if tgt.shape != expected:
        if tgt.ndim >= 1 and tgt.shape[0] != input.shape[0]:
            raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
                             f"({tgt.shape[0]}).")
        raise ValueError(f"{who}: expected target of shape {expected} for input of shape {input.shape}, got "
                         f"{tgt.shape}")
    rows = input if input.ndim == 2 else input.movedim(1, -1).reshape(-1, input.shape[1])
    return rows, tgt.reshape(-1)


def _class_weights(weight: Any, n_classes: int, dtype: Any) -> np.ndarray:
    if weight is None:
        return np.ones(n_classes, dtype=dtype)
    w = np.asarray(_tensor(weight).detach().cpu()._data, dtype=dtype)
    if w.shape != (n_classes,):
        raise TensorError(f"weight tensor should be defined either for all {n_classes} classes or no classes but "
                          f"got weight tensor of shape: {list(w.shape)}")
    return w


def nll_loss(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """The negative log-likelihood of class-index targets, for log-probabilities `input` (N, C), (C,) or
    (N, C, d1, ...): loss_i = -weight[y_i] · input[i, y_i], 0 where y_i == ignore_index; "mean" divides the sum
    by the total weight of the targets that count (NaN when none does), as torch."""
    _check_reduction(reduction)
    rows, tgt = _class_layout(input, target, "nll_loss")
    n_classes = rows.shape[1]
    valid = tgt != ignore_index
    bad = valid & ((tgt < 0) | (tgt >= n_classes))
    if np.any(bad):
        raise IndexError(f"Target {int(tgt[bad][0])} is out of bounds.")
    xp = array_module(rows._data)
    safe = np.where(valid, tgt, 0)
    weights = _class_weights(weight, n_classes, rows.dtype)[safe] * valid
    picked = rows[xp.arange(rows.shape[0]), xp.asarray(safe)] * -1.0
    loss = picked * Tensor(xp.asarray(weights.astype(rows.dtype)))
    if reduction == "none":
        shape = np.shape(target._data if isinstance(target, Tensor) else target)
        return loss.reshape(shape)
    if reduction == "sum":
        return loss.sum()
    total = float(weights.sum())
    return loss.sum() / total if total else loss.sum() * math.nan


def cross_entropy(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """torch's cross_entropy: log_softmax over the class dim (1, or 0 for a 1-D input) then nll_loss, for
    class-index targets; or, for float targets of the input's shape, class probabilities: -Σ_c w_c p_c log q_c
    ("mean" over the samples). With label_smoothing ε the target mixes (1 - ε) of itself with ε/C uniform."""
    _check_reduction(reduction)
    eps = check_probability("label_smoothing", label_smoothing)
    class_dim = 0 if input.ndim == 1 else 1
    logp = input.log_softmax(dim=class_dim)
    n_classes = input.shape[class_dim]
    raw = target._data if isinstance(target, Tensor) else np.asarray(target)
    if raw.dtype.kind == "f" and raw.shape == input.shape:  # class probabilities
        probs = _tensor(target)
        if eps:
            probs = probs * (1 - eps) + eps / n_classes
        w = _class_weights(weight, n_classes, input.dtype).reshape((n_classes,) + (1,) * (input.ndim - class_dim - 1))
        per_sample = -(logp * probs * Tensor(array_module(input._data).asarray(w))).sum(class_dim)
        if reduction == "mean":
            return per_sample.sum() / max(input.numel() // max(n_classes, 1), 1)
        return _reduce(per_sample, reduction)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if not eps:
        return nll
    rows, tgt = _class_layout(logp, target, "cross_entropy")
    valid = tgt != ignore_index
    w = _class_weights(weight, n_classes, input.dtype)
    xp = array_module(rows._data)
    smooth = -(rows * Tensor(xp.asarray(w))).sum(1) * Tensor(xp.asarray(valid.astype(input.dtype)))
    if reduction == "none":
        smooth = smooth.reshape(raw.shape)
    elif reduction == "sum":
        smooth = smooth.sum()
    else:
        total = float(w[np.where(valid, tgt, 0)][valid].sum()) if weight is not None else float(valid.sum())
        smooth = smooth.sum() / total if total else smooth.sum() * math.nan
    return nll * (1 - eps) + smooth * (eps / n_classes)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    _check_reduction(reduction)
    target = _tensor(target)
    _same_shapes("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """|input − target|, reduced."""
    _check_reduction(reduction)
    target = _tensor(target)
    _same_shapes("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Huber's loss scaled by 1/beta: 0.5·d²/beta where |d| < beta, else |d| − 0.5·beta (d = input − target);
    beta = 0 is the L1 loss."""
    _check_reduction(reduction)
    beta = check_real("beta", beta, minimum=0.0)
    target = _tensor(target)
    _same_shapes("smooth_l1_loss", input, target)
    d = (input - target).abs()
    if beta == 0.0:
        return _reduce(d, reduction)
    return _reduce(functions.Where.apply((d < beta)._data, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


def kl_div(input: Tensor, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL(target ‖ exp(input)) for log-probabilities `input`, pointwise target·(log target − input), 0 where the
    target is 0 (exp(target)·(target − input) with `log_target`); reduced by "mean" (over every element, as
    torch, which warns), "sum", "none" or "batchmean" (the sum over the batch size: the divergence itself)."""
    _check_reduction(reduction, KL_REDUCTIONS)
    target = _tensor(target)
    if log_target:
        loss = target.exp() * (target - input)
    else:  # target·log(target) with 0·log 0 = 0 (torch's xlogy); a negative target gives NaN, as there
        loss = target * target.masked_fill((target == 0)._data, 1.0).log() - target * input
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size. "
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition.",
                      stacklevel=2)
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:
    """−(t·log x + (1 − t)·log(1 − x)) for probabilities x, each log clamped at −100 as torch does (a 0 or 1 input
    gives a finite loss)."""
    _check_reduction(reduction)
    target = _tensor(target)
    _same_shapes("binary_cross_entropy", input, target)
    x = input._data
    if x.size and not bool(((x >= 0) & (x <= 1)).all()):
        raise TensorError("binary_cross_entropy: all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore"):  # log(0) is -inf before the clamp
        log_x, log_1mx = input.log().clamp(min=-100.0), (1 - input).log().clamp(min=-100.0)
    loss = -(target * log_x + (1 - target) * log_1mx)
    if weight is not None:
        loss = loss * _tensor(weight)
    return _reduce(loss, reduction)


def normalized_shape_of(normalized_shape: Any) -> tuple:
    """LayerNorm's `normalized_shape` as a tuple: one int, or a sequence of them."""
    return (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)


def layer_norm(input: Tensor, normalized_shape: Any, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """(x − mean) / √(var + eps) over the last len(normalized_shape) dims (biased variance), then · weight + bias."""
    shape = normalized_shape_of(normalized_shape)
    if not shape or tuple(input.shape[-len(shape):]) != shape:
        raise TensorError(f"layer_norm: expected input with shape [*, {', '.join(map(str, shape))}], but got "
                          f"input of size {list(input.shape)}")
    dims = tuple(range(-len(shape), 0))
    centred = input - input.mean(dims, keepdim=True)
    out = centred / ((centred * centred).mean(dims, keepdim=True) + eps).sqrt()
    if weight is not None:
        out = out * weight
    return out + bias if bias is not None else out


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Σ (x1/‖x1‖)(x2/‖x2‖) along `dim`, x1 and x2 broadcast together, each norm at least `eps`. As in torch, a
    norm raised to eps keeps the gradient of the norm itself (the clamp is outside autograd)."""
    try:
        shape = np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise TensorError(f"cosine_similarity: x1 of shape {x1.shape} and x2 of shape {x2.shape} do not "
                          f"broadcast together") from None
    unit = []
    for x in (x1.expand(shape), x2.expand(shape)):
        norm = x.norm(dim=dim, keepdim=True)
        unit.append(x / (norm + (norm.clamp_min(eps) - norm).detach()))
    return (unit[0] * unit[1]).sum(dim)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(‖input‖_p along dim, eps)."""
    return input / input.norm(p, dim, keepdim=True).clamp_min(eps)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """Stable for large |logits|: never forms log(sigmoid(x)) directly."""
    _check_reduction(reduction)
    target = _tensor(target)
    _same_shapes("binary_cross_entropy_with_logits", input, target)
    if target.dtype.kind != "f":
        target = target._cast(input.dtype)
    pw = None if pos_weight is None else _tensor(pos_weight)._data
    loss = functions.BCEWithLogits.apply(input, target, pw)
    if weight is not None:
        loss = loss * _tensor(weight)
    return _reduce(loss, reduction)
