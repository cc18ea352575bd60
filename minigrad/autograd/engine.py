"""The backward engine: walk the graph that autograd.py records, from the roots to the leaves.

The nodes are visited in an order found *iteratively* (an RNN unrolled over thousands of steps is a graph deeper
than Python's recursion limit); each Function's backward runs once, with the sum of what reached its node, and
what reaches a leaf is *accumulated* into its `.grad` (micrograd's `+=`, never `=`). Every check (a graph freed
by an earlier backward, a saved array changed in place) runs before the first gradient is written.

Gradient hooks (`Tensor.register_hook`, `retain_grad`) run on the gradient arriving at a node (a non-leaf's) or
at a leaf, before it goes on. `grad()` is torch.autograd.grad: the gradients of outputs with respect to given
inputs, returned instead of accumulated.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from minigrad._validation import TensorError
from minigrad.autograd.function import AccumulateGrad, Context, TensorBase, check_versions
from minigrad.devices import array_module


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
    # "wrap": a negative index counts from the end (the forward op accepted only -n <= i < n)
    flat_index = xp.ravel_multi_index(xp.broadcast_arrays(*parts), lead, mode="wrap").ravel()
    if flat_index.size == 0:  # nothing to add (and the run starts below would name a first element)
        return
    rows = values.reshape((flat_index.size,) + dense.shape[len(parts):])
    target = dense.reshape((math.prod(lead),) + dense.shape[len(parts):])
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


def _topological_order(roots: Sequence[Any]) -> list:
    """Every node the roots depend on, each after all of its parents (an explicit stack: no recursion)."""
    order: list = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False) for root in reversed(roots)]
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


def _run_hooks(hooks: list, grad: Any, wrap: Any) -> Any:
    """Each hook gets the gradient as a tensor and may return a replacement (a tensor or an array)."""
    for hook in hooks:
        if isinstance(grad, IndexGrad):
            grad = grad.dense()
        new = hook(wrap(grad))
        if new is not None:
            new_data = new._data if isinstance(new, TensorBase) else new
            if new_data.shape != grad.shape:
                raise TensorError(f"hook returned a gradient of shape {new_data.shape}; expected {grad.shape}")
            grad = new_data
    return grad


def _start(roots: Sequence[TensorBase], gradients: Sequence[Any]) -> tuple[list, dict]:
    """The roots' nodes and their starting gradients, after checking them."""
    nodes, grads = [], {}
    for root, gradient in zip(roots, gradients):
        data = root._data
        node = root._grad_node
        if node is None:
            raise TensorError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if data.size != 1:
                raise TensorError(f"grad can be implicitly created only for scalar outputs; backward() needs "
                                  f"`gradient` for an output of shape {data.shape}")
            gradient = array_module(data).ones_like(data)
        elif gradient.shape != data.shape:
            raise TensorError(f"Mismatch in shape: the gradient has a shape of {gradient.shape} and the output "
                              f"has a shape of {data.shape}")
        nodes.append(node)
        grads[id(node)] = grads[id(node)] + gradient if id(node) in grads else gradient
    return nodes, grads


def run_backward(roots: Sequence[TensorBase], gradients: Sequence[Any], retain_graph: bool,
                 capture: dict | None = None) -> dict | None:
    """Propagate gradients from `roots` and accumulate them into the `.grad` of every leaf they depend on.

    Args:
        roots: tensors that require grad.
        gradients: d(loss)/d(root) per root, an array of the root's shape, or None for a one-element root (1).
        retain_graph: keep the saved arrays, so that a second backward through the same graph can run.
        capture: id(node) -> position: instead of accumulating, return the gradient that reaches each of these
            nodes (torch.autograd.grad); no leaf's `.grad` is touched then.

    Returns:
        With `capture`, {position: the gradient that reached that node} (a node nothing reached is absent);
        otherwise None.

    Raises:
        TensorError: a root needs no gradient, or a gradient is missing or has the wrong shape.
        RuntimeError: the graph was freed by an earlier backward, or a saved array was changed in place.
    """
    nodes, grads = _start(roots, gradients)
    order = _topological_order(nodes)
    for node in order:  # every check before the first gradient is written
        if type(node) is Context:
            if node.freed:
                raise RuntimeError("Trying to backward through the graph a second time (or directly access saved "
                                   "tensors after they have already been freed); use backward(retain_graph=True) "
                                   "the first time")
            check_versions(node)
    captured = None if capture is None else {}
    owned: dict[int, Any] = {}  # accumulators allocated here, safe to add into in place
    for node in reversed(order):
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        is_owned = owned.pop(id(grad), None) is not None
        if type(node) is AccumulateGrad:
            leaf = node.tensor
            if leaf._hooks:
                grad = _run_hooks(leaf._hooks, grad, leaf._wrap)
            if capture is not None:
                if id(node) in capture:
                    captured[capture[id(node)]] = grad.dense() if isinstance(grad, IndexGrad) else grad
                continue
            if isinstance(grad, IndexGrad) and leaf._grad is None:
                grad = grad.dense()  # kept sparse only to add into an existing .grad
            leaf._accumulate(grad, is_owned)
            continue
        if isinstance(grad, IndexGrad):
            grad = grad.dense()
        extra = node.__dict__
        if extra:
            if "hooks" in extra:
                grad = _run_hooks(extra["hooks"], grad, extra["wrap"])
            if "retains" in extra:
                extra["retains"](grad)
        if capture is not None and id(node) in capture:
            captured[capture[id(node)]] = grad
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
            node.fn.release(node)
            node.saved_tensors = ()
            node.__dict__.clear()
            node.freed = True
    return captured


