"""Hostile input: every public mutating call × every bad input raises a clear error (its type asserted) and leaves
every array, parameter, gradient and optimizer state bit-identical to a snapshot taken before the call.

The bad item is placed by hypothesis at a random position among good ones, so a call that validates lazily
(and has modified the items before the bad one) fails here. The array-level calls run on the numpy, numba
and CUDA backends (simulated unless MINIGRAD_REAL_CUDA=1).
"""
import copy
import math
import pickle

import numpy as np
import pytest
from backends import BACKENDS, examples, to_backend, to_host
from helpers import make_params
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import clip, nn, optim
from minigrad._validation import check_real
from minigrad.nn import utils

backends = pytest.mark.parametrize("backend", BACKENDS)


def _bytes(arrays):
    return [np.asarray(a).tobytes() for a in arrays]


# ----- minigrad.clip on every backend ---------------------------------------------------------------------------
def _read_only(backend):
    a = np.array([5.0, -7.0])
    a.setflags(write=False)
    return a


def _non_contiguous(backend):
    if backend != "cuda":
        return None  # host arrays of any layout are fine
    from numba import cuda

    return cuda.to_device(np.arange(16.0).reshape(4, 4))[:, ::2]


def _integer(backend):
    if backend != "cuda":
        return np.array([3, 4])
    from numba import cuda

    return cuda.to_device(np.array([3, 4]))


def _integers_on_device(backend):
    if backend != "cuda":
        return None
    from numba import cuda

    return cuda.to_device(np.ones(3, np.int16))


def _host_among_device(backend):
    return np.ones(2) if backend == "cuda" else None


BAD_ITEMS = {"read-only": (_read_only, ValueError, "read-only"),
             "non-contiguous": (_non_contiguous, ValueError, "contiguous"),
             "integer": (_integer, TypeError, "floating point|float32 and float64"),
             "integers on a device": (_integers_on_device, TypeError, "float16, float32 and float64"),
             "host among device": (_host_among_device, ValueError, "mix host")}
CALLS = {"clip_norm_": lambda arrays, b: clip.clip_norm_(arrays, 1.0, backend=b),
         "clip_value_": lambda arrays, b: clip.clip_value_(arrays, 0.5, backend=b),
         "scale_": lambda arrays, b: clip.scale_(arrays, 0.5, backend=b),
         "clamp_": lambda arrays, b: clip.clamp_(arrays, -1.0, 1.0, backend=b)}


@backends
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("bad", list(BAD_ITEMS))
def test_a_bad_array_anywhere_in_the_list_changes_nothing(backend, call, bad):
    make, error, message = BAD_ITEMS[bad]
    if make(backend) is None or (bad == "read-only" and backend == "cuda"):
        pytest.skip(f"a {bad} array does not apply to the {backend} backend")

    @examples(backend)
    @given(sizes=st.lists(st.integers(1, 70_000 if backend == "numba" else 20), min_size=1, max_size=4),
           data=st.data())
    def check(sizes, data):
        good = [np.linspace(-30.0, 30.0, n) for n in sizes]
        arrays = to_backend(good, backend)
        position = data.draw(st.integers(0, len(arrays)), label="position of the bad item")
        arrays.insert(position, make(backend))
        before = _bytes(to_host([a for i, a in enumerate(arrays) if i != position], backend))
        with pytest.raises(error, match=message):
            CALLS[call](arrays, backend)
        assert _bytes(to_host([a for i, a in enumerate(arrays) if i != position], backend)) == before

    check()


