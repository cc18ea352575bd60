"""An ordinary torch script runs with its imports changed: the names it uses, compared with torch itself.

Values, dtypes, shapes, gradients and exception types, in float32 and float64. Every test takes the `torch`
fixture, so without torch exactly these tests are skipped (and say why); the rest of the suite runs.
"""

import numpy as np
import pytest
from helpers import BINARY_OPS

import minigrad as mg
from minigrad import nn
from minigrad.nn.utils import rnn as rnn_utils

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _np(t):
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _same_dtype(ours, theirs):
    assert np.dtype(ours.dtype) == np.dtype(str(theirs.dtype).removeprefix("torch.")), (ours.dtype, theirs.dtype)


# ----- .grad is a Tensor ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_is_a_tensor_with_torchs_methods(torch, dtype, rng):
    w0, x0 = rng.standard_normal((3, 4)).astype(dtype) * 3, rng.standard_normal(4).astype(dtype)
    ours, theirs = mg.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    (ours @ mg.tensor(x0)).tanh().sum().backward()
    (theirs @ torch.tensor(x0)).tanh().sum().backward()
    assert isinstance(ours.grad, mg.Tensor) and ours.grad.shape == tuple(theirs.grad.shape)
    _same_dtype(ours.grad, theirs.grad)
    for fn in (lambda g: g.norm(), lambda g: g.norm(1), lambda g: g.abs().max(), lambda g: g.sum(),
               lambda g: g.pow(2).mean(), lambda g: g.norm(float("inf"))):
        a, b = fn(ours.grad), fn(theirs.grad)
        _same_dtype(a, b)
        np.testing.assert_allclose(_np(a), _np(b), **_tol(dtype))
    ours.grad.data.clamp_(-0.01, 0.01)
    theirs.grad.data.clamp_(-0.01, 0.01)
    np.testing.assert_allclose(_np(ours.grad), _np(theirs.grad), **_tol(dtype))
    assert np.abs(_np(ours.grad)).max() <= 0.01
    ours.grad.mul_(2.5)
    theirs.grad.mul_(2.5)
    np.testing.assert_allclose(_np(ours.grad), _np(theirs.grad), **_tol(dtype))
    with torch.no_grad(), mg.no_grad():  # the manual SGD step of older torch code
        ours -= 0.1 * ours.grad
        theirs -= 0.1 * theirs.grad
    np.testing.assert_allclose(_np(ours), _np(theirs), **_tol(dtype))
    ours.grad.zero_()
    theirs.grad.zero_()
    np.testing.assert_array_equal(_np(ours.grad), _np(theirs.grad))


def test_assigning_a_grad_checks_it_as_torch_does(torch):
    p, t = mg.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    p.grad = np.ones(3, np.float32)  # an ndarray is wrapped without a copy
    assert isinstance(p.grad, mg.Tensor)
    for bad in (np.ones(4, np.float32), np.ones(3, np.float64)):
        with pytest.raises(RuntimeError):
            t.grad = torch.tensor(bad)
        with pytest.raises(RuntimeError):
            p.grad = bad


# ----- type promotion ------------------------------------------------------------------------------------------
OPERANDS = {
    "f32": lambda lib: lib.tensor(np.array([1.5, -2.0], np.float32)),
    "f64": lambda lib: lib.tensor(np.array([1.5, -2.0], np.float64)),
    "i64": lambda lib: lib.tensor(np.array([3, -4], np.int64)),
    "i32": lambda lib: lib.tensor(np.array([3, -4], np.int32)),
    "u8": lambda lib: lib.tensor(np.array([3, 4], np.uint8)),
    "bool": lambda lib: lib.tensor(np.array([True, False])),
    "f64_0d": lambda lib: lib.tensor(np.array(2.5, np.float64)),
    "f32_0d": lambda lib: lib.tensor(np.array(2.5, np.float32)),
    "i64_0d": lambda lib: lib.tensor(np.array(3, np.int64)),
    "py_float": lambda lib: 2.5,
    "py_int": lambda lib: 3,
    "py_bool": lambda lib: True,
    "np_float64": lambda lib: np.float64(2.5),
}
TENSORS = ["f32", "f64", "i64", "i32", "u8", "bool", "f64_0d", "f32_0d", "i64_0d"]


@pytest.mark.parametrize("op", list(BINARY_OPS))
@pytest.mark.parametrize("left", TENSORS)
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # x / False: inf, as in torch (silent there)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # (-2) ** 2.5 and 0 / 0: NaN, as in torch
def test_binary_ops_promote_as_torch(torch, op, left):
    for right in OPERANDS:
        fn = BINARY_OPS[op]
        try:
            expected = fn(OPERANDS[left](torch), OPERANDS[right](torch))
        except (RuntimeError, NotImplementedError):
            with pytest.raises(RuntimeError):
                fn(OPERANDS[left](mg), OPERANDS[right](mg))
            continue
        got = fn(OPERANDS[left](mg), OPERANDS[right](mg))
        assert np.dtype(got.dtype) == np.dtype(str(expected.dtype).removeprefix("torch.")), (left, op, right)
        np.testing.assert_allclose(_np(got).astype(np.float64), _np(expected).astype(np.float64), rtol=1e-6,
                                   err_msg=f"{left} {op} {right}")


