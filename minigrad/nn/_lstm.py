"""The LSTM layer, torch's equations and gate order (i, f, g, o):

    i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o),  a = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh  (B, 4H)
    c_t = f ⊙ c_{t-1} + i ⊙ g,    h_t = o ⊙ tanh(c_t)

`LSTMLayer` runs all T steps of one layer in one Function whose backward is BPTT by hand; `composed_lstm` is
the same recurrence from autograd ops, the readable reference (tests hold them equal in float64).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from minigrad.autograd import Context
from minigrad.devices import array_module
from minigrad.nn._bptt import SavesWorkArrays, WorkArrays, step_deltas, step_rows, watch_step
from minigrad.nn._elman import carry
from minigrad.tensor import Tensor, stack


def sigmoid_by_tanh(xp: Any, sigmoid_gates: list, gates: int, hidden: int, dtype: Any) -> Any:
    """(G·H,) factors that halve the weight rows of the sigmoid gates, so that one tanh pass over a step's
    (B, G·H) block computes every gate: σ(a) = ½·tanh(½a) + ½ (no exp to overflow). Halving is exact in binary
    floating point, so the matmul with the halved weights gives ½a exactly."""
    scale = np.ones(gates)
    scale[sigmoid_gates] = 0.5
    return xp.asarray(np.repeat(scale, hidden).astype(dtype))


# The compiled passes below compute in the arrays' own dtype (`one`, `half`: a bare literal would promote
# float32 to float64) and in the same order as their array versions, so both give the same values, bit for
# bit. Each loop nest writes one gate of one array: a nest that writes several gates of the same array runs
# element by element (LLVM's overlap check between the gates' rows fails; docs/internals.md), one gate per nest
# runs in SIMD.


@njit(cache=True, nogil=True)
def _cell_step(a, c_prev, c):  # pragma: no cover - compiled
    """a (k, 4, H) holds tanh of the step's pre-activations (halved for i, f, o); writes the gates i, f, g, o
    over it and c = f ⊙ c_prev + i ⊙ g, on the CPU (products only: tanh stays NumPy's, which is vectorised;
    this saves the several calls a step the array version makes)."""
    half = a.dtype.type(0.5)
    for gate in (0, 1, 3):  # σ(a) = ½·tanh(½a) + ½ (see sigmoid_by_tanh)
        for b in range(a.shape[0]):
            for j in range(a.shape[2]):
                a[b, gate, j] = a[b, gate, j] * half + half
    for b in range(a.shape[0]):
        for j in range(a.shape[2]):
            c[b, j] = a[b, 1, j] * c_prev[b, j] + a[b, 0, j] * a[b, 2, j]


@njit(cache=True, nogil=True)
def _add_recurrent(a, rec, bias):  # pragma: no cover - compiled
    """a += rec, then a += bias (bias (4, H), or (0, H) for none): a step's pre-activations (k, 4, H) from its
    input projection and its recurrent product rec (k, 4, H), on the CPU."""
    for gate in range(4):
        for b in range(a.shape[0]):
            if bias.shape[0]:
                for j in range(a.shape[2]):
                    a[b, gate, j] = (a[b, gate, j] + rec[b, gate, j]) + bias[gate, j]
            else:
                for j in range(a.shape[2]):
                    a[b, gate, j] += rec[b, gate, j]


def _add_recurrent_arrays(a: Any, rec: Any, bias: Any) -> None:
    """_add_recurrent from array operations, for any array module."""
    a += rec
    if bias.shape[0]:
        a += bias


def _cell_step_arrays(a: Any, c_prev: Any, c: Any) -> None:
    """_cell_step from array operations, for any array module."""
    xp = array_module(a)
    for s in (a[:, :2], a[:, 3]):  # i, f, o: σ(a) = ½·tanh(½a) + ½ (see sigmoid_by_tanh)
        s *= 0.5
        s += 0.5
    xp.multiply(a[:, 1], c_prev, out=c)
    c += a[:, 0] * a[:, 2]


@njit(cache=True, nogil=True)
def add_and_clamp(dh, grad, clip, deltas):  # pragma: no cover - compiled
    """dh += grad over (k, H), recorded in deltas (unless it is empty) before dh is clamped to [−clip, clip]:
    a reversed step's first pass, in the LSTM's and the GRU's backward. Called from Python, never from another
    file's kernel: a compiled caller would cache its own copy, which a change here would not refresh."""
    record = deltas.shape[0] > 0
    for b in range(dh.shape[0]):
        for j in range(dh.shape[1]):
            d = dh[b, j] + grad[b, j]
            if record:
                deltas[b, j] = d
            if d > clip:  # comparisons, not min/max: a NaN passes through as np.clip lets it
                d = clip
            elif d < -clip:
                d = -clip
            dh[b, j] = d


