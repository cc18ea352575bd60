"""What guards the step itself: update clipping (Adam's RMS(update) bound) and SkipNonFinite."""
import math
import pickle

import numpy as np
import pytest
from helpers import params_and_rng
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn, optim


# ----- update clipping ------------------------------------------------------------------------------------------------
@given(lr=st.floats(1e-4, 1.0), update_clip=st.floats(1e-3, 10.0), scale=st.floats(1e-6, 1e3),
       quiet=st.floats(1e-8, 1.0), fused=st.sampled_from([None, True]))
def test_update_clipping_bounds_the_rms_of_every_step(lr, update_clip, scale, quiet, fused):
    """Domain: lr 1e-4..1, update_clip 1e-3..10, a quiet phase of gradients `quiet` times smaller followed by a
    spike of size `scale`: RMS(Δp) / lr <= update_clip for every tensor at every step (Adafactor's bound)."""
    rng = np.random.default_rng(0)
    params = [nn.Parameter(rng.standard_normal(s).astype(np.float64)) for s in ((4, 3), (5,))]
    opt = optim.Adam(params, lr=lr, update_clip=update_clip, fused=fused)
    for step in range(6):
        before = [p.data.copy() for p in params]
        for p in params:
            p.grad = rng.standard_normal(p.shape) * (scale if step == 5 else scale * quiet)
        opt.step()
        for p, b in zip(params, before):
            rms = math.sqrt(float(np.mean((p.data - b) ** 2)))
            assert rms / lr <= update_clip * (1 + 1e-9)


@pytest.mark.parametrize("fused", [None, True])
def test_after_a_long_quiet_phase_a_clipped_gradient_still_makes_adam_step_three_lr_unless_updates_are_clipped(
        fused):
    """The mechanism update clipping exists for. 3000 steps of gradients 1e-4 small let √v̂ decay towards
    √(1-β2)·|g| of the next gradient, so m̂/√v̂ ≈ (1-β1)/√(1-β2) ≈ 3.2 per element however hard the gradient
    was norm-clipped first; a NumPy recurrence of Adam's formula is the reference."""
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal((6, 5)) * (1e-4 if step < 3000 else 1.0) for step in range(3001)]
    m = v = np.zeros((6, 5))
    for g in grads:
        g = g * min(1.0, 1.0 / (np.linalg.norm(g) + 1e-6))  # clip_grad_norm_(max_norm=1)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    expected = np.sqrt(np.mean(((m / (1 - 0.9 ** 3001)) / (np.sqrt(v / (1 - 0.999 ** 3001)) + 1e-8)) ** 2))
    assert expected > 2.5
    for update_clip, bound in ((None, expected), (1.0, 1.0)):
        p = nn.Parameter(np.zeros((6, 5)))
        opt = optim.Adam([p], lr=0.01, update_clip=update_clip, fused=fused)
        for g in grads:
            before = p.data.copy()
            p.grad = g.copy()
            nn.utils.clip_grad_norm_([p], max_norm=1.0)
            opt.step()
        rms = math.sqrt(float(np.mean((p.data - before) ** 2))) / 0.01
        assert rms == pytest.approx(bound, rel=1e-6)


def test_update_clip_none_is_plain_adam_bit_for_bit_and_bad_values_are_rejected():
    rng = np.random.default_rng(1)
    runs = []
    for kwargs in (dict(), dict(update_clip=None)):
        p = nn.Parameter(np.ones(5))
        opt = optim.Adam([p], lr=0.1, **kwargs)
        for _ in range(5):
            p.grad = rng.standard_normal(5)
            opt.step()
        runs.append(p.data.tobytes())
        rng = np.random.default_rng(1)
    assert runs[0] == runs[1]
    p = nn.Parameter(np.ones(5))  # a bound no step reaches changes nothing either (to round-off)
    opt = optim.Adam([p], lr=0.1, update_clip=1e6)
    for _ in range(5):
        p.grad = rng.standard_normal(5)
        opt.step()
    np.testing.assert_allclose(p.data, np.frombuffer(runs[0]), rtol=1e-15)
    for bad in (0.0, -1.0, math.nan, "1"):
        with pytest.raises(ValueError, match="update_clip"):
            optim.Adam([nn.Parameter(np.ones(2))], update_clip=bad)