# operands whose promotion only result_type checks (their arithmetic is not part of minigrad's contract)
PROMOTION_ONLY = {
    "c64": lambda lib: lib.tensor(np.array([1 + 2j, 3], np.complex64)),
    "i32_0d": lambda lib: lib.tensor(np.array(3, np.int32)),
    "f16_0d": lambda lib: lib.tensor(np.array(1.5, np.float16)),
    "f16": lambda lib: lib.tensor(np.array([1.5, 2.0], np.float16)),
    "py_complex": lambda lib: 1.5j,
}


def test_result_type_and_errors_where_torch_raises(torch):
    operands = {**OPERANDS, **PROMOTION_ONLY}
    for a in TENSORS + [k for k in PROMOTION_ONLY if k != "py_complex"]:
        for b in operands:
            expected = str(torch.result_type(operands[a](torch), operands[b](torch))).removeprefix("torch.")
            if expected == "complex32":  # float16 meeting a complex scalar: a dtype NumPy does not have
                continue
            assert mg.result_type(operands[a](mg), operands[b](mg)) == np.dtype(expected), (a, b)
    with pytest.raises(TypeError, match="unsupported operand"):
        mg.result_type(mg.ones(2), type("DtypeOnly", (), {"dtype": np.dtype(np.float32)})())
    with pytest.raises(RuntimeError):
        torch.ones(2, 3) @ torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="same dtype"):
        mg.ones(2, 3) @ mg.ones(3, 2, dtype=mg.float64)
    for lib in (torch, mg):
        for op in BINARY_OPS.values():
            with pytest.raises(RuntimeError):
                op(lib.ones(2, 3), lib.ones(4, 3))
        with pytest.raises(RuntimeError):
            lib.ones(2, 3) @ lib.ones(2, 3)
        with pytest.raises(RuntimeError):
            (lib.ones(2, 3) * 2).backward()


def test_gradients_of_a_promoting_op_come_back_in_each_inputs_dtype(torch):
    for lib in (mg, torch):
        a = lib.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
        b = lib.tensor(np.array(3.0, np.float64), requires_grad=True)
        (a * b).sum().backward()
        assert str(a.grad.dtype).endswith("float32") and str(b.grad.dtype).endswith("float64")
        np.testing.assert_allclose(_np(a.grad), [3.0, 3.0])
        np.testing.assert_allclose(_np(b.grad), 3.0)


# ----- creation functions, dtypes, device ----------------------------------------------------------------------
CREATIONS = [
    lambda lib: lib.arange(5), lambda lib: lib.arange(1, 7, 2), lambda lib: lib.arange(0, 1, 0.25),
    lambda lib: lib.arange(3.0), lambda lib: lib.full((2, 3), 7), lambda lib: lib.full((2,), 7.5),
    lambda lib: lib.full((2,), True), lambda lib: lib.zeros_like(lib.ones(2, 3, dtype=lib.int64)),
    lambda lib: lib.ones_like(lib.ones(2, dtype=lib.float64)), lambda lib: lib.linspace(0, 1, 5),
    lambda lib: lib.zeros(2, 3), lambda lib: lib.ones((4,), dtype=lib.float64), lambda lib: lib.eye(3),
    lambda lib: lib.tensor([1, 2]), lambda lib: lib.tensor([1.0, 2]), lambda lib: lib.tensor(True),
    lambda lib: lib.zeros(2, dtype=lib.long), lambda lib: lib.full_like(lib.zeros(2), 3),
    lambda lib: lib.tensor([1 + 2j, 0.5]), lambda lib: lib.tensor([1 + 2j], dtype=lib.complex128),
]


@pytest.mark.parametrize("data", [["a"], [None], [[1, 2], [3]]])
def test_tensors_of_what_is_not_numbers_are_refused_with_torchs_exception_type(torch, data):
    with pytest.raises(Exception) as theirs:
        torch.tensor(data)
    with pytest.raises(type(theirs.value), match="cannot make a tensor"):
        mg.tensor(data)


@pytest.mark.parametrize("make", CREATIONS, ids=range(len(CREATIONS)))
def test_creation_functions_match_torch(torch, make):
    ours, theirs = make(mg), make(torch)
    assert ours.shape == tuple(theirs.shape)
    _same_dtype(ours, theirs)
    np.testing.assert_allclose(_np(ours).astype(np.complex128), _np(theirs).astype(np.complex128), rtol=1e-6)


def test_random_creation_dtypes_shapes_and_seeding(torch):
    for name, args in (("rand", (2, 3)), ("randn", (4,)), ("empty", (2, 2))):
        ours, theirs = getattr(mg, name)(*args), getattr(torch, name)(*args)
        assert ours.shape == tuple(theirs.shape)
        _same_dtype(ours, theirs)
    ours, theirs = mg.randint(0, 10, (5,)), torch.randint(0, 10, (5,))
    _same_dtype(ours, theirs)
    assert ((_np(ours) >= 0) & (_np(ours) < 10)).all() and mg.randint(3, (2,)).shape == (2,)
    mg.manual_seed(3)
    a = mg.rand(3)
    mg.manual_seed(3)
    np.testing.assert_array_equal(_np(a), _np(mg.rand(3)))


