"""Optimizers: 20-step float64 trajectories equal to torch's, torch's defaults, argument checks, all-or-nothing
steps, and state_dict."""
import math

import numpy as np
import pytest
from helpers import OPTIMIZER_CONFIGS as CONFIGS

import minigrad as mg
from minigrad import nn, optim

# ----- parity with torch and the formulas -----------------------------------------------------------------------------


def _trajectory(lib, name, kwargs, w0, b0, x, y, steps=20):
    w = lib.tensor(w0.copy(), requires_grad=True)
    b = lib.tensor(b0.copy(), requires_grad=True)
    opt = getattr(lib.optim, name)([w, b], **kwargs)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((lib.tensor(x) @ w + b).tanh() - lib.tensor(y)).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses), w.detach().numpy(), b.detach().numpy()


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_twenty_steps_equal_torch(torch, name, kwargs, rng):
    w0, b0 = rng.standard_normal((3, 2)), rng.standard_normal(2)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    ours = _trajectory(mg, name, kwargs, w0, b0, x, y)
    theirs = _trajectory(torch, name, kwargs, w0, b0, x, y)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-14)


def test_sgd_matches_the_formula_without_torch():
    w = mg.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    expected, buf = w.data.copy(), None
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        g = 2 * expected
        buf = g.copy() if buf is None else 0.9 * buf + g
        expected = expected - 0.1 * buf
        opt.step()
    np.testing.assert_allclose(w.data, expected, rtol=1e-15)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_default_hyperparameters_are_torchs(torch, name):
    ours = getattr(optim, name)([mg.zeros(2, requires_grad=True)]).defaults
    theirs = getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **(
        {"lr": 1e-3} if name == "SGD" else {})).defaults  # torch's SGD: lr 1e-3 is its default too
    for key, value in theirs.items():
        if key in ours and key not in ("foreach", "fused", "differentiable", "capturable"):
            assert ours[key] == (tuple(value) if isinstance(value, (list, tuple)) else value), (name, key)


# ----- arguments ------------------------------------------------------------------------------------------------------


def test_bad_hyperparameters_are_rejected():
    p = [mg.tensor(np.ones(1), requires_grad=True)]
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="beta"):
        optim.Adam(p, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="(?i)nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_a_bad_default_is_refused_even_when_every_group_overrides_it(name, torch):
    """torch checks the constructor's defaults themselves: lr=-1 raises although the only group sets its own."""
    with pytest.raises(ValueError):
        getattr(torch.optim, name)([{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1}], lr=-1.0)
    with pytest.raises(ValueError, match="lr"):
        getattr(optim, name)([{"params": [mg.zeros(2, requires_grad=True)], "lr": 0.1}], lr=-1.0)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_flags_must_be_booleans_in_the_constructor_and_in_added_groups(name):
    p, q = mg.zeros(2, requires_grad=True), mg.zeros(2, requires_grad=True)
    own = {"SGD": [("nesterov", "yes")], "Adam": [("amsgrad", 1), ("decoupled_weight_decay", None)],
           "AdamW": [("amsgrad", "no")], "RMSprop": [("centered", 0)], "Adagrad": []}[name]
    for flag, bad in [("maximize", "yes"), ("maximize", None), ("foreach", 1), ("fused", "no")] + own:
        with pytest.raises(ValueError, match=f"Invalid {flag} value"):
            getattr(optim, name)([p], **{flag: bad})
        opt = getattr(optim, name)([p])
        with pytest.raises(ValueError, match=f"Invalid {flag} value"):
            opt.add_param_group({"params": [q], flag: bad})
        assert len(opt.param_groups) == 1


def test_betas_take_zero_and_are_stored_as_a_tuple_of_floats(torch):
    p = mg.zeros(2, requires_grad=True)
    opt = optim.Adam([p], betas=[np.float32(0.0), 0.5])
    assert opt.param_groups[0]["betas"] == (0.0, 0.5) and type(opt.param_groups[0]["betas"]) is tuple
    torch.optim.Adam([torch.zeros(2, requires_grad=True)], betas=(0.0, 0.5))  # torch takes 0 as well
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        optim.Adam([p], betas=(0.5, 1.0))


def test_sgd_checks_dampening_and_nesterov_like_its_other_options():
    """dampening: any real number (torch allows negative); nesterov: a bool. A bad value names the option."""
    p = mg.zeros(2, requires_grad=True)
    for kwargs, name in ((dict(dampening="0.1"), "dampening"), (dict(dampening=math.nan), "dampening"),
                         (dict(nesterov="yes"), "nesterov"), (dict(nesterov=1), "nesterov")):
        with pytest.raises((TypeError, ValueError), match=name):
            optim.SGD([p], lr=0.1, momentum=0.9, **kwargs)
    optim.SGD([p], lr=0.1, momentum=0.9, dampening=-0.5)  # negative dampening is allowed, as in torch


def test_add_param_group_validates_like_the_constructor():
    opt = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [nn.Parameter(np.ones(2))], "lr": -1.0})
    assert len(opt.param_groups) == 1


