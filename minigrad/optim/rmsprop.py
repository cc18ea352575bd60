"""RMSprop (centered and with momentum): torch.optim.RMSprop's single-tensor formula."""
from __future__ import annotations

from typing import Any, Iterable

from minigrad.devices import array_module
from minigrad.optim.optimizer import Optimizer, check_flag, check_number


class RMSprop(Optimizer):
    """v ← α·v + (1-α)·g²;  d = √(v - ḡ²) (centered) or √v, plus eps;  p ← p - lr·g/d (or through momentum).

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups with their own hyper-parameters).
        lr, alpha, eps, weight_decay, momentum: real numbers >= 0, as in torch.
        centered: normalise by the estimated variance instead of the second moment.
        maximize: ascend instead of descend. foreach: accepted for torch's signature. fused: True runs one Numba
            kernel per flat buffer of float32/float64 parameters (optim/_fused.py; on a CUDA device
            optim/_fused_cuda.py), equal to the unfused step to round-off; None or False the per-tensor formula.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 foreach: bool | None = None, maximize: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize, foreach=foreach, fused=fused))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        for name in ("alpha", "eps", "weight_decay", "momentum"):
            check_number(group, name)
        check_flag(group, "centered")

    def _state_arrays(self, group: dict) -> tuple[str, ...]:
        return (("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ())
                + (("grad_avg",) if group["centered"] else ()))

    def _update(self, group: dict, param: Any, grad: Any, state: dict) -> None:
        xp = array_module(param)
        alpha = group["alpha"]
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(param))
            if group["momentum"] > 0:
                state["momentum_buffer"] = xp.zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(param)
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (grad - grad_avg)
            avg = xp.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            avg = xp.sqrt(square_avg) + group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += grad / avg
            param -= group["lr"] * buf
        else:
            param -= group["lr"] * (grad / avg)

    def _fused_update(self, layout: Any, group: dict, step: int) -> None:
        momentum, centered = group["momentum"], group["centered"]
        sq = layout.state(self.state, "square_avg")
        gavg = layout.state(self.state, "grad_avg") if centered else layout.flat[:0]
        buf = layout.state(self.state, "momentum_buffer") if momentum > 0 else layout.flat[:0]
        layout.kernels.rmsprop(layout.flat, layout.grad, sq, gavg, buf, layout.pending(),
                       *layout.typed(-1.0 if group["maximize"] else 1.0, group["lr"], group["alpha"], group["eps"],
                                     group["weight_decay"], momentum), centered)
        for p in layout.params:
            self.state[p]["step"] = step + 1
