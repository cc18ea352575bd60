"""minigrad.nn.utils: torch's four clipping functions and GradBuffer."""
import math

import numpy as np
import pytest
from backends import reference_norm
from helpers import make_params

import minigrad as mg
from minigrad import nn
from minigrad.nn import utils
from minigrad.nn.utils.grad_buffer import grad_arrays

SHAPES = [(4, 3), (3,), (2, 2, 2), (5,)]


def _params(rng, dtype=np.float64, with_none=True):
    """Four parameters with gradients of scale 3, the second one's None unless `with_none` is False."""
    return make_params(SHAPES, dtype=dtype, seed=rng, grad_scale=3, none_at=(1,) if with_none else ())


def test_clip_grad_norm_returns_the_pre_clip_norm_and_skips_none(rng):
    params = _params(rng)
    grads = [p.grad.numpy().copy() for p in params if p.grad is not None]
    norm = utils.clip_grad_norm_(params, max_norm=2.0, norm_type=2)
    assert isinstance(norm, mg.Tensor) and norm.shape == () and norm.dtype == np.float64
    np.testing.assert_allclose(norm.item(), reference_norm(grads, 2), rtol=1e-12)
    np.testing.assert_allclose(reference_norm([p.grad.numpy() for p in params if p.grad is not None], 2), 2.0,
                               rtol=1e-6)
    assert params[1].grad is None


def test_get_total_norm_then_clip_grads_with_norm_equals_clip_grad_norm(rng):
    a, b = _params(rng), _params(np.random.default_rng(0))
    b = [nn.Parameter(p.data.copy()) for p in a]
    for p, q in zip(a, b):
        q.grad = None if p.grad is None else p.grad.clone()
    n1 = utils.clip_grad_norm_(a, 1.5, 3.0)
    n2 = utils.get_total_norm([q.grad for q in b if q.grad is not None], 3.0)
    utils.clip_grads_with_norm_(b, 1.5, n2)
    assert n1.item() == n2.item()
    for p, q in zip(a, b):
        if p.grad is not None:
            np.testing.assert_array_equal(p.grad, q.grad)


def test_clip_grad_value_and_single_tensor_argument(rng):
    p = nn.Parameter(np.zeros(5))
    p.grad = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    utils.clip_grad_value_(p, clip_value=1.0)
    np.testing.assert_array_equal(p.grad, [-1.0, -0.5, 0.0, 0.5, 1.0])


def test_module_level_rejections_leave_grads_untouched(rng):
    params = _params(rng)
    before = [None if p.grad is None else p.grad.numpy().copy() for p in params]
    for call in (lambda: utils.clip_grad_norm_(params, -1.0), lambda: utils.clip_grad_norm_(params, 1.0, float("nan")),
                 lambda: utils.clip_grad_value_(params, -0.1), lambda: utils.clip_grads_with_norm_(params, -1, 3.0)):
        with pytest.raises(ValueError):
            call()
    params[0].grad.data[0, 0] = np.inf
    before[0][0, 0] = np.inf
    with pytest.raises(RuntimeError, match="inf"):
        utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        utils.get_total_norm([p.grad for p in params if p.grad is not None], error_if_nonfinite=True)
    for p, g in zip(params, before):
        assert (p.grad is None) == (g is None)
        if g is not None:
            assert p.grad.numpy().tobytes() == g.tobytes()


def test_gradbuffer_views_accumulate_and_survive_zero_grad(rng):
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    buf = utils.GradBuffer(model.parameters())
    flat = buf.flats[np.dtype(np.float32)]
    assert flat.size == sum(p.numel() for p in model.parameters())
    opt = mg.optim.SGD(model.parameters(), lr=0.1)
    x = mg.tensor(rng.standard_normal((5, 3)).astype(np.float32))
    for _ in range(2):
        opt.zero_grad()
        model(x).sum().backward()
        for p in model.parameters():
            assert p.grad.numpy().base is flat  # still a view, written in place
    one = flat.copy()
    model(x).sum().backward()  # accumulates: twice the single-step gradient
    np.testing.assert_allclose(flat, 2 * one, rtol=1e-6)
    model.zero_grad()
    assert not flat.any() and all(p.grad.numpy().base is flat for p in model.parameters())