@njit(cache=True, nogil=True)
def _backward_step(dh, dc, grad_c, gates, c_prev, tanh_c, d_a):  # pragma: no cover - compiled
    """One step of the loop in LSTMLayer's docstring over the running rows, on the CPU, after add_and_clamp: dh
    (the step's clamped ∂L/∂h_t), dc (in: from step t+1; out: dc ⊙ f_t, for step t−1), d_a (out: dA_t,
    (k, 4, H)).
    Nothing but products and sums, so a few compiled passes over (k, H) beat the ~ten calls a step the array
    version makes (docs/internals.md)."""
    one = dh.dtype.type(1)
    rows, hidden = dh.shape
    for b in range(rows):
        for j in range(hidden):
            d, o, tc = dh[b, j], gates[b, 3, j], tanh_c[b, j]
            dc[b, j] = (dc[b, j] + grad_c[b, j]) + d * ((one - tc * tc) * o)
            d_a[b, 3, j] = d * (((one - o) * o) * tc)
    for b in range(rows):
        for j in range(hidden):
            i = gates[b, 0, j]
            d_a[b, 0, j] = dc[b, j] * (((one - i) * i) * gates[b, 2, j])
    for b in range(rows):
        for j in range(hidden):
            f = gates[b, 1, j]
            d_a[b, 1, j] = dc[b, j] * (((one - f) * f) * c_prev[b, j])
    for b in range(rows):
        for j in range(hidden):
            g = gates[b, 2, j]
            d_a[b, 2, j] = dc[b, j] * ((one - g * g) * gates[b, 0, j])
            dc[b, j] *= gates[b, 1, j]


