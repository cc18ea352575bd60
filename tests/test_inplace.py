"""In-place ops recorded by autograd, with torch's rules: rebasing a tensor's history, version counters, views.

Most tests here are PyTorch's own, from test/test_autograd.py (test_inplace, test_version_counter,
test_setitem, test_requires_grad_inplace, test_no_requires_grad_inplace, test_inplace_on_view_*,
test_inplace_view_*; BSD-3-Clause, Copyright (c) Facebook, Inc. and its affiliates), ported to minigrad: each runs
under `lib` = minigrad and, where torch is installed, torch, so that both libraries are held to the same
expectations. Differences from the originals: `Variable(...)`, `x.new(...)` and `torch.empty(...).bernoulli_()`
are written with today's API, and nested-list indices are written as the tuples they meant.
"""
import math

import numpy as np
import pytest

import minigrad as mg

# torch warns when a test reads the .grad of a tensor that an in-place op made a non-leaf
pytestmark = pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")


def _libs():
    libs = [pytest.param(mg, id="minigrad")]
    try:
        import torch

        libs.append(pytest.param(torch, id="torch"))
    except ImportError:
        pass
    return libs


LIBS = _libs()


def _set_double(lib):
    """torch's autograd tests run with double as the default dtype."""
    return lib.float64


# ----- test_autograd.py: test_inplace ----------------------------------------------------------------------------
@pytest.mark.parametrize("lib", LIBS)
def test_inplace(lib):
    d = _set_double(lib)
    x = lib.ones(5, 5, dtype=d, requires_grad=True)
    y = (lib.ones(5, 5, dtype=d) * 4).requires_grad_()

    z = x * y
    q = z + y
    w = z * y
    z.add_(2)
    # Add doesn't need its inputs to do backward, so it shouldn't raise
    q.backward(lib.ones(5, 5, dtype=d), retain_graph=True)
    # Mul saves both inputs in forward, so it should raise
    with pytest.raises(RuntimeError):
        w.backward(lib.ones(5, 5, dtype=d))

    z = x * y
    q = z * y
    r = z + y
    w = z.add_(y)
    # w is the last expression, so this should succeed
    w.backward(lib.ones(5, 5, dtype=d), retain_graph=True)
    # r doesn't use the modified value in backward, so it should succeed
    r.backward(lib.ones(5, 5, dtype=d), retain_graph=True)
    # q uses dirty z, so it should raise
    with pytest.raises(RuntimeError):
        q.backward(lib.ones(5, 5, dtype=d))

    with lib.no_grad():
        x.grad.zero_()
    m = x / 2
    z = m + y / 8
    q = z * y
    r = z + y
    prev_version = z._version
    w = z.exp_()
    assert z._version != prev_version
    r.backward(lib.ones(5, 5, dtype=d), retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), np.ones((5, 5)) / 2)
    w.backward(lib.ones(5, 5, dtype=d), retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), np.full((5, 5), (1 + math.e) / 2))
    with pytest.raises(RuntimeError):
        q.backward(lib.ones(5, 5, dtype=d))

    leaf = lib.ones(5, 5, dtype=d, requires_grad=True)
    x = leaf.clone()
    x.add_(10)
    np.testing.assert_array_equal(x.detach().numpy(), np.full((5, 5), 11.0))
    # x should be still usable
    y = x + 2
    y.backward(lib.ones(5, 5, dtype=d))
    np.testing.assert_array_equal(leaf.grad.numpy(), np.ones((5, 5)))
    z = x * y
    x.add_(2)
    with pytest.raises(RuntimeError):
        z.backward(lib.ones(5, 5, dtype=d))


# ----- test_autograd.py: test_version_counter --------------------------------------------------------------------
@pytest.mark.parametrize("lib", LIBS)
def test_version_counter(lib):
    x = lib.randn(1, 2)
    # In-place op bumps version
    x_saved_version = x._version
    x.add_(1).add_(1)
    assert x._version > x_saved_version
    # Differentiable view shares version counter
    xz = x[:]
    assert x._version == xz._version
    xz.add_(1)
    assert x._version == xz._version
    # `x.data = y` preserves version counter of `x`
    x_saved_version = x._version
    x.data = lib.randn(2, 3)
    assert x._version == x_saved_version
    x.add_(1)
    assert x._version > x_saved_version
    # Make sure `x` is still using the same version counter it shares with `xz`
    assert x._version == xz._version
    # In-place op on `xz` also updates version of `x`, because they share the version counter
    xz.add_(1)
    assert x._version == xz._version


# ----- test_autograd.py: test_setitem ----------------------------------------------------------------------------
def _test_setitem(lib, size, index):
    x = lib.ones(*size, dtype=lib.float64, requires_grad=True)
    y = x + 2
    y_version = y._version
    y[index] = 2
    assert y._version != y_version
    y.backward(lib.ones(*size, dtype=lib.float64))
    expected_grad = np.ones(size)
    expected_grad[_np_index(index)] = 0
    np.testing.assert_array_equal(x.grad.numpy(), expected_grad)