def test_dtype_names_and_device(torch):
    for name in ("float32", "float64", "long", "int64", "int32", "float16", "half", "double", "bool", "uint8",
                 "float", "int"):
        assert getattr(mg, name) == np.dtype(str(getattr(torch, name)).removeprefix("torch.")), name
    t = mg.zeros(2)
    assert t.device == mg.device("cpu") == "cpu" and t.device.type == torch.zeros(2).device.type
    assert repr(mg.device("cpu")) == repr(torch.device("cpu"))
    assert t.to(mg.float64).dtype == mg.float64 and t.to("cpu", mg.float64).dtype == mg.float64
    assert t.to(torch_like := mg.zeros(1, dtype=mg.int64)).dtype == torch_like.dtype


# ----- functions and modules ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "exp", "abs", "sqrt"])
def test_top_level_functions_values_and_grads(torch, dtype, name, rng):
    x0 = rng.standard_normal(7).astype(dtype) + (3.0 if name == "sqrt" else 0.0)
    results = []
    for lib in (mg, torch):
        x = lib.tensor(x0.copy(), requires_grad=True)
        y = getattr(lib, name)(x)
        (y * y).sum().backward()
        results.append((y, x.grad))
    for a, b in zip(*results):
        _same_dtype(a, b)
        np.testing.assert_allclose(_np(a), _np(b), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_modules_in_a_sequential(torch, dtype, rng):
    x0 = rng.standard_normal((5, 4)).astype(dtype)
    outs = []
    for lib in (mg, torch):
        lib.manual_seed(0)
        model = lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.Tanh(), lib.nn.Linear(6, 6), lib.nn.ReLU(),
                                  lib.nn.Linear(6, 2), lib.nn.Sigmoid(), lib.nn.Dropout(0.5))
        if lib is mg:
            model = model.double() if dtype == np.float64 else model
            ours = model
        else:
            model = model.double() if dtype == np.float64 else model
            for (n, p), (m, q) in zip(ours.named_parameters(), model.named_parameters()):
                assert n == m
                q.data = torch.tensor(p.data.copy())
        model.eval()  # dropout off: the identity
        x = lib.tensor(x0.copy(), requires_grad=True)
        y = model(x)
        y.sum().backward()
        outs.append((y, x.grad))
    for a, b in zip(*outs):
        np.testing.assert_allclose(_np(a), _np(b), **_tol(dtype))


ACTIVATIONS = {
    "LeakyReLU": lambda nn: nn.LeakyReLU(0.2), "ELU": lambda nn: nn.ELU(alpha=0.7),
    "Softplus": lambda nn: nn.Softplus(),
    "Softplus-beta": lambda nn: nn.Softplus(beta=2.0, threshold=5.0), "SiLU": lambda nn: nn.SiLU(),
    "LogSigmoid": lambda nn: nn.LogSigmoid(), "Hardtanh": lambda nn: nn.Hardtanh(-0.5, 2.0),
    "Flatten": lambda nn: nn.Flatten(0), "LeakyReLU-inplace": lambda nn: nn.LeakyReLU(inplace=True),
    "ELU-inplace": lambda nn: nn.ELU(inplace=True), "SiLU-inplace": lambda nn: nn.SiLU(inplace=True),
    "Hardtanh-inplace": lambda nn: nn.Hardtanh(inplace=True),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_match_torch_from_far_negative_to_far_positive(torch, dtype, name):
    """Values and gradients from -60 to 60 (the softplus threshold, exp overflow on the unused side, log(1 + tiny)
    all crossed); the in-place forms on a non-leaf, as torch allows."""
    x0 = np.concatenate([np.linspace(-60, 60, 41), [-1e-3, 0.0, 1e-3, 4.9, 5.1, 19.9, 20.1]]).astype(dtype)
    upstream = np.random.default_rng(0).uniform(0.5, 2.0, x0.shape).astype(dtype)  # the slope at 0 counts too
    outs = []
    for lib in (mg, torch):
        x = lib.tensor(x0.copy(), requires_grad=True)
        y = ACTIVATIONS[name](lib.nn)(x * 1.0)
        y.backward(lib.tensor(upstream).reshape(y.shape))
        outs.append((y, x.grad))
    for a, b in zip(*outs):
        _same_dtype(a, b)
        np.testing.assert_allclose(_np(a), _np(b), **_tol(dtype))


@pytest.mark.parametrize("name", ["log1p", "expm1"])
def test_log1p_and_expm1_keep_tiny_arguments_exact(torch, name, rng):
    x0 = np.concatenate([rng.standard_normal(5), [1e-12, -1e-15, 0.0]])
    outs = []
    for lib in (mg, torch):
        x = lib.tensor(x0.copy(), requires_grad=True)
        y = getattr(lib, name)(x) if lib is torch else getattr(x, name)()
        y.sum().backward()
        outs.append((y, x.grad))
    for a, b in zip(*outs):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-15, atol=0)


def test_dropout_zeroes_about_p_and_scales_the_rest():
    x = mg.ones(200, 100)
    drop = nn.Dropout(0.3)
    y = drop(x).data
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.02  # 20000 draws: sd 0.003
    drop.eval()
    assert drop(x) is x
    assert (nn.Dropout(1.0)(x).data == 0).all() and nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


