"""The GRU layer, torch's equations and gate order (r, z, n), b_hn inside the reset product:

    r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr),  z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h

`GRULayer` runs all T steps of one layer in one Function whose backward is BPTT by hand; `composed_gru` is the
same recurrence from autograd ops, the readable reference (tests hold them equal in float64).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from minigrad.autograd import Context
from minigrad.devices import array_module
from minigrad.nn._bptt import SavesWorkArrays, WorkArrays, step_deltas, step_rows, watch_step
from minigrad.nn._elman import carry
from minigrad.nn._lstm import add_and_clamp, sigmoid_by_tanh
from minigrad.tensor import Tensor, stack

# The CPU runs each step's sums and products as compiled passes (the array versions below them run on any array
# module, CuPy included): the same operations in the same order and dtype, so the same values, bit for bit; one
# gate of one array written per loop nest, so that each vectorises (see _lstm.py and docs/internals.md).


@njit(cache=True, nogil=True)
def _pre_activations(p, rec, bias, g_n):  # pragma: no cover - compiled
    """p[:, :2] += rec[:, :2] + bias[:2] and g_n = rec[:, 2] + bias[2] (bias (3, H), or (0, H) for none): a
    step's r and z pre-activations (halved, before tanh) and G_n, from the input side p (k, 3, H) and the
    hidden side rec (k, 3, H)."""
    for gate in range(2):
        for b in range(p.shape[0]):
            if bias.shape[0]:
                for j in range(p.shape[2]):
                    p[b, gate, j] += rec[b, gate, j] + bias[gate, j]
            else:
                for j in range(p.shape[2]):
                    p[b, gate, j] += rec[b, gate, j]
    for b in range(p.shape[0]):
        if bias.shape[0]:
            for j in range(p.shape[2]):
                g_n[b, j] = rec[b, 2, j] + bias[2, j]
        else:
            for j in range(p.shape[2]):
                g_n[b, j] = rec[b, 2, j]


def _pre_activations_arrays(p: Any, rec: Any, bias: Any, g_n: Any) -> None:
    if bias.shape[0]:
        rec += bias
    p[:, :2] += rec[:, :2]
    g_n[...] = rec[:, 2]


@njit(cache=True, nogil=True)
def _candidate(p, g_n, tmp):  # pragma: no cover - compiled
    """p[:, :2] holds tanh of the halved r and z pre-activations: writes r and z over them (σ(a) = ½·tanh(½a) +
    ½) and adds r ⊙ G_n to n's pre-activation p[:, 2] (tmp (k, H): scratch)."""
    half = p.dtype.type(0.5)
    for b in range(p.shape[0]):
        for j in range(p.shape[2]):
            r = p[b, 0, j] * half + half
            p[b, 0, j] = r
            tmp[b, j] = r * g_n[b, j]
    for b in range(p.shape[0]):
        for j in range(p.shape[2]):
            p[b, 1, j] = p[b, 1, j] * half + half
    for b in range(p.shape[0]):
        for j in range(p.shape[2]):
            p[b, 2, j] += tmp[b, j]


def _candidate_arrays(p: Any, g_n: Any, tmp: Any) -> None:
    rz = p[:, :2]
    rz *= 0.5
    rz += 0.5
    array_module(p).multiply(p[:, 0], g_n, out=tmp)
    p[:, 2] += tmp


@njit(cache=True, nogil=True)
def _new_state(p, h, h_new):  # pragma: no cover - compiled
    """h' = n + (h − n) ⊙ z, with z = p[:, 1] and n = p[:, 2]."""
    for b in range(p.shape[0]):
        for j in range(p.shape[2]):
            n = p[b, 2, j]
            h_new[b, j] = n + (h[b, j] - n) * p[b, 1, j]


def _new_state_arrays(p: Any, h: Any, h_new: Any) -> None:
    xp = array_module(p)
    xp.subtract(h, p[:, 2], out=h_new)
    h_new *= p[:, 1]
    h_new += p[:, 2]


