"""Learning-rate schedulers: torch's values step for step, resuming, ReduceLROnPlateau, argument checks."""
import pickle

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim

# ----- torch's schedules ----------------------------------------------------------------------------------------------


def test_schedulers_resume_from_last_epoch_and_count_epochs():
    """Resuming needs `initial_lr` in every group (torch's KeyError); a resumed schedule counts on from
    last_epoch and keeps the group's rate at construction; ReduceLROnPlateau counts epochs and wants an
    optimizer."""
    p = nn.Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, last_epoch=3)
    opt.param_groups[0]["initial_lr"] = 0.1
    opt.param_groups[0]["lr"] = 0.05
    cosine = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.01, last_epoch=3)
    assert opt.param_groups[0]["lr"] == 0.05 and cosine.last_epoch == 4
    plateau = optim.lr_scheduler.ReduceLROnPlateau(optim.SGD([p], lr=0.1))
    for m in (1.0, 0.5, 0.7):
        plateau.step(m)
    assert plateau.last_epoch == 3
    with pytest.raises(TypeError, match="not an Optimizer"):
        optim.lr_scheduler.ReduceLROnPlateau([p])


def test_schedulers_take_positive_int_periods_only():
    opt = optim.SGD([mg.zeros(2, requires_grad=True)], lr=0.1)
    optim.lr_scheduler.StepLR(opt, step_size=1)
    optim.lr_scheduler.MultiStepLR(optim.SGD([mg.zeros(2, requires_grad=True)], lr=0.1), milestones=[1, 3])
    optim.lr_scheduler.CosineAnnealingLR(optim.SGD([mg.zeros(2, requires_grad=True)], lr=0.1), T_max=1)
    for bad in (0, -2, True, 2.0, "3", None):
        with pytest.raises(ValueError, match="step_size must be a positive int"):
            optim.lr_scheduler.StepLR(opt, step_size=bad)


def _two_group_optimizers(lib):
    a, b = lib.zeros(2, requires_grad=True), lib.zeros(3, requires_grad=True)
    return lib.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)


SCHEDULERS = {
    "StepLR": lambda s, o: s.StepLR(o, step_size=3),  # torch's default gamma 0.1
    "MultiStepLR": lambda s, o: s.MultiStepLR(o, milestones=[2, 5, 5, 9]),
    "ExponentialLR": lambda s, o: s.ExponentialLR(o, gamma=0.7),
    "CosineAnnealingLR": lambda s, o: s.CosineAnnealingLR(o, T_max=4, eta_min=0.01),  # past T_max: back up
    "LambdaLR": lambda s, o: s.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1.0 / (e + 1)]),
    "LambdaLR-one": lambda s, o: s.LambdaLR(o, lambda e: 0.5 ** e),  # one function for every group
    "CosineAnnealingLR-default": lambda s, o: s.CosineAnnealingLR(o, T_max=3),  # eta_min 0
    "StepLR-half": lambda s, o: s.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR-0.3": lambda s, o: s.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "ExponentialLR-0.9": lambda s, o: s.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR-7": lambda s, o: s.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "LambdaLR-harmonic": lambda s, o: s.LambdaLR(o, lambda e: 1.0 / (1 + e)),
    "ConstantLR": lambda s, o: s.ConstantLR(o),  # factor 1/3 for 5 epochs
    "ConstantLR-0.5-3": lambda s, o: s.ConstantLR(o, factor=0.5, total_iters=3),
    "LinearLR-warm-up": lambda s, o: s.LinearLR(o, start_factor=0.1, total_iters=6),
    "LinearLR-decay": lambda s, o: s.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=8),
    "ConstantLR-whole": lambda s, o: s.ConstantLR(o, factor=1.0, total_iters=0),
    "LinearLR-defaults": lambda s, o: s.LinearLR(o),
    "LinearLR-to-zero": lambda s, o: s.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=4),
    "CosineAnnealingWarmRestarts": lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=3, eta_min=0.01),
    "CosineAnnealingWarmRestarts-T_mult": lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_schedulers_follow_torch_for_twenty_epochs_on_two_groups(torch, name):
    """Two groups with different rates; 20 epochs (Cosine: five periods of T_max = 4), rates compared after
    every step."""
    ours, theirs = _two_group_optimizers(mg), _two_group_optimizers(torch)
    sm, st = SCHEDULERS[name](optim.lr_scheduler, ours), SCHEDULERS[name](torch.optim.lr_scheduler, theirs)
    np.testing.assert_allclose([g["lr"] for g in ours.param_groups], [g["lr"] for g in theirs.param_groups],
                               rtol=1e-12, err_msg=f"{name} at construction")
    for epoch in range(20):
        ours.step(), theirs.step()
        sm.step(), st.step()
        np.testing.assert_allclose([g["lr"] for g in ours.param_groups], [g["lr"] for g in theirs.param_groups],
                                   rtol=1e-12, err_msg=f"{name} epoch {epoch}")
        assert sm.get_last_lr() == pytest.approx(st.get_last_lr(), rel=1e-12)
        assert (sm.last_epoch, sm._step_count) == (st.last_epoch, st._step_count)