# ----- nn.RNN: bidirectional, dropout ---------------------------------------------------------------------------
RNN_CONFIGS = [dict(num_layers=L, nonlinearity=nl, batch_first=bf, fused=fused, packed=packed)
               for L in (1, 2) for nl in ("tanh", "relu") for bf in (False, True) for fused in (True, False)
               for packed in (False, True)]


def _torch_twin(torch, ours, **kwargs):
    twin = torch.nn.RNN(**kwargs).double()
    for name, p in twin.named_parameters():
        p.data = torch.tensor(getattr(ours, name).data.copy())
    return twin


@pytest.mark.parametrize("cfg", RNN_CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_bidirectional_rnn_equals_torch_in_float64(torch, cfg):
    cfg = dict(cfg)
    fused, packed = cfg.pop("fused"), cfg.pop("packed")
    kwargs = dict(input_size=3, hidden_size=4, bidirectional=True, **cfg)
    mg.manual_seed(1)
    ours = nn.RNN(fused=fused, **kwargs).double()
    theirs = _torch_twin(torch, ours, **kwargs)
    rng = np.random.default_rng(2)
    T, B = 6, 3
    x0 = rng.standard_normal((B, T, 3) if cfg["batch_first"] else (T, B, 3))
    h00 = rng.standard_normal((2 * cfg["num_layers"], B, 4))
    lengths = [4, 6, 2]
    results = []
    for lib, rnn in ((mg, ours), (torch, theirs)):
        x, h0 = lib.tensor(x0.copy(), requires_grad=True), lib.tensor(h00.copy(), requires_grad=True)
        utils = rnn_utils if lib is mg else torch.nn.utils.rnn
        inp = utils.pack_padded_sequence(x, lengths, batch_first=cfg["batch_first"], enforce_sorted=False) \
            if packed else x
        out, h_n = rnn(inp, h0)
        if packed:
            out, _ = utils.pad_packed_sequence(out, batch_first=cfg["batch_first"])
        w = lib.tensor(np.random.default_rng(3).standard_normal(tuple(out.shape)))
        ((out * w).sum() + (h_n * h_n).sum()).backward()
        grads = [x.grad, h0.grad] + [p.grad for _, p in sorted(rnn.named_parameters())]
        results.append([out, h_n] + grads)
    for a, b in zip(*results):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_rnn_dropout_between_layers_as_torch(torch, fused):
    kwargs = dict(input_size=3, hidden_size=4, num_layers=3, dropout=1.0)  # p = 1: deterministic, every mask 0
    mg.manual_seed(0)
    ours = nn.RNN(fused=fused, **kwargs).double()
    theirs = _torch_twin(torch, ours, **kwargs)
    x0 = np.random.default_rng(0).standard_normal((5, 2, 3))
    for train in (True, False):
        ours.train(train)
        theirs.train(train)
        a, b = ours(mg.tensor(x0)), theirs(torch.tensor(x0))
        for u, v in zip(a, b):
            np.testing.assert_allclose(_np(u), _np(v), rtol=1e-12, atol=1e-14)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.RNN(3, 4, dropout=0.5)


# ----- bad arguments: torch's exception types -------------------------------------------------------------------
BAD_MODULE_ARGS = [("RNN", dict(hidden_size=2.0)), ("LSTM", dict(hidden_size=None)), ("GRU", dict(input_size=2.0)),
                   ("RNN", dict(num_layers=None)), ("LSTM", dict(num_layers=0)), ("GRU", dict(hidden_size=0)),
                   ("RNN", dict(batch_first=None)), ("LSTM", dict(bias="x")), ("GRU", dict(dropout=None)),
                   ("RNN", dict(dropout=2.0)), ("RNN", dict(nonlinearity="gelu"))]
BAD_OPTIMIZER_ARGS = [("SGD", dict(lr="x")), ("SGD", dict(lr=None)), ("SGD", dict(lr=-1.0)),
                      ("SGD", dict(lr=0.1, momentum=None)), ("Adam", dict(lr=0.1, betas=(0.9, None))),
                      ("Adam", dict(lr=0.1, eps="x")), ("RMSprop", dict(lr=0.1, alpha=None)),
                      ("Adagrad", dict(lr=0.1, lr_decay=None))]


def _raised(make):
    with pytest.raises(Exception) as info:
        make()
    return info.value


@pytest.mark.parametrize("name,kwargs", BAD_MODULE_ARGS)
def test_recurrent_layers_refuse_bad_arguments_with_torchs_exception_type(torch, name, kwargs):
    """A wrong type is torch's TypeError (also a ValueError in minigrad), a wrong value its ValueError; our
    message names the argument."""
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    theirs = _raised(lambda: getattr(torch.nn, name)(**args))
    ours = _raised(lambda: getattr(nn, name)(**args))
    assert isinstance(ours, type(theirs)) and isinstance(ours, ValueError), (ours, theirs)
    assert isinstance(ours, mg.ArgumentTypeError) == isinstance(theirs, TypeError)
    assert next(iter(kwargs)) in str(ours)


@pytest.mark.parametrize("name,kwargs", BAD_OPTIMIZER_ARGS)
def test_optimizers_refuse_bad_arguments_with_torchs_exception_type(torch, name, kwargs):
    theirs = _raised(lambda: getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs))
    ours = _raised(lambda: getattr(mg.optim, name)([mg.zeros(2, requires_grad=True)], **kwargs))
    assert isinstance(ours, type(theirs)) and isinstance(ours, ValueError), (ours, theirs)
    assert list(kwargs)[-1] in str(ours)