class LSTMLayer(SavesWorkArrays):
    """One LSTM layer over all T steps; backward is BPTT by hand.

    Forward: the input projection of all steps in one matmul, then per step one (B, H) x (H, 4H) matmul and a
    few passes over (B, 4H). The Function returns the h and c states of every step as one (2, T, B, H) array
    (0 for sequences that have ended; h_n and c_n are read off it by indexing, so their gradients arrive there).
    Backward, one reversed loop carrying dh = ∂L/∂h_t and dc = ∂L/∂c_t, with the factors K_i = g·i(1−i),
    K_f = c_{t−1}·f(1−f), K_g = i·(1−g²), K_o = tanh(c_t)·o(1−o), M = o·(1−tanh²(c_t)) (the array version
    computes them for all steps at once beforehand, the CPU's compiled pass in each step):
        dh   += dY_t;  dh = clamp(dh, −c, c) (with hidden_grad_clip)
        dc   += dC_t + dh ⊙ M_t
        dA_t  = [dc ⊙ K_i, dc ⊙ K_f, dc ⊙ K_g, dh ⊙ K_o]            (B, 4H)
        dc    = dc ⊙ f_t;   dh = dA_t W_hh
    then dW_ih = Σ_t dA_tᵀ x_t, dW_hh = Σ_t dA_tᵀ h_{t−1}, db_ih = db_hh = Σ dA_t, dX_t = dA_t W_ih.
    Packed batches as ElmanLayer: at step t only the first active[t] rows run.
    Memory: the states (2·T·B·H), the gates (4·T·B·H) and tanh(c_t) (T·B·H).
    """

    fresh_grads = True

    @staticmethod
    def forward(ctx: Context, x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any,
                active: Any = None, recorder: Any = None, clip: float | None = None,
                work: WorkArrays | None = None) -> Any:
        xp = array_module(x)
        steps, batch, n_in = x.shape
        hidden = w_hh.shape[1]
        dtype = xp.result_type(x, w_ih)
        half = sigmoid_by_tanh(xp, [0, 1, 3], 4, hidden, dtype)
        gates = work.take("gates", (steps, batch, 4, hidden), dtype, xp)
        xp.matmul(x.reshape(-1, n_in), (w_ih * half[:, None]).T, out=gates.reshape(-1, 4 * hidden))
        # the biases join each step's (B, 4H) block while it is in cache, not as a pass over all T steps
        bias = xp.empty((0, hidden), dtype) if b_ih is None else ((b_ih + b_hh) * half).reshape(4, hidden)
        states = xp.empty((2, steps + 1, batch, hidden), dtype=dtype)
        states[0, 0], states[1, 0] = h0, c0
        tanh_c = work.take("tanh_c", (steps, batch, hidden), dtype, xp)
        w_hh_t = xp.ascontiguousarray((w_hh * half[:, None]).T)
        rec = xp.empty((batch, 4 * hidden), dtype=dtype)
        rows = step_rows(active, steps, batch)
        add_recurrent, cell_step = (_add_recurrent, _cell_step) if xp is np else (_add_recurrent_arrays,
                                                                                  _cell_step_arrays)
        for t, k in enumerate(rows):
            a = gates[t, :k]
            xp.matmul(states[0, t, :k], w_hh_t, out=rec[:k])
            add_recurrent(a, rec[:k].reshape(k, 4, hidden), bias)
            xp.tanh(a, out=a)
            c = states[1, t + 1, :k]
            cell_step(a, states[1, t, :k], c)
            xp.tanh(c, out=tanh_c[t, :k])
            xp.multiply(a[:, 3], tanh_c[t, :k], out=states[0, t + 1, :k])
            if k < batch:  # ended sequences: 0 everywhere, never fed to a step
                states[:, t + 1, k:], gates[t, k:], tanh_c[t, k:] = 0, 0, 0
        ctx.save_for_backward(x, states, gates, tanh_c, w_ih, w_hh)
        ctx.rows, ctx.recorder, ctx.clip, ctx.work = rows, recorder, clip, work
        ctx.owned = (("gates", gates), ("tanh_c", tanh_c))
        return states[:, 1:]

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, states, gates, tanh_c, w_ih, w_hh = ctx.saved_tensors
        xp = array_module(grad)
        hidden = tanh_c.shape[2]
        d_a = ctx.work.take("dA", gates.shape, gates.dtype, xp)
        deltas = xp.zeros(grad.shape[1:], dtype=grad.dtype) if ctx.recorder is not None else None
        loop = _steps_compiled if xp is np else _steps_arrays
        dh, dc = loop(grad, gates, states, tanh_c, w_hh, d_a, ctx.rows, ctx.clip, deltas, ctx.work)
        if deltas is not None:
            ctx.recorder(deltas)
        need = ctx.needs_input_grad
        flat = d_a.reshape(-1, 4 * hidden)
        dx = (flat @ w_ih).reshape(x.shape) if need[0] else None
        dw_ih = flat.T @ x.reshape(-1, x.shape[-1]) if need[3] else None
        dw_hh = flat.T @ states[0, :-1].reshape(-1, hidden) if need[4] else None
        db = flat.sum(axis=0) if (need[5] or need[6]) else None
        ctx.work.give("dA", d_a)
        return dx, dh, dc, dw_ih, dw_hh, db, db


def _steps_compiled(grad: Any, gates: Any, states: Any, tanh_c: Any, w_hh: Any, d_a: Any, rows: list,
                    clip: float | None, deltas: Any, work: WorkArrays) -> tuple:
    """The reversed loop on the CPU: per step one compiled pass (_backward_step) and the matmul."""
    steps, batch, hidden = tanh_c.shape
    dh, dc = np.zeros((batch, hidden), dtype=grad.dtype), np.zeros((batch, hidden), dtype=grad.dtype)
    bound = grad.dtype.type(np.inf if clip is None else clip)
    unrecorded = np.empty((0, hidden), dtype=grad.dtype)
    for t in range(steps - 1, -1, -1):
        k = rows[t]
        add_and_clamp(dh[:k], grad[0, t, :k], bound, unrecorded if deltas is None else deltas[t, :k])
        _backward_step(dh[:k], dc[:k], grad[1, t, :k], gates[t, :k], states[1, t, :k], tanh_c[t, :k], d_a[t, :k])
        if k < batch:
            d_a[t, k:] = 0
        np.matmul(d_a[t, :k].reshape(k, 4 * hidden), w_hh, out=dh[:k])
    return dh, dc


