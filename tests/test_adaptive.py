"""Choosing the threshold: segment norms and unit-wise clipping (AGC) on every backend, and AutoClip, each
against an independent NumPy formula (clipping inside BPTT: test_rnn.py; the monitor: test_monitor.py).
The array-level kernels run on every backend (CUDA simulated unless MINIGRAD_REAL_CUDA=1)."""
import math

import numpy as np
import pytest
from backends import BACKENDS, examples, to_backend, to_host
from helpers import params_and_rng
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import values

import minigrad as mg
from minigrad import clip, nn

backends = pytest.mark.parametrize("backend", BACKENDS)


pytestmark = pytest.mark.usefixtures("small_kernels")


def _host(x, backend):
    return np.asarray(x) if backend != "cuda" else to_host([x], backend)[0]


@st.composite
def segmented(draw, dtypes=(np.float32, np.float64), special=False):
    """A flat array cut into 1-8 segments of 0-60 elements (empty ones included)."""
    sizes = draw(st.lists(st.integers(0, 60), min_size=1, max_size=8))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    x = draw(hnp.arrays(dtype, sum(sizes), elements=values(dtype, special)))
    return x, np.cumsum([0] + sizes)


def _reference_segment_norms(x, offsets, p):
    out = []
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        seg = np.abs(x[lo:hi].astype(np.float64))
        if seg.size == 0:
            out.append(0.0)
        elif p == math.inf or np.isnan(seg).any():
            out.append(float(seg.max()))
        else:
            m = seg.max()
            out.append(float(m) if m == 0 or not np.isfinite(m) else float(m * np.sum((seg / m) ** p) ** (1 / p)))
    return np.array(out)


def _agc_reference(g, w, clip_factor, eps):
    """timm's adaptive_clip_grad on one parameter, in NumPy (float64)."""
    if g.ndim <= 1:
        gn, wn = np.linalg.norm(g.astype(np.float64)), np.linalg.norm(w.astype(np.float64))
    else:
        axes = tuple(range(1, g.ndim))
        gn = np.sqrt(np.sum(g.astype(np.float64) ** 2, axis=axes, keepdims=True))
        wn = np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=axes, keepdims=True))
    limit = np.maximum(wn, eps) * clip_factor
    return np.where(gn < limit, g, g * (limit / np.maximum(gn, 1e-6))), gn, limit


@st.composite
def agc_case(draw):
    shape = draw(st.sampled_from([(), (7,), (5, 4), (3, 2, 6), (1, 9)]))
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    el = st.floats(-100, 100, width=dtype.itemsize * 8)
    g = draw(hnp.arrays(dtype, shape, elements=el))
    w = draw(hnp.arrays(dtype, shape, elements=st.floats(-1, 1, width=dtype.itemsize * 8)))
    return g, w, draw(st.floats(1e-3, 10.0)), draw(st.sampled_from([0.0, 1e-3, 0.1]))


def _check_agc(backend, g, w, clip_factor, eps):
    p = nn.Parameter(w.copy())
    p.grad = g.copy()
    expect, gn, limit = _agc_reference(g, w, clip_factor, eps)
    if backend == "cuda":
        dev = to_backend([g.reshape(-1), w.reshape(-1)], backend)
        unit = g.size if g.ndim <= 1 else g.size // g.shape[0]
        offsets = np.arange(0, g.size + 1, max(unit, 1)) if g.size else np.zeros(1, np.int64)
        clip.adaptive_clip_(dev[0], dev[1], offsets, clip_factor, eps, backend="cuda")
        got = to_host(dev[:1], backend)[0].reshape(g.shape)
    else:
        with ForcedBackend(backend):
            nn.utils.adaptive_clip_grad_([p], clip_factor=clip_factor, eps=eps)
        got = p.grad.numpy()
    tol = 1e-5 if g.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expect, rtol=tol, atol=tol * 1e-3)
    below = np.broadcast_to(gn < limit, g.shape)
    assert np.array_equal(got[below], g[below])
    _, after, _ = _agc_reference(got, w, clip_factor, eps)
    assert np.all(after <= limit * (1 + 4 * tol) + 1e-30)


