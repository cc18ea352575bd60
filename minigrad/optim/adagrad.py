"""Adagrad: torch.optim.Adagrad's single-tensor formula."""
from __future__ import annotations

from typing import Any, Iterable

from minigrad.devices import array_module
from minigrad.optim.optimizer import Optimizer, check_number


class Adagrad(Optimizer):
    """s ← s + g²;  p ← p - lr/(1 + (t-1)·lr_decay) · g / (√s + eps), s starting at initial_accumulator_value.

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups with their own hyper-parameters).
        lr, lr_decay, weight_decay, initial_accumulator_value, eps: real numbers >= 0, as in torch.
        maximize: ascend instead of descend. foreach: accepted for torch's signature. fused: True runs one Numba
            kernel per flat buffer of float32/float64 parameters (optim/_fused.py; on a CUDA device
            optim/_fused_cuda.py), equal to the unfused step to round-off; None or False the per-tensor formula.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize,
                                      foreach=foreach, fused=fused))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        for name in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_number(group, name)

    def _state_arrays(self, group: dict) -> tuple[str, ...]:
        return ("sum",)

    def _update(self, group: dict, param: Any, grad: Any, state: dict) -> None:
        if not state:
            state.update(step=0, sum=array_module(param).full_like(param, group["initial_accumulator_value"]))
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        decayed_lr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += grad * grad
        param -= decayed_lr * (grad / (array_module(param).sqrt(state["sum"]) + group["eps"]))

    def _fused_update(self, layout: Any, group: dict, step: int) -> None:
        total = layout.state(self.state, "sum", fill=group["initial_accumulator_value"])
        step += 1
        decayed_lr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        sign = -1.0 if group["maximize"] else 1.0
        layout.kernels.adagrad(layout.flat, layout.grad, total, layout.pending(),
                       *layout.typed(sign, decayed_lr, group["eps"], group["weight_decay"]))
        for p in layout.params:
            self.state[p]["step"] = step
