"""optim.LBFGS against torch.optim.LBFGS: the same losses step by step (fixed step and strong-Wolfe line search,
float64 and float32), torch's stopping rules, state_dict, arguments, and all-or-nothing steps.

The configurations follow those torch's own optimizer tests give LBFGS (torch/testing/_internal/
common_optimizers.py: the defaults, a small lr, tolerance_grad, strong_wolfe) on the Rosenbrock function.
"""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim

CONFIGS = [{}, {"lr": 0.01}, {"tolerance_grad": 1e-5}, {"line_search_fn": "strong_wolfe"},
           {"history_size": 2, "max_iter": 7}, {"lr": 0.5, "max_eval": 4, "line_search_fn": "strong_wolfe"},
           {"lr": 1e-3, "line_search_fn": "strong_wolfe"}]  # the last extrapolates: its first trial is short


def _rosenbrock(lib, xy):
    x, y = xy[0], xy[1]
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def _run_rosenbrock(lib, config, steps, dtype=np.float64):
    xy = lib.tensor(np.array([-1.5, 1.5], dtype=dtype), requires_grad=True)
    opt = lib.optim.LBFGS([xy], **config)
    losses = []

    def closure():
        opt.zero_grad()
        loss = _rosenbrock(lib, xy)
        loss.backward()
        losses.append(loss.item())
        return loss

    for _ in range(steps):
        opt.step(closure)
    return np.array(losses), xy.detach().numpy().copy(), opt


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_rosenbrock_losses_and_path_equal_torchs(torch, config):
    ours, xy, _ = _run_rosenbrock(mg, config, 2)
    theirs, xy_torch, _ = _run_rosenbrock(torch, config, 2)
    assert len(ours) == len(theirs)
    # torch's add_(other, alpha) rounds other·alpha + self once (a fused multiply-add) and its dot of two
    # elements rounds otherwise than NumPy's: the paths part in the last bits after 8 evaluations, and
    # Rosenbrock's valley amplifies that to ~1e-8 by the end of the second step
    np.testing.assert_allclose(ours[:8], theirs[:8], rtol=1e-15)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(xy, xy_torch, rtol=0, atol=1e-8)


def test_rosenbrock_float32_as_torchs(torch):
    for config in ({}, {"line_search_fn": "strong_wolfe"}):
        ours, xy, opt = _run_rosenbrock(mg, config, 1, np.float32)
        theirs, xy_torch, _ = _run_rosenbrock(torch, config, 1, np.float32)
        assert len(ours) == len(theirs) and xy.dtype == np.float32
        np.testing.assert_allclose(ours[:8], theirs[:8], rtol=1e-6)
        np.testing.assert_allclose(ours, theirs, rtol=2e-2)  # float32 round-off, amplified as above
        np.testing.assert_allclose(xy, xy_torch, atol=1e-3)
        assert opt.state[opt.param_groups[0]["params"][0]]["d"].dtype == np.float32


def test_the_line_search_reaches_the_minimum():
    losses, xy, opt = _run_rosenbrock(mg, {"line_search_fn": "strong_wolfe"}, 5)
    np.testing.assert_allclose(xy, [1.0, 1.0], atol=1e-4)  # from (-1.5, 1.5), where the loss is 62.5
    assert losses[-1] < 1e-9
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert state["func_evals"] == len(losses) and state["n_iter"] >= 20


# ----- an LSTM regression, torch's time-sequence example in small -----------------------------------------------
def _sequence_model(lib, rng):
    cell, head = lib.nn.LSTMCell(1, 6).double(), lib.nn.Linear(6, 1).double()
    with lib.no_grad():
        for p in list(cell.parameters()) + list(head.parameters()):
            p.copy_(lib.tensor(rng.uniform(-0.4, 0.4, tuple(p.shape))))
    return cell, head


