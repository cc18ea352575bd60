"""GradNormMonitor: per-step total and per-parameter norms, quantiles, the suggested max_norm, the figure,
and its state."""
import math
import pickle

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim


# ----- the monitor ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("buffered", [False, True])
@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
def test_monitor_per_parameter_norms_combine_to_the_total(buffered, p):
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    if buffered:
        nn.utils.GradBuffer(model.parameters())
    monitor = nn.utils.GradNormMonitor(model, norm_type=p)
    rng = np.random.default_rng(0)
    for _ in range(5):
        model.zero_grad()
        model(mg.tensor(rng.standard_normal((8, 4)))).pow(2).sum().backward()
        total = monitor.record()
        grads = [q.grad.numpy() for q in model.parameters()]
        np.testing.assert_allclose(total, float(np.linalg.norm(np.concatenate([g.ravel() for g in grads]), p)),
                                   rtol=1e-12)
        last = {name: series[-1] for name, series in monitor.norms.items()}
        for (name, _), g in zip(model.named_parameters(), grads):
            np.testing.assert_allclose(last[name], np.linalg.norm(g.ravel(), p), rtol=1e-12)
    assert monitor.steps == 5 and list(monitor.norms) == [n for n, _ in model.named_parameters()]
    np.testing.assert_allclose(monitor.suggest_max_norm(), np.quantile(monitor.total, 0.9), rtol=1e-12)
    state = pickle.loads(pickle.dumps(monitor.state_dict()))
    twin = nn.utils.GradNormMonitor(model, norm_type=p)
    twin.load_state_dict(state)
    np.testing.assert_array_equal(twin.total, monitor.total)


def test_monitor_quantiles_summary_one_parameter_buffer_and_restored_norm_type():
    """Edges beside the combining test: quantile 0 is the smallest norm (and 1 the largest); the summary has a line
    per parameter with its median; a GradBuffer of one parameter; load_state_dict restores the saved norm order."""
    p = nn.Parameter(np.zeros(4))
    nn.utils.GradBuffer([p])
    monitor = nn.utils.GradNormMonitor([("w", p)], norm_type=1.0)
    seen = []
    for k in range(1, 6):
        p.grad = np.full(4, float(k))
        seen.append(monitor.record())
    assert seen == [4.0 * k for k in range(1, 6)]
    assert monitor.quantiles([0.0, 1.0]) == {0.0: 4.0, 1.0: 20.0}
    assert monitor.summary().splitlines()[1].split() == ["w", "median", "12", "max", "20"]
    twin = nn.utils.GradNormMonitor([("w", p)], norm_type=2.0)
    twin.load_state_dict(monitor.state_dict())
    assert twin.norm_type == 1.0 and twin.record() == 20.0


