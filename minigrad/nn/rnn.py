"""The vanilla (Elman) RNN, as torch.nn.RNN: h_t = f(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), f = tanh or relu.

Two implementations that agree to round-off (tests hold them equal in float64):
- composed (`fused=False`): the recurrence built from autograd ops, step by step; the readable reference.
- fused (default): one Function per layer whose backward is BPTT written out by hand (see `_FusedLayer`).

Variable-length batches arrive as a PackedSequence; internally they become a padded (T, B, ·) batch with a
validity mask m_t (B, 1): at steps past a sequence's end the state is carried unchanged and the output is 0, so
h_n is each sequence's last valid state and gradients flow only through valid steps.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad.functions import Function
from minigrad.nn.module import Module, Parameter
from minigrad.random import uniform_
from minigrad.tensor import DEFAULT_DTYPE, Context, Tensor, array_module, stack

_NONLINEARITIES = ("tanh", "relu")


def _activate(xp: Any, a: Any, nonlinearity: str, out: Any = None) -> Any:
    if nonlinearity == "tanh":
        return xp.tanh(a, out=out)
    return xp.maximum(a, 0, out=out)


def _derivative(h: Any, nonlinearity: str) -> Any:
    """f'(a) written with h = f(a): 1 - h² for tanh, [h > 0] for relu."""
    return 1 - h * h if nonlinearity == "tanh" else (h > 0).astype(h.dtype)


