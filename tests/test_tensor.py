"""The engine: dtypes, accumulation, no_grad, detach, comparisons, deep graphs, and errors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import Function


def test_dtype_rules_follow_torch():
    assert mg.tensor([1.0, 2.0]).dtype == np.float32
    assert mg.tensor(1.5).dtype == np.float32
    assert mg.tensor([1, 2]).dtype == np.int64
    assert mg.tensor(np.zeros(2)).dtype == np.float64  # arrays keep their dtype
    assert mg.tensor(np.zeros(2, np.int64)).dtype == np.int64
    assert mg.tensor([1.0], dtype=np.float64).dtype == np.float64
    assert (mg.tensor(np.ones(2, np.float32)) * 2.5).dtype == np.float32  # Python scalars do not promote


def test_only_floating_tensors_can_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        mg.tensor([1, 2], requires_grad=True)


def test_a_value_used_twice_gets_both_contributions():
    x = mg.tensor(np.array([3.0]), requires_grad=True)
    y = x * x + x  # d/dx = 2x + 1
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [7.0])


def test_backward_accumulates_into_existing_grad_in_place():
    x = mg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    first = x.grad
    (x * x).sum().backward()
    assert x.grad is first  # same array, updated in place
    np.testing.assert_array_equal(x.grad, [3 + 2, 3 + 4])


@pytest.mark.parametrize("index", [[2, 0], [[2, 0], [1, 3]], [2, 0, 2], []], ids=["unique", "2-d", "repeats", "empty"])
def test_gradients_of_advanced_indexing_add_to_what_is_there(index):
    # an integer-array index keeps its gradient sparse until it meets a dense one: a second read of the same leaf,
    # or a .grad from an earlier backward; either way it adds (np.add.at is the reference)
    w = np.arange(1.0, 5.0)
    x = mg.tensor(w.copy(), requires_grad=True)
    ix = np.array(index, dtype=np.int64)
    idx = mg.tensor(ix)
    (x * x).sum().backward()
    (x[idx] * 3).sum().backward()
    ((x[idx] * 5).sum() + (x[idx] * 7).sum() + (x * 11).sum()).backward()
    expected = 2 * w + 11
    np.add.at(expected, ix, 3 + 5 + 7)
    np.testing.assert_array_equal(x.grad, expected)


def test_leaf_grads_never_alias_each_other():
    a = mg.tensor(np.ones(2), requires_grad=True)
    b = mg.tensor(np.ones(2), requires_grad=True)
    (a + b).sum().backward()
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


class _Fresh(Function):
    """Test op with fresh_grads: backward returns new arrays, or (`shared`) one new array for both inputs."""
    fresh_grads = True

    @staticmethod
    def forward(ctx, a, b, shared=False):
        ctx.shared = shared
        return a + b

    @staticmethod
    def backward(ctx, grad):
        g = grad * 2.0  # new
        return (g, g) if ctx.shared else (g, grad * 2.0)


def test_a_fresh_gradient_becomes_the_leafs_grad_and_one_given_to_two_inputs_never_does():
    """The engine takes over an array a fresh_grads op returns (no copy, as torch steals it), but never one
    array returned for two inputs: those leaves' grads must stay independent."""
    a, b = (mg.tensor(np.ones(3), requires_grad=True) for _ in range(2))
    _Fresh.apply(a, b, shared=True).sum().backward()
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [2.0, 2.0, 2.0])
    a, b = (mg.tensor(np.ones(3), requires_grad=True) for _ in range(2))
    seen = []
    original = _Fresh.backward

    def spy(ctx, grad):
        out = original(ctx, grad)
        seen.extend(out)
        return out
    _Fresh.backward = staticmethod(spy)
    try:
        _Fresh.apply(a, b).sum().backward()
    finally:
        _Fresh.backward = staticmethod(original)
    assert a.grad.numpy() is seen[0] and b.grad.numpy() is seen[1]  # taken over, not copied
    np.testing.assert_array_equal(a.grad, [2.0, 2.0, 2.0])
    y = mg.tensor(np.ones(3), requires_grad=True)
    z = _Fresh.apply(y, y)  # both inputs one leaf: the second contribution is added into the first in place
    z.sum().backward()
    np.testing.assert_array_equal(y.grad, [4.0, 4.0, 4.0])


def test_no_grad_records_nothing_and_works_as_decorator():
    x = mg.tensor([1.0], requires_grad=True)
    with mg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf

    @mg.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert (x * 2).requires_grad  # restored afterwards


def test_detach_cuts_the_graph():
    x = mg.tensor(np.array([2.0]), requires_grad=True)
    y = x * x
    z = y.detach() * x  # d/dx = y = 4 (y treated as a constant)
    z.sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0])


def test_comparisons_give_tensors_without_grad():
    x = mg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for c in (x > 1.5, x <= 2, x == x, x != 2.0):
        assert c.dtype == np.bool_ and not c.requires_grad
    np.testing.assert_array_equal((x > 1.5).data, [False, True, True])
    assert len({x, x}) == 1  # still hashable by identity


def test_deep_chain_of_20000_ops_backpropagates_without_recursion():
    x = mg.tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(20000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001 ** 20000, rtol=1e-9)


def test_backward_on_non_scalar_needs_gradient():
    x = mg.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*shape \(2, 3\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"the gradient has a shape of \(3,\)"):
        (x * 2).backward(np.ones(3))
    (x * 2).backward(np.full((2, 3), 0.5))
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


def test_backward_twice_through_a_freed_graph_raises_unless_retained():
    x = mg.tensor(np.array([1.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, [4.0])
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_shape_errors_name_the_shapes():
    a, b = mg.tensor(np.ones((2, 3))), mg.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        a + b
    with pytest.raises(ValueError, match="is invalid for input of size 6"):
        a.reshape(4)
    with pytest.raises(ValueError, match="stack"):
        mg.stack([a, b])
    with pytest.raises(IndexError, match="integer or bool"):
        a[mg.tensor([0.5])]


def test_item_numpy_and_helpers():
    t = mg.tensor([[1.0, 2.0]])
    assert mg.tensor(np.array([3.5])).item() == 3.5
    assert isinstance(t.numpy(), np.ndarray) and t.shape == (1, 2) and t.size(1) == 2 and t.numel() == 2
    with pytest.raises(ValueError, match="one element"):
        t.item()
    assert mg.zeros(2, 3).shape == (2, 3) and mg.ones((4,)).data.sum() == 4
    mg.manual_seed(5)
    a = mg.randn(3).data
    mg.manual_seed(5)
    np.testing.assert_array_equal(a, mg.randn(3).data)
    assert "requires_grad=True" in repr(mg.tensor([1.0], requires_grad=True))


def test_cast_keeps_the_graph_and_returns_grads_in_the_input_dtype():
    x = mg.tensor(np.array([1.5, 2.0]), requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, [3.0, 4.0])


def test_cuda_tensors_skip_without_cupy():
    cupy = pytest.importorskip("cupy")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - any CUDA runtime error means: no device
        pytest.skip("no CUDA device")
    x = mg.tensor(np.arange(3.0), requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda"
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * np.arange(3.0))
