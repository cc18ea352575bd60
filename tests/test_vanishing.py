"""Pascanu et al.'s regularizer (nn.utils.vanishing_gradient_regularizer_): Ω and ∂Ω/∂W_hh against an independent
float64 computation in torch (a hand-unrolled RNN whose per-step ∂L/∂h_t come from retain_grad, and Ω's gradient
from torch's autograd with δ_t and f′ detached), packed batches, layers and directions, and its errors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn.utils import vanishing_gradient_regularizer_ as omega_
from minigrad.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def _torch_reference(torch, rnn, x, w, nonlinearity, lengths=None):
    """Ω and ∂Ω/∂W_hh from the formula: an unrolled float64 RNN, δ_t = h_t.grad of the loss Σ w ⊙ outputs."""
    p = {n: torch.tensor(v.data.copy()) for n, v in rnn.named_parameters()}
    w_hh = p["weight_hh_l0"].clone().requires_grad_(True)
    steps, batch = x.shape[0], x.shape[1]
    lengths = [steps] * batch if lengths is None else lengths
    f = torch.tanh if nonlinearity == "tanh" else torch.relu
    h = torch.zeros(batch, rnn.hidden_size, dtype=torch.float64)
    hs, loss = [], 0
    for t in range(steps):
        a = torch.tensor(x[t]) @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h @ w_hh.T + p["bias_hh_l0"]
        running = torch.tensor([t < n for n in lengths])[:, None]
        h = torch.where(running, f(a), h)
        h.retain_grad()
        hs.append(h)
        loss = loss + (torch.where(running, h, 0) * torch.tensor(w[t])).sum()
    loss.backward()
    omega = 0
    for t, h in enumerate(hs):
        delta = h.grad
        fprime = (1 - h.detach() ** 2) if nonlinearity == "tanh" else (h.detach() > 0).double()
        for b in range(batch):
            nd = delta[b].norm()
            if t >= lengths[b] or nd ** 2 < 1e-20:
                continue
            omega = omega + (((delta[b] * fprime[b]) @ w_hh).norm() / nd - 1) ** 2 / batch
    (g,) = torch.autograd.grad(omega, w_hh)
    return float(omega.detach()), g.numpy()


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("packed", [False, True])
def test_omega_and_its_gradient_match_the_formula_in_float64(torch, nonlinearity, fused, packed):
    rnn = nn.RNN(3, 5, nonlinearity=nonlinearity, fused=fused).double()
    rng = np.random.default_rng(0)
    for p in rnn.parameters():  # float64 values (an initialised model's float32 ones would hide float32 rounding)
        p.data = mg.tensor(rng.uniform(-0.45, 0.45, p.shape))
    x, w = rng.standard_normal((9, 4, 3)), rng.standard_normal((9, 4, 5))
    lengths = [9, 4, 7, 2] if packed else None
    rnn.track_hidden_grads = True
    if packed:
        out, _ = rnn(pack_padded_sequence(mg.tensor(x), lengths, enforce_sorted=False))
        out = pad_packed_sequence(out)[0]
    else:
        out, _ = rnn(mg.tensor(x))
    (out * mg.tensor(w)).sum().backward()
    before = rnn.weight_hh_l0.grad.data.copy()
    omega = omega_(rnn, alpha=0.7)
    want_omega, want_grad = _torch_reference(torch, rnn, x, w, nonlinearity, lengths)
    assert omega.shape == () and omega.dtype == mg.float64
    assert omega.item() == pytest.approx(want_omega, rel=1e-12)
    np.testing.assert_allclose(rnn.weight_hh_l0.grad.data - before, 0.7 * want_grad, rtol=1e-10, atol=1e-14)
    for name in ("weight_ih_l0", "bias_hh_l0"):  # only W_hh is regularized
        assert getattr(rnn, name).grad is not None


def test_every_layer_and_direction_gets_its_own_terms_and_fused_equals_composed():
    results = []
    for fused in (True, False):
        mg.manual_seed(1)
        rnn = nn.RNN(2, 4, num_layers=2, bidirectional=True, fused=fused).double()
        rnn.track_hidden_grads = True
        out, _ = rnn(mg.tensor(np.random.default_rng(0).standard_normal((6, 3, 2))))
        out.pow(2).sum().backward()
        grads = {n: p.grad.data.copy() for n, p in rnn.named_parameters()}
        omega = omega_(rnn, alpha=1.0).item()
        added = {n: p.grad.data - grads[n] for n, p in rnn.named_parameters()}
        results.append((omega, added))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    for name, diff in results[0][1].items():
        np.testing.assert_allclose(diff, results[1][1][name], rtol=1e-10, atol=1e-14)
        assert np.any(diff != 0) == name.startswith("weight_hh"), name


def test_alpha_zero_adds_nothing_and_a_missing_grad_is_created():
    rnn = nn.RNN(2, 3).double()
    rnn.track_hidden_grads = True
    out, _ = rnn(mg.tensor(np.ones((4, 1, 2))))
    out.sum().backward()
    before = rnn.weight_hh_l0.grad.data.copy()
    assert omega_(rnn, alpha=0.0).item() > 0
    np.testing.assert_array_equal(rnn.weight_hh_l0.grad.data, before)
    rnn.weight_hh_l0.grad = None
    omega_(rnn, alpha=1.0)
    assert rnn.weight_hh_l0.grad is not None and np.any(rnn.weight_hh_l0.grad.data != 0)


@pytest.mark.parametrize("packed", [False, True])
def test_steps_without_gradient_are_skipped(packed):
    """A loss on the first step only: δ_t = 0 at every later step, so those terms are left out (not NaN), also
    where a packed sequence's steps are valid."""
    rnn = nn.RNN(2, 3).double()
    rnn.track_hidden_grads = True
    x = mg.tensor(np.ones((5, 2, 2)))
    if packed:
        out = pad_packed_sequence(rnn(pack_padded_sequence(x, [5, 3], enforce_sorted=False))[0])[0]
    else:
        out, _ = rnn(x)
    out[0].sum().backward()
    omega = omega_(rnn)
    assert np.isfinite(omega.item()) and np.all(np.isfinite(rnn.weight_hh_l0.grad.data))


