"""Every differentiable op: gradcheck (float64 central differences) on drawn shapes, and parity with torch."""
import numpy as np
import pytest
from helpers import BINARY_OPS, leaf
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import broadcast_pair, float_arrays, matmul_pair, shapes

import minigrad as mg
from minigrad.gradcheck import gradcheck

BINARY = {name: BINARY_OPS[name] for name in ("add", "sub", "mul", "div")}  # pow: its own domain, below


@pytest.mark.parametrize("name", sorted(BINARY))
@given(pair=broadcast_pair())
def test_binary_ops_gradcheck_with_broadcasting(name, pair):
    a, b = pair
    if name == "div":
        b = np.where(np.abs(b) < 0.5, 1.5, b)
    assert gradcheck(BINARY[name], [leaf(a), leaf(b)])


@given(pair=broadcast_pair(lo=0.5, hi=2.0))
def test_pow_gradcheck_tensor_base_and_exponent(pair):
    a, b = pair
    assert gradcheck(lambda x, y: x ** y, [leaf(a), leaf(b)])


@given(a=float_arrays(lo=0.5, hi=2.0), e=st.sampled_from([2, 3, -1, 0.5, -1.5]))
def test_pow_with_constant_exponent_and_constant_base(a, e):
    assert gradcheck(lambda x: x ** e, [leaf(a)])
    assert gradcheck(lambda x: 2.0 ** x, [leaf(a)])


@given(pair=matmul_pair())
def test_matmul_gradcheck(pair):
    a, b = pair
    assert gradcheck(lambda x, y: x @ y, [leaf(a), leaf(b)])


UNARY = {
    "exp": (lambda x: x.exp(), -2, 2),
    "log": (lambda x: x.log(), 0.3, 3),
    "tanh": (lambda x: x.tanh(), -3, 3),
    "sigmoid": (lambda x: x.sigmoid(), -5, 5),
    "relu": (lambda x: x.relu(), -3, 3),
    "abs": (lambda x: x.abs(), -3, 3),
    "neg": (lambda x: -x, -3, 3),
    "sqrt": (lambda x: x.sqrt(), 0.3, 3),
    "softmax0": (lambda x: x.softmax(0), -3, 3),
    "log_softmax-1": (lambda x: x.log_softmax(-1), -3, 3),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_ops_gradcheck(name, data):
    fn, lo, hi = UNARY[name]
    a = data.draw(float_arrays(lo=lo, hi=hi))
    if name in ("relu", "abs"):  # keep away from the kink, where the derivative is not defined
        a = np.where(np.abs(a) < 0.1, 0.5, a)
    assert gradcheck(fn, [leaf(a)])


def _reductions(a):
    nd = a.ndim
    return [
        lambda x: x.sum(), lambda x: x.mean(), lambda x: x.sum(dim=nd - 1), lambda x: x.mean(dim=0, keepdim=True),
        lambda x: x.sum(dim=tuple(range(nd))), lambda x: x.max(), lambda x: x.max(dim=0)[0],
        lambda x: x.max(dim=nd - 1, keepdim=True).values,
    ]


@given(a=float_arrays())
def test_reductions_gradcheck(a):
    a = a + np.arange(a.size).reshape(a.shape) * 1e-3
    assume(np.unique(a).size == a.size)  # distinct values: max has one winner (finite differences split a tie)
    for fn in _reductions(a):
        assert gradcheck(fn, [leaf(a)])


@given(a=float_arrays(shape=shapes))
def test_shape_ops_gradcheck(a):
    nd = a.ndim
    fns = [lambda x: x.reshape(-1), lambda x: x.T, lambda x: x.unsqueeze(0).squeeze(0),
           lambda x: x.transpose(0, nd - 1), lambda x: x.permute(*reversed(range(nd))), lambda x: x.view(a.size),
           lambda x: x.flatten() * 2, lambda x: x.clone()]
    for fn in fns:
        assert gradcheck(fn, [leaf(a)], atol=1e-4)


@given(a=float_arrays(shape=st.tuples(st.integers(2, 5), st.integers(1, 4))), data=st.data())
def test_indexing_gradcheck_ints_slices_and_repeated_integer_arrays(a, data):
    idx = data.draw(st.lists(st.integers(0, a.shape[0] - 1), min_size=1, max_size=6))
    for fn in (lambda x: x[0], lambda x: x[1:, ::2], lambda x: x[np.array(idx)], lambda x: x[idx, 0],
               lambda x: x[mg.tensor(np.array(idx))], lambda x: x[..., -1], lambda x: x[None, 0]):
        assert gradcheck(fn, [leaf(a)])


@given(a=float_arrays(shape=st.just((2, 3))), b=float_arrays(shape=st.just((2, 3))), dim=st.integers(-2, 1))
def test_stack_and_cat_gradcheck(a, b, dim):
    assert gradcheck(lambda x, y: mg.stack([x, y, x], dim=dim), [leaf(a), leaf(b)])
    assert gradcheck(lambda x, y: mg.cat([x, y], dim=dim), [leaf(a), leaf(b)])


def test_gradcheck_catches_a_wrong_backward():
    from minigrad.autograd import Function

    class WrongSquare(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.saved_tensors[0]  # missing the factor 2

    with pytest.raises(AssertionError, match="finite differences"):
        gradcheck(lambda x: WrongSquare.apply(x), [leaf([1.0, 2.0])])
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * 2, [mg.tensor([1.0], requires_grad=True)])


# ----- parity with torch ---------------------------------------------------------------------------------


EXPRESSIONS = [
    lambda m, a, b: ((a * b + b) @ a.T).tanh().sum(),
    lambda m, a, b: (a / (b.abs() + 1)).sigmoid().mean(),
    lambda m, a, b: (a.exp() - b.relu() * 3).pow(2).sum(),
    lambda m, a, b: a.log_softmax(1).sum() + b.softmax(0).max(),
    lambda m, a, b: m.stack([a, b], 0).transpose(0, 2).reshape(-1).sum() * a[1:, 0].sum(),
    lambda m, a, b: m.cat([a, b], 1)[[0, 0, 1]].sum(dim=0).max(dim=0)[0],
    lambda m, a, b: (a.unsqueeze(0) * b.unsqueeze(1)).sum(dim=(0, 2)).mean() + (a - b).abs().sqrt().sum(),
]


@pytest.mark.parametrize("k", range(len(EXPRESSIONS)))
def test_values_and_grads_match_torch(torch, k, rng):
    a_np, b_np = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    ours = [mg.tensor(a_np, requires_grad=True), mg.tensor(b_np, requires_grad=True)]
    theirs = [torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)]
    out_m, out_t = EXPRESSIONS[k](mg, *ours), EXPRESSIONS[k](torch, *theirs)
    out_m.backward()
    out_t.backward()
    np.testing.assert_allclose(out_m.data, out_t.detach().numpy(), rtol=1e-12)
    for m, t in zip(ours, theirs):
        np.testing.assert_allclose(m.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_max_of_all_elements_splits_the_gradient_evenly_between_ties():
    """torch's rule for a full max(): tied maxima share the gradient evenly (torch 2.13: x = [1, 3, 3] gives
    [0, 0.5, 0.5])."""
    x = mg.tensor([1.0, 3.0, 3.0, -2.0], requires_grad=True)
    (x.max() * 4.0).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 2.0, 0.0])


