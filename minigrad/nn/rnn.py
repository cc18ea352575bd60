"""The vanilla (Elman) RNN, as torch.nn.RNN: h_t = f(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), f = tanh or relu.

Two implementations that agree to round-off (tests hold them equal in float64):
- composed (`fused=False`): the recurrence built from autograd ops, step by step; the readable reference.
- fused (default): one Function per layer whose backward is BPTT written out by hand (see `_FusedLayer`).

Variable-length batches arrive as a PackedSequence; internally they become a padded (T, B, ·) batch with a
validity mask m_t (B, 1): at steps past a sequence's end the state is carried unchanged and the output is 0, so
h_n is each sequence's last valid state and gradients flow only through valid steps.

With `bidirectional=True` each layer also runs over every sequence reversed within its own length (a packed
sequence of length n is read from step n-1 down to 0) and the two outputs are concatenated, as in torch;
`dropout` zeroes outputs of every layer but the last in training mode.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from minigrad._promotion import DEFAULT_DTYPE
from minigrad._validation import TensorError, check_flag, check_positive_int, check_real
from minigrad.autograd import Context, Function
from minigrad.devices import array_module
from minigrad.nn import functional as NF
from minigrad.nn.module import Module, Parameter
from minigrad.nn.utils.rnn import PackedSequence, packed_to_padded, padded_to_packed
from minigrad.random import uniform_
from minigrad.tensor import Tensor, cat, stack

_NONLINEARITIES = ("tanh", "relu")


def _activate(xp: Any, a: Any, nonlinearity: str, out: Any = None) -> Any:
    if nonlinearity == "tanh":
        return xp.tanh(a, out=out)
    return xp.maximum(a, 0, out=out)


def _scratch(pool: list | None, shape: tuple, dtype: Any, xp: Any) -> Any:
    """An uninitialised array of `shape`: a view into the flat array `pool` holds when it is large enough, else a
    new one. The caller appends what it used (its `.base`) back to `pool`; it passes None for CuPy arrays, which
    have their own memory pool.

    Why: a fresh array of the layer's size costs its page faults on every backward, which can cost more than
    the passes that fill it (docs/internals.md, "fresh arrays")."""
    size = math.prod(shape)
    if pool is not None:
        try:
            flat = pool.pop()
        except IndexError:  # another backward of this module holds it (or none was made yet)
            flat = None
        if flat is not None and flat.dtype == dtype and flat.size >= size:
            return flat[:size].reshape(shape)
    return xp.empty(size, dtype=dtype).reshape(shape)


def _derivative_into(xp: Any, h: Any, nonlinearity: str, out: Any) -> None:
    """out = f'(a) written with h = f(a): 1 - h² for tanh, [h > 0] for relu (no temporary the size of h)."""
    if nonlinearity == "tanh":
        xp.multiply(h, h, out=out)
        xp.subtract(1, out, out=out)
    else:
        out[...] = h > 0


