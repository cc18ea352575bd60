"""Fused optimizer steps (fused=True): one kernel per flat buffer, equal to the unfused step, the same bits for
any thread count, the clip folded into the step, and the layout's life (relayout, state_dict, replaced arrays)."""

import math

import numpy as np
import pytest
from helpers import OPTIMIZER_CONFIGS as CONFIGS

import minigrad as mg
from minigrad import nn, optim
from minigrad.nn.module import zero_grads_

# ----- equal to the unfused step --------------------------------------------------------------------------------------


def _train(name, kwargs, dtype, fused, steps=15, clip=0.15, buffer=False):  # clip: most steps clip
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((16, 5)).astype(dtype), rng.standard_normal((16, 3)).astype(dtype)
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    model = model.double() if dtype == np.float64 else model
    if buffer:
        nn.utils.GradBuffer(model.parameters())
    opt = getattr(optim, name)(model.parameters(), fused=fused, **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        nn.MSELoss()(model(mg.tensor(x)), mg.tensor(y)).backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return model, opt


FUSED_CONFIGS = CONFIGS + [("SGD", dict(lr=0.05, weight_decay=1.0)),  # 1: not a special value
                           ("Adam", dict(lr=0.02, update_clip=0.3, weight_decay=1.0)),
                           ("Adagrad", dict(lr=0.1, maximize=True)),
                           ("Adam", dict(lr=0.02, update_clip=0.3, weight_decay=0.1)),
                           ("AdamW", dict(lr=0.02, update_clip=0.1, amsgrad=True)),
                           ("RMSprop", dict(lr=0.01, momentum=0.3, maximize=True)),
                           ("SGD", dict(lr=0.02, momentum=1.0))]  # 1: not a special value


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", FUSED_CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FUSED_CONFIGS)])
def test_fused_step_equals_the_unfused_step(name, kwargs, dtype):
    """15 steps with a norm clip between backward and step (folded into the fused kernel): parameters, state and
    the clipped gradients equal the unfused run to round-off (float32: 2e-5 relative, or 1e-5 of the array's
    largest element for elements near 0; float64: 1e-12)."""
    if dtype == np.float32 and name.startswith("Adam") and kwargs.get("weight_decay") == 1.0:
        pytest.skip("float32 Adam with weight decay 1 settles where g + wd·p nearly cancels and m/√v amplifies "
                    "round-off (1e-3 relative after 15 steps); float64 checks the same formula to 1e-12")
    ref_model, ref_opt = _train(name, kwargs, dtype, fused=None)
    model, opt = _train(name, kwargs, dtype, fused=True)
    for p, q in zip(ref_model.parameters(), model.parameters()):
        scale = float(np.abs(p.data).max())
        tol = dict(rtol=2e-5, atol=1e-5 * scale) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(q.data, p.data, **tol)
        np.testing.assert_allclose(q.grad.data, p.grad.data, **tol)  # the clipped gradient (the .grad read applies it)
        assert set(opt.state.get(q, {})) == set(ref_opt.state.get(p, {}))  # no state the unfused step lacks
        for key, value in ref_opt.state[p].items():
            if hasattr(value, "shape"):
                np.testing.assert_allclose(opt.state[q][key], value, **tol, err_msg=key)
            else:
                assert opt.state[q][key] == value


@pytest.mark.parametrize("maximize", [False, True])
def test_fused_step_on_parameters_at_different_steps_equals_the_unfused_one(maximize):
    """A group whose parameters have taken different numbers of steps (one had no gradient at first) falls back
    to the unfused formula inside the fused step: the same result as an unfused optimizer, maximize too; and a
    fused step that skips a parameter without gradient leaves it alone, as the unfused step does."""
    runs = {}
    for fused in (None, True):
        rng = np.random.default_rng(0)
        a, b = mg.tensor(rng.standard_normal(3), requires_grad=True), mg.tensor(rng.standard_normal(4),
                                                                                requires_grad=True)
        opt = optim.Adam([a, b], lr=0.1, fused=fused, maximize=maximize)
        a.grad = rng.standard_normal(3)
        opt.step()  # b has no gradient: it stays at step 0, untouched
        np.testing.assert_array_equal(b.detach().numpy(), np.random.default_rng(0).standard_normal(7)[3:])
        for _ in range(2):
            a.grad, b.grad = rng.standard_normal(3), rng.standard_normal(4)
            versions = a._version, b._version
            opt.step()
            assert a._version > versions[0] and b._version > versions[1]  # an in-place change, for autograd
        runs[fused] = (a.detach().numpy().copy(), b.detach().numpy().copy(), [opt.state[t]["step"] for t in (a, b)])
    for x, y in zip(runs[None][:2], runs[True][:2]):
        np.testing.assert_allclose(y, x, rtol=1e-12)
    assert runs[None][2] == runs[True][2] == [3, 2]


@pytest.mark.parametrize("name,kwargs", FUSED_CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FUSED_CONFIGS)])
def test_fused_step_reaches_a_last_chunk_of_one_element(name, kwargs):
    """2·CHUNK + 1 elements: the kernels' chunk count must round up (the unfused step is the reference)."""
    from minigrad.optim._fused import CHUNK

    rng = np.random.default_rng(8)
    runs = []
    for fused in (None, True):
        p = nn.Parameter(np.ones(2 * CHUNK + 1, np.float32))
        opt = getattr(optim, name)([p], fused=fused, **kwargs)
        for _ in range(3):
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
            opt.step()
        runs.append(p.data.copy())
        rng = np.random.default_rng(8)
    np.testing.assert_allclose(runs[1], runs[0], rtol=2e-5, atol=1e-6)
    assert runs[1][-1] != 1.0  # the last element moved