@pytest.mark.parametrize("shape", [(), (3,)])
def test_a_reduction_refuses_dims_out_of_range_as_torch(torch, shape):
    """A 0-d and a 1-d tensor both take dim -1 and 0 only (torch's rule for a 0-d tensor: as if it were 1-d)."""
    for dim in (-2, -1, 0, 1):
        theirs = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        ours = mg.zeros(*shape, dtype=np.float64, requires_grad=True)
        try:
            want = theirs.sum(dim=dim)
        except IndexError:
            with pytest.raises(IndexError, match="Dimension out of range"):
                ours.sum(dim=dim)
            continue
        got = ours.sum(dim=dim)
        assert got.shape == tuple(want.shape)
        got.backward(mg.ones(*got.shape, dtype=np.float64))
        assert ours.grad.shape == shape


# ----- utils.data ---------------------------------------------------------------------------------------------
def test_dataloader_batches_like_torchs(torch):
    x0, y0 = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    for kwargs in (dict(batch_size=3), dict(batch_size=3, drop_last=True), dict(batch_size=4, shuffle=True),
                   dict(batch_size=None)):
        ours = mg.utils.data.DataLoader(mg.utils.data.TensorDataset(mg.tensor(x0), mg.tensor(y0)), **kwargs)
        theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x0), torch.tensor(y0)),
                                             **kwargs)
        assert len(ours) == len(theirs)
        a, b = list(ours), list(theirs)
        assert [tuple(u.shape for u in batch) for batch in a] == [tuple(tuple(v.shape) for v in batch) for batch in b]
        for (xa, ya), (xb, yb) in zip(a, b):
            _same_dtype(xa, xb)
            _same_dtype(ya, yb)
            if not kwargs.get("shuffle"):
                np.testing.assert_array_equal(_np(xa), _np(xb))
        seen = np.sort(np.concatenate([_np(batch[1]).reshape(-1) for batch in a]))
        assert list(seen) == list(range(10 if not kwargs.get("drop_last") else 9))


def test_dataloader_shuffle_is_reproducible_with_a_generator_and_collate_fn_is_used():
    data = mg.utils.data.TensorDataset(mg.arange(12))

    def epoch(seed):
        g = mg.Generator().manual_seed(seed)
        return [_np(b[0]).tolist() for b in mg.utils.data.DataLoader(data, batch_size=5, shuffle=True, generator=g)]

    assert epoch(1) == epoch(1) and epoch(1) != epoch(2)
    assert sorted(sum(epoch(1), [])) == list(range(12))
    loader = mg.utils.data.DataLoader(data, batch_size=4, collate_fn=lambda samples: len(samples))
    assert list(loader) == [4, 4, 4]
    with pytest.raises(ValueError, match="batch_size"):
        mg.utils.data.DataLoader(data, batch_size=0)
    with pytest.raises(RuntimeError, match="Size mismatch"):
        mg.utils.data.TensorDataset(mg.zeros(3), mg.zeros(4))


def test_subset_concat_and_random_split_as_torchs(torch):
    """The same samples as torch's for Subset and ConcatDataset (negative indices too); random_split's sizes as
    torch's for counts and fractions (the draws differ: NumPy's generator), its parts disjoint and complete."""
    x0 = np.arange(10.0)
    ours, theirs = mg.utils.data, torch.utils.data
    dm, dt = ours.TensorDataset(mg.tensor(x0)), theirs.TensorDataset(torch.tensor(x0))
    sub_m, sub_t = ours.Subset(dm, [7, 2, 2]), theirs.Subset(dt, [7, 2, 2])
    assert len(sub_m) == len(sub_t) == 3
    assert [sub_m[i][0].item() for i in range(3)] == [sub_t[i][0].item() for i in range(3)]
    np.testing.assert_array_equal(_np(sub_m[[0, 2]][0]), _np(sub_t[[0, 2]][0]))
    cat_m = ours.ConcatDataset([dm, ours.Subset(dm, [9, 8])])
    cat_t = theirs.ConcatDataset([dt, theirs.Subset(dt, [9, 8])])
    assert len(cat_m) == len(cat_t) == 12
    for i in (0, 9, 10, 11, -1, -12):
        assert cat_m[i][0].item() == cat_t[i][0].item(), i
    for bad in (12, -13):
        with pytest.raises((IndexError, ValueError)):
            cat_t[bad]
        with pytest.raises((IndexError, ValueError)):
            cat_m[bad]
    for lengths in ([7, 3], [0.5, 0.3, 0.2], [0.33, 0.33, 0.34], [1.0 / 3] * 3):
        parts_m = ours.random_split(dm, lengths, generator=mg.Generator().manual_seed(0))
        parts_t = theirs.random_split(dt, lengths, generator=torch.Generator().manual_seed(0))
        assert [len(p) for p in parts_m] == [len(p) for p in parts_t], lengths
        drawn = sorted(int(p[i][0].item()) for p in parts_m for i in range(len(p)))
        assert drawn == list(range(10))
    again = ours.random_split(dm, [5, 5], generator=mg.Generator().manual_seed(3))
    assert again[0].indices == ours.random_split(dm, [5, 5], generator=mg.Generator().manual_seed(3))[0].indices
    for bad in ([4, 4], [0.5, 0.6], [1.5, -0.5]):
        with pytest.raises(ValueError):
            theirs.random_split(dt, bad)
        with pytest.raises(ValueError):
            ours.random_split(dm, bad)
    loader = ours.DataLoader(parts_m[0], batch_size=2)
    assert sum(len(b[0]) for b in loader) == len(parts_m[0])


