"""The autograd core: Function and its Context (one node of the graph), grad mode (no_grad), version counters,
views, and how an in-place op rebases a tensor's history. The backward engine that walks the graph is in
engine.py.

The graph is made of nodes, not of tensors. Every op's Context is a node whose `parents` are the nodes that
produced its inputs: another op's Context, or the `AccumulateGrad` node of a leaf that requires grad (None for
an input that needs no gradient). A tensor points at the node that produced it (`_node`, None for a leaf), so
an in-place op can give a tensor a new node while its old one stays in the graph (torch's rebase): `x += y` on
a non-leaf x records an Add whose first parent is x's previous node, and the Python object x keeps its identity.

Version counters: every tensor holds `_versions`, a one-element list shared with its views; an in-place op
bumps it. A Context remembers the version of every array it saved that is one of its inputs' or its output's
own array, and backward refuses to run when one of them has changed since (torch's error).

Views (torch's view + in-place semantics): a Function with `view = True` (basic indexing, reshape, permute,
expand) whose result shares memory with its first input makes the result a view: it records its root `_base`
and the chain of view ops from the base. An in-place op on a view that autograd records rebases the *base*
onto a `CopySlices` node (the op applied to the view's region) and makes the view a view of the new base; any
other view of that base whose version is stale is rebuilt from the base's current node when it is next used.
That holds for views of the default kind only. A view from a multi-output op (unbind, split, chunk), one made
in no_grad mode, and a result that shares memory with an input of an op that declares no view (a user's Function
returning an input, or a view of one) are never rebased or rebuilt: as in torch, a recorded in-place op on such
a view, and any use of it after its base changed in place, raise.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from minigrad._validation import TensorError
from minigrad.autograd import grad_mode
from minigrad.autograd.grad_mode import enable_grad
from minigrad.devices import array_module


class TensorBase:
    """What the engine reads and writes on a tensor; `minigrad.Tensor` is the implementation.

    `_data` is the array, `_grad` the gradient (a tensor) or None, `_node` the Context that produced the tensor
    (None for a leaf), `_versions` the version counter shared with its views, `_requires_grad` a bool. A view
    also has `_base` (the tensor whose memory it views), `_view_chain` (the view ops from the base),
    `_view_version` (the version its node was made at) and `_view_kind` (None, "multi" for one of several views
    an op returned, "no_grad" for a view made while grad was off).
    """

    _data: Any
    _grad: Any
    _node: Any
    _versions: list
    _accumulator: Any
    _requires_grad: bool
    _base: Any = None
    _view_chain: tuple = ()
    _view_version: int  # set with _base: read only where _base is set
    _view_kind: Any = None
    _hooks: Any = None  # a leaf's gradient hooks (register_hook)

    @staticmethod
    def _wrap(arr: Any) -> "TensorBase":
        """A new tensor around `arr` (no copy): what an op returns."""
        raise NotImplementedError

    def _accumulate(self, grad: Any, owned: bool) -> None:
        """Add `grad` (an array, or an IndexGrad) into this leaf's `.grad`; `owned`: nothing else refers to it."""
        raise NotImplementedError

    @property
    def requires_grad(self) -> bool:
        if self._base is not None and self._view_kind is None and self._view_version != self._versions[0]:
            refresh_view(self)  # the other kinds raise when they are used, not when asked (as torch)
        return self._requires_grad

    @property
    def _grad_node(self) -> Any:
        """The node this tensor's gradient flows into (a stale view is rebuilt first), or None."""
        if self._base is not None and self._view_version != self._versions[0]:
            refresh_view(self)
        if not self._requires_grad:
            return None
        return self._node if self._node is not None else leaf_node(self)


def unwrap(x: Any) -> Any:
    """A tensor's array, anything else as it is."""
    return x._data if isinstance(x, TensorBase) else x


class AccumulateGrad:
    """The node of a leaf that requires grad: whatever reaches it is added into the leaf's `.grad`."""

    __slots__ = ("tensor", "__weakref__")
    parents: tuple = ()

    def __init__(self, tensor: TensorBase) -> None:
        self.tensor = tensor

    def name(self) -> str:
        return "AccumulateGrad"


