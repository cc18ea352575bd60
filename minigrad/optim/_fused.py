"""Fused optimizer steps (`fused=True`): each update rule as one Numba kernel over one flat array per dtype.

The layout (`FlatLayout`), made at the first fused step of a parameter group and kept while it stays intact:
- the gradients: a GradBuffer over exactly the group's parameters (the existing one when it matches, else a new
  one, which rebinds their `.grad` to views of it);
- the parameters: one flat array per dtype whose views become the parameters' arrays (their values are copied
  in once, so a `.data` taken before the first fused step is a stale copy afterwards; `Module.to()` and the like
  make the layout be rebuilt);
- the state: each state array (exp_avg, momentum_buffer, ...) is a view of a flat array of its own, so
  `state_dict()` and `load_state_dict()` see per-parameter arrays as always.

A step is one parallel kernel per dtype: `prange` over chunks, each chunk an elementwise loop over p, g and
the state in a function of its own (which vectorises). Elementwise means bit-identical results for any thread
count. The arithmetic is the unfused formula's, in the parameters' dtype (the hyper-parameters are rounded to it, as
NumPy does for the unfused step), so the result equals the unfused step to round-off. The kernels use
`error_model="numpy"`: with Numba's default ("python") every division checks for zero, and that branch stops
LLVM from vectorising the loop.

The rules' shared first lines (pending scale, sign, weight decay) are written out in every chunk function on
purpose: moved into an `@njit` helper -- with `inline="always"` or without -- they stopped LLVM vectorising the
Adam and RMSprop loops (docs/internals.md).

Clipping folded into the step: the layout's GradBuffer names the optimizer its consumer, so `clip_grad_norm_`
leaves its coefficient pending there; the kernel multiplies each gradient element by it (in the gradient's
dtype, exactly as the separate scaling pass would) as it reads it, and does not write the product back: the
coefficient stays pending on the buffer after the step. Whoever reads `p.grad` next gets the clipped gradient
(the read applies it, see grad_buffer.py), and `zero_grad` over the whole buffer just drops it. Gradient bytes
in the usual loop: read once by the norm, once by the step, never written by either (Adam: 32 bytes per float32
parameter in all, torch's clip + fused Adam 40).
"""
from __future__ import annotations

import math
import sys
import weakref
from typing import Any

import numpy as np
from numba import njit, prange

from minigrad.devices import array_module
from minigrad.nn.utils.grad_buffer import GradBuffer
from minigrad.tensor import Tensor

CHUNK = 1 << 14  # elements per parallel work item


# ----- kernels: one function per chunk (vectorisable loop), one parallel driver per rule ------------------------
@njit(cache=True, error_model="numpy")
def _sgd_chunk(p, g, buf, grad_scale, sign, lr, momentum, dampening, wd, nesterov, first):  # pragma: no cover
    one = p.dtype.type(1)
    for i in range(p.size):
        d = sign * (g[i] * grad_scale)
        if wd != 0.0:
            d += wd * p[i]
        if momentum != 0.0:
            b = d if first else momentum * buf[i] + (one - dampening) * d
            buf[i] = b
            d = d + momentum * buf[i] if nesterov else buf[i]
        p[i] = p[i] - lr * d


@njit(cache=True, parallel=True, error_model="numpy")
def sgd(p, g, buf, grad_scale, sign, lr, momentum, dampening, wd, nesterov, first):  # pragma: no cover
    n = p.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min((c + 1) * CHUNK, n)
        _sgd_chunk(p[lo:hi], g[lo:hi], buf[lo:hi] if buf.size else buf, grad_scale, sign, lr, momentum, dampening,
                   wd, nesterov, first)


@njit(cache=True, error_model="numpy")
def _adam_chunk(p, g, m, v, vmax, grad_scale, sign, step_size, b1, b2, bc2_sqrt, eps, wd, decay,
                amsgrad):  # pragma: no cover
    one = p.dtype.type(1)
    for i in range(p.size):
        d = sign * (g[i] * grad_scale)
        if wd != 0.0:
            d += wd * p[i]
        m[i] = m[i] + (one - b1) * (d - m[i])
        v[i] = v[i] * b2 + (one - b2) * d * d
        if amsgrad:
            vmax[i] = max(vmax[i], v[i])
            vi = vmax[i]
        else:
            vi = v[i]
        p[i] = p[i] * decay - step_size * (m[i] / (math.sqrt(vi) / bc2_sqrt + eps))


