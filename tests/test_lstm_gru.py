"""nn.LSTM, nn.GRU and their cells: torch parity (values, h_n/c_n, every gradient) in every configuration, the
fused BPTT equal to the composed autograd one, the compiled and array backward loops equal, PyTorch's own RNN
argument tests (ported from test/test_nn.py: test_rnn_args_check, test_RNN_cell_no_broadcasting,
test_LSTM_cell, test_GRU_cell), and training with the rest of minigrad (GradBuffer, fused Adam, TBPTT)."""
import copy

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.nn.utils.rnn import pack_padded_sequence

KINDS = ["LSTM", "GRU"]


def _states(kind, hx):
    return hx if kind == "LSTM" else (hx,)


def _both(torch, kind, seed=0, **cfg):
    ours = getattr(nn, kind)(3, 4, **cfg).double()
    cfg.pop("fused", None)
    cfg.pop("hidden_grad_clip", None)
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, kind)(3, 4, **cfg).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


CONFIGS = [dict(num_layers=L, bias=bias, batch_first=bf, bidirectional=bi)
           for L in (1, 2) for bias in (True, False) for bf in (False, True) for bi in (False, True)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("mode", ["batched", "unbatched", "hx", "packed"])
def test_matches_torch(torch, kind, fused, cfg, mode):
    if mode == "unbatched" and cfg["batch_first"]:
        pytest.skip("batch_first does not apply to unbatched input")
    ours, theirs = _both(torch, kind, fused=fused, **cfg)
    rng = np.random.default_rng(5)
    layers = cfg["num_layers"] * (2 if cfg["bidirectional"] else 1)
    shape = (5, 3) if mode == "unbatched" else ((3, 5, 3) if cfg["batch_first"] else (5, 3, 3))
    x = rng.standard_normal(shape)
    hx = [rng.standard_normal((layers, 4) if mode == "unbatched" else (layers, 3, 4)) for _ in range(2)]
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hm = [mg.tensor(h, requires_grad=True) for h in hx]
    ht = [torch.tensor(h, requires_grad=True) for h in hx]
    give = mode != "batched"
    arg_m = (tuple(hm) if kind == "LSTM" else hm[0]) if give else None
    arg_t = (tuple(ht) if kind == "LSTM" else ht[0]) if give else None
    if mode == "packed":
        lengths = [4, 5, 2]  # unsorted
        om, last_m = ours(pack_padded_sequence(xm, lengths, cfg["batch_first"], enforce_sorted=False), arg_m)
        ot, last_t = theirs(torch.nn.utils.rnn.pack_padded_sequence(xt, lengths, cfg["batch_first"],
                                                                   enforce_sorted=False), arg_t)
        np.testing.assert_array_equal(om.batch_sizes, ot.batch_sizes.numpy())
        om, ot = om.data, ot.data
    else:
        om, last_m = ours(xm, arg_m)
        ot, last_t = theirs(xt, arg_t)
    w = rng.standard_normal(om.shape)
    loss_m = (om * mg.tensor(w)).sum() + sum((s * s * (i + 1)).sum() for i, s in enumerate(_states(kind, last_m)))
    loss_t = (ot * torch.tensor(w)).sum() + sum((s * s * (i + 1)).sum() for i, s in enumerate(_states(kind, last_t)))
    loss_m.backward()
    loss_t.backward()
    np.testing.assert_allclose(om.data, ot.detach().numpy(), rtol=1e-12, atol=1e-14)
    for a, b in zip(_states(kind, last_m), _states(kind, last_t)):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    if give:
        for a, b in list(zip(hm, ht))[:2 if kind == "LSTM" else 1]:
            np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs, name).grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_matches_torch_to_float32_round_off(torch, kind):
    theirs = getattr(torch.nn, kind)(8, 16, num_layers=2)
    ours = getattr(nn, kind)(8, 16, num_layers=2)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((20, 4, 8)).astype(np.float32)
    om, _ = ours(mg.tensor(x))
    ot, _ = theirs(torch.tensor(x))
    om.sum().backward()
    ot.sum().backward()
    assert om.dtype == mg.float32
    np.testing.assert_allclose(om.data, ot.detach().numpy(), rtol=1e-5, atol=1e-6)
    for name, p in ours.named_parameters():
        want = getattr(theirs, name).grad.numpy()
        np.testing.assert_allclose(p.grad, want, rtol=1e-4, atol=1e-5 * np.abs(want).max(), err_msg=name)


