"""GradBuffer: one contiguous gradient array per dtype, each parameter's `.grad` a view into it.

Backward accumulates into the views in place, `zero_grad()` (here, or the optimizer's, or the module's) fills
them with zeros instead of dropping them, a clip over exactly these grads runs one kernel on the flat array,
and an MPI all-reduce is one collective.

Clipping folded into a fused step, and every rule of the pending coefficient, are here. When a fused optimizer
has laid its parameters out over this buffer (it is the buffer's `consumer`), a norm clip (`clip_norm_grads_`)
computes the norm but does not scale: it leaves the coefficient in `pending` (`defer`), and the optimizer's
kernel multiplies each gradient element by it as it reads it (`pending_scale`), without writing the product
back. The coefficient stays pending until something applies it (`settle`) or drops it: reading `p.grad`,
backward, another clip, an unfused optimizer apply it; a `zero_grad` that clears every member drops it
(`before_clearing`). So whoever reads `p.grad` after the clip sees the clipped gradient, and in the usual loop
(zero_grad, backward, clip, step) the gradient bytes are read twice (norm, step) and never written by the clip.

One difference from torch follows: an array taken from `p.grad` *before* the clip (`g = p.grad.numpy()`) is
the raw gradient until the next `p.grad` read applies the coefficient. Read `p.grad` after the clip.
"""
from __future__ import annotations

import weakref
from collections import Counter
from typing import Any

import numpy as np

from minigrad import clip
from minigrad._validation import TensorError
from minigrad.devices import array_module
from minigrad.tensor import Tensor

_by_flat: "weakref.WeakValueDictionary[int, GradBuffer]" = weakref.WeakValueDictionary()  # id(flat) -> buffer


def as_tensors(parameters: Any, name: str = "parameters") -> list[Tensor]:
    """`parameters` (a Tensor or an iterable of them) as a list; anything else is a TypeError naming it."""
    if isinstance(parameters, Tensor):
        return [parameters]
    try:
        params = list(parameters)
    except TypeError:
        raise TypeError(f"{name} must be a Tensor or an iterable of Tensors, got "
                        f"{type(parameters).__name__}") from None
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{name}[{i}] is a {type(p).__name__}, not a Tensor")
    return params


class GradBuffer:
    """One contiguous gradient array per dtype; each parameter's `.grad` becomes a view into it.

    Existing gradients are copied in; parameters without one start at zero. Everything is checked before the
    first `.grad` is rebound: a rejected construction leaves every parameter as it was.

    Args:
        parameters: a Tensor or an iterable of Tensors, each once, all on one device (e.g.
            `model.parameters()`).

    Attributes:
        flats: dtype -> the flat gradient array; offsets: dtype -> where each parameter's segment starts.

    Raises:
        TypeError: not a Tensor. ValueError: a parameter twice, or several devices. TensorError: a gradient
            whose shape, dtype or device differs from its parameter's.
    """

    def __init__(self, parameters: Any) -> None:
        params = as_tensors(parameters)
        if len({id(p) for p in params}) != len(params):
            raise ValueError("GradBuffer: a parameter appears twice in `parameters`")
        for i, p in enumerate(params):
            g = p._grad
            if g is not None and (g.shape != p.shape or g.dtype != p.dtype or g.device != p.device):
                raise TensorError(f"GradBuffer: parameters[{i}] has a gradient of shape {g.shape} and dtype "
                                  f"{g.dtype} on {g.device}, its parameter shape {p.shape} and dtype {p.dtype} "
                                  f"on {p.device}")
        if len({p.device for p in params}) > 1:
            raise ValueError("GradBuffer: the parameters are on different devices; make one buffer per device")
        by_dtype: dict[np.dtype, list[Tensor]] = {}
        for p in params:
            by_dtype.setdefault(p.dtype, []).append(p)
        layout = []  # (dtype, flat, [(param, view)]) built in full before any parameter is touched
        for dtype, group in by_dtype.items():
            xp = array_module(group[0]._data)
            flat = xp.zeros(sum(p.numel() for p in group), dtype=dtype)
            views, offset = [], 0
            for p in group:
                views.append((p, flat[offset:offset + p.numel()].reshape(p.shape)))
                offset += p.numel()
            layout.append((dtype, flat, views))
        self.params = params
        self.flats: dict[np.dtype, Any] = {}
        self.views: dict[np.dtype, list] = {}
        self.offsets: dict[np.dtype, np.ndarray] = {}  # where each parameter's segment starts in its flat array
        self.pending: Any = 1.0  # a clip coefficient not applied yet (see the module docstring)
        self._device_scales: dict = {}  # (dtype, value) -> that value on the device, for fused CUDA steps
        self.consumer: Any = None  # a weak reference to the fused optimizer that applies `pending`
        for dtype, flat, views in layout:
            for p, view in views:
                if p._settled_grad() is not None:
                    view[...] = p._grad._data
                p._grad_view = view
                p._grad_buffer = self  # the buffer lives as long as a parameter uses it
                p._set_grad_array(view)
            self.flats[dtype], self.views[dtype] = flat, [view for _, view in views]
            self.offsets[dtype] = np.cumsum([0] + [p.numel() for p, _ in views], dtype=np.int64)
            _by_flat[id(flat)] = self
        self.n_views = len(params)

    def settle(self) -> None:
        """Apply a pending clip coefficient to the flat arrays now."""
        if self.pending != 1.0:
            coef, self.pending = self.pending, 1.0
            clip.scale_(list(self.flats.values()), coef)

    def pending_scale(self, dtype: np.dtype) -> Any:
        """The pending coefficient as a scalar of `dtype` (on a CUDA device: a one-element device array, which the
        fused kernel reads there): what a fused step multiplies each gradient by."""
        if isinstance(next(iter(self.flats.values())), np.ndarray):
            return dtype.type(self.pending)
        if not isinstance(self.pending, float):  # a coefficient a clip computed on the device
            return self.pending.for_dtype(dtype)
        key = (dtype, self.pending)
        if key not in self._device_scales:  # made once: a host-to-device copy costs more than the step's launch
            from numba import cuda  # a CUDA buffer: numba.cuda is loaded already

            self._device_scales[key] = cuda.to_device(np.array([self.pending], dtype=dtype))
        return self._device_scales[key]

    def before_clearing(self, cleared: set) -> None:
        """Before the members whose ids are in `cleared` are zeroed: a pending coefficient is dropped when that is
        every member (nothing is left to scale), and applied otherwise (the others keep their clipped values)."""
        if all(id(q) in cleared for q in self.params):
            self.pending = 1.0
        else:
            self.settle()

    def defer(self, coef: Any) -> bool:
        """Leave `coef` (a float, or a clip's DeviceCoefficient on a CUDA device) for the fused consumer to apply
        in its step; False (nothing deferred) without one."""
        if self.consumer is None or self.consumer() is None:
            return False
        if isinstance(coef, float) and isinstance(self.pending, float):
            self.pending *= coef
        else:  # on the device: the earlier coefficient applied now, the new one kept in buffers of its own
            self.settle()
            self.pending = coef.copy()
        return True

    def zero_grad(self) -> None:
        """Zero the flat arrays and make every member's `.grad` its view again."""
        self.pending = 1.0
        for flat in self.flats.values():
            flat[...] = 0
        for p in self.params:
            if p._grad_buffer is self:
                p._set_grad_array(p._grad_view)

    def owns_all(self, params: list[Tensor]) -> bool:
        """True when `params` are exactly this buffer's parameters, each once, each with its view as `.grad`.
        `params` in the buffer's own order (the usual case: both came from `model.parameters()`) needs one loop;
        any other order also builds a set of ids, which costs more than the loop."""
        if len(params) != self.n_views:
            return False
        try:
            for p, q in zip(params, self.params):
                if p is not q or p._grad_buffer is not self or p._grad._data is not p._grad_view:
                    break
            else:
                return True
            for p in params:
                if p._grad_buffer is not self or p._grad is None or p._grad._data is not p._grad_view:
                    return False
        except AttributeError:  # not a Tensor: the slow path names it
            return False
        return len(set(map(id, params))) == len(params)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{dt}: {f.size}" for dt, f in self.flats.items())
        return f"GradBuffer({len(self.params)} parameters; {sizes})"