@pytest.mark.parametrize("last_epoch", [0, 7])
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_a_resumed_schedule_keeps_the_current_rates_and_then_follows_torch(torch, name, last_epoch):
    """Resumed (last_epoch >= 0) from groups whose current rate is not their initial_lr, as after loading a
    checkpoint: torch's constructor step leaves every rate as it is (its `_is_initial`), then each schedule goes
    on from there, following a rate changed from outside (epoch 2) where its form is chainable."""
    import warnings

    ours, theirs = _two_group_optimizers(mg), _two_group_optimizers(torch)
    for o in (ours, theirs):
        for g in o.param_groups:
            g["initial_lr"] = g["lr"] * 2.0
    sm = SCHEDULERS[name](_ResumedAt(optim.lr_scheduler, last_epoch), ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = SCHEDULERS[name](_ResumedAt(torch.optim.lr_scheduler, last_epoch), theirs)
    for epoch in range(6):
        np.testing.assert_allclose([g["lr"] for g in ours.param_groups], [g["lr"] for g in theirs.param_groups],
                                   rtol=1e-12, err_msg=f"{name} after {epoch} steps")
        if epoch == 2:
            ours.param_groups[0]["lr"] *= 0.5
            theirs.param_groups[0]["lr"] *= 0.5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm.step(), st.step()


class _ResumedAt:
    """A scheduler module whose classes are built with `last_epoch` given, for the factories in SCHEDULERS."""

    def __init__(self, module, last_epoch):
        self.module, self.last_epoch = module, last_epoch

    def __getattr__(self, name):
        cls = getattr(self.module, name)
        return lambda *args, **kwargs: cls(*args, last_epoch=self.last_epoch, **kwargs)


def _halving_scheduler(lib):
    """A user's own schedule on the base class, written the same way for both libraries."""
    class Halving(lib.optim.lr_scheduler.LRScheduler):
        def get_lr(self):
            return [g["lr"] * (0.5 if self.last_epoch > 0 else 1.0) for g in self.optimizer.param_groups]
    return Halving


def test_the_scheduler_base_class_checks_its_arguments_and_steps_as_torchs(torch):
    """Subclassing LRScheduler with only get_lr: the default last_epoch, the step counter and the rates follow
    torch's; last_epoch must be an int >= -1, and resuming (last_epoch >= 0, including 0) needs initial_lr."""
    ours, theirs = _two_group_optimizers(mg), _two_group_optimizers(torch)
    sm, st = _halving_scheduler(mg)(ours), _halving_scheduler(torch)(theirs)
    for _ in range(4):
        assert (sm.last_epoch, sm._step_count, sm.get_last_lr()) == (st.last_epoch, st._step_count,
                                                                      st.get_last_lr())
        sm.step(), st.step()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        _halving_scheduler(mg)([mg.zeros(2)])
    fresh = _two_group_optimizers(mg)
    for bad in (-2, True, 1.5):
        with pytest.raises(ValueError, match="last_epoch must be an int >= -1"):
            _halving_scheduler(mg)(fresh, last_epoch=bad)
    with pytest.raises(KeyError, match="initial_lr"):
        _halving_scheduler(mg)(fresh, last_epoch=0)
    for group in fresh.param_groups:
        group["initial_lr"] = group["lr"]
    assert _halving_scheduler(mg)(fresh, last_epoch=0).last_epoch == 1


def test_schedulers_reject_what_is_not_an_optimizer_and_a_wrong_number_of_lambdas():
    opt = _two_group_optimizers(mg)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        optim.lr_scheduler.LambdaLR([mg.zeros(2)], lambda e: 1.0)
    with pytest.raises(ValueError, match="lr_lambda must be a function or a list of 2"):
        optim.lr_scheduler.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(ValueError, match="lr_lambda must be a function or a list of 2"):
        optim.lr_scheduler.LambdaLR(opt, [lambda e: 1.0, 2.0])
    with pytest.raises(ValueError, match="patience must be a non-negative int"):
        optim.lr_scheduler.ReduceLROnPlateau(opt, patience=True)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="cooldown must be a non-negative int"):
            optim.lr_scheduler.ReduceLROnPlateau(opt, cooldown=bad)
    with pytest.raises(ValueError, match="expected 2 min_lrs"):
        optim.lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0.1])