@njit(cache=True, nogil=True)
def _backward_step(dh, gates, g_n, h_prev, d_in, d_hid, tmp):  # pragma: no cover - compiled
    """One reversed step over the running rows, on the CPU, after add_and_clamp gave dh (the step's clamped
    ∂L/∂h_t): dP_t (d_in) and dG_t (d_hid) from the step's K factors, computed here as the array version computes
    them for all steps; tmp = dh ⊙ z_t. The caller's matmul with W_hh and tmp then give the next dh. gates is
    the step's contiguous (k, 3, H) block (a strided gate would not vectorise)."""
    one = dh.dtype.type(1)
    rows, hidden = dh.shape
    for b in range(rows):
        for j in range(hidden):
            tmp[b, j] = dh[b, j] * gates[b, 1, j]
    for b in range(rows):
        for j in range(hidden):
            r, z, n = gates[b, 0, j], gates[b, 1, j], gates[b, 2, j]
            k_n = (one - n * n) * (one - z)
            d_in[b, 2, j] = k_n * dh[b, j]
            d_hid[b, 2, j] = (k_n * r) * dh[b, j]
    for b in range(rows):
        for j in range(hidden):
            z, n = gates[b, 1, j], gates[b, 2, j]
            k_z = ((one - z) * z) * (h_prev[b, j] - n)
            d_in[b, 1, j] = k_z * dh[b, j]
            d_hid[b, 1, j] = k_z * dh[b, j]
    for b in range(rows):
        for j in range(hidden):
            r, z, n = gates[b, 0, j], gates[b, 1, j], gates[b, 2, j]
            k_r = (((one - r) * r) * g_n[b, j]) * ((one - n * n) * (one - z))
            d_in[b, 0, j] = k_r * dh[b, j]
            d_hid[b, 0, j] = k_r * dh[b, j]


def _steps_compiled(grad: Any, gates: Any, g_n: Any, hs: Any, w_hh: Any, d_in: Any, d_hid: Any, rows: list,
                    clip: float | None, deltas: Any) -> Any:
    """The reversed loop on the CPU: per step one compiled pass (_backward_step) and the matmul. Returns dh."""
    steps, batch, hidden = g_n.shape
    grad = np.ascontiguousarray(grad)  # a broadcast gradient (of a sum) would not vectorise
    dh, tmp = np.zeros((batch, hidden), dtype=grad.dtype), np.empty((batch, hidden), dtype=grad.dtype)
    bound = grad.dtype.type(np.inf if clip is None else clip)
    unrecorded = np.empty((0, hidden), dtype=grad.dtype)
    for t in range(steps - 1, -1, -1):
        k = rows[t]
        add_and_clamp(dh[:k], grad[t, :k], bound, unrecorded if deltas is None else deltas[t, :k])
        _backward_step(dh[:k], gates[t, :k], g_n[t, :k], hs[t, :k], d_in[t, :k], d_hid[t, :k], tmp[:k])
        if k < batch:
            d_in[t, k:], d_hid[t, k:] = 0, 0
        np.matmul(d_hid[t, :k].reshape(k, 3 * hidden), w_hh, out=dh[:k])
        dh[:k] += tmp[:k]
    return dh