def _test_setitem_tensor(lib, size, index):
    x = lib.ones(*size, dtype=lib.float64, requires_grad=True)
    y = x + 2
    y_version = y._version
    value = lib.full(x[index].size(), 7.0, dtype=lib.float64)
    value.requires_grad = True
    y[index] = value
    assert y._version != y_version
    y.backward(lib.ones(*size, dtype=lib.float64))
    expected_grad_input = np.ones(size)
    expected_grad_input[_np_index(index)] = 0
    np.testing.assert_array_equal(x.grad.numpy(), expected_grad_input)
    np.testing.assert_array_equal(value.grad.numpy(), np.ones(value.shape))
    # case when x broadcasts to as y[1]
    x = lib.randn(4, dtype=lib.float64, requires_grad=True)
    y = lib.zeros(2, 3, 4, dtype=lib.float64)
    y[1] = x
    y.backward(lib.randn(2, 3, 4, dtype=lib.float64))
    assert tuple(x.size()) == tuple(x.grad.size())


def _np_index(index):
    if isinstance(index, tuple):
        return tuple(_np_index(i) for i in index)
    return index.numpy() if hasattr(index, "numpy") else index


SETITEM = [((5, 5), 1), ((5,), 1), ((1,), 0), ((10,), ([0, 4, 2],)), ((5, 5), ([0, 4], [2, 2])),
           ((5, 5, 5), (slice(None), slice(None), [1, 3])), ((5, 5, 5), (slice(None), [1, 3], slice(None))),
           ((5, 5, 5), ([1, 3], slice(None), slice(None))), ((5, 5, 5), (slice(None), [2, 4], [1, 3])),
           ((5, 5, 5), ([1, 3], [2, 4], slice(None))), ((5, 5, 5), ([1, 3], [2, 4], [0, 2])),
           ((5, 5), (slice(1, 4), 2)), ((5, 5), (Ellipsis, 0)), ((5, 5), (None, 2))]
SETITEM_TENSOR = [((5, 5), 3), ((5, 5), ([0, 1], [1, 0])), ((5,), 3), ((5,), ([0, 1, 2, 3],)),
                  ((5, 5, 5), (slice(None), slice(None), [1, 3])), ((5, 5, 5), (slice(None), [1, 3], slice(None))),
                  ((5, 5, 5), ([1, 3], slice(None), slice(None))), ((5, 5, 5), (slice(None), [2, 4], [1, 3])),
                  ((5, 5, 5), ([1, 3], [2, 4], slice(None))), ((5, 5, 5), ([1, 3], [2, 4], [0, 2]))]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("size,index", SETITEM, ids=range(len(SETITEM)))
def test_setitem(lib, size, index):
    _test_setitem(lib, size, index)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("size,index", SETITEM_TENSOR, ids=range(len(SETITEM_TENSOR)))
def test_setitem_tensor(lib, size, index):
    _test_setitem_tensor(lib, size, index)


@pytest.mark.parametrize("lib", LIBS)
def test_setitem_mask(lib):
    mask = np.random.default_rng(0).random((5, 5)) < 0.5
    _test_setitem(lib, (5, 5), lib.tensor(mask))
    _test_setitem(lib, (5,), lib.tensor(mask[0]))
    _test_setitem(lib, (1,), lib.tensor(mask[0, 0:1]))
    _test_setitem_tensor(lib, (5, 5), lib.tensor(mask))
    _test_setitem_tensor(lib, (5,), lib.tensor(mask[0]))


# ----- test_autograd.py: test_requires_grad_inplace, test_no_requires_grad_inplace ---------------------------------
@pytest.mark.parametrize("lib", LIBS)
def test_requires_grad_inplace(lib):
    a = lib.randn(5, 5)
    b = lib.randn(5, 5, requires_grad=True)
    a += b
    assert a.requires_grad
    # non-leaf
    a = lib.randn(5, 5) + 0
    b = lib.randn(5, 5, requires_grad=True)
    a += b
    assert a.requires_grad


@pytest.mark.parametrize("lib", LIBS)
def test_no_requires_grad_inplace(lib):
    # basic case, should be able to modify inplace while requires_grad is False
    a = lib.randn(2, 3)
    a.add_(5)
    a.requires_grad = True
    a.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones((2, 3)))
    # same but with a view
    a = lib.randn(2, 3)
    b = a[:]
    b.add_(5)
    a.requires_grad = True
    a.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones((2, 3)))
    # should fail if requires_grad = True when we modify inplace
    a = lib.randn(2, 3)
    b = a[:]
    a.requires_grad = True
    with pytest.raises(RuntimeError):
        a.add_(5)
    with pytest.raises(RuntimeError):
        b.add_(5)