@njit(cache=True, parallel=True, error_model="numpy")
def adam(p, g, m, v, vmax, grad_scale, sign, step_size, b1, b2, bc2_sqrt, eps, wd, decay,
         amsgrad):  # pragma: no cover
    n = p.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min((c + 1) * CHUNK, n)
        _adam_chunk(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], vmax[lo:hi] if amsgrad else vmax, grad_scale, sign,
                    step_size, b1, b2, bc2_sqrt, eps, wd, decay, amsgrad)


@njit(cache=True, error_model="numpy")
def _adam_moments_chunk(p, g, m, v, vmax, grad_scale, sign, bc1, b1, b2, bc2_sqrt, eps, wd,
                        amsgrad):  # pragma: no cover
    """Adam's moments only, returning Σu² of the update direction u = m̂ / (√v̂ + eps) (for update clipping)."""
    one = p.dtype.type(1)
    total = 0.0
    for i in range(p.size):
        d = sign * (g[i] * grad_scale)
        if wd != 0.0:
            d += wd * p[i]
        m[i] = m[i] + (one - b1) * (d - m[i])
        v[i] = v[i] * b2 + (one - b2) * d * d
        if amsgrad:
            vmax[i] = max(vmax[i], v[i])
            vi = vmax[i]
        else:
            vi = v[i]
        u = m[i] / (math.sqrt(vi) / bc2_sqrt + eps) / bc1
        total += u * u
    return total


@njit(cache=True, parallel=True, error_model="numpy")
def adam_moments(p, g, m, v, vmax, items, grad_scale, sign, bc1, b1, b2, bc2_sqrt, eps, wd,
                 amsgrad):  # pragma: no cover
    partials = np.empty(items.shape[0])
    for w in prange(items.shape[0]):
        lo, hi = items[w, 1], items[w, 2]
        partials[w] = _adam_moments_chunk(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], vmax[lo:hi] if amsgrad else vmax,
                                          grad_scale, sign, bc1, b1, b2, bc2_sqrt, eps, wd, amsgrad)
    return partials


@njit(cache=True, error_model="numpy")
def _adam_apply_chunk(p, m, v, vmax, factor, bc1, bc2_sqrt, eps, decay, amsgrad):  # pragma: no cover
    for i in range(p.size):
        vi = vmax[i] if amsgrad else v[i]
        u = m[i] / (math.sqrt(vi) / bc2_sqrt + eps) / bc1
        p[i] = p[i] * decay - factor * u


@njit(cache=True, parallel=True, error_model="numpy")
def adam_apply(p, m, v, vmax, items, factors, bc1, bc2_sqrt, eps, decay, amsgrad):  # pragma: no cover
    """p ← p·decay − lr_k·u with one factor lr_k = lr / max(1, RMS_k(u) / update_clip) per parameter k."""
    for w in prange(items.shape[0]):
        k, lo, hi = items[w, 0], items[w, 1], items[w, 2]
        _adam_apply_chunk(p[lo:hi], m[lo:hi], v[lo:hi], vmax[lo:hi] if amsgrad else vmax, factors[k], bc1,
                          bc2_sqrt, eps, decay, amsgrad)


@njit(cache=True, error_model="numpy")
def _adagrad_chunk(p, g, s, grad_scale, sign, decayed_lr, eps, wd):  # pragma: no cover
    for i in range(p.size):
        d = sign * (g[i] * grad_scale)
        if wd != 0.0:
            d += wd * p[i]
        s[i] = s[i] + d * d
        p[i] = p[i] - decayed_lr * d / (math.sqrt(s[i]) + eps)


@njit(cache=True, parallel=True, error_model="numpy")
def adagrad(p, g, s, grad_scale, sign, decayed_lr, eps, wd):  # pragma: no cover
    n = p.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min((c + 1) * CHUNK, n)
        _adagrad_chunk(p[lo:hi], g[lo:hi], s[lo:hi], grad_scale, sign, decayed_lr, eps, wd)


@njit(cache=True, error_model="numpy")
def _rmsprop_chunk(p, g, sq, grad_avg, buf, grad_scale, sign, lr, alpha, eps, wd, momentum,
                   centered):  # pragma: no cover
    one = p.dtype.type(1)
    for i in range(p.size):
        d = sign * (g[i] * grad_scale)
        if wd != 0.0:
            d += wd * p[i]
        sq[i] = alpha * sq[i] + (one - alpha) * d * d
        if centered:
            grad_avg[i] = grad_avg[i] + (one - alpha) * (d - grad_avg[i])
            avg = math.sqrt(sq[i] - grad_avg[i] * grad_avg[i]) + eps
        else:
            avg = math.sqrt(sq[i]) + eps
        if momentum > 0.0:
            buf[i] = momentum * buf[i] + d / avg
            p[i] = p[i] - lr * buf[i]
        else:
            p[i] = p[i] - lr * (d / avg)


