"""On a real CUDA GPU with CuPy (skipped elsewhere, saying why): what the simulator cannot run. The one-launch
path for many CuPy arrays, float16 and bfloat16 gradients, the fused optimizer steps on the device with the clip
folded in, the same bits on every run, and minigrad's tensors on the device (in-place ops, the tensor API)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import clip, nn, optim

cupy = pytest.importorskip("cupy", reason="the device tests need CuPy and a CUDA GPU")
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA device", allow_module_level=True)
except Exception:  # noqa: BLE001 - no driver, no device: nothing to test here
    pytest.skip("no CUDA device", allow_module_level=True)
if mg.cuda.device_count() < 1:
    pytest.skip("no CUDA device", allow_module_level=True)


def _grads(rng, n, dtypes, size=1000):
    return [rng.standard_normal(size + 17 * k).astype(dtypes[k % len(dtypes)]) * 3 for k in range(n)]


@pytest.mark.parametrize("dtypes", [(np.float32,), (np.float32, np.float16)], ids=["float32", "mixed-float16"])
def test_cuda_many_arrays_take_one_launch_and_match_the_host(dtypes):
    from minigrad.clip import cuda_multi

    host = _grads(np.random.default_rng(0), 40, dtypes)
    device = [cupy.asarray(a) for a in host]
    assert cuda_multi.applies(device)
    norm = float(clip.clip_norm_(device, 5.0).get())
    ref = [a.copy() for a in host]
    ref_norm = float(clip.clip_norm_(ref, 5.0, backend="numpy"))
    assert norm == pytest.approx(ref_norm, rel=1e-12)
    for a, b in zip(device, ref):
        np.testing.assert_allclose(a.get(), b, rtol=2 * np.finfo(b.dtype).eps)
    again = [cupy.asarray(a) for a in host]
    assert clip.clip_norm_(again, 5.0).get().tobytes() == np.asarray(norm).tobytes()  # the same bits each run
    for a, b in zip(device, again):
        assert a.get().tobytes() == b.get().tobytes()


def test_cuda_many_array_kernels_take_only_contiguous_float_cupy_arrays():
    from numba import cuda

    from minigrad.clip import cuda_multi

    n = 2 * cuda_multi.MIN_ARRAYS
    assert cuda_multi.applies([cupy.ones(100, np.float32) for _ in range(n)])
    assert not cuda_multi.applies([cuda.to_device(np.ones(100, np.float32)) for _ in range(n)])
    assert not cuda_multi.applies([cupy.ones(100, np.int64) for _ in range(n)])
    assert not cuda_multi.applies([cupy.ones((10, 10), np.float32).T for _ in range(n)])


def test_cuda_one_array_path_and_many_array_path_agree(monkeypatch):
    from minigrad.clip import cuda_multi

    host = _grads(np.random.default_rng(1), 12, (np.float32,))
    many = clip.total_norm([cupy.asarray(a) for a in host])
    monkeypatch.setattr(cuda_multi, "MIN_ARRAYS", 10 ** 6)
    single = clip.total_norm([cupy.asarray(a) for a in host])
    assert float(many.get()) == pytest.approx(float(single.get()), rel=1e-13)


def test_cuda_float16_gradients_clip_as_on_the_host():
    host = [np.random.default_rng(2).standard_normal(5000).astype(np.float16) * 20]
    device = [cupy.asarray(host[0])]
    clip.clip_norm_(device, 1.0)
    clip.clip_norm_(host, 1.0, backend="numpy")
    np.testing.assert_allclose(device[0].get().astype(np.float32), host[0].astype(np.float32), rtol=2e-3)
    clip.clip_value_(device, 0.01)
    assert float(abs(device[0]).max().get()) <= 0.01


def test_cuda_bfloat16_cupy_arrays_clip_with_the_host_bits():
    """CuPy's bfloat16 (ml_dtypes) through the kernels' uint16 view: the norm of the host's to rounding, the
    clipped values bit for bit (from the device's norm), the value clip too; many arrays (no one-launch path)."""
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
    rng = np.random.default_rng(5)
    host = [(rng.standard_normal(3000 + 7 * k) * 20).astype(ml_dtypes.bfloat16) for k in range(40)]
    try:
        device = [cupy.asarray(a) for a in host]
    except (TypeError, ValueError, NotImplementedError) as err:
        pytest.skip(f"this CuPy has no bfloat16 ({err})")
    norm = float(clip.clip_norm_(device, 1.0).get())
    assert norm == pytest.approx(float(clip.total_norm(host)), rel=1e-12)
    coef = np.float32(1.0 / (norm + 1e-6))
    for d, h in zip(device, host):
        want = (h.astype(np.float32) * coef).astype(ml_dtypes.bfloat16)
        assert d.get().view(np.uint16).tobytes() == want.view(np.uint16).tobytes()
    device = [cupy.asarray(a) for a in host]
    clip.clip_value_(device, 0.5)
    clip.clip_value_(host, 0.5)
    for d, h in zip(device, host):
        assert d.get().view(np.uint16).tobytes() == h.view(np.uint16).tobytes()


def test_cuda_norm_of_a_large_array_has_the_same_bits_every_time():
    x = cupy.random.standard_normal(10 ** 7, dtype=cupy.float32)
    first = clip.total_norm([x]).get()
    for _ in range(3):
        assert clip.total_norm([x]).get().tobytes() == first.tobytes()
    assert float(first) == pytest.approx(float(np.linalg.norm(x.get().astype(np.float64))), rel=1e-12)


def _model(seed):
    mg.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.01)), ("AdamW", dict(lr=0.01, amsgrad=True)),
                                         ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                         ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
                                         ("Adagrad", dict(lr=0.1))])