FUSED_THREAD_SCRIPT = """
import hashlib, json
import numpy as np
import minigrad as mg
from minigrad import nn, optim
rng = np.random.default_rng(0)
params = [nn.Parameter(rng.standard_normal(n).astype(np.float32)) for n in (300_001, 70_000, 17)]
nn.utils.GradBuffer(params)
out = {}
for name, kw in (("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)), ("Adam", dict(lr=0.01, amsgrad=True)),
                 ("AdamW", dict(lr=0.01, update_clip=0.05)), ("Adagrad", dict(lr=0.1)),
                 ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5))):
    opt = getattr(optim, name)(params, fused=True, **kw)
    for step in range(3):
        for p in params:
            p.grad.data[...] = np.random.default_rng(step).standard_normal(p.shape)
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    out[name] = hashlib.sha256(b"".join(p.data.tobytes() for p in params)).hexdigest()
print(json.dumps(out))
"""


def test_fused_steps_have_the_same_bits_for_one_two_and_four_threads():
    import json
    import os
    import subprocess
    import sys

    results = []
    for threads in (1, 2, 4):
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
        res = subprocess.run([sys.executable, "-c", FUSED_THREAD_SCRIPT], env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr
        results.append(json.loads(res.stdout))
    assert results[0] == results[1] == results[2]


# ----- the clip folded into the step ----------------------------------------------------------------------------------


def test_fused_step_lays_parameters_out_flat_and_folds_the_clip():
    model, opt = _train("Adam", dict(lr=0.01), np.float32, fused=True, steps=2)
    params = list(model.parameters())
    buf = params[0]._grad_buffer
    flat = opt._layouts[next(iter(opt._layouts))].flat
    assert all(np.shares_memory(p.data, flat) for p in params)  # one array per dtype
    assert all(np.shares_memory(opt.state[p]["exp_avg"], opt._layouts[next(iter(opt._layouts))]
                                .state_flats["exp_avg"]) for p in params)
    for p in params:
        p.grad.data[...] = 10.0  # a big gradient: the clip must act
    grads_before = buf.flats[np.dtype(np.float32)].copy()
    norm = nn.utils.clip_grad_norm_(params, 1.0)
    assert buf.pending != 1.0  # deferred to the step: no scaling pass yet
    assert np.array_equal(buf.flats[np.dtype(np.float32)], grads_before)
    seen = params[0].grad.numpy().copy()  # reading .grad applies it: whoever looks sees the clipped gradient
    assert buf.pending == 1.0
    np.testing.assert_allclose(seen, 10.0 / (norm.item() + 1e-6), rtol=1e-6)
    nn.utils.clip_grad_norm_(params, 0.5)
    raw = buf.flats[np.dtype(np.float32)].copy()
    opt.step()  # applies the coefficient as it reads the gradients, and writes none of them
    assert buf.pending != 1.0
    assert np.array_equal(buf.flats[np.dtype(np.float32)], raw)
    clipped = np.concatenate([p.grad.numpy().ravel() for p in params])  # the read applies it
    assert buf.pending == 1.0
    np.testing.assert_allclose(np.linalg.norm(clipped), 0.5, rtol=1e-5)


@pytest.mark.parametrize("second", ["norm", "value"])
def test_two_clips_before_a_fused_step_act_as_unfused(second):
    """With a GradBuffer the fused step applies a pending clip coefficient; a second clip (norm or value) must
    act on the already clipped gradients (it once measured and clamped the unscaled ones)."""
    results = []
    for fused in (None, True):
        mg.manual_seed(0)
        model = nn.Linear(4, 3)
        nn.utils.GradBuffer(model.parameters())
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=fused)
        for step in range(3):
            opt.zero_grad()
            model(mg.ones(2, 4) * (step + 1)).sum().backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if second == "norm":
                nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            else:
                nn.utils.clip_grad_value_(model.parameters(), 0.05)
            opt.step()
        results.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=2e-6)


