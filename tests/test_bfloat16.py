"""bfloat16 gradients (ml_dtypes' dtype, which CuPy uses too): the bit conversions the CUDA kernels use, against
ml_dtypes over every bfloat16 and the float32 values around each rounding boundary; the clip on the host against
float64 references and torch's own bfloat16 arithmetic; the CUDA kernels (under the simulator) against the host,
bit for bit."""
import math

import numpy as np
import pytest
from backends import CUDA_UNAVAILABLE, host_value
from hypothesis import given
from hypothesis import strategies as st

from minigrad import clip
from minigrad.clip import bfloat16, numpy_backend

ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 arrays need ml_dtypes (pip install ml_dtypes)")
BF16 = np.dtype(ml_dtypes.bfloat16)
ALL_BITS = np.arange(1 << 16, dtype=np.uint16)
ORDERS = (2.0, 1.0, 3.0, 0.5, 20.0, math.inf, -math.inf, 0.0, -1.5)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint16)


def _gradients(seed: int, sizes=(37, 5, 131, 0)) -> list:
    """bfloat16 arrays with a -0, a subnormal, values near bfloat16's largest and smallest normals."""
    rng = np.random.default_rng(seed)
    out = [(rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(BF16) for n in sizes]
    out[0][:4] = np.array([-0.0, 1e-40, 3e38, -1.2e-38]).astype(BF16)
    return out


def _assert_same_bits_but_nans(got: np.ndarray, want_bits: np.ndarray) -> None:
    """bfloat16 `got` has the bits `want_bits` (uint16 or int16), except that a NaN need only be a NaN: a NaN's
    sign and payload are not promised (torch's and the GPU's differ)."""
    want = np.asarray(want_bits).view(np.uint16)
    nan = np.isnan(want.view(BF16).astype(np.float32))
    np.testing.assert_array_equal(np.isnan(got.astype(np.float32)), nan)
    np.testing.assert_array_equal(_bits(got)[~nan], want[~nan])


def _float32_rounded(x: np.ndarray, coef: float) -> np.ndarray:
    """x · coef taken in float32 and rounded once to bfloat16 (ml_dtypes rounds to nearest, ties to even)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return (x.astype(np.float32) * np.float32(coef)).astype(BF16)


# ----- the conversions ----------------------------------------------------------------------------------------
def test_the_value_of_every_bfloat16_is_ml_dtypes_value():
    with np.errstate(invalid="ignore"):  # ml_dtypes flags its NaNs' cast
        expected = ALL_BITS.view(BF16).astype(np.float64)
    got = np.array([bfloat16.value(int(b)) for b in ALL_BITS])
    np.testing.assert_array_equal(got, expected)  # NaN where NaN
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))  # ±0 and the NaNs' signs too


def _float32_from_bits(words) -> np.ndarray:
    return np.asarray(words, dtype=np.uint64).astype(np.uint32).view(np.float32)


def test_rounding_to_bfloat16_equals_ml_dtypes_at_every_boundary():
    """For every bfloat16 b: b itself, the float32 halfway to the next one (a tie: to even), and the float32s just
    below and above that halfway point — the whole range, subnormals, the overflow to inf and NaNs included."""
    high = ALL_BITS.astype(np.uint64) << 16
    x = _float32_from_bits(np.concatenate([high, high | 0x8000, high | 0x7FFF, high | 0x8001]))
    with np.errstate(invalid="ignore"):
        expected = x.astype(BF16).view(np.uint16)
    got = np.array([bfloat16.bits(float(v)) for v in x], dtype=np.uint16)
    np.testing.assert_array_equal(got, expected)


@given(st.integers(0, (1 << 32) - 1))
def test_rounding_any_float32_to_bfloat16_equals_ml_dtypes(word):
    x = _float32_from_bits([word])
    with np.errstate(invalid="ignore"):
        expected = int(x.astype(BF16).view(np.uint16)[0])
    assert bfloat16.bits(float(x[0])) == expected


def test_only_the_bfloat16_dtype_is_taken_for_bfloat16():
    assert bfloat16.is_bfloat16(BF16) and bfloat16.is_floating(BF16)
    for other in (np.float16, np.uint16, np.int16, "V2", np.dtype([("bfloat16", np.uint16)])):
        assert not bfloat16.is_bfloat16(other)
    assert not bfloat16.is_floating(np.uint16) and not bfloat16.is_floating("V2")
    with pytest.raises(TypeError, match=r"arrays\[0\] has dtype uint16"):
        clip.total_norm([np.ones(3, np.uint16)])


# ----- on the host ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "numba", None])
@pytest.mark.parametrize("p", ORDERS)
def test_a_bfloat16_norm_has_the_bits_of_the_same_values_in_float64(backend, p, small_kernels):
    """Every order and backend: bfloat16 values are float64 values, summed the same way."""
    grads = _gradients(1)
    wide = [g.astype(np.float64) for g in grads]
    got = float(clip.total_norm(grads, p, backend=backend))
    assert got.hex() == float(clip.total_norm(wide, p, backend="numpy")).hex()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_bfloat16_norm_clip_multiplies_in_float32_and_rounds_once(backend):
    grads = _gradients(2)
    before = [g.copy() for g in grads]
    norm = float(clip.clip_norm_(grads, 1.0, backend=backend))
    coef = 1.0 / (norm + 1e-6)
    for g, b in zip(grads, before):
        np.testing.assert_array_equal(_bits(g), _bits(_float32_rounded(b, coef)))


def test_a_bfloat16_clip_matches_torchs_bfloat16_arithmetic(torch):
    """torch's own conversions: its norm of the bfloat16 values in float64, x.float() · coef rounded by
    .bfloat16(), and clamp_ on a bfloat16 tensor (NaN, ±inf and ±0 included)."""
    grads = _gradients(3)
    grads[2][:5] = np.array([np.nan, np.inf, -np.inf, -0.0, 2.0]).astype(BF16)
    tensors = [torch.from_numpy(_bits(g).view(np.int16).copy()).view(torch.bfloat16) for g in grads]
    for p in (2.0, 1.0, 3.0):
        finite = [g[5:] if k == 2 else g for k, g in enumerate(grads)]
        t_finite = [t[5:] if k == 2 else t for k, t in enumerate(tensors)]
        want = torch.linalg.vector_norm(torch.cat([t.double() for t in t_finite]), p).item()
        assert float(clip.total_norm(finite, p)) == pytest.approx(want, rel=1e-14)
    coef = 0.3
    scaled = [g.copy() for g in grads]
    clip.scale_(scaled, coef)
    for g, t in zip(scaled, tensors):
        _assert_same_bits_but_nans(g, (t.float() * coef).bfloat16().view(torch.int16).numpy())
    clamped = [g.copy() for g in grads]
    clip.clip_value_(clamped, 0.7)
    for g, t in zip(clamped, tensors):
        _assert_same_bits_but_nans(g, t.clone().clamp_(-0.7, 0.7).view(torch.int16).numpy())


def test_a_bfloat16_coefficient_is_not_rounded_to_bfloat16():
    """0.3 is 0.30078125 in bfloat16: a product with the rounded coefficient lands elsewhere for some values."""
    x = np.arange(1, 200, dtype=np.float64).astype(BF16)
    y = x.copy()
    numpy_backend.scale_([y], 0.3)
    np.testing.assert_array_equal(_bits(y), _bits(_float32_rounded(x, 0.3)))
    assert not np.array_equal(_bits(y), _bits((x.astype(np.float32) * np.float32(BF16.type(0.3))).astype(BF16)))


def test_bfloat16_segments_and_agc_multiply_in_float32():
    g = _gradients(4, sizes=(40,))[0]
    w = _gradients(5, sizes=(40,))[0]
    offsets = [0, 10, 25, 40]
    norms = clip.segment_norms(g, offsets)
    wide = g.astype(np.float64)
    np.testing.assert_array_equal(norms, [np.linalg.norm(wide[a:b]) for a, b in zip(offsets, offsets[1:])])
    factors = np.array([0.3, 1.0, 1e-3])
    y = g.copy()
    clip.scale_segments_(y, offsets, factors)
    for k, (a, b) in enumerate(zip(offsets, offsets[1:])):
        np.testing.assert_array_equal(_bits(y[a:b]), _bits(_float32_rounded(g[a:b], factors[k])))
    h = g.copy()
    clip.adaptive_clip_(h, w, offsets, 0.1)
    limit = np.maximum(clip.segment_norms(w, offsets), 1e-3) * 0.1
    for k, (a, b) in enumerate(zip(offsets, offsets[1:])):
        f = limit[k] / max(norms[k], 1e-6) if norms[k] >= limit[k] else 1.0
        np.testing.assert_array_equal(_bits(h[a:b]), _bits(_float32_rounded(g[a:b], f)))


def test_every_bfloat16_nan_gives_a_nan_norm_without_a_warning():
    """ml_dtypes raises NumPy's invalid flag when it casts a bfloat16 NaN to float64 (a failure under this
    suite's warning filter); the norm of any NaN, quiet or signalling, of either sign, is NaN, quietly."""
    nans = ALL_BITS[(ALL_BITS & 0x7F80) == 0x7F80]
    nans = nans[(nans & 0x7F) != 0]
    for b in nans[:: max(1, nans.size // 16)].tolist() + [0x7F81, 0xFFC0]:
        x = np.array([1.0, 2.0, 3.0]).astype(BF16)
        x.view(np.uint16)[1] = b
        for p in (2.0, 1.0, 3.0, -1.5):
            assert math.isnan(float(clip.total_norm([x], p))), (hex(b), p)
        assert math.isnan(clip.segment_norms(x, [0, 3])[0])


def test_a_rejected_bfloat16_call_changes_nothing():
    grads = _gradients(6)
    grads[1].flags.writeable = False
    before = [g.copy() for g in grads]
    with pytest.raises(ValueError, match=r"arrays\[1\] is read-only"):
        clip.clip_norm_(grads, 0.1)
    with pytest.raises(ValueError, match=r"arrays\[1\] is read-only"):
        clip.clip_value_(grads, 0.1)
    for g, b in zip(grads, before):
        np.testing.assert_array_equal(_bits(g), _bits(b))


# ----- on a CUDA device (the simulator here) ---------------------------------------------------------------------
def _device():
    if CUDA_UNAVAILABLE:
        pytest.skip(CUDA_UNAVAILABLE)
    from numba import cuda

    return cuda


@pytest.mark.parametrize("p", ORDERS)
def test_a_cuda_bfloat16_norm_equals_the_host_norm(p):
    """Through the four-load loop and its tail (131 elements on the simulator's 16 threads)."""
    cuda = _device()
    grads = _gradients(7)
    got = host_value(clip.total_norm([cuda.to_device(g) for g in grads], p), "cuda")
    assert got == pytest.approx(float(clip.total_norm(grads, p)), rel=1e-12)


def test_cuda_bfloat16_clips_have_the_host_bits():
    """The norm clip (with the device's own coefficient), the value clip and a scale: the host's bits, NaN and
    ±0 kept."""
    cuda = _device()
    grads = _gradients(8)
    dev = [cuda.to_device(g) for g in grads]
    norm = host_value(clip.clip_norm_(dev, 1.0), "cuda")
    for d, g in zip(dev, grads):
        np.testing.assert_array_equal(_bits(d.copy_to_host()), _bits(_float32_rounded(g, 1.0 / (norm + 1e-6))))
    grads[2][7] = BF16.type(np.nan)
    grads[2][70] = BF16.type(-np.nan)
    dev = [cuda.to_device(g) for g in grads]
    clip.clip_value_(dev, 0.7)
    clip.clip_value_(grads, 0.7)
    for d, g in zip(dev, grads):
        np.testing.assert_array_equal(_bits(d.copy_to_host()), _bits(g))
    clip.scale_(dev, 0.3)
    clip.scale_(grads, 0.3)
    for d, g in zip(dev, grads):
        _assert_same_bits_but_nans(d.copy_to_host(), _bits(g))


def test_a_cuda_bfloat16_product_is_rounded_to_float32_before_bfloat16():
    """x · c is rounded to float32, then to bfloat16 (as torch and the host do): rounded straight to bfloat16,
    x = 1.4453125 and three others in [1, 2) times float32(0.7) land elsewhere, where the float32 rounding makes
    a bfloat16 tie."""
    cuda = _device()
    c = float(np.float32(0.7))
    ties = np.array([0x3FB9, 0x3FCD, 0x3FE1, 0x3FF5], dtype=np.uint16)
    for b in ties:
        assert bfloat16.bits(bfloat16.value(int(b)) * c) != bfloat16.bits(float(np.float32(bfloat16.value(int(b)) * c)))
    x = np.concatenate([ties, ties | 0x8000, ties - 0x0400]).view(BF16)  # both signs, and a quarter of them
    d = cuda.to_device(x)
    clip.scale_([d], 0.7)
    np.testing.assert_array_equal(_bits(d.copy_to_host()), _bits(_float32_rounded(x, 0.7)))


def test_cuda_bfloat16_segments_and_agc_have_the_host_bits():
    cuda = _device()
    g, w = _gradients(9, sizes=(70,))[0], _gradients(10, sizes=(70,))[0]
    offsets = [0, 10, 10, 30, 45, 70]
    got = clip.host_value_array(clip.segment_norms(cuda.to_device(g), offsets))
    np.testing.assert_allclose(got, clip.segment_norms(g, offsets), rtol=1e-12)
    factors = np.array([0.3, 2.0, 2.0, 1.0, 1e-3])  # 2 on an empty segment and on a full one
    d = cuda.to_device(g)
    clip.scale_segments_(d, offsets, factors)
    h = g.copy()
    clip.scale_segments_(h, offsets, factors)
    np.testing.assert_array_equal(_bits(d.copy_to_host()), _bits(h))
    d, h = cuda.to_device(g), g.copy()
    clip.adaptive_clip_(d, cuda.to_device(w), offsets, 0.05)
    clip.adaptive_clip_(h, w, offsets, 0.05)
    np.testing.assert_array_equal(_bits(d.copy_to_host()), _bits(h))