def test_clipping_a_gradbuffer_uses_the_flat_array_and_equals_per_array_clipping(rng):
    params = _params(rng, np.float32, with_none=False)
    plain = [nn.Parameter(p.data.copy()) for p in params]
    for p, q in zip(params, plain):
        q.grad = p.grad.clone()
    buf = utils.GradBuffer(params)
    assert [g is buf.flats[np.dtype(np.float32)] for g in grad_arrays(params)] == [True]
    assert len(grad_arrays(params[:2])) == 2  # a partial set stays per array
    assert len(grad_arrays(params + params[:1])) == 5  # a parameter twice: per array, as torch counts it
    n1, n2 = utils.clip_grad_norm_(params, 0.7), utils.clip_grad_norm_(plain, 0.7)
    np.testing.assert_allclose(n1.item(), n2.item(), rtol=1e-14)  # one sum vs per-array sums: last-bit rounding
    for p, q in zip(params, plain):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-6)
        assert p.grad.numpy().base is buf.flats[np.dtype(np.float32)]


def test_only_the_buffers_own_members_with_their_views_take_the_flat_array(rng):
    """grad_arrays hands over the flat array exactly when the parameters are the buffer's members, each once and
    each with its own view as .grad, in the buffer's order (one loop) or any other (a second check)."""
    params = _params(rng, np.float32, with_none=False)
    a, b, c, d = params
    buf = utils.GradBuffer(params)
    flat = buf.flats[np.dtype(np.float32)]
    is_flat = lambda ps: [g is flat for g in grad_arrays(ps)] == [True]  # noqa: E731
    assert is_flat(params) and is_flat(tuple(params)) and is_flat([d, c, b, a]) and is_flat([a, c, b, d])
    assert buf.owns_all(params) and buf.owns_all([b, a, c, d])
    assert not is_flat([a, b, c, c]) and not is_flat([a, b, c, a]) and not is_flat([a, b, c])
    assert not is_flat([b, a, a, c])  # a twice, d missing, and no parameter in its own place
    assert not buf.owns_all([a, b, c, a]) and not buf.owns_all([a, b, c, d, a])
    assert not is_flat([a, b, c, nn.Parameter(np.zeros(5, np.float32))])
    d.grad = d.grad.numpy().copy()  # rebound to an array of its own: per array, in either order
    assert not is_flat(params) and not is_flat([d, c, b, a]) and len(grad_arrays(params)) == 4
    buf.zero_grad()
    assert is_flat(params)
    d.grad = None
    assert not is_flat(params) and not is_flat([d, c, b, a]) and len(grad_arrays(params)) == 3
    buf.zero_grad()
    utils.GradBuffer([c])  # c now belongs to a second buffer
    assert not is_flat(params) and not is_flat([d, c, b, a]) and len(grad_arrays(params)) == 4
    moved = utils.GradBuffer(params)  # every member now belongs to a new buffer, in the same order
    assert not buf.owns_all(params) and not buf.owns_all([d, c, b, a]) and moved.owns_all(params)
    assert [g is moved.flats[np.dtype(np.float32)] for g in grad_arrays(params)] == [True]


def _pair(torch, rng, dtype):
    ours = _params(rng, dtype)
    theirs = [torch.nn.Parameter(torch.tensor(p.data)) for p in ours]
    for p, t in zip(ours, theirs):
        t.grad = None if p.grad is None else torch.tensor(p.grad.numpy().copy())
    return ours, theirs