@pytest.mark.parametrize("kind,cell", [("LSTM", "LSTMCell"), ("GRU", "GRUCell")])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_torch(torch, kind, cell, batched, bias):
    theirs = getattr(torch.nn, cell)(3, 4, bias=bias).double()
    ours = getattr(nn, cell)(3, 4, bias=bias).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3) if batched else (3,))
    hs = [rng.standard_normal((2, 4) if batched else (4,)) for _ in range(2)]
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hm = [mg.tensor(h, requires_grad=True) for h in hs]
    ht = [torch.tensor(h, requires_grad=True) for h in hs]
    outs_m = _states(kind, ours(xm, tuple(hm) if kind == "LSTM" else hm[0]))
    outs_t = _states(kind, theirs(xt, tuple(ht) if kind == "LSTM" else ht[0]))
    sum((o * (i + 2)).sum() for i, o in enumerate(outs_m)).backward()
    sum((o * (i + 2)).sum() for i, o in enumerate(outs_t)).backward()
    for a, b in zip(outs_m, outs_t):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs, name).grad.numpy(), rtol=1e-12, atol=1e-14)
    zeros_m = _states(kind, ours(xm))  # hx=None: zeros
    zeros_t = _states(kind, theirs(xt))
    for a, b in zip(zeros_m, zeros_t):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-12, atol=1e-14)


# ----- fused == composed, the two backward loops ------------------------------------------------------------------
def _grads(model, x, hx, kind, packed=None):
    model.zero_grad()
    xt = mg.tensor(x, requires_grad=True)
    inp = pack_padded_sequence(xt, packed, enforce_sorted=False) if packed else xt
    out, last = model(inp, hx)
    out = out.data if packed else out
    w = np.random.default_rng(9).standard_normal(out.shape)
    ((out * mg.tensor(w)).sum() + sum((s * s).sum() for s in _states(kind, last))).backward()
    return [out.data, xt.grad.data] + [p.grad.data for p in model.parameters()]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("clip", [None, 0.05])
def test_fused_equals_composed_with_clip_and_recorded_norms(kind, clip):
    mg.manual_seed(3)
    fused = getattr(nn, kind)(3, 5, num_layers=2, bidirectional=True, hidden_grad_clip=clip).double()
    composed = getattr(nn, kind)(3, 5, num_layers=2, bidirectional=True, hidden_grad_clip=clip,
                                 fused=False).double()
    composed.load_state_dict(fused.state_dict())
    x = np.random.default_rng(0).standard_normal((7, 4, 3))
    results = []
    for model in (fused, composed):
        model.track_hidden_grads = True
        results.append((_grads(model, x, None, kind, packed=[7, 3, 5, 1]), model.hidden_grad_norms))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    assert results[0][1].shape == (4, 7)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-11, atol=1e-13)
    if clip is not None:  # the clamp acts: the gradients differ from an unclamped backward
        free = copy.deepcopy(fused)
        free.hidden_grad_clip = None
        assert not np.allclose(_grads(free, x, None, kind, packed=[7, 3, 5, 1])[1], results[0][0][1])


