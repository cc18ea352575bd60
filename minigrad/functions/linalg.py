"""Linear algebra: matmul with NumPy's rules for 1-d operands and broadcast batch dims."""
from __future__ import annotations

from typing import Any

from minigrad._promotion import result_type
from minigrad._validation import TensorError
from minigrad.autograd import Context, Function
from minigrad.devices import array_module
from minigrad.functions.broadcast import unbroadcast


class MatMul(Function):
    """a @ b with NumPy's rules: 1-d operands are promoted, leading dims broadcast."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise TensorError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
        inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != inner_b:
            raise TensorError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                              f"({a.shape[-1]} != {inner_b})")
        if a.dtype != b.dtype:
            raise TensorError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype} != {b.dtype}")
        need_a, need_b = ctx.needs_input_grad
        ctx.shapes = (a.shape, b.shape)
        ctx.save_for_backward(a if need_b else None, b if need_a else None)  # each operand only for the other
        return a @ b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        a_shape, b_shape = ctx.shapes
        xp = array_module(grad)
        a2_shape = (1,) + a_shape if len(a_shape) == 1 else a_shape
        b2_shape = b_shape + (1,) if len(b_shape) == 1 else b_shape
        if len(b_shape) == 1:
            grad = xp.expand_dims(grad, -1)
        if len(a_shape) == 1:
            grad = xp.expand_dims(grad, -2)
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad_b = None
        if need_a:
            grad_a = unbroadcast(grad @ xp.swapaxes(b.reshape(b2_shape), -1, -2), a2_shape).reshape(a_shape)
        if need_b:
            grad_b = unbroadcast(xp.swapaxes(a.reshape(a2_shape), -1, -2) @ grad, b2_shape).reshape(b_shape)
        return grad_a, grad_b


def _einsum_terms(equation: str, shapes: list) -> tuple[list[str], str]:
    """The subscripts of each operand and of the output, with '...' written out as letters and the implicit
    output (the letters used once, in alphabetical order) made explicit."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise TensorError("einsum(): more operands were provided than specified in the equation" if len(shapes) >
                          len(terms) else "einsum(): fewer operands were provided than specified in the equation")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq]
    widest = 0
    for t, shape in zip(terms, shapes):
        if "..." in t:
            widest = max(widest, len(shape) - (len(t) - 3))
    dots = "".join(spare[:widest])
    out_terms = []
    for t, shape in zip(terms, shapes):
        if "..." in t:
            n = len(shape) - (len(t) - 3)
            t = t.replace("...", dots[widest - n:])
        if len(t) != len(shape):
            raise TensorError(f"einsum(): the number of subscripts in the equation ({len(t)}) does not match the "
                              f"number of dimensions ({len(shape)}) for an operand")
        out_terms.append(t)
    if arrow:
        out = rhs.replace("...", dots)
    else:
        letters = "".join(out_terms)
        out = dots + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in dots))
    return out_terms, out


class Einsum(Function):
    """torch.einsum over any number of operands (promoted to one dtype). Each operand's gradient is an einsum of
    the output's gradient with the other operands; a letter only that operand has is broadcast back. One operand
    only permuted (or kept as it is) gives a view of it, as torch's."""

    view = True

    @staticmethod
    def forward(ctx: Context, *arrays: Any, equation: str) -> Any:
        terms, out = _einsum_terms(equation, [a.shape for a in arrays])
        for t in terms:
            if len(set(t)) != len(t):
                raise TensorError(f"einsum(): a subscript repeated within one operand (a diagonal, {t!r}) is not "
                                  f"supported")
        dtype = result_type(*arrays)
        arrays = [a.astype(dtype, copy=False) for a in arrays]
        ctx.terms, ctx.out, ctx.shapes = terms, out, [a.shape for a in arrays]
        ctx.save_for_backward(*arrays)
        return array_module(arrays[0]).einsum(",".join(terms) + "->" + out, *arrays)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        xp = array_module(grad)
        grads = []
        for k, (term, shape) in enumerate(zip(ctx.terms, ctx.shapes)):
            if not ctx.needs_input_grad[k]:
                grads.append(None)
                continue
            others = [(t, a) for i, (t, a) in enumerate(zip(ctx.terms, ctx.saved_tensors)) if i != k]
            known = set(ctx.out).union(*[set(t) for t, _ in others])
            reduced = "".join(c for c in term if c in known)
            g = xp.einsum(",".join([ctx.out] + [t for t, _ in others]) + "->" + reduced, grad,
                          *[a for _, a in others])
            if reduced != term:  # letters summed inside this operand alone: the gradient is constant along them
                g = xp.broadcast_to(xp.expand_dims(g, tuple(i for i, c in enumerate(term) if c not in known)),
                                    shape)
            grads.append(g)
        return tuple(grads)
