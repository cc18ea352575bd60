"""What the three recurrent cells' layers share: a reused work array, the identity Functions that clamp or record
∂L/∂h_t in the composed layers, and the record of one backward that `hidden_grad_norms` and Pascanu's
regularizer read (one per layer and direction).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad.autograd import Context, Function
from minigrad.devices import array_module


class WorkArrays:
    """A module's reusable work arrays, by purpose: what a layer's backward uses and its forward saves only for
    backward. A layer takes one with `take` and hands it back with `give` once nothing can read it again (at the
    end of backward, or in `Function.release` for what forward saved).

    Why: a fresh array of the layer's size costs its page faults on every call, which can cost more than the
    passes that fill it (docs/internals.md, "fresh arrays"). NumPy only: CuPy has its own memory pool."""

    def __init__(self) -> None:
        self.free: dict[str, list] = {}

    def take(self, purpose: str, shape: tuple, dtype: Any, xp: Any) -> Any:
        """An uninitialised array of `shape`: a view into a kept one when one is large enough, else a new one."""
        size = math.prod(shape)
        free = self.free.get(purpose) if xp is np else None
        flat = free.pop() if free else None  # none when another call of this module holds it
        if flat is not None and flat.dtype == dtype and flat.size >= size:
            return flat[:size].reshape(shape)
        return xp.empty(size, dtype=dtype).reshape(shape)

    def give(self, purpose: str, array: Any) -> None:
        if isinstance(array, np.ndarray):
            self.free.setdefault(purpose, []).append(array.base if array.base is not None else array)


def step_rows(active: Any, steps: int, batch: int) -> list[int]:
    """How many leading rows of the batch run at each step: all of them, or a packed batch's counts."""
    return [batch] * steps if active is None else [int(k) for k in active]


class HiddenGradRecord:
    """One layer-and-direction's ∂L/∂h_t from the last backward, for `hidden_grad_norms` and the regularizer.

    `states` (T, B, H) are the layer's h_t in its reading order; `deltas` (T, B, H) is set by backward: the total
    ∂L/∂h_t that BPTT carried, before any `hidden_grad_clip` clamp, and exactly 0 at the steps a sequence does
    not have (a packed batch's padding), which is how the regularizer leaves those steps out."""

    def __init__(self, states: Any, weight_hh: Any) -> None:
        self.states, self.weight_hh = states, weight_hh
        self.deltas: Any = None

    def __call__(self, deltas: Any) -> None:
        self.deltas = deltas

    def norms(self) -> np.ndarray:
        """‖∂L/∂h_t‖ per step, the norm over the batch and the hidden units."""
        xp = array_module(self.deltas)
        norms = xp.sqrt((self.deltas.astype(np.float64) ** 2).sum(axis=(1, 2)))
        return np.asarray(norms.get() if xp is not np else norms, dtype=np.float64)


class SavesWorkArrays(Function):
    """A fused layer whose forward saves work arrays (taken from a module's WorkArrays) for its backward only:
    they go back for reuse when a backward frees the graph. Forward lists them in `ctx.owned` as (purpose,
    array) pairs and keeps the WorkArrays in `ctx.work`."""

    @staticmethod
    def release(ctx: Context) -> None:
        for purpose, array in ctx.owned:
            ctx.work.give(purpose, array)


class ClampGrad(Function):
    """Identity whose backward clamps the gradient to [-c, c]: `h.register_hook(lambda g: g.clamp(-c, c))`."""

    @staticmethod
    def forward(ctx: Context, h: Any, clip: float) -> Any:
        ctx.clip = clip
        return h

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return array_module(grad).clip(grad, -ctx.clip, ctx.clip), None


class RecordGrad(Function):
    """Identity whose backward hands the gradient to `report` (the composed layers' per-step ∂L/∂h_t)."""

    @staticmethod
    def forward(ctx: Context, h: Any, report: Any) -> Any:
        ctx.report = report
        return h

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        ctx.report(grad)
        return grad, None


def watch_step(h: Any, t: int, clip: float | None, deltas: Any) -> Any:
    """A composed layer's h_t as BPTT should see it: its gradient clamped to [-clip, clip] (with a clip) after
    being written to deltas[t] (with a record)."""
    if clip is not None:
        h = ClampGrad.apply(h, clip=clip)
    if deltas is not None:
        h = RecordGrad.apply(h, report=lambda g, t=t: deltas.__setitem__(t, g))
    return h


class _StepDeltas:
    """Where a composed layer's backward writes ∂L/∂h_t, step by step; the whole (T, B, H) array goes to the
    recorder when step 0's gradient is in (a backward reaches step 0 last; steps it never reaches stay 0)."""

    def __init__(self, array: Any, recorder: Any) -> None:
        self.array, self.recorder = array, recorder

    def __setitem__(self, t: int, g: Any) -> None:
        self.array[t] = g
        if t == 0:
            self.recorder(self.array)


def step_deltas(x: Any, hidden: int, recorder: Any) -> _StepDeltas | None:
    """The per-step gradient record of a composed layer over x (T, B, ·), or None without a recorder."""
    if recorder is None:
        return None
    xp = array_module(x._data)
    return _StepDeltas(xp.zeros((x.shape[0], x.shape[1], hidden), dtype=x._data.dtype), recorder)