BAD_ARGUMENTS = [
    ("clip_norm_", dict(max_norm=-1.0), ValueError, "max_norm"),
    ("clip_norm_", dict(max_norm=math.nan), ValueError, "max_norm"),
    ("clip_norm_", dict(max_norm="1"), ValueError, "max_norm"),
    ("clip_norm_", dict(max_norm=True), ValueError, "max_norm"),
    ("clip_norm_", dict(max_norm=np.array([[1.0]])), ValueError, "max_norm"),
    ("clip_norm_", dict(max_norm=np.array("1")), ValueError, "max_norm"),
    ("clip_norm_", dict(max_norm=np.True_), ValueError, "max_norm"),
    ("clip_norm_", dict(max_norm=1.0, norm_type=math.nan), ValueError, "norm_type"),
    ("clip_norm_", dict(max_norm=1.0, norm_type="fro"), ValueError, "norm_type"),
    ("clip_norm_", dict(max_norm=1.0, norm_type=True), ValueError, "norm_type"),
    ("clip_value_", dict(clip_value=-0.5), ValueError, "clip_value"),
    ("clip_value_", dict(clip_value=math.nan), ValueError, "clip_value"),
    ("clip_value_", dict(clip_value=None), ValueError, "clip_value"),
    ("scale_", dict(coef="2"), ValueError, "coef"),
    ("scale_", dict(coef=False), ValueError, "coef"),
    ("clamp_", dict(lo=1.0, hi=-1.0), ValueError, "lo must be <= hi"),
    ("clamp_", dict(lo=math.nan, hi=1.0), ValueError, "lo"),
]


@backends
@pytest.mark.parametrize("name,kwargs,error,word", BAD_ARGUMENTS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_ARGUMENTS)])
def test_a_bad_argument_changes_nothing(backend, name, kwargs, error, word):
    arrays = [np.array([3.0, -4.0]), np.array([100.0], np.float32)]
    dev = to_backend(arrays, backend)
    with pytest.raises(error, match=word):
        getattr(clip, name)(dev, backend=backend, **kwargs)
    assert _bytes(to_host(dev, backend)) == _bytes(arrays)


def test_good_numbers_by_the_one_rule():
    """Python and NumPy numbers and 0-d arrays are numbers; every call accepts them alike."""
    for ok in (1, 1.0, np.float32(1.0), np.int64(1), np.array(1.0), mg.tensor(1.0), math.inf):
        assert check_real("x", ok) == float(ok)


@backends
@pytest.mark.parametrize("p", [1e-3, 1e-2, 0.05, 20.0, 60.0, 300.0, -1e-3, -300.0])
def test_tiny_and_huge_orders_give_one_answer_on_every_backend(backend, p):
    """A norm too large for float64 is inf, never an exception; every backend gives the reference's value."""
    arrays = [np.linspace(0.5, 3.0, 70_000 if backend == "numba" else 10),
              np.full(3, 1e30, np.float32), np.linspace(-2.0, 2.0, 7) + 0.25]
    expected = float(clip.total_norm(arrays, p, backend="numpy"))
    got = float(np.asarray(to_host([clip.total_norm(to_backend(arrays, backend), p, backend=backend)],
                                    backend)[0]))
    if math.isinf(expected):
        assert got == expected
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-9)
    dev = to_backend(arrays, backend)
    clip.clip_norm_(dev, 1.0, p, backend=backend)  # no exception either


# ----- nn.utils and GradBuffer -----------------------------------------------------------------------------------
def _grads(params):
    return [None if p.grad is None else p.grad.numpy().tobytes() for p in params]


@given(position=st.integers(0, 4), data=st.data())
def test_module_clip_calls_with_a_read_only_grad_change_nothing(position, data):
    params = make_params(grad_scale=10)
    frozen = np.array([1e3, -1e3])
    frozen.setflags(write=False)
    bad = nn.Parameter(np.zeros(2))
    bad.grad = frozen
    params.insert(position, bad)
    before = _grads(params)
    call = data.draw(st.sampled_from([
        lambda ps: utils.clip_grad_norm_(ps, 1.0), lambda ps: utils.clip_grad_value_(ps, 0.1),
        lambda ps: utils.clip_grads_with_norm_(ps, 1.0, mg.tensor(50.0))]))
    with pytest.raises(ValueError, match="read-only"):
        call(params)
    assert _grads(params) == before


@pytest.mark.parametrize("total_norm", [-1e-6, -5.0, "3", [1.0, 2.0]])
def test_clip_grads_with_a_bad_norm_raises_and_changes_nothing(total_norm):
    params = make_params(grad_scale=10)
    before = _grads(params)
    with pytest.raises(ValueError, match="total_norm"):
        utils.clip_grads_with_norm_(params, 1.0, total_norm)
    assert _grads(params) == before