def grad_arrays(parameters: Any) -> list:
    return grads_and_buffer(parameters)[0]


def grads_and_buffer(parameters: Any) -> tuple[list, "GradBuffer | None"]:
    """The gradient arrays of `parameters` (a Tensor or an iterable), skipping None, in order; when they are
    exactly one GradBuffer's parameters (each once), its flat arrays instead (one kernel instead of many), and
    that buffer as the second item (None otherwise). A pending clip coefficient is applied first in both cases:
    a second clip, or a value clip after a norm clip, must act on the clipped gradients (a clip then leaves its
    own coefficient pending for the fused step).

    This runs on every clip, where every Python operation per parameter counts (1000 parameters), so the buffer
    case is the tight identity-check loop of `GradBuffer.owns_all`.
    """
    if isinstance(parameters, Tensor):
        parameters = (parameters,)
    elif not isinstance(parameters, (list, tuple)):
        parameters = list(parameters)
    buf = getattr(parameters[0], "_grad_buffer", None) if parameters else None
    if buf is not None and buf.owns_all(parameters):
        buf.settle()  # a coefficient an earlier clip left pending: this caller must see the clipped values
        return list(buf.flats.values()), buf
    grads = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters[{i}] is a {type(p).__name__}, not a Tensor")
        g = p._settled_grad()
        if g is not None:
            grads.append(g._data)
    return grads, None


def clip_norm_grads_(grads: list, buffer: "GradBuffer | None", max_norm: Any, norm_type: Any,
                     error_if_nonfinite: bool = False, norm: Any = None) -> Any:
    """`clip.clip_norm_` on gradients from `grads_and_buffer`, except that when they are a GradBuffer's and a
    fused optimizer consumes it, the coefficient is left pending there instead of scaling now. `norm`: their
    norm, when the caller has it already. Returns the total norm."""
    if buffer is None and norm is None:
        return clip.clip_norm_(grads, max_norm, norm_type, error_if_nonfinite=error_if_nonfinite)
    norm, coef = clip.norm_and_coefficient(grads, max_norm, norm_type, error_if_nonfinite=error_if_nonfinite,
                                           norm=norm)
    if coef is not None and (buffer is None or not buffer.defer(coef)):
        clip.scale_(grads, coef)
    return norm


def fuse_buffer_views(arrays: list) -> list:
    """`arrays` with every complete set of one GradBuffer's views (each exactly once) replaced by the buffer's
    flat array; for norms of grads handed over as tensors (`get_total_norm`) rather than as parameters."""
    counts = Counter(id(a) for a in arrays)
    fused, used, seen = [], set(), set()
    for a in arrays:
        base = getattr(a, "base", None)
        if base is None or id(base) in seen:
            continue
        seen.add(id(base))
        buf = _by_flat.get(id(base))
        views = None if buf is None else next((v for dt, v in buf.views.items() if buf.flats[dt] is base), None)
        if views is not None and all(counts.get(id(v)) == 1 for v in views):
            fused.append(base)
            used.update(id(v) for v in views)
    return fused + [a for a in arrays if id(a) not in used]