# ----- the state of a scheduler ---------------------------------------------------------------------------------------


def test_scheduler_state_dict_resumes_the_schedule():
    def make():
        opt = optim.SGD([mg.zeros(1, requires_grad=True)], lr=1.0)
        return opt, optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    opt, sched = make()
    for _ in range(3):
        sched.step()
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    opt2, sched2 = make()
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    for _ in range(4):
        sched.step()
        sched2.step()
        assert sched.get_last_lr() == sched2.get_last_lr()


def test_lambda_lr_state_leaves_out_the_functions_and_resumes():
    """LambdaLR's state holds neither the optimizer nor the lambdas (functions do not pickle portably, as in
    torch); a scheduler given the same lambdas and that state continues with the same rates."""
    schedule = [lambda e: 0.9 ** e, lambda e: 1.0 / (1 + e)]
    opt = _two_group_optimizers(mg)
    sched = optim.lr_scheduler.LambdaLR(opt, schedule)
    for _ in range(3):
        sched.step()
    state = sched.state_dict()
    assert "lr_lambdas" not in state and "optimizer" not in state
    twin_opt = _two_group_optimizers(mg)
    twin = optim.lr_scheduler.LambdaLR(twin_opt, schedule)
    twin.load_state_dict(pickle.loads(pickle.dumps(state)))
    for _ in range(3):
        sched.step(), twin.step()
        assert [g["lr"] for g in twin_opt.param_groups] == [g["lr"] for g in opt.param_groups]


# ----- ReduceLROnPlateau ----------------------------------------------------------------------------------------------


def test_reduce_lr_on_plateau_refuses_factor_one_and_takes_a_nan_metric_as_no_improvement():
    opt = optim.SGD([nn.Parameter(np.ones(1))], lr=0.1)
    with pytest.raises(ValueError, match="Factor"):
        optim.lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    sched.step(1.0)
    sched.step(float("nan"))  # torch: NaN is never better, so a bad epoch
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