def test_gradbuffer_clip_of_a_subset_or_a_repeat_touches_exactly_those():
    """[p, p] counts p twice and scales it twice, as torch does; q, not passed, is never touched."""
    p, q = make_params(n=2, grad_scale=10)
    utils.GradBuffer([p, q])
    gp, gq = p.grad.numpy().copy(), q.grad.numpy().copy()
    norm = utils.clip_grad_norm_([p, p], 1.0)
    np.testing.assert_allclose(norm.item(), math.sqrt(2) * np.linalg.norm(gp), rtol=1e-12)
    coef = 1.0 / (norm.item() + 1e-6)
    np.testing.assert_allclose(p.grad.numpy(), gp * coef * coef, rtol=1e-12)
    assert q.grad.numpy().tobytes() == gq.tobytes()
    utils.clip_grad_value_([p], 1e-3)
    assert q.grad.numpy().tobytes() == gq.tobytes() and np.abs(p.grad.numpy()).max() <= 1e-3


def test_a_failed_gradbuffer_construction_leaves_every_grad_as_it_was():
    p, q, r = make_params(n=3, grad_scale=10)
    r.data = np.zeros(7)  # its grad (of the old shape) no longer fits
    before = [p.grad, q.grad, r.grad]
    with pytest.raises(RuntimeError, match="parameters\\[2\\]"):
        utils.GradBuffer([p, q, r])
    assert [p.grad, q.grad, r.grad] == before and p._grad_buffer is None
    utils.clip_grad_norm_([p], 1.0)  # and clipping still works
    with pytest.raises(ValueError, match="twice"):
        utils.GradBuffer([p, q, p])
    assert p._grad_buffer is None


def test_gradbuffer_zero_grad_zeroes_the_views_it_owns():
    params = make_params(n=3, grad_scale=10)
    buf = utils.GradBuffer(params)
    views = [p.grad for p in params]
    buf.zero_grad()
    assert all(p.grad is v and not p.grad.numpy().any() for p, v in zip(params, views))
    assert not buf.flats[np.dtype(np.float64)].any()


# ----- optimizers ---------------------------------------------------------------------------------------------
OPTIMIZERS = [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.1, amsgrad=True)),
              (optim.AdamW, dict(lr=0.1)), (optim.Adagrad, dict(lr=0.1)),
              (optim.RMSprop, dict(lr=0.1, momentum=0.5, centered=True))]


def _optimizer_snapshot(opt):
    return pickle.dumps(({k: v for k, v in opt.state_dict().items()}, [p.data.tobytes() for g in opt.param_groups
                                                                         for p in g["params"]]))


@pytest.mark.parametrize("make,kwargs", OPTIMIZERS, ids=[o[0].__name__ for o in OPTIMIZERS])
@given(position=st.integers(0, 4))
def test_a_step_that_raises_changes_no_parameter_and_no_state(make, kwargs, position):
    params = make_params(grad_scale=10)
    opt = make(params, **kwargs)
    opt.step()  # some state exists already
    frozen = np.ones(3)
    frozen.setflags(write=False)
    bad = mg.from_numpy(frozen).requires_grad_()
    bad.grad = np.ones(3)
    opt.param_groups[0]["params"].insert(position, bad)
    before = _optimizer_snapshot(opt)
    with pytest.raises(ValueError, match="read-only"):
        opt.step()
    assert _optimizer_snapshot(opt) == before


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("make,kwargs", OPTIMIZERS, ids=[o[0].__name__ for o in OPTIMIZERS])
@given(position=st.integers(0, 3))
def test_a_step_over_a_parameter_whose_data_became_integers_changes_nothing(make, kwargs, fused, position):
    """A float gradient is set, then `.data` is replaced by an integer array: the step must refuse before it
    updates the parameters in front of that one (found by re-checking a mutant once listed as equivalent)."""
    params = make_params(grad_scale=10)
    opt = make(params, fused=fused, **kwargs)
    opt.step()
    params[position].data = np.ones(params[position].shape, dtype=np.int64)
    before = _optimizer_snapshot(opt)
    with pytest.raises(TypeError, match="int64"):
        opt.step()
    assert _optimizer_snapshot(opt) == before


