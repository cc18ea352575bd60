"""Losses that need a Function of their own for numerical stability (the rest are compositions in
nn/functional.py)."""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Context, Function
from minigrad.devices import array_module
from minigrad.functions.elementwise import sigmoid


class BCEWithLogits(Function):
    """Elementwise max(x, 0) - x·y + log(1 + exp(-|x|)): the stable form of -[y log σ(x) + (1-y) log(1-σ(x))]."""

    @staticmethod
    def forward(ctx: Context, x: Any, y: Any, pos_weight: Any = None) -> Any:
        xp = array_module(x)
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)  # log(1 + exp(-x))
        ctx.save_for_backward(x, y, softplus_neg)
        ctx.pos_weight = pos_weight
        if pos_weight is None:
            return (1 - y) * x + softplus_neg
        return (1 - y) * x + (1 + (pos_weight - 1) * y) * softplus_neg

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, y, softplus_neg = ctx.saved_tensors
        s = sigmoid(x)
        pw = ctx.pos_weight
        dx = s - y if pw is None else (1 - y) * s - pw * y * (1 - s)
        dy = -x if pw is None else -x + (pw - 1) * softplus_neg
        need_x, need_y = ctx.needs_input_grad[:2]
        return (grad * dx if need_x else None, grad * dy if need_y else None)  # x and y have one shape