def test_monitor_plot_draws_the_recorded_norms_and_the_suggestion(tmp_path):
    """The figure read back: the total and per-parameter norms as recorded (a zero norm as a gap), a histogram of
    every finite positive total, a dotted line at each positive quantile, the suggestion in red, the legend only
    up to 12 parameters; pyplot's figure list is not touched, and a file is written."""
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
    import matplotlib.pyplot as plt

    params = [nn.Parameter(np.zeros(2)) for _ in range(12)]
    monitor = nn.utils.GradNormMonitor([(f"p{i}", p) for i, p in enumerate(params)])
    rng = np.random.default_rng(0)
    for step in range(9):
        for k, p in enumerate(params):
            p.grad = np.zeros(2) if (step < 5 or k == 0) else rng.standard_normal(2) * 10.0 ** (step % 3 - 3)
        monitor.record()
    open_before = plt.get_fignums()
    fig = monitor.plot(str(tmp_path / "norms.png"))
    assert (tmp_path / "norms.png").stat().st_size > 10_000 and plt.get_fignums() == open_before
    total_ax, part_ax, hist_ax = fig.axes
    np.testing.assert_array_equal(total_ax.lines[0].get_ydata(), monitor.total)
    assert total_ax.get_yscale() == part_ax.get_yscale() == "log"
    assert [ln.get_label() for ln in part_ax.lines] == [f"p{i}" for i in range(12)]
    for line, series in zip(part_ax.lines, monitor.norms.values()):
        np.testing.assert_array_equal(line.get_ydata(), np.where(series > 0, series, np.nan))
    assert part_ax.get_legend() is not None
    assert sum(patch.get_height() for patch in hist_ax.patches) == 4  # the five zero totals are left out
    quantiles = [v for v in monitor.quantiles().values() if v > 0]
    assert min(monitor.quantiles().values()) == 0.0 and len(quantiles) < 4  # a zero quantile: no line
    dotted = [ln.get_xdata()[0] for ln in hist_ax.lines if ln.get_linestyle() == ":"]
    np.testing.assert_allclose(dotted, np.log10(quantiles))
    red = [ln for ln in hist_ax.lines if ln.get_color() == "red"]
    assert len(red) == 1 and red[0].get_xdata()[0] == pytest.approx(math.log10(monitor.suggest_max_norm()))
    assert "suggested max_norm" in hist_ax.get_legend().get_texts()[0].get_text()
    assert [ax.get_title() for ax in fig.axes] == ["total gradient norm", "per-parameter gradient norm",
                                                   "log10 total norm"]
    params.append(nn.Parameter(np.ones(2)))
    params[-1].grad = np.ones(2)
    crowded = nn.utils.GradNormMonitor([(f"p{i}", p) for i, p in enumerate(params)])
    crowded.record()
    assert crowded.plot(str(tmp_path / "crowded.png")).axes[1].get_legend() is None  # 13 names: no legend
    empty = nn.utils.GradNormMonitor([("w", nn.Parameter(np.zeros(2)))])
    assert len(empty.plot(str(tmp_path / "empty.png")).axes[2].patches) == 0  # nothing recorded: no histogram


def test_monitor_refuses_order_zero_and_counts_a_missing_gradient_as_zero():
    with pytest.raises(ValueError, match="norm_type"):
        nn.utils.GradNormMonitor(nn.Linear(2, 2), norm_type=0)
    a, b = nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(2))
    a.grad = np.array([3.0, 4.0, 0.0])
    monitor = nn.utils.GradNormMonitor([("a", a), ("b", b)])
    assert monitor.record() == 5.0
    assert monitor.norms["b"].tolist() == [0.0]


def test_monitor_keeps_float64_norms_through_state_dict_and_checks_what_it_loads():
    w = nn.Parameter(np.zeros(1))
    monitor = nn.utils.GradNormMonitor([("w", w)])
    w.grad = np.array([1.0 + 1e-12])
    assert monitor.record() == 1.0 + 1e-12 and monitor.total[0] == 1.0 + 1e-12  # not rounded to float32
    assert monitor.quantiles([0.5]) == {0.5: 1.0 + 1e-12}  # one finite norm is enough
    with pytest.raises(ValueError, match="quantiles must lie in"):
        monitor.quantiles([1.5])
    twin = nn.utils.GradNormMonitor([("w", w)])
    twin.load_state_dict(monitor.state_dict())
    assert twin.total[0] == 1.0 + 1e-12 and twin.norms["w"][0] == 1.0 + 1e-12
    bad = {**monitor.state_dict(), "total": np.ones((1, 1))}
    with pytest.raises(ValueError, match="inconsistent shapes"):
        twin.load_state_dict(bad)


def test_monitor_sees_a_gradient_clipped_by_a_deferred_clip():
    """With a GradBuffer whose fused optimizer defers the clip, the per-parameter norms are those of the
    clipped gradients (the buffer settles its pending coefficient before they are read)."""
    params = [nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(4))]
    nn.utils.GradBuffer(params)
    opt = optim.SGD(params, lr=0.1, fused=True)
    for p in params:
        p.grad.data[...] = 1.0
    opt.step()  # the optimizer becomes the buffer's consumer
    for p in params:
        p.grad.data[...] = 3.0
    nn.utils.clip_grad_norm_(params, 1.0)
    monitor = nn.utils.GradNormMonitor([("a", params[0]), ("b", params[1])])
    total = monitor.record()
    np.testing.assert_allclose(total, 1.0 / (1 + 1e-6 / math.sqrt(63)), rtol=1e-9)
    np.testing.assert_allclose(monitor.norms["a"][0], math.sqrt(3 / 7) * total, rtol=1e-9)