def _steps_arrays(grad: Any, gates: Any, g_n: Any, hs: Any, w_hh: Any, d_in: Any, d_hid: Any, rows: list,
                  clip: float | None, deltas: Any) -> Any:
    """The same loop from array operations, for any array module (CuPy on a GPU): the K factors of GRULayer's
    docstring for all steps in a few passes, then per step a few products and the matmul."""
    xp = array_module(grad)
    steps, batch, hidden = g_n.shape
    r, z, n = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2]
    k_r, k_z, k_n = d_in[:, :, 0], d_in[:, :, 1], d_in[:, :, 2]  # the K factors, then dP in place
    xp.multiply(n, n, out=k_n)
    xp.subtract(1, k_n, out=k_n)
    xp.subtract(1, z, out=k_z)
    k_n *= k_z  # (1 − z)(1 − n²)
    k_z *= z
    xp.subtract(hs[:-1], n, out=k_r)
    k_z *= k_r  # (h_{t−1} − n) z(1 − z)
    xp.subtract(1, r, out=k_r)
    k_r *= r
    k_r *= g_n
    k_r *= k_n  # K_n G_n r(1 − r)
    d_hid[:, :, :2] = d_in[:, :, :2]  # dG in place
    xp.multiply(k_n, r, out=d_hid[:, :, 2])
    dh, tmp = xp.zeros((batch, hidden), dtype=grad.dtype), xp.empty((batch, hidden), dtype=grad.dtype)
    for t in range(steps - 1, -1, -1):
        k = rows[t]
        dh[:k] += grad[t, :k]
        if deltas is not None:
            deltas[t] = dh
        if clip is not None:
            xp.clip(dh[:k], -clip, clip, out=dh[:k])
        d_in[t, :k] *= dh[:k, None, :]
        d_hid[t, :k] *= dh[:k, None, :]
        if k < batch:
            d_in[t, k:], d_hid[t, k:] = 0, 0
        xp.multiply(dh[:k], z[t, :k], out=tmp[:k])
        xp.matmul(d_hid[t, :k].reshape(k, 3 * hidden), w_hh, out=dh[:k])
        dh[:k] += tmp[:k]
    return dh


class GRULayer(SavesWorkArrays):
    """One GRU layer over all T steps; backward is BPTT by hand.

    Forward: the input projection of all steps in one matmul (P, (T, B, 3, H)), then per step one
    (B, H) x (H, 3H) matmul G = h W_hhᵀ + b_hh and a few passes; r, z, n are kept, and G_n = h W_hnᵀ + b_hn.
    Backward, one reversed loop carrying dh = ∂L/∂h_t, with the factors K_n = (1−z)(1−n²),
    K_z = (h_{t−1} − n)·z(1−z), K_r = K_n·G_n·r(1−r) (the array version computes them for all steps beforehand,
    the CPU's compiled pass in each step):
        dh  += dY_t;  dh = clamp(dh, −c, c) (with hidden_grad_clip)
        dP_t = dh ⊙ [K_r, K_z, K_n]             (the input side's pre-activation gradient, (B, 3H))
        dG_t = dh ⊙ [K_r, K_z, K_n ⊙ r]         (the hidden side's: the reset gate scales G_n)
        dh   = dh ⊙ z + dG_t W_hh
    then dW_ih = Σ dP_tᵀ x_t, dW_hh = Σ dG_tᵀ h_{t−1}, db_ih = Σ dP_t, db_hh = Σ dG_t, dX_t = dP_t W_ih.
    Packed batches as ElmanLayer. Memory: the states (T·B·H), r, z, n (3·T·B·H) and G_n (T·B·H).
    """

    fresh_grads = True

    @staticmethod
    def forward(ctx: Context, x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, active: Any = None,
                recorder: Any = None, clip: float | None = None, work: WorkArrays | None = None) -> Any:
        xp = array_module(x)
        steps, batch, n_in = x.shape
        hidden = w_hh.shape[1]
        dtype = xp.result_type(x, w_ih)
        half = sigmoid_by_tanh(xp, [0, 1], 3, hidden, dtype)
        gates = work.take("gates", (steps, batch, 3, hidden), dtype, xp)
        xp.matmul(x.reshape(-1, n_in), (w_ih * half[:, None]).T, out=gates.reshape(-1, 3 * hidden))
        if b_ih is not None:
            gates += (b_ih * half).reshape(3, hidden)
        b_hh_half = xp.empty((0, hidden), dtype) if b_hh is None else (b_hh * half).reshape(3, hidden)
        hs = xp.empty((steps + 1, batch, hidden), dtype=dtype)
        hs[0] = h0
        g_n = work.take("g_n", (steps, batch, hidden), dtype, xp)
        w_hh_t = xp.ascontiguousarray((w_hh * half[:, None]).T)
        rec, tmp = xp.empty((batch, 3 * hidden), dtype=dtype), xp.empty((batch, hidden), dtype=dtype)
        rows = step_rows(active, steps, batch)
        pre, candidate, new_state = ((_pre_activations, _candidate, _new_state) if xp is np else
                                     (_pre_activations_arrays, _candidate_arrays, _new_state_arrays))
        for t, k in enumerate(rows):
            p = gates[t, :k]
            xp.matmul(hs[t, :k], w_hh_t, out=rec[:k])
            pre(p, rec[:k].reshape(k, 3, hidden), b_hh_half, g_n[t, :k])
            xp.tanh(p[:, :2], out=p[:, :2])
            candidate(p, g_n[t, :k], tmp[:k])  # r, z and n's pre-activation
            xp.tanh(p[:, 2], out=p[:, 2])  # n
            new_state(p, hs[t, :k], hs[t + 1, :k])
            if k < batch:
                hs[t + 1, k:], gates[t, k:], g_n[t, k:] = 0, 0, 0
        ctx.save_for_backward(x, hs, gates, g_n, w_ih, w_hh)
        ctx.rows, ctx.recorder, ctx.clip, ctx.work = rows, recorder, clip, work
        ctx.owned = (("gates", gates), ("g_n", g_n))
        return hs[1:]

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, hs, gates, g_n, w_ih, w_hh = ctx.saved_tensors
        xp = array_module(grad)
        d_in = ctx.work.take("dP", gates.shape, gates.dtype, xp)
        d_hid = ctx.work.take("dG", gates.shape, gates.dtype, xp)
        # 0 at the rows a step does not run: a packed batch's padding
        deltas = xp.zeros_like(grad) if ctx.recorder is not None else None
        loop = _steps_compiled if xp is np else _steps_arrays
        dh = loop(grad, gates, g_n, hs, w_hh, d_in, d_hid, ctx.rows, ctx.clip, deltas)
        if deltas is not None:
            ctx.recorder(deltas)
        need = ctx.needs_input_grad
        hidden = g_n.shape[2]
        flat_in, flat_hid = d_in.reshape(-1, 3 * hidden), d_hid.reshape(-1, 3 * hidden)
        dx = (flat_in @ w_ih).reshape(x.shape) if need[0] else None
        dw_ih = flat_in.T @ x.reshape(-1, x.shape[-1]) if need[2] else None
        dw_hh = flat_hid.T @ hs[:-1].reshape(-1, hidden) if need[3] else None
        db_ih = flat_in.sum(axis=0) if need[4] else None
        db_hh = flat_hid.sum(axis=0) if need[5] else None
        ctx.work.give("dP", d_in)
        ctx.work.give("dG", d_hid)
        return dx, dh, dw_ih, dw_hh, db_ih, db_hh