# ----- test_autograd.py: in-place on views -------------------------------------------------------------------------
@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_leaf_errors(lib):
    x = lib.zeros(1, requires_grad=True)
    y = x.view_as(x)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being used in an "
                                           "in-place operation"):
        y.add_(1)


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_backprop_base(lib):
    # modify view and back-prop through base
    root = lib.randn(2, 2, requires_grad=True)
    x = root.clone()
    v1 = x.narrow(0, 0, 1)
    v1.mul_(2)
    x.sum().backward()
    assert root.grad.tolist() == [[2, 2], [1, 1]]


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_backprop_view_of_view(lib):
    # modify view and backprop through view-of-view
    root = lib.randn(2, 2, requires_grad=True)
    x = root.clone()
    v1 = x.narrow(0, 0, 1)
    v2 = x.narrow(0, 0, 1)
    v1.mul_(2)
    v2.sum().backward()
    assert root.grad.tolist() == [[2, 2], [0, 0]]


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_of_view(lib):
    # modify view-of-view and backprop through base
    root = lib.randn(2, 2, requires_grad=True)
    x = root.clone()
    v1 = x.narrow(0, 0, 1)
    v2 = v1.narrow(1, 1, 1)
    v2.mul_(2)
    x.sum().backward()
    assert root.grad.tolist() == [[1, 2], [1, 1]]


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_then_no_grad(lib):
    # Perform an in-place operation on a view of a non-leaf variable.
    a = lib.ones(3, 1, dtype=lib.float64, requires_grad=True)
    b = a * 2
    c = b.view_as(b)
    c[0][0] = 3
    # Force a graph update with grad disabled.
    with lib.no_grad():
        c.grad_fn  # noqa: B018 - the read is the point (torch regenerates a stale view here)
    c.sum().backward()
    assert a.grad.tolist() == [[0.0], [2.0], [2.0]]


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_gradcheck(lib):
    # gradcheck modifications to views
    rng = np.random.default_rng(0)
    a0, b0 = rng.standard_normal((4, 4)), rng.standard_normal((2, 2))

    def func(root, b):
        x = root.clone()
        x.narrow(1, 2, 2).narrow(0, 1, 2).mul_(b)
        x.narrow(1, 0, 2).narrow(0, 1, 2).mul_(b)
        return x

    a = lib.tensor(a0, requires_grad=True)
    b = lib.tensor(b0, requires_grad=True)
    if lib is mg:
        from minigrad.gradcheck import gradcheck

        assert gradcheck(func, [a, b])
    g = rng.standard_normal((4, 4))
    func(a, b).backward(lib.tensor(g))
    expect_a = np.ones((4, 4)) * g
    expect_a[1:3, 0:2] *= b0
    expect_a[1:3, 2:4] *= b0
    np.testing.assert_allclose(a.grad.numpy(), expect_a, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), g[1:3, 0:2] * a0[1:3, 0:2] + g[1:3, 2:4] * a0[1:3, 2:4], rtol=1e-12)


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_makes_base_require_grad(lib):
    # in-place modification to view makes base require grad
    a = lib.randn(4, 4, dtype=lib.float64, requires_grad=False)
    b = lib.randn(4, 2, dtype=lib.float64, requires_grad=True)
    x = a.clone()
    assert not x.requires_grad
    x.narrow(1, 2, 2).mul_(b)
    assert x.requires_grad
    x.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), a.numpy()[:, 2:4], rtol=1e-12)


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_backprop_view(lib):
    # modify view and backprop through view
    a = lib.tensor([2.0, 5.0], requires_grad=False)
    b = lib.tensor([3.0], requires_grad=True)
    res = a.narrow(0, 1, 1).mul_(b)
    res.sum().backward()
    assert b.grad.tolist() == [5]
    assert a.grad is None


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_modify_base(lib):
    # Test that an in-place operation on a base that forced it to require
    # grad also forces any previous views to require grad and backprop correctly
    r = lib.ones(1, dtype=lib.float64, requires_grad=True)
    x = lib.ones(5, dtype=lib.float64)
    v = x.select(0, 1)
    assert not v.requires_grad
    assert v.grad_fn is None
    x.add_(r)  # v is now dependent on r due to the in-place op on x
    assert v.requires_grad
    v.backward()
    assert r.grad.tolist() == [1.0]


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_non_contig(lib):
    root = lib.ones(2, 3, 2).select(2, 1).t().requires_grad_(True)
    x = root.clone()
    v1 = x.narrow(0, 0, 1)
    v2 = v1.narrow(1, 1, 1)
    v2.mul_(2)
    x.sum().backward()
    assert root.grad.tolist() == [[1, 2], [1, 1], [1, 1]]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("split", ["split", "chunk", "unbind"])
def test_inplace_on_view_multi_output_safe(lib, split):
    a = lib.randn(3, 3, requires_grad=True)
    b = a + a
    pieces = {"split": lambda t: t.split(1), "chunk": lambda t: t.chunk(3), "unbind": lambda t: t.unbind()}[split](b)
    with pytest.raises(RuntimeError, match="This view is the output of a function that returns multiple views"):
        pieces[0].mul_(pieces[1])


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_view_of_multiple_output_view(lib):
    a = lib.rand(10, requires_grad=True).clone()
    b = a.unbind(0)
    c = b[0].view_as(b[0])
    with pytest.raises(RuntimeError):
        c.mul_(2)


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_multiple_output_view_of_view(lib):
    a = lib.rand(10, requires_grad=True).clone()
    b = a.view_as(a)
    c = b.unbind(0)
    with pytest.raises(RuntimeError):
        c[0].mul_(2)


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_view_element_then_base(lib):
    """functorch's test_inplace_on_view and _on_view_base: y[0].sin_() flows to y; y.sin_() flows to y[0]."""
    x = lib.tensor([0.3, -1.2, 2.0], dtype=lib.float64, requires_grad=True)
    y = x.clone()
    y0 = y[0]
    y0.sin_()
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [math.cos(0.3), 1.0, 1.0], rtol=1e-12)
    x.grad = None
    y = x.clone()
    y0 = y[0]
    y.sin_()
    y0.backward()
    np.testing.assert_allclose(x.grad.numpy(), [math.cos(0.3), 0.0, 0.0], rtol=1e-12)


