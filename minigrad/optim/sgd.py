"""SGD with momentum, dampening, Nesterov and weight decay: torch.optim.SGD's single-tensor formula."""
from __future__ import annotations

from typing import Any, Iterable

from minigrad.optim.optimizer import Optimizer, check_flag, check_number


class SGD(Optimizer):
    """g ← g + wd·p;  b ← μ·b + (1 - τ)·g (b = g at the first step);  g ← g + μ·b (Nesterov) or b;  p ← p - lr·g.

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups with their own hyper-parameters).
        lr: the learning rate (>= 0). momentum μ (>= 0), dampening τ, weight_decay wd (>= 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: ascend instead of descend. foreach: accepted for torch's signature. fused: True runs one Numba
            kernel per flat buffer of float32/float64 parameters (optim/_fused.py; on a CUDA device
            optim/_fused_cuda.py), equal to the unfused step to round-off; None or False the per-tensor formula.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, fused: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach, fused=fused))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        check_number(group, "momentum")
        check_number(group, "dampening", minimum=None)
        check_number(group, "weight_decay")
        check_flag(group, "nesterov")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _optional_state_arrays(self, group: dict) -> tuple[str, ...]:
        return ("momentum_buffer",)

    def _state_scalars(self) -> tuple[str, ...]:
        return ()

    def _update(self, group: dict, param: Any, grad: Any, state: dict) -> None:
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        momentum = group["momentum"]
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        param -= group["lr"] * grad

    def _fused_update(self, layout: Any, group: dict, step: int) -> None:
        momentum = group["momentum"]
        first = not any("momentum_buffer" in self.state.get(p, {}) for p in layout.params)
        buf = layout.state(self.state, "momentum_buffer") if momentum != 0 else layout.flat[:0]
        layout.kernels.sgd(layout.flat, layout.grad, buf, layout.pending(),
                   *layout.typed(-1.0 if group["maximize"] else 1.0, group["lr"], momentum, group["dampening"],
                                 group["weight_decay"]), group["nesterov"], first)