def test_errors_name_what_is_missing_and_change_nothing():
    rnn = nn.RNN(2, 3).double()
    x = mg.tensor(np.ones((4, 1, 2)))
    rnn(x)[0].sum().backward()
    before = rnn.weight_hh_l0.grad.data.copy()
    with pytest.raises(RuntimeError, match="track_hidden_grads"):
        omega_(rnn)
    rnn.track_hidden_grads = True
    rnn(x)
    with pytest.raises(RuntimeError, match="backward"):
        omega_(rnn)
    with pytest.raises(ValueError, match="alpha"):
        omega_(rnn, alpha=-1.0)
    with pytest.raises(TypeError, match="nn.RNN"):
        omega_(nn.LSTM(2, 3))
    np.testing.assert_array_equal(rnn.weight_hh_l0.grad.data, before)


def _one_step(delta, nonlinearity="tanh", bias=0.0, alpha=1.0, fused=True):
    """Ω and the gradient it adds for one step of one sequence whose ∂L/∂h is exactly `delta` (the loss is
    Σ delta ⊙ h_0), float64 weights; alpha=None calls the regularizer with its default alpha."""
    rng = np.random.default_rng(5)
    rnn = nn.RNN(3, len(delta), nonlinearity=nonlinearity, fused=fused).double()
    for p in rnn.parameters():
        p.data = mg.tensor(rng.uniform(-0.6, 0.6, p.shape) + (bias if p.ndim == 1 else 0.0))
    rnn.track_hidden_grads = True
    out, _ = rnn(mg.tensor(rng.standard_normal((1, 1, 3))))
    (out * mg.tensor(np.asarray(delta).reshape(1, 1, -1))).sum().backward()
    before = rnn.weight_hh_l0.grad.data.copy()
    omega = omega_(rnn) if alpha is None else omega_(rnn, alpha=alpha)
    return omega.item(), rnn.weight_hh_l0.grad.data - before


@pytest.mark.parametrize("fused", [True, False])
def test_the_skip_threshold_and_a_dead_step_are_exact(fused):
    """‖δ‖² of exactly 1e-20 is kept (the rule skips only what is below it); 1e-22 is skipped: Ω and the added
    gradient exactly 0; a relu step whose units are all off (f' = 0, so ‖δ ⊙ f′ W‖ = 0) adds (0 − 1)² = 1 to Ω and
    nothing to the gradient, without a division by zero."""
    at_threshold = [6.369616873214543e-11, 7.708954591153108e-11]
    assert at_threshold[0] ** 2 + at_threshold[1] ** 2 == 1e-20
    omega, grad = _one_step(at_threshold, fused=fused)
    assert omega > 0 and np.abs(grad).max() > 0
    omega, grad = _one_step([1e-11, 0.0], fused=fused)
    assert omega == 0.0 and not grad.any()
    omega, grad = _one_step([0.5, -1.5], nonlinearity="relu", bias=-50.0, fused=fused)
    assert omega == 1.0 and not grad.any()


def test_alpha_defaults_to_two():
    _, once = _one_step([0.5, -1.5], alpha=1.0)
    _, default = _one_step([0.5, -1.5], alpha=None)
    np.testing.assert_array_equal(default, 2.0 * once)


@pytest.mark.parametrize("fused", [True, False])
def test_a_packed_batchs_padding_has_exactly_zero_deltas_even_through_h_n(fused):
    """The regularizer leaves padding out because its δ is exactly 0 there (the record's contract), also when the
    loss reads h_n, which a shorter sequence carries past its last step."""
    mg.manual_seed(4)
    rnn = nn.RNN(3, 5, fused=fused).double()
    rnn.track_hidden_grads = True
    lengths = [9, 4, 7, 2]
    x = np.random.default_rng(0).standard_normal((9, 4, 3))
    out, h_n = rnn(pack_padded_sequence(mg.tensor(x), lengths, enforce_sorted=False))
    (pad_packed_sequence(out)[0].sum() + (h_n * h_n).sum()).backward()
    deltas = rnn._records[0].deltas  # its batch in the packed order: longest first
    for b, n in enumerate(sorted(lengths, reverse=True)):
        assert not deltas[n:, b].any() and np.abs(deltas[:n, b]).min() > 0
