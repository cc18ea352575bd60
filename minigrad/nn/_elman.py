"""The vanilla (Elman) RNN layer: h_t = f(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), f = tanh or relu.

`ElmanLayer` runs all T steps of one layer in one Function whose backward is BPTT written out by hand;
`composed_elman` builds the same recurrence from autograd ops, the readable reference (tests hold them equal
in float64). Both take a layer's input (T, B, I), its first state, its parameters, and which rows run at each
step (packed batches); both return the states h_1..h_T, 0 at the steps a sequence does not have.
"""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Context, Function
from minigrad.devices import array_module
from minigrad.nn._bptt import WorkArrays, step_deltas, step_rows, watch_step
from minigrad.tensor import Tensor, stack


def activate(xp: Any, a: Any, nonlinearity: str, out: Any = None) -> Any:
    if nonlinearity == "tanh":
        return xp.tanh(a, out=out)
    return xp.maximum(a, 0, out=out)


def derivative_into(xp: Any, h: Any, nonlinearity: str, out: Any) -> Any:
    """out = f'(a) written with h = f(a): 1 - h² for tanh, [h > 0] for relu (no temporary the size of h)."""
    if nonlinearity == "tanh":
        xp.multiply(h, h, out=out)
        xp.subtract(1, out, out=out)
    else:
        out[...] = h > 0
    return out


class ElmanLayer(Function):
    """One RNN layer over all T steps; backward is BPTT by hand.

    Forward, with the input projection for all steps in one matmul:
        P = X W_ihᵀ + b_ih + b_hh                      (T, B, H)
        a_t = P_t + h_{t-1} W_hhᵀ,   h_t = f(a_t)      (for the sequences still running at step t)
        Y_t = h_t, and 0 for sequences that have ended
    The Function returns the outputs Y only (h_n is read off them by indexing, so its gradient arrives there).
    Backward, one reversed loop carrying dh = ∂L/∂h_t (the total derivative, through all later steps):
        dh  += dY_t                             (rows of sequences still running)
        dh   = clamp(dh, -c, c)                 (only with hidden_grad_clip = c)
        dA_t = dh ⊙ f'(a_t)
        dh   = dA_t W_hh
    and the weight gradients with one matmul over all steps:
        dW_ih = Σ_t dA_tᵀ x_t,  dW_hh = Σ_t dA_tᵀ h_{t-1},  db_ih = db_hh = Σ_t Σ_b dA_t,  dX_t = dA_t W_ih.
    Variable lengths come as `active`: at step t the first active[t] rows of the batch are running and the
    others have ended — packing sorts sequences by decreasing length, so this holds, and a sequence that has
    ended stays ended. Each step then computes only those rows (as torch does for packed input); the rows of
    ended sequences are 0 in the saved states and the outputs, never run on padding, and get no gradient
    (h_n is read at each sequence's last running step, so nothing reads them).
    Memory: the T+1 hidden states (T·B·H).
    """

    fresh_grads = True  # dX, dh_0 and the weight gradients are new arrays (db, returned twice, is never taken)

    @staticmethod
    def forward(ctx: Context, x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any,
                nonlinearity: str = "tanh", active: Any = None, recorder: Any = None,
                clip: float | None = None, work: WorkArrays | None = None) -> Any:
        xp = array_module(x)
        steps, batch, n_in = x.shape
        hidden = w_hh.shape[0]
        hs = xp.empty((steps + 1, batch, hidden), dtype=xp.result_type(x, w_ih))
        hs[0] = h0
        # The input projection of every step goes straight into the slots of the states it feeds, as one
        # (T·B, I) x (I, H) matmul (a 3-d operand would make NumPy run T small ones); each step then overwrites
        # its slot P_t with h_t. No second (T, B, H) array: every fresh array that size costs its page faults
        # (see WorkArrays), more than the additions on it.
        proj = hs[1:]
        xp.matmul(x.reshape(-1, n_in), w_ih.T, out=hs.reshape(-1, hidden)[batch:])  # proj's elements, as a view
        if b_ih is not None:
            proj += b_ih + b_hh
        # a contiguous W_hhᵀ: BLAS multiplies a small (B, H) block by it faster than by a transposed view
        w_hh_t, a = xp.ascontiguousarray(w_hh.T), xp.empty((batch, hidden), dtype=hs.dtype)
        rows = step_rows(active, steps, batch)
        for t, k in enumerate(rows):
            xp.matmul(hs[t, :k], w_hh_t, out=a[:k])
            a[:k] += proj[t, :k]
            activate(xp, a[:k], nonlinearity, out=hs[t + 1, :k])
            if k < batch:
                hs[t + 1, k:] = 0  # ended sequences: 0 in the outputs, and never fed to a step
        out = hs[1:]  # a view of what backward reads: changing it in place is caught by the version check
        ctx.save_for_backward(x, hs, w_ih, w_hh)
        ctx.nonlinearity, ctx.rows, ctx.recorder, ctx.clip, ctx.work = nonlinearity, rows, recorder, clip, work
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, hs, w_ih, w_hh = ctx.saved_tensors
        xp = array_module(grad)
        steps, clip, rows = x.shape[0], ctx.clip, ctx.rows
        dh = xp.zeros_like(grad[0])
        # dA_t for every step (0 in the rows of sequences that have ended), built where f'(a_t) was first
        # written for all steps in one vectorised pass: one array that size, not three (see forward)
        d_pre = derivative_into(xp, hs[1:], ctx.nonlinearity, ctx.work.take("dA", grad.shape, hs.dtype, xp))
        deltas = xp.empty_like(grad) if ctx.recorder is not None else None
        for t in range(steps - 1, -1, -1):
            k = rows[t]
            dh[:k] += grad[t, :k]
            if deltas is not None:
                deltas[t] = dh  # before the clamp: what BPTT would have carried
            if clip is not None:
                xp.clip(dh[:k], -clip, clip, out=dh[:k])
            xp.multiply(dh[:k], d_pre[t, :k], out=d_pre[t, :k])
            if k < len(dh):
                d_pre[t, k:] = 0
            xp.matmul(d_pre[t, :k], w_hh, out=dh[:k])
        if deltas is not None:
            ctx.recorder(deltas)
        need = ctx.needs_input_grad
        flat = d_pre.reshape(-1, d_pre.shape[-1])
        dx = (flat @ w_ih).reshape(x.shape) if need[0] else None
        dw_ih = flat.T @ x.reshape(-1, x.shape[-1]) if need[2] else None
        dw_hh = flat.T @ hs[:-1].reshape(-1, hs.shape[-1]) if need[3] else None
        db = flat.sum(axis=0) if (need[4] or need[5]) else None
        ctx.work.give("dA", d_pre)
        return dx, dh, dw_ih, dw_hh, db, db