def _close(a, b, dtype):
    np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [1, 2, 2.5, 0.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(torch, rng, dtype, norm_type, max_norm):
    ours, theirs = _pair(torch, rng, dtype)
    n_ours = utils.clip_grad_norm_(ours, max_norm, norm_type)
    n_theirs = torch.nn.utils.clip_grad_norm_(theirs, max_norm, float(norm_type))
    _close(n_ours.item(), n_theirs.item(), dtype)
    assert str(n_ours.dtype) == str(n_theirs.dtype).removeprefix("torch.")
    for p, t in zip(ours, theirs):
        if p.grad is not None:
            _close(p.grad, t.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [1, 2, 3.0, math.inf])
def test_get_total_norm_and_clip_grads_with_norm_match_torch(torch, rng, dtype, norm_type):
    ours, theirs = _pair(torch, rng, dtype)
    n_ours = utils.get_total_norm([p.grad for p in ours if p.grad is not None], norm_type)
    n_theirs = torch.nn.utils.get_total_norm([t.grad for t in theirs if t.grad is not None], norm_type)
    _close(n_ours.item(), n_theirs.item(), dtype)
    utils.clip_grads_with_norm_(ours, 1.0, n_ours)
    torch.nn.utils.clip_grads_with_norm_(theirs, 1.0, n_theirs)
    for p, t in zip(ours, theirs):
        if p.grad is not None:
            _close(p.grad, t.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_value_matches_torch_exactly(torch, rng, dtype):
    ours, theirs = _pair(torch, rng, dtype)
    utils.clip_grad_value_(ours, 1.25)
    torch.nn.utils.clip_grad_value_(theirs, 1.25)
    for p, t in zip(ours, theirs):
        if p.grad is not None:
            np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_where_torch_overflows_we_clip(torch):
    g = np.full(4, 1e30, np.float32)
    t = torch.nn.Parameter(torch.zeros(4))
    t.grad = torch.tensor(g.copy())
    assert math.isinf(torch.nn.utils.clip_grad_norm_([t], 1.0).item())  # torch: fp32 overflow, grads zeroed
    p = nn.Parameter(np.zeros(4, np.float32))
    p.grad = g.copy()
    np.testing.assert_allclose(utils.clip_grad_norm_([p], 1.0).item(), 2e30, rtol=1e-6)  # returned as float32
    np.testing.assert_allclose(p.grad, np.full(4, 0.5), rtol=1e-6)


def test_gradbuffer_stays_in_use_without_a_reference_to_it(rng):
    params = _params(rng, np.float32, with_none=False)
    utils.GradBuffer(params)  # not kept by the caller: the parameters keep it
    import gc

    gc.collect()
    assert len(grad_arrays(params)) == 1


def test_fuse_buffer_views_fuses_only_complete_sets_and_norms_stay_exact(rng):
    """A complete set of one GradBuffer's views, each once, is read as the flat array (one kernel); a subset,
    a view twice or a foreign array keeps the arrays as given, and every norm equals NumPy's over exactly the
    arrays handed in."""
    from minigrad.nn.utils.grad_buffer import fuse_buffer_views

    params = [nn.Parameter(rng.standard_normal(s)) for s in [(3, 4), (5,), (2, 2)]]
    buf = utils.GradBuffer(params)
    for p in params:
        p.grad.data[...] = rng.standard_normal(p.shape)
    views = [p.grad.numpy() for p in params]
    flat = buf.flats[np.dtype(np.float64)]
    assert len(fuse_buffer_views(views)) == 1 and fuse_buffer_views(views)[0] is flat
    other = rng.standard_normal(6)
    mixed = fuse_buffer_views([other] + views[::-1])
    assert len(mixed) == 2 and mixed[0] is flat and mixed[1] is other
    for arrays in (views[:2], views + [views[0]], [views[1], other], views[::-1], [other]):
        assert all(x is y for x, y in zip(sorted(fuse_buffer_views(arrays), key=id), sorted(arrays, key=id))) \
            or fuse_buffer_views(arrays)[0] is flat
        want = float(np.linalg.norm(np.concatenate([a.ravel() for a in arrays])))
        np.testing.assert_allclose(float(utils.get_total_norm(arrays)), want, rtol=1e-12)


def test_gradbuffer_zero_grad_forgets_a_pending_coefficient_and_rebinds_replaced_grads(rng):
    params = [nn.Parameter(rng.standard_normal(4)) for _ in range(2)]
    buf = utils.GradBuffer(params)
    opt = mg.optim.SGD(params, lr=0.1, fused=True)
    for p in params:
        p.grad.data[...] = 10.0
    opt.step()  # the fused step makes the optimizer the buffer's consumer
    for p in params:
        p.grad.data[...] = 10.0
    utils.clip_grad_norm_(params, 1.0)
    assert buf.pending != 1.0
    buf.zero_grad()
    assert buf.pending == 1.0
    params[1].grad = np.ones(4)  # a member's .grad replaced by a foreign array
    buf.zero_grad()
    for p in params:
        assert np.shares_memory(p.grad.numpy(), buf.flats[np.dtype(np.float64)]) and not p.grad.numpy().any()
    params[0].grad.data[...] = 3.0
    np.testing.assert_array_equal(params[0].grad.numpy(), 3.0)  # no stale coefficient applied on reading


def test_norm_dtype_with_mixed_gradients_and_edge_values_of_the_functional_api(rng):
    """The returned norm takes the promoted dtype of mixed float32/float64 gradients; get_total_norm returns
    inf without error_if_nonfinite; clip_grads_with_norm_ takes max_norm and total_norm below 1 and a NaN
    total_norm (as torch: the gradients become NaN), and max_norm=inf changes nothing even for an inf norm."""
    a, b = nn.Parameter(np.zeros(3, np.float32)), nn.Parameter(np.zeros(2))
    a.grad, b.grad = np.full(3, 2.0, np.float32), np.full(2, 2.0)
    assert utils.clip_grad_norm_([a, b], 100.0).dtype == mg.float64
    assert utils.clip_grad_norm_([b, a], 100.0).dtype == mg.float64
    assert math.isinf(float(utils.get_total_norm([np.array([1.0, np.inf])])))
    p = nn.Parameter(np.zeros(2))
    p.grad = np.array([3.0, 4.0])
    utils.clip_grads_with_norm_([p], 0.5, 0.25)  # coefficient min(0.5 / 0.25..., 1) = 1: unchanged
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 4.0])
    utils.clip_grads_with_norm_([p], 0.5, 5.0)
    np.testing.assert_allclose(p.grad.numpy(), np.array([3.0, 4.0]) * 0.5 / (5.0 + 1e-6), rtol=1e-12)
    before = p.grad.numpy().copy()
    utils.clip_grads_with_norm_([p], math.inf, math.inf)
    np.testing.assert_array_equal(p.grad.numpy(), before)
    utils.clip_grads_with_norm_([p], 1.0, math.nan)
    assert np.isnan(p.grad.numpy()).all()


def test_clip_takes_any_iterable_of_parameters(rng):
    """A dict's values, a set, a generator and a tuple clip the same gradients (as torch accepts any iterable)."""
    p, q = nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(2))
    for make in (lambda: {"p": p, "q": q}.values(), lambda: (p, q), lambda: (t for t in (p, q)), lambda: {p, q}):
        p.grad, q.grad = np.full(3, 4.0), np.full(2, 4.0)
        norm = utils.clip_grad_norm_(make(), 1.0)
        assert float(norm) == pytest.approx(math.sqrt(5 * 16))
        np.testing.assert_allclose(np.linalg.norm(np.r_[p.grad.numpy(), q.grad.numpy()]), 1.0, rtol=1e-5)
        utils.clip_grad_value_(make(), 0.1)
        assert np.abs(np.r_[p.grad.numpy(), q.grad.numpy()]).max() <= 0.1


def test_get_total_norm_takes_order_two_by_default():
    g = [mg.tensor([3.0, 0.0]), mg.tensor([4.0])]
    assert float(nn.utils.get_total_norm(g)) == 5.0