class ForcedBackend:
    """Force minigrad.clip's backend for the calls inside (as MINIGRAD_BACKEND does)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        import os

        self.before = os.environ.get("MINIGRAD_BACKEND")
        os.environ["MINIGRAD_BACKEND"] = self.name

    def __exit__(self, *exc):
        import os

        if self.before is None:
            os.environ.pop("MINIGRAD_BACKEND", None)
        else:
            os.environ["MINIGRAD_BACKEND"] = self.before


def _agc_rows(g, w, clip_factor, eps):
    """timm's AGC by hand, float64: each row (a 0-d/1-d parameter: the whole) scaled to max(‖w‖, eps)·factor."""
    g2, w2 = g.reshape(g.shape[0], -1) if g.ndim > 1 else g.reshape(1, -1), w.reshape(w.shape[0], -1) if \
        w.ndim > 1 else w.reshape(1, -1)
    out = g2.copy()
    for r in range(g2.shape[0]):
        limit = max(np.linalg.norm(w2[r]), eps) * clip_factor
        n = np.linalg.norm(g2[r])
        if n >= limit:
            out[r] = g2[r] * (limit / max(n, 1e-6))
    return out.reshape(g.shape)


# ----- segment norms and unit-wise clipping (AGC), every backend ------------------------------------------------------
@backends
def test_segment_norms_equal_the_norm_of_each_slice(backend):
    """Domain: float32/64 values from subnormal to 1e30/1e200 with NaN and ±inf, segments of 0-60 elements
    (many chunks and items with the shrunken chunk size), p in {1, 2, 3.5, 20, inf}."""
    @examples(backend)
    @given(case=segmented(special=True), p=st.sampled_from([1.0, 2.0, 3.5, 20.0, math.inf]))
    def check(case, p):
        x, offsets = case
        got = _host(clip.segment_norms(to_backend([x], backend)[0], offsets, p, backend=backend), backend)
        np.testing.assert_allclose(got, _reference_segment_norms(x, offsets, p), rtol=1e-12 * max(1, 1 / p))

    check()


@backends
def test_scale_segments_multiplies_each_segment_by_its_factor_in_the_array_dtype(backend):
    rng = np.random.default_rng(6)
    offsets = np.array([0, 3, 3, 40, 41, 70])
    factors = np.array([0.5, 7.0, -1.0, 0.0, 0.1])  # 0.1: a float64 factor, not rounded to float32 first
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(70).astype(dtype)
        want = x * np.repeat(factors, np.diff(offsets)).astype(dtype)
        dev = to_backend([x.copy()], backend)
        clip.scale_segments_(dev[0], offsets, factors, backend=backend)
        np.testing.assert_array_equal(to_host(dev, backend)[0], want)


@backends
def test_agc_clips_each_unit_to_its_limit_and_leaves_the_others_bit_identical(backend):
    """Domain: 0-3-d float32/64 parameters, gradients in [-100, 100], weights in [-1, 1], clip_factor 1e-3..10,
    eps in {0, 1e-3, 0.1}: every unit's norm ends <= max(‖W_u‖, eps)·clip_factor (1 + tol), units that were
    below the limit keep their bits, and the result is timm's formula."""
    @examples(backend)
    @given(case=agc_case())
    def check(case):
        _check_agc(backend, *case)

    check()