def test_a_python_float_meeting_an_integer_tensor_gives_the_default_float_dtype_on_either_side():
    t = mg.tensor([1, 2])
    for out in (2.5 - t, t - 2.5, 2.5 * t, t * 2.5, 2.5 + t):
        assert out.dtype == mg.float32, out
    np.testing.assert_array_equal((2.5 - t).numpy(), np.array([1.5, 0.5], np.float32))


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_shapes_that_do_not_broadcast_raise_a_runtime_error_naming_the_op(op):
    names = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
    with pytest.raises(RuntimeError, match=names[op]):
        eval(f"a {op} b", {"a": mg.ones(2, 3), "b": mg.ones(4, 3)})


def test_integer_tensor_to_negative_integer_tensor_powers_as_torch():
    """torch 2.13 gives [1, -1, 1, 0, 0]: only ±1 survive a negative integer power, with the sign of (-1)^b."""
    out = mg.tensor([-1, -1, 1, 2, -2]) ** mg.tensor([-2, -3, -5, -1, -2])
    assert out.dtype == mg.int64
    np.testing.assert_array_equal(out.numpy(), [1, -1, 1, 0, 0])


def test_log_softmax_of_large_logits_is_finite_and_matmul_of_a_scalar_is_refused():
    x = mg.tensor([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(x.log_softmax(1).numpy(), [[0.0, -1000.0, -2000.0]])
    with pytest.raises(RuntimeError, match="matmul"):
        mg.tensor(2.0) @ mg.ones(3)


@pytest.mark.parametrize("lo, hi", [(-0.5, 0.5), (None, 0.5), (-0.5, None), (0.5, -0.5)])
def test_clamp_values_and_gradient_match_torch_at_and_between_the_bounds(torch, lo, hi):
    """torch's rule: the gradient passes where lo <= x <= hi (the bounds themselves included); lo > hi gives hi
    everywhere. Inputs sit exactly on the bounds, inside and outside, in float32 (the dtype is kept)."""
    x = np.array([-1.0, -0.5, -0.25, 0.0, 0.5, 2.0], np.float32)
    ours, theirs = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_m, out_t = ours.clamp(lo, hi), theirs.clamp(lo, hi)
    assert out_m.dtype == mg.float32
    np.testing.assert_array_equal(out_m.detach().numpy(), out_t.detach().numpy())
    weights = np.arange(1.0, 7.0, dtype=np.float32)
    (out_m * mg.tensor(weights)).sum().backward()
    (out_t * torch.tensor(weights)).sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_relu_and_abs_have_zero_gradient_at_zero():
    """torch's subgradient choice at the kink: relu'(0) = 0 and |x|'(0) = sign(0) = 0."""
    x = mg.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    (x.relu() * 5.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 5.0])
    y = mg.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    (y.abs() * 5.0).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [-5.0, 0.0, 5.0])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_cat_of_three_pass_gradcheck_along_every_dim(dim, rng):
    """On a non-square input, so that a reduction over the wrong axis cannot broadcast back by accident; cat of
    three pieces of different widths, so that every split point of the backward is exercised."""
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    assert gradcheck(lambda x: x.softmax(dim) * mg.tensor(np.arange(6.0).reshape(2, 3)), [leaf(a)])
    assert gradcheck(lambda x, y, z: mg.cat([x, y[:1] if dim == 0 else y[:, :1], z], dim=dim) * 1.5,
                     [leaf(a), leaf(b), leaf(c)])


def test_module_to_an_unknown_device_raises_and_moves_nothing():
    layer = mg.nn.Linear(3, 2)
    before = [p.detach().numpy().copy() for p in layer.parameters()]
    with pytest.raises(ValueError, match="'tpu'"):
        layer.to("tpu")
    for p, b in zip(layer.parameters(), before):
        assert type(p.data.numpy()) is np.ndarray and p.detach().numpy().tobytes() == b.tobytes()
