"""minigrad.clip beyond the invariants: determinism across threads, backend choice, argument checking."""
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from backends import BACKENDS, CUDA_UNAVAILABLE, host_value, reference_norm, to_backend, to_host

from minigrad import clip
from minigrad.clip import numba_backend

THREAD_SCRIPT = textwrap.dedent("""
    import hashlib, json
    import numpy as np
    from minigrad import clip
    from minigrad.clip import pnorm
    rng = np.random.default_rng(7)
    # 5M elements: ~610 chunks of 8192, so the per-chunk partials of every thread are combined
    arrays = [rng.standard_normal(n).astype(dt) * 1e3 for n, dt in
              [(3_000_001, np.float32), (1_700_000, np.float64), (5, np.float32), (300_000, np.float32)]]
    arrays[1][::7] *= 1e150  # float64 beyond 1e154: the scaled second pass as well
    assert sum(a.size for a in arrays) // pnorm.CHUNK >= 100
    out = {}
    for p in (1.0, 2.0, 3.5, 9.0, -1.5, float("inf")):
        out[str(p)] = float(clip.total_norm(arrays, p, backend="numba")).hex()
    clip.clip_norm_(arrays, 1.0, backend="numba")
    clip.clip_value_(arrays, 1e-4, backend="numba")
    out["clipped"] = [hashlib.sha256(a.tobytes()).hexdigest() for a in arrays]
    print(json.dumps(out))
""")


