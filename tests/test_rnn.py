"""nn.RNN: torch parity, fused == composed, packed sequences, TBPTT, diagnostics, long sequences, errors."""
import math
import warnings
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.gradcheck import gradcheck
from minigrad.nn.utils import rnn as rnn_utils
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


CONFIGS = [dict(nonlinearity=nl, num_layers=L, bias=bias, batch_first=bf)
           for nl in ("tanh", "relu") for L in (1, 3) for bias in (True, False) for bf in (False, True)]


def _numpy_bptt_with_clamp(x, h0, w_ih, w_hh, b, w_out, c):
    """min-char-rnn's loop, batched, with ∂L/∂h_t clamped to [-c, c]: L = Σ_t Σ w_out[t] ⊙ h_t."""
    T = x.shape[0]
    hs = [h0]
    for t in range(T):
        hs.append(np.tanh(x[t] @ w_ih.T + hs[-1] @ w_hh.T + b))
    dw_ih, dw_hh, db, dh_next = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b), np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        dh = np.clip(w_out[t] + dh_next, -c, c)
        draw = (1 - hs[t + 1] ** 2) * dh
        dw_ih += draw.T @ x[t]
        dw_hh += draw.T @ hs[t]
        db += draw.sum(axis=0)
        dh_next = draw @ w_hh
    return dw_ih, dw_hh, db


# ----- fused equals composed, gradcheck, long sequences ---------------------------------------------------------------
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


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_fused_layer_masks_the_gradient_of_outputs_past_each_end_as_the_composed_one(cell):
    """Outputs past a sequence's end are 0 and constant: a gradient sent to them must not reach anything."""
    from minigrad.nn import _elman, _gru, _lstm

    fused, composed, gates, states = {"elman": (partial(_elman.fused_elman, nonlinearity="tanh"),
                                                partial(_elman.composed_elman, nonlinearity="tanh"), 1, 1),
                                      "lstm": (_lstm.fused_lstm, _lstm.composed_lstm, 4, 2),
                                      "gru": (_gru.fused_gru, _gru.composed_gru, 3, 1)}[cell]
    rng = np.random.default_rng(0)
    T, B, n_in, H = 5, 3, 2, 4
    x0, h00 = rng.standard_normal((T, B, n_in)), [rng.standard_normal((B, H)) for _ in range(states)]
    weights = [rng.standard_normal(s) * 0.5 for s in [(gates * H, n_in), (gates * H, H), (gates * H,), (gates * H,)]]
    mask = np.zeros((T, B, 1))
    for b, n in enumerate([5, 3, 2]):  # sorted by length, as packing orders a batch
        mask[:n, b] = 1
    w = [rng.standard_normal((T, B, H)) for _ in range(states)]  # nonzero at the masked outputs too
    results = []
    for layer in ("fused", "composed"):
        x, h0 = mg.tensor(x0, requires_grad=True), [mg.tensor(h, requires_grad=True) for h in h00]
        ws = [mg.tensor(v, requires_grad=True) for v in weights]
        if layer == "fused":
            outs = fused(x, h0, ws, mask[:, :, 0].sum(axis=1), None, None, None)
        else:
            outs = composed(x, h0, ws, mask, None, None)
        sum((o * mg.tensor(v)).sum() for o, v in zip(outs, w)).backward()
        results.append([o.data for o in outs] + [x.grad.data] + [h.grad.data for h in h0]
                       + [v.grad.data for v in ws])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_relu_steps_past_the_end_stay_finite():
    mg.manual_seed(0)
    rnn = nn.RNN(2, 8, nonlinearity="relu").double()
    rnn.weight_hh_l0.data[...] = np.eye(8) * 50  # any step on padding would grow 50x per step
    rnn.weight_ih_l0.data[...] = np.abs(rnn.weight_ih_l0.data)
    rnn.bias_ih_l0.data[...] = rnn.bias_hh_l0.data[...] = 0
    x0 = np.zeros((400, 2, 2))
    x0[:3, 1] = 1.0  # sequence 0 stays at 0 for 400 steps; sequence 1 ends after 3 with a positive state
    x = mg.tensor(x0, requires_grad=True)
    out, h_n = rnn(pack_padded_sequence(x, [400, 3]))
    h_n[:, 1].sum().backward()
    assert np.isfinite(x.grad.data).all()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_hidden_grad_clip_fused_equals_composed_packed_and_multi_layer(bidirectional):
    fused, composed = _pair(input_size=3, hidden_size=4, num_layers=2, bidirectional=bidirectional,
                            hidden_grad_clip=0.3)
    rng = np.random.default_rng(6)
    x0, lengths = rng.standard_normal((6, 3, 3)), [6, 2, 4]
    results = []
    for rnn in (fused, composed):
        x = mg.tensor(x0, requires_grad=True)
        out, h_n = rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
        ((out.data * mg.tensor(rng.standard_normal(out.data.shape) * 0 + 2.0)).sum() + (h_n * 3).sum()).backward()
        results.append([x.grad.data] + [p.grad.data for _, p in sorted(rnn.named_parameters())])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ----- clipping inside BPTT (hidden_grad_clip) ------------------------------------------------------------------------
