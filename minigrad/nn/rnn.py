"""Recurrent networks with torch.nn's constructors, parameter names, shapes and forward: RNN, LSTM, GRU and
their one-step cells.

Each layer has two implementations that agree to round-off (tests hold them equal in float64):
- composed (`fused=False`): the recurrence built from autograd ops, step by step; the readable reference.
- fused (default): one Function per layer whose backward is BPTT written out by hand, in the file of its cell
  (_elman.py, _lstm.py, _gru.py), with its equations in the docstring.

Variable-length batches arrive as a PackedSequence; internally they become a padded (T, B, ·) batch with a
validity mask m_t (B, 1): at steps past a sequence's end the state is carried unchanged and the output is 0, so
h_n (and c_n) is each sequence's last valid state and gradients flow only through valid steps.

With `bidirectional=True` each layer also runs over every sequence reversed within its own length (a packed
sequence of length n is read from step n-1 down to 0) and the two outputs are concatenated, as in torch;
`dropout` zeroes outputs of every layer but the last in training mode.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from minigrad._promotion import default_dtype
from minigrad._validation import TensorError, check_flag, check_positive_int, check_real
from minigrad.autograd import no_grad
from minigrad.devices import array_module
from minigrad.nn import functional as NF
from minigrad.nn._bptt import HiddenGradRecord, WorkArrays
from minigrad.nn._elman import composed_elman, elman_step, fused_elman
from minigrad.nn._gru import composed_gru, fused_gru, gru_step
from minigrad.nn._lstm import composed_lstm, fused_lstm, lstm_step
from minigrad.nn.module import Module, Parameter
from minigrad.nn.utils.rnn import PackedSequence, packed_to_padded, padded_to_packed
from minigrad.tensor import Tensor, cat, stack

_NONLINEARITIES = ("tanh", "relu")


def _reset_parameters(module: Module) -> None:
    """Every weight and bias of a recurrent layer or cell drawn again from U(-1/√H, 1/√H), in place, in the
    order they were made (torch's init)."""
    k = 1 / math.sqrt(module.hidden_size)
    with no_grad():
        for p in module.parameters():
            p.uniform_(-k, k)


# ----- the one-step cells ---------------------------------------------------------------------------------------
class _CellBase(Module):
    gates, states = 1, 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool, device: Any, dtype: Any) -> None:
        super().__init__()
        _check_config(input_size, hidden_size, 1, "tanh", bias=bias)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        _init_layer(self, "", input_size, hidden_size, self.gates, bias, dtype)
        self.reset_parameters()
        self.to(device=device)

    reset_parameters = _reset_parameters

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    def _inputs(self, input: Tensor, hx: Any) -> tuple:
        """(x as (B, I), the states as (B, H) each, batched): zeros for hx None; shapes and dtypes checked."""
        who = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{who}: input must be a Tensor, got {type(input).__name__}")
        batched = input.ndim == 2
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise TensorError(f"{who}: input must be (batch, {self.input_size}) or ({self.input_size},), "
                              f"got shape {input.shape}")
        x = input if batched else input.unsqueeze(0)
        _check_dtype(who, "input", x, self.weight_ih)
        if hx is None:
            zeros = array_module(x._data).zeros((x.shape[0], self.hidden_size), dtype=x.dtype)
            return x, (Tensor(zeros),) * self.states, batched  # never written: one array serves h and c
        if self.states > 1 and not isinstance(hx, (tuple, list)):
            raise TypeError(f"{who}: hx must be a tuple (h, c) of Tensors, got {type(hx).__name__}")
        given = tuple(hx) if self.states > 1 else (hx,)
        if len(given) != self.states:
            raise TensorError(f"{who}: expects two hidden states (h, c), got {len(given)}")
        if not all(isinstance(h, Tensor) for h in given):
            raise TypeError(f"{who}: hx must be {'a tuple (h, c) of Tensors' if self.states > 1 else 'a Tensor'}")
        states = []
        for name, h in zip(("hx", "cx"), given):
            h = h if batched else h.unsqueeze(0)
            if h.shape != (x.shape[0], self.hidden_size):
                raise TensorError(f"{who}: {name} must have shape {(x.shape[0], self.hidden_size)}, got "
                                  f"{h.shape if batched else h.shape[1:]}")
            _check_dtype(who, name, h, self.weight_ih)
            states.append(h)
        return x, tuple(states), batched

    def _projection(self, x: Tensor, both_biases: bool = True) -> Tensor:
        a = x @ self.weight_ih.T
        if self.bias_ih is not None:
            a = a + (self.bias_ih + self.bias_hh if both_biases else self.bias_ih)
        return a