@pytest.mark.parametrize("lib", LIBS)
def test_a_view_made_in_no_grad_cannot_be_changed_in_place_with_grad(lib):
    a = lib.ones(3, requires_grad=True).clone()
    with lib.no_grad():
        v = a[:2]
    with pytest.raises(RuntimeError, match="A view was created in no_grad mode"):
        v.mul_(2)
    with lib.no_grad():
        v.mul_(2)  # inside no_grad both are untracked: allowed
    assert a.tolist() == [2.0, 2.0, 1.0]


# ----- micrograd's engine tests (Karpathy, MIT): `+=` on values that are part of the graph --------------------------
@pytest.mark.parametrize("lib", LIBS)
def test_micrograd_more_ops(lib):
    a = lib.tensor([-4.0], dtype=lib.float64, requires_grad=True)
    b = lib.tensor([2.0], dtype=lib.float64, requires_grad=True)
    c = a + b
    d = a * b + b ** 3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e ** 2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    tol = 1e-6
    # the values micrograd's test gets from torch
    assert abs(g.item() - 24.70408163265306) < tol
    assert abs(a.grad.item() - 138.83381924198252) < tol
    assert abs(b.grad.item() - 645.5772594752186) < tol


@pytest.mark.parametrize("lib", LIBS)
def test_micrograd_sanity_check(lib):
    x = lib.tensor([-4.0], dtype=lib.float64, requires_grad=True)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    assert y.item() == -20.0
    assert x.grad.item() == 46.0


# ----- what torch forbids or allows, and the exception it raises -------------------------------------------------
@pytest.mark.parametrize("lib", LIBS)
def test_leaf_that_requires_grad_is_refused_in_place_outside_no_grad(lib):
    w = lib.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        w.add_(1)
    with pytest.raises(RuntimeError):
        w[0] = 2.0
    with lib.no_grad():
        w.add_(1)
    assert w.tolist() == [2.0, 2.0, 2.0] and w._version == 1


@pytest.mark.parametrize("lib", LIBS)
def test_a_saved_result_changed_in_place_raises_at_backward(lib):
    x = lib.ones(3, requires_grad=True)
    for op in (lambda t: t.exp(), lambda t: t.tanh(), lambda t: t.sigmoid(), lambda t: t.relu()):
        y = op(x)
        y.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


@pytest.mark.parametrize("lib", LIBS)
def test_a_product_with_a_constant_does_not_watch_its_input(lib):
    x = lib.ones(3, requires_grad=True)
    y = x * 1.0
    z = y * 2  # torch saves only the constant for y's gradient
    y.add_(1)
    z.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("lib", LIBS)
def test_in_place_results_that_an_int_tensor_cannot_hold_are_refused(lib):
    x = lib.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="can't be cast"):
        x.add_(1.5)
    with pytest.raises(RuntimeError, match="can't be cast"):
        x.mul_(lib.tensor([0.5, 0.5, 0.5]))
    assert x.tolist() == [1, 2, 3] and x._version == 0


@pytest.mark.parametrize("lib", LIBS)
def test_in_place_cannot_broadcast_the_target(lib):
    x = lib.ones(3)
    with pytest.raises(RuntimeError):
        x.add_(lib.ones(2, 3))
    x2 = lib.ones(3, requires_grad=True).clone()
    with pytest.raises(RuntimeError):
        x2.add_(lib.ones(2, 3))
    assert x.tolist() == [1.0, 1.0, 1.0] and x2.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("lib", LIBS)
