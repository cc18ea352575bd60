"""Adam and AdamW: torch.optim's single-tensor formulas (amsgrad included)."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from minigrad.devices import array_module
from minigrad.optim.optimizer import Optimizer, check_betas, check_flag, check_number


class Adam(Optimizer):
    """m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²;  p ← p - lr/(1-β1^t) · m / (√v/√(1-β2^t) + eps).

    Weight decay is added to the gradient (L2), or, with `decoupled_weight_decay=True` (AdamW), applied to the
    parameter as p ← p·(1 - lr·wd) before the update.

    `update_clip=c` clips the update, per parameter tensor, as Adafactor does (Shazeer & Stern, 2018): with
    u = m̂ / (√v̂ + eps), p ← p - lr · u / max(1, RMS(u) / c). Gradient clipping cannot bound Adam's step: after
    a quiet phase √v̂ is small, and even a clipped gradient makes m̂/√v̂ large; this bounds RMS(Δp) by lr·c.
    `update_clip=None` is torch's Adam, bit for bit.

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups with their own hyper-parameters).
        lr: the learning rate (>= 0). betas: (β1, β2), each in [0, 1). eps: added to the denominator (>= 0).
        weight_decay: >= 0. amsgrad: use the running maximum of v (Reddi et al., 2018).
        decoupled_weight_decay: AdamW's decay of the parameter instead of an L2 term in the gradient.
        update_clip: > 0, or None (no update clipping).
        maximize: ascend instead of descend. foreach: accepted for torch's signature. fused: True runs one Numba
            kernel per flat buffer of float32/float64 parameters (optim/_fused.py; on a CUDA device
            optim/_fused_cuda.py), equal to the unfused step to round-off; None or False the per-tensor formula.

    References:
        Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization"; Shazeer & Stern (2018), "Adafactor:
        Adaptive Learning Rates with Sublinear Memory Cost" (update clipping).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, fused: bool | None = None, decoupled_weight_decay: bool = False,
                 update_clip: float | None = None) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay, update_clip=update_clip))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        check_number(group, "eps")
        check_number(group, "weight_decay")
        check_betas(group)
        check_flag(group, "amsgrad")
        check_flag(group, "decoupled_weight_decay")
        if group["update_clip"] is not None:
            check_number(group, "update_clip")
            if not group["update_clip"] > 0:
                raise ValueError(f"Invalid update_clip value: {group['update_clip']!r} (must be > 0, or None)")

    def _state_arrays(self, group: dict) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _update(self, group: dict, param: Any, grad: Any, state: dict) -> None:
        xp = array_module(param)
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(param), exp_avg_sq=xp.zeros_like(param))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(param)
        state["step"] += 1
        step = state["step"]
        if wd != 0:
            if group["decoupled_weight_decay"]:
                param *= 1 - lr * wd
            else:
                grad = grad + wd * param
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)  # torch's lerp_ with weight < 0.5
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        if group["amsgrad"]:
            xp.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            denom = xp.sqrt(state["max_exp_avg_sq"]) / bias_correction2_sqrt + group["eps"]
        else:
            denom = xp.sqrt(exp_avg_sq) / bias_correction2_sqrt + group["eps"]
        if group["update_clip"] is None:
            param -= (lr / bias_correction1) * (exp_avg / denom)
            return
        u = exp_avg / denom / bias_correction1
        rms = math.sqrt(float(xp.mean(xp.square(u, dtype=np.float64)))) if u.size else 0.0
        param -= (lr / max(1.0, rms / group["update_clip"])) * u

    def _fused_update(self, layout: Any, group: dict, step: int) -> None:
        beta1, beta2 = group["betas"]
        lr, wd, step = group["lr"], group["weight_decay"], step + 1
        decoupled = group["decoupled_weight_decay"]
        l2, decay = (0.0, 1.0 - lr * wd) if decoupled else (wd, 1.0)
        m, v = layout.state(self.state, "exp_avg"), layout.state(self.state, "exp_avg_sq")
        vmax = layout.state(self.state, "max_exp_avg_sq") if group["amsgrad"] else layout.flat[:0]
        bc1, bc2_sqrt = 1 - beta1 ** step, math.sqrt(1 - beta2 ** step)
        sign = -1.0 if group["maximize"] else 1.0
        if group["update_clip"] is None:
            layout.kernels.adam(layout.flat, layout.grad, m, v, vmax, layout.pending(),
                        *layout.typed(sign, lr / bc1, beta1, beta2, bc2_sqrt, group["eps"], l2, decay),
                        group["amsgrad"])
        else:
            items = layout.items
            partials = layout.kernels.adam_moments(layout.flat, layout.grad, m, v, vmax, items, layout.pending(),
                                           *layout.typed(sign, bc1, beta1, beta2, bc2_sqrt, group["eps"], l2),
                                           group["amsgrad"])
            sums = np.bincount(items[:, 0], weights=partials, minlength=len(layout.params))  # in item order
            rms = np.sqrt(sums / np.diff(layout.offsets))
            factors = lr / np.maximum(1.0, rms / group["update_clip"])
            layout.kernels.adam_apply(layout.flat, m, v, vmax, items, factors,
                              *layout.typed(bc1, bc2_sqrt, group["eps"], decay), group["amsgrad"])
        for p in layout.params:
            self.state[p]["step"] = step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), torch.optim.AdamW: default weight_decay 1e-2."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, fused: bool | None = None, update_clip: float | None = None) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, fused=fused, decoupled_weight_decay=True,
                         update_clip=update_clip)