def _steps_arrays(grad: Any, gates: Any, states: Any, tanh_c: Any, w_hh: Any, d_a: Any, rows: list,
                  clip: float | None, deltas: Any, work: WorkArrays) -> tuple:
    """The same loop from array operations, for any array module (CuPy on a GPU): the factors K and M of the
    docstring for all steps in a few passes, then per step a few products and the matmul."""
    xp = array_module(grad)
    steps, batch, hidden = tanh_c.shape
    xp.subtract(1, gates, out=d_a)
    d_a *= gates  # x(1 − x): the sigmoid gates' derivative (the g column is rewritten next)
    g = gates[:, :, 2]
    xp.multiply(g, g, out=d_a[:, :, 2])
    xp.subtract(1, d_a[:, :, 2], out=d_a[:, :, 2])
    d_a[:, :, 0] *= g
    d_a[:, :, 1] *= states[1, :-1]
    d_a[:, :, 2] *= gates[:, :, 0]
    d_a[:, :, 3] *= tanh_c  # K; each step multiplies its block into dA
    m = xp.multiply(tanh_c, tanh_c, out=work.take("M", tanh_c.shape, tanh_c.dtype, xp))
    xp.subtract(1, m, out=m)
    m *= gates[:, :, 3]
    dh, dc = xp.zeros((batch, hidden), dtype=grad.dtype), xp.zeros((batch, hidden), dtype=grad.dtype)
    tmp = xp.empty_like(dh)
    for t in range(steps - 1, -1, -1):
        k = rows[t]
        dh[:k] += grad[0, t, :k]
        if deltas is not None:
            deltas[t] = dh
        if clip is not None:
            xp.clip(dh[:k], -clip, clip, out=dh[:k])
        dc[:k] += grad[1, t, :k]
        xp.multiply(dh[:k], m[t, :k], out=tmp[:k])
        dc[:k] += tmp[:k]
        d_a[t, :k, :3] *= dc[:k, None, :]
        d_a[t, :k, 3] *= dh[:k]  # the ended rows' factors are 0 already: forward set their gates to 0
        dc[:k] *= gates[t, :k, 1]
        xp.matmul(d_a[t, :k].reshape(k, 4 * hidden), w_hh, out=dh[:k])
    work.give("M", m)
    return dh, dc


def fused_lstm(seq: Tensor, state: tuple, params: tuple, active: Any, recorder: Any, clip: float | None,
               work: WorkArrays | None = None) -> tuple:
    out = LSTMLayer.apply(seq, *state, *params, active=active, recorder=recorder, clip=clip, work=work or WorkArrays())
    return out[0], out[1]


def lstm_step(a_in: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor) -> tuple:
    """One step from autograd ops; a_in holds the input projection and both biases. Returns (h', c')."""
    i, f, g, o = (a_in + h @ w_hh_t).chunk(4, dim=1)  # (B, 4H): the layer always steps a batch
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def composed_lstm(x: Tensor, state: tuple, params: tuple, mask: Any, recorder: Any, clip: float | None) -> tuple:
    """The layer from autograd ops, step by step (see composed_elman for mask, recorder and clip)."""
    w_ih, w_hh, b_ih, b_hh = params
    h, c = state
    deltas = step_deltas(x, w_hh.shape[1], recorder)
    proj = x @ w_ih.T
    if b_ih is not None:
        proj = proj + (b_ih + b_hh)
    w_hh_t, hs, cs = w_hh.T, [], []
    for t in range(x.shape[0]):
        h_new, c_new = lstm_step(proj[t], h, c, w_hh_t)
        c = carry(c_new, c, mask, t)
        h = watch_step(carry(h_new, h, mask, t), t, clip, deltas)
        m = None if mask is None else Tensor(mask[t])
        hs.append(h if m is None else h * m)
        cs.append(c if m is None else c * m)
    return stack(hs, 0), stack(cs, 0)