def test_a_parameter_twice_in_one_group_is_rejected():
    p = mg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([p, p], lr=0.1)


# ----- a step that raises changes nothing -----------------------------------------------------------------------------


def test_a_step_that_raises_changes_no_parameter():
    a = mg.tensor(np.ones(3), requires_grad=True)
    frozen = np.ones(2)
    frozen.setflags(write=False)
    b = mg.from_numpy(frozen).requires_grad_()  # read-only, found after a's update would have happened
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = np.ones(3)
    b.grad = np.ones(2)
    with pytest.raises(ValueError, match=r"\['params'\]\[1\].*read-only"):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3))
    assert opt.state == {}
    with pytest.raises(RuntimeError, match="different size"):
        b.grad = np.ones(5)


@pytest.mark.parametrize("fused", [None, True])
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_a_step_bumps_the_version_of_each_parameter_it_updates_by_one(name, kwargs, fused):
    """As one in-place op does in torch (torch's SGD, Adam, Adagrad and RMSprop update each parameter with one;
    its AdamW takes two, the decay and the update). A parameter without a gradient keeps its version. With
    fused=True: the fused kernel, and the unfused formula a fused group falls back to when its parameters are at
    different steps (the third step here)."""
    a = mg.tensor(np.ones(3), requires_grad=True)
    b = mg.tensor(np.ones(2), requires_grad=True)
    opt = getattr(optim, name)([a, b], fused=fused, **kwargs)
    a.grad, b.grad = np.full(3, 0.5), np.full(2, 0.25)
    opt.step()
    assert (a._version, b._version) == (1, 1)
    b.grad = None
    opt.step()
    assert (a._version, b._version) == (2, 1)
    b.grad = np.full(2, 0.25)
    opt.step()
    assert (a._version, b._version) == (3, 2)