@pytest.mark.parametrize("everyone", [True, False])
def test_zero_grad_after_a_fused_step_drops_or_applies_the_pending_coefficient(everyone, monkeypatch):
    """After clip + fused step the coefficient is still pending. A zero_grad of every member drops it without a
    scaling pass (nothing to scale: all become zero); a zero_grad of some members applies it first, so the
    others read clipped."""
    model, opt = _train("Adam", dict(lr=0.01), np.float32, fused=True, steps=1)
    params = list(model.parameters())
    buf = params[0]._grad_buffer
    for p in params:
        p.grad.data[...] = 10.0
    nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    coef = np.float32(buf.pending)
    assert coef < 1
    kept = [] if everyone else params[1:]
    passes = []
    monkeypatch.setattr(type(buf), "settle", lambda self, real=type(buf).settle: (passes.append(1), real(self)))
    if everyone:
        opt.zero_grad()
    else:
        zero_grads_(params[:1])
    assert len(passes) == (0 if everyone else 1)
    assert buf.pending == 1.0
    assert not params[0].grad.numpy().any()
    for p in kept:
        np.testing.assert_array_equal(p._grad._data, np.float32(10.0) * coef)  # applied in the array itself


# ----- the layout -----------------------------------------------------------------------------------------------------


def test_fused_step_keeps_its_layout_and_counts_as_an_in_place_change():
    """While the parameters stay the same, every fused step works on the flat arrays of the first one (no
    re-layout); each step is an in-place change of every parameter, so a graph saved before it cannot
    backward after it (torch: "modified by an inplace operation"), also after several steps."""
    model, opt = _train("Adam", dict(lr=0.01), np.float32, fused=True, steps=1)
    flat = opt._layouts[next(iter(opt._layouts))].flat
    x = mg.tensor(np.ones((2, 5), np.float32))
    for _ in range(2):
        out = model(x).sum()
        opt.zero_grad()
        out.backward()
        opt.step()
    assert opt._layouts[next(iter(opt._layouts))].flat is flat
    opt.step()
    out = model(x).sum()
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()
    out = model(x).sum()  # counters only move forward: an in-place op and a step never cancel out
    with mg.no_grad():
        for p in model.parameters():
            p.mul_(1.0)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def test_fused_step_survives_relayout_and_state_dict_round_trip(tmp_path):
    model, opt = _train("SGD", dict(lr=0.05, momentum=0.9), np.float64, fused=True, steps=3)
    saved = opt.state_dict()
    ref_model, ref_opt = _train("SGD", dict(lr=0.05, momentum=0.9), np.float64, fused=None, steps=3)
    opt.load_state_dict(saved)  # new state arrays: the next fused step copies them into its flat state
    model.double()  # rebinds every parameter's array: the layout is rebuilt
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((16, 5)), rng.standard_normal((16, 3))
    for m, o in ((model, opt), (ref_model, ref_opt)):
        for _ in range(3):
            o.zero_grad()
            nn.MSELoss()(m(mg.tensor(x)), mg.tensor(y)).backward()
            o.step()
    for p, q in zip(ref_model.parameters(), model.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12)


def test_a_parameter_array_replaced_after_a_fused_step_is_the_one_the_next_step_updates():
    """`p.data = new` rebinds a parameter away from the fused layout's flat array: the layout is rebuilt, and the
    next fused step updates the new array exactly as the unfused step does."""
    results = []
    for fused in (None, True):
        model, opt = _train("SGD", dict(lr=0.05, momentum=0.9), np.float64, fused=fused, steps=2)
        params = list(model.parameters())
        params[0].data = params[0].data * 0.5  # a new array, not a view of the flat layout
        opt.zero_grad()
        model(mg.ones(4, 5, dtype=np.float64)).sum().backward()
        opt.step()
        results.append([p.detach().numpy().copy() for p in params])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-12)