def test_hidden_grad_clip_equals_torch_hooks_on_every_hidden_state(torch):
    """torch's idiom: a loop over RNNCell with h.register_hook(lambda g: g.clamp(-c, c)) on every state."""
    c, T, B = 0.2, 6, 2
    mg.manual_seed(0)
    ours = nn.RNN(3, 4, hidden_grad_clip=c).double()
    cell = torch.nn.RNNCell(3, 4).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data = torch.tensor(getattr(ours, f"{name}_l0").data.copy())
    x0 = np.random.default_rng(1).standard_normal((T, B, 3))
    w = np.random.default_rng(2).standard_normal((T, B, 4)) * 2
    out, _ = ours(mg.tensor(x0))
    (out * mg.tensor(w)).sum().backward()
    h, outs = torch.zeros(B, 4, dtype=torch.float64), []
    for t in range(T):
        h = cell(torch.tensor(x0[t]), h)
        h.register_hook(lambda g: g.clamp(-c, c))
        outs.append(h)
    (torch.stack(outs) * torch.tensor(w)).sum().backward()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        np.testing.assert_allclose(getattr(ours, f"{name}_l0").grad.data, getattr(cell, name).grad.numpy(),
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("c", [0.05, 0.5, 1e9])
def test_hidden_grad_clip_equals_a_hand_written_loop(fused, c):
    mg.manual_seed(3)
    rnn = nn.RNN(3, 5, fused=fused, hidden_grad_clip=c).double()
    rng = np.random.default_rng(4)
    x, w_out = rng.standard_normal((7, 2, 3)), rng.standard_normal((7, 2, 5)) * 3
    out, _ = rnn(mg.tensor(x))
    (out * mg.tensor(w_out)).sum().backward()
    expect = _numpy_bptt_with_clamp(x, np.zeros((2, 5)), rnn.weight_ih_l0.data, rnn.weight_hh_l0.data,
                                    rnn.bias_ih_l0.data + rnn.bias_hh_l0.data, w_out, c)
    for got, want in zip((rnn.weight_ih_l0.grad, rnn.weight_hh_l0.grad, rnn.bias_ih_l0.grad), expect):
        np.testing.assert_allclose(got.data, want, rtol=1e-12, atol=1e-14)
    if c < 1e9:
        unclipped = _numpy_bptt_with_clamp(x, np.zeros((2, 5)), rnn.weight_ih_l0.data, rnn.weight_hh_l0.data,
                                           rnn.bias_ih_l0.data + rnn.bias_hh_l0.data, w_out, np.inf)
        assert not np.allclose(unclipped[1], expect[1])  # the clamp really acted


@pytest.mark.parametrize("bad", [-0.1, math.nan, "1", True])
def test_hidden_grad_clip_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="hidden_grad_clip"):
        nn.RNN(3, 4, hidden_grad_clip=bad)


# ----- packed sequences -----------------------------------------------------------------------------------------------
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


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pad_sequence_of_two_d_sequences_matches_torch(torch, side, batch_first):
    """Sequences (L_i, 3) with lengths 1, 4 and 2 (so that no length equals the feature width)."""
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((n, 3)) for n in (1, 4, 2)]
    ours = rnn_utils.pad_sequence([mg.tensor(s) for s in seqs], batch_first=batch_first, padding_value=-7.0,
                                  padding_side=side)
    theirs = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=batch_first,
                                             padding_value=-7.0, padding_side=side)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


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


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("total_length", [None, 7, 9])
@pytest.mark.parametrize("padding_value", [0.0, 1.0, -1.5])
def test_pad_packed_sequence_options(batch_first, total_length, padding_value):
    rng = np.random.default_rng(0)
    lengths = [3, 7, 5]
    seqs = [rng.standard_normal((n, 2)) for n in lengths]
    packed = pack_padded_sequence(rnn_utils.pad_sequence([mg.tensor(s) for s in seqs], batch_first=batch_first),
                                  lengths, batch_first=batch_first, enforce_sorted=False)
    padded, got_lengths = pad_packed_sequence(packed, batch_first=batch_first, padding_value=padding_value,
                                              total_length=total_length)
    T = total_length or max(lengths)
    assert padded.shape == ((3, T, 2) if batch_first else (T, 3, 2))
    np.testing.assert_array_equal(got_lengths.numpy(), lengths)
    by_seq = padded.numpy() if batch_first else padded.numpy().transpose(1, 0, 2)
    for b, s in enumerate(seqs):
        np.testing.assert_array_equal(by_seq[b, :len(s)], s)
        assert (by_seq[b, len(s):] == padding_value).all()


