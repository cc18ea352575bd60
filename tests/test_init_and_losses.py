"""nn.init against torch's rules (gains, fans, bounds, errors), the class losses against torch (nll_loss,
cross_entropy with weight, ignore_index, label_smoothing, probability targets; values and gradients), and the
Module bookkeeping scripts use (buffers, apply, ModuleList)."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.gradcheck import gradcheck


# ----- nn.init -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,param", [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                                        ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)])
def test_calculate_gain_is_torchs(torch, name, param):
    assert nn.init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


@pytest.mark.parametrize("shape", [(5, 3), (4, 6, 2), (2, 3, 4, 5)])
def test_fans_are_torchs(torch, shape):
    ours = nn.init._calculate_fan_in_and_fan_out(mg.zeros(*shape))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))


BOUNDED = {  # name -> (initialiser, the bound of |w| by torch's formula for a (300, 200) weight)
    "uniform_": (lambda t: nn.init.uniform_(t, -0.3, 0.3), 0.3),
    "xavier_uniform_": (lambda t: nn.init.xavier_uniform_(t, gain=2.0), 2.0 * math.sqrt(6.0 / 500)),
    "kaiming_uniform_": (lambda t: nn.init.kaiming_uniform_(t, a=math.sqrt(5)),
                         math.sqrt(3.0) * math.sqrt(2.0 / 6.0) / math.sqrt(200)),
    "kaiming_uniform_-fan_out": (lambda t: nn.init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"),
                                 math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(300)),
}
SPREAD = {  # name -> (initialiser, the standard deviation by torch's formula)
    "normal_": (lambda t: nn.init.normal_(t, 0.5, 0.2), 0.2),
    "xavier_normal_": (lambda t: nn.init.xavier_normal_(t), math.sqrt(2.0 / 500)),
    "kaiming_normal_": (lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"), math.sqrt(2.0) / math.sqrt(200)),
    "trunc_normal_": (lambda t: nn.init.trunc_normal_(t, std=0.02), 0.02),
}


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_uniform_initialisers_fill_to_torchs_bound(name):
    mg.manual_seed(0)
    init, bound = BOUNDED[name]
    w = nn.Parameter(np.zeros((300, 200), np.float32))
    assert init(w) is w and w._version == 1 and w.requires_grad
    values = w.numpy() if not w.requires_grad else w.detach().numpy()
    assert np.abs(values).max() <= bound * (1 + 1e-6)
    assert np.abs(values).max() > 0.99 * bound  # 60000 draws reach the edge
    assert abs(values.std() - bound / math.sqrt(3)) < 0.01 * bound  # U(-b, b) has sd b/√3


@pytest.mark.parametrize("name", sorted(SPREAD))
def test_normal_initialisers_have_torchs_standard_deviation(name):
    mg.manual_seed(1)
    init, std = SPREAD[name]
    w = init(mg.zeros(300, 200, dtype=mg.float64))
    sd = w.numpy().std()
    if name == "trunc_normal_":
        assert np.abs(w.numpy()).max() <= 2.0
    assert abs(sd - std) < 0.02 * std


def test_orthogonal_eye_constant_and_zeros():
    mg.manual_seed(2)
    for shape in ((6, 4), (4, 6), (5, 2, 3)):
        w = nn.init.orthogonal_(mg.zeros(*shape, dtype=mg.float64), gain=1.5)
        flat = w.numpy().reshape(shape[0], -1)
        small = flat @ flat.T if shape[0] <= flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(small, 2.25 * np.eye(small.shape[0]), atol=1e-12)
    rnn = nn.RNN(3, 4)
    nn.init.eye_(rnn.weight_hh_l0)
    nn.init.zeros_(rnn.bias_hh_l0)
    nn.init.constant_(rnn.bias_ih_l0, 0.25)
    nn.init.ones_(rnn.weight_ih_l0)
    assert rnn.weight_hh_l0.detach().numpy().tolist() == np.eye(4).tolist()
    assert rnn.bias_hh_l0.detach().numpy().tolist() == [0.0] * 4
    assert rnn.bias_ih_l0.detach().numpy().tolist() == [0.25] * 4
    assert rnn.weight_ih_l0.detach().numpy().tolist() == np.ones((4, 3)).tolist()


INIT_ERRORS = [
    (lambda lib, t: lib.nn.init.eye_(t.reshape(-1)), ValueError),
    (lambda lib, t: lib.nn.init.orthogonal_(t.reshape(-1)), ValueError),
    (lambda lib, t: lib.nn.init.xavier_uniform_(t.reshape(-1)), ValueError),
    (lambda lib, t: lib.nn.init.kaiming_normal_(t, mode="fan_avg"), ValueError),
    (lambda lib, t: lib.nn.init.calculate_gain("softsign2"), ValueError),
]


@pytest.mark.parametrize("case", range(len(INIT_ERRORS)))
def test_init_errors_are_torchs(torch, case):
    fn, error = INIT_ERRORS[case]
    t = mg.zeros(3, 4)
    with pytest.raises(error):
        fn(mg, t)
    assert t._version == 0
    with pytest.raises(error):
        fn(torch, torch.zeros(3, 4))


# ----- the class losses ----------------------------------------------------------------------------------------
RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((5, 4))
LOGITS3 = RNG.standard_normal((2, 4, 3))
TARGET = np.array([1, 0, 3, 3, 2])
TARGET_IGNORED = np.array([1, -100, 3, 3, -100])
TARGET3 = np.array([[0, 3, 1], [2, 2, -100]])
WEIGHT = np.array([0.5, 2.0, 1.0, 0.25])
PROBS = RNG.random((5, 4))
PROBS /= PROBS.sum(axis=1, keepdims=True)

LOSSES = {
    "nll": lambda lib, x: lib.nn.functional.nll_loss(x.log_softmax(1), lib.tensor(TARGET)),
    "nll-sum-weight": lambda lib, x: lib.nn.functional.nll_loss(x.log_softmax(1), lib.tensor(TARGET),
                                                                weight=lib.tensor(WEIGHT), reduction="sum"),
    "nll-mean-weight-ignore": lambda lib, x: lib.nn.NLLLoss(weight=lib.tensor(WEIGHT))(
        x.log_softmax(1), lib.tensor(TARGET_IGNORED)),
    "nll-none": lambda lib, x: lib.nn.functional.nll_loss(x, lib.tensor(TARGET), reduction="none"),
    "ce": lambda lib, x: lib.nn.CrossEntropyLoss()(x, lib.tensor(TARGET)),
    "ce-weight-ignore": lambda lib, x: lib.nn.CrossEntropyLoss(weight=lib.tensor(WEIGHT), ignore_index=3)(
        x, lib.tensor(TARGET)),
    "ce-smoothing": lambda lib, x: lib.nn.CrossEntropyLoss(label_smoothing=0.1)(x, lib.tensor(TARGET)),
    "ce-smoothing-weight-ignore": lambda lib, x: lib.nn.functional.cross_entropy(
        x, lib.tensor(TARGET_IGNORED), weight=lib.tensor(WEIGHT), label_smoothing=0.2),
    "ce-smoothing-sum": lambda lib, x: lib.nn.functional.cross_entropy(x, lib.tensor(TARGET_IGNORED),
                                                                       label_smoothing=0.3, reduction="sum"),
    "ce-smoothing-none": lambda lib, x: lib.nn.functional.cross_entropy(x, lib.tensor(TARGET), label_smoothing=0.3,
                                                                        weight=lib.tensor(WEIGHT), reduction="none"),
    "ce-probs": lambda lib, x: lib.nn.functional.cross_entropy(x, lib.tensor(PROBS)),
    "ce-probs-weight-smoothing": lambda lib, x: lib.nn.functional.cross_entropy(
        x, lib.tensor(PROBS), weight=lib.tensor(WEIGHT), label_smoothing=0.1),
    "ce-probs-none": lambda lib, x: lib.nn.functional.cross_entropy(x, lib.tensor(PROBS), reduction="none"),
    "ce-1d": lambda lib, x: lib.nn.functional.cross_entropy(x[2], lib.tensor(np.array(3))),
}
LOSSES_3D = {
    "ce-3d": lambda lib, x: lib.nn.functional.cross_entropy(x, lib.tensor(TARGET3)),
    "ce-3d-smoothing-weight": lambda lib, x: lib.nn.functional.cross_entropy(
        x, lib.tensor(TARGET3), weight=lib.tensor(WEIGHT), label_smoothing=0.25),
    "nll-3d-none": lambda lib, x: lib.nn.functional.nll_loss(x.log_softmax(1), lib.tensor(TARGET3),
                                                             reduction="none"),
}


def _cases():
    return [(name, fn, LOGITS) for name, fn in LOSSES.items()] + \
        [(name, fn, LOGITS3) for name, fn in LOSSES_3D.items()]


@pytest.mark.parametrize("name,fn,logits", _cases(), ids=[c[0] for c in _cases()])
def test_class_losses_equal_torchs_values_and_gradients(torch, name, fn, logits):
    out = []
    for lib in (mg, torch):
        x = lib.tensor(logits.copy(), requires_grad=True)
        loss = fn(lib, x)
        loss.backward(lib.ones_like(loss))
        out.append((loss.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name,fn,logits", _cases(), ids=[c[0] for c in _cases()])
def test_class_losses_pass_gradcheck(name, fn, logits):
    assert gradcheck(lambda x: fn(mg, x), [mg.tensor(logits.copy(), requires_grad=True)])


def test_a_mean_over_no_counted_target_is_nan_as_in_torch():
    x = mg.tensor(LOGITS.copy(), requires_grad=True)
    loss = mg.nn.functional.nll_loss(x, mg.tensor(np.full(5, -100)))
    assert math.isnan(loss.item())


@pytest.mark.parametrize("target,error", [(np.array([0, 1, 2, 3, 4]), IndexError),
                                          (np.array([0.0, 1.0, 2.0, 3.0, 0.0]), RuntimeError),
                                          (np.array([0, 1, 2], dtype=np.int64), ValueError),
                                          (np.array([0, 1, 2, 3, 0], dtype=np.int32), RuntimeError)])
def test_bad_targets_get_torchs_exception_types(torch, target, error):
    with pytest.raises(error):
        mg.nn.functional.cross_entropy(mg.tensor(LOGITS), mg.tensor(target))
    with pytest.raises(error):
        torch.nn.functional.cross_entropy(torch.tensor(LOGITS), torch.tensor(target))


def test_a_class_weight_of_the_wrong_size_is_refused(torch):
    for lib in (mg, torch):
        with pytest.raises(RuntimeError):
            lib.nn.functional.nll_loss(lib.tensor(LOGITS), lib.tensor(TARGET), weight=lib.tensor(WEIGHT[:3]))


# ----- Module bookkeeping ------------------------------------------------------------------------------------
class _WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3)
        self.register_buffer("running", mg.zeros(3))
        self.register_buffer("scratch", mg.ones(2), persistent=False)
        self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1)])

    def forward(self, x):
        h = self.lin(x) + self.running
        for block in self.blocks:
            h = block(h)
        return h


def test_buffers_state_dict_apply_and_module_list_as_torchs():
    m = _WithBuffers()
    assert [n for n, _ in m.named_buffers()] == ["running", "scratch"]
    assert list(m.state_dict()) == ["lin.weight", "lin.bias", "blocks.0.weight", "blocks.0.bias", "blocks.2.weight",
                                    "blocks.2.bias", "running"]
    assert len(list(m.parameters())) == 6 and len(m.blocks) == 3 and isinstance(m.blocks[1], nn.Tanh)
    sd = m.state_dict()
    sd["running"] = mg.full((3,), 2.0)
    fresh = _WithBuffers()
    fresh.load_state_dict(sd)
    assert fresh.running.tolist() == [2.0, 2.0, 2.0]
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Linear", "Tanh", "Linear", "ModuleList", "_WithBuffers"]
    m.double()
    assert m.running.dtype == np.float64 and m.lin.weight.dtype == np.float64
    out = m(mg.ones(4, 2, dtype=mg.float64))
    out.sum().backward()
    assert m.blocks[2].weight.grad is not None
    with pytest.raises(KeyError):
        m.register_buffer("lin", mg.zeros(1))
    with pytest.raises(RuntimeError):
        fresh.load_state_dict({"running": mg.zeros(3)})  # torch's error for missing keys is a RuntimeError


def test_state_dict_shares_memory_as_torchs():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    with mg.no_grad():
        lin.weight.fill_(3.0)
    assert sd["weight"].tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert not sd["weight"].requires_grad