def test_fused_rejects_what_it_cannot_update():
    p = mg.tensor(np.ones(3, np.float16), requires_grad=True)
    p.grad = np.ones(3, np.float16)
    with pytest.raises(TypeError, match="fused=True"):
        optim.Adam([p], fused=True).step()
    with pytest.raises(ValueError, match="fused"):
        optim.SGD([p], fused="yes")


# ----- the device kernels (optim/_fused_cuda.py), under numba's simulator unless MINIGRAD_REAL_CUDA=1 ------------
# wd = 1 and momentum = 1 are there because the kernels compare each with 0 (a test of 0 against 1 would pass
# every other value); momentum = 0 with dampening because dampening must then do nothing
CUDA_RULES = [("sgd", dict(momentum=0.9, dampening=0.1, wd=0.01, nesterov=False, first=False)),
              ("sgd", dict(momentum=0.9, dampening=0.0, wd=0.0, nesterov=True, first=True)),
              ("sgd", dict(momentum=1.0, dampening=0.0, wd=1.0, nesterov=False, first=False)),
              ("sgd", dict(momentum=0.0, dampening=0.5, wd=0.0, nesterov=False, first=False)),
              ("adam", dict(amsgrad=False)), ("adam", dict(amsgrad=True)), ("adam", dict(amsgrad=False, wd=1.0)),
              ("adagrad", dict(wd=0.0)), ("adagrad", dict(wd=1.0)), ("rmsprop", dict(centered=True, momentum=0.5)),
              ("rmsprop", dict(centered=False, momentum=0.0)), ("rmsprop", dict(centered=True, momentum=1.0, wd=1.0))]


@pytest.mark.parametrize("rule,kw", CUDA_RULES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(CUDA_RULES)])
def test_cuda_fused_kernels_compute_the_cpu_kernels_formula(rule, kw):
    from backends import CUDA_UNAVAILABLE

    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    from minigrad.optim import _fused, _fused_cuda

    rng = np.random.default_rng(0)
    n = 37
    p, g = rng.standard_normal(n), rng.standard_normal(n)
    states = [np.abs(rng.standard_normal(n)) for _ in range(3)]
    states[0] += 16.0  # RMSprop's centered variance square_avg - grad_avg² stays positive
    scale = np.array([0.5])
    f = np.float64
    def args(p, g, s, gs):
        if rule == "sgd":
            return (p, g, s[0], gs, f(-1.0), f(0.1), f(kw["momentum"]), f(kw["dampening"]), f(kw["wd"]),
                    kw["nesterov"], kw["first"])
        if rule == "adam":
            return (p, g, s[0], s[1], s[2], gs, f(1.0), f(0.01), f(0.9), f(0.99), f(0.3), f(1e-8),
                    f(kw.get("wd", 0.1)), f(0.999), kw["amsgrad"])
        if rule == "adagrad":
            return (p, g, s[0], gs, f(1.0), f(0.05), f(1e-10), f(kw["wd"]))
        return (p, g, s[0], s[1], s[2], gs, f(1.0), f(0.01), f(0.9), f(1e-8), f(kw.get("wd", 0.1)),
                f(kw["momentum"]), kw["centered"])

    host = [p.copy(), g.copy(), [s.copy() for s in states]]
    getattr(_fused, rule)(*args(host[0], host[1], host[2], scale[0]))
    dev = [cuda.to_device(p), cuda.to_device(g), [cuda.to_device(s) for s in states]]
    getattr(_fused_cuda, rule)(*args(dev[0], dev[1], dev[2], cuda.to_device(scale)))
    np.testing.assert_allclose(dev[0].copy_to_host(), host[0], rtol=1e-12)
    for d, h in zip(dev[2], host[2]):
        np.testing.assert_allclose(d.copy_to_host(), h, rtol=1e-12)


def test_a_cuda_coefficient_copy_keeps_its_values_when_the_scratch_is_reused():
    from backends import CUDA_UNAVAILABLE

    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    from minigrad import clip
    from minigrad.clip import cuda_backend

    first = [cuda.to_device(np.full(10, 3.0))]
    _, coef = clip.norm_and_coefficient(first, 1.0)
    kept = coef.copy()
    clip.norm_and_coefficient([cuda.to_device(np.full(10, 30.0))], 1.0)  # overwrites the scratch buffers
    expect = 1.0 / (math.sqrt(90.0) + 1e-6)
    assert kept.for_dtype(np.float64).copy_to_host()[0] == pytest.approx(expect, rel=1e-15)
    assert kept.for_dtype(np.float16) is kept.for_dtype(np.float32)  # float16 is scaled by the float32 value
    assert isinstance(coef, cuda_backend.DeviceCoefficient)