class RNNCell(_CellBase):
    """One step: h' = f(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), as torch.nn.RNNCell.

    Args:
        input_size, hidden_size: positive ints. bias: with b_ih and b_hh. nonlinearity: "tanh" or "relu".
        dtype: of the parameters (None: the default dtype, float32 unless set_default_dtype changed it).

    `forward(input, hx=None)`: input (B, I) or (I,), hx (B, H) or (H,) (zeros when None); returns h'.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None) -> None:
        _check_config(input_size, hidden_size, 1, nonlinearity)
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._inputs(input, hx)
        out = elman_step(self._projection(x), h, self.weight_hh.T, self.nonlinearity)
        return out if batched else out.squeeze(0)


class LSTMCell(_CellBase):
    """One LSTM step as torch.nn.LSTMCell (gates i, f, g, o; equations in nn/_lstm.py).

    `forward(input, hx=None)`: input (B, I) or (I,), hx a tuple (h, c) of (B, H) or (H,) (zeros when None);
    returns (h', c'). Parameters weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,), U(-1/√H, 1/√H).
    """

    gates, states = 4, 2

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple:
        x, (h, c), batched = self._inputs(input, hx)
        h, c = lstm_step(self._projection(x), h, c, self.weight_hh.T)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_CellBase):
    """One GRU step as torch.nn.GRUCell (gates r, z, n with b_hn inside the reset product; nn/_gru.py).

    `forward(input, hx=None)`: input (B, I) or (I,), hx (B, H) or (H,) (zeros when None); returns h'.
    Parameters weight_ih (3H, I), weight_hh (3H, H), bias_ih, bias_hh (3H,), U(-1/√H, 1/√H).
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._inputs(input, hx)
        out = gru_step(self._projection(x, both_biases=False), h, self.weight_hh.T, self.bias_hh)
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
        raise type(err)(f"{err} (None: no clipping inside BPTT)") from None


def _check_dtype(who: str, what: str, t: Tensor, weight: Tensor) -> None:
    if t.dtype != weight.dtype:
        raise TensorError(f"{who}: {what} has dtype {t.dtype} but the parameters have {weight.dtype}; convert one "
                          f"(e.g. .to({weight.dtype}) or module.double())")


def _init_layer(module: Module, suffix: str, in_size: int, hidden: int, gates: int, bias: bool, dtype: Any) -> None:
    """weight_ih{suffix} (G·H, in), weight_hh{suffix} (G·H, H), biases (G·H,) in `dtype` (None: the default
    dtype); reset_parameters draws them."""
    rows, dtype = gates * hidden, default_dtype(dtype)
    setattr(module, f"weight_ih{suffix}", Parameter(np.empty((rows, in_size), dtype)))
    setattr(module, f"weight_hh{suffix}", Parameter(np.empty((rows, hidden), dtype)))
    for name in (f"bias_ih{suffix}", f"bias_hh{suffix}"):
        module.register_parameter(name, Parameter(np.empty(rows, dtype)) if bias else None)