@backends
def test_agc_on_fixed_units_with_gradient_norms_below_one(backend):
    """Beside the drawn cases: units clipped from norms below 1 (where the 1e-6 floor of ‖G‖ must not act), a
    zero unit, a unit under its limit, a zero weight row (the eps floor), in float32 and float64."""
    rng = np.random.default_rng(4)
    g = rng.standard_normal((4, 5)) * np.array([[0.2], [0.0], [1e-4], [3.0]])
    w = rng.standard_normal((4, 5)) * np.array([[1.0], [1.0], [1.0], [0.0]])
    for dtype in (np.float32, np.float64):
        _check_agc(backend, g.astype(dtype), w.astype(dtype), 0.05, 1e-3)


def test_agc_matches_timms_formula_in_torch(torch):
    rng = np.random.default_rng(0)
    shapes = [(6, 5), (6,), (4, 3, 2), ()]
    ours = [nn.Parameter(rng.standard_normal(s) * 0.1) for s in shapes]
    grads = [rng.standard_normal(s) * 3 for s in shapes]
    for p, g in zip(ours, grads):
        p.grad = g.copy()
    nn.utils.adaptive_clip_grad_(ours, clip_factor=0.05, eps=1e-3)
    for p, g in zip(ours, grads):  # timm's code, in torch
        t = torch.tensor(p.data.copy())
        tg = torch.tensor(g)
        dims = tuple(range(1, t.ndim)) if t.ndim > 1 else None

        def norm(x, dims=dims):
            return x.norm(dim=dims, keepdim=True) if dims else x.norm()

        max_norm = norm(t).clamp_(min=1e-3).mul_(0.05)
        clipped = tg * (max_norm / norm(tg).clamp(min=1e-6))
        np.testing.assert_allclose(p.grad.numpy(), torch.where(norm(tg) < max_norm, tg, clipped).numpy(),
                                   rtol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(clip_factor=0), dict(clip_factor=-1), dict(clip_factor=math.nan),
                                    dict(eps=-1e-3), dict(eps=math.nan), dict(norm_type=-2), dict(norm_type="x")])
def test_agc_rejects_bad_arguments_and_changes_nothing(kwargs):
    params, rng = params_and_rng(2)
    for p in params:
        p.grad = rng.standard_normal(p.shape) * 10
    before = [p.grad.numpy().tobytes() for p in params]
    with pytest.raises(ValueError):
        nn.utils.adaptive_clip_grad_(params, **kwargs)
    assert [p.grad.numpy().tobytes() for p in params] == before


@backends
@pytest.mark.parametrize("p", [0.5, 1.0, 2.0, 3.0, 8.0, math.inf], ids=str)
def test_segment_norms_of_every_order_on_fixed_hard_segments(backend, p):
    """Beside the drawn cases (few under the simulator): fixed segments for each order's own code path —
    empty, all-zero, one element, huge float64 (scaled), subnormal, NaN, inf, and one spanning several chunks."""
    rng = np.random.default_rng(3)
    parts = [np.zeros(0), np.zeros(5), np.array([-2.5]), np.full(3, 1e200), np.array([1e200]), np.full(4, 5e-324),
             np.array([1.0, np.nan]), np.array([np.inf, 1.0]), rng.standard_normal(50)]
    x = np.concatenate(parts)
    offsets = np.cumsum([0] + [a.size for a in parts])
    got = _host(clip.segment_norms(to_backend([x], backend)[0], offsets, p, backend=backend), backend)
    np.testing.assert_allclose(got, _reference_segment_norms(x, offsets, p), rtol=1e-12 * max(1, 1 / p))
    x32 = rng.standard_normal(70).astype(np.float32) * 1e30  # float32 powers overflow unless summed in float64
    off32 = np.array([0, 7, 7, 70])
    got = _host(clip.segment_norms(to_backend([x32], backend)[0], off32, p, backend=backend), backend)
    np.testing.assert_allclose(got, _reference_segment_norms(x32, off32, p), rtol=1e-6)