def test_a_subclass_whose_defaults_omit_maximize_descends():
    """Optimizer.step negates the gradient only for a group that asks for maximize: a subclass that implements
    _update with defaults of its own (no maximize) gets plain descent."""
    class PlainSGD(optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        def _update(self, group, p, grad, state):
            p -= group["lr"] * grad

    w = mg.tensor(np.ones(2), requires_grad=True)
    opt = PlainSGD([w], lr=0.5)
    w.grad = np.array([1.0, -2.0])
    opt.step()
    np.testing.assert_array_equal(w.data, [0.5, 2.0])


# ----- state_dict -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_every_optimizer_resumes_from_a_file_with_its_hyperparameters(tmp_path, name, kwargs, rng):
    """Save after 3 steps, load into an optimizer built with *default* hyper-parameters: the saved ones come
    back and the next 3 steps are bit-identical to never having stopped."""
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))

    def make():
        mg.manual_seed(0)
        return nn.Linear(3, 2).double()

    def step(model, opt):
        opt.zero_grad()
        nn.MSELoss()(model(mg.tensor(x)), mg.tensor(y)).backward()
        opt.step()

    m1 = make()
    o1 = getattr(optim, name)(m1.parameters(), **kwargs)
    for _ in range(3):
        step(m1, o1)
    mg.save({"model": m1.state_dict(), "optim": o1.state_dict()}, tmp_path / "ck.npz")
    m2 = make()
    o2 = getattr(optim, name)(m2.parameters(), lr=0.5)  # other hyper-parameters: the file must override them
    ck = mg.load(tmp_path / "ck.npz")
    m2.load_state_dict(ck["model"])
    o2.load_state_dict(ck["optim"])
    for key, value in o1.param_groups[0].items():
        if key != "params":
            assert o2.param_groups[0][key] == value, key
    for _ in range(3):
        step(m1, o1)
        step(m2, o2)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert p.data.tobytes() == q.data.tobytes()


def test_state_dict_round_trip_continues_the_same_trajectory(tmp_path, rng):
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))

    def make():
        mg.manual_seed(0)
        model = nn.Linear(3, 2).double()
        return model, optim.Adam(model.parameters(), lr=0.05, amsgrad=True)

    def step(model, opt):
        opt.zero_grad()
        nn.MSELoss()(model(mg.tensor(x)), mg.tensor(y)).backward()
        opt.step()

    m1, o1 = make()
    for _ in range(3):
        step(m1, o1)
    mg.save({"model": m1.state_dict(), "optim": o1.state_dict()}, tmp_path / "ck.npz")
    m2, o2 = make()
    ck = mg.load(tmp_path / "ck.npz")
    m2.load_state_dict(ck["model"])
    o2.load_state_dict(ck["optim"])
    for _ in range(3):
        step(m1, o1)
        step(m2, o2)
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_refuses_a_different_number_of_groups():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))
    two = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    one = optim.SGD([a, b], lr=0.1)
    with pytest.raises(ValueError, match="group"):
        one.load_state_dict(two.state_dict())
    assert len(one.param_groups) == 1


def test_load_state_dict_takes_string_indices_and_rejects_others():
    p = mg.zeros(2, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(2, np.float32)
    opt.step()
    saved = opt.state_dict()
    as_strings = {"state": {str(k): v for k, v in saved["state"].items()}, "param_groups": saved["param_groups"]}
    fresh = optim.SGD([mg.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    fresh.load_state_dict(as_strings)  # as a JSON round trip would give them
    np.testing.assert_array_equal(next(iter(fresh.state.values()))["momentum_buffer"], [1.0, 1.0])
    for key in ("x", "-1", 1.5):
        with pytest.raises(ValueError, match="unknown parameter index"):
            fresh.load_state_dict({"state": {key: saved["state"][0]}, "param_groups": saved["param_groups"]})
    with pytest.raises(ValueError, match="do not match"):
        fresh.load_state_dict({"state": {}, "param_groups": [{"lr": 0.1}]})
    no_momentum = {"state": {0: {"momentum_buffer": None}}, "param_groups": saved["param_groups"]}
    fresh.load_state_dict(no_momentum)  # torch saves None for a buffer it has not made
    assert "momentum_buffer" not in fresh.state[next(iter(fresh.state))]
    adam = optim.Adam([mg.zeros(2, requires_grad=True)])
    at_zero = {"step": 0, "exp_avg": np.zeros(2, np.float32), "exp_avg_sq": np.zeros(2, np.float32)}
    adam.load_state_dict({"state": {0: at_zero}, "param_groups": adam.state_dict()["param_groups"]})
    assert next(iter(adam.state.values()))["step"] == 0
    with pytest.raises(ValueError, match="step"):
        adam.load_state_dict({"state": {0: {**at_zero, "step": -1}}, "param_groups": adam.state_dict()["param_groups"]})