COMPILED_PASSES = {  # the CPU's compiled per-step passes and the array versions a CuPy device runs
    "LSTM": [("_add_recurrent", "_add_recurrent_arrays"), ("_cell_step", "_cell_step_arrays"),
             ("_steps_compiled", "_steps_arrays")],
    "GRU": [("_pre_activations", "_pre_activations_arrays"), ("_candidate", "_candidate_arrays"),
            ("_new_state", "_new_state_arrays"), ("_steps_compiled", "_steps_arrays")],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("clip", [None, 0.05])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_passes_equal_the_array_ones(monkeypatch, kind, clip, dtype, bias):
    """The CPU's compiled per-step passes, forward and backward, against the array versions a CuPy device runs,
    here on NumPy arrays: the same operations in the same order and dtype, so the same values, bit for bit (the sign
    of a zero aside: np.clip's choice between +0 and -0 is NumPy's)."""
    from minigrad.nn import _gru, _lstm

    module = _lstm if kind == "LSTM" else _gru
    mg.manual_seed(1)
    rnn = getattr(nn, kind)(3, 6, hidden_grad_clip=clip, dtype=dtype, bias=bias)
    rnn.track_hidden_grads = True
    x = np.random.default_rng(0).standard_normal((9, 4, 3)).astype(dtype)
    want = _grads(rnn, x, None, kind, packed=[9, 2, 6, 4])
    norms = rnn.hidden_grad_norms
    for compiled, arrays in COMPILED_PASSES[kind]:
        monkeypatch.setattr(module, compiled, getattr(module, arrays))
    for kept in rnn._work.free.values():  # reused work arrays: what a pass fails to write shows as NaN
        for array in kept:
            array.fill(np.nan)
    got = _grads(rnn, x, None, kind, packed=[9, 2, 6, 4])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(rnn.hidden_grad_norms, norms)
    if clip is not None:  # the clamp acts on this input
        assert max(abs(r.deltas).max() for r in rnn._records) > clip
    if kind == "LSTM":
        assert "M" in rnn._work.free  # the array version hands its factor array back too


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("frozen", ["input", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"])
def test_a_frozen_input_gets_no_gradient_and_the_others_equal_the_composed_ones(kind, frozen):
    """The fused backward computes only what needs a gradient: x and each parameter frozen in turn, the others'
    gradients equal the composed layer's."""
    mg.manual_seed(3)
    fused = getattr(nn, kind)(3, 4).double()
    composed = getattr(nn, kind)(3, 4, fused=False).double()
    composed.load_state_dict(fused.state_dict())
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    results = []
    for rnn in (fused, composed):
        if frozen != "input":
            getattr(rnn, frozen).requires_grad_(False)
        xt = mg.tensor(x, requires_grad=frozen != "input")
        out, _ = rnn(xt)
        (out * out).sum().backward()
        results.append((xt.grad, {n: p.grad for n, p in rnn.named_parameters()}))
    (x_fused, g_fused), (x_comp, g_comp) = results
    assert (x_fused is None) == (frozen == "input")
    if x_fused is not None:
        np.testing.assert_allclose(x_fused.numpy(), x_comp.numpy(), rtol=1e-12)
    for name, g in g_fused.items():
        assert (g is None) == (name == frozen), name
        if g is not None:
            np.testing.assert_allclose(g.numpy(), g_comp[name].numpy(), rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_the_fused_layers_hand_back_their_work_arrays_and_reuse_them(kind):
    """Every work array a fused layer takes goes back to the module's pool once backward has used it, and the next
    call takes the same arrays again (no new ones of the layer's size)."""
    rnn = getattr(nn, kind)(3, 5)
    assert rnn.fused
    x = mg.randn(4, 2, 3)
    rnn(x)[0].sum().backward()
    first = {purpose: [id(a) for a in arrays] for purpose, arrays in rnn._work.free.items()}
    expected = {"RNN": {"dA"}, "LSTM": {"dA", "gates", "tanh_c"}, "GRU": {"dP", "dG", "gates", "g_n"}}[kind]
    assert set(first) == expected and all(len(ids) == 1 for ids in first.values())
    rnn(x)[0].sum().backward()
    assert {purpose: [id(a) for a in arrays] for purpose, arrays in rnn._work.free.items()} == first


@pytest.mark.parametrize("kind", KINDS)
def test_the_fused_gradients_become_the_grads_without_a_copy(kind):
    """The engine takes over the arrays a fused LSTM or GRU backward returns (fresh_grads): x.grad and the weights'
    grads are those very arrays."""
    from minigrad.nn import _gru, _lstm

    layer = _lstm.LSTMLayer if kind == "LSTM" else _gru.GRULayer
    returned = []
    original = layer.backward

    def spy(ctx, grad):
        out = original(ctx, grad)
        returned.extend(out)
        return out
    rnn = getattr(nn, kind)(3, 4)
    x = mg.randn(5, 2, 3, requires_grad=True)
    layer.backward = staticmethod(spy)
    try:
        rnn(x)[0].sum().backward()
    finally:
        layer.backward = staticmethod(original)
    assert x.grad.numpy() is returned[0]
    assert rnn.weight_ih_l0.grad.numpy() is returned[-4]
    assert rnn.weight_hh_l0.grad.numpy() is returned[-3]


def test_lstm_backward_lets_a_nan_gradient_through_the_clamp_as_numpy_does():
    lstm = nn.LSTM(2, 3, hidden_grad_clip=1.0).double()
    out, _ = lstm(mg.tensor(np.ones((4, 1, 2))))
    (out * mg.tensor(np.array([np.nan, 1.0, 1.0])[None, None, :])).sum().backward()
    assert np.isnan(lstm.weight_hh_l0.grad.data).any()


# ----- PyTorch's own tests, ported (test/test_nn.py) ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_rnn_args_check(kind):
    """torch's test_rnn_args_check: a wrong input width, a wrong hidden size, batch or layer count raise
    RuntimeError, whatever the cell."""
    input_size, hidden_size, num_layers, seq_len, batch = 3, 5, 2, 4, 6
    model = getattr(nn, kind)(input_size, hidden_size, num_layers)

    def hx(shape):
        h = mg.zeros(shape, dtype=mg.float32)
        return (h, mg.zeros(shape, dtype=mg.float32)) if kind == "LSTM" else h

    good_x, good_h = (seq_len, batch, input_size), (num_layers, batch, hidden_size)
    model(mg.zeros(good_x), hx(good_h))
    for x_shape, h_shape in [((seq_len, batch, input_size + 1), good_h),
                             (good_x, (num_layers, batch + 1, hidden_size)),
                             (good_x, (num_layers + 1, batch, hidden_size)),
                             (good_x, (num_layers, batch, hidden_size + 1))]:
        with pytest.raises(RuntimeError):
            model(mg.zeros(x_shape), hx(h_shape))


def test_lstm_needs_both_states_and_names_them(torch):
    lstm = nn.LSTM(2, 3)
    x = mg.zeros((4, 1, 2))
    with pytest.raises(TypeError, match="h0, c0"):
        lstm(x, mg.zeros((1, 1, 3)))
    for lib, module in ((mg, lstm), (torch, torch.nn.LSTM(2, 3))):  # a state too many: torch's RuntimeError
        h = lib.zeros((1, 1, 3))
        with pytest.raises(RuntimeError, match="two hidden states"):
            module(lib.zeros((4, 1, 2)), (h, h, h))
    cell, theirs = nn.LSTMCell(2, 3), torch.nn.LSTMCell(2, 3)
    for lib, module in ((mg, cell), (torch, theirs)):
        h = lib.zeros((1, 3))
        for wrong in ((h,), (h, h, h)):
            with pytest.raises(RuntimeError, match="two hidden states"):
                module(lib.zeros((1, 2)), wrong)
        with pytest.raises(TypeError):
            module(lib.zeros((1, 2)), h)
    with pytest.raises(RuntimeError, match="c0"):
        lstm(x, (mg.zeros((1, 1, 3)), mg.zeros((1, 2, 3))))
    with pytest.raises(RuntimeError, match="dtype"):
        lstm(x, (mg.zeros((1, 1, 3)), mg.zeros((1, 1, 3), dtype=mg.float64)))


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_a_cell_checks_its_sizes_and_bias_as_the_modules_do(torch, cell):
    """A cell takes its module's rules (torch's modules raise ValueError for a hidden size below 1; its cells
    fail later or not at all): bad sizes and a non-bool bias raise, naming the argument."""
    module = cell.replace("Cell", "")
    for args, kwargs, name in (((3, 0), {}, "hidden_size"), ((3, -1), {}, "hidden_size"),
                               ((0, 4), {}, "input_size"), ((3, 4), {"bias": 1}, "bias")):
        for make in (getattr(nn, cell), getattr(nn, module)):
            with pytest.raises(ValueError, match=name):
                make(*args, **kwargs)
    with pytest.raises(ValueError):
        getattr(torch.nn, module)(3, 0)


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_rnn_cell_no_broadcasting(cell):  # torch's test: hx of another batch or width raises
    model = getattr(nn, cell)(10, 20)
    x = mg.zeros((3, 10))
    for shape in [(1, 20), (3, 1)]:
        h = mg.zeros(shape)
        with pytest.raises(RuntimeError):
            model(x, (h, mg.zeros((3, 20))) if cell == "LSTMCell" else h)


@pytest.mark.parametrize("cell,gates", [("LSTMCell", 4), ("GRUCell", 3)])
def test_cells_parameters_and_a_ten_step_loop(cell, gates):
    """torch's test_LSTM_cell / test_GRU_cell: a ten-step loop runs and backward reaches every parameter; and
    torch's names, shapes and U(-1/√H, 1/√H) init."""
    model = getattr(nn, cell)(10, 20)
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == {
        "weight_ih": (gates * 20, 10), "weight_hh": (gates * 20, 20), "bias_ih": (gates * 20,),
        "bias_hh": (gates * 20,)}
    bound = 1 / np.sqrt(20)
    assert all(np.abs(p.data).max() <= bound for p in model.parameters())
    x = mg.randn(6, 3, 10)
    h = (mg.randn(3, 20), mg.randn(3, 20)) if cell == "LSTMCell" else mg.randn(3, 20)
    for i in range(6):
        h = model(x[i], h)
    (h[0] if cell == "LSTMCell" else h).sum().backward()
    assert all(p.grad is not None and np.abs(p.grad.data).sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("kind,gates", [("LSTM", 4), ("GRU", 3)])
def test_parameter_names_and_shapes_are_torchs(torch, kind, gates):
    ours = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True)
    theirs = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert ours.weight_hh_l1_reverse.shape == (gates * 4, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_acts_between_layers_in_training_only(kind):
    mg.manual_seed(0)
    model = getattr(nn, kind)(3, 8, num_layers=2, dropout=0.5).double()
    x = mg.tensor(np.random.default_rng(0).standard_normal((5, 2, 3)))
    model.eval()
    a, b = model(x)[0].data, model(x)[0].data
    np.testing.assert_array_equal(a, b)
    model.train()
    assert not np.allclose(model(x)[0].data, a)


# ----- with the rest of minigrad -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_trains_over_a_grad_buffer_with_fused_adam_and_clipping(kind):
    """A GradBuffer, clip_grad_norm_ and fused Adam: the same steps as the unfused Adam to round-off, and the
    loss falls."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 8, 3)), rng.standard_normal((8, 4))
    losses = {}
    for fused in (False, True):
        mg.manual_seed(0)
        model = getattr(nn, kind)(3, 4).double()
        nn.utils.GradBuffer(model.parameters())
        opt = optim.Adam(model.parameters(), lr=0.05, fused=fused)
        losses[fused] = []
        for _ in range(15):
            opt.zero_grad()
            out, _ = model(mg.tensor(x))
            loss = ((out[-1] - mg.tensor(y)) ** 2).mean()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            losses[fused].append(loss.item())
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-10)
    assert losses[True][-1] < 0.5 * losses[True][0]


def test_lstm_tbptt_by_detaching_both_states_equals_two_separate_windows():
    mg.manual_seed(0)
    lstm = nn.LSTM(2, 3).double()
    x = np.random.default_rng(0).standard_normal((8, 2, 2))
    out1, (h, c) = lstm(mg.tensor(x[:4]))
    out2, _ = lstm(mg.tensor(x[4:]), (h.detach(), c.detach()))
    (out1.sum() + out2.sum()).backward()
    joint = [p.grad.data.copy() for p in lstm.parameters()]
    lstm.zero_grad()
    out1, (h, c) = lstm(mg.tensor(x[:4]))
    out1.sum().backward()
    lstm(mg.tensor(x[4:]), (h.detach(), c.detach()))[0].sum().backward()
    for a, p in zip(joint, lstm.parameters()):
        np.testing.assert_allclose(a, p.grad.data, rtol=1e-12)


def test_a_graph_kept_for_a_second_backward_is_not_reused_by_the_next_forward():
    """What forward saves goes back to the work arrays only when a backward frees the graph: with
    retain_graph=True a second forward must not overwrite it."""
    mg.manual_seed(0)
    lstm = nn.LSTM(2, 3).double()
    x = mg.tensor(np.random.default_rng(0).standard_normal((5, 2, 2)))
    out, _ = lstm(x)
    out.sum().backward(retain_graph=True)
    first = lstm.weight_hh_l0.grad.data.copy()
    lstm(x * 3)[0].sum().backward()  # another forward and backward in between
    lstm.zero_grad()
    out.sum().backward()
    np.testing.assert_allclose(lstm.weight_hh_l0.grad.data, first, rtol=1e-14)


@pytest.mark.parametrize("kind", ["RNN"] + KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_fused_layers_output_changed_in_place_raises_at_backward_or_does_not_matter(kind, bidirectional):
    """One direction's fused layer saves its output uncopied (README, differences from torch): a change of it in
    place is the saved-value error at backward, before any gradient is written. Two directions' output is a new
    concatenation: a change of it in place leaves the gradients as they were. Never a silently wrong gradient."""
    grads = []
    for change in (False, True):
        mg.manual_seed(0)
        layer = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=bidirectional)
        x = mg.tensor(np.random.default_rng(0).standard_normal((5, 2, 3)), dtype=mg.float32, requires_grad=True)
        out, _ = layer(x)
        if change:
            out.add_(1)  # the same gradient of the sum
        if change and not bidirectional:
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                out.sum().backward()
            assert x.grad is None and all(p.grad is None for p in layer.parameters())
            return
        out.sum().backward()
        grads.append([x.grad.numpy()] + [p.grad.numpy() for p in layer.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