def test_packing_helpers_take_edge_inputs_and_name_bad_ones():
    with pytest.raises(RuntimeError, match="Cannot pack empty tensors"):
        pack_padded_sequence(mg.zeros(0), [1])
    with pytest.raises(RuntimeError, match="at least 2-D"):
        pack_padded_sequence(mg.zeros(3), [1])
    one_step = pack_padded_sequence(mg.ones(1, 2, 3), [1, 1])  # T = 1 is not empty
    assert list(np.asarray(one_step.batch_sizes)) == [2]
    whole = pack_padded_sequence(mg.ones(3, 2, 1), np.array([3.0, 2.0]))  # whole floats are lengths
    assert list(np.asarray(whole.batch_sizes)) == [2, 2, 1]
    with pytest.raises(RuntimeError, match="whole numbers"):
        pack_padded_sequence(mg.ones(3, 2, 1), np.array([2.5, 1.0]))
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        pack_padded_sequence(mg.ones(3, 2, 1), [2, 3])
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        rnn_utils.pack_sequence([mg.ones(2, 1), mg.ones(3, 1)])  # enforce_sorted by default, as torch
    with pytest.raises(RuntimeError, match="trailing dims differ"):
        rnn_utils.pad_sequence([mg.ones(3, 2), mg.ones(2, 3)])
    assert rnn_utils.pad_sequence([mg.ones(2, 3)]).shape == (2, 1, 3)  # one sequence
    seqs = [mg.tensor(np.arange(8.0).reshape(4, 2)), mg.tensor(np.arange(2.0).reshape(1, 2))]
    back = rnn_utils.unpad_sequence(rnn_utils.pad_sequence(seqs), [4, 1])  # time-major by default
    assert [b.shape for b in back] == [(4, 2), (1, 2)]
    for a, b in zip(seqs, back):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ----- parity with torch ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("mode", ["batched", "unbatched", "h0", "packed"])
def test_matches_torch(torch, fused, cfg, mode):
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


def test_rnncell_matches_torch(torch):
    ours, theirs = nn.RNNCell(3, 4).double(), torch.nn.RNNCell(3, 4).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3))
    np.testing.assert_allclose(ours(mg.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours(mg.tensor(x[0])).data, theirs(torch.tensor(x[0])).detach().numpy(), rtol=1e-12)
    h = np.random.default_rng(1).standard_normal((2, 4))
    for xi, hi in ((x, h), (x[0], h[0])):  # batched and unbatched, with a given state
        np.testing.assert_allclose(ours(mg.tensor(xi), mg.tensor(hi)).data,
                                   theirs(torch.tensor(xi), torch.tensor(hi)).detach().numpy(), rtol=1e-12)


# ----- the fused backward's memory ------------------------------------------------------------------------------------
def test_fused_backward_allocates_only_the_input_gradient_once_warm():
    """Memory, measured: a warm fused backward with a leaf input allocates one array of the input's size, dX,
    which becomes x.grad itself (no copy), and reuses its dA array from the call before; a layer whose input
    needs no gradient allocates none. The gradients are the ones the composed layer gives."""
    import tracemalloc

    T, B, H = 200, 8, 32  # the small arrays (weights, biases, dh_0) stay under 5% of the input's size
    x_np = np.random.default_rng(0).standard_normal((T, B, H)).astype(np.float32)
    mg.manual_seed(0)
    rnn = nn.RNN(H, H, fused=True)
    ref = nn.RNN(H, H, fused=False)
    ref.load_state_dict(rnn.state_dict())

    def backward_peak(model, needs_grad):
        model.zero_grad()
        x = mg.tensor(x_np, requires_grad=needs_grad)
        out, _ = model(x)
        loss = out.sum()  # its gradient is a broadcast: no array of the output's size
        tracemalloc.start()
        try:
            loss.backward()
            return tracemalloc.get_traced_memory()[1], x
        finally:
            tracemalloc.stop()
    backward_peak(rnn, True)  # the first call makes the dA array it keeps
    peak, x = backward_peak(rnn, True)
    assert x_np.nbytes <= peak < 1.5 * x_np.nbytes
    peak_no_input_grad, _ = backward_peak(rnn, False)
    assert peak_no_input_grad < 0.5 * x_np.nbytes
    _, x_ref = backward_peak(ref, True)
    pairs = [(x.grad, x_ref.grad)] + [(p.grad, q.grad) for p, q in zip(rnn.parameters(), ref.parameters())]
    for got, want in pairs:  # float32 sums over T·B terms in another order: round-off relative to the largest
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want.numpy()).max())
    assert not np.shares_memory(rnn.bias_ih_l0.grad.numpy(), rnn.bias_hh_l0.grad.numpy())