def test_samplers_as_torchs(torch):
    """The fixed orders equal torch's; the random ones draw what torch's may draw (NumPy's generator, other
    draws): every index once per permutation, none outside the data, none of weight zero, none twice without
    replacement; lengths and argument errors as torch's."""
    ours, theirs = mg.utils.data, torch.utils.data
    assert list(ours.SequentialSampler(range(5))) == list(theirs.SequentialSampler(range(5)))
    for n, size, drop in ((10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False), (2, 5, True)):
        got = list(ours.BatchSampler(ours.SequentialSampler(range(n)), size, drop))
        assert got == list(theirs.BatchSampler(theirs.SequentialSampler(range(n)), size, drop))
        assert len(ours.BatchSampler(range(n), size, drop)) == len(theirs.BatchSampler(range(n), size, drop)) \
            == len(got)
    for k in (None, 3, 7, 12):
        sampler = ours.RandomSampler(range(5), num_samples=k, generator=mg.Generator().manual_seed(0))
        drawn = list(sampler)
        assert len(drawn) == len(sampler) == len(theirs.RandomSampler(range(5), num_samples=k))
        for start in range(0, len(drawn), 5):
            block = drawn[start:start + 5]
            assert len(set(block)) == len(block) and set(block) <= set(range(5)), drawn
        assert sorted(drawn) == sorted(list(range(5)) * (len(drawn) // 5) + drawn[len(drawn) // 5 * 5:])
    again = list(ours.RandomSampler(range(5), num_samples=12, generator=mg.Generator().manual_seed(0)))
    assert again == drawn
    with_replacement = list(ours.RandomSampler(range(3), replacement=True, num_samples=200))
    assert set(with_replacement) == {0, 1, 2} and len(with_replacement) == 200
    subset = list(ours.SubsetRandomSampler([5, 6, 7, 9]))
    assert sorted(subset) == [5, 6, 7, 9] and len(ours.SubsetRandomSampler([5, 6])) == 2
    weights = [0.0, 2.0, 0.0, 1.0, 3.0]
    draws = list(ours.WeightedRandomSampler(weights, 300, generator=mg.Generator().manual_seed(1)))
    assert len(draws) == 300 and set(draws) == {1, 3, 4}
    assert draws.count(4) > draws.count(3)
    unique = list(ours.WeightedRandomSampler(mg.tensor(weights), 3, replacement=False))
    assert sorted(unique) == [1, 3, 4]
    for make in (lambda lib: lib.RandomSampler(range(3), replacement=1),
                 lambda lib: lib.RandomSampler(range(3), num_samples=0),
                 lambda lib: lib.RandomSampler(range(0)),
                 lambda lib: lib.BatchSampler(range(3), 0, False),
                 lambda lib: lib.BatchSampler(range(3), True, False),
                 lambda lib: lib.BatchSampler(range(3), 2, 1),
                 lambda lib: lib.WeightedRandomSampler([[1.0, 2.0]], 2),
                 lambda lib: lib.WeightedRandomSampler([1.0, 2.0], 0),
                 lambda lib: lib.WeightedRandomSampler([1.0, 2.0], 2, replacement=0)):
        with pytest.raises(Exception) as want:
            make(theirs)
        with pytest.raises(type(want.value)):
            make(ours)
    with pytest.raises(RuntimeError):
        list(ours.WeightedRandomSampler([1.0, 2.0], 3, replacement=False))


def test_dataloader_takes_samplers_as_torchs(torch):
    """sampler= and batch_sampler= give the batches torch's give from the same index order; the defaults are
    torch's (a SequentialSampler, a BatchSampler over it; a RandomSampler with shuffle), and the arguments that
    exclude each other raise torch's ValueError."""
    x0 = np.arange(10.0)
    dm, dt = mg.utils.data.TensorDataset(mg.tensor(x0)), torch.utils.data.TensorDataset(torch.tensor(x0))
    order = [9, 3, 4, 0, 8, 1, 2]
    for kwargs in (dict(sampler=order, batch_size=3), dict(sampler=order, batch_size=3, drop_last=True),
                   dict(batch_sampler=[[1, 2], [7], [0, 5, 6]]), dict(sampler=order, batch_size=None)):
        ours, theirs = mg.utils.data.DataLoader(dm, **kwargs), torch.utils.data.DataLoader(dt, **kwargs)
        assert len(ours) == len(theirs)
        assert [_np(b[0]).tolist() for b in ours] == [b[0].tolist() for b in theirs]
    loader = mg.utils.data.DataLoader(dm, batch_size=4, shuffle=True)
    assert isinstance(loader.sampler, mg.utils.data.RandomSampler)
    assert isinstance(loader.batch_sampler, mg.utils.data.BatchSampler) and loader.batch_sampler.batch_size == 4
    plain = mg.utils.data.DataLoader(dm, batch_size=4)
    assert isinstance(plain.sampler, mg.utils.data.SequentialSampler)
    sub = mg.utils.data.DataLoader(dm, batch_size=2, sampler=mg.utils.data.SubsetRandomSampler([1, 3, 5]))
    assert sorted(int(v) for b in sub for v in _np(b[0])) == [1, 3, 5]
    for kwargs in (dict(sampler=order, shuffle=True), dict(batch_sampler=[[0]], batch_size=2),
                   dict(batch_sampler=[[0]], drop_last=True), dict(batch_size=None, drop_last=True)):
        with pytest.raises(ValueError):
            torch.utils.data.DataLoader(dt, **kwargs)
        with pytest.raises(ValueError):
            mg.utils.data.DataLoader(dm, **kwargs)


# ----- a whole ordinary torch script, only the imports changed -------------------------------------------------
SCRIPT = '''
import numpy as np
import LIB as torch
from LIB import nn, optim
from LIB.utils.data import DataLoader, TensorDataset
from LIB.nn.utils.rnn import pack_padded_sequence

torch.manual_seed(0)
g = np.random.default_rng(0)
x = torch.tensor(g.standard_normal((64, 7, 3)).astype(np.float32))
lengths = torch.tensor(g.integers(2, 8, 64))
y = (x[:, 0, 0] > 0).long()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, 8, num_layers=2, batch_first=True, bidirectional=True, dropout=0.1)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x, lengths):
        _, h = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return self.head(self.drop(torch.cat([h[-2], h[-1]], dim=1)))


model = Net()
optimizer = optim.AdamW(model.parameters(), lr=0.01)
scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
criterion = nn.CrossEntropyLoss()
loader = DataLoader(TensorDataset(x, lengths, y), batch_size=16, shuffle=True)
device = torch.device("cpu")
for epoch in range(3):
    model.train()
    for xb, lb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        out = model(xb, lb)
        loss = criterion(out, yb)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        for p in model.parameters():
            p.grad.data.clamp_(-1, 1)
        optimizer.step()
    scheduler.step()
    model.eval()
    with torch.no_grad():
        pred = model(x, lengths).argmax(dim=1)
        acc = (pred == y).float().mean().item()
    print(epoch, round(loss.item(), 4), round(acc, 3), scheduler.get_last_lr())
print("grad norm", float(torch.stack([p.grad.norm() for p in model.parameters()]).norm()))
'''


def test_an_ordinary_torch_script_runs_with_only_its_imports_changed(torch, capsys):
    for lib in ("torch", "minigrad"):
        exec(compile(SCRIPT.replace("LIB", lib), f"<{lib} script>", "exec"), {"__name__": "script"})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 8 and out[0].split()[0] == out[4].split()[0] == "0"
    assert out[3].startswith("grad norm") and out[7].startswith("grad norm")


def test_elu_keeps_torchs_signed_zeros_for_either_sign_of_alpha(torch):
    x0 = np.array([-0.0, 0.0, -1.0, 2.0])
    for alpha in (0.7, -0.5):
        ours = mg.nn.functional.elu(mg.tensor(x0), alpha).numpy()
        theirs = torch.nn.functional.elu(torch.tensor(x0), alpha).numpy()
        np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))


