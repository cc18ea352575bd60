"""The autograd core: Function, its Context (one node of the graph), the backward engine, no_grad, and the
version counters that catch a saved value changed in place.

The graph is made of nodes, not of tensors. Every op's Context is a node whose `parents` are the nodes that
produced its inputs: another op's Context, or the `AccumulateGrad` node of a leaf that requires grad (None for
an input that needs no gradient). A tensor points at the node that produced it (`_node`, None for a leaf).

`backward` walks the nodes in an order found *iteratively* (an RNN unrolled over thousands of steps is a graph
deeper than Python's recursion limit), calls each Function's backward once with the sum of what reached its
node, and *accumulates* into the `.grad` of leaves (micrograd's `+=`, never `=`).

Version counters: every tensor holds `_versions`, a one-element list shared with its views; writing into a
tensor in place bumps it. A Context remembers the version of every array it saved that is one of its inputs'
or its output's own array, and backward refuses to run when one of them has changed since (torch's error).
"""
from __future__ import annotations

import functools
import weakref
from typing import Any, Callable

import numpy as np

from minigrad._validation import TensorError
from minigrad.devices import array_module

_grad_enabled = True


class no_grad:
    """Context manager and decorator: ops inside record no graph (as `torch.no_grad`)."""

    _enabled = False

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self._enabled

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager and decorator: record the graph again inside a `no_grad` block."""

    _enabled = True


def is_grad_enabled() -> bool:
    """Whether ops record the graph now (False inside `no_grad`)."""
    return _grad_enabled


class TensorBase:
    """What the engine reads and writes on a tensor; `minigrad.Tensor` is the implementation.

    `_data` is the array, `_grad` the gradient (a tensor) or None, `_node` the Context that produced the tensor
    (None for a leaf), `_versions` the version counter shared with its views, `requires_grad` a bool.
    """

    _data: Any
    _grad: Any
    _node: Any
    _versions: list
    _accumulator: Any
    requires_grad: bool

    @staticmethod
    def _wrap(arr: Any) -> "TensorBase":
        """A new tensor around `arr` (no copy): what an op returns."""
        raise NotImplementedError

    def _accumulate(self, grad: Any, owned: bool = False) -> None:
        """Add `grad` (an array, or an IndexGrad) into this leaf's `.grad`; `owned`: nothing else refers to it."""
        raise NotImplementedError


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


def input_node(t: TensorBase) -> Any:
    """The node an op that reads `t` hangs below: t's own node, its leaf node, or None (no gradient needed)."""
    if not t.requires_grad:
        return None
    return t._node if t._node is not None else leaf_node(t)


class Context:
    """What a Function keeps between forward and backward; it is also the Function's node in the graph."""

    __slots__ = ("fn", "parents", "dtypes", "saved_tensors", "needs_input_grad", "freed", "watched", "__dict__")

    def __init__(self) -> None:
        self.saved_tensors: tuple = ()
        self.freed = False
        self.watched: tuple = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays

    def name(self) -> str:
        return f"{self.fn.__name__}Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class Function:
    """An op: `forward(ctx, *arrays, **options) -> array`, `backward(ctx, grad) -> grad per positional input`.

    Positional arguments that are Tensors are the differentiable inputs; anything else (a Python number, an
    index) is a constant whose gradient slot backward fills with None. `apply` needs at least one Tensor.
    """

    # True where backward promises that every array it returns is new (allocated by this call, kept nowhere):
    # the engine may then add into it in place and store it as a leaf's .grad without a copy. One array
    # returned for two inputs is never taken over (the engine checks that).
    fresh_grads = False

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError

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
                raw.append(a._data)
                needs.append(a.requires_grad)
            else:
                raw.append(a)
                needs.append(False)
        if first is None:
            raise TypeError(f"{cls.__name__}.apply needs at least one Tensor argument")
        ctx.needs_input_grad = needs = tuple(needs)
        out = cls.forward(ctx, *raw, **kwargs)
        result = first._wrap(out if type(out) is np.ndarray else array_module(out).asarray(out))
        base = getattr(out, "base", None)
        if base is not None:  # a view of an input shares its version counter, as in torch
            for a in args:
                if isinstance(a, TensorBase) and (a._data is base or a._data.base is base):
                    result._versions = a._versions
                    break
        if _grad_enabled and True in needs:
            result.requires_grad = True
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