def test_a_copy_of_an_rnn_leaves_the_backward_work_array_behind_and_still_trains_alike():
    import copy
    import pickle

    mg.manual_seed(0)
    rnn = nn.RNN(8, 16)
    x = np.random.default_rng(0).standard_normal((30, 4, 8)).astype(np.float32)
    rnn(mg.tensor(x))[0].sum().backward()
    assert [a.size for a in rnn._work.free["dA"]] == [30 * 4 * 16]
    for twin in (copy.deepcopy(rnn), pickle.loads(pickle.dumps(rnn))):
        assert twin._work.free == {} and len(rnn._work.free["dA"]) == 1
        twin.zero_grad()
        rnn.zero_grad()
        for model in (rnn, twin):
            model(mg.tensor(x))[0].sum().backward()
        for p, q in zip(rnn.parameters(), twin.parameters()):
            assert p.grad.numpy().tobytes() == q.grad.numpy().tobytes()


# ----- truncated BPTT -------------------------------------------------------------------------------------------------
def test_tbptt_with_k2_at_least_the_length_equals_full_bptt():
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


def test_tbptt_of_a_batch_first_rnn_cuts_along_time():
    """batch_first: the windows are taken along dim 1, giving the time-major run's outputs and gradients."""
    fused, twin = _pair(input_size=2, hidden_size=3)
    mg.manual_seed(0)
    bf = nn.RNN(2, 3, batch_first=True).double()
    bf.load_state_dict(fused.state_dict())
    x = np.random.default_rng(0).standard_normal((9, 2, 2))
    grads = []
    for rnn, data in ((fused, x), (bf, x.transpose(1, 0, 2))):
        outs = []
        for steps, output, _ in truncated_bptt(rnn, mg.tensor(data.copy()), k1=4, k2=5):
            new = output[-(steps.stop - steps.start):] if rnn is fused else output[:, -(steps.stop - steps.start):]
            (new * new).sum().backward()
            outs.append(new.detach().numpy() if rnn is fused else new.detach().numpy().transpose(1, 0, 2))
        grads.append(({n: p.grad.numpy() for n, p in rnn.named_parameters()}, np.concatenate(outs)))
    np.testing.assert_allclose(grads[1][1], grads[0][1], rtol=1e-12)
    for n in grads[0][0]:
        np.testing.assert_allclose(grads[1][0][n], grads[0][0][n], rtol=1e-12, err_msg=n)


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


@pytest.mark.parametrize("k1,k2", [(3, 3), (2, 5), (4, 4), (5, 12)])
def test_truncated_bptt_gradients_equal_an_explicitly_truncated_reference(k1, k2):
    """Each update's gradient is the window's loss differentiated with the window's start state a constant
    (computed here by a separate no_grad run), summed over the updates."""
    mg.manual_seed(0)
    rnn = nn.RNN(2, 3, num_layers=2).double()
    rng = np.random.default_rng(0)
    x0, w = rng.standard_normal((12, 2, 2)), rng.standard_normal((12, 2, 3))
    x = mg.tensor(x0)
    for steps, output, _ in truncated_bptt(rnn, x, k1=k1, k2=k2):
        new = output[-(steps.stop - steps.start):]
        (new * mg.tensor(w[steps])).sum().backward()
    got = {n: p.grad.numpy().copy() for n, p in rnn.named_parameters()}
    rnn.zero_grad()
    end = 0
    while end < 12:
        new_from, end = end, min(end + k1, 12)
        start = max(0, end - k2)
        with mg.no_grad():
            h_start = None if start == 0 else rnn(mg.tensor(x0[:start]))[1]
        out, _ = rnn(mg.tensor(x0[start:end]), None if h_start is None else mg.tensor(h_start.numpy()))
        (out[new_from - start:] * mg.tensor(w[new_from:end])).sum().backward()
    for name, p in rnn.named_parameters():
        np.testing.assert_allclose(got[name], p.grad.numpy(), rtol=1e-12, atol=1e-14, err_msg=name)