def fused_elman(seq: Tensor, state: tuple, params: tuple, active: Any, recorder: Any, clip: float | None,
                work: WorkArrays | None = None, nonlinearity: str = "tanh") -> tuple:
    return (ElmanLayer.apply(seq, state[0], *params, nonlinearity=nonlinearity, active=active, recorder=recorder,
                             clip=clip, work=work or WorkArrays()),)


def elman_step(a_in: Tensor, h: Tensor, w_hh_t: Tensor, nonlinearity: str) -> Tensor:
    """One step from autograd ops: f(a_in + h W_hhᵀ), where a_in holds the input projection and both biases."""
    a = a_in + h @ w_hh_t
    return a.tanh() if nonlinearity == "tanh" else a.relu()


def composed_elman(x: Tensor, state: tuple, params: tuple, mask: Any, recorder: Any, clip: float | None,
                   nonlinearity: str) -> tuple:
    """The same layer from autograd ops, one step at a time: the readable reference for the fused one.

    Rows past a sequence's end carry their state unchanged (mask) and output 0. With `recorder`, it receives
    the (T, B, H) array of ∂L/∂h_t once backward has reached the first step. With `clip`, the gradient reaching
    each h_t (from its output and from step t+1) is clamped to [-clip, clip]."""
    w_ih, w_hh, b_ih, b_hh = params
    (h,) = state
    deltas = step_deltas(x, w_hh.shape[1], recorder)
    proj = x @ w_ih.T  # the input projection of every step at once; the loop carries the recurrence
    if b_ih is not None:
        proj = proj + (b_ih + b_hh)
    w_hh_t, outputs = w_hh.T, []
    for t in range(x.shape[0]):
        h = carry(elman_step(proj[t], h, w_hh_t, nonlinearity), h, mask, t)
        h = watch_step(h, t, clip, deltas)
        outputs.append(h if mask is None else h * Tensor(mask[t]))
    return (stack(outputs, 0),)


def carry(new: Tensor, old: Tensor, mask: Any, t: int) -> Tensor:
    """The new state where a sequence still runs at step t, the old one where it has ended."""
    if mask is None:
        return new
    m = Tensor(mask[t])
    return new * m + old * (1 - m)