@given(position=st.integers(0, 3))
def test_agc_over_a_parameter_whose_data_became_integers_changes_no_gradient(position):
    params = make_params(grad_scale=10)
    params[position].data = np.ones(params[position].shape, dtype=np.int64)
    grads = _bytes([p.grad.data for p in params])
    with pytest.raises(TypeError, match="floating"):
        utils.adaptive_clip_grad_(params, 0.01)
    assert _bytes([p.grad.data for p in params]) == grads


def test_norm_and_value_clips_read_only_the_gradients_as_torch_does():
    """A parameter's `.data` plays no part in clip_grad_norm_ / clip_grad_value_ (torch reads only .grad): an
    integer `.data` changes nothing in the result."""
    results = []
    for replace in (False, True):
        params = make_params(grad_scale=10)
        if replace:
            params[1].data = np.ones(params[1].shape, dtype=np.int64)
        norm = utils.clip_grad_norm_(params, 1.0).item()
        utils.clip_grad_value_(params, 0.05)
        results.append((norm, _bytes([p.grad.data for p in params])))
    assert results[0] == results[1]


def test_a_gradbuffer_over_a_parameter_whose_data_became_integers_refuses_and_keeps_every_grad():
    params = make_params(grad_scale=10)
    params[2].data = np.ones(params[2].shape, dtype=np.int64)
    grads = [p.grad for p in params]
    values = _bytes([g.data for g in grads])
    with pytest.raises(RuntimeError, match="parameters\\[2\\]"):
        utils.GradBuffer(params)
    assert all(p.grad is g for p, g in zip(params, grads)) and _bytes([g.data for g in grads]) == values
    assert all(p._grad_buffer is None for p in params)


BAD_HYPER = [
    (optim.SGD, dict(lr=-1)), (optim.SGD, dict(lr=math.nan)), (optim.SGD, dict(lr="0.1")),
    (optim.SGD, dict(lr=0.1, momentum=-0.5)), (optim.SGD, dict(lr=0.1, nesterov=True)),
    (optim.SGD, dict(lr=0.1, weight_decay=math.inf * 0)), (optim.SGD, dict(lr=0.1, nesterov="yes")),
    (optim.Adam, dict(betas=(0.9,))), (optim.Adam, dict(betas=(5, -1))), (optim.Adam, dict(betas=(0.9, 1.0))),
    (optim.Adam, dict(eps=-1e-8)), (optim.Adam, dict(amsgrad=1)), (optim.Adam, dict(lr=True)),
    (optim.AdamW, dict(weight_decay=-0.1)), (optim.Adagrad, dict(initial_accumulator_value=-1)),
    (optim.Adagrad, dict(initial_accumulator_value=math.nan)), (optim.Adagrad, dict(lr_decay=-0.1)),
    (optim.RMSprop, dict(alpha=-0.1)), (optim.RMSprop, dict(centered=None)), (optim.RMSprop, dict(eps=math.nan)),
]


@pytest.mark.parametrize("make,kwargs", BAD_HYPER, ids=[f"{m.__name__}-{i}" for i, (m, _) in enumerate(BAD_HYPER)])
def test_bad_hyperparameters_are_rejected_at_construction(make, kwargs):
    with pytest.raises(ValueError, match="(?i)invalid|beta|nesterov"):
        make(make_params(grad_scale=10), **kwargs)


@pytest.mark.parametrize("make,kwargs", OPTIMIZERS, ids=[o[0].__name__ for o in OPTIMIZERS])
def test_a_rejected_state_dict_changes_nothing(make, kwargs):
    params = make_params(grad_scale=10)
    opt = make(params, **kwargs)
    opt.step()
    good = opt.state_dict()
    before = _optimizer_snapshot(opt)
    bad_dicts = []
    for key, value in (("lr", math.nan), ("lr", "0.1"), ("lr", -1.0)):
        d = copy.deepcopy(good)
        d["param_groups"][0][key] = value
        bad_dicts.append(d)
    d = copy.deepcopy(good)
    d["param_groups"][0]["params"] = d["param_groups"][0]["params"][:-1]
    bad_dicts.append(d)
    d = copy.deepcopy(good)
    d["state"][0] = {k: (np.zeros(99) if hasattr(v, "shape") else v) for k, v in d["state"][0].items()}
    bad_dicts.append(d)
    d = copy.deepcopy(good)
    d["state"][0] = {"unknown_buffer": np.zeros(2)}
    bad_dicts.append(d)
    d = copy.deepcopy(good)
    d["state"][17] = copy.deepcopy(d["state"][0])
    bad_dicts.append(d)
    bad_dicts += [{"state": {}}, "not a dict"]
    twins = make_params(grad_scale=10)
    other = (optim.Adam(twins, lr=0.1) if make is optim.SGD else optim.SGD(twins, lr=0.1, momentum=0.9))
    other.step()
    bad_dicts.append(other.state_dict())  # another optimizer's state_dict
    for d in bad_dicts:
        with pytest.raises(ValueError):
            opt.load_state_dict(d)
        assert _optimizer_snapshot(opt) == before
    opt.load_state_dict(good)  # the good one still loads
    assert _optimizer_snapshot(opt) == before


