"""Clipping thresholds that adapt: AutoClip (a percentile of the norms seen so far) and AGC (unit-wise, against
the weights' own norms). torch ships neither.

- `AutoClip(parameters, percentile=10.0, window=None, norm_type=2.0)`, after Seetharaman et al. (2020),
  "AutoClip: Adaptive Gradient Clipping for Source Separation Networks": each call computes the pre-clip total
  norm, appends it to the history (the last `window` when given), sets `.threshold` to
  np.percentile(history, percentile) (linear interpolation, the current norm included), clips exactly as
  clip_grad_norm_ does with that max_norm, and returns the pre-clip norm. A non-finite norm is returned but
  not added to the history (one NaN would make every later threshold NaN); the gradients are then scaled as
  clip_grad_norm_ would scale them, so a step guard (`optim.SkipNonFinite`) still sees the non-finite step.
- `adaptive_clip_grad_(parameters, clip_factor=0.01, eps=1e-3, norm_type=2.0)`, after Brock et al. (2021),
  "High-Performance Large-Scale Image Recognition Without Normalization", in timm's layout: a unit is one row
  over dims 1.. (a 0-d or 1-d parameter is one unit); limit = max(‖W_u‖, eps)·clip_factor; where
  ‖G_u‖ >= limit, G_u ← G_u · limit / max(‖G_u‖, 1e-6); other units are left bit-identical.
"""
from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np

from minigrad import clip
from minigrad._validation import check_norm_type, check_positive_int, check_positive_order, check_real
from minigrad.nn.utils.clip_grad import _norm_tensor
from minigrad.nn.utils.grad_buffer import as_tensors, clip_norm_grads_, grads_and_buffer
from minigrad.tensor import Tensor


def _check_percentile(value: Any) -> float:
    percentile = check_real("percentile", value)
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {value!r}")
    return percentile


class AutoClip:
    """Clip to a percentile of the gradient norms seen so far (see the module docstring).

    Args:
        parameters: a Tensor or an iterable of Tensors whose gradients each call clips.
        percentile: in [0, 100]; the threshold is np.percentile of the norms seen, the current one included.
        window: keep only the last `window` norms (a positive int), or all of them (None).
        norm_type: > 0 or inf.

    Attributes:
        threshold: the last max_norm used (None before the first call); history: the finite norms kept.

    References:
        Seetharaman, Wichern, Pardo & Le Roux (2020), "AutoClip: Adaptive Gradient Clipping for Source
        Separation Networks".
    """

    def __init__(self, parameters: Any, percentile: float = 10.0, window: int | None = None,
                 norm_type: float = 2.0) -> None:
        self.params = as_tensors(parameters)
        self.percentile = _check_percentile(percentile)
        self.window = check_positive_int("window", window, optional=True)
        self.norm_type = check_positive_order("norm_type", norm_type)
        self.history: collections.deque = collections.deque(maxlen=self.window)
        self.threshold: float | None = None

    def __call__(self) -> Tensor:
        """Clip the gradients to the updated threshold.

        Returns:
            The pre-clip total norm, a 0-d Tensor (a non-finite one is returned but not added to the history).
        """
        grads, buffer = grads_and_buffer(self.params)
        norm = clip.total_norm(grads, self.norm_type)
        value = clip.host_value(norm)
        if math.isfinite(value):
            self.history.append(value)
        if self.history:
            self.threshold = float(np.percentile(np.asarray(self.history), self.percentile))
            clip_norm_grads_(grads, buffer, self.threshold, self.norm_type, norm=norm)
        return _norm_tensor(norm, grads)

    clip = __call__

    def state_dict(self) -> dict:
        return {"percentile": self.percentile, "window": self.window, "norm_type": self.norm_type,
                "history": np.asarray(self.history, dtype=np.float64), "threshold": self.threshold}

    def load_state_dict(self, state: dict) -> None:
        """Continue with a saved history (a resumed run), after checking every entry."""
        percentile = _check_percentile(state["percentile"])
        window = check_positive_int("window", state["window"], optional=True)
        norm_type = check_norm_type(state["norm_type"])
        history = np.asarray(state["history"], dtype=np.float64)
        if history.ndim != 1 or not np.all(np.isfinite(history)) or np.any(history < 0):
            raise ValueError("AutoClip.load_state_dict: history must be a 1-d array of finite norms >= 0")
        threshold = state.get("threshold")
        self.percentile, self.window, self.norm_type = percentile, window, norm_type
        self.history = collections.deque(history.tolist(), maxlen=window)
        self.threshold = None if threshold is None else float(threshold)


def _units(p: Tensor) -> np.ndarray:
    """timm's units: one per row over dims 1.. (a 0-d or 1-d parameter is one unit), as segment offsets."""
    size = p.numel()
    unit = size if p.ndim <= 1 else size // max(p.shape[0], 1)
    return np.arange(0, size + 1, max(unit, 1), dtype=np.int64) if size else np.zeros(1, np.int64)


def adaptive_clip_grad_(parameters: Any, clip_factor: float = 0.01, eps: float = 1e-3,
                        norm_type: float = 2.0) -> None:
    """Unit-wise adaptive gradient clipping of every parameter's gradient (see the module docstring). Every
    argument and gradient is checked before the first one is modified.

    Args:
        parameters: a Tensor or an iterable of Tensors; gradients that are None are skipped.
        clip_factor: > 0, the largest ratio ‖G_u‖ / max(‖W_u‖, eps) a unit keeps.
        eps: >= 0, the floor of a unit's weight norm (zero-initialised weights still get a budget).
        norm_type: > 0 or inf.

    References:
        Brock, De, Smith & Simonyan (2021), "High-Performance Large-Scale Image Recognition Without
        Normalization"; the unit layout is timm's.
    """
    params = [p for p in as_tensors(parameters) if p._settled_grad() is not None]
    clip_factor = check_real("clip_factor", clip_factor)
    if not clip_factor > 0:
        raise ValueError(f"clip_factor must be > 0, got {clip_factor!r}")
    eps = check_real("eps", eps, minimum=0.0)
    p_order = check_positive_order("norm_type", norm_type)
    clip.check_arrays([p._grad._data for p in params], writable=True)
    clip.check_arrays([p._data for p in params])
    for p in params:
        clip.adaptive_clip_(p._grad._data, p._data, _units(p), clip_factor, eps, p_order)


__all__ = ["AutoClip", "adaptive_clip_grad_"]
