"""Fused optimizer steps on a CUDA device: the update rules of _fused.py as numba.cuda kernels, one launch per
flat buffer, for parameters that live on the GPU (CuPy arrays laid out flat by _fused.FlatLayout).

Each thread updates elements i, i + g, i + 2g, ... (g: the grid's size); the arithmetic, line for line, is the
CPU kernels' (so the unfused step is equal to round-off). The gradient scale is read from a one-element device
array: a norm clip's coefficient left pending on the GradBuffer by `clip_grad_norm_` (computed on the device by
the clip's own launches), so clip + step never wait for the host. Adam's update clipping needs per-parameter
norms and is refused on the device (Optimizer checks that before any update).
"""
from __future__ import annotations

import math
from typing import Any

from numba import cuda

from minigrad.clip.cuda_backend import _blocks, _flat
from minigrad.clip.cuda_kernels import THREADS


@cuda.jit
def _sgd(p, g, buf, grad_scale, sign, lr, momentum, dampening, wd, nesterov, first):  # pragma: no cover
    gs = grad_scale[0]
    i, step, n = cuda.grid(1), cuda.gridsize(1), p.size
    while i < n:
        d = sign * (g[i] * gs)
        if wd != 0.0:
            d += wd * p[i]
        if momentum != 0.0:
            b = d if first else momentum * buf[i] + (1.0 - dampening) * d
            buf[i] = b
            d = d + momentum * buf[i] if nesterov else buf[i]
        p[i] = p[i] - lr * d
        i += step


@cuda.jit
def _adam(p, g, m, v, vmax, grad_scale, sign, step_size, b1, b2, bc2_sqrt, eps, wd, decay,
          amsgrad):  # pragma: no cover
    gs = grad_scale[0]
    i, step, n = cuda.grid(1), cuda.gridsize(1), p.size
    while i < n:
        d = sign * (g[i] * gs)
        if wd != 0.0:
            d += wd * p[i]
        m[i] = m[i] + (1.0 - b1) * (d - m[i])
        v[i] = v[i] * b2 + (1.0 - b2) * d * d
        if amsgrad:
            vmax[i] = max(vmax[i], v[i])
            vi = vmax[i]
        else:
            vi = v[i]
        p[i] = p[i] * decay - step_size * (m[i] / (math.sqrt(vi) / bc2_sqrt + eps))
        i += step


@cuda.jit
def _adagrad(p, g, s, grad_scale, sign, decayed_lr, eps, wd):  # pragma: no cover
    gs = grad_scale[0]
    i, step, n = cuda.grid(1), cuda.gridsize(1), p.size
    while i < n:
        d = sign * (g[i] * gs)
        if wd != 0.0:
            d += wd * p[i]
        s[i] = s[i] + d * d
        p[i] = p[i] - decayed_lr * d / (math.sqrt(s[i]) + eps)
        i += step


@cuda.jit
def _rmsprop(p, g, sq, grad_avg, buf, grad_scale, sign, lr, alpha, eps, wd, momentum, centered):  # pragma: no cover
    gs = grad_scale[0]
    i, step, n = cuda.grid(1), cuda.gridsize(1), p.size
    while i < n:
        d = sign * (g[i] * gs)
        if wd != 0.0:
            d += wd * p[i]
        sq[i] = alpha * sq[i] + (1.0 - alpha) * d * d
        if centered:
            grad_avg[i] = grad_avg[i] + (1.0 - alpha) * (d - grad_avg[i])
            avg = math.sqrt(sq[i] - grad_avg[i] * grad_avg[i]) + eps
        else:
            avg = math.sqrt(sq[i]) + eps
        if momentum > 0.0:
            buf[i] = momentum * buf[i] + d / avg
            p[i] = p[i] - lr * buf[i]
        else:
            p[i] = p[i] - lr * (d / avg)
        i += step


def _launch(kernel: Any, p: Any, *args: Any) -> None:
    flats = [_flat(a) if hasattr(a, "__cuda_array_interface__") or hasattr(a, "copy_to_host") else a
             for a in (p,) + args]
    kernel[_blocks(flats[0].size), THREADS](*flats)


def sgd(p: Any, g: Any, buf: Any, *args: Any) -> None:
    _launch(_sgd, p, g, buf if buf.size else p[:1], *args)


def adam(p: Any, g: Any, m: Any, v: Any, vmax: Any, *args: Any) -> None:
    _launch(_adam, p, g, m, v, vmax if vmax.size else p[:1], *args)


def adagrad(p: Any, *args: Any) -> None:
    _launch(_adagrad, p, *args)


def rmsprop(p: Any, g: Any, sq: Any, grad_avg: Any, buf: Any, *args: Any) -> None:
    _launch(_rmsprop, p, g, sq, grad_avg if grad_avg.size else p[:1], buf if buf.size else p[:1], *args)


__all__ = ["sgd", "adam", "adagrad", "rmsprop"]