def test_the_tensor_keeps_its_identity_and_its_history_is_rebased(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    loss = 0
    for k in range(3):
        loss += (w * (k + 1)).sum()
    before = loss
    loss *= 2
    assert loss is before
    loss.backward()
    assert w.grad.tolist() == [12.0, 12.0]


@pytest.mark.parametrize("lib", LIBS)
def test_a_later_in_place_change_of_a_saved_result_raises_as_in_torch(lib):
    x = lib.ones(3, 4, dtype=lib.float64, requires_grad=True).clone()
    x.tanh_()
    x[1, :2] = 3.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        x.sum().backward()


@pytest.mark.parametrize("lib", LIBS)
def test_in_place_ops_compose_with_the_gradient_of_every_input(lib):
    rng = np.random.default_rng(1)
    a0, b0, m0 = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.random((3, 4)) < 0.4
    a = lib.tensor(a0, requires_grad=True)
    b = lib.tensor(b0, requires_grad=True)
    s = lib.tensor(0.7, dtype=lib.float64, requires_grad=True)
    x = a.clone()
    x.mul_(b).sub_(b, alpha=2).div_(b.abs() + 1).clamp_(-0.5, 0.8).masked_fill_(lib.tensor(m0), s)
    x[1, :2] = b[:2] * 3
    x.tanh_()
    (x * x).sum().backward()
    grads = [t.grad.numpy().copy() for t in (a, b, s)]
    if lib is mg:
        from minigrad.gradcheck import gradcheck

        def f(a, b, s):
            x = a.clone()
            x.mul_(b).sub_(b, alpha=2).div_(b.abs() + 1).clamp_(-0.5, 0.8).masked_fill_(mg.tensor(m0), s)
            x[1, :2] = b[:2] * 3
            return x.tanh_()

        assert gradcheck(f, [mg.tensor(a0, requires_grad=True), mg.tensor(b0, requires_grad=True),
                             mg.tensor(0.7, dtype=mg.float64, requires_grad=True)])
    assert all(np.isfinite(g).all() for g in grads)


def test_in_place_parity_with_torch(torch):
    """The composed in-place chain above, gradients compared with torch's in float64."""
    rng = np.random.default_rng(2)
    a0, b0, m0 = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.random((3, 4)) < 0.4
    out = []
    for lib in (mg, torch):
        a, b = lib.tensor(a0, requires_grad=True), lib.tensor(b0, requires_grad=True)
        s = lib.tensor(0.7, dtype=lib.float64, requires_grad=True)
        x = a.clone()
        x.mul_(b).sub_(b, alpha=2).div_(b.abs() + 1).clamp_(-0.5, 0.8).masked_fill_(lib.tensor(m0), s)
        x[1, :2] = b[:2] * 3
        x[2] += b.sin()
        x.narrow(0, 0, 1).mul_(b[0])
        x.tanh_()  # last: tanh_ saves its result, which a later in-place change would invalidate
        (x * x).sum().backward()
        out.append([x.detach().numpy().copy()] + [t.grad.numpy().copy() for t in (a, b, s)])
    for ours, theirs in zip(*out):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


ZERO_D_INPLACE = {
    "setitem-ellipsis": lambda lib, y: y.__setitem__(..., 5.0),
    "setitem-empty-tuple": lambda lib, y: y.__setitem__((), y.detach() * 3),
    "setitem-mask": lambda lib, y: y.__setitem__(y > 0, 0.0),
    "view-ellipsis": lambda lib, y: y[...].add_(1.0),
    "view-1-element": lambda lib, y: y.view(1).mul_(3.0),
    "element-of-a-view": lambda lib, y: y.view(1)[0].mul_(3.0),
    "squeezed-view": lambda lib, y: y.unsqueeze(0).squeeze(0).add_(y.detach()),
}


@pytest.mark.parametrize("name", sorted(ZERO_D_INPLACE))
def test_a_0d_tensor_changed_in_place_directly_or_through_a_view_as_torch(torch, name):
    """The upstream gradient of a 0-d result is a NumPy scalar, not an array: the backward of an assignment and
    of a view changed in place must still write into it."""
    out = []
    for lib in (mg, torch):
        x = lib.tensor(0.7, dtype=lib.float64, requires_grad=True)
        y = x * 2.0
        ZERO_D_INPLACE[name](lib, y)
        (y * y).sum().backward()
        assert tuple(y.shape) == ()
        out.append((float(y.detach().numpy()), float(x.grad.numpy())))
    assert out[0] == pytest.approx(out[1], rel=1e-14)


def test_an_in_place_op_that_reads_the_tensor_it_writes_keeps_the_old_values_it_needs():
    """y.mul_(y): torch's backward raises (the saved second input was overwritten); minigrad keeps a copy of the
    old values the op's backward needs (README, "Differences from PyTorch"), so the gradient is y²'s."""
    from minigrad.gradcheck import gradcheck

    def square_in_place(x):
        y = x * 1.0
        return y.mul_(y)

    assert gradcheck(square_in_place, [mg.tensor(np.array([0.5, -1.3, 2.0]), requires_grad=True)])
    x = mg.tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = x * 1.0
    y.mul_(y).div_(y.detach() + 1)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy() / (x.detach().numpy() ** 2 + 1))


@pytest.mark.parametrize("view", ["t", "transpose", "permute", "T", "movedim"])
@pytest.mark.parametrize("lib", LIBS)
def test_in_place_through_a_permuted_view_reaches_the_base_and_its_gradient(lib, view):
    make = {"t": lambda y: y.t(), "transpose": lambda y: y.transpose(0, 1), "permute": lambda y: y.permute(1, 0),
            "T": lambda y: y.T, "movedim": lambda y: y.movedim(0, 1)}[view]
    x = lib.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    y = x * 1.0
    v = make(y)
    v[0].mul_(3.0)  # column 0 of y
    (y * y).sum().backward()
    assert y.tolist() == [[3.0, 2.0, 3.0], [12.0, 5.0, 6.0]]
    assert x.grad.tolist() == [[18.0, 4.0, 6.0], [72.0, 10.0, 12.0]]  # d(9x²)/dx = 18x in column 0


@pytest.mark.parametrize("lib", LIBS)
def test_rounding_an_integer_tensor_gives_a_new_tensor(lib):
    """floor/ceil/round/trunc of integers are the values themselves, in new memory: changing the result in place
    leaves the input as it was."""
    for name in ("floor", "ceil", "round", "trunc"):
        x = lib.tensor([1, -2, 3])
        y = getattr(x, name)()
        y.add_(10)
        assert x.tolist() == [1, -2, 3] and y.tolist() == [11, 8, 13]