def _watch(saved: tuple, args: tuple, result: TensorBase, out: Any) -> tuple:
    """(version counter, version, role, shape) for every saved array that is an input's or the output's own
    array (or the array the output is a view of: an op that saves a buffer and returns a view of it)."""
    watched = []
    out_base = getattr(out, "base", None)
    for arr in saved:
        if arr is out or (out_base is not None and out_base is arr):
            watched.append((result._versions, result._versions[0], "output", out.shape))
            continue
        for i, a in enumerate(args):
            if isinstance(a, TensorBase) and a._data is arr:
                watched.append((a._versions, a._versions[0], f"input {i}", arr.shape))
                break
    return tuple(watched)


def _check_versions(ctx: Context) -> None:
    for versions, version, role, shape in ctx.watched:
        now = versions[0]
        if now != version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: the {role} of {ctx.fn.__name__} (a tensor of shape {tuple(shape)}) is at "
                f"version {now}; expected version {version} instead")


class IndexGrad:
    """The gradient of an indexing op: zero except `values` at `index` of an array of `shape`.

    Kept sparse so that many slices of one tensor (an RNN reading x[t] for every t) accumulate in place into
    one dense array, instead of each allocating a full-size zero array: O(T) work instead of O(T²). `basic`:
    the index picks no element twice (basic indexing, or a gather known to be unique), so `dense[index] +=
    values` is exact; otherwise repeats are summed by `scatter_add`.
    """

    __slots__ = ("shape", "index", "values", "basic")

    def __init__(self, shape: tuple, index: Any, values: Any, basic: bool) -> None:
        self.shape, self.index, self.values, self.basic = shape, index, values, basic

    @property
    def dtype(self) -> Any:
        return self.values.dtype

    def astype(self, dtype: Any) -> "IndexGrad":
        return IndexGrad(self.shape, self.index, self.values.astype(dtype), self.basic)

    def add_into(self, dense: Any) -> Any:
        if self.basic:
            dense[self.index] += self.values
        else:
            scatter_add(dense, self.index, self.values)
        return dense

    def dense(self) -> Any:
        return self.add_into(array_module(self.values).zeros(self.shape, dtype=self.values.dtype))


def scatter_add(dense: Any, index: Any, values: Any) -> None:
    """dense[index] += values with repeated indices adding up (np.add.at's meaning), for the indices a gather
    makes: an integer array, or a tuple of integer arrays, over the leading dims.

    np.add.at is slow (docs/internals.md): here the indices are flattened and sorted, repeats summed with one
    np.add.reduceat, and the sums added with one fancy assignment (which is exact when no index repeats).
    Other index forms (slices mixed with arrays, bool masks) go to np.add.at.
    """
    xp = array_module(dense)
    parts = index if isinstance(index, tuple) else (index,)
    if not all(hasattr(i, "dtype") and i.dtype.kind in "iu" for i in parts) or not dense.flags.c_contiguous:
        xp.add.at(dense, index, values)
        return
    lead = dense.shape[:len(parts)]
    flat_index = xp.ravel_multi_index(xp.broadcast_arrays(*parts), lead, mode="wrap") if len(parts) > 1 else \
        xp.where(parts[0] < 0, parts[0] + lead[0], parts[0])
    flat_index = flat_index.reshape(-1)
    rows = values.reshape((flat_index.size,) + dense.shape[len(parts):])
    target = dense.reshape((-1,) + dense.shape[len(parts):])
    order = xp.argsort(flat_index, kind="stable")
    ordered = flat_index[order]
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, bool), ordered[1:] != ordered[:-1]]))
    if starts.size == ordered.size:  # no index repeats
        target[flat_index] += rows
    else:
        target[ordered[starts]] += xp.add.reduceat(rows[order], starts, axis=0)