def test_cuda_fused_steps_with_the_clip_folded_in_equal_the_unfused_ones(name, kwargs):
    x = mg.tensor(np.random.default_rng(3).standard_normal((64, 16)).astype(np.float32))
    y = mg.tensor(np.random.default_rng(4).integers(0, 4, 64))
    results = []
    for fused in (None, True):
        model = _model(5).to("cuda")
        opt = getattr(optim, name)(model.parameters(), fused=fused, **kwargs)
        for _ in range(5):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x.to("cuda")), y.to("cuda"))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.05)
            nn.utils.clip_grad_norm_(model.parameters(), 0.02)  # a second deferred coefficient multiplies the first
            opt.step()
        results.append([p.detach().cpu().numpy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_cuda_tensors_take_in_place_ops_and_the_tensor_api():
    rng = np.random.default_rng(6)
    host = rng.standard_normal((4, 5))
    out = []
    for device in ("cpu", "cuda"):
        w = mg.tensor(host, requires_grad=True)
        x = w.to(device) * 2
        x[1] = x[2].sin()
        x[:, :2] += 1
        idx = mg.tensor(rng.integers(0, 5, (4, 3)) if device == "cpu" else out[0][2]).to(device)
        g = x.gather(1, idx)
        top = x.topk(2, dim=1).values
        e = mg.einsum("ij,kj->ik", x, x.masked_fill(x > 0.5, 0.0))
        loss = g.sum() + top.sum() + e.cumsum(0).sum() + mg.where(x > 0, x, x * x).sum()
        loss.backward()
        out.append((loss.item(), w.grad.numpy().copy(), idx.cpu().numpy()))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-12)
    np.testing.assert_allclose(out[1][1], out[0][1], rtol=1e-10)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_cuda_recurrent_layers_equal_the_host_ones(kind):
    """The fused layers' array code on CuPy (the CPU runs compiled loops for the LSTM): values and gradients."""
    mg.manual_seed(0)
    host = getattr(nn, kind)(3, 8, num_layers=2, bidirectional=True, hidden_grad_clip=0.5).double()
    device = getattr(nn, kind)(3, 8, num_layers=2, bidirectional=True, hidden_grad_clip=0.5).double()
    device.load_state_dict(host.state_dict())
    device.to("cuda")
    x = np.random.default_rng(0).standard_normal((12, 4, 3))
    results = []
    for model, xt in ((host, mg.tensor(x)), (device, mg.tensor(x).to("cuda"))):
        model.track_hidden_grads = True
        packed = nn.utils.rnn.pack_padded_sequence(xt, [12, 5, 9, 3], enforce_sorted=False)
        out, _ = model(packed)
        (out.data * out.data).sum().backward()
        results.append([out.data.detach().cpu().numpy()] + [p.grad.cpu().numpy() for p in model.parameters()]
                       + [model.hidden_grad_norms])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