def backward(tensors: Any, grad_tensors: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs: Any = None) -> None:
    """torch.autograd.backward: accumulate the gradients of several outputs at once (a repeated output counts
    each time), each weighted by its `grad_tensors` entry (None for a one-element output: 1).

    Args:
        tensors: a tensor or a sequence of tensors that require grad.
        grad_tensors: one gradient (a tensor, an array, or None) per tensor, or one for a single tensor.
        retain_graph: keep the graph's saved arrays for another backward.
        create_graph: not supported (no higher-order gradients).
        inputs: accumulate into these tensors' `.grad` only.
    """
    if create_graph:
        raise NotImplementedError("minigrad records no graph of the backward pass: create_graph=True (higher-order "
                                  "gradients) is not supported")
    tensors = [tensors] if isinstance(tensors, TensorBase) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, TensorBase):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
    grad_tensors = [None if g is None else g._data if isinstance(g, TensorBase) else g for g in grad_tensors]
    if len(grad_tensors) != len(tensors):
        raise TensorError(f"backward: got {len(grad_tensors)} grad_tensors for {len(tensors)} tensors")
    if inputs is None:
        run_backward(tensors, grad_tensors, bool(retain_graph))
        return
    inputs = [inputs] if isinstance(inputs, TensorBase) else list(inputs)
    for x, g in zip(inputs, grad(tensors, inputs, grad_tensors, retain_graph=retain_graph, allow_unused=True)):
        if g is not None:
            x._accumulate(g._data, False)


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """torch.autograd.grad: the gradients of `outputs` with respect to `inputs`, returned, not accumulated.

    Args:
        outputs: a tensor or a sequence of tensors that require grad.
        inputs: a tensor or a sequence of tensors (leaves or not) that the outputs depend on.
        grad_outputs: d(loss)/d(output) per output (tensors or arrays); None for one-element outputs.
        retain_graph: keep the graph for another backward (default: False).
        create_graph: not supported (no higher-order gradients); True raises NotImplementedError.
        allow_unused: return None for an input the outputs do not depend on, instead of raising.

    Returns:
        A tuple with one gradient tensor (or None) per input.
    """
    if create_graph:
        raise NotImplementedError("minigrad records no graph of the backward pass: create_graph=True (higher-order "
                                  "gradients) is not supported")
    outputs = [outputs] if isinstance(outputs, TensorBase) else list(outputs)
    inputs = [inputs] if isinstance(inputs, TensorBase) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, TensorBase):
        grad_outputs = [grad_outputs]
    grad_outputs = [None if g is None else g._data if isinstance(g, TensorBase) else g for g in grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise TensorError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    capture, positions = {}, []
    for i, x in enumerate(inputs):
        if not isinstance(x, TensorBase):
            raise TypeError(f"grad: inputs[{i}] is a {type(x).__name__}, not a Tensor")
        node = x._grad_node
        if node is None:
            raise TensorError(f"grad: inputs[{i}] does not require grad")
        positions.append(capture.setdefault(id(node), i))
    captured = run_backward(outputs, grad_outputs, bool(retain_graph), capture)
    result = []
    for i, (x, position) in enumerate(zip(inputs, positions)):
        g = captured.get(position)
        if g is None and not allow_unused:
            raise TensorError(f"grad: inputs[{i}] was not used in the graph of the outputs; set allow_unused=True "
                              f"if this is the desired behavior")
        result.append(None if g is None else x._wrap(g.astype(x._data.dtype, copy=False)))
    return tuple(result)


__all__ = ["IndexGrad", "scatter_add", "backward", "grad"]