def _sum_grads(acc: Any, grad: Any, owned: dict) -> Any:
    """acc + grad, in place when `acc` is an array the engine allocated itself (listed in `owned`)."""
    if isinstance(acc, IndexGrad):
        acc = acc.dense()
    elif id(acc) not in owned:
        if not isinstance(grad, IndexGrad):
            return acc + grad  # a new array; neither input is ever modified
        acc = acc.copy()
    owned[id(acc)] = acc
    if isinstance(grad, IndexGrad):
        return grad.add_into(acc)
    acc += grad
    return acc


def _topological_order(root: Any) -> list:
    """Every node `root` depends on, each after all of its parents (an explicit stack: no recursion)."""
    order: list = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node.parents:
            if parent is not None and id(parent) not in visited:
                stack.append((parent, False))
    return order


def backward(root: TensorBase, gradient: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) · gradient into the `.grad` of every leaf `root` depends on.

    Args:
        root: a tensor that requires grad.
        gradient: d(loss)/d(root), an array of root's shape; None for a one-element root (then 1).
        retain_graph: keep the saved arrays, so that a second backward through the same graph can run.

    Raises:
        TensorError: root needs no gradient, or `gradient` is missing or has the wrong shape.
        RuntimeError: the graph was freed by an earlier backward, or a saved array was changed in place.
        Nothing is written before these checks pass.
    """
    if not root.requires_grad:
        raise TensorError("element 0 of tensors does not require grad and does not have a grad_fn")
    data = root._data
    if gradient is None:
        if data.size != 1:
            raise TensorError(f"grad can be implicitly created only for scalar outputs; backward() needs "
                              f"`gradient` for an output of shape {data.shape}")
        gradient = array_module(data).ones_like(data)
    elif gradient.shape != data.shape:
        raise TensorError(f"`gradient` has shape {gradient.shape} but the tensor has shape {data.shape}")
    start = input_node(root)
    order = _topological_order(start)
    for node in order:  # every check before the first gradient is written
        if type(node) is Context:
            if node.freed:
                raise RuntimeError("trying to backward through the graph a second time; "
                                   "use backward(retain_graph=True) the first time")
            _check_versions(node)
    grads: dict[int, Any] = {id(start): gradient}
    owned: dict[int, Any] = {}  # accumulators allocated here, safe to add into in place
    for node in reversed(order):
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        is_owned = owned.pop(id(grad), None) is not None
        if type(node) is AccumulateGrad:
            leaf = node.tensor
            if isinstance(grad, IndexGrad) and leaf._grad is None:
                grad = grad.dense()  # kept sparse only to add into an existing .grad
            leaf._accumulate(grad, is_owned)
            continue
        if isinstance(grad, IndexGrad):
            grad = grad.dense()
        input_grads = node.fn.backward(node, grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, dtype, parent_grad in zip(node.parents, node.dtypes, input_grads):
            if parent is None or parent_grad is None:
                continue
            if parent_grad.dtype != dtype:  # an op that promoted: back to the input's dtype
                parent_grad = parent_grad.astype(dtype)
            key = id(parent)
            if key in grads:
                grads[key] = _sum_grads(grads[key], parent_grad, owned)
            else:
                grads[key] = parent_grad
                if node.fn.fresh_grads and sum(g is parent_grad for g in input_grads) == 1:
                    owned[id(parent_grad)] = parent_grad
        if not retain_graph:
            node.saved_tensors = ()
            node.__dict__.clear()
            node.freed = True


__all__ = ["no_grad", "enable_grad", "is_grad_enabled", "TensorBase", "AccumulateGrad", "Context", "Function",
           "IndexGrad", "scatter_add", "backward", "input_node", "leaf_node", "unwrap"]