def test_autograd_grad_of_an_intermediate_and_with_given_output_gradients_as_torch(torch):
    """Inputs that are not leaves; grad_outputs as one tensor, as a list with None for a scalar output."""
    got = []
    for lib in (mg, torch):
        x = lib.tensor([1.0, 2.0, -0.5], dtype=lib.float64, requires_grad=True)
        h = x * x
        y = h.tanh()
        (gh,) = lib.autograd.grad(y, h, grad_outputs=lib.tensor([1.0, -2.0, 3.0], dtype=lib.float64),
                                  retain_graph=True)
        gx, gh2 = lib.autograd.grad([y.sum(), y], [x, h],
                                    grad_outputs=[None, lib.tensor([0.5, 0.5, 2.0], dtype=lib.float64)])
        got.append([t.numpy().copy() for t in (gh, gx, gh2)])
    for a, b in zip(*got):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_backward_without_retain_graph_frees_what_the_graph_saved():
    """torch's contract: the saved arrays, and what an op kept on its node, are released by the backward that
    used them (a weak reference to each dies), even while the output tensors live on."""
    import gc
    import weakref

    x = mg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    bound = mg.tensor([0.0, 0.0, 0.0])
    kept_on_node = weakref.ref(bound._data)  # Clamp keeps a tensor bound on its node
    e = (x * 2).exp()  # Exp saves its result
    saved = weakref.ref(e._data)
    y = e.clamp(min=bound)
    del bound, e
    loss = y.sum()
    loss.backward()
    gc.collect()
    assert saved() is None and kept_on_node() is None
    assert y.requires_grad and loss.item() > 0  # the outputs themselves live on


OVERLAPS = {
    "rows-partly-shared": (lambda x: x[1:3].copy_(x[0:2]), True),
    "an-element-inside-the-target": (lambda x: x[0].add_(x[0, 1:2]), True),
    "a-0d-element-of-self": (lambda x: x.add_(x[1, 1]), True),
    "the-same-memory": (lambda x: x[1:3].mul_(x[1:3]), False),
    "disjoint-halves": (lambda x: x[:2].add_(x[2:]), False),
    "disjoint-halves-input-first": (lambda x: x[2:].add_(x[:2]), False),
    "setitem-rows-partly-shared": (lambda x: x.__setitem__(slice(1, 3), x[0:2]), True),
    "interleaved-columns": (lambda x: x[:, ::2].add_(x[:, 1::2]), False),  # not dense: torch cannot tell, allows
    "a-strided-target": (lambda x: x[:, ::2].add_(x[1:2, 1:3]), False),  # the target not dense: torch allows
    "a-transposed-copy-of-self": (lambda x: x.add_(x.t().contiguous()), False),
}


@pytest.mark.parametrize("name", sorted(OVERLAPS))
@pytest.mark.parametrize("lib", LIBS)
def test_in_place_inputs_that_partly_overlap_the_target_are_refused_as_torch_refuses(lib, name):
    op, refused = OVERLAPS[name]
    x = lib.tensor(np.arange(16.0).reshape(4, 4))
    want = np.arange(16.0).reshape(4, 4)
    if refused:
        with pytest.raises(RuntimeError, match="single memory location"):
            op(x)
        assert x.tolist() == want.tolist() and x._version == 0
    else:
        op(x)
        assert x._version >= 1


@pytest.mark.parametrize("lib", LIBS)
def test_writing_into_a_view_routes_the_gradient_to_the_value_and_not_to_what_was_overwritten(lib):
    """y[:3][0:2] = 2w and y[:2].zero_(): the overwritten elements pass no gradient to x; w gets its own."""
    c = lib.tensor([3.0, 4.0, 5.0])
    x, w = lib.tensor([1.0, 2.0, 3.0], requires_grad=True), lib.tensor([5.0, 6.0], requires_grad=True)
    y = x * 1
    y[:3][0:2] = w * 2
    (y * c).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 5.0] and w.grad.tolist() == [6.0, 8.0]
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    y[:2].zero_()
    (y * c).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 5.0]


@pytest.mark.parametrize("lib", LIBS)
def test_grad_modes_nest_as_torchs(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    with lib.no_grad():
        assert not (x * 2).requires_grad
        with lib.enable_grad():
            assert (x * 2).requires_grad
        with lib.set_grad_enabled(True):
            assert (x * 2).requires_grad
    with lib.inference_mode():
        assert not (x * 2).requires_grad
    with lib.inference_mode(False):
        assert (x * 2).requires_grad
    assert (x * 2).requires_grad and lib.is_grad_enabled()


@pytest.mark.parametrize("lib", LIBS)
def test_a_recorded_in_place_result_is_cast_to_the_targets_dtype_where_same_kind(lib):
    """float64 into a float32 tensor: cast, as torch; a float result into an integer tensor: refused, unchanged."""
    y = lib.ones(2, requires_grad=True) * 1
    y.add_(lib.tensor([0.25, 0.5], dtype=lib.float64, requires_grad=True))
    assert str(y.dtype).endswith("float32") and y.tolist() == [1.25, 1.5]
    ints = lib.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        ints.add_(lib.tensor([0.5, 0.5], requires_grad=True))
    assert ints.tolist() == [1, 2] and ints._version == 0


@pytest.mark.parametrize("lib", LIBS)
def test_a_result_that_shares_an_inputs_memory_shares_its_version_counter(lib):
    """einsum("ij->ji") is the input's memory, transposed (in torch too): an in-place change through it is a
    change of the input, counted by the one version counter they share (of a view's base as well)."""
    base = lib.tensor(np.arange(8.0).reshape(2, 4))
    for x in (base, base[:, 1:]):
        y = lib.einsum("ij->ji", x)
        before = x._version
        y.add_(1.0)
        assert x._version == y._version == before + 1
    assert base.tolist() == [[1.0, 3.0, 4.0, 5.0], [5.0, 7.0, 8.0, 9.0]]


@pytest.mark.parametrize("lib", LIBS)
def test_register_hook_and_retain_grad(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.tolist()))
    y = x * 3
    y.retain_grad()
    handle = y.register_hook(lambda g: g * 2)
    (y * y).sum().backward()
    assert seen == [[36.0, 72.0]]  # 2 · (2y) · 3
    assert x.grad.tolist() == [36.0, 72.0]
    assert y.grad.tolist() == [12.0, 24.0]  # retain_grad sees the gradient after every other hook
    handle.remove()