PLATEAU = [dict(), dict(mode="max", patience=1), dict(threshold_mode="abs", threshold=0.05, patience=0),
           dict(mode="max", threshold_mode="abs", threshold=0.05, patience=0, cooldown=2),
           dict(patience=1, factor=0.5, min_lr=[0.02, 0.3]), dict(patience=0, factor=0.5, eps=0.03),
           dict(mode="max", threshold=0.1, patience=0),  # a rise of 13% is better, one of 4% is not
           dict(mode="max", threshold_mode="abs", threshold=0.0, patience=0),  # equal to the best is not better
           dict(patience=0, factor=0.5, eps=0.05),  # 0.1 -> 0.05 changes the rate by exactly eps: no change
           dict(patience=2, cooldown=1), dict(patience=1, threshold_mode="abs", threshold=0.05, min_lr=0.02),
           dict(mode="max", patience=0, factor=0.5)]


@pytest.mark.parametrize("kwargs", PLATEAU, ids=range(len(PLATEAU)))
def test_reduce_lr_on_plateau_follows_torch(torch, kwargs):
    """A metric that improves, stalls, wobbles within the threshold and improves again, 40 epochs; both
    groups' rates after every step equal torch's (modes, threshold modes, cooldown, per-group min_lr, eps)."""
    metrics = [1.0, 0.9, 0.85, 0.85, 0.86, 0.849, 0.8, 0.8, 0.8, 0.79, 0.7, 0.7, 0.71, 0.72, 0.69]
    metrics = metrics + metrics[::-1] + [0.5] * 10
    if kwargs.get("mode") == "max":  # mirrored, so that "max" meets the same rises, stalls and repeats
        metrics = [1.0 - m for m in metrics]
    ours, theirs = _two_group_optimizers(mg), _two_group_optimizers(torch)
    sm = optim.lr_scheduler.ReduceLROnPlateau(ours, **kwargs)
    st = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs)
    assert sm.get_last_lr() == st.get_last_lr()
    for epoch, m in enumerate([None] + metrics):
        if m is not None:
            sm.step(m), st.step(m)
        np.testing.assert_allclose([g["lr"] for g in ours.param_groups], [g["lr"] for g in theirs.param_groups],
                                   rtol=1e-12, err_msg=f"epoch {epoch}")
        assert sm.get_last_lr() == pytest.approx(st.get_last_lr(), rel=1e-12)
        assert (sm.num_bad_epochs, sm.cooldown_counter, sm.last_epoch) == (st.num_bad_epochs, st.cooldown_counter,
                                                                           st.last_epoch)


def test_reduce_lr_on_plateau_state_round_trips_without_the_optimizer(torch):
    """state_dict holds the counters and the best metric but not the optimizer (as torch's); a scheduler loaded
    from it continues exactly as the original does."""
    metrics = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.7, 0.71, 0.72, 0.73, 0.74]
    ours = _two_group_optimizers(mg)
    sched = optim.lr_scheduler.ReduceLROnPlateau(ours, patience=1, cooldown=1, factor=0.5)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(_two_group_optimizers(torch), patience=1, cooldown=1,
                                                        factor=0.5)
    for m in metrics[:5]:
        sched.step(m), theirs.step(m)
    state = sched.state_dict()
    assert "optimizer" not in state and set(state) >= {"best", "num_bad_epochs", "cooldown_counter", "last_epoch"}
    assert {k: state[k] for k in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch")} == {
        k: theirs.state_dict()[k] for k in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch")}
    twin_opt = _two_group_optimizers(mg)
    for g, h in zip(twin_opt.param_groups, ours.param_groups):
        g["lr"] = h["lr"]
    twin = optim.lr_scheduler.ReduceLROnPlateau(twin_opt)
    twin.load_state_dict(state)
    assert twin.optimizer is twin_opt
    for m in metrics[5:]:
        sched.step(m), twin.step(m)
        assert [g["lr"] for g in twin_opt.param_groups] == [g["lr"] for g in ours.param_groups]


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal_strategy", ["cos", "linear"])
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_one_cycle_follows_torch_in_rate_and_momentum_and_stops_at_total_steps(torch, optimizer, anneal_strategy,
                                                                              three_phase):
    """Every step of the cycle on two groups (one max_lr each), the momentum (SGD) or beta1 (Adam) cycled the
    other way; one step past total_steps raises in both."""
    def build(lib):
        a, b = lib.zeros(2, requires_grad=True), lib.zeros(3, requires_grad=True)
        kwargs = dict(momentum=0.9) if optimizer == "SGD" else {}
        opt = getattr(lib.optim, optimizer)([{"params": [a]}, {"params": [b]}], lr=0.1, **kwargs)
        return opt, lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=[1.0, 0.4], total_steps=17, pct_start=0.25,
                                                      anneal_strategy=anneal_strategy, three_phase=three_phase)

    (ours, sm), (theirs, st) = build(mg), build(torch)
    key = "momentum" if optimizer == "SGD" else "betas"
    for step in range(17):
        for g, h in zip(ours.param_groups, theirs.param_groups):
            assert g["lr"] == pytest.approx(h["lr"], rel=1e-12, abs=1e-15), step
            assert np.ravel(g[key]) == pytest.approx(np.ravel(h[key]), rel=1e-12), step
        if step < 16:
            ours.step(), theirs.step()
            sm.step(), st.step()
    sm.step(), st.step()  # the last rate of the schedule: step 17 of 17
    assert [g["lr"] for g in ours.param_groups] == pytest.approx([g["lr"] for g in theirs.param_groups], rel=1e-12)
    with pytest.raises(ValueError, match="Tried to step 18 times"):
        sm.step()
    with pytest.raises(ValueError, match="Tried to step 18 times"):
        st.step()