def test_coefficients_deferred_twice_multiply():
    """GradBuffer.defer called directly, twice before a step: the step applies their product, as two clips in a
    row would scale the gradients twice. Without a fused consumer nothing is deferred."""
    params = [nn.Parameter(np.ones(4)), nn.Parameter(np.ones(3))]
    buf = nn.utils.GradBuffer(params)
    assert buf.defer(0.5) is False and buf.pending == 1.0
    opt = optim.SGD(params, lr=1.0, fused=True)
    for p in params:
        p.grad.data[...] = 1.0
    opt.step()  # lays the parameters out over the buffer: the optimizer becomes its consumer
    for p in params:
        p.grad.data[...] = 2.0
    assert buf.defer(0.5) and buf.defer(0.25)
    opt.step()
    for p in params:
        np.testing.assert_array_equal(p.data, 1.0 - 1.0 - 2.0 * 0.125)
        np.testing.assert_array_equal(p.grad.data, 2.0 * 0.125)
    assert buf.defer(2.0)  # any coefficient, not only a clip's (at most 1): reading a gradient applies it
    for p in params:
        np.testing.assert_array_equal(p.grad.data, 0.5)


def test_a_pending_coefficient_reaches_the_device_kernels_in_their_dtype():
    """GradBuffer.pending_scale called directly on a buffer whose flat arrays are on a CUDA device (laid there by
    hand: a Tensor on the device needs CuPy): a host coefficient becomes a one-element device array of the kernel's
    dtype, made once per dtype and value; a coefficient a clip left on the device is read in that dtype."""
    from backends import CUDA_UNAVAILABLE

    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    from minigrad import clip

    buf = nn.utils.GradBuffer([nn.Parameter(np.ones(4))])
    f64, f32 = np.dtype(np.float64), np.dtype(np.float32)
    buf.flats = {f64: cuda.to_device(np.zeros(4))}
    buf.pending = 0.3
    s64 = buf.pending_scale(f64)
    assert s64.copy_to_host().dtype == f64 and s64.copy_to_host()[0] == 0.3
    assert buf.pending_scale(f64) is s64
    s32 = buf.pending_scale(f32)
    assert s32.copy_to_host().dtype == f32 and s32.copy_to_host()[0] == np.float32(0.3)
    buf.pending = 0.5
    assert buf.pending_scale(f64).copy_to_host()[0] == 0.5 and s64.copy_to_host()[0] == 0.3
    _, coef = clip.norm_and_coefficient([cuda.to_device(np.full(10, 3.0))], 1.0)
    buf.pending = coef
    assert buf.pending_scale(f64) is coef.for_dtype(f64)
    assert buf.pending_scale(f32) is coef.for_dtype(f32)


def test_a_device_coefficient_deferred_after_a_host_one_applies_the_host_one_and_keeps_a_copy():
    """GradBuffer.defer called directly with a clip's coefficient on the device (flat arrays laid on the device by
    hand, as above): a host coefficient pending before is applied to the flat arrays at once, and the device one
    is kept in buffers of its own (a later clip reuses the scratch it was computed in)."""
    from backends import CUDA_UNAVAILABLE

    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    from minigrad import clip

    params = [nn.Parameter(np.ones(4))]
    buf = nn.utils.GradBuffer(params)
    opt = optim.SGD(params, lr=1.0, fused=True)
    params[0].grad.data[...] = 1.0
    opt.step()  # the optimizer becomes the buffer's consumer
    f64 = np.dtype(np.float64)
    buf.flats = {f64: cuda.to_device(np.full(4, 8.0))}
    assert buf.defer(0.5) and buf.pending == 0.5
    _, coef = clip.norm_and_coefficient([cuda.to_device(np.full(10, 3.0))], 1.0)
    assert buf.defer(coef)
    np.testing.assert_array_equal(buf.flats[f64].copy_to_host(), 4.0)
    assert buf.pending is not coef
    clip.norm_and_coefficient([cuda.to_device(np.full(10, 30.0))], 1.0)  # overwrites the scratch buffers
    expect = 1.0 / (math.sqrt(90.0) + 1e-6)
    assert buf.pending_scale(f64).copy_to_host()[0] == pytest.approx(expect, rel=1e-15)