class _RNNBase(Module):
    """What RNN, LSTM and GRU share: the layers and directions, packed and unbatched input, dropout between
    layers, the first states, and the record of ∂L/∂h_t. A subclass names its cell: `gates` (G weight blocks per
    layer), `states` (1, or 2 for the LSTM's (h, c)), and its fused and composed layer functions."""

    gates, states = 1, 1
    # the cell's layer functions: fused (one Function, BPTT by hand) and composed (autograd ops per step)
    fused_layer, composed_layer = staticmethod(fused_elman), staticmethod(composed_elman)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool, batch_first: bool,
                 dropout: float, bidirectional: bool, fused: bool, hidden_grad_clip: float | None, device: Any,
                 dtype: Any, nonlinearity: str = "tanh") -> None:
        super().__init__()
        _check_config(input_size, hidden_size, num_layers, nonlinearity, bias=bias, batch_first=batch_first,
                      bidirectional=bidirectional, fused=fused)
        self.nonlinearity = nonlinearity
        try:
            self.dropout = NF.check_dropout(dropout)
        except ValueError as err:
            raise type(err)("dropout should be a number in range [0, 1] representing the probability of an "
                            f"element being zeroed, got {dropout!r}") from None
        if self.dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers=1",
                          stacklevel=3)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.fused, self.bidirectional = bias, batch_first, fused, bidirectional
        self.hidden_grad_clip = None if hidden_grad_clip is None else _check_clip(hidden_grad_clip)
        self.track_hidden_grads = False
        self._records: list | None = None  # one HiddenGradRecord per layer and direction, with track_hidden_grads
        self._work = WorkArrays()  # the fused layers' work arrays, kept between calls
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * directions
            for suffix in _suffixes(layer, directions):
                _init_layer(self, suffix, in_size, hidden_size, self.gates, bias, dtype)
        self.reset_parameters()
        self.to(device=device)

    reset_parameters = _reset_parameters

    def flatten_parameters(self) -> None:
        """Accepted for torch scripts, which call it to pack cuDNN's weights into one block: nothing to pack here."""

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def __getstate__(self) -> dict:
        """What copy.deepcopy and pickle take: everything but the work arrays and the last backward's record."""
        return {**self.__dict__, "_work": WorkArrays(), "_records": None}

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, default in (("dropout", 0.0), ("bidirectional", False))
                        if getattr(self, k) != default)
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}{self._cell_repr()}, "
                f"bias={self.bias}, batch_first={self.batch_first}{extra}, fused={self.fused}")

    def _cell_repr(self) -> str:
        return ""

    def _layer_params(self, suffix: str) -> tuple:
        return tuple(getattr(self, f"{n}{suffix}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _cell_options(self) -> dict:
        """What the cell's layer functions take besides the common arguments (the RNN's nonlinearity)."""
        return {}

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        who = type(self).__name__
        packed = isinstance(input, PackedSequence)
        if packed:
            x, mask = packed_to_padded(input)  # (T, B, I) in sorted order, mask (T, B, 1)
        else:
            x, mask = self._time_major(input), None
        batched = packed or input.ndim == 3
        steps, batch = x.shape[0], x.shape[1]
        if x.shape[-1] != self.input_size:
            raise TensorError(f"{who}: expected input_size {self.input_size} features, got input of shape "
                              f"{tuple(input.data.shape if packed else input.shape)}")
        if steps == 0:
            raise TensorError(f"{who}: expected a sequence length larger than 0, got an input of length 0")
        _check_dtype(who, "input", x, self.weight_ih_l0)
        states0 = self._initial_states(hx, batch, batched, x)
        xp = array_module(x._data)
        if packed and input.sorted_indices is not None and hx is not None:
            order = xp.asarray(np.asarray(input.sorted_indices))
            states0 = tuple(s._gather((slice(None), order)) for s in states0)
        xp_mask = None if mask is None else xp.asarray(mask.astype(x.dtype))
        valid = None if mask is None else mask[:, :, 0].astype(bool)
        active = None if mask is None else mask[:, :, 0].sum(axis=1)  # running sequences per step (a prefix)
        last_step = None if mask is None else xp.asarray(valid.sum(axis=0) - 1)
        reverse = None if mask is None else xp.asarray(_reversal(valid.sum(axis=0), steps))
        directions = self.num_directions
        records: list = []
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(_suffixes(layer, directions)):
                k = layer * directions + direction
                seq = layer_input if direction == 0 else _reverse_time(layer_input, reverse, xp)
                params = self._layer_params(suffix)
                state = tuple(s[k] for s in states0)
                record = None
                if self.track_hidden_grads:
                    record = HiddenGradRecord(None, params[1])
                    records.append(record)
                if self.fused:
                    seqs = self.fused_layer(seq, state, params, active, record, self.hidden_grad_clip, self._work,
                                            **self._cell_options())
                else:
                    seqs = self.composed_layer(seq, state, params, xp_mask, record, self.hidden_grad_clip,
                                               **self._cell_options())
                if record is not None:
                    record.states = seqs[0]._data
                # h_n (and c_n) read off the outputs at each sequence's last valid step: its gradient joins that
                # step's ∂L/∂h_t before any clamp (hidden_grad_clip) acts on it
                finals.append([s[-1] if mask is None else s._gather((last_step, xp.arange(batch))) for s in seqs])
                outputs.append(seqs[0] if direction == 0 else _reverse_time(seqs[0], reverse, xp))
            layer_input = outputs[0] if directions == 1 else cat(outputs, dim=2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = NF.dropout(layer_input, self.dropout, True)
        self._records = records if self.track_hidden_grads else None
        last = [stack([f[i] for f in finals], 0) for i in range(self.states)]
        if packed and input.unsorted_indices is not None:
            order = xp.asarray(np.asarray(input.unsorted_indices))
            last = [s._gather((slice(None), order)) for s in last]
        if packed:
            output = padded_to_packed(layer_input, input)
        elif not batched:
            output, last = layer_input.squeeze(1), [s.squeeze(1) for s in last]
        else:
            output = layer_input.transpose(0, 1) if self.batch_first else layer_input
        return output, (tuple(last) if self.states > 1 else last[0])

    @property
    def hidden_grad_norms(self) -> np.ndarray | None:
        """(num_layers·D, T): ‖∂L/∂h_t‖ per layer (and direction) and step of the last backward, with
        track_hidden_grads; t counts in each direction's own reading order. None before such a backward."""
        records = getattr(self, "_records", None)
        if not records or any(r.deltas is None for r in records):
            return None
        return np.stack([r.norms() for r in records])

    def _time_major(self, input: Tensor) -> Tensor:
        who = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{who}: input must be a Tensor or PackedSequence, got {type(input).__name__}")
        if input.ndim == 2:
            return input.unsqueeze(1)
        if input.ndim != 3:
            raise TensorError(f"{who}: input must be 3-D (batched) or 2-D (unbatched), got shape {input.shape}")
        return input.transpose(0, 1) if self.batch_first else input

    def _initial_states(self, hx: Any, batch: int, batched: bool, x: Tensor) -> tuple:
        who, layers = type(self).__name__, self.num_layers * self.num_directions
        expect = (layers, batch, self.hidden_size) if batched else (layers, self.hidden_size)
        if hx is None:
            zeros = array_module(x._data).zeros((layers, batch, self.hidden_size), dtype=x.dtype)
            return (Tensor(zeros),) * self.states  # never written: one array serves h0 and c0
        if self.states > 1:
            if not isinstance(hx, (tuple, list)):
                raise TypeError(f"{who}: hx must be a tuple (h0, c0) of Tensors, got {type(hx).__name__}")
            if len(hx) != 2:
                raise TensorError(f"{who}: expects two hidden states (h0, c0), got {len(hx)}")
            given = tuple(hx)
        else:
            given = (hx,)
        for name, h in zip(("h0", "c0"), given):
            if not isinstance(h, Tensor):
                raise TypeError(f"{who}: {name} must be a Tensor, got {type(h).__name__}")
            if h.shape != expect:
                raise TensorError(f"{who}: expected {name} of shape {expect}, got {h.shape}")
            _check_dtype(who, name, h, self.weight_ih_l0)
        return given if batched else tuple(h.unsqueeze(1) for h in given)


class RNN(_RNNBase):
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
        device, dtype: where the parameters live ("cpu" or "cuda") and their dtype (None: the default dtype,
            float32 unless set_default_dtype changed it).

    Returns (forward):
        (output, h_n): output (T, B, D·H) (a PackedSequence for packed input), h_n (num_layers·D, B, H), each
        sequence's last valid state.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 fused: bool = True, hidden_grad_clip: float | None = None, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, fused,
                         hidden_grad_clip, device, dtype, nonlinearity)

    def _cell_repr(self) -> str:
        return f", nonlinearity={self.nonlinearity!r}"

    def _cell_options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}


class _GatedRNN(_RNNBase):
    """torch's constructor for the gated cells (no nonlinearity argument)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, fused: bool = True,
                 hidden_grad_clip: float | None = None, device: Any = None, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, fused,
                         hidden_grad_clip, device, dtype)


class LSTM(_GatedRNN):
    """Multi-layer LSTM with torch.nn.LSTM's constructor, parameter names, shapes, gate order (i, f, g, o) and
    forward (equations and the hand-derived BPTT in nn/_lstm.py).

    `forward(input, hx=None) -> (output, (h_n, c_n))`: input as RNN's; hx a tuple (h0, c0), each
    (num_layers·D, B, H) or (num_layers·D, H) unbatched. Parameters weight_ih_l{k}[_reverse] (4H, I or D·H),
    weight_hh_l{k} (4H, H), bias_ih_l{k}, bias_hh_l{k} (4H,), all U(-1/√H, 1/√H). Args as RNN's, without
    nonlinearity (torch's proj_size is not supported). `track_hidden_grads`, `hidden_grad_norms` and
    `hidden_grad_clip` act on h_t (the cell state's gradient is neither clamped nor recorded).
    """

    gates, states = 4, 2
    fused_layer, composed_layer = staticmethod(fused_lstm), staticmethod(composed_lstm)


class GRU(_GatedRNN):
    """Multi-layer GRU with torch.nn.GRU's constructor, parameter names, shapes, gate order (r, z, n, with b_hn
    inside the reset product) and forward (equations and the hand-derived BPTT in nn/_gru.py).

    `forward(input, h0=None) -> (output, h_n)` as RNN's. Parameters weight_ih_l{k}[_reverse] (3H, I or D·H),
    weight_hh_l{k} (3H, H), bias_ih_l{k}, bias_hh_l{k} (3H,), all U(-1/√H, 1/√H). Args as RNN's, without
    nonlinearity.
    """

    gates = 3
    fused_layer, composed_layer = staticmethod(fused_gru), staticmethod(composed_gru)


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