def test_agc_checks_every_gradient_before_clipping_the_first():
    """A read-only gradient anywhere in the list is refused before any gradient is scaled (transaction)."""
    a, b = nn.Parameter(np.ones((2, 3))), nn.Parameter(np.ones((2, 3)))
    a.grad, b.grad = np.full((2, 3), 5.0), np.full((2, 3), 5.0)
    b.grad.numpy().flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        nn.utils.adaptive_clip_grad_([a, b])
    np.testing.assert_array_equal(a.grad.numpy(), np.full((2, 3), 5.0))


@pytest.mark.parametrize("backend", ["cuda"])
def test_cuda_segment_norms_of_more_segments_than_one_block_has_threads(backend):
    """20 segments: the combine kernel needs several blocks (8 threads each under the simulator)."""
    x = np.arange(1.0, 41.0)
    offsets = np.arange(0, 41, 2)
    got = _host(clip.segment_norms(to_backend([x], backend)[0], offsets, 2.0, backend=backend), backend)
    np.testing.assert_allclose(got, np.hypot(x[0::2], x[1::2]), rtol=1e-14)


def test_agc_defaults_are_timms_and_units_are_rows_even_of_width_one():
    rng = np.random.default_rng(0)
    shapes = [(4, 1), (1, 6), (3, 5), (6,), ()]
    params = [nn.Parameter(rng.standard_normal(s)) for s in shapes]
    grads = [rng.standard_normal(s) * 3 for s in shapes]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    nn.utils.adaptive_clip_grad_(params)  # clip_factor 0.01, eps 1e-3, as timm
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), _agc_rows(g, p.detach().numpy(), 0.01, 1e-3), rtol=1e-12)


def test_agc_rejects_bad_arguments_and_a_read_only_gradient_before_changing_anything():
    p, q = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(3))
    p.grad, q.grad = np.full(3, 5.0), np.full(3, 5.0)
    for kwargs in (dict(clip_factor=0.0), dict(norm_type=0.0), dict(clip_factor=-1.0)):
        with pytest.raises(ValueError):
            nn.utils.adaptive_clip_grad_([p, q], **kwargs)
    nn.utils.adaptive_clip_grad_([nn.Parameter(np.ones(2))], norm_type=1.0)  # order 1 is fine
    q.grad.numpy().flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        nn.utils.adaptive_clip_grad_([p, q])
    np.testing.assert_array_equal(p.grad.numpy(), 5.0)  # p came first and is untouched


@pytest.mark.parametrize("backend", ["cuda"])
def test_cuda_agc_of_one_unit_more_than_a_block_has_threads(backend):
    """THREADS + 1 units (9 under the simulator, 257 on a GPU): the factor kernel needs a second block for the
    last unit, which must be clipped like the others (timm's rule, by hand)."""
    from minigrad.clip.cuda_backend import THREADS

    n = THREADS + 1
    rng = np.random.default_rng(4)
    g, w = rng.standard_normal((n, 2)) * 10, rng.standard_normal((n, 2))
    dev, wdev = to_backend([g.reshape(-1), w.reshape(-1)], backend)
    clip.adaptive_clip_(dev, wdev, np.arange(0, 2 * n + 1, 2), 0.01, 1e-3, backend=backend)
    np.testing.assert_allclose(_host(dev, backend).reshape(n, 2), _agc_rows(g, w, 0.01, 1e-3), rtol=1e-12)


# ----- AutoClip -------------------------------------------------------------------------------------------------------
@given(scales=st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=25), percentile=st.floats(0, 100),
       window=st.one_of(st.none(), st.integers(1, 10)))