def test_load_state_dict_restores_the_saved_hyperparameters():
    params = make_params(grad_scale=10)
    opt = optim.Adam(params, lr=0.1, betas=(0.8, 0.9))
    saved = opt.state_dict()
    opt.param_groups[0]["lr"], opt.param_groups[0]["betas"] = 0.5, (0.5, 0.5)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["betas"] == (0.8, 0.9)


# ----- modules ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad,error", [(np.array(["a", "b", "c", "d"]), TypeError), (np.zeros(5), ValueError),
                                       ([1, [2]], TypeError), (np.array([1 + 2j] * 4), TypeError)])
def test_module_load_state_dict_checks_every_entry_before_writing(bad, error):
    mg.manual_seed(0)
    model = nn.Linear(3, 4)
    state = model.state_dict()
    before = [p.data.tobytes() for p in model.parameters()]
    new = {k: v + 1 for k, v in state.items()}
    new["bias"] = bad  # the last entry is the bad one
    with pytest.raises(error, match="bias"):
        model.load_state_dict(new)
    assert [p.data.tobytes() for p in model.parameters()] == before


def test_zero_grad_with_a_read_only_grad_clears_nothing():
    params = make_params(n=3, grad_scale=10)
    frozen = np.ones(params[2].shape)
    frozen.setflags(write=False)
    params[2].grad = frozen
    opt = optim.SGD(params, lr=0.1)
    before = _grads(params)
    with pytest.raises(ValueError, match="read-only"):
        opt.zero_grad(set_to_none=False)
    assert _grads(params) == before
    opt.zero_grad()  # set_to_none writes nothing: fine
    assert all(p.grad is None for p in params)


# ----- in-place changes of tensors saved for backward --------------------------------------------------------
INPLACE = {"zero_": lambda t: t.zero_(), "mul_": lambda t: t.mul_(2), "add_": lambda t: t.add_(1),
           "clamp_": lambda t: t.clamp_(0, 1), "fill_": lambda t: t.fill_(3), "copy_": lambda t: t.copy_(t * 0),
           "+=": lambda t: t.__iadd__(1), "setitem": lambda t: t.__setitem__(0, 5.0)}


@pytest.mark.parametrize("op", list(INPLACE))
def test_backward_raises_when_a_saved_tensor_was_modified_in_place(op):
    w = mg.tensor([2.0, 3.0], requires_grad=True)
    x = mg.tensor([5.0, 7.0])
    y = (w * x).sum()
    INPLACE[op](x)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*Mul"):
        y.backward()
    assert w.grad is None


def test_views_share_the_version_counter_and_unsaved_inputs_may_change():
    w = mg.tensor([2.0, 3.0], requires_grad=True)
    x = mg.tensor([[5.0, 7.0], [1.0, 1.0]])
    y = (w * x[0]).sum()  # saves the view x[0]
    x[0].zero_()
    with pytest.raises(RuntimeError, match="inplace"):
        y.backward()
    a = mg.tensor([1.0, 2.0])
    z = (w + a).sum()  # add saves nothing: changing a afterwards is harmless, as in torch
    a.zero_()
    z.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])
    e = w.exp()  # exp saves its output
    with mg.no_grad():
        e.mul_(2)
    with pytest.raises(RuntimeError, match="output of Exp"):
        e.sum().backward()


def test_in_place_on_a_leaf_that_requires_grad_raises_outside_no_grad():
    w = mg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.add_(1)
    with mg.no_grad():
        w.add_(1)
    assert w.item() == 2.0