def leaf_node(t: TensorBase) -> AccumulateGrad:
    """The leaf's AccumulateGrad node: one per leaf while a graph holds it, so that every use of the leaf in a
    graph meets at one node (the leaf keeps only a weak reference)."""
    ref = t._accumulator
    node = ref() if ref is not None else None
    if node is None:
        node = AccumulateGrad(t)
        t._accumulator = weakref.ref(node)
    return node


class Context:
    """What a Function keeps between forward and backward; it is also the Function's node in the graph."""

    __slots__ = ("fn", "parents", "dtypes", "saved_tensors", "needs_input_grad", "freed", "watched", "__dict__")

    def __init__(self) -> None:
        self.saved_tensors: tuple = ()
        self.freed = False
        self.watched: tuple = ()

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays for backward (None for one that is not needed: it is then not watched either)."""
        self.saved_tensors = arrays

    def name(self) -> str:
        return f"{self.fn.__name__}Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class Function:
    """An op: `forward(ctx, *arrays, **options) -> array`, `backward(ctx, grad) -> grad per positional input`.

    Positional arguments that are Tensors are the differentiable inputs; anything else (a Python number, an
    index) is a constant whose gradient slot backward fills with None. `apply` needs at least one Tensor.
    `ctx.needs_input_grad` is set before forward runs, so that forward saves only what backward will need (a
    saved input or output is watched by its version counter: torch's rule for which in-place changes raise).
    """

    # True where backward promises that every array it returns is new (allocated by this call, kept nowhere):
    # the engine may then add into it in place and store it as a leaf's .grad without a copy. One array
    # returned for two inputs is never taken over (the engine checks that).
    fresh_grads = False
    # True for an op whose result may be a view of its first input (see the module docstring)
    view = False

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def release(ctx: Context) -> None:
        """Called when a backward frees this node's saved arrays (not with retain_graph): nothing can read them
        again, so a Function may hand its internal work arrays back for reuse (see nn/_bptt.py)."""

    @staticmethod
    def written(a: Any, **kwargs: Any) -> Any:
        """The part of `a` that this op, run in place, writes (all of it; x[i] = v writes x[i] only)."""
        return a

    @staticmethod
    def refuses_any_overlap(**kwargs: Any) -> bool:
        """Whether this op, run in place, refuses an input that is the written-to tensor itself, not only one that
        partly overlaps it (torch's scatters and index_put_ do)."""
        return False

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run forward on the inputs' arrays and return its result as a tensor that remembers this op."""
        ctx = Context()
        first = None
        raw, needs = [], []
        for a in args:
            if isinstance(a, TensorBase):
                if first is None:
                    first = a
                if a._base is not None and a._view_version != a._versions[0]:
                    refresh_view(a)
                raw.append(a._data)
                needs.append(a._requires_grad)
            else:
                raw.append(a)
                needs.append(False)
        if first is None:
            raise TypeError(f"{cls.__name__}.apply needs at least one Tensor argument")
        ctx.needs_input_grad = needs = tuple(needs)
        out = cls.forward(ctx, *raw, **kwargs)
        result = first._wrap(out if type(out) is np.ndarray else array_module(out).asarray(out))
        if cls.view and first is args[0]:
            _mark_view(result, first, cls, args[1:], kwargs)
        else:
            _mark_custom_view(result, cls, args)
        if grad_mode._grad_enabled and True in needs:
            result._requires_grad = True
            ctx.fn = cls
            parents, dtypes = [], []
            for a, need in zip(args, needs):
                parents.append((a._node or leaf_node(a)) if need else None)
                dtypes.append(a._data.dtype if need else None)
            ctx.parents, ctx.dtypes = parents, dtypes
            if ctx.saved_tensors:
                ctx.watched = _watch(ctx.saved_tensors, args, result, out)
            result._node = ctx
        return result


def _mark_view(result: TensorBase, source: TensorBase, cls: type, consts: tuple, kwargs: dict) -> None:
    """Make `result` a view of `source`'s base when its array shares `source`'s memory."""
    out, src = result._data, source._data
    if not array_module(out).may_share_memory(out, src):
        return
    result._base = source._base if source._base is not None else source
    result._view_chain = source._view_chain + ((cls, consts, kwargs),)
    result._versions = source._versions
    result._view_version = source._versions[0]
    result._view_kind = source._view_kind if grad_mode._grad_enabled else "no_grad"


def _mark_custom_view(result: TensorBase, cls: type, args: tuple) -> None:
    """A result of an op that declares no view (a user's Function) sharing memory with an input, the input
    itself or a view of it: as torch, it is a view of that input's base with the input's version counter, and
    autograd refuses in-place changes through it (they would bypass the op's backward; see apply_inplace). Its
    view chain stays empty: a view of a kind other than the default is never replayed."""
    out = result._data
    out_is_view = out.base is not None
    for a in args:
        if not isinstance(a, TensorBase):
            continue
        arr = a._data
        # every op passes here: two arrays that own their memory overlap only when they are one array, so the
        # bounds check is left to the pairs where one of them is a view
        if arr is out or ((out_is_view or arr.base is not None) and array_module(out).may_share_memory(out, arr)):
            result._base = a._base if a._base is not None else a
            result._versions = a._versions
            result._view_version = a._versions[0]
            result._view_kind = "custom"
            return


def replay_view(chain: tuple, arr: Any) -> Any:
    """The view `chain` describes, taken of the array `arr` (an array of the base's shape)."""
    for cls, consts, kwargs in chain:
        arr = cls.forward(Context(), arr, *consts, **kwargs)
    return arr


_INPLACE_ON_VIEW = {  # torch's errors for an in-place op on a view of each kind other than the default
    "multi": "Output 0 of an op is a view and is being modified inplace. This view is the output of a function "
             "that returns multiple views (unbind, split, chunk). Such functions do not allow the output views to "
             "be modified inplace. You should replace the inplace operation by an out-of-place one",
    "no_grad": "A view was created in no_grad mode and is being modified inplace with grad mode enabled. Given "
               "that this use case is ambiguous and error-prone, it is forbidden. Move both the view and the inplace "
               "either inside the no_grad block or outside it",
    "custom": "Output 0 of a custom Function is a view and is being modified inplace. This view was created inside "
              "a custom Function (or because an input was returned as-is) and the autograd logic to handle "
              "view+inplace would override the custom backward associated with the custom Function, leading to "
              "incorrect gradients. This behavior is forbidden. You can fix this by cloning the output of the "
              "custom Function",
}


_STALE_VIEW = {
    "multi": "Output 0 of an op is a view and its base or another view of its base has been modified inplace. This "
             "view is the output of a function that returns multiple views (unbind, split, chunk). Such functions "
             "do not allow the output views to be modified inplace. You should replace the inplace operation by an "
             "out-of-place one",
    "no_grad": "A view was created in no_grad mode and its base or another view of its base has been modified "
               "inplace with grad mode enabled. Given that this use case is ambiguous and error-prone, it is "
               "forbidden. You can clarify your code by moving both the view and the inplace either both inside "
               "the no_grad block (if you don't want the inplace to be tracked) or both outside (if you want the "
               "inplace to be tracked)",
    "custom": "Output 0 of a custom Function is a view and its base or another view of its base has been modified "
              "inplace. This view was created inside a custom Function (or because an input was returned as-is) "
              "and the autograd logic to handle view+inplace would override the custom backward associated with "
              "the custom Function, leading to incorrect gradients. This behavior is forbidden. You can fix this by "
              "cloning the output of the custom Function",
}


def refresh_view(t: TensorBase) -> None:
    """Rebuild a view's node from its base's current one: after an in-place change of the base (or of another
    view of it), the view's values come from the base's new history (torch regenerates a view's grad_fn so)."""
    base = t._base
    if t._view_kind is not None and base.requires_grad:  # torch rebuilds only the views of the default kind
        raise TensorError(_STALE_VIEW[t._view_kind])
    t._view_version = t._versions[0]
    if not base.requires_grad:
        return
    with enable_grad():
        v = base
        for cls, consts, kwargs in t._view_chain:
            v = cls.apply(v, *consts, **kwargs)
    t._node, t._requires_grad = v._node, True


def _watch(saved: tuple, args: tuple, result: TensorBase, out: Any) -> tuple:
    """(version counter, version, role, shape) for every saved array that is an input's or the output's own
    array (or the array the output is a view of: an op that saves a buffer and returns a view of it)."""
    watched = []
    out_base = getattr(out, "base", None)
    for arr in saved:
        if arr is None:
            continue
        if arr is out or (out_base is not None and out_base is arr):
            watched.append((result._versions, result._versions[0], "output", out.shape))
            continue
        for i, a in enumerate(args):
            if isinstance(a, TensorBase) and a._data is arr:
                watched.append((a._versions, a._versions[0], f"input {i}", arr.shape))
                break
    return tuple(watched)


def check_versions(ctx: Context) -> None:
    """Raise torch's error when an array `ctx` saved has been changed in place since."""
    for versions, version, role, shape in ctx.watched:
        now = versions[0]
        if now != version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: the {role} of {ctx.fn.__name__} (a tensor of shape {tuple(shape)}) is at "
                f"version {now}; expected version {version} instead. Hint: the operation that failed was an "
                f"in-place one on a tensor that an earlier operation saved for backward; use an out-of-place "
                f"version (x = x + y instead of x += y) or clone() first")


# ----- in-place ops -------------------------------------------------------------------------------------------
def check_inplace(t: TensorBase, op: str) -> None:
    """Raise torch's error where torch forbids writing into `t` in place with grad mode on."""
    if not grad_mode._grad_enabled:
        return
    base = t._base
    if base is None:
        if t._node is None and t._requires_grad:
            raise TensorError(f"{op}: a leaf Variable that requires grad is being used in an in-place operation "
                              f"(do it under minigrad.no_grad(), or on .data)")
        return
    if base._node is None and base._requires_grad:
        raise TensorError(f"{op}: a view of a leaf Variable that requires grad is being used in an in-place "
                          f"operation")
    if t._view_kind == "no_grad" and base._requires_grad:  # written without autograd: the view needs no grad
        raise TensorError(f"{op}: {_INPLACE_ON_VIEW['no_grad']}")


def _dense(a: np.ndarray) -> bool:
    return a.flags.c_contiguous or a.flags.f_contiguous


def check_overlap(target: Any, others: Any, op: str, same_ok: bool = True) -> None:
    """torch's rule for an in-place op: an input may be the written-to tensor itself (the same memory, shape and
    strides; unless not `same_ok`) or memory apart from it, but not partly the same memory; where torch cannot
    tell (a layout that is not dense) it lets it pass, and so do we."""
    if not isinstance(target, np.ndarray) or target.size == 0 or not _dense(target):
        return
    lo, hi = np.lib.array_utils.byte_bounds(target)
    for other in others:
        if not isinstance(other, np.ndarray) or (other is target and same_ok) or other.size == 0 or \
                not _dense(other):
            continue
        other_lo, other_hi = np.lib.array_utils.byte_bounds(other)
        same = (other_lo, other_hi) == (lo, hi) and other.strides == target.strides and other.shape == target.shape
        if same and same_ok:
            continue
        if other_lo < hi and lo < other_hi:
            raise TensorError(f"{op}: unsupported operation: some elements of the input tensor and the written-to "
                              f"tensor refer to a single memory location. Please clone() the tensor before "
                              f"performing the operation.")


def _write(t: TensorBase, out: Any, op: str) -> None:
    """t's array[...] = out, with torch's checks (shape, a dtype it can hold), all before the write."""
    target = t._data
    if out is target:
        return
    if out.shape != target.shape:
        raise TensorError(f"{op}: output with shape {list(target.shape)} doesn't match the broadcast shape "
                          f"{list(out.shape)}")
    if out.dtype != target.dtype and not np.can_cast(out.dtype, target.dtype, casting="same_kind"):
        raise TensorError(f"{op}: result type {out.dtype} can't be cast to the desired output type {target.dtype}")
    if isinstance(target, np.ndarray) and not target.flags.writeable:
        raise TensorError(f"{op}: unsupported operation: the tensor's array is read-only (more than one element "
                          f"of the written-to tensor may refer to a single memory location); clone() it first")
    target[...] = out


def apply_inplace(cls: type, target: TensorBase, *args: Any, op: str, **kwargs: Any) -> TensorBase:
    """Run `cls` on (target, *args), write the result into target's own array, bump its version, and, when
    autograd records it, rebase target's history (or its base's, for a view) onto the op. Every check comes
    before the write: an in-place op that raises changes nothing."""
    check_inplace(target, op)
    others = [a for a in args if isinstance(a, TensorBase)]
    check_overlap(cls.written(target._data, **kwargs), [a._data for a in others], op,
                  same_ok=not cls.refuses_any_overlap(**kwargs))
    recording = grad_mode._grad_enabled and (target.requires_grad or any(a.requires_grad for a in others))
    if recording and target._view_kind is not None:  # torch rebases only the views of the default kind
        raise TensorError(f"{op}: {_INPLACE_ON_VIEW[target._view_kind]}")
    if not recording:
        out = cls.forward(Context(), target._data, *(unwrap(a) for a in args), **kwargs)
        _write(target, out, op)
        target._versions[0] += 1
        return target
    old_node = target._grad_node
    ctx = Context()
    needs = (target._requires_grad,) + tuple(isinstance(a, TensorBase) and a._requires_grad for a in args)
    ctx.needs_input_grad = needs
    out = cls.forward(ctx, target._data, *(unwrap(a) for a in args), **kwargs)
    # the op's backward may need target's old values: keep a copy, taken before the write
    saved = tuple(s.copy() if s is target._data and s is not out else s for s in ctx.saved_tensors)
    _write(target, out, op)
    target._versions[0] += 1
    ctx.saved_tensors = tuple(target._data if s is out else s for s in saved)  # torch saves the result in place
    ctx.fn = cls
    ctx.parents = [old_node] + [a._grad_node if isinstance(a, TensorBase) else None for a in args]
    ctx.dtypes = [target._data.dtype] + [a._data.dtype if isinstance(a, TensorBase) else None for a in args]
    ctx.watched = _watch(ctx.saved_tensors, (target,) + args, target, target._data)
    if target._base is None:
        target._node, target._requires_grad = ctx, True
        return target
    base = target._base
    copy = Context()
    copy.fn, copy.op, copy.chain, copy.watched = CopySlices, ctx, target._view_chain, ctx.watched
    copy.shape, copy.dtype = base._data.shape, base._data.dtype
    copy.parents = [base._grad_node] + ctx.parents[1:]
    copy.dtypes = [base._data.dtype] + ctx.dtypes[1:]
    base._node, base._requires_grad = copy, True
    refresh_view(target)
    return target


class CopySlices(Function):
    """The node of a base whose view was changed in place: its gradient outside the view's region passes to the
    base's previous history; inside it, the in-place op's backward routes it to the op's inputs (torch's
    CopySlices). Built by `apply_inplace`, never applied directly."""

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        base_grad = array_module(grad).array(grad)  # a copy, and an array even where grad is a NumPy scalar
        region = replay_view(ctx.chain, base_grad)
        if not array_module(region).may_share_memory(region, base_grad):
            raise RuntimeError("CopySlices: the view's region of the gradient is not a view of it (a view chain "
                               "that copies); clone() the tensor before changing its view in place")
        op = ctx.op
        op_grads = op.fn.backward(op, region.copy())
        if not isinstance(op_grads, tuple):
            op_grads = (op_grads,)
        first = op_grads[0]
        region[...] = 0 if first is None else (first.dense() if hasattr(first, "dense") else first)
        return (base_grad,) + tuple(op_grads[1:])


__all__ = ["TensorBase", "AccumulateGrad", "Context", "Function", "leaf_node", "unwrap", "apply_inplace",
           "check_inplace", "check_overlap", "check_versions", "replay_view", "refresh_view", "CopySlices"]