def _predict(lib, cell, head, x):
    h = c = lib.zeros(x.size(0), 6, dtype=lib.float64)
    outputs = []
    for x_t in x.split(1, dim=1):
        h, c = cell(x_t, (h, c))
        outputs.append(head(h))
    return lib.stack(outputs, 1).squeeze(2)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_an_lstm_regression_reaches_torchs_losses(torch, line_search_fn):
    t = np.arange(21) / 4.0 + np.arange(5)[:, None]
    data = np.sin(t)
    results = []
    for lib in (mg, torch):
        cell, head = _sequence_model(lib, np.random.default_rng(0))
        x, y = lib.tensor(data[:, :-1]), lib.tensor(data[:, 1:])
        opt = lib.optim.LBFGS(list(cell.parameters()) + list(head.parameters()), lr=0.8,
                              line_search_fn=line_search_fn)
        losses = []

        def closure(lib=lib, cell=cell, head=head, x=x, y=y, opt=opt, losses=losses):
            opt.zero_grad()
            loss = lib.nn.functional.mse_loss(_predict(lib, cell, head, x), y)
            loss.backward()
            losses.append(loss.item())
            return loss

        for _ in range(2):
            opt.step(closure)
        results.append(np.array(losses))
    ours, theirs = results
    assert len(ours) == len(theirs) and ours[-1] < 0.2 * ours[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


# ----- state, stopping rules, all-or-nothing --------------------------------------------------------------------
def test_state_dict_through_save_and_load_continues_as_if_uninterrupted(tmp_path):
    _, _, opt = _run_rosenbrock(mg, {"history_size": 3}, 1)
    xy = opt.param_groups[0]["params"][0]
    mg.save({"opt": opt.state_dict(), "xy": xy.detach()}, tmp_path / "ck.npz")
    closure_loss = lambda: (opt.zero_grad(), _rosenbrock(mg, xy).backward())  # noqa: E731

    def closure():
        closure_loss()
        return _rosenbrock(mg, xy)

    opt.step(closure)
    expected = xy.detach().numpy().copy()
    saved = mg.load(tmp_path / "ck.npz")
    resumed = mg.tensor(saved["xy"], requires_grad=True)
    opt2 = optim.LBFGS([resumed], history_size=3)
    opt2.load_state_dict(saved["opt"])

    def closure2():
        opt2.zero_grad()
        loss = _rosenbrock(mg, resumed)
        loss.backward()
        return loss

    opt2.step(closure2)
    np.testing.assert_array_equal(resumed.detach().numpy(), expected)
    assert sorted(opt2.state_dict()["state"][0]) == sorted(opt.state_dict()["state"][0])


def test_state_keys_are_torchs(torch):
    ours = _run_rosenbrock(mg, {}, 1)[2].state_dict()
    theirs = _run_rosenbrock(torch, {}, 1)[2].state_dict()
    assert sorted(ours["state"][0]) == sorted(theirs["state"][0])
    assert sorted(ours["param_groups"][0]) == sorted(theirs["param_groups"][0])
    assert ours["param_groups"][0]["max_eval"] == theirs["param_groups"][0]["max_eval"] == 25
    for name, value in theirs["param_groups"][0].items():  # every default as torch's
        assert ours["param_groups"][0][name] == value, name


@pytest.mark.parametrize("slope, tolerance_grad", [(0.0, 1e-7), (0.5, 0.5)])
def test_a_gradient_within_tolerance_stops_after_one_evaluation(slope, tolerance_grad):
    w = mg.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = optim.LBFGS([w], tolerance_grad=tolerance_grad)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (w * slope).sum()  # max |g| = slope: at the tolerance counts as within it, as in torch
        loss.backward()
        calls.append(1)
        return loss

    assert opt.step(closure).item() == -slope
    assert len(calls) == 1 and w.tolist() == [1.0, -2.0]
    assert opt.state[w] == {"func_evals": 1, "n_iter": 0}


class Interrupted(BaseException):
    pass


@pytest.mark.parametrize("fail_at", [1, 2, 3])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("set_to_none", [True, False])  # new gradient tensors, or the same ones zeroed in place
def test_a_closure_that_raises_changes_nothing(fail_at, line_search_fn, set_to_none):
    lin = nn.Linear(3, 2).double()
    x, y = mg.tensor(np.random.default_rng(1).standard_normal((5, 3))), mg.tensor(np.ones((5, 2)))
    opt = optim.LBFGS(lin.parameters(), max_iter=3, line_search_fn=line_search_fn)
    calls, armed = [], []

    def closure():
        calls.append(1)
        opt.zero_grad(set_to_none=set_to_none)
        loss = ((lin(x) - y) ** 2).mean()
        loss.backward()
        if armed and len(calls) == fail_at:
            raise Interrupted  # a BaseException, as KeyboardInterrupt is
        return loss

    opt.step(closure)  # unarmed: a state to keep
    calls.clear()
    armed.append(True)
    before = ([p.detach().numpy().copy() for p in lin.parameters()], [p.grad.numpy().copy() for p in lin.parameters()],
              opt.state_dict())
    grads = [p.grad for p in lin.parameters()]
    with pytest.raises(Interrupted):
        opt.step(closure)
    assert len(calls) == fail_at
    for p, data, grad, grad_tensor in zip(lin.parameters(), before[0], before[1], grads):
        np.testing.assert_array_equal(p.detach().numpy(), data)
        np.testing.assert_array_equal(p.grad.numpy(), grad)
        assert p.grad is grad_tensor
    after = opt.state_dict()["state"][0]
    assert sorted(after) == sorted(before[2]["state"][0])
    for key, value in before[2]["state"][0].items():
        if isinstance(value, list):
            assert len(after[key]) == len(value)
            for a, b in zip(after[key], value):
                np.testing.assert_array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
        else:
            np.testing.assert_array_equal(after[key], value)


@pytest.mark.parametrize("kwargs, error", [({"lr": -1.0}, ValueError), ({"max_iter": 0}, ValueError),
                                           ({"max_iter": None}, TypeError),
                                           ({"history_size": 0}, ValueError), ({"max_eval": 1.5}, TypeError),
                                           ({"tolerance_grad": float("nan")}, ValueError),
                                           ({"line_search_fn": "armijo"}, ValueError)])
def test_bad_arguments_are_refused_naming_them(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        optim.LBFGS([mg.zeros(2, requires_grad=True)], **kwargs)


def test_two_groups_are_refused_as_by_torch(torch):
    for lib in (mg, torch):
        a, b = lib.zeros(2, requires_grad=True), lib.zeros(2, requires_grad=True)
        with pytest.raises(ValueError, match="parameter groups"):
            lib.optim.LBFGS([{"params": [a]}, {"params": [b], "lr": 0.1}])
    a, b = mg.zeros(2, requires_grad=True), mg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="parameter groups"):  # torch takes it, and its step ignores the group
        optim.LBFGS([a]).add_param_group({"params": [b]})


def test_a_state_of_the_wrong_length_is_refused_and_nothing_changes():
    _, _, opt = _run_rosenbrock(mg, {}, 1)
    state = opt.state_dict()
    bad = opt.state_dict()
    bad["state"][0]["d"] = np.zeros(3)
    with pytest.raises(ValueError, match="'d'"):
        opt.load_state_dict(bad)
    np.testing.assert_array_equal(opt.state_dict()["state"][0]["d"], state["state"][0]["d"])
    bad["state"][0] = {"step": 1, "exp_avg": np.zeros(2)}
    with pytest.raises(ValueError, match="another optimizer"):
        opt.load_state_dict(bad)


def test_step_needs_a_closure_and_floating_parameters():
    opt = optim.LBFGS([mg.zeros(2, requires_grad=True)])
    with pytest.raises(TypeError):
        opt.step(None)
    p = mg.zeros(2, requires_grad=True)
    opt = optim.LBFGS([p])
    p.data = np.zeros(2, dtype=np.int64)
    with pytest.raises(TypeError, match="floating"):
        opt.step(lambda: mg.tensor(0.0))


def test_a_read_only_parameter_is_refused_before_the_closure_runs():
    a, b = mg.ones(2, requires_grad=True), mg.ones(3, requires_grad=True)
    b.data = np.ones(3)
    b._data.flags.writeable = False
    opt = optim.LBFGS([a, b])
    calls = []
    with pytest.raises(ValueError, match=r"params\[1\].*read-only"):
        opt.step(lambda: calls.append(1))
    assert calls == [] and a.tolist() == [1.0, 1.0] and opt.state == {}


# ----- the line search's pieces against torch's own --------------------------------------------------------------
def test_cubic_interpolation_equals_torchs(torch):
    from torch.optim.lbfgs import _cubic_interpolate as theirs

    from minigrad.optim.lbfgs import _cubic_interpolate as ours

    rng = np.random.default_rng(0)
    cases = [(0.0, 0.0, -2.0, 1.0, -0.5, -0.5, None),  # d1² - g1·g2 is exactly 0: the cubic's minimum, not the midpoint
             (1.0, -0.5, -0.5, 0.0, 0.0, -2.0, None), (0.5, 1.0, 3.0, 1.5, 2.0, 1.0, (0.6, 1.2))]
    for _ in range(400):
        x1, x2, f1, f2, g1, g2 = rng.normal(size=6) * [1, 1, 1, 1, 3, 3]
        bounds = None if rng.random() < 0.5 else tuple(sorted(rng.uniform(-3, 3, 2)))
        cases.append((x1, f1, g1, x2, f2, g2, bounds))
    for x1, f1, g1, x2, f2, g2, bounds in cases:
        expected = float(theirs(x1, f1, torch.tensor(g1, dtype=torch.float64), x2, f2,
                                torch.tensor(g2, dtype=torch.float64), bounds=bounds))
        assert float(ours(x1, f1, np.float64(g1), x2, f2, np.float64(g2), bounds=bounds)) == pytest.approx(
            expected, rel=1e-12, abs=1e-12)


def _line_searches(torch, evaluator, t0, d, f, g, **options):
    """Ours and torch's _strong_wolfe from loss f and gradient g along direction d, each given its own
    `evaluator()` (a function of the step t giving the loss and the gradient array there). Returns both results
    as (loss, gradient array, step, evaluations)."""
    from torch.optim.lbfgs import _strong_wolfe as theirs

    from minigrad.optim.lbfgs import _strong_wolfe as ours

    def as_torch(a):
        return torch.tensor(a, dtype=torch.float64)

    ours_evaluate, theirs_evaluate = evaluator(), evaluator()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = ours(ours_evaluate, t0, d, f, g, g.dot(d), **options)
    expected = theirs(lambda _, t, direction: (lambda value, grad: (value, as_torch(grad)))(*theirs_evaluate(float(t))),
                      None, t0, as_torch(d), f, as_torch(g), as_torch(g.dot(d)), **options)
    return ((float(out[0]), np.asarray(out[1]), float(out[2]), out[3]),
            (float(expected[0]), expected[1].numpy(), float(expected[2]), expected[3]))


def _quartic(rng):
    """A non-convex quartic in 3 dimensions, a point, and a descent direction there."""
    a, b, c = rng.uniform(0.5, 2, 3), rng.uniform(0, 3, 3), rng.normal(size=3)
    x = rng.normal(size=3)

    def value_and_grad(z):
        return float(np.sum(a * z ** 4 - b * z ** 2 + c * z)), 4 * a * z ** 3 - 2 * b * z + c

    g = value_and_grad(x)[1]
    return value_and_grad, x, -g * rng.uniform(0.5, 2, 3)  # within 90° of -g: a descent direction


@pytest.mark.parametrize("seed", [*range(80), 10479, 12838, 100007, 102791, 102832])  # found to tell mutants apart
def test_the_strong_wolfe_line_search_equals_torchs(torch, seed):
    """Random non-convex problems, first trial steps from 1e-3 to 1e3, strict and loose curvature conditions and
    tolerances, and fewer allowed evaluations than it wants: the search extrapolates, brackets, zooms, moves points
    off the bracket's ends and stops on a bracket narrower than the tolerance."""
    rng = np.random.default_rng(seed)
    value_and_grad, x, d = _quartic(rng)
    t0 = 10.0 ** rng.uniform(-3, 3)
    options = dict(max_ls=int(rng.choice([25, 25, 3, 1])), c2=float(rng.choice([0.9, 0.1, 1e-3])),
                   tolerance_change=float(rng.choice([1e-9, 1e-3, 0.1])))
    if options["max_ls"] == 25 and seed % 2:
        del options["max_ls"]  # the default, 25 in both
    ours_out, theirs_out = _line_searches(torch, lambda: lambda t: value_and_grad(x + t * d), t0, d,
                                          *value_and_grad(x), **options)
    assert ours_out[3] == theirs_out[3]  # the same number of evaluations
    np.testing.assert_allclose(ours_out[2], theirs_out[2], rtol=1e-9)  # the step
    np.testing.assert_allclose(ours_out[0], theirs_out[0], rtol=1e-9, atol=1e-12)  # its loss
    np.testing.assert_allclose(ours_out[1], theirs_out[1], rtol=1e-9, atol=1e-12)


def test_a_first_trial_meeting_the_curvature_condition_exactly_is_taken(torch):
    """phi(t) = -t + 0.75 t², so phi'(1) = 0.5 = c2·|phi'(0)| exactly: the strong Wolfe conditions hold at t = 1
    (at the bound, which counts), and both searches stop there after one evaluation."""
    out, expected = _line_searches(torch, lambda: lambda t: (float(-t + 0.75 * t ** 2), np.array([-1.0 + 1.5 * t])),
                                   1.0, np.array([1.0]), 0.0, np.array([-1.0]), c2=0.5)
    assert (out[2], out[3]) == (expected[2], expected[3]) == (1.0, 1)


# ----- torch's thresholds, each at its boundary -------------------------------------------------------------------
def _one_weight_run(lib, loss_of, w0, steps=1, **config):
    """LBFGS on one weight: (weights after each step, the state's counters and pair count, versions)."""
    w = lib.tensor(np.array(w0, dtype=np.float64).reshape(-1), requires_grad=True)
    opt = lib.optim.LBFGS([w], **config)

    def closure():
        opt.zero_grad()
        loss = loss_of(w).sum()
        loss.backward()
        return loss

    path = []
    for _ in range(steps):
        opt.step(closure)
        path.append(w.detach().numpy().copy())
    state = opt.state[w] if lib is mg else opt.state[opt.param_groups[0]["params"][0]]
    return np.array(path), (state["func_evals"], state["n_iter"], len(state.get("old_dirs") or ())), w._version


BOUNDARY_CASES = {
    # y·s = 0.125·w0² is exactly 1e-10 at the second iteration: the pair is not kept (the test is y·s > 1e-10)
    "curvature-pair-at-1e-10": (lambda w: 0.25 * w * w, 2.8284271247461902e-05, dict(max_iter=3, tolerance_change=0.0)),
    # g·d = -0.25 = -tolerance_change at the first iteration: still a descent direction (the test is g·d > -tol)
    "descent-at-the-tolerance": (lambda w: 0.5 * w, 1.0, dict(max_iter=1, tolerance_change=0.25)),
    # after one step max|g| = 0.25 = tolerance_grad: optimal (the test is max|g| <= tol), in both modes
    "gradient-at-the-tolerance": (lambda w: 0.25 * w * w, 1.0, dict(max_iter=3, tolerance_grad=0.25)),
    "gradient-at-the-tolerance-line-search": (lambda w: 0.25 * w * w, 1.0, dict(max_iter=3, tolerance_grad=0.25,
                                                                                 line_search_fn="strong_wolfe")),
    # max|d·t| = 0.25 = tolerance_change after the first step: too small a step to go on (the test is <=)
    "step-at-the-tolerance": (lambda w: 2 * w, 1.0, dict(lr=0.25, max_iter=3, tolerance_change=0.25)),
    # the loss falls from 0.5 to 0.125 at the first step: a change of exactly tolerance_change goes on (the test is
    # <), one below it stops
    "loss-change-at-the-tolerance": (lambda w: 0.5 * w * w, 1.0, dict(lr=0.5, max_iter=3, tolerance_change=0.375)),
    "loss-change-below-the-tolerance": (lambda w: 0.5 * w * w, 1.0, dict(lr=0.5, max_iter=3, tolerance_change=0.4)),
    # the step is judged by its largest component: one that does not move does not stop the others
    "a-still-component": (lambda w: (w[:1] - 3) ** 2 + 0 * w[1:], [1.0, 0.0], dict(max_iter=3)),
    # |g|₁ < 1: the first step is lr itself, not lr/|g|₁
    "small-first-gradient": (lambda w: 0.05 * w * w, 1.0, dict(max_iter=2)),
    "line-search-counts": (lambda w: (w - 2) ** 4 + w, 0.3, dict(max_iter=4, line_search_fn="strong_wolfe")),
}


@pytest.mark.parametrize("name", sorted(BOUNDARY_CASES))
def test_thresholds_at_their_boundaries_as_torchs(torch, name):
    loss_of, w0, config = BOUNDARY_CASES[name]
    ours = _one_weight_run(mg, loss_of, w0, steps=2, **config)
    theirs = _one_weight_run(torch, loss_of, w0, steps=2, **config)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    assert ours[1:] == theirs[1:]  # evaluations, iterations, pairs kept, and the parameter's version counter


def test_an_optimum_needs_every_gradient_small_not_one():
    """max |g| decides: a zero component next to a large one does not stop the step."""
    w = mg.tensor(np.array([1.0, 0.0]), requires_grad=True)
    opt = optim.LBFGS([w], max_iter=1)

    def closure():
        opt.zero_grad()
        loss = (w[0] - 3.0) ** 2 + 0 * w[1]
        loss.backward()
        return loss

    opt.step(closure)
    assert w[0].item() > 1.0 and w[1].item() == 0.0


def test_a_step_bumps_the_version_so_a_saved_graph_notices(torch):
    for lib in (mg, torch):
        w = lib.tensor(np.array([1.0, 2.0]), requires_grad=True)
        saved = (w * w).sum()
        opt = lib.optim.LBFGS([w], max_iter=1)

        def closure(w=w, opt=opt):
            opt.zero_grad()
            loss = (w ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            saved.backward()


def _compare_line_search(torch, phi, t0, **options):
    """ours and torch's _strong_wolfe on phi(t) (value, slope) from t = 0 along d = [1]: step, loss, evaluations."""
    def evaluate(t):
        value, slope = phi(float(t))
        return value, np.array([slope])

    out, expected = _line_searches(torch, lambda: evaluate, t0, np.array([1.0]), *evaluate(0.0), **options)
    assert out[3] == expected[3]
    np.testing.assert_allclose([out[2], out[0]], [expected[2], expected[0]], rtol=1e-12)
    return out


def test_line_search_conditions_at_their_bounds_as_torchs(torch):
    # phi(1) = -0.5 is exactly on the sufficient-decrease line f + c1·t·g for c1 = 0.5: accepted (the test is >)
    assert _compare_line_search(torch, lambda t: (-t + t * t / 2, -1 + t), 1.0, c1=0.5)[3] == 1
    # phi(0.5) = -0.25 lies above the line f + c1·t·g = -0.45: bracketed and zoomed, although phi'(0.5) = 0
    assert _compare_line_search(torch, lambda t: (-t + t * t, -1 + 2 * t), 0.5, c1=0.9)[3] > 1
    # a third trial at the same loss as the second (a plateau between -t and 9 - t): bracketed there (>=)
    _compare_line_search(torch, lambda t: (-t, -1.0) if t <= 1 else (9 - t, -1.0), 0.1)
    # a curvature condition too strict to meet and no tolerance: the search runs to its default limit of 25
    # iterations after the first trial, and its bracket shrinks to width 0 on the way (a NaN interpolation, which
    # falls back to the midpoint as torch's does)
    assert _compare_line_search(torch, lambda t: ((t - 1) ** 2 - 1, 2 * (t - 1)), 0.3, c2=1e-300,
                                tolerance_change=0.0)[3] == 26


def _scripted(script):
    """An evaluation that ignores the step and gives the script's next (loss, [slope])."""
    pairs = iter(script)
    return lambda t: (lambda value, slope: (value, np.array([slope])))(*next(pairs))


def _compare_scripted(torch, script, t0, slope, direction=1.0, **options):
    """Both line searches as black boxes fed the same script of (loss, gradient) pairs, one per evaluation, from
    loss 0 and gradient `slope` along d = [direction]: a script reaches exact ties, NaNs and underflows that a
    smooth function rarely does. Asserts the same loss, gradient, step and evaluations, to the bit."""
    out, expected = _line_searches(torch, lambda: _scripted(script), t0, np.array([direction]), 0.0,
                                   np.array([slope]), **options)
    np.testing.assert_equal((out[0], out[1][0], out[2], out[3]), (expected[0], expected[1][0], expected[2],
                                                                  expected[3]))


SCRIPTS = {
    # the bracket [0, 10] interpolates to t = 1.0, exactly eps = 0.1·10 from its end: not "too near" (the test is
    # < eps), so the next point near an end is only flagged, not moved: it is taken at 0.0779..., not at 0.1
    "a-point-exactly-eps-from-the-end": ([(6.0, -1.8), (1.0, -2.0), (-0.25, 0.0)], 10.0, -1.0, 1.0,
                                         dict(c1=0.5, tolerance_change=0.1)),
    # denormal slopes: the new slope times the bracket's width (-1e-323 · 0.2) underflows to -0.0, which counts as
    # pointing away (>= 0), so the bracket's high end moves to its low end
    "an-underflowing-slope-product": ([(1.0, 1.0), (-1.0, -1e-323), (-2.0, 0.0), (-3.0, 0.0)], 0.2, -5e-324, 1.0, {}),
    # a NaN slope at the start fails both conditions; a zero slope at the first trial brackets (>= 0)
    "a-nan-first-slope": ([(-1.0, 0.0), (-2.0, 0.0), (-3.0, 0.0), (-4.0, 0.0)], 1.0, float("nan"), 1.0,
                          dict(max_ls=2)),
    # the first trial is lower but its slope points away: bracketed with the low end at the trial (index 1)
    "low-end-at-the-trial": ([(-0.75, 0.25), (-0.5, 0.5), (-0.75, -2.0), (-1.0, 0.25)], 0.5, -2.0, 1.0,
                             dict(c2=0.1, max_ls=4, tolerance_change=0.1)),
    # a zoom point meeting sufficient decrease and the curvature condition stops at once
    "zoom-meets-curvature": ([(0.5, 1.0), (-2.0, 1.0), (1.0, -0.5), (-1.5, -2.0)], 2.0, -2.0, 4.0,
                             dict(c1=0.25, c2=0.5, max_ls=4, tolerance_change=0.1)),
    # out of evaluations while extrapolating: the bracket is [0, t], and the zoom does not run
    "out-of-evaluations": ([(-0.25, -0.5), (-2.0, -0.25), (0.5, -0.5), (1.0, 0.0), (-1.5, 1.0)], 1.0, -2.0, 0.5,
                           dict(c2=0.1, max_ls=2)),
    # a zoom point exactly on the sufficient-decrease line f + c1·t·gtd is accepted (the test is >)
    "zoom-on-the-decrease-line": ([(0.0, 1.0), (-0.5, -0.25), (-1.5, 0.0), (-1.0, -2.0)], 0.5, -1.0, 4.0,
                                  dict(c1=0.5, c2=0.5, max_ls=4)),
    "zoom-above-the-decrease-line": ([(0.0, -2.0), (-0.75, -0.5), (-2.0, -1.0), (-0.5, 0.5), (0.0, -0.5)], 1.0, -2.0,
                                     4.0, dict(c1=0.5, c2=0.5, max_ls=4)),
    # steps near the largest float, a NaN loss at the first trial: the midpoint of [8.75e307, 1e308] overflows to
    # inf, which is as far from both ends (a tie of two infinities): it moves to the low end + eps, as torch's does
    "an-overflowing-midpoint": ([(float("nan"), 1.0), (0.5, 2.0), (-0.5, 5e-324), (0.0, 0.5), (0.5, 0.0),
                                 (float("nan"), 0.0), (-0.5, 1.0), (-float("inf"), 5e-324), (-2.0, 2.0)], 1e308, -1.0,
                                1e-300, dict(tolerance_change=0.0)),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripted_line_searches_as_torchs(torch, name):
    script, t0, slope, direction, options = SCRIPTS[name]
    _compare_scripted(torch, script, t0, slope, direction, **options)


def test_a_saved_history_of_the_wrong_length_is_refused():
    _, _, opt = _run_rosenbrock(mg, {"history_size": 3}, 1)
    bad = opt.state_dict()
    bad["state"][0]["old_dirs"] = [np.zeros(5)]
    with pytest.raises(ValueError, match="old_dirs"):
        opt.load_state_dict(bad)
