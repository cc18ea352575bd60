"""Pascanu, Mikolov & Bengio (2013)'s regularizer against vanishing gradients in a vanilla RNN.

For each step t it asks that the gradient carried one step back keep its norm:

    Ω = mean over the batch of Σ_t ( ‖(δ_t ⊙ f′(a_t)) W_hh‖ / ‖δ_t‖ − 1 )²

with δ_t = ∂L/∂h_t as the last backward computed it and f′ the nonlinearity's derivative at step t, both held
constant (the paper's "immediate" gradient: only the W_hh that maps δ_t back one step is differentiated), so

    ∂Ω/∂W_hh = mean over the batch of Σ_t 2 (r_t − 1) / (‖δ_t‖ ‖v_t‖) · u_tᵀ v_t,   u_t = δ_t ⊙ f′(a_t),
    v_t = u_t W_hh,  r_t = ‖v_t‖ / ‖δ_t‖.

Steps with ‖δ_t‖² < 1e-20 are left out (the ratio is undefined there), and so are the steps a sequence of a
packed batch does not have. Every layer and direction contributes its own terms and gets its own gradient.

References:
    R. Pascanu, T. Mikolov, Y. Bengio. On the difficulty of training recurrent neural networks. ICML 2013, eq. (9).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad._validation import check_real
from minigrad.devices import array_module
from minigrad.tensor import Tensor

SKIP_BELOW = 1e-20  # ‖δ_t‖² under which a step has no direction to preserve


def _terms(record: Any, nonlinearity: str) -> tuple:
    """(Ω of one layer-and-direction, ∂Ω/∂W_hh), both summed over steps and averaged over the batch, float64."""
    xp = array_module(record.deltas)
    delta = record.deltas.astype(np.float64)
    h = record.states.astype(np.float64)
    weight = record.weight_hh.data.astype(np.float64)
    u = delta * ((1 - h * h) if nonlinearity == "tanh" else (h > 0))
    v = u @ weight
    sq_delta = (delta * delta).sum(axis=-1)  # (T, B)
    keep = sq_delta >= SKIP_BELOW  # also leaves out a packed batch's padding, where δ is exactly 0
    norm_delta = xp.sqrt(xp.where(keep, sq_delta, 1.0))
    norm_v = xp.sqrt((v * v).sum(axis=-1))
    ratio = norm_v / norm_delta
    batch = delta.shape[1]
    omega = xp.where(keep, (ratio - 1) ** 2, 0.0).sum() / batch
    live = keep & (norm_v > 0)  # ‖v‖ = 0 is where its norm has no gradient: the term's is taken as 0 there
    coef = xp.where(live, 2 * (ratio - 1) / (norm_delta * xp.where(live, norm_v, 1.0)), 0.0) / batch
    grad = (u * coef[..., None]).reshape(-1, u.shape[-1]).T @ v.reshape(-1, v.shape[-1])
    return omega, grad


def vanishing_gradient_regularizer_(rnn: Any, alpha: float = 2.0) -> Tensor:
    """Pascanu et al.'s Ω for a vanilla RNN; adds alpha · ∂Ω/∂W_hh to every layer's and direction's weight_hh grad.

    Set `rnn.track_hidden_grads = True` before the forward, call `loss.backward()`, then this (before the
    optimizer step). The terms are those of the module docstring.

    Args:
        rnn: an nn.RNN (tanh or relu; fused or composed) whose last forward tracked hidden gradients.
        alpha: the regularizer's weight, a real number ≥ 0.

    Returns:
        Ω as a 0-d tensor of the parameters' dtype (summed over layers and directions).

    Raises:
        TypeError: rnn is not a vanilla RNN (an LSTM or GRU has no single f′ to regularize).
        ValueError: alpha is not a real number ≥ 0.
        RuntimeError: track_hidden_grads was off during the forward, or no backward has run since it.
        Nothing is modified when it raises.

    References:
        R. Pascanu, T. Mikolov, Y. Bengio. On the difficulty of training recurrent neural networks. ICML 2013.
    """
    if getattr(rnn, "gates", None) != 1 or not hasattr(rnn, "_records"):
        raise TypeError(f"vanishing_gradient_regularizer_: rnn must be an nn.RNN (tanh or relu), got "
                        f"{type(rnn).__name__}")
    alpha = check_real("alpha", alpha, minimum=0.0)
    records = rnn._records
    if records is None:
        raise RuntimeError("vanishing_gradient_regularizer_: the last forward did not record dL/dh_t; set "
                           "rnn.track_hidden_grads = True before the forward")
    if any(r.deltas is None for r in records):
        raise RuntimeError("vanishing_gradient_regularizer_: no backward has run since the last forward; call "
                           "loss.backward() first")
    results = [_terms(r, rnn.nonlinearity) for r in records]  # everything computed before any grad changes
    for record, (_, grad) in zip(records, results):
        weight = record.weight_hh
        step = (alpha * grad).astype(weight.dtype)
        if weight.grad is None:
            weight.grad = Tensor(step)
        else:
            weight.grad.data += step
    omega = sum(o for o, _ in results)
    return Tensor(array_module(omega).asarray(omega, dtype=records[0].weight_hh.dtype))