# ----- a script with a hand-written LSTM cell and the lines scripts open with -----------------------------------
CELL_SCRIPT = '''
import numpy as np
import LIB as torch
import LIB.nn as nn
import LIB.nn.functional as F

torch.backends.cudnn.deterministic = True
torch.backends.cudnn.benchmark = False
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
device = torch.device("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
g = np.random.default_rng(0)


def draw_(w):
    w.data.copy_(torch.from_numpy(g.uniform(-0.3, 0.3, tuple(w.shape)).astype(np.float32)))


class LSTMCell(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.Tensor(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.Tensor(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.Tensor(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self):
        for w in self.parameters():
            draw_(w)

    def forward(self, x, state):
        h, c = state
        i, f, gg, o = (x @ self.weight_ih.t() + h @ self.weight_hh.t() + self.bias).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        return torch.sigmoid(o) * torch.tanh(c), c


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = LSTMCell(3, 8)
        self.gru = nn.GRU(8, 8, batch_first=True)
        self.head = nn.Linear(8, 4)
        for p in list(self.gru.parameters()) + list(self.head.parameters()):
            draw_(p)

    def forward(self, x):
        h = c = x.new_zeros(x.size(0), self.cell.hidden_size)
        outs = []
        for t in range(x.size(1)):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(h)
        self.gru.flatten_parameters()
        out, _ = self.gru(torch.stack(outs, 1))
        return F.log_softmax(self.head(out[:, -1]), dim=-1)


model = Model().to(device)
x = torch.from_numpy(g.standard_normal((16, 6, 3)).astype(np.float32))
labels = torch.div(torch.arange(16), 4, rounding_mode="floor")
x = x + labels.float().view(-1, 1, 1)
target = F.one_hot(labels, 4).float() * 0.9 + 0.025
criterion = nn.KLDivLoss(reduction="batchmean")
optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
for step in range(8):
    optimizer.zero_grad()
    loss = criterion(model(x), target)
    loss.backward()
    total_norm = 0.0
    for p in model.parameters():
        param_norm = p.grad.data.norm(2)
        total_norm += param_norm.item() ** 2
    total_norm = total_norm ** 0.5
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    print(f"{loss:.7f} {total_norm:.7f}")
print(f"{torch.finfo(x.dtype).eps:.3e}", torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
'''


