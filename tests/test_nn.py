"""Module bookkeeping, layers and losses (values and grads against torch where installed)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4, padding_idx=0)
        self.body = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2, bias=False))

    def forward(self, idx):
        return self.body(self.emb(idx)).sum(dim=1)


def test_named_parameters_use_torch_dotted_names():
    assert [n for n, _ in Net().named_parameters()] == ["emb.weight", "body.0.weight", "body.0.bias",
                                                        "body.1.weight"]


def test_train_eval_propagate_and_double_float_convert():
    net = Net()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    assert all(p.dtype == np.float64 for p in net.double().parameters())
    assert all(p.dtype == np.float32 for p in net.float().parameters())


def test_state_dict_round_trip_and_clear_errors():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    before = [p.data.copy() for p in b.parameters()]
    sd = a.state_dict()
    sd["body.0.bias"] = np.zeros(7)
    sd["emb.weight"] = sd["emb.weight"] + 1  # valid, but must not be written since another key is wrong
    with pytest.raises(ValueError, match=r"body.0.bias.*\(7,\).*\(3,\)"):
        b.load_state_dict(sd)
    for p, q in zip(b.parameters(), before):
        np.testing.assert_array_equal(p.data, q)
    with pytest.raises(KeyError, match="missing keys"):
        b.load_state_dict({"emb.weight": sd["emb.weight"]})
    with pytest.raises(KeyError, match="unexpected keys"):
        b.load_state_dict({**a.state_dict(), "extra": np.zeros(1)})


def test_zero_grad_sets_none():
    net = Net()
    net(np.array([[1, 2]])).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_linear_init_bounds_and_reproducibility():
    mg.manual_seed(3)
    lin = nn.Linear(16, 8)
    assert np.abs(lin.weight.data).max() <= 1 / 4 and np.abs(lin.bias.data).max() <= 1 / 4
    assert np.abs(lin.weight.data).max() > 0.2  # uses the whole range
    mg.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(16, 8).weight.data, lin.weight.data)


def test_embedding_rejects_bad_indices_and_skips_padding_grad():
    emb = nn.Embedding(5, 2, padding_idx=0)
    assert np.all(emb.weight.data[0] == 0)
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.5]))
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        emb(np.array([5]))
    emb(np.array([0, 1, 1])).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[:2], [[0, 0], [2, 2]])


def test_loss_input_errors_name_the_shapes():
    x = mg.tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(2\)"):
        nn.CrossEntropyLoss()(x, np.array([0, 1]))
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte"):
        nn.CrossEntropyLoss()(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        nn.CrossEntropyLoss()(x, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3,\)"):
        nn.MSELoss()(x, np.zeros(3))
    with pytest.raises(ValueError, match="reduction"):
        nn.BCEWithLogitsLoss(reduction="avg")


def test_bce_with_logits_is_stable_for_huge_logits():
    x = mg.tensor(np.array([1000.0, -1000.0, 50.0]), requires_grad=True)
    loss = nn.BCEWithLogitsLoss(reduction="sum")(x, np.array([0.0, 1.0, 1.0]))
    np.testing.assert_allclose(loss.item(), 2000.0 + np.log1p(np.exp(-50.0)), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad, [1.0, -1.0, -np.exp(-50.0) / (1 + np.exp(-50.0))], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_loss_passes_gradcheck_for_every_differentiable_input(reduction):
    """Inputs, and targets where torch differentiates them (MSE, BCEWithLogits), with weights and pos_weight."""
    from minigrad.gradcheck import gradcheck

    rng = np.random.default_rng(0)

    def leaf(shape, scale=1.0):
        return mg.tensor(rng.standard_normal(shape) * scale, requires_grad=True)

    F = nn.functional
    y_cls = np.array([0, 2, 1, 2])
    w3, w43 = np.array([1.0, 2.0, 0.5]), rng.random((4, 3)) + 0.5
    cases = [
        (lambda x: F.cross_entropy(x, y_cls, weight=w3, reduction=reduction), [leaf((4, 3))]),
        (lambda x: F.cross_entropy(x, np.array([0, -100, 1, 2]), reduction=reduction), [leaf((4, 3))]),
        (lambda x: F.cross_entropy(x, np.array([[0, 2], [1, 1]]), reduction=reduction), [leaf((2, 3, 2))]),
        (lambda x, y: F.mse_loss(x, y, reduction=reduction), [leaf((4, 3)), leaf((4, 3))]),
        (lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction=reduction), [leaf((4, 3), 3),
                                                                                      leaf((4, 3))]),
        (lambda x, y: F.l1_loss(x, y, reduction=reduction), [leaf((4, 3)), leaf((4, 3))]),
        (lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction, beta=0.8), [leaf((4, 3)), leaf((4, 3))]),
        (lambda x, y: F.binary_cross_entropy(x.sigmoid(), y.sigmoid(), weight=mg.tensor(w43), reduction=reduction),
         [leaf((4, 3)), leaf((4, 3))]),
        (lambda x, y: F.binary_cross_entropy_with_logits(x, y, weight=mg.tensor(w43), reduction=reduction,
                                                         pos_weight=mg.tensor(np.array([0.5, 2.0, 3.0]))),
         [leaf((4, 3), 3), leaf((4, 3))]),
    ]
    for fn, inputs in cases:
        assert gradcheck(fn, inputs)


def test_bce_with_logits_target_gradient_matches_the_formula():
    """d/dy of max(x,0) - x·y + log(1 + e^-|x|) is -x; with pos_weight w it is -x + (w - 1)·log(1 + e^-x)."""
    x0, y0 = np.array([-2.0, 0.5, 3.0]), np.array([0.2, 0.7, 1.0])
    for pw in (None, np.array([2.0, 0.5, 1.5])):
        x, y = mg.tensor(x0), mg.tensor(y0, requires_grad=True)
        nn.functional.binary_cross_entropy_with_logits(
            x, y, reduction="sum", pos_weight=None if pw is None else mg.tensor(pw)).backward()
        expect = -x0 if pw is None else -x0 + (pw - 1) * np.log1p(np.exp(-x0))
        np.testing.assert_allclose(y.grad.numpy(), expect, rtol=1e-12)



@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_match_torch(torch, reduction, rng):
    x = rng.standard_normal((5, 4)) * 3
    y_cls = np.array([0, 3, 1, 1, 2])
    y_bin = (rng.random((5, 4)) > 0.5).astype(np.float64)
    y_reg = rng.standard_normal((5, 4))
    w = np.array([1.0, 0.5, 2.0, 1.5])
    cases = [
        (lambda m, t: m.nn.CrossEntropyLoss(reduction=reduction)(t, y_cls_m(m)), "ce"),
        (lambda m, t: m.nn.CrossEntropyLoss(weight=m.tensor(w), ignore_index=3, reduction=reduction)(t, y_cls_m(m)),
         "ce-weighted"),
        (lambda m, t: m.nn.MSELoss(reduction=reduction)(t, m.tensor(y_reg)), "mse"),
        (lambda m, t: m.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=m.tensor(w))(t, m.tensor(y_bin)), "bce"),
        (lambda m, t: m.nn.L1Loss(reduction=reduction)(t, m.tensor(y_reg)), "l1"),
        (lambda m, t: m.nn.SmoothL1Loss(reduction=reduction)(t, m.tensor(y_reg)), "smooth-l1"),
        (lambda m, t: m.nn.SmoothL1Loss(reduction=reduction, beta=2.5)(t, m.tensor(y_reg)), "smooth-l1-beta"),
        (lambda m, t: m.nn.functional.smooth_l1_loss(t, m.tensor(y_reg), reduction=reduction, beta=0.0), "beta-0"),
        (lambda m, t: m.nn.BCELoss(weight=m.tensor(w), reduction=reduction)(t.sigmoid(), m.tensor(y_reg).sigmoid()),
         "bce-probabilities"),
    ]

    def y_cls_m(m):
        return torch.tensor(y_cls) if m is torch else y_cls

    for fn, name in cases:
        ours, theirs = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        lm, lt = fn(mg, ours), fn(torch, theirs)
        np.testing.assert_allclose(lm.data, lt.detach().numpy(), rtol=1e-12, err_msg=name)
        lm.sum().backward()
        lt.sum().backward()
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=name)


def test_linear_and_embedding_match_torch_given_the_same_weights(torch, rng):
    lin_m, lin_t = nn.Linear(4, 3).double(), torch.nn.Linear(4, 3).double()
    emb_m, emb_t = nn.Embedding(6, 4).double(), torch.nn.Embedding(6, 4).double()
    lin_m.load_state_dict({k: v.detach().numpy() for k, v in lin_t.state_dict().items()})
    emb_m.load_state_dict({k: v.detach().numpy() for k, v in emb_t.state_dict().items()})
    idx = np.array([[1, 5, 5], [0, 2, 1]])
    out_m = lin_m(emb_m(idx)).tanh().sum()
    out_t = lin_t(emb_t(torch.tensor(idx))).tanh().sum()
    out_m.backward()
    out_t.backward()
    np.testing.assert_allclose(out_m.item(), out_t.item(), rtol=1e-12)
    np.testing.assert_allclose(emb_m.weight.grad, emb_t.weight.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(lin_m.weight.grad, lin_t.weight.grad.numpy(), rtol=1e-10)


def test_bce_of_probabilities_clamps_each_log_at_minus_100_and_refuses_values_outside_0_1():
    """torch's rule: an input of exactly 0 or 1 gives a finite loss (100 per wrong certain answer)."""
    loss = nn.BCELoss(reduction="none")(mg.tensor(np.array([0.0, 1.0, 1.0])), np.array([1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(loss.numpy(), [100.0, 100.0, 0.0])
    for bad in (-0.1, 1.5, np.nan):
        with pytest.raises(RuntimeError, match="between 0 and 1"):
            nn.functional.binary_cross_entropy(mg.tensor(np.array([0.5, bad])), np.array([1.0, 0.0]))


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch_given_the_same_weights(torch, affine, rng):
    x = rng.standard_normal((2, 3, 4, 5)) * 3 + 1
    ours, theirs = nn.LayerNorm((4, 5), elementwise_affine=affine).double(), \
        torch.nn.LayerNorm((4, 5), elementwise_affine=affine).double()
    if affine:
        for name in ("weight", "bias"):
            value = rng.standard_normal((4, 5))
            getattr(ours, name).data = mg.tensor(value)
            with torch.no_grad():
                getattr(theirs, name).copy_(torch.tensor(value))
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    upstream = rng.standard_normal(x.shape)
    ym, yt = ours(xm), theirs(xt)
    np.testing.assert_allclose(ym.detach().numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    ym.backward(mg.tensor(upstream))
    yt.backward(torch.tensor(upstream))
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for (_, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)
    with pytest.raises(RuntimeError, match="expected input with shape"):
        ours(mg.ones(2, 5, 4, dtype=mg.float64))


def test_normalize_matches_torch_and_keeps_a_zero_row_finite(torch, rng):
    x = rng.standard_normal((3, 4))
    x[1] = 0.0
    for p, dim in ((2.0, 1), (1.0, 0), (3.0, -1)):
        xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ym, yt = nn.functional.normalize(xm, p, dim), torch.nn.functional.normalize(xt, p, dim)
        np.testing.assert_allclose(ym.detach().numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-15)
        (ym * mg.tensor(x + 1)).sum().backward()
        (yt * torch.tensor(x + 1)).sum().backward()
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_embedding_from_pretrained_uses_the_weights_as_given(torch):
    weights = np.arange(12.0).reshape(4, 3)
    state = mg.random.generator().bit_generator.state
    frozen = nn.Embedding.from_pretrained(mg.tensor(weights), padding_idx=1)
    assert mg.random.generator().bit_generator.state == state  # no random initialisation drawn
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(weights), padding_idx=1)
    np.testing.assert_array_equal(frozen.weight.numpy(), theirs.weight.detach().numpy())  # padding row kept
    assert frozen.weight.requires_grad is theirs.weight.requires_grad is False
    trained = nn.Embedding.from_pretrained(mg.tensor(weights), freeze=False)
    trained(mg.tensor([[0, 2, 2]])).sum().backward()
    np.testing.assert_array_equal(trained.weight.grad.numpy()[:, 0], [1.0, 0.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="2-dimensional"):
        nn.Embedding.from_pretrained(mg.ones(3))


def test_sequential_indexes_slices_and_iterates_as_torch(torch):
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    seq = nn.Sequential(*layers)
    assert len(seq) == len(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))) == 3
    assert seq[0] is layers[0] and seq[-1] is layers[2] and list(seq) == layers
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    x = mg.randn(5, 3)
    np.testing.assert_array_equal(seq[2](head(x)).detach().numpy(), seq(x).detach().numpy())
    with pytest.raises(IndexError):
        seq[3]


def test_parameters_to_vector_and_back_as_torch(torch):
    ours = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    vm = nn.utils.parameters_to_vector(ours.parameters())
    vt = torch.nn.utils.parameters_to_vector(theirs.parameters())
    np.testing.assert_array_equal(vm.detach().numpy(), vt.detach().numpy())
    (vm * vm).sum().backward()
    np.testing.assert_array_equal(ours[1].weight.grad.numpy(), 2 * ours[1].weight.detach().numpy())
    new = np.arange(14.0)
    nn.utils.vector_to_parameters(mg.tensor(new), ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), theirs.parameters())
    for a, b in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    before = [p.detach().numpy().copy() for p in ours.parameters()]
    with pytest.raises(ValueError, match="elements"):
        nn.utils.vector_to_parameters(mg.tensor(np.arange(13.0)), ours.parameters())
    with pytest.raises(TypeError):
        torch.nn.utils.vector_to_parameters(np.arange(14.0), theirs.parameters())
    with pytest.raises(TypeError, match="a Tensor"):
        nn.utils.vector_to_parameters(np.arange(14.0), ours.parameters())
    with pytest.raises(RuntimeError):  # torch: its first view fails
        torch.nn.utils.vector_to_parameters(torch.zeros(2, 7, dtype=torch.float64), theirs.parameters())
    with pytest.raises(RuntimeError, match="1-D"):
        nn.utils.vector_to_parameters(mg.zeros(2, 7, dtype=mg.float64), ours.parameters())
    for a, b in zip(ours.parameters(), before):
        np.testing.assert_array_equal(a.detach().numpy(), b)


def test_default_dtype_is_float32_as_torchs(torch):
    assert mg.get_default_dtype() == mg.tensor([1.5]).dtype == np.dtype(str(torch.get_default_dtype())[6:])


def test_module_to_casts_floating_parameters_and_buffers_like_torch(torch):
    for args, kwargs in (((mg.float64,), {}), (("cpu", mg.float64), {}), ((), dict(dtype=mg.float16)),
                         ((mg.zeros(1, dtype=mg.float64),), {})):
        ours = nn.Linear(2, 3)
        ours.register_buffer("steps", mg.tensor([3]))  # an integer buffer keeps its dtype
        ours.register_buffer("scale", mg.ones(3))
        assert ours.to(*args, **kwargs) is ours
        want = np.dtype(kwargs.get("dtype", np.float64))
        assert ours.weight.dtype == ours.bias.dtype == ours.scale.dtype == want and ours.steps.dtype == np.int64
    assert nn.Linear(2, 3).half().weight.dtype == np.float16 == np.dtype(str(torch.nn.Linear(2, 3).half()
                                                                               .weight.dtype)[6:])
    weight = nn.Linear(2, 3)
    before = weight.weight
    with pytest.raises(TypeError, match="floating point"):
        weight.to(mg.int64)
    with pytest.raises(ValueError, match="device"):
        weight.to("tpu")
    assert weight.weight is before and weight.weight.dtype == np.float32


def test_load_state_dict_reports_missing_and_unexpected_keys_as_torch(torch):
    ours, theirs = nn.Linear(2, 3), torch.nn.Linear(2, 3)
    state = {"weight": np.zeros((3, 2), np.float32), "extra": np.zeros(1, np.float32)}
    got = ours.load_state_dict(state, strict=False)
    want = theirs.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
    assert (got.missing_keys, got.unexpected_keys) == (want.missing_keys, want.unexpected_keys) == (["bias"], ["extra"])
    missing, unexpected = got  # still a pair
    assert missing == ["bias"] and not ours.weight.detach().numpy().any()


def test_forward_hooks_see_and_may_replace_inputs_and_outputs_and_come_off():
    lin = nn.Linear(2, 3)
    seen = []
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = lin.register_forward_hook(lambda m, args, out: seen.append((args[0].detach().numpy().sum(), out.shape)))
    out = lin(mg.ones(4, 2))
    assert seen == [(0.0, (4, 3))]
    np.testing.assert_array_equal(out.detach().numpy(), np.broadcast_to(lin.bias.detach().numpy(), (4, 3)))
    replaced = lin.register_forward_hook(lambda m, args, out: out * 2)
    np.testing.assert_array_equal(lin(mg.ones(1, 2)).detach().numpy(), 2 * lin.bias.detach().numpy()[None])
    for handle in (pre, post, replaced):
        handle.remove()
    np.testing.assert_array_equal(lin(mg.ones(1, 2)).detach().numpy(), (lin.weight.sum(1) + lin.bias).detach()
                                  .numpy()[None])
    assert len(seen) == 2


def test_parameter_list_and_dict_as_torchs(torch):
    """The same names, types, lengths, state_dict keys, slices and errors as torch's; a plain tensor becomes a
    Parameter that shares its data; a replaced entry keeps its place; an optimizer over the container steps every
    parameter it holds."""
    for lib, T in ((nn, mg), (torch.nn, torch)):
        plain = T.zeros(3)
        pl = lib.ParameterList([lib.Parameter(T.ones(2)), plain])
        assert isinstance(pl[1], lib.Parameter) and len(pl) == 2
        pl[1].data.add_(1.0)
        assert plain.tolist() == [1.0, 1.0, 1.0]
        pl.append(T.ones(1))
        pl[0] = T.zeros(5)
        pl.extend([T.ones(4)])
        assert [tuple(p.shape) for p in pl] == [(5,), (3,), (1,), (4,)] and tuple(pl[-1].shape) == (4,)
        assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2", "3"]
        assert list(pl.state_dict().keys()) == ["0", "1", "2", "3"]
        part = pl[1:3]
        assert isinstance(part, lib.ParameterList) and [tuple(p.shape) for p in part] == [(3,), (1,)]
        assert part[0] is pl[1]
        with pytest.raises(IndexError):
            pl[4]
        with pytest.raises(IndexError):
            pl[-5] = T.ones(1)
        pd = lib.ParameterDict({"a": T.ones(2)})
        pd["b"] = lib.Parameter(T.zeros(1))
        pd.update({"c": T.ones(3)})
        assert list(pd.keys()) == ["a", "b", "c"] and list(pd) == ["a", "b", "c"] and "b" in pd and len(pd) == 3
        assert isinstance(pd["a"], lib.Parameter) and [tuple(v.shape) for v in pd.values()] == [(2,), (1,), (3,)]
        assert [k for k, _ in pd.items()] == ["a", "b", "c"]
        assert list(pd.state_dict().keys()) == ["a", "b", "c"]
        del pd["a"]
        assert list(pd) == ["b", "c"] and tuple(pd.pop("b").shape) == (1,) and list(pd) == ["c"]
        assert pd.get("missing") is None and pd.get("c") is pd["c"]
        with pytest.raises(AttributeError):
            pd["missing"]

        class Net(lib.Module):
            def __init__(self, ws, named):
                super().__init__()
                self.ws, self.named = ws, named

            def forward(self):
                return sum(w.sum() for w in self.ws) * self.named["scale"].sum()

        net = Net(lib.ParameterList([lib.Parameter(T.ones(2)) for _ in range(3)]),
                  lib.ParameterDict({"scale": lib.Parameter(T.ones(1))}))
        assert [n for n, _ in net.named_parameters()] == ["ws.0", "ws.1", "ws.2", "named.scale"]
        opt = (mg if lib is nn else torch).optim.SGD(net.parameters(), lr=0.5)
        net().backward()
        opt.step()
        assert [p.tolist() for p in net.ws] == [[0.5, 0.5]] * 3 and net.named["scale"].tolist() == [-2.0]


def test_a_replaced_parameter_or_module_keeps_its_place_as_in_torch(torch):
    orders = []
    for lib, T in ((nn, mg), (torch.nn, torch)):
        m = lib.Module()
        m.a, m.b, m.c = lib.Linear(1, 1), lib.Linear(1, 1), lib.Linear(1, 1)
        m.x, m.y = lib.Parameter(T.ones(1)), lib.Parameter(T.ones(1))
        m.a, m.x = lib.Tanh(), lib.Parameter(T.ones(2))
        m.b = lib.Parameter(T.zeros(1))
        orders.append((list(m._modules), list(m._parameters), [n for n, _ in m.named_parameters()]))
    assert orders[0] == orders[1] == (["a", "c"], ["x", "y", "b"], ["x", "y", "b", "c.weight", "c.bias"])


def test_containers_and_lookups_as_torch(torch):
    for lib in (nn, torch.nn):
        seq = lib.Sequential(lib.Linear(2, 3))
        seq.append(lib.Tanh())
        seq.add_module("head", lib.Linear(3, 1))
        assert [n for n, _ in seq.named_children()] == ["0", "1", "head"]
        assert seq.get_submodule("head").out_features == 1 and seq.get_parameter("0.weight").shape[0] == 3
        box = lib.ModuleDict({"enc": lib.Linear(2, 2)})
        box["dec"] = lib.Linear(2, 1)
        assert list(box.keys()) == ["enc", "dec"] and "dec" in box and len(box) == 2
        assert [n for n, _ in box.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
        del box["enc"]
        assert list(box) == ["dec"]
        with pytest.raises(AttributeError):
            seq.get_submodule("0.missing")
        with pytest.raises(AttributeError):
            seq.get_parameter("0.missing")
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential().add_module("x", 3)
    with pytest.raises(KeyError):
        nn.Sequential().add_module("a.b", nn.Tanh())


@pytest.mark.parametrize("make", [lambda: nn.Linear(5, 3), lambda: nn.Embedding(6, 3, padding_idx=2),
                                  lambda: nn.LSTM(3, 4, 2, bidirectional=True), lambda: nn.GRU(3, 4, bias=False),
                                  lambda: nn.RNN(3, 4), lambda: nn.LSTMCell(3, 4), lambda: nn.GRUCell(3, 4),
                                  lambda: nn.RNNCell(3, 4)],
                         ids=["Linear", "Embedding", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_reset_parameters_draws_in_place_what_construction_drew(make):
    mg.manual_seed(5)
    module = make()
    params = list(module.parameters())
    made = [p.detach().numpy().copy() for p in params]
    module.reset_parameters()
    assert [id(p) for p in module.parameters()] == [id(p) for p in params]
    assert all(p.is_leaf and p.requires_grad and p.grad_fn is None for p in params)
    assert not any(np.array_equal(a, p.detach().numpy()) for a, p in zip(made, params))
    mg.manual_seed(5)
    module.reset_parameters()
    for a, p in zip(made, params):
        np.testing.assert_array_equal(a, p.detach().numpy())


def test_reset_parameters_of_layer_norm_and_the_padding_row():
    norm, emb = nn.LayerNorm(3), nn.Embedding(4, 2, padding_idx=-1)
    with mg.no_grad():
        norm.weight.fill_(3.0)
        norm.bias.fill_(2.0)
        emb.weight.fill_(5.0)
    norm.reset_parameters()
    emb.reset_parameters()
    assert norm.weight.tolist() == [1.0] * 3 and norm.bias.tolist() == [0.0] * 3
    assert emb.weight[3].tolist() == [0.0, 0.0] and 5.0 not in emb.weight.view(-1).tolist()


def test_flatten_parameters_is_accepted_and_changes_nothing():
    for rnn in (nn.RNN(3, 4), nn.LSTM(3, 4, 2), nn.GRU(3, 4, bidirectional=True)):
        before = [p.detach().numpy().copy() for p in rnn.parameters()]
        assert rnn.flatten_parameters() is None
        assert all(np.array_equal(a, p.detach().numpy()) for a, p in zip(before, rnn.parameters()))


@pytest.mark.parametrize("make", [lambda **kw: nn.Linear(3, 2, **kw), lambda **kw: nn.Embedding(4, 3, **kw),
                                  lambda **kw: nn.LayerNorm(3, **kw), lambda **kw: nn.LSTM(3, 2, 2, **kw),
                                  lambda **kw: nn.GRU(3, 2, **kw), lambda **kw: nn.RNN(3, 2, **kw),
                                  lambda **kw: nn.LSTMCell(3, 2, **kw), lambda **kw: nn.GRUCell(3, 2, **kw),
                                  lambda **kw: nn.RNNCell(3, 2, **kw)],
                         ids=["Linear", "Embedding", "LayerNorm", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell",
                              "RNNCell"])
def test_layers_take_torchs_device_keyword(make):
    mg.manual_seed(1)
    plain = make(dtype=mg.float64)
    mg.manual_seed(1)
    placed = make(device=mg.device("cpu"), dtype=mg.float64)
    for a, b in zip(plain.parameters(), placed.parameters()):
        assert b.device == "cpu" and b.dtype == np.float64
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    with pytest.raises(ValueError):
        make(device="tpu")


def test_embedding_max_norm_and_scale_grad_by_freq_as_torch(torch):
    w = np.random.default_rng(0).standard_normal((6, 3)) * 2
    results = []
    for lib in (mg, torch):
        emb = lib.nn.Embedding(6, 3, padding_idx=-1, max_norm=1.5, scale_grad_by_freq=True, sparse=False)
        with lib.no_grad():
            emb.weight.copy_(lib.tensor(w))
        out = emb(lib.tensor(np.array([[0, 1, 1], [2, 1, 5]])))
        (out * lib.arange(18.0, dtype=lib.float64).view(2, 3, 3)).sum().backward()
        by_inf = lib.nn.functional.embedding(lib.tensor(np.array([3, 4])), lib.tensor(w.copy()), max_norm=1.0,
                                             norm_type=float("inf"))
        results.append([out.detach().numpy(), emb.weight.detach().numpy(), emb.weight.grad.numpy(),
                        by_inf.numpy()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    looked_up, others = results[0][1][[0, 1, 2, 5]], results[0][1][[3, 4]]
    assert np.linalg.norm(looked_up, axis=1).max() <= 1.5 + 1e-6 < np.linalg.norm(w[[0, 1, 2, 5]], axis=1).max()
    np.testing.assert_array_equal(others, w[[3, 4]].astype(np.float32))


def test_embedding_renormalising_a_weight_a_graph_saved_is_noticed_by_backward():
    emb = nn.Embedding(3, 2, max_norm=0.1)
    first = (emb.weight * 2).sum()  # saves nothing of weight; a product with it does:
    saved = (emb.weight * emb.weight).sum()
    emb(mg.tensor([1]))
    first.backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.backward()


def test_state_dict_prefix_keep_vars_destination_and_cpu_as_torch(torch):
    for lib in (mg, torch):
        m = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.Linear(3, 1))
        assert m.cpu() is m
        assert list(m.state_dict(prefix="model.")) == ["model.0.weight", "model.0.bias", "model.1.weight",
                                                        "model.1.bias"]
        kept = m.state_dict(keep_vars=True)
        assert kept["0.weight"] is m[0].weight and kept["0.weight"].requires_grad
        assert not m.state_dict()["0.weight"].requires_grad
        into = {"other": 1}
        assert m.state_dict(destination=into) is into and len(into) == 5
    if not mg.cuda.is_available():
        with pytest.raises((ValueError, RuntimeError, ImportError)):
            nn.Linear(2, 2).cuda()