def test_autoclip_threshold_is_the_percentile_of_its_history_and_bounds_the_norm(scales, percentile, window):
    """Domain: norms from 1e-3 to 1e3, any percentile, any window: after each call the threshold is
    np.percentile of the last `window` pre-clip norms (the current one included), and the clipped norm is at
    most the threshold."""
    params, rng = params_and_rng(0)
    auto = nn.utils.AutoClip(params, percentile=percentile, window=window)
    seen = []
    for scale in scales:
        for p in params:
            p.grad = rng.standard_normal(p.shape) * scale
        before = math.sqrt(sum(float(np.sum(p.grad.numpy() ** 2)) for p in params))
        norm = auto().item()
        seen.append(before)
        np.testing.assert_allclose(norm, before, rtol=1e-12)
        history = seen[-window:] if window else seen
        np.testing.assert_allclose(auto.threshold, np.percentile(history, percentile), rtol=1e-12)
        after = math.sqrt(sum(float(np.sum(p.grad.numpy() ** 2)) for p in params))
        assert after <= auto.threshold * (1 + 1e-9) or after == pytest.approx(before)


def test_autoclip_resumes_from_its_state_dict_and_ignores_nonfinite_norms(tmp_path):
    params, rng = params_and_rng(1)
    auto = nn.utils.AutoClip(params, percentile=50, window=4)
    for _ in range(6):
        for p in params:
            p.grad = rng.standard_normal(p.shape)
        auto()
    mg.save(auto.state_dict(), tmp_path / "auto.npz")
    twin = nn.utils.AutoClip(params, percentile=10)
    twin.load_state_dict(mg.load(tmp_path / "auto.npz"))
    assert list(twin.history) == list(auto.history) and twin.window == 4 and twin.percentile == 50
    params[0].grad.data[0] = np.nan
    before = list(auto.history)
    assert math.isnan(auto().item())
    assert list(auto.history) == before  # one NaN would make every later threshold NaN


@pytest.mark.parametrize("kwargs", [dict(percentile=-1), dict(percentile=101), dict(percentile=math.nan),
                                    dict(percentile="10"), dict(window=0), dict(window=1.5), dict(window=True),
                                    dict(norm_type=0), dict(norm_type=math.nan)])
def test_autoclip_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        nn.utils.AutoClip(params_and_rng(0)[0], **kwargs)


def test_a_fresh_autoclips_state_round_trips():
    params, _ = params_and_rng(0)
    fresh = nn.utils.AutoClip(params, percentile=20)
    twin = nn.utils.AutoClip(params)
    twin.load_state_dict(fresh.state_dict())
    assert twin.threshold is None and twin.percentile == 20.0


def test_autoclip_clips_to_the_percentile_of_the_norms_seen():
    """Defaults: the 10th percentile of every norm so far. Norms 1 then 10: threshold 1.9, the second
    gradient is scaled to norm 1.9 / (10 + 1e-6) · 10."""
    p = nn.Parameter(np.zeros(2))
    auto = nn.utils.AutoClip([p])
    assert auto.percentile == 10.0 and auto.window is None
    p.grad = np.array([0.6, 0.8])
    auto()
    p.grad = np.array([6.0, 8.0])
    norm = auto()
    assert float(norm) == 10.0 and auto.threshold == pytest.approx(1.9)
    np.testing.assert_allclose(p.grad.numpy(), np.array([6.0, 8.0]) * 1.9 / (10 + 1e-6), rtol=1e-12)
    assert nn.utils.AutoClip([p], percentile=100.0, norm_type=1.0).percentile == 100.0


def test_autoclip_load_state_dict_checks_the_history_and_restores_the_threshold():
    p = nn.Parameter(np.zeros(2))
    auto = nn.utils.AutoClip([p], percentile=50.0)
    good = {"percentile": 50.0, "window": None, "norm_type": 2.0, "history": np.array([0.0, 2.0]), "threshold": 1.0}
    auto.load_state_dict(good)  # a norm of exactly 0 is a norm
    assert auto.threshold == 1.0 and list(auto.history) == [0.0, 2.0]
    for bad in (np.array([[1.0, 2.0]]), np.array([1.0, np.nan]), np.array([1.0, -0.5])):
        with pytest.raises(ValueError, match="history must be"):
            auto.load_state_dict({**good, "history": bad})
    assert list(auto.history) == [0.0, 2.0]