# ----- skipping non-finite steps --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
@pytest.mark.parametrize("fused", [None, True])
@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")  # clip of an inf: 0 · inf
def test_nonfinite_steps_are_skipped_and_counted_leaving_everything_bit_identical(name, fused):
    params, rng = params_and_rng(3)
    kwargs = dict(lr=0.1, momentum=0.9) if name == "SGD" else dict(lr=0.1)
    opt = getattr(optim, name)(params, fused=fused, **kwargs)
    guard = optim.SkipNonFinite(opt, max_consecutive=5)
    for p in params:
        p.grad = rng.standard_normal(p.shape)
    before = [p.data.copy() for p in params]
    assert guard.step(nn.utils.clip_grad_norm_(params, 1.0))
    assert all(not np.array_equal(p.data, b) for p, b in zip(params, before))  # a finite norm steps
    snapshot = pickle.dumps((opt.state_dict(), [p.data.tobytes() for p in params]))
    for bad in (np.inf, np.nan):
        for p in params:
            p.grad = rng.standard_normal(p.shape)
        params[1].grad.data[0] = bad
        assert not guard.step(nn.utils.clip_grad_norm_(params, 1.0))
        assert not guard.step()  # computing the norm itself
    assert pickle.dumps((opt.state_dict(), [p.data.tobytes() for p in params])) == snapshot
    assert guard.skipped == 4 and guard.taken == 1
    with pytest.raises(RuntimeError, match="diverged"):
        guard.step(mg.tensor(np.nan))


def test_skip_nonfinite_state_round_trips_and_refuses_bad_counts():
    params, _ = params_and_rng(0)
    guard = optim.SkipNonFinite(optim.SGD(params, lr=0.1))
    guard.skipped, guard.consecutive = 3, 1
    twin = optim.SkipNonFinite(optim.SGD(params, lr=0.1))
    twin.load_state_dict(guard.state_dict())
    assert (twin.skipped, twin.consecutive) == (3, 1)
    for bad in (-1, 1.5, True, "2"):
        state = {**guard.state_dict(), "skipped": bad}
        with pytest.raises(ValueError):
            twin.load_state_dict(state)
        assert (twin.skipped, twin.consecutive) == (3, 1)


def test_skip_nonfinite_checks_its_arguments_counts_steps_and_resets_the_run():
    """max_consecutive: a positive int (1 allowed: the first skip raises) or None; `taken` counts every step,
    and a finite step ends a run of skips, so skips that are not consecutive never raise."""
    params, rng = params_and_rng(1)
    with pytest.raises(TypeError, match="wraps an Optimizer"):
        optim.SkipNonFinite(params)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="max_consecutive"):
            optim.SkipNonFinite(optim.SGD(params, lr=0.1), max_consecutive=bad)
    with pytest.raises(RuntimeError, match="1 optimizer steps in a row"):
        optim.SkipNonFinite(optim.SGD(params, lr=0.1), max_consecutive=1).step(np.inf)
    guard = optim.SkipNonFinite(optim.SGD(params, lr=0.1), max_consecutive=2)
    for p in params:
        p.grad = rng.standard_normal(p.shape)
    assert guard.step(1.0) and guard.step(1.0)
    assert not guard.step(np.nan)
    assert guard.step(1.0) and guard.consecutive == 0
    assert not guard.step(np.inf)  # the second skip, but not in a row: no error
    assert (guard.taken, guard.skipped, guard.consecutive) == (3, 2, 1)


def test_skip_nonfinite_zero_grad_and_state_reach_the_wrapped_optimizer():
    """zero_grad forwards set_to_none (None by default, as torch); load_state_dict restores the optimizer's own
    state (momentum buffers), not only the counts."""
    params, rng = params_and_rng(2)
    guard = optim.SkipNonFinite(optim.SGD(params, lr=0.1, momentum=0.9))
    for p in params:
        p.grad = rng.standard_normal(p.shape)
    guard.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in params)
    guard.zero_grad()
    assert all(p.grad is None for p in params)
    for p in params:
        p.grad = rng.standard_normal(p.shape)
    guard.step(1.0)
    saved = guard.state_dict()
    twin_params = [nn.Parameter(p.data.copy()) for p in params]
    twin = optim.SkipNonFinite(optim.SGD(twin_params, lr=0.1, momentum=0.9))
    twin.load_state_dict(saved)
    for p, q in zip(params, twin_params):
        p.grad = q.grad = np.ones(p.shape)
    guard.step(1.0)
    twin.step(1.0)
    for p, q in zip(params, twin_params):
        np.testing.assert_array_equal(p.data, q.data)  # the momentum buffers came along
    assert twin.taken == 2