@njit(cache=True, parallel=True, error_model="numpy")
def rmsprop(p, g, sq, grad_avg, buf, grad_scale, sign, lr, alpha, eps, wd, momentum,
            centered):  # pragma: no cover
    n = p.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min((c + 1) * CHUNK, n)
        _rmsprop_chunk(p[lo:hi], g[lo:hi], sq[lo:hi], grad_avg[lo:hi] if centered else grad_avg,
                       buf[lo:hi] if momentum > 0.0 else buf, grad_scale, sign, lr, alpha, eps, wd, momentum,
                       centered)


# ----- the flat layout ------------------------------------------------------------------------------------------
class FlatLayout:
    """One dtype's parameters of one param group, laid out flat (see the module docstring)."""

    def __init__(self, optimizer: Any, params: list[Tensor]) -> None:
        dtype = params[0].dtype
        buf = params[0]._grad_buffer
        if buf is None or not buf.owns_all(params):
            buf = GradBuffer(params)
        self.buffer, self.dtype = buf, dtype
        self.params = [p for p in buf.params if p.dtype == dtype]
        self.grad = buf.flats[dtype]
        self.xp = array_module(self.grad)
        if self.xp is np:
            self.kernels = sys.modules[__name__]
        else:  # parameters on a CUDA device: the same rules as numba.cuda kernels
            from minigrad.optim import _fused_cuda

            self.kernels = _fused_cuda
        self.flat = self.xp.empty_like(self.grad)
        self.offsets = np.cumsum([0] + [p.numel() for p in self.params])
        self.views = []
        for p, lo, hi in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            view = self.flat[lo:hi].reshape(p.shape)
            view[...] = p._data
            p._data = view
            self.views.append(view)
        self.state_flats: dict[str, np.ndarray] = {}
        self.items = self._items()  # (parameter, lo, hi) work items that never straddle two parameters
        buf.consumer = weakref.ref(optimizer)

    def _items(self) -> np.ndarray:
        rows = []
        for k, (lo, hi) in enumerate(zip(self.offsets[:-1], self.offsets[1:])):
            rows += [(k, a, min(a + CHUNK, hi)) for a in range(int(lo), int(hi), CHUNK)]
        return np.array(rows, dtype=np.int64).reshape(-1, 3)

    def intact(self, params: list[Tensor]) -> bool:
        """Still the layout of `params`: the same members, arrays and gradients it laid out."""
        if len(params) != len(self.params) or self.buffer.flats.get(self.dtype) is not self.grad:
            return False
        return (all(p._data is v for p, v in zip(self.params, self.views))
                and {id(p) for p in params} == {id(p) for p in self.params} and self.buffer.owns_all(self.params))

    def state(self, state: dict, name: str, fill: float = 0.0) -> np.ndarray:
        """The flat array behind state[p][name] for every parameter, made (and filled with the existing state,
        or `fill`) when a parameter's entry is not its view yet."""
        flat = self.state_flats.get(name)
        if flat is None:
            flat = self.state_flats[name] = self.xp.full(self.flat.size, fill, dtype=self.dtype)
        for p, lo, hi in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            entry = state.setdefault(p, {})
            current = entry.get(name)
            view = flat[lo:hi].reshape(p.shape)
            if current is not view:
                if current is not None:
                    view[...] = current
                entry[name] = view
        return flat

    def pending(self) -> Any:
        """The gradient scale to apply in this step (a clip left pending), in the gradients' dtype."""
        return self.buffer.pending_scale(self.dtype)

    def typed(self, *values: float) -> tuple:
        """Hyper-parameters as scalars of the parameters' dtype: the kernels compute in that dtype."""
        return tuple(self.dtype.type(v) for v in values)

    def done(self) -> None:
        for p in self.params:  # the buffer keeps its pending coefficient: the gradients were only read
            p._versions[0] += 1


__all__ = ["FlatLayout", "sgd", "adam", "adam_moments", "adam_apply", "adagrad", "rmsprop", "CHUNK"]