def _run_with_threads(n):
    env = {**os.environ, "NUMBA_NUM_THREADS": str(n)}
    res = subprocess.run([sys.executable, "-c", THREAD_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


class _Sub(np.ndarray):
    pass


class _FakeDeviceArray:
    """Says it is a CUDA array (the interface CuPy and torch.cuda use) but has an integer dtype."""
    dtype = np.dtype(np.int32)
    shape = (2,)
    __cuda_array_interface__ = {"shape": (2,), "typestr": "<i4", "data": (0, False), "version": 3}


def _exact_scaled_root(power_sum, p, scale):
    """scale · power_sum^(1/p) in 60-digit decimal arithmetic (a Decimal: no overflow)."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        return Decimal(scale) * Decimal(power_sum) ** (Decimal(1) / Decimal(p))


# ----- CUDA arrays: recognition, layout, streams and the kernels' paths -----------------------------------------------
def test_anything_with_the_cuda_array_interface_is_taken_for_a_device_array():
    with pytest.raises(TypeError, match="the CUDA backend supports float16, bfloat16, float32 and float64"):
        clip.total_norm([_FakeDeviceArray()])


def test_a_strided_array_with_the_cuda_array_interface_is_refused_by_its_layout():
    """The layout is read from the interface itself (no view is made): a transposed float32 array is refused."""
    fake = _FakeDeviceArray()
    fake.dtype, fake.shape = np.dtype(np.float32), (3, 2)
    fake.__cuda_array_interface__ = {"shape": (3, 2), "typestr": "<f4", "data": (0, False), "version": 3,
                                     "strides": (4, 12)}
    with pytest.raises(ValueError, match=r"arrays\[0\] is a CUDA array that is not C-contiguous"):
        clip.clip_norm_([fake], 1.0, backend="cuda")


@pytest.mark.parametrize("shape", [(), (0,), (5,), (1, 4), (4, 1), (3, 4), (2, 3, 4), (2, 0, 3)])
def test_c_contiguity_from_shape_and_strides_agrees_with_numpy(shape):
    """Every view by slicing, transposing and reversing of small arrays: the CUDA backend's test of C order from
    (shape, strides) equals NumPy's flag."""
    cuda_backend = pytest.importorskip("minigrad.clip.cuda_backend")
    base = np.zeros(shape, np.float32)
    views = [base, base.reshape(-1)]
    if shape:
        views += [base.T, base[::-1], base[..., ::2], base[..., ::-1], base[:1]]
    for v in views:
        assert cuda_backend._c_contiguous(v.shape, v.strides, v.itemsize) == v.flags.c_contiguous, (v.shape,
                                                                                                    v.strides)
        assert cuda_backend._c_contiguous(v.shape, None, v.itemsize)


@pytest.mark.parametrize("n", [63, 64, 65, 131])
def test_cuda_kernels_through_their_four_load_loop_and_its_tail(n):
    """Under the simulator a grid has 16 threads: from 64 elements on, each thread's first elements go through
    the loop that loads four at a time and the rest through the one-at-a-time tail. Norms of every kind, the
    scale and the clamp equal NumPy's on both sides of that boundary, and a NaN wins wherever it sits."""
    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    from minigrad.clip import cuda_backend

    cuda_backend._scratch = None  # so that this test also builds the scratch buffers (the float64 coefficient's)
    x = np.random.default_rng(n).standard_normal(n) * 10
    x[5] = 0.0
    for p in (2.0, 1.0, 3.0, -1.5, math.inf, -math.inf, 0.0):
        got = host_value(clip.total_norm([cuda.to_device(x)], p), "cuda")
        assert got == pytest.approx(reference_norm([x], p), rel=1e-12), p
    for where in (0, n - 1):
        y = x.copy()
        y[where] = np.nan
        assert math.isnan(host_value(clip.total_norm([cuda.to_device(y)], math.inf), "cuda"))
    x32 = x.astype(np.float32)  # p = 2 of float32: the branch-free sum-of-squares kernel
    got = host_value(clip.total_norm([cuda.to_device(x32)], 2.0), "cuda")
    assert got == pytest.approx(reference_norm([x32], 2.0), rel=1e-12)
    d = cuda.to_device(x)
    norm = host_value(clip.clip_norm_([d], 1.0), "cuda")
    np.testing.assert_array_equal(d.copy_to_host(), x * (1.0 / (norm + 1e-6)))
    d = cuda.to_device(x)
    clip.clip_value_([d], 5.0)
    np.testing.assert_array_equal(d.copy_to_host(), np.clip(x, -5.0, 5.0))


def test_an_exported_cuda_array_is_waited_for_only_on_a_stream_cuda_does_not_order(monkeypatch):
    """`_interface` waits for the array's stream unless it is absent or the legacy default stream (1), which CUDA
    orders before our kernels by itself: an array of a side stream (here 2 and a pointer-like handle) is waited
    for, once per view; the others are not."""
    cuda_backend = pytest.importorskip("minigrad.clip.cuda_backend")
    waited = []

    class _Stream:
        def __init__(self, handle):
            self.handle = handle

        def synchronize(self):
            waited.append(self.handle)

    monkeypatch.setattr(cuda_backend.cuda, "external_stream", _Stream, raising=False)
    for stream in (None, 1, 2, 0x7F0012345678):
        fake = _FakeDeviceArray()
        fake.__cuda_array_interface__ = dict(fake.__cuda_array_interface__, stream=stream)
        if stream is None:
            del fake.__cuda_array_interface__["stream"]
        assert cuda_backend._interface(fake) is fake.__cuda_array_interface__
    assert waited == [2, 0x7F0012345678]


def test_the_norm_of_only_empty_cuda_arrays_is_written_as_zero(monkeypatch):
    """No kernel runs for empty arrays: the output is set to 0 explicitly, not left as the allocator gave it
    (here made NaN first, as fresh device memory may hold anything)."""
    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    from minigrad.clip import cuda_backend

    fresh = cuda_backend._output

    def dirty(like):
        out, result = fresh(like)
        out.copy_to_device(np.full(1, np.nan))
        return out, result

    monkeypatch.setattr(cuda_backend, "_output", dirty)
    for p in (2.0, 1.0, math.inf, -math.inf, 0.0):
        empty = [cuda.to_device(np.empty(0, np.float32)), cuda.to_device(np.empty((2, 0)))]
        assert host_value(clip.total_norm(empty, p), "cuda") == 0.0, p


@pytest.mark.parametrize("ratio", [0.3, 0.6, 0.999])
def test_a_cuda_norm_clip_below_max_norm_leaves_the_arrays_bit_identical(ratio):
    """max_norm / norm > 1 (by 1.001 up to 3.3x): the coefficient is clamped to 1, as in torch, never applied as a
    gain; the arrays, float32 and float64, are unchanged to the bit."""
    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    xs = [np.random.default_rng(1).standard_normal(70).astype(dt) for dt in (np.float32, np.float64)]
    norm = float(np.sqrt(sum(np.sum(x.astype(np.float64) ** 2) for x in xs)))
    ds = [cuda.to_device(x) for x in xs]
    got = host_value(clip.clip_norm_(ds, norm / ratio), "cuda")
    assert got == pytest.approx(norm, rel=1e-6)
    for d, x in zip(ds, xs):
        np.testing.assert_array_equal(d.copy_to_host(), x)


@pytest.mark.parametrize("n", [63, 131])
def test_a_cuda_norm_clip_scales_float32_by_the_float32_coefficient(n):
    """float32 gradients are multiplied in float32 by the coefficient rounded to float32, as NumPy's
    `x *= coef` does: bit for bit, not through a float64 product."""
    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    from minigrad.clip import cuda_backend

    cuda_backend._scratch = None  # so that this test builds the coefficient buffers (a once-per-process singleton)
    x = (np.random.default_rng(n).standard_normal(n) * 10).astype(np.float32)
    d = cuda.to_device(x)
    norm = host_value(clip.clip_norm_([d], 0.7), "cuda")
    np.testing.assert_array_equal(d.copy_to_host(), x * np.float32(0.7 / (norm + 1e-6)))


def test_a_device_coefficient_outlives_the_norms_computed_before_it_is_applied():
    """norm_and_coefficient's DeviceCoefficient lives in the scratch buffers until the next clip: total norms
    computed in between, plain (float32, p = 2) or scaled (float64, p = 3: a max pass first), leave it as it was."""
    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    x = (np.random.default_rng(3).standard_normal(40) * 10).astype(np.float32)
    d = cuda.to_device(x)
    norm, coef = clip.norm_and_coefficient([d], 0.5)
    for small, p in ((np.full(7, 1e-3, np.float32), 2.0), (np.full(7, 1e-3), 3.0)):
        assert host_value(clip.total_norm([cuda.to_device(small)], p), "cuda") < 1.0  # its coefficient would be 1
    clip.scale_([d], coef)
    np.testing.assert_array_equal(d.copy_to_host(), x * np.float32(0.5 / (host_value(norm, "cuda") + 1e-6)))


def test_cuda_max_norm_after_a_scaled_norm_of_zeros(monkeypatch):
    """The max pass must not read the scale a previous scaled pass left behind (0 after all zeros)."""
    dev = to_backend([np.zeros(5)], "cuda")
    assert float(to_host([clip.total_norm(dev, 3.0, backend="cuda")], "cuda")[0]) == 0.0
    dev = to_backend([np.array([1.0, -2.0, 0.0])], "cuda")
    assert float(to_host([clip.total_norm(dev, math.inf, backend="cuda")], "cuda")[0]) == 2.0
    assert float(to_host([clip.total_norm(dev, 0.0, backend="cuda")], "cuda")[0]) == 2.0  # non-zeros counted


@pytest.mark.parametrize("p", [2.0, 7.0, 7.5, 8.0, 30.0])
def test_cuda_float32_norms_of_the_largest_values_stay_finite_for_every_order(p):
    """The CUDA backend chooses the scaled pass before it sums (looking at the sum would cost a host round trip):
    float32 |x|^p fits float64 unscaled for p up to 7 (3.4e38^7 ≈ 5e269), but for p = 8 one term is 1.798e308
    and two overflow. Two float32 maxima must give the finite norm max · 2^(1/p) for every order."""
    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    big = np.finfo(np.float32).max
    dev = to_backend([np.full(2, big, np.float32)], "cuda")
    got = float(to_host([clip.total_norm(dev, p, backend="cuda")], "cuda")[0])
    assert got == pytest.approx(float(big) * 2.0 ** (1.0 / p), rel=1e-12)


# ----- backends: the choice, the kernels taken, the same bits for any thread count ------------------------------------
def test_numba_results_have_the_same_bits_for_one_two_and_four_threads():
    """Over 600 chunks (>= 100 asked): a thread-dependent combine of the partials would differ here."""
    one = _run_with_threads(1)
    assert _run_with_threads(2) == one
    assert _run_with_threads(4) == one


def test_large_arrays_really_take_the_kernels_and_match_the_reference(rng):
    arrays = [rng.standard_normal(numba_backend.SMALL * 3 + 17).astype(np.float32),
              rng.standard_normal(numba_backend.SMALL + 1) * 1e150]
    for p in (1.0, 2.0, 2.5, 8.0, math.inf):
        np.testing.assert_allclose(clip.total_norm(arrays, p, backend="numba"),
                                   clip.total_norm(arrays, p, backend="numpy"), rtol=1e-12)
    ref = [a.copy() for a in arrays]
    clip.clip_value_(arrays, 0.5, backend="numba")
    clip.clip_value_(ref, 0.5, backend="numpy")
    for a, b in zip(arrays, ref):
        assert a.tobytes() == b.tobytes()
    clip.scale_(arrays, 0.3, backend="numba")
    clip.scale_(ref, 0.3, backend="numpy")
    for a, b in zip(arrays, ref):
        assert a.tobytes() == b.tobytes()


def test_non_contiguous_and_float16_arrays_take_the_reference_path(rng):
    base = rng.standard_normal((300, 600))
    view = base[:, ::2]  # not contiguous: scaling a flattened copy would lose the write
    half = rng.standard_normal(1000).astype(np.float16)
    expect = base.copy()[:, ::2] * 0.5
    clip.scale_([view, half], 0.5, backend="numba")
    np.testing.assert_array_equal(base[:, ::2], expect)
    np.testing.assert_allclose(clip.total_norm([half], backend="numba"), clip.total_norm([half], backend="numpy"),
                               rtol=1e-12)


def test_auto_backend_choice_and_environment_override(monkeypatch):
    small, large = [np.ones(10)], [np.ones(clip.NUMBA_MIN_ELEMENTS)]
    assert clip._choose(small, False, None).__name__.endswith("numpy_backend")
    assert clip._choose(large, False, None).__name__.endswith("numba_backend")
    monkeypatch.setenv("MINIGRAD_BACKEND", "numba")
    assert clip._choose(small, False, None).__name__.endswith("numba_backend")
    monkeypatch.setenv("MINIGRAD_BACKEND", "fortran")
    with pytest.raises(ValueError, match="backend must be one of"):
        clip.total_norm(small)


def test_wrong_backend_for_the_arrays_is_rejected():
    with pytest.raises(ValueError, match="cannot work on NumPy arrays"):
        clip.total_norm([np.ones(3)], backend="cuda")


def test_numba_max_sees_a_last_chunk_of_one_element(small_kernels):
    """2·CHUNK + 1 elements with the largest (or a NaN) in the last one: the chunk count rounds up."""
    x = np.zeros(33)
    x[-1] = -5.0
    assert float(clip.total_norm([x], math.inf, backend="numba")) == 5.0
    x[-1] = np.nan
    assert math.isnan(float(clip.total_norm([x], math.inf, backend="numba")))


def test_numba_warm_up_compiles_every_kernel_for_both_dtypes_and_times_itself():
    """In a fresh process: after warm_up() the norm, max, scale and clamp kernels hold float32 and float64
    versions (compiled, or loaded from the cache), and the seconds it returns lie within the call's wall time."""
    assert numba_backend.warm_up() >= 0.0  # here too, so that coverage (and the mutation runner) sees it
    code = textwrap.dedent("""
        import json, time
        from minigrad.clip import numba_backend as nb
        start = time.perf_counter()
        seconds = nb.warm_up()
        wall = time.perf_counter() - start
        kernels = {name: sorted(str(sig[0].dtype) for sig in getattr(nb, name).signatures)
                   for name in ("_power_sum", "_max_abs", "_scale", "_clamp")}
        print(json.dumps({"seconds": seconds, "wall": wall, "kernels": kernels}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.0 < res["seconds"] <= res["wall"]
    assert res["kernels"] == {name: ["float32", "float64"] for name in ("_power_sum", "_max_abs", "_scale",
                                                                        "_clamp")}


# ----- segments and AGC -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("offsets", [[[0, 2], [2, 4]], [0.0, 4.0], [], [1, 4], [0, 3], [0, 3, 2, 4], [0, 5],
                                     np.array([0, 4], dtype=object), "04"])
@pytest.mark.parametrize("call", ["segment_norms", "scale_segments_", "adaptive_clip_"])
def test_bad_offsets_are_rejected_and_change_nothing(offsets, call):
    g, w = np.array([3.0, -4.0, 1.0, 2.0]), np.ones(4)
    args = {"segment_norms": (g, offsets), "scale_segments_": (g, offsets, [2.0]),
            "adaptive_clip_": (g, w, offsets)}[call]
    with pytest.raises(ValueError, match="offsets"):
        getattr(clip, call)(*args)
    np.testing.assert_array_equal(g, [3.0, -4.0, 1.0, 2.0])


def test_offsets_with_no_segments_and_with_empty_segments():
    assert clip.segment_norms(np.empty(0), [0]).shape == (0,)
    np.testing.assert_array_equal(clip.segment_norms(np.array([3.0, 4.0]), [0, 0, 2, 2]), [0.0, 5.0, 0.0])
    np.testing.assert_array_equal(clip.segment_norms(np.array([3.0, 4.0]), np.array([0, 2], np.uint8)), [5.0])


@pytest.mark.parametrize("p", [0, 0.0, -1.0, -math.inf, "-inf"])
def test_segment_norms_need_a_positive_order(p):
    g = np.array([3.0, 4.0])
    for call in (lambda: clip.segment_norms(g, [0, 2], p), lambda: clip.adaptive_clip_(g, np.ones(2), [0, 2],
                                                                                          norm_type=p)):
        with pytest.raises(ValueError, match="norm_type must be > 0"):
            call()
    np.testing.assert_array_equal(g, [3.0, 4.0])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_segment_functions_on_a_strided_array_act_on_its_elements_in_c_order(backend, monkeypatch):
    """A non-contiguous host array is read (and written back) in C order, as its contiguous copy would be; the
    elements between its strides are never touched."""
    monkeypatch.setattr(numba_backend, "SMALL", 4)
    rng = np.random.default_rng(5)
    base = rng.standard_normal((6, 8))
    offsets = np.array([0, 4, 4, 12, 24])
    view, twin = base.copy()[:, ::2], np.ascontiguousarray(base[:, ::2])
    np.testing.assert_array_equal(clip.segment_norms(view, offsets, backend=backend),
                                  clip.segment_norms(twin, offsets, backend=backend))
    for call, args in (("scale_segments_", (offsets, [0.5, 1.0, 2.0, 0.0])),
                       ("adaptive_clip_", (0.1 * np.ones(24).reshape(6, 4), offsets, 0.05))):
        whole = base.copy()
        view, twin = whole[:, ::2], np.ascontiguousarray(base[:, ::2])
        if call == "adaptive_clip_":
            getattr(clip, call)(view, args[0], *args[1:], backend=backend)
            getattr(clip, call)(twin, args[0], *args[1:], backend=backend)
        else:
            getattr(clip, call)(view, *args, backend=backend)
            getattr(clip, call)(twin, *args, backend=backend)
        assert not np.array_equal(twin, base[:, ::2]), call  # the case changes something
        np.testing.assert_array_equal(view, twin, err_msg=call)
        np.testing.assert_array_equal(whole[:, 1::2], base[:, 1::2], err_msg=call)


def test_adaptive_clip_defaults_are_agcs_clip_factor_and_eps():
    """clip_factor 0.01 and eps 1e-3 by default: a zero weight row has the limit 1e-5, a unit row 0.01·‖W‖."""
    w = np.array([[0.0, 0.0], [3.0, 4.0]])
    g = np.array([[1.0, 0.0], [0.0, 1.0]])
    clip.adaptive_clip_(g, w, [0, 2, 4])
    np.testing.assert_allclose(g, [[1e-5, 0.0], [0.0, 0.05]], rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_scale_segments_applies_every_factor_including_two_and_one(backend, small_kernels):
    """Factors 2, 1, 0.5 and -3 on segments that span several chunks: each segment times its factor, as NumPy
    computes it (a factor of 1 leaves its segment bit-identical)."""
    x = np.random.default_rng(2).standard_normal(80)
    offsets = np.array([0, 20, 40, 41, 80])
    factors = np.array([2.0, 1.0, 0.5, -3.0])
    got = x.copy()
    clip.scale_segments_(got, offsets, factors, backend=backend)
    np.testing.assert_array_equal(got, x * np.repeat(factors, np.diff(offsets)))


@pytest.mark.parametrize("backend", ["numpy", "numba", "cuda"])
def test_agc_at_a_gradient_norm_exactly_at_its_limit_below_the_norm_floor(backend):
    """‖G‖ = limit = 2^-30 exactly (a one-element unit, eps 2^-10, clip_factor 2^-20): the unit is clipped (>=),
    and limit / max(‖G‖, 1e-6) shrinks it to 2^-30 · 2^-30 / 1e-6, in every backend as in NumPy's formula; a
    unit just under its limit is left alone."""
    if backend == "cuda" and CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    tiny = 2.0 ** -30
    g = np.array([tiny, np.nextafter(tiny, 0.0)])
    w = np.zeros(2)
    dg, dw = to_backend([g, w], backend)
    clip.adaptive_clip_(dg, dw, [0, 1, 2], clip_factor=2.0 ** -20, eps=2.0 ** -10, backend=backend)
    np.testing.assert_array_equal(to_host([dg], backend)[0], [tiny * (tiny / 1e-6), g[1]])


# ----- norm_and_coefficient: the clip without its scaling -------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_norm_and_coefficient_has_no_coefficient_when_nothing_would_change(backend):
    """None (documented): a norm below max_norm, max_norm = inf, or no arrays; a float otherwise."""
    ones = [np.ones(4)]
    for arrays, max_norm in ((ones, 10.0), (ones, 2.0 + 1e-6), (ones, math.inf), ([], 1.0)):
        norm, coef = clip.norm_and_coefficient(arrays, max_norm, backend=backend)
        assert coef is None and float(norm) == (2.0 if arrays else 0.0)
    norm, coef = clip.norm_and_coefficient(ones, 1.0, backend=backend)
    assert coef == 1.0 / (2.0 + 1e-6)


def test_cuda_norm_and_coefficient_holds_the_formulas_coefficient_in_each_dtype():
    """On the device the coefficient is always a DeviceCoefficient: min(max_norm / (norm + 1e-6), 1) in float32
    and float64, also 1 when the arrays hold no element at all (nothing is launched then)."""
    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    cases = (([np.zeros(0, np.float32), np.zeros((2, 0))], 1.0, 1.0), ([np.ones(4, np.float32)], 10.0, 1.0),
             ([np.ones(4, np.float32)], 1.0, 1.0 / (2.0 + 1e-6)))
    for arrays, max_norm, want in cases:
        _, coef = clip.norm_and_coefficient([cuda.to_device(a) for a in arrays], max_norm)
        for dtype in (np.float32, np.float64):
            got = coef.for_dtype(np.dtype(dtype)).copy_to_host()
            assert got.dtype == dtype and got[0] == dtype(want)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_norm_and_coefficient_passes_a_non_finite_norm_unless_asked_to_raise(backend):
    """As clip_norm_: error_if_nonfinite is False by default (torch's default), so NaN and inf norms come back."""
    for bad in (np.nan, np.inf):
        arrays = [np.array([1.0, bad])]
        norm, coef = clip.norm_and_coefficient(arrays, 1.0, backend=backend)
        assert float(norm) != float(norm) if bad != bad else float(norm) == math.inf
        with pytest.raises(RuntimeError, match="non-finite"):
            clip.norm_and_coefficient(arrays, 1.0, backend=backend, error_if_nonfinite=True)


# ----- numerics: NaN, huge and tiny values, orders, float16, signed zeros ---------------------------------------------
@pytest.mark.parametrize("backend", ["numba", "cuda"])
def test_nan_wins_in_every_max(backend):
    """The max passes (inf norm, and the scale of the two-pass norm) must not drop a NaN anywhere in a chunk."""
    if backend == "cuda" and CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    n = numba_backend.SMALL * 3 + 5 if backend == "numba" else 200
    for position in (0, 1, n // 2, n - 1):
        for dtype in (np.float32, np.float64):
            x = np.linspace(1.0, 3.0, n).astype(dtype)
            x[position] = np.nan
            for p in ("inf", 2.0, 20.0):  # inf: the max itself; 20: the scaled pass reads the max
                got = host_value(clip.total_norm(to_backend([x], backend), p, backend=backend), backend)
                assert math.isnan(got), (position, dtype, p)


def test_mixed_dtypes_norm_and_clip(rng):
    a, b = rng.standard_normal(50).astype(np.float32), rng.standard_normal(30)
    expect = math.sqrt(np.sum(a.astype(np.float64) ** 2) + np.sum(b ** 2))
    norm = float(clip.clip_norm_([a, b], 0.5))
    np.testing.assert_allclose(norm, expect, rtol=1e-12)
    assert a.dtype == np.float32 and b.dtype == np.float64
    np.testing.assert_allclose(math.sqrt(np.sum(a.astype(np.float64) ** 2) + np.sum(b ** 2)), 0.5, rtol=1e-6)


@pytest.mark.parametrize("spelled,expect", [("inf", 4.0), ("+inf", 4.0), ("Infinity", 4.0), (" INF ", 4.0),
                                            ("-inf", 0.5), ("-infinity", 0.5)])
def test_infinite_orders_may_be_spelled(spelled, expect):
    a = np.array([0.5, -4.0, 1.0])
    assert float(clip.total_norm([a], spelled)) == expect


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_large_order_is_computed_scaled_by_the_largest_element_even_when_it_is_two(backend):
    """|2|^1100 overflows float64: the sum is taken of (|x| / 2)^p, and 2 * 2^(1/1100) comes back exactly (up
    to the root's rounding). The largest element being exactly 2 (or 1) must not skip the division."""
    got = float(clip.total_norm([np.array([-2.0, 2.0])], 1100.0, backend=backend))
    np.testing.assert_allclose(got, 2.0 * 2.0 ** (1 / 1100), rtol=1e-14)
    assert float(clip.total_norm([np.array([1.0, 0.5])], 1100.0, backend=backend)) == 1.0


@pytest.mark.parametrize("p", [1 / 128, 0.3, 3.0, 20.0, -0.5, -7.0])
@pytest.mark.parametrize("power_sum", [1.0, 3.0, 1000.0])
def test_the_root_of_a_scaled_sum_is_finite_exactly_where_the_norm_is(power_sum, p):
    """scale · power_sum^(1/p) against the same formula in 60-digit decimal arithmetic, for norms from 1e-300 to
    1e310 (through the float64 overflow): a finite result to 1e-12 relative, inf exactly where the true value
    exceeds the float64 maximum (to that tolerance), never an OverflowError. For p = 1/128 and 1000 terms,
    power_sum^(1/p) ≈ 1e384 alone overflows, while the norm, scaled back by a small scale, need not."""
    from decimal import Decimal

    from minigrad.clip.pnorm import finish

    biggest = Decimal(np.finfo(np.float64).max)
    for log10_norm in (-300.0, 0.0, 300.0, 307.9, 308.2, 308.25, 310.0):
        log10_scale = log10_norm - math.log10(power_sum) / p
        if not -307.0 < log10_scale < 308.0:
            continue
        scale = 10.0 ** log10_scale
        exact = _exact_scaled_root(power_sum, p, scale)
        got = finish(power_sum, p, scale)
        if exact > biggest * Decimal(1 + 1e-12):
            assert got == math.inf, (log10_norm, got)
        elif exact < biggest * Decimal(1 - 1e-12):
            assert math.isfinite(got) and abs(Decimal(got) / exact - 1) < Decimal(1e-12), (log10_norm, got, exact)


def test_a_root_just_past_the_float64_range_times_a_small_scale():
    """power_sum^(1/p) = e^710.3 overflows float64 (its log is half a unit past the largest), the norm 1e-10 times
    that does not: computed through the logs, never by the overflowing power."""
    from decimal import Decimal

    from minigrad.clip.pnorm import _LOG_MAX, finish

    power_sum = 1000.0
    p = math.log(power_sum) / (_LOG_MAX + 0.5)
    exact = _exact_scaled_root(power_sum, p, 1e-10)
    assert abs(Decimal(finish(power_sum, p, 1e-10)) / exact - 1) < Decimal(1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cuda"])
def test_value_clip_to_zero_keeps_the_sign_of_every_zero(backend, small_kernels):
    """clip_value=0 clamps to [-0.0, 0.0]: -0.0 and +0.0 stay as they are, as np.clip and torch.clamp leave them."""
    if backend == "cuda" and CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    for n in (5, 50):
        x = np.resize(np.array([-0.0, 0.0, 1.5, -2.0, np.nan]), n)
        dev = to_backend([x], backend)
        clip.clip_value_(dev, 0.0, backend=backend)
        got = to_host(dev, backend)[0]
        want = np.clip(x, -0.0, 0.0)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cuda"])
def test_a_norm_clip_to_max_norm_zero_scales_by_zero(backend):
    """max_norm = 0 is a clip like any other (torch's): the coefficient 0 / (norm + 1e-6) = 0 leaves signed zeros,
    also right after a clip whose coefficient was 1 (the device must write the new one, not keep the last)."""
    if backend == "cuda" and CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    x = np.array([1.5, -2.0, 0.25, -0.0], np.float32)
    dev = to_backend([x], backend)
    clip.clip_norm_(dev, 100.0, backend=backend)
    norm = clip.clip_norm_(dev, 0.0, backend=backend)
    assert float(to_host([norm], backend)[0]) == float(np.linalg.norm(x.astype(np.float64)))
    got = to_host(dev, backend)[0]
    np.testing.assert_array_equal(got, x * np.float32(0.0))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(x))


@pytest.mark.parametrize("p", [0.5, 3.0, 7.0])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_scaled_pass_over_huge_values_of_both_signs(backend, p, small_kernels):
    """float64 values of ±1e200: |x|^p overflows for p = 3 and 7, so the norm comes from the pass scaled by the
    largest |x| (a negative value must enter it as |x|); equal to the reference in one array and across many
    chunks."""
    rng = np.random.default_rng(int(p))
    for n in (3, 70):
        x = rng.standard_normal(n) * 1e200
        assert float(clip.total_norm([x], p, backend=backend)) == pytest.approx(reference_norm([x], p), rel=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_float16_is_scaled_in_float32_then_rounded(backend):
    """float16 gradients: x · float32(c) in float32, then rounded to float16 (README: torch's float16
    coefficient would keep only a few bits below 6e-5). Taken in float64 instead, the double rounding differs for
    a few elements in 10^4; 10^5 elements and 20 coefficients meet such elements."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100_000).astype(np.float16)
    offsets = np.array([0, 30_000, 100_000])
    for coef in rng.uniform(1e-6, 1.0, 20):
        want = (x.astype(np.float32) * np.float32(coef)).astype(np.float16)
        got = x.copy()
        clip.scale_([got], coef, backend=backend)
        np.testing.assert_array_equal(got, want)
        got = x.copy()
        clip.scale_segments_(got, offsets, [coef, coef], backend=backend)
        np.testing.assert_array_equal(got, want)


def test_cuda_float16_is_scaled_in_float32_then_rounded_as_on_the_host():
    """The CUDA kernels multiply float16 by a float32 coefficient or factor too, in scale_, scale_segments_ (host
    factors and AGC's device factors) alike: 1e-5 is a float16 subnormal (1.0014e-5), so a float16 factor would
    give other values."""
    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    x = np.random.default_rng(3).standard_normal(70).astype(np.float16) * 100
    offsets = np.array([0, 30, 70])
    for coef in (1e-5, 0.3):
        want = (x.astype(np.float32) * np.float32(coef)).astype(np.float16)
        assert not np.array_equal(want, (x.astype(np.float32) * np.float32(np.float16(coef))).astype(np.float16))
        d = cuda.to_device(x)
        clip.scale_([d], coef)
        np.testing.assert_array_equal(d.copy_to_host(), want)
        d = cuda.to_device(x)
        clip.scale_segments_(d, offsets, [coef, coef])
        np.testing.assert_array_equal(d.copy_to_host(), want)
    w = np.full(70, 1e-3, np.float16)  # AGC: every unit's limit is 1e-3 · 1e-2 = 1e-5 (device factors)
    d, h = cuda.to_device(x), x.copy()
    clip.adaptive_clip_(d, cuda.to_device(w), offsets, 0.01, eps=0.0)
    clip.adaptive_clip_(h, w, offsets, 0.01, eps=0.0)
    np.testing.assert_array_equal(d.copy_to_host(), h)


def test_a_cuda_array_whose_dtype_is_not_numpys_is_read_by_its_interface():
    """torch's CUDA tensors carry torch dtypes, which NumPy cannot read: the dtype comes from the interface's
    typestr, so a float32 one is taken and an int32 one refused by name."""
    from minigrad.clip import cuda_backend

    fake = _FakeDeviceArray()
    fake.dtype = "torch.float32"
    fake.__cuda_array_interface__ = dict(_FakeDeviceArray.__cuda_array_interface__, typestr="<f4")
    assert cuda_backend.device_dtype(fake) == np.float32
    assert clip.check_arrays([fake]) == ([fake], True)
    fake.__cuda_array_interface__ = dict(_FakeDeviceArray.__cuda_array_interface__)
    with pytest.raises(TypeError, match=r"arrays\[0\] has dtype torch.float32; the CUDA backend supports"):
        clip.check_arrays([fake])


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0, 3.0, -1.0, math.inf, -math.inf, 0.0])
def test_norms_of_shards_combine_into_the_norm_of_their_union(p):
    """minigrad.distributed's combination of the ranks' (norm, count), without MPI: the shards' norms (NumPy
    reference) combine into the reference norm of all elements, for magnitudes from 1e-300 to 1e300 (p = 0.5 over
    those overflows unless scaled by the largest), with an empty shard that must not take part and a NaN that
    must win."""
    from minigrad.distributed import _combine_norms

    rng = np.random.default_rng(3)
    shards = [rng.standard_normal(4) * 1e-300, np.zeros(0), rng.standard_normal(3) * 1e300, rng.standard_normal(5)]
    local = [(reference_norm([s], p), s.size) for s in shards]
    assert _combine_norms(local, p) == pytest.approx(reference_norm(shards, p), rel=1e-12)
    assert _combine_norms(local[2:3], p) == pytest.approx(reference_norm(shards[2:3], p), rel=1e-12)
    assert _combine_norms([(0.0, 0)], p) == 0.0
    assert math.isnan(_combine_norms(local + [(math.nan, 2)], p))


# ----- arguments: every bad one refused before anything changes -------------------------------------------------------
def test_mixed_host_and_device_arrays_are_rejected_and_untouched():
    cuda = pytest.importorskip("numba.cuda")

    host = np.array([3.0, 4.0])
    dev = cuda.to_device(np.array([5.0]))
    with pytest.raises(ValueError, match="mix host"):
        clip.clip_norm_([host, dev], 1.0)
    with pytest.raises(ValueError, match="mix host"):
        clip.clip_value_([dev, host], 1.0)
    np.testing.assert_array_equal(host, [3.0, 4.0])
    np.testing.assert_array_equal(dev.copy_to_host(), [5.0])


def test_non_float_and_non_array_inputs_are_type_errors():
    with pytest.raises(TypeError, match="floating point"):
        clip.total_norm([np.ones(3, np.int64)])
    with pytest.raises(TypeError, match="not a NumPy or CUDA array"):
        clip.total_norm([[1.0, 2.0]])


def test_none_entries_are_skipped_and_a_single_array_is_accepted():
    a = np.array([3.0, 4.0])
    assert float(clip.total_norm([None, a, None])) == 5.0
    assert float(clip.clip_norm_(a, 1.0)) == 5.0
    np.testing.assert_allclose(np.linalg.norm(a), 1.0, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("values", [[1e30, -2.0, np.inf], [3.0, -4.0]], ids=["huge", "norm-5"])
def test_infinite_thresholds_change_nothing(backend, values):
    a = np.array(values)
    (d,) = to_backend([a], backend)
    clip.clip_norm_([d], math.inf)
    clip.clip_value_([d], math.inf)
    assert to_host([d], backend)[0].tobytes() == a.tobytes()


def test_primitive_argument_checks():
    a = np.ones(3)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        clip.clamp_([a], 1.0, -1.0)
    with pytest.raises(ValueError, match="coef"):
        clip.scale_([a], "2")
    with pytest.raises(ValueError, match="lo"):
        clip.clamp_([a], math.nan, 1.0)
    np.testing.assert_array_equal(a, np.ones(3))
    clip.clamp_([a], -0.5, 0.25)
    np.testing.assert_array_equal(a, np.full(3, 0.25))


def test_read_only_arrays_can_be_measured_but_not_clipped():
    a = np.array([3.0, -4.0, 12.0])
    a.flags.writeable = False
    assert float(clip.total_norm([a])) == 13.0
    np.testing.assert_array_equal(clip.segment_norms(a, [0, 2, 3]), [5.0, 12.0])
    with pytest.raises(ValueError, match="read-only"):
        clip.clip_norm_([a], 1.0)


@pytest.mark.parametrize("call", ["total_norm", "clip_norm_", "clip_value_"])
def test_ndarray_subclasses_are_host_arrays(call):
    """A subclass (minigrad's TensorData is one) leaves the three-check fast path and takes the per-array checks:
    still host arrays, with a NumPy result."""
    a = np.array([3.0, -4.0]).view(_Sub)
    plain = np.array([3.0, -4.0])
    out = getattr(clip, call)([a], *([] if call == "total_norm" else [1.0]))
    ref = getattr(clip, call)([plain], *([] if call == "total_norm" else [1.0]))
    np.testing.assert_array_equal(np.asarray(a), plain)
    if out is not None:
        assert type(out) is np.ndarray and out.shape == () and float(out) == float(ref) == 5.0


@pytest.mark.parametrize("nan", [np.float64("nan"), np.float32("nan"), np.array(np.nan), np.array(np.nan, np.float32)])
def test_nan_as_a_numpy_number_or_0d_array_is_rejected(nan):
    a = np.array([3.0, 4.0])
    for call in (lambda: clip.clip_norm_([a], nan), lambda: clip.clip_value_([a], nan),
                 lambda: clip.clamp_([a], nan, 1.0)):
        with pytest.raises(ValueError, match="NaN"):
            call()
    np.testing.assert_array_equal(a, [3.0, 4.0])


@pytest.mark.parametrize("zero", [0, 0.0, np.float64(0.0), np.float32(0.0), np.int64(0), np.array(0.0)])
def test_the_minimum_itself_is_accepted_and_just_below_it_is_not(zero):
    a = np.array([3.0, 4.0])
    clip.clip_norm_([a], zero)
    np.testing.assert_array_equal(a, [0.0, 0.0])
    z = np.asarray(zero)
    below = np.nextafter(z if z.dtype.kind == "f" else z.astype(np.float64), -np.inf)  # the next number down
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        clip.clip_norm_([a], below)


def test_a_clamp_to_a_single_value_is_allowed():
    a = np.array([-3.0, 0.1, np.nan])
    clip.clamp_([a], 0.5, 0.5)
    np.testing.assert_array_equal(a, [0.5, 0.5, np.nan])


def test_scale_and_adaptive_clip_refuse_read_only_arrays_and_bad_factors_before_writing():
    g, w = np.array([3.0, -4.0, 1.0, 2.0]), np.ones(4)
    frozen = g.copy()
    frozen.flags.writeable = False
    for call in (lambda: clip.scale_([g.copy(), frozen], 0.5), lambda: clip.scale_segments_(frozen, [0, 4], [0.5]),
                 lambda: clip.adaptive_clip_(frozen, w, [0, 2, 4])):
        with pytest.raises(ValueError, match="read-only; nothing was modified"):
            call()
    for bad in (0.0, -0.01):
        with pytest.raises(ValueError, match="clip_factor"):
            clip.adaptive_clip_(g, w, [0, 2, 4], clip_factor=bad)
    for factors in ([2.0], [2.0, 2.0, 2.0], [[2.0, 2.0]]):
        with pytest.raises(ValueError, match="one number per segment"):
            clip.scale_segments_(g, [0, 2, 4], factors)
    np.testing.assert_array_equal(g, frozen)


def test_scale_accepts_nan_and_inf_coefficients_as_numbers():
    """scale_ is the multiply of a clip whose norm may be NaN or inf (torch's clip then multiplies by NaN or 0)."""
    a = np.array([1.0, -2.0, 0.0])
    clip.scale_([a], math.nan)
    assert np.isnan(a).all()
    b = np.array([1.0, -2.0])
    clip.scale_([b], math.inf)
    np.testing.assert_array_equal(b, [math.inf, -math.inf])


def test_a_non_tensor_among_a_grad_buffers_parameters_is_named():
    from minigrad import nn

    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))
    nn.utils.GradBuffer([a, b])
    with pytest.raises(TypeError, match=r"parameters\[1\]"):
        nn.utils.clip_grad_norm_([a, "b"], 1.0)