def test_one_cycle_takes_epochs_times_steps_and_refuses_what_torch_refuses(torch):
    opt = optim.SGD([mg.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    assert optim.lr_scheduler.OneCycleLR(opt, 1.0, epochs=3, steps_per_epoch=4).total_steps == 12
    for kwargs, match in ((dict(), "either total_steps"), (dict(total_steps=0), "total_steps"),
                          (dict(total_steps=5, pct_start=1.5), "pct_start"),
                          (dict(total_steps=5, anneal_strategy="exp"), "anneal_strategy"),
                          (dict(total_steps=5, max_lr=[1.0, 2.0]), "max_lr"),
                          (dict(total_steps=5, base_momentum=[0.8, 0.9]), "base_momentum")):
        fresh = optim.SGD([mg.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
        with pytest.raises(ValueError, match=match):
            optim.lr_scheduler.OneCycleLR(fresh, **{"max_lr": 1.0, **kwargs})
        assert fresh.param_groups[0]["lr"] == 0.1 and fresh.param_groups[0]["momentum"] == 0.9
        assert "max_lr" not in fresh.param_groups[0]  # refused before any group was written
    no_momentum = optim.Adagrad([mg.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="momentum or beta1"):
        optim.lr_scheduler.OneCycleLR(no_momentum, 1.0, total_steps=5)
    with pytest.raises(ValueError, match="momentum or beta1"):
        torch.optim.lr_scheduler.OneCycleLR(torch.optim.Adagrad([torch.zeros(2, requires_grad=True)]), 1.0,
                                            total_steps=5)


def test_warm_restarts_take_fractional_epochs_as_torch(torch):
    """torch's documented use: scheduler.step(epoch + i / iters) inside an epoch, T_mult 2 and 1."""
    for t_mult in (1, 2, 3):
        ours, theirs = _two_group_optimizers(mg), _two_group_optimizers(torch)
        sm = optim.lr_scheduler.CosineAnnealingWarmRestarts(ours, T_0=2, T_mult=t_mult, eta_min=0.001)
        st = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(theirs, T_0=2, T_mult=t_mult, eta_min=0.001)
        for epoch in range(9):
            for i in range(4):
                sm.step(epoch + i / 4), st.step(epoch + i / 4)
                assert [g["lr"] for g in ours.param_groups] == pytest.approx(
                    [g["lr"] for g in theirs.param_groups], rel=1e-12)
                assert sm.last_epoch == st.last_epoch
    with pytest.raises(ValueError, match="epoch"):
        sm.step(-1.0)


@pytest.mark.parametrize("make", [lambda s, o: s.LinearLR(o, start_factor=0.0),
                                  lambda s, o: s.LinearLR(o, start_factor=1.5),
                                  lambda s, o: s.ConstantLR(o, factor=-0.1),
                                  lambda s, o: s.LinearLR(o, end_factor=1.5),
                                  lambda s, o: s.ConstantLR(o, factor=1.5),
                                  lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=0),
                                  lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0)])
def test_new_schedulers_refuse_torchs_bad_arguments_and_leave_the_rates(torch, make):
    ours, theirs = _two_group_optimizers(mg), _two_group_optimizers(torch)
    with pytest.raises(ValueError):
        make(torch.optim.lr_scheduler, theirs)
    with pytest.raises(ValueError):
        make(optim.lr_scheduler, ours)
    assert [g["lr"] for g in ours.param_groups] == [0.1, 0.5] and "initial_lr" not in ours.param_groups[0]


@pytest.mark.parametrize("bad", [True, -1, 2.0, None])
def test_total_iters_is_a_non_negative_int(bad):
    for make in (optim.lr_scheduler.ConstantLR, optim.lr_scheduler.LinearLR):
        opt = _two_group_optimizers(mg)
        with pytest.raises(ValueError, match="total_iters"):
            make(opt, total_iters=bad)
        assert "initial_lr" not in opt.param_groups[0]


def test_constant_lr_takes_a_zero_factor_as_torch(torch):
    """factor 0 is accepted (a frozen warm-up); torch then divides by it at total_iters, and so do we."""
    ours, theirs = _two_group_optimizers(mg), _two_group_optimizers(torch)
    sm = optim.lr_scheduler.ConstantLR(ours, factor=0.0, total_iters=3)
    st = torch.optim.lr_scheduler.ConstantLR(theirs, factor=0.0, total_iters=3)
    for _ in range(2):
        assert [g["lr"] for g in ours.param_groups] == [g["lr"] for g in theirs.param_groups] == [0.0, 0.0]
        sm.step(), st.step()
    with pytest.raises(ZeroDivisionError):
        st.step()
    with pytest.raises(ZeroDivisionError):
        sm.step()


@pytest.mark.parametrize("kwargs", [dict(total_steps=20), dict(total_steps=20, pct_start=0.25, three_phase=True),
                                    dict(epochs=4, steps_per_epoch=5, pct_start=0.0),
                                    dict(total_steps=20, pct_start=1.0, anneal_strategy="linear")])
def test_one_cycle_with_torchs_defaults_and_at_phase_boundaries_gives_torchs_bits(torch, kwargs):
    """Defaults (three_phase off, pct_start 0.3), phase ends that fall on a step, and the extreme pct_start values:
    the same formulas in the same order, so the same bits as torch at every step."""
    rates = []
    for lib in (mg, torch):
        opt = lib.optim.SGD([lib.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
        sched = lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, **kwargs)
        seen = []
        for _ in range(19):
            seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
            opt.step()
            sched.step()
        rates.append(seen)
    assert rates[0] == rates[1]


def test_one_cycle_refuses_bad_arguments_before_touching_the_groups():
    opt = optim.SGD([mg.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    for kwargs, error, match in ((dict(epochs=3), ValueError, "either total_steps"),
                                 (dict(total_steps=5, cycle_momentum="yes"), ValueError, "cycle_momentum"),
                                 (dict(total_steps=5, pct_start=-0.1), ValueError, "pct_start")):
        with pytest.raises(error, match=match):
            optim.lr_scheduler.OneCycleLR(opt, 1.0, **kwargs)
        assert opt.param_groups[0]["lr"] == 0.1 and "max_lr" not in opt.param_groups[0]
    with pytest.raises(TypeError, match="not an Optimizer"):
        optim.lr_scheduler.OneCycleLR([mg.zeros(2)], 1.0, total_steps=5)
