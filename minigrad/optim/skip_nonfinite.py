"""SkipNonFinite: skip (and count) an optimizer step whose gradients have a NaN or inf norm.

What optax's `apply_if_finite` and torch's GradScaler do for a loss-scaled step, as a wrapper:

    guard = optim.SkipNonFinite(optimizer)
    ...
    norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=2.0)
    guard.step(norm)          # steps only when the norm is finite; else parameters and state stay bit-identical

Pass the norm the clip returned (no extra pass over the gradients), or nothing (the guard computes the total
norm of its optimizer's gradients). `skipped` counts the skipped steps, `consecutive` the current run of them;
with `max_consecutive=k`, the k-th skip in a row raises RuntimeError (training has diverged, not spiked).
"""
from __future__ import annotations

import math
from typing import Any

from minigrad import clip
from minigrad._validation import check_positive_int
from minigrad.optim.optimizer import Optimizer


class SkipNonFinite:
    """Skip (and count) an optimizer step whose gradient norm is NaN or inf (see the module docstring).

    Args:
        optimizer: the Optimizer to guard.
        max_consecutive: a positive int: that many skips in a row raise RuntimeError; None never raises.

    Attributes:
        skipped, consecutive, taken: the counts of skipped steps, of the current run of skips, of steps taken.
    """

    def __init__(self, optimizer: Optimizer, max_consecutive: int | None = None) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"SkipNonFinite wraps an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.max_consecutive = check_positive_int("max_consecutive", max_consecutive, optional=True)
        self.skipped = self.consecutive = self.taken = 0

    def _norm(self) -> float:
        grads = [p._settled_grad()._data for g in self.optimizer.param_groups for p in g["params"]
                 if p._settled_grad() is not None]
        return clip.host_value(clip.total_norm(grads))

    def step(self, norm: Any = None) -> bool:
        """Step when the gradient norm is finite.

        Args:
            norm: the norm clip_grad_norm_ returned (a number or a 0-d Tensor); None computes the total norm of
                the optimizer's gradients.

        Returns:
            True when a step was taken.

        Raises:
            RuntimeError: the max_consecutive-th non-finite step in a row.
        """
        value = self._norm() if norm is None else clip.host_value(getattr(norm, "_data", norm))
        if math.isfinite(value):
            self.optimizer.step()
            self.taken += 1
            self.consecutive = 0
            return True
        self.skipped += 1
        self.consecutive += 1
        if self.max_consecutive is not None and self.consecutive >= self.max_consecutive:
            raise RuntimeError(f"{self.consecutive} optimizer steps in a row had a non-finite gradient norm "
                               f"({value}); training has diverged")
        return False

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "skipped": self.skipped, "consecutive": self.consecutive,
                "taken": self.taken}

    def load_state_dict(self, state: dict) -> None:
        counts = {k: state[k] for k in ("skipped", "consecutive", "taken")}
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in counts.values()):
            raise ValueError(f"SkipNonFinite.load_state_dict: counts must be non-negative ints, got {counts}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.skipped, self.consecutive, self.taken = counts["skipped"], counts["consecutive"], counts["taken"]


__all__ = ["SkipNonFinite"]