@pytest.mark.parametrize("lib", LIBS)
def test_autograd_grad_returns_instead_of_accumulating(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = lib.tensor([3.0], requires_grad=True)
    z = (x * x).sum() * y
    gx, gy = lib.autograd.grad(z, [x, y])
    assert gx.tolist() == [6.0, 12.0] and gy.tolist() == [5.0]
    assert x.grad is None and y.grad is None
    w = (x * 2).sum()
    with pytest.raises(RuntimeError):
        lib.autograd.grad(w, [y])
    assert lib.autograd.grad((x * 2).sum(), [y], allow_unused=True) == (None,)


# ----- results of custom Functions that share memory with an input (torch's CreationMeta::IN_CUSTOM_FUNCTION) ------
def _custom_functions(lib):
    """An identity that returns its input as it is, and a Function that returns a view of its input, for `lib`
    (torch's forward receives tensors, minigrad's arrays: both index alike)."""
    zeros = (lambda g: g.new_zeros(g.shape[0] + 1)) if lib is not mg else (lambda g: np.zeros(g.shape[0] + 1))

    class Ident(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a

        @staticmethod
        def backward(ctx, g):
            return g

    class Tail(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a[1:]

        @staticmethod
        def backward(ctx, g):
            r = zeros(g)
            r[1:] = g
            return r

    return Ident, Tail


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("which", [0, 1], ids=["returned-as-is", "a-view"])
def test_a_custom_functions_result_that_shares_memory_with_its_input_is_a_view_not_writable_under_autograd(lib, which):
    F = _custom_functions(lib)[which]
    a = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = a * 1
    y = F.apply(x)
    (y * 2).sum().backward(retain_graph=True)
    assert a.grad.tolist() == ([2.0, 2.0, 2.0] if which == 0 else [0.0, 2.0, 2.0])
    with pytest.raises(RuntimeError, match="custom Function"):
        y.add_(1)
    with pytest.raises(RuntimeError, match="custom Function"):
        y[0:1].mul_(2)
    assert x.tolist() == [1.0, 2.0, 3.0] and x._version == 0 and y._version == 0  # nothing was written
    with lib.no_grad():
        y.add_(1)  # outside autograd a write goes through, and it is the input's write too
    assert x._version == 1 and y._version == 1
    assert x.tolist() == ([2.0, 3.0, 4.0] if which == 0 else [1.0, 3.0, 4.0])
    y = F.apply(x)
    x.mul_(2)  # its base changed in place: autograd cannot rebuild the view's history
    with pytest.raises(RuntimeError, match="custom Function"):
        y * 2
    plain = lib.tensor([1.0, 2.0, 3.0])
    F.apply(plain).add_(1)  # nothing requires grad: an ordinary write into the input's memory
    assert plain._version == 1 and plain.tolist() == ([2.0, 3.0, 4.0] if which == 0 else [1.0, 3.0, 4.0])


def test_a_custom_functions_result_that_owns_the_memory_a_view_input_looks_into_is_a_view_of_that_base():
    """The result shares memory with the input although it is no view itself (it is the array the input views):
    it shares the version counter of the input's base and refuses in-place changes under autograd."""
    class Owner(mg.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.base  # the array that owns the memory the input looks into

        @staticmethod
        def backward(ctx, g):
            return g[1:]

    b = mg.tensor([1.0, 2.0, 3.0], requires_grad=True) * 1
    v = b[1:]
    y = Owner.apply(v)
    assert y._data is b._data and y._base is b and y._versions is b._versions
    with pytest.raises(RuntimeError, match="custom Function"):
        y.add_(1)
    assert b.tolist() == [1.0, 2.0, 3.0] and b._version == 0


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("equation", ["ij->ji", "ij->ij"])
def test_einsum_of_one_operand_is_a_view_that_rebases_its_base_in_place(lib, equation):
    a = lib.tensor(np.arange(6.0).reshape(2, 3) if equation == "ij->ij" else np.arange(9.0).reshape(3, 3),
                   requires_grad=True)
    x = a * 1
    y = lib.einsum(equation, x)
    y.mul_(3)
    (y * y.detach()).sum().backward()
    assert x._version == 1
    np.testing.assert_array_equal(x.detach().numpy(), 3 * a.detach().numpy())
    np.testing.assert_array_equal(a.grad.numpy(), 9 * a.detach().numpy())


def _stale_views(lib):
    """(name, base, view, the slice of base it views) for each kind of view torch will not rebuild after its base
    changes in place."""
    out = []
    a = lib.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    x = a * 1
    out.append(("multi", x, x.chunk(2)[0], slice(0, 2)))
    x = a * 1
    with lib.no_grad():
        v = x[0:2]
    out.append(("no_grad", x, v, slice(0, 2)))
    x = a * 1
    out.append(("custom", x, _custom_functions(lib)[1].apply(x), slice(1, None)))
    return out


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("grad_mode", ["enabled", "no_grad"])
def test_views_of_other_kinds_are_not_rebuilt_after_their_base_changes_in_place(lib, grad_mode):
    """A view from a multi-output op, one made under no_grad and one a custom Function returned: after an in-place
    change of the base (recorded or not), using the view raises; asking whether it requires grad does not."""
    for kind, base, view, part in _stale_views(lib):
        wanted = view.requires_grad
        if grad_mode == "enabled":
            base.mul_(2)
        else:
            with lib.no_grad():
                base.mul_(2)
        assert view.requires_grad == wanted, kind
        assert view.detach().tolist() == base.detach()[part].tolist(), kind
        with pytest.raises(RuntimeError, match="its base or another view of its base has been modified inplace"):
            view * 2


@pytest.mark.parametrize("lib", LIBS)
def test_a_recorded_in_place_op_on_a_view_of_another_kind_raises_and_writes_nothing(lib):
    """The base needs no grad but the other operand does: autograd would record the op, and torch refuses to
    rebase a view that came from a multi-output op, from no_grad mode or from a custom Function."""
    w = lib.ones(2, requires_grad=True)
    for make in (lambda x: x.chunk(2)[0], lambda x: _in_no_grad(lib, lambda: x[0:2]),
                 lambda x: _custom_functions(lib)[1].apply(x)[0:2]):
        x = lib.tensor([1.0, 2.0, 3.0, 4.0])
        v = make(x)
        with pytest.raises(RuntimeError, match="is a view and is being modified inplace|no_grad mode"):
            v.add_(w)
        assert x.tolist() == [1.0, 2.0, 3.0, 4.0] and x._version == 0 and not x.requires_grad


def _in_no_grad(lib, fn):
    with lib.no_grad():
        return fn()


@pytest.mark.parametrize("lib", LIBS)
def test_a_view_rebuilt_after_its_base_changed_keeps_its_new_node(lib):
    a = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = a * 1
    v = x[0:2]
    old = v.grad_fn
    x.mul_(2)
    new = v.grad_fn
    assert new is not old and v.grad_fn is new
    (v * 1).sum().backward()
    assert a.grad.tolist() == [2.0, 2.0, 0.0]


class _Narrow(mg.autograd.Function):
    """A user's Function that declares its result a view (positional arguments after the input)."""

    view = True

    @staticmethod
    def forward(ctx, a, start, length):
        ctx.shape, ctx.start = a.shape, start
        return a[start:start + length]

    @staticmethod
    def backward(ctx, grad):
        out = np.zeros(ctx.shape)
        out[ctx.start:ctx.start + grad.shape[0]] = grad
        return out, None, None


def test_a_users_view_function_with_positional_arguments_is_rebased_by_an_in_place_op():
    a = mg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    x = a * 1
    v = _Narrow.apply(x, 1, 2)
    v.mul_(3)
    (x * mg.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    assert x.tolist() == [1.0, 6.0, 9.0, 4.0] and a.grad.tolist() == [1.0, 30.0, 300.0, 1000.0]


@pytest.mark.parametrize("lib", LIBS)
def test_a_view_of_a_base_that_an_in_place_op_made_a_non_leaf_is_no_leaf_either(lib):
    x = lib.zeros(4)
    v = x[0:2]
    x.add_(lib.ones(4, requires_grad=True))
    assert not v.is_leaf and v.requires_grad
    x = lib.zeros(4)
    v = x[0:2]
    v.add_(lib.ones(2, requires_grad=True))  # through the view itself: the view is rebuilt at once
    with pytest.raises(RuntimeError, match="leaf variables"):
        v.requires_grad_(False)
    assert not v.is_leaf and not x.is_leaf and v.grad_fn is not None


ONE_ELEMENT_OVERLAPS = {"1-vs-0d": lambda x: x[0:1].add_(x[0]), "0d-vs-1": lambda x: x[0].add_(x[0:1]),
                        "1-vs-2": lambda x: x[0:1].add_(x[0:2]), "1-vs-1x1": lambda x: x[0:1].add_(x[0:1].view(1, 1))}


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("case", ONE_ELEMENT_OVERLAPS)
def test_a_one_element_target_that_an_input_overlaps_in_another_shape_is_refused(lib, case):
    x = lib.arange(4.0)
    with pytest.raises(RuntimeError, match="refer to a single memory location"):
        ONE_ELEMENT_OVERLAPS[case](x)
    assert x.tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("lib", LIBS)
def test_an_expanded_view_is_rebuilt_after_its_base_changes_in_place(lib):
    """expand is a view of the default kind (torch's): after its base changes in place it is rebuilt from the
    base's new history, not refused."""
    a = lib.tensor([[1.0, 2.0]], requires_grad=True)
    x = a * 1
    e = x.expand(3, 2)
    x.mul_(2)
    (e * lib.tensor([[1.0, 10.0]])).sum().backward()
    assert e.tolist() == [[2.0, 4.0]] * 3 and a.grad.tolist() == [[6.0, 60.0]]