class _FusedLayer(Function):
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
                clip: float | None = None, scratch: list | None = None) -> Any:
        xp = array_module(x)
        steps, batch, n_in = x.shape
        hidden = w_hh.shape[0]
        hs = xp.empty((steps + 1, batch, hidden), dtype=xp.result_type(x, w_ih))
        hs[0] = h0
        # The input projection of every step goes straight into the slots of the states it feeds, as one
        # (T·B, I) x (I, H) matmul (a 3-d operand would make NumPy run T small ones); each step then overwrites
        # its slot P_t with h_t. No second (T, B, H) array: every fresh array that size costs its page faults
        # (see _scratch), more than the additions on it.
        proj = hs[1:]
        xp.matmul(x.reshape(-1, n_in), w_ih.T, out=hs.reshape(-1, hidden)[batch:])  # proj's elements, as a view
        if b_ih is not None:
            proj += b_ih + b_hh
        # a contiguous W_hhᵀ: BLAS multiplies a small (B, H) block by it ~30% faster than by a transposed view
        w_hh_t, a = xp.ascontiguousarray(w_hh.T), xp.empty((batch, hidden), dtype=hs.dtype)
        rows = [batch] * steps if active is None else [int(k) for k in active]
        for t, k in enumerate(rows):
            xp.matmul(hs[t, :k], w_hh_t, out=a[:k])
            a[:k] += proj[t, :k]
            _activate(xp, a[:k], nonlinearity, out=hs[t + 1, :k])
            if k < batch:
                hs[t + 1, k:] = 0  # ended sequences: 0 in the outputs, and never fed to a step
        out = hs[1:]  # a view of what backward reads: changing it in place is caught by the version check
        ctx.save_for_backward(x, hs, w_ih, w_hh)
        ctx.nonlinearity, ctx.rows, ctx.recorder, ctx.clip, ctx.scratch = nonlinearity, rows, recorder, clip, scratch
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, hs, w_ih, w_hh = ctx.saved_tensors
        xp = array_module(grad)
        steps, clip, rows = x.shape[0], ctx.clip, ctx.rows
        dh = xp.zeros_like(grad[0])
        # dA_t for every step (0 in the rows of sequences that have ended), built where f'(a_t) was first
        # written for all steps in one vectorised pass: one array that size, not three (see forward)
        pool = ctx.scratch if xp is np else None  # NumPy only (see _scratch)
        d_pre = _scratch(pool, grad.shape, hs.dtype, xp)
        _derivative_into(xp, hs[1:], ctx.nonlinearity, d_pre)
        norms = np.empty(steps) if ctx.recorder is not None else None
        for t in range(steps - 1, -1, -1):
            k = rows[t]
            dh[:k] += grad[t, :k]
            if norms is not None:
                norms[t] = float(xp.linalg.norm(dh))  # before the clamp: what BPTT would have carried
            if clip is not None:
                xp.clip(dh[:k], -clip, clip, out=dh[:k])
            xp.multiply(dh[:k], d_pre[t, :k], out=d_pre[t, :k])
            if k < len(dh):
                d_pre[t, k:] = 0
            xp.matmul(d_pre[t, :k], w_hh, out=dh[:k])
        if norms is not None:
            ctx.recorder(norms)
        need = ctx.needs_input_grad
        flat = d_pre.reshape(-1, d_pre.shape[-1])
        dx = (flat @ w_ih).reshape(x.shape) if need[0] else None
        dw_ih = flat.T @ x.reshape(-1, x.shape[-1]) if need[2] else None
        dw_hh = flat.T @ hs[:-1].reshape(-1, hs.shape[-1]) if need[3] else None
        db = flat.sum(axis=0) if (need[4] or need[5]) else None
        if pool is not None:  # back for the next backward: nothing returned is a view of it
            pool.append(d_pre.base)
        return dx, dh, dw_ih, dw_hh, db, db


