"""nn.RNN: torch parity, fused == composed, packed sequences, TBPTT, diagnostics, long sequences, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.gradcheck import gradcheck
from minigrad.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, truncated_bptt


def _pair(seed=0, **kwargs):
    """Two float64 RNNs with identical weights: fused and composed."""
    mg.manual_seed(seed)
    fused = nn.RNN(fused=True, **kwargs).double()
    composed = nn.RNN(fused=False, **kwargs).double()
    composed.load_state_dict(fused.state_dict())
    return fused, composed


def _run(rnn, x, h0=None, weights=None):
    xt = mg.tensor(x, requires_grad=True)
    h0t = None if h0 is None else mg.tensor(h0, requires_grad=True)
    out, h_n = rnn(xt, h0t)
    w = np.random.default_rng(1).standard_normal(out.shape) if weights is None else weights
    ((out * mg.tensor(w)).sum() + (h_n * h_n).sum()).backward()
    grads = {n: p.grad for n, p in rnn.named_parameters()}
    return out.data, h_n.data, xt.grad, (None if h0t is None else h0t.grad), grads


@settings(max_examples=15)
@given(T=st.integers(1, 6), B=st.integers(1, 3), n_in=st.integers(1, 4), H=st.integers(1, 5), L=st.integers(1, 3),
       nl=st.sampled_from(["tanh", "relu"]), bias=st.booleans(), give_h0=st.booleans())
def test_fused_equals_composed(T, B, n_in, H, L, nl, bias, give_h0):
    fused, composed = _pair(input_size=n_in, hidden_size=H, num_layers=L, nonlinearity=nl, bias=bias)
    rng = np.random.default_rng(T * 100 + B)
    x = rng.standard_normal((T, B, n_in))
    h0 = rng.standard_normal((L, B, H)) if give_h0 else None
    a, b = _run(fused, x, h0), _run(composed, x, h0)
    for u, v in zip(a[:4], b[:4]):
        if u is not None:
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-13)
    for name in a[4]:
        np.testing.assert_allclose(a[4][name], b[4][name], rtol=1e-12, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("nl", ["tanh", "relu"])
def test_fused_backward_passes_gradcheck(nl):
    mg.manual_seed(2)
    rnn = nn.RNN(2, 3, num_layers=2, nonlinearity=nl).double()
    x = mg.tensor(np.random.default_rng(3).standard_normal((4, 2, 2)), requires_grad=True)
    h0 = mg.tensor(np.random.default_rng(4).standard_normal((2, 2, 3)), requires_grad=True)
    params = list(rnn.parameters())

    def f(x, h0, *ps):
        out, h_n = rnn(x, h0)
        return out.sum(dim=2) + h_n.sum()

    assert gradcheck(f, [x, h0, *params])


def test_both_implementations_run_3000_steps():
    for fused in (True, False):
        mg.manual_seed(0)
        rnn = nn.RNN(2, 4, fused=fused)
        x = mg.tensor(np.random.default_rng(0).standard_normal((3000, 2, 2)).astype(np.float32), requires_grad=True)
        out, h_n = rnn(x)
        out[-1].sum().backward()
        assert out.shape == (3000, 2, 4) and np.all(np.isfinite(rnn.weight_hh_l0.grad))


def test_hidden_grad_norms_agree_between_implementations_and_with_the_composed_grads():
    fused, composed = _pair(input_size=3, hidden_size=4, num_layers=2)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    for rnn in (fused, composed):
        rnn.track_hidden_grads = True
        _run(rnn, x)
    assert fused.hidden_grad_norms.shape == (2, 6)
    np.testing.assert_allclose(fused.hidden_grad_norms, composed.hidden_grad_norms, rtol=1e-12)
    # independent check of the last layer: its input is the first layer's output; then
    # dL/dh_t = w_t + (dL/dh_{t+1} ⊙ (1 - h_{t+1}²)) W_hh, starting from dL/dh_T = w_T + 2 h_T
    first = nn.RNN(3, 4).double()
    first.load_state_dict({k: v for k, v in fused.state_dict().items() if k.endswith("_l0")})
    cell = nn.RNNCell(4, 4).double()
    cell.load_state_dict({k.replace("_l1", ""): v for k, v in fused.state_dict().items() if k.endswith("_l1")})
    with mg.no_grad():
        inp, _ = first(mg.tensor(x))
        hs, h = [], mg.tensor(np.zeros((2, 4)))
        for t in range(6):
            h = cell(inp[t], h)
            hs.append(h.data)
    w = np.random.default_rng(1).standard_normal((6, 2, 4))  # the weights _run used
    expected, dh = np.zeros(6), 2 * hs[-1]
    for t in range(5, -1, -1):
        dh = dh + w[t]
        expected[t] = np.linalg.norm(dh)
        dh = (dh * (1 - hs[t] ** 2)) @ cell.weight_hh.data
    np.testing.assert_allclose(fused.hidden_grad_norms[1], expected, rtol=1e-10)


def test_tbptt_with_k2_at_least_T_equals_full_bptt():
    fused, _ = _pair(input_size=2, hidden_size=3)
    x = mg.tensor(np.random.default_rng(0).standard_normal((12, 2, 2)))
    w = np.random.default_rng(1).standard_normal((12, 2, 3))
    out, _ = fused(x)
    (out * mg.tensor(w)).sum().backward()
    full = {n: p.grad.numpy().copy() for n, p in fused.named_parameters()}
    fused.zero_grad()
    for steps, output, _ in truncated_bptt(fused, x, k1=5, k2=12):
        new = output[-(steps.stop - steps.start):]
        (new * mg.tensor(w[steps])).sum().backward()
    for n, p in fused.named_parameters():
        np.testing.assert_allclose(p.grad, full[n], rtol=1e-12, err_msg=n)


def test_tbptt_truncates_and_carries_the_state():
    fused, _ = _pair(input_size=2, hidden_size=3)
    x = mg.tensor(np.random.default_rng(0).standard_normal((9, 1, 2)))
    outs = []
    for _, output, _ in truncated_bptt(fused, x, k1=3, k2=3):
        assert output.shape[0] == 3
        outs.append(output.data)
    full, _ = fused(x)
    np.testing.assert_allclose(np.concatenate(outs), full.data, rtol=1e-12)  # carried state: same forward
    with pytest.raises(ValueError, match="k2"):
        next(truncated_bptt(fused, x, k1=4, k2=2))


# ----- packed sequences -----------------------------------------------------------------------------------
def test_pack_and_pad_round_trip_unsorted():
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    lengths = [2, 4, 1]
    packed = pack_padded_sequence(mg.tensor(x), lengths, enforce_sorted=False)
    np.testing.assert_array_equal(packed.batch_sizes, [3, 2, 1, 1])
    padded, lens = pad_packed_sequence(packed)
    np.testing.assert_array_equal(lens, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(padded.data[:n, b], x[:n, b])
        assert not padded.data[n:, b].any()


def test_packed_rnn_h_n_is_each_sequences_last_valid_state_and_grads_skip_padding():
    fused, composed = _pair(input_size=2, hidden_size=3, num_layers=2)
    x = np.random.default_rng(0).standard_normal((5, 3, 2))
    lengths = [3, 5, 2]
    for rnn in (fused, composed):
        xt = mg.tensor(x, requires_grad=True)
        out, h_n = rnn(pack_padded_sequence(xt, lengths, enforce_sorted=False))
        for b, n in enumerate(lengths):  # same as running that sequence alone
            _, h_alone = rnn(mg.tensor(x[:n, b:b + 1]))
            np.testing.assert_allclose(h_n.data[:, b], h_alone.data[:, 0], rtol=1e-12)
        (out.data.sum() + h_n.sum()).backward()
        for b, n in enumerate(lengths):
            assert not xt.grad.data[n:, b].any() and xt.grad.data[:n, b].any()


def test_pack_errors_name_the_argument_with_torchs_types():
    x = mg.tensor(np.zeros((4, 3, 2)))
    cases = [([2, 4, 1], "decreasing"), ([5, 2, 1], r"at most the padded length 4"), ([4, 2, 0], "greater than 0"),
             ([4, 2], r"batch_size=3"), ([4.0, 2.5, 1.0], "whole numbers"), ([np.inf, 2.0, 1.0], "whole numbers"),
             ([], "empty"), (["4", "2", "1"], "integers")]
    for lengths, message in cases:
        with pytest.raises(RuntimeError, match=message):  # torch's type; also a ValueError
            pack_padded_sequence(x, lengths)
        with pytest.raises(ValueError, match=message):
            pack_padded_sequence(x, lengths)


def test_bad_input_errors():
    rnn = nn.RNN(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="3-D"):
        rnn(mg.zeros(2, 3, 3, 1))
    with pytest.raises(ValueError, match=r"input_size 3.*\(5, 2, 7\)"):
        rnn(mg.zeros(5, 2, 7))
    with pytest.raises(RuntimeError, match=r"expected h0 of shape \(2, 2, 4\)"):
        rnn(mg.zeros(5, 2, 3), mg.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="hidden_size"):
        nn.RNN(3, 0)
    with pytest.raises(RuntimeError, match="length larger than 0"):
        rnn(mg.zeros(0, 2, 3))
    for fused in (True, False):  # torch raises for mixed dtypes on every path
        r = nn.RNN(3, 4, fused=fused)
        with pytest.raises(RuntimeError, match="h0 has dtype float64"):
            r(mg.zeros(5, 2, 3), mg.zeros(1, 2, 4, dtype=np.float64))
        with pytest.raises(RuntimeError, match="input has dtype float64"):
            r(mg.zeros(5, 2, 3, dtype=np.float64))
    with pytest.raises(RuntimeError, match="hx has dtype float64"):
        nn.RNNCell(3, 4)(mg.zeros(2, 3), mg.zeros(2, 4, dtype=np.float64))
    for bad in (dict(dropout=1.5), dict(dropout="0.1"), dict(bidirectional=1), dict(num_layers=True)):
        with pytest.raises(ValueError):
            nn.RNN(3, 4, **bad)


def test_parameter_names_shapes_and_init_bounds():
    rnn = nn.RNN(3, 16, num_layers=2, bias=True)
    shapes = {n: p.shape for n, p in rnn.named_parameters()}
    assert shapes == {"weight_ih_l0": (16, 3), "weight_hh_l0": (16, 16), "bias_ih_l0": (16,), "bias_hh_l0": (16,),
                      "weight_ih_l1": (16, 16), "weight_hh_l1": (16, 16), "bias_ih_l1": (16,), "bias_hh_l1": (16,)}
    for p in rnn.parameters():
        assert np.abs(p.data).max() <= 0.25
    assert [n for n, _ in nn.RNN(3, 4, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]


# ----- torch parity -----------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")

CONFIGS = [dict(nonlinearity=nl, num_layers=L, bias=bias, batch_first=bf)
           for nl in ("tanh", "relu") for L in (1, 3) for bias in (True, False) for bf in (False, True)]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("mode", ["batched", "unbatched", "h0", "packed"])
def test_matches_torch(fused, cfg, mode):
    if mode == "unbatched" and cfg["batch_first"]:
        pytest.skip("batch_first does not apply to unbatched input")
    mg.manual_seed(0)
    ours = nn.RNN(3, 4, fused=fused, **cfg).double()
    theirs = torch.nn.RNN(3, 4, **cfg).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(5)
    L = cfg["num_layers"]
    shape = (5, 3) if mode == "unbatched" else ((3, 5, 3) if cfg["batch_first"] else (5, 3, 3))
    x = rng.standard_normal(shape)
    h0 = rng.standard_normal((L, 4) if mode == "unbatched" else (L, 3, 4))
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hm, ht = mg.tensor(h0, requires_grad=True), torch.tensor(h0, requires_grad=True)
    give_h0 = mode in ("h0", "unbatched", "packed")
    if mode == "packed":
        lengths = [4, 5, 2]
        om, hn_m = ours(pack_padded_sequence(xm, lengths, cfg["batch_first"], enforce_sorted=False), hm)
        ot, hn_t = theirs(torch.nn.utils.rnn.pack_padded_sequence(xt, lengths, cfg["batch_first"],
                                                                 enforce_sorted=False), ht)
        np.testing.assert_array_equal(om.batch_sizes, ot.batch_sizes.numpy())
        om, ot = om.data, ot.data
    else:
        om, hn_m = ours(xm, hm if give_h0 else None)
        ot, hn_t = theirs(xt, ht if give_h0 else None)
    w = rng.standard_normal(om.shape)
    ((om * mg.tensor(w)).sum() + hn_m.pow(2).sum()).backward()
    ((ot * torch.tensor(w)).sum() + hn_t.pow(2).sum()).backward()
    np.testing.assert_allclose(om.data, ot.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hn_m.data, hn_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-13)
    if give_h0:
        np.testing.assert_allclose(hm.grad, ht.grad.numpy(), rtol=1e-10, atol=1e-13)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs, name).grad.numpy(), rtol=1e-10, atol=1e-13,
                                   err_msg=name)


def test_rnncell_matches_torch():
    ours, theirs = nn.RNNCell(3, 4).double(), torch.nn.RNNCell(3, 4).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3))
    np.testing.assert_allclose(ours(mg.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours(mg.tensor(x[0])).data, theirs(torch.tensor(x[0])).detach().numpy(), rtol=1e-12)