def test_truncated_bptt_sends_no_gradient_into_a_given_initial_state():
    """Every window starts from a detached state, h0 included: h0 gets no gradient (as the explicit
    "detach between chunks" loop would give it none after the first chunk, and TBPTT's windows all cut)."""
    rnn = nn.RNN(2, 3).double()
    h0 = mg.tensor(np.ones((1, 2, 3)), requires_grad=True)
    for _, output, _ in truncated_bptt(rnn, mg.tensor(np.ones((6, 2, 2))), k1=2, k2=3, h0=h0):
        output.sum().backward()
    assert h0.grad is None and rnn.weight_hh_l0.grad is not None


def test_truncated_bptt_checks_its_periods_and_works_for_any_callable():
    rnn = nn.RNN(2, 3).double()
    x = mg.tensor(np.ones((5, 1, 2)))
    assert len(list(truncated_bptt(rnn, x, k1=1, k2=1))) == 5
    for k1, k2 in ((True, 2), (0, 2), (2, 1), (2, 2.0)):
        with pytest.raises(ValueError):
            list(truncated_bptt(rnn, x, k1=k1, k2=k2))

    class Plain:  # no batch_first attribute: time is axis 0
        def __call__(self, inp, h):
            return rnn(inp, h)

    assert [s for s, _, _ in truncated_bptt(Plain(), x, k1=2, k2=2)] == [slice(0, 2), slice(2, 4), slice(4, 5)]


# ----- hidden gradient norms ------------------------------------------------------------------------------------------
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


def test_hidden_grads_are_recorded_only_when_asked():
    rnn = nn.RNN(3, 4)
    assert rnn.track_hidden_grads is False
    rnn(mg.ones(5, 2, 3))[0].sum().backward()
    assert rnn.hidden_grad_norms is None
    rnn.track_hidden_grads = True
    rnn(mg.ones(5, 2, 3))[0].sum().backward()
    assert rnn.hidden_grad_norms.shape == (1, 5)


def test_hidden_grad_norms_are_none_before_any_backward():
    rnn = nn.RNN(2, 3)
    assert rnn.hidden_grad_norms is None
    rnn.track_hidden_grads = True
    rnn(mg.randn(4, 1, 2))
    assert rnn.hidden_grad_norms is None  # recorded by backward, not by the forward pass


# ----- construction and bad input -------------------------------------------------------------------------------------
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


def test_rnncell_names_a_wrong_input_width():
    for bad in (mg.ones(2, 5), mg.ones(5), mg.ones(2, 2, 3), mg.ones(())):  # a wrong width or a wrong ndim
        with pytest.raises(RuntimeError, match="RNNCell: input must be"):
            nn.RNNCell(3, 4)(bad)
    with pytest.raises(RuntimeError, match="input has dtype float64"):
        nn.RNNCell(3, 4)(mg.zeros(2, 3, dtype=np.float64))
    for bad in (dict(hidden_size=0), dict(input_size=2.0), dict(nonlinearity="gelu")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            nn.RNNCell(**{"input_size": 3, "hidden_size": 4, **bad})
    with pytest.raises(RuntimeError, match="trailing dims differ"):
        rnn_utils.pad_sequence([mg.tensor(1.0), mg.tensor(2.0)])


def test_parameters_start_uniform_in_plus_minus_one_over_sqrt_hidden():
    """torch's init: every weight and bias from U(-1/√H, 1/√H). Of n draws, all stay below f·k with chance
    ((1 + f) / 2)^n; f is set so that this is 1e-9 per end and parameter (f = 0.92 for a 64 x 8 weight, 0.45
    for a bias of 64): any random state passes, and a range narrower than f·k fails."""
    rnn = nn.RNN(8, 64)
    k = 1 / np.sqrt(64)
    for name, p in rnn.named_parameters():
        w = p.detach().numpy()
        f = 2 * 1e-9 ** (1 / w.size) - 1
        assert np.abs(w).max() <= k, name
        assert w.max() > f * k and w.min() < -f * k, name


def test_dropout_warning_only_for_a_single_layer_with_dropout():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.RNN(3, 4, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.RNN(3, 4)
        nn.RNN(3, 4, num_layers=2, dropout=0.5)


def test_repr_names_the_options_that_differ_from_their_defaults():
    plain = repr(nn.RNN(3, 4))
    assert "RNN(3, 4, num_layers=1" in plain and "dropout" not in plain and "bidirectional" not in plain
    rich = repr(nn.RNN(3, 4, num_layers=2, dropout=0.25, bidirectional=True))
    assert "dropout=0.25" in rich and "bidirectional=True" in rich