class _ClampGrad(Function):
    """Identity whose backward clamps the gradient to [-c, c]: `h.register_hook(lambda g: g.clamp(-c, c))`."""

    @staticmethod
    def forward(ctx: Context, h: Any, clip: float) -> Any:
        ctx.clip = clip
        return h

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return array_module(grad).clip(grad, -ctx.clip, ctx.clip), None


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
                    b_hh: Tensor | None, nonlinearity: str, mask: Any, record: bool, clip: float | None = None
                    ) -> tuple:
    """The same layer from autograd ops, one step at a time: the readable reference for the fused one.

    Returns (outputs, norms): with `record`, norms[t] is filled with ‖∂L/∂h_t‖ during backward. With
    `clip`, the gradient reaching each h_t (from its output and from step t+1) is clamped to [-clip, clip].
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
        if clip is not None:
            h_new = _ClampGrad.apply(h_new, clip=clip)
        if record:
            h_new = _RecordGrad.apply(h_new, report=lambda v, t=t: norms.__setitem__(t, v))
        h = h_new
        outputs.append(h if mask is None else h * Tensor(mask[t]))
    return stack(outputs, 0), norms


class RNNCell(Module):
    """One step: h' = f(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), as torch.nn.RNNCell.

    Args:
        input_size, hidden_size: positive ints. bias: with b_ih and b_hh. nonlinearity: "tanh" or "relu".
        dtype: of the parameters (float32 by default).

    `forward(input, hx=None)`: input (B, I) or (I,), hx (B, H) or (H,) (zeros when None); returns h'.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        _check_config(input_size, hidden_size, 1, nonlinearity)
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        _init_layer(self, "", input_size, hidden_size, bias, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        batched = input.ndim == 2
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise TensorError(f"RNNCell: input must be (batch, {self.input_size}) or ({self.input_size},), "
                              f"got shape {input.shape}")
        x = input if batched else input.unsqueeze(0)
        _check_dtype("RNNCell", "input", x, self.weight_ih)
        if hx is None:
            h = Tensor(array_module(x._data).zeros((x.shape[0], self.hidden_size), dtype=x.dtype))
        else:
            h = hx if batched else hx.unsqueeze(0)
            if h.shape != (x.shape[0], self.hidden_size):
                raise TensorError(f"RNNCell: hx must have shape {(x.shape[0], self.hidden_size)}, got {hx.shape}")
            _check_dtype("RNNCell", "hx", h, self.weight_ih)
        a = x @ self.weight_ih.T + h @ self.weight_hh.T
        if self.bias_ih is not None:
            a = a + self.bias_ih + self.bias_hh
        out = a.tanh() if self.nonlinearity == "tanh" else a.relu()
        return out if batched else out.squeeze(0)


def _check_config(input_size: int, hidden_size: int, num_layers: int, nonlinearity: str, **flags: Any) -> None:
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        check_positive_int(name, v)
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {_NONLINEARITIES}, got {nonlinearity!r}")
    for name, v in flags.items():
        check_flag(name, v)


def _check_clip(value: Any) -> float:
    try:
        return check_real("hidden_grad_clip", value, minimum=0.0)
    except ValueError as err:
        raise ValueError(f"{err} (None: no clipping inside BPTT)") from None


def _check_dtype(who: str, what: str, t: Tensor, weight: Tensor) -> None:
    if t.dtype != weight.dtype:
        raise TensorError(f"{who}: {what} has dtype {t.dtype} but the parameters have {weight.dtype}; convert one "
                          f"(e.g. .to({weight.dtype}) or module.double())")


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
    unbatched, or a PackedSequence; h0 (num_layers·D, B, H) or (num_layers·D, H), D = 2 when bidirectional
    (index layer·D + direction, as torch). Set `track_hidden_grads = True` and after backward
    `hidden_grad_norms[k, t]` holds ‖∂L/∂h_t‖ of layer-and-direction k (norm over batch and hidden units).

    Memory: with NumPy arrays, the fused backward keeps its work array dA (the size of the largest layer
    output seen, T·B·H elements) between calls, so that later backward calls do not pay its page faults.

    Args:
        input_size, hidden_size, num_layers: positive ints.
        nonlinearity: "tanh" or "relu". bias: with b_ih and b_hh. batch_first: input and output (B, T, ·).
        dropout: the probability of zeroing each output of every layer but the last, in training mode.
        bidirectional: also run every sequence reversed and concatenate the two outputs.
        fused: hand-derived BPTT in one Function per layer (True) or the recurrence from autograd ops.
        hidden_grad_clip: clamp ∂L/∂h_t to [-c, c] at every step of BPTT (None: no clamp).
        dtype: of the parameters (float32 by default).

    Returns (forward):
        (output, h_n): output (T, B, D·H) (a PackedSequence for packed input), h_n (num_layers·D, B, H), each
        sequence's last valid state.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 fused: bool = True, hidden_grad_clip: float | None = None, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        _check_config(input_size, hidden_size, num_layers, nonlinearity, bias=bias, batch_first=batch_first,
                      bidirectional=bidirectional, fused=fused)
        try:
            self.dropout = NF.check_dropout(dropout)
        except ValueError:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             f"element being zeroed, got {dropout!r}") from None
        if self.dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers=1",
                          stacklevel=2)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.nonlinearity, self.bias, self.batch_first, self.fused = nonlinearity, bias, batch_first, fused
        self.bidirectional = bidirectional
        self.hidden_grad_clip = None if hidden_grad_clip is None else _check_clip(hidden_grad_clip)
        self.track_hidden_grads = False
        self._norms: list | None = None  # per layer, filled by the last backward with track_hidden_grads
        self._bptt_scratch: list = []  # the fused backward's dA array, kept between calls (see _scratch)
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * directions
            for suffix in _suffixes(layer, directions):
                _init_layer(self, suffix, in_size, hidden_size, bias, dtype)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def __getstate__(self) -> dict:
        """What copy.deepcopy and pickle take: everything but the backward's work array (a copy starts without)."""
        return {**self.__dict__, "_bptt_scratch": []}

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, default in (("dropout", 0.0), ("bidirectional", False))
                        if getattr(self, k) != default)
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"nonlinearity={self.nonlinearity!r}, bias={self.bias}, batch_first={self.batch_first}{extra}, "
                f"fused={self.fused}")

    def _layer_params(self, suffix: str) -> tuple:
        return tuple(getattr(self, f"{n}{suffix}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def forward(self, input: Any, h0: Tensor | None = None) -> tuple[Any, Tensor]:
        packed = isinstance(input, PackedSequence)
        if packed:
            x, mask = packed_to_padded(input)  # (T, B, I) in sorted order, mask (T, B, 1)
            if h0 is not None and input.sorted_indices is not None:
                h0 = h0._gather((slice(None), array_module(h0._data).asarray(np.asarray(input.sorted_indices))))
        else:
            x, mask = self._time_major(input), None
        batched = packed or input.ndim == 3
        steps, batch = x.shape[0], x.shape[1]
        if x.shape[-1] != self.input_size:
            raise TensorError(f"RNN: expected input_size {self.input_size} features, got input of shape "
                              f"{tuple(input.data.shape if packed else input.shape)}")
        if steps == 0:
            raise TensorError("RNN: expected a sequence length larger than 0, got an input of length 0")
        _check_dtype("RNN", "input", x, self.weight_ih_l0)
        h0 = self._initial_state(h0, batch, batched, x)
        xp = array_module(x._data)
        xp_mask = None if mask is None else xp.asarray(mask.astype(x.dtype))
        lengths = None if mask is None else mask[:, :, 0].sum(axis=0)
        active = None if mask is None else mask[:, :, 0].sum(axis=1)  # running sequences per step (a prefix)
        last_step = None if mask is None else xp.asarray(lengths - 1)
        reverse = None if lengths is None else xp.asarray(_reversal(lengths, steps))
        directions = self.num_directions
        norms: list = [None] * (self.num_layers * directions)
        recorder = self.track_hidden_grads
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(_suffixes(layer, directions)):
                k = layer * directions + direction
                seq = layer_input if direction == 0 else _reverse_time(layer_input, reverse, xp)
                out, h_last, layer_norms = self._run_layer(seq, h0[k], self._layer_params(suffix), xp_mask, active,
                                                           last_step, batch, xp, recorder, norms, k)
                if layer_norms is not None:
                    norms[k] = layer_norms  # the composed layer's array, filled in place by backward
                outputs.append(out if direction == 0 else _reverse_time(out, reverse, xp))
                finals.append(h_last)
            layer_input = outputs[0] if directions == 1 else cat(outputs, dim=2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = NF.dropout(layer_input, self.dropout, True)
        if recorder:
            self._norms = norms
        h_n = stack(finals, 0)
        if packed:
            if input.unsorted_indices is not None:
                h_n = h_n._gather((slice(None), xp.asarray(np.asarray(input.unsorted_indices))))
            return padded_to_packed(layer_input, input), h_n
        output = layer_input
        if not batched:
            return output.squeeze(1), h_n.squeeze(1)
        return (output.transpose(0, 1) if self.batch_first else output), h_n

    def _run_layer(self, seq: Tensor, h0: Tensor, params: tuple, mask: Any, active: Any, last_step: Any, batch: int,
                   xp: Any, recorder: bool, norms: list, k: int) -> tuple:
        """One layer in one direction: (outputs (T, B, H), its last valid state, per-step norms or None).

        Both paths read h_n off the outputs at each sequence's last valid step, so its gradient joins that
        step's ∂L/∂h_t before any clamp (hidden_grad_clip) acts on it."""
        if self.fused:
            report = (lambda v: norms.__setitem__(k, v)) if recorder else None
            out = _FusedLayer.apply(seq, h0, *params, nonlinearity=self.nonlinearity, active=active,
                                    recorder=report, clip=self.hidden_grad_clip, scratch=self._bptt_scratch)
            layer_norms = None
        else:
            out, layer_norms = _composed_layer(seq, h0, *params, self.nonlinearity, mask, recorder,
                                               self.hidden_grad_clip)
        h_last = out[-1] if mask is None else out._gather((last_step, xp.arange(batch)))
        return out, h_last, (layer_norms if recorder else None)

    @property
    def hidden_grad_norms(self) -> np.ndarray | None:
        """(num_layers·D, T): ‖∂L/∂h_t‖ per layer (and direction) and step of the last backward, with
        track_hidden_grads; t counts in each direction's own reading order."""
        norms = getattr(self, "_norms", None)
        if norms is None or any(n is None for n in norms):
            return None
        return np.stack([np.asarray(n, dtype=np.float64) for n in norms])

    def _time_major(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            raise TypeError(f"RNN: input must be a Tensor or PackedSequence, got {type(input).__name__}")
        if input.ndim == 2:
            return input.unsqueeze(1)
        if input.ndim != 3:
            raise TensorError(f"RNN: input must be 3-D (batched) or 2-D (unbatched), got shape {input.shape}")
        return input.transpose(0, 1) if self.batch_first else input

    def _initial_state(self, h0: Tensor | None, batch: int, batched: bool, x: Tensor) -> Tensor:
        layers = self.num_layers * self.num_directions
        expect = (layers, batch, self.hidden_size) if batched else (layers, self.hidden_size)
        if h0 is None:
            return Tensor(array_module(x._data).zeros((layers, batch, self.hidden_size), dtype=x.dtype))
        if not isinstance(h0, Tensor):
            raise TypeError(f"RNN: h0 must be a Tensor, got {type(h0).__name__}")
        if h0.shape != expect:
            raise TensorError(f"RNN: expected h0 of shape {expect}, got {h0.shape}")
        _check_dtype("RNN", "h0", h0, self.weight_ih_l0)
        return h0 if batched else h0.unsqueeze(1)


def _suffixes(layer: int, directions: int) -> list[str]:
    return [f"_l{layer}", f"_l{layer}_reverse"][:directions]


def _reversal(lengths: np.ndarray, steps: int) -> np.ndarray:
    """(T, B) time indices that reverse each sequence within its own length and leave padding in place."""
    t = np.arange(steps)[:, None]
    return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


def _reverse_time(x: Tensor, reverse: Any, xp: Any) -> Tensor:
    """x (T, B, F) with every sequence read backwards: a view for full-length batches, a gather otherwise
    (both are their own inverse)."""
    if reverse is None:
        return x[::-1]
    return x._gather((reverse, xp.arange(x.shape[1])[None, :]))