class _FusedLayer(Function):
    """One RNN layer over all T steps; backward is BPTT by hand.

    Forward, with the input projection for all steps in one matmul:
        P = X W_ihᵀ + b_ih + b_hh                      (T, B, H)
        a_t = P_t + h_{t-1} W_hhᵀ,   h_t = f(a_t)      (h_t = h_{t-1} where m_t = 0)
    The Function returns the outputs only (h_n is read off them by indexing, so its gradient arrives there).
    Backward, one reversed loop carrying dh = ∂L/∂h_t (the total derivative, through all later steps):
        dh  += dY_t · m_t
        dA_t = dh ⊙ f'(a_t) · m_t
        dh   = dA_t W_hh + dh · (1 - m_t)
    and the weight gradients with one matmul over all steps:
        dW_ih = Σ_t dA_tᵀ x_t,  dW_hh = Σ_t dA_tᵀ h_{t-1},  db_ih = db_hh = Σ_t Σ_b dA_t,  dX_t = dA_t W_ih.
    Memory: the T+1 hidden states (T·B·H) and the mask.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any,
                nonlinearity: str = "tanh", mask: Any = None, recorder: Any = None) -> Any:
        xp = array_module(x)
        steps, batch, n_in = x.shape
        hidden = w_hh.shape[0]
        # one (T·B, I) x (I, H) matmul; a 3-d operand would make NumPy run T small ones
        proj = (x.reshape(-1, n_in) @ w_ih.T).reshape(steps, batch, hidden)
        if b_ih is not None:
            proj += b_ih + b_hh
        hs = xp.empty((steps + 1, batch, hidden), dtype=proj.dtype)
        hs[0] = h0
        w_hh_t, a = w_hh.T, xp.empty((batch, hidden), dtype=proj.dtype)
        for t in range(steps):
            xp.matmul(hs[t], w_hh_t, out=a)
            a += proj[t]
            _activate(xp, a, nonlinearity, out=hs[t + 1])
            if mask is not None:
                hs[t + 1] = xp.where(mask[t], hs[t + 1], hs[t])
        ctx.save_for_backward(x, hs, w_ih, w_hh)
        ctx.nonlinearity, ctx.mask, ctx.recorder = nonlinearity, mask, recorder
        return hs[1:] if mask is None else hs[1:] * mask

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, hs, w_ih, w_hh = ctx.saved_tensors
        xp = array_module(grad)
        steps, mask = x.shape[0], ctx.mask
        d_out, dh = grad, xp.zeros_like(grad[0])
        deriv = _derivative(hs[1:], ctx.nonlinearity)  # f'(a_t) for all steps in one vectorised pass
        if mask is not None:
            d_out, deriv, keep = d_out * mask, deriv * mask, 1 - mask
        d_pre = xp.empty_like(d_out)  # dA_t for every step
        norms = np.empty(steps) if ctx.recorder is not None else None
        for t in range(steps - 1, -1, -1):
            dh += d_out[t]
            if norms is not None:
                norms[t] = float(xp.linalg.norm(dh))
            xp.multiply(dh, deriv[t], out=d_pre[t])
            if mask is None:
                xp.matmul(d_pre[t], w_hh, out=dh)
            else:
                dh = d_pre[t] @ w_hh + dh * keep[t]  # finished sequences pass dh through unchanged
        if norms is not None:
            ctx.recorder(norms)
        need = ctx.needs_input_grad
        flat = d_pre.reshape(-1, d_pre.shape[-1])
        dx = (flat @ w_ih).reshape(x.shape) if need[0] else None
        dw_ih = flat.T @ x.reshape(-1, x.shape[-1]) if need[2] else None
        dw_hh = flat.T @ hs[:-1].reshape(-1, hs.shape[-1]) if need[3] else None
        db = flat.sum(axis=0) if (need[4] or need[5]) else None
        return dx, dh, dw_ih, dw_hh, db, db


class _RecordGrad(Function):
    """Identity whose backward reports ‖grad‖ (the composed RNN's per-step ∂L/∂h_t)."""

    @staticmethod
    def forward(ctx: Context, h: Any, report: Any) -> Any:
        ctx.report = report
        return h

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        ctx.report(float(array_module(grad).linalg.norm(grad)))
        return grad, None


def _composed_layer(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                    b_hh: Tensor | None, nonlinearity: str, mask: Any, record: bool) -> tuple:
    """The same layer from autograd ops, one step at a time: the readable reference for the fused one.

    Returns (outputs, h_n, norms): with `record`, norms[t] is filled with ‖∂L/∂h_t‖ during backward.
    """
    norms = np.zeros(x.shape[0])
    outputs = []
    proj = x @ w_ih.T  # the input projection of every step at once; the loop carries the recurrence
    if b_ih is not None:
        proj = proj + (b_ih + b_hh)
    w_hh_t = w_hh.T
    for t in range(x.shape[0]):
        a = proj[t] + h @ w_hh_t
        h_new = a.tanh() if nonlinearity == "tanh" else a.relu()
        if mask is not None:
            m = Tensor(mask[t])
            h_new = h_new * m + h * (1 - m)
        if record:
            h_new = _RecordGrad.apply(h_new, report=lambda v, t=t: norms.__setitem__(t, v))
        h = h_new
        outputs.append(h if mask is None else h * Tensor(mask[t]))
    return stack(outputs, 0), h, norms


class RNNCell(Module):
    """One step: h' = f(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), as torch.nn.RNNCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        _check_config(input_size, hidden_size, 1, nonlinearity)
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        _init_layer(self, "", input_size, hidden_size, bias, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        batched = input.ndim == 2
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"RNNCell: input must be (batch, {self.input_size}) or ({self.input_size},), "
                             f"got shape {input.shape}")
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            h = Tensor(array_module(x._data).zeros((x.shape[0], self.hidden_size), dtype=x.dtype))
        else:
            h = hx if batched else hx.unsqueeze(0)
            if h.shape != (x.shape[0], self.hidden_size):
                raise ValueError(f"RNNCell: hx must have shape {(x.shape[0], self.hidden_size)}, got {hx.shape}")
        a = x @ self.weight_ih.T + h @ self.weight_hh.T
        if self.bias_ih is not None:
            a = a + self.bias_ih + self.bias_hh
        out = a.tanh() if self.nonlinearity == "tanh" else a.relu()
        return out if batched else out.squeeze(0)


def _check_config(input_size: int, hidden_size: int, num_layers: int, nonlinearity: str) -> None:
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {_NONLINEARITIES}, got {nonlinearity!r}")


def _init_layer(module: Module, suffix: str, in_size: int, hidden: int, bias: bool, dtype: Any) -> None:
    """weight_ih{suffix} (H, in), weight_hh{suffix} (H, H), biases (H,), all from U(-1/√H, 1/√H)."""
    k = 1 / math.sqrt(hidden)
    setattr(module, f"weight_ih{suffix}", Parameter(uniform_(np.empty((hidden, in_size), dtype), -k, k)))
    setattr(module, f"weight_hh{suffix}", Parameter(uniform_(np.empty((hidden, hidden), dtype), -k, k)))
    for name in (f"bias_ih{suffix}", f"bias_hh{suffix}"):
        module.register_parameter(name, Parameter(uniform_(np.empty(hidden, dtype), -k, k)) if bias else None)


class RNN(Module):
    """Multi-layer Elman RNN with torch.nn.RNN's constructor, parameter names, shapes and forward.

    `forward(input, h0=None) -> (output, h_n)`: input (T, B, I) — (B, T, I) with batch_first — or (T, I)
    unbatched, or a PackedSequence; h0 (num_layers, B, H) or (num_layers, H). Set `track_hidden_grads = True`
    and after backward `hidden_grad_norms[l, t]` holds ‖∂L/∂h_t‖ of layer l (norm over batch and hidden units).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, fused: bool = True, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        _check_config(input_size, hidden_size, num_layers, nonlinearity)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.nonlinearity, self.bias, self.batch_first, self.fused = nonlinearity, bias, batch_first, fused
        self.track_hidden_grads = False
        self.hidden_grad_norms: np.ndarray | None = None
        for layer in range(num_layers):
            _init_layer(self, f"_l{layer}", input_size if layer == 0 else hidden_size, hidden_size, bias, dtype)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"nonlinearity={self.nonlinearity!r}, bias={self.bias}, batch_first={self.batch_first}, "
                f"fused={self.fused}")

    def _layer_params(self, layer: int) -> tuple:
        return tuple(getattr(self, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def forward(self, input: Any, h0: Tensor | None = None) -> tuple[Any, Tensor]:
        from minigrad.nn.utils.rnn import PackedSequence, packed_to_padded, padded_to_packed

        packed = isinstance(input, PackedSequence)
        if packed:
            x, mask = packed_to_padded(input)  # (T, B, I) in sorted order, mask (T, B, 1)
            if h0 is not None and input.sorted_indices is not None:
                h0 = h0[:, array_module(h0._data).asarray(input.sorted_indices)]
        else:
            x, mask = self._time_major(input), None
        batched = packed or input.ndim == 3
        batch = x.shape[1]
        if x.shape[-1] != self.input_size:
            raise ValueError(f"RNN: expected input_size {self.input_size} features, got input of shape "
                             f"{tuple(input.data._data.shape if packed else input.shape)}")
        if x.dtype != self.weight_ih_l0.dtype:
            raise TypeError(f"RNN: input dtype {x.dtype} differs from the parameters' {self.weight_ih_l0.dtype}")
        h0 = self._initial_state(h0, batch, batched, x)
        xp = array_module(x._data)
        xp_mask = None if mask is None else xp.asarray(mask.astype(x.dtype))
        last_step = None if mask is None else xp.asarray(mask[:, :, 0].sum(axis=0) - 1)
        norms: list = [None] * self.num_layers
        recorder = self.track_hidden_grads
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            params = self._layer_params(layer)
            report = (lambda v, layer=layer: norms.__setitem__(layer, v)) if recorder else None
            if self.fused:
                out = _FusedLayer.apply(layer_input, h0[layer], *params, nonlinearity=self.nonlinearity,
                                        mask=xp_mask, recorder=report)
                # h_n is the last valid output; its gradient reaches the output's in backward
                h_last = out[-1] if mask is None else out[last_step, xp.arange(batch)]
            else:
                out, h_last, layer_norms = _composed_layer(layer_input, h0[layer], *params, self.nonlinearity,
                                                           xp_mask, recorder)
                if recorder:
                    norms[layer] = layer_norms  # filled in place as backward runs
            finals.append(h_last)
            layer_input = out
        if recorder:
            self._norms = norms
        h_n = stack(finals, 0)
        if packed:
            if input.unsorted_indices is not None:
                h_n = h_n[:, xp.asarray(input.unsorted_indices)]
            return padded_to_packed(layer_input, input), h_n
        output = layer_input
        if not batched:
            return output.squeeze(1), h_n.squeeze(1)
        return (output.transpose(0, 1) if self.batch_first else output), h_n

    @property
    def hidden_grad_norms(self) -> np.ndarray | None:
        """(num_layers, T): ‖∂L/∂h_t‖ per layer and step from the last backward (with track_hidden_grads)."""
        norms = getattr(self, "_norms", None)
        if norms is None or any(n is None for n in norms):
            return None
        return np.stack([np.asarray(n, dtype=np.float64) for n in norms])

    @hidden_grad_norms.setter
    def hidden_grad_norms(self, value: Any) -> None:
        object.__setattr__(self, "_norms", value)

    def _time_major(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            raise TypeError(f"RNN: input must be a Tensor or PackedSequence, got {type(input).__name__}")
        if input.ndim == 2:
            return input.unsqueeze(1)
        if input.ndim != 3:
            raise ValueError(f"RNN: input must be 3-D (batched) or 2-D (unbatched), got shape {input.shape}")
        return input.transpose(0, 1) if self.batch_first else input

    def _initial_state(self, h0: Tensor | None, batch: int, batched: bool, x: Tensor) -> Tensor:
        expect = (self.num_layers, batch, self.hidden_size) if batched else (self.num_layers, self.hidden_size)
        if h0 is None:
            return Tensor(array_module(x._data).zeros((self.num_layers, batch, self.hidden_size), dtype=x.dtype))
        if h0.shape != expect:
            raise ValueError(f"RNN: h0 must have shape {expect}, got {h0.shape}")
        return h0 if batched else h0.unsqueeze(1)