def test_a_script_with_a_hand_written_cell_reaches_torchs_losses(torch, capsys):
    """torch.Tensor(*sizes) parameters, the header lines of seeded scripts, flatten_parameters, div with a
    rounding mode, KLDivLoss, the gradient-norm loop over `p.grad.data.norm(2)`, f-strings of 0-d tensors."""
    threads = (mg.get_num_threads(), torch.get_num_threads())
    try:
        for lib in ("torch", "minigrad"):
            exec(compile(CELL_SCRIPT.replace("LIB", lib), f"<{lib} script>", "exec"), {"__name__": "script"})
    finally:
        mg.set_num_threads(threads[0])
        torch.set_num_threads(threads[1])
        torch.use_deterministic_algorithms(False)
        mg.use_deterministic_algorithms(False)
    out = capsys.readouterr().out.splitlines()
    theirs, ours = out[:9], out[9:]
    assert len(ours) == 9 and ours[8] == theirs[8] == "1.192e-07 1 True"
    np.testing.assert_allclose(np.array([line.split() for line in ours[:8]], float),
                               np.array([line.split() for line in theirs[:8]], float), rtol=2e-5)
    assert float(theirs[7].split()[0]) < 0.9 * float(theirs[0].split()[0])  # it learns: the check has teeth


# ----- set_default_dtype -----------------------------------------------------------------------------------------
DEFAULT_DTYPE_CASES = {
    "tensor-of-floats": lambda lib: lib.tensor([1.5]),
    "zeros": lambda lib: lib.zeros(2),
    "arange-float": lambda lib: lib.arange(1.0, 3.0),
    "int-plus-float": lambda lib: lib.tensor([1, 2]) + 2.5,
    "int-true-divide": lambda lib: lib.tensor([1, 2]) / 2,
    "int-exp": lambda lib: lib.tensor([1, 2]).exp(),
    "complex": lambda lib: lib.tensor([1j]),
    "full": lambda lib: lib.full((2,), 1.5),
    "rand": lambda lib: lib.rand(2),
    "float-cast-stays-float32": lambda lib: lib.tensor([1, 2]).float(),
    "Tensor-sizes": lambda lib: lib.Tensor(2).zero_(),
    "linspace": lambda lib: lib.linspace(0, 1, 3),
    "Linear": lambda lib: lib.nn.Linear(2, 2).weight,
    "LSTM": lambda lib: lib.nn.LSTM(2, 3).weight_hh_l0,
    "GRUCell": lambda lib: lib.nn.GRUCell(2, 3).bias_ih,
    "Embedding": lambda lib: lib.nn.Embedding(3, 2).weight,
    "LayerNorm": lambda lib: lib.nn.LayerNorm(2).weight,
    "clip-of-nothing": lambda lib: lib.nn.utils.clip_grad_norm_([], 1.0),
}


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")  # torch's, for its complex32
@pytest.mark.parametrize("default", ["float64", "float16"])
@pytest.mark.parametrize("name", sorted(DEFAULT_DTYPE_CASES))
def test_set_default_dtype_as_torch(torch, name, default):
    found = []
    for lib in (mg, torch):
        lib.set_default_dtype(getattr(lib, default))
        try:
            found.append((str(DEFAULT_DTYPE_CASES[name](lib).dtype).replace("torch.", ""),
                          str(lib.get_default_dtype()).replace("torch.", "")))
        finally:
            lib.set_default_dtype(lib.float32)
    if name == "complex" and default == "float16":  # torch's complex32; NumPy has none, so complex64
        assert found[0] == ("complex64", "float16") and found[1][0] == "complex32"
        return
    assert found[0] == found[1] and found[0][1] == default


def test_set_default_dtype_refuses_what_torch_refuses(torch):
    for lib in (mg, torch):
        for dtype in (lib.int64, lib.bool, "float"):
            with pytest.raises(TypeError):
                lib.set_default_dtype(dtype)
        assert str(lib.get_default_dtype()).endswith("float32")
    mg.set_default_dtype(mg.float64)
    try:
        assert repr(mg.tensor([1.0])) == "tensor([1.])" and repr(mg.tensor([1.0], dtype=mg.float32)).endswith(
            "dtype=float32)")
    finally:
        mg.set_default_dtype(mg.float32)


def test_set_default_dtype_takes_dtypes_not_python_types(torch):
    for lib in (mg, torch):
        with pytest.raises(TypeError):
            lib.set_default_dtype(float)
        assert str(lib.get_default_dtype()).endswith("float32")