def fused_gru(seq: Tensor, state: tuple, params: tuple, active: Any, recorder: Any, clip: float | None,
              work: WorkArrays | None = None) -> tuple:
    return (GRULayer.apply(seq, state[0], *params, active=active, recorder=recorder, clip=clip,
                           work=work or WorkArrays()),)


def gru_step(a_in: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    """One step from autograd ops; a_in holds the input projection and b_ih. Returns h'."""
    g = h @ w_hh_t
    if b_hh is not None:
        g = g + b_hh
    i_r, i_z, i_n = a_in.chunk(3, dim=1)  # (B, 3H): the layer always steps a batch
    h_r, h_z, h_n = g.chunk(3, dim=1)
    r, z = (i_r + h_r).sigmoid(), (i_z + h_z).sigmoid()
    n = (i_n + r * h_n).tanh()
    return (1 - z) * n + z * h


def composed_gru(x: Tensor, state: tuple, params: tuple, mask: Any, recorder: Any, clip: float | None) -> tuple:
    """The layer from autograd ops, step by step (see composed_elman for mask, recorder and clip)."""
    w_ih, w_hh, b_ih, b_hh = params
    (h,) = state
    deltas = step_deltas(x, w_hh.shape[1], recorder)
    proj = x @ w_ih.T
    if b_ih is not None:
        proj = proj + b_ih
    w_hh_t, hs = w_hh.T, []
    for t in range(x.shape[0]):
        h = watch_step(carry(gru_step(proj[t], h, w_hh_t, b_hh), h, mask, t), t, clip, deltas)
        hs.append(h if mask is None else h * Tensor(mask[t]))
    return (stack(hs, 0),)
