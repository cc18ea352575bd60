"""The GRU layer, torch's equations and gate order (r, z, n), b_hn inside the reset product:

    r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr),  z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h

`GRULayer` runs all T steps of one layer in one Function whose backward is BPTT by hand; `composed_gru` is the
same recurrence from autograd ops, the readable reference (tests hold them equal in float64).
"""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Context
from minigrad.devices import array_module
from minigrad.nn._bptt import SavesWorkArrays, WorkArrays, step_deltas, step_rows, watch_step
from minigrad.nn._elman import carry
from minigrad.nn._lstm import sigmoid_by_tanh
from minigrad.tensor import Tensor, stack


class GRULayer(SavesWorkArrays):
    """One GRU layer over all T steps; backward is BPTT by hand.

    Forward: the input projection of all steps in one matmul (P, (T, B, 3, H)), then per step one
    (B, H) x (H, 3H) matmul G = h W_hhᵀ + b_hh and a few passes; r, z, n are kept, and G_n = h W_hnᵀ + b_hn.
    Backward, one reversed loop carrying dh = ∂L/∂h_t, with factors computed for all steps beforehand
    (K_n = (1−z)(1−n²), K_z = (h_{t−1} − n)·z(1−z), K_r = K_n·G_n·r(1−r)):
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
        b_hh_half = None if b_hh is None else (b_hh * half).reshape(3, hidden)
        hs = xp.empty((steps + 1, batch, hidden), dtype=dtype)
        hs[0] = h0
        g_n = work.take("g_n", (steps, batch, hidden), dtype, xp)
        w_hh_t = xp.ascontiguousarray((w_hh * half[:, None]).T)
        rec, tmp = xp.empty((batch, 3 * hidden), dtype=dtype), xp.empty((batch, hidden), dtype=dtype)
        rows = step_rows(active, steps, batch)
        for t, k in enumerate(rows):
            p, r3 = gates[t, :k], rec[:k].reshape(k, 3, hidden)
            xp.matmul(hs[t, :k], w_hh_t, out=rec[:k])
            if b_hh_half is not None:
                r3 += b_hh_half
            rz = p[:, :2]
            rz += r3[:, :2]
            xp.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5  # r, z
            g_n[t, :k] = r3[:, 2]
            xp.multiply(p[:, 0], r3[:, 2], out=tmp[:k])
            p[:, 2] += tmp[:k]
            xp.tanh(p[:, 2], out=p[:, 2])  # n
            xp.subtract(hs[t, :k], p[:, 2], out=tmp[:k])
            tmp[:k] *= p[:, 1]
            xp.add(p[:, 2], tmp[:k], out=hs[t + 1, :k])  # n + z ⊙ (h − n)
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
        steps, batch, hidden = g_n.shape
        r, z, n = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2]
        k_in = ctx.work.take("dP", gates.shape, gates.dtype, xp)  # the K factors, then dP in place
        k_r, k_z, k_n = k_in[:, :, 0], k_in[:, :, 1], k_in[:, :, 2]
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
        k_hid = ctx.work.take("dG", gates.shape, gates.dtype, xp)  # dG in place
        k_hid[:, :, :2] = k_in[:, :, :2]
        xp.multiply(k_n, r, out=k_hid[:, :, 2])
        dh, tmp = xp.zeros((batch, hidden), dtype=grad.dtype), xp.empty((batch, hidden), dtype=grad.dtype)
        deltas = xp.empty_like(grad) if ctx.recorder is not None else None
        clip, rows = ctx.clip, ctx.rows
        for t in range(steps - 1, -1, -1):
            k = rows[t]
            dh[:k] += grad[t, :k]
            if deltas is not None:
                deltas[t] = dh
            if clip is not None:
                xp.clip(dh[:k], -clip, clip, out=dh[:k])
            k_in[t, :k] *= dh[:k, None, :]
            k_hid[t, :k] *= dh[:k, None, :]
            if k < batch:
                k_in[t, k:], k_hid[t, k:] = 0, 0
            xp.multiply(dh[:k], z[t, :k], out=tmp[:k])
            xp.matmul(k_hid[t, :k].reshape(k, 3 * hidden), w_hh, out=dh[:k])
            dh[:k] += tmp[:k]
        if deltas is not None:
            ctx.recorder(deltas)
        need = ctx.needs_input_grad
        flat_in, flat_hid = k_in.reshape(-1, 3 * hidden), k_hid.reshape(-1, 3 * hidden)
        dx = (flat_in @ w_ih).reshape(x.shape) if need[0] else None
        dw_ih = flat_in.T @ x.reshape(-1, x.shape[-1]) if need[2] else None
        dw_hh = flat_hid.T @ hs[:-1].reshape(-1, hidden) if need[3] else None
        db_ih = flat_in.sum(axis=0) if need[4] else None
        db_hh = flat_hid.sum(axis=0) if need[5] else None
        ctx.work.give("dP", k_in)
        ctx.work.give("dG", k_hid)
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
