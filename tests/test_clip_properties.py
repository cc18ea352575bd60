"""Invariants of minigrad.clip, each checked on every backend (numpy, numba, cuda simulated or real)."""
import math

import numpy as np
import pytest
from backends import BACKENDS, examples, host_value, reference_norm, to_backend, to_host
from hypothesis import given
from hypothesis import strategies as st
from strategies import array_lists, mixed_dtype_lists, norm_types

from minigrad import clip

backends = pytest.mark.parametrize("backend", BACKENDS)
max_norms = st.floats(0.01, 100.0)


def _eps(arrays):
    return 1e-5 if any(a.dtype == np.float32 for a in arrays) else 1e-12


@backends
def test_norm_equals_the_float64_numpy_formula(backend):
    @examples(backend)
    @given(arrays=array_lists(), p=norm_types)
    def check(arrays, p):
        norm = clip.total_norm(to_backend(arrays, backend), p, backend=backend)
        np.testing.assert_allclose(host_value(norm, backend), reference_norm(arrays, p), rtol=1e-12)

    check()


@backends
def test_after_clip_the_norm_is_at_most_max_norm(backend):
    @examples(backend)
    @given(arrays=array_lists(), max_norm=max_norms, p=norm_types)
    def check(arrays, max_norm, p):
        dev = to_backend(arrays, backend)
        clip.clip_norm_(dev, max_norm, p, backend=backend)
        assert reference_norm(to_host(dev, backend), p) <= max_norm * (1 + _eps(arrays))

    check()


@backends
def test_clipping_scales_every_array_by_one_common_coefficient(backend):
    @examples(backend)
    @given(arrays=array_lists(dtype=np.float64), max_norm=max_norms, p=norm_types)
    def check(arrays, max_norm, p):
        dev = to_backend(arrays, backend)
        norm = host_value(clip.clip_norm_(dev, max_norm, p, backend=backend), backend)
        coef = min(max_norm / (norm + 1e-6), 1.0)
        for before, after in zip(arrays, to_host(dev, backend)):
            np.testing.assert_allclose(after, before * coef, rtol=1e-15, atol=0)

    check()


@backends
def test_below_the_threshold_nothing_changes_bit_for_bit(backend):
    @examples(backend)
    @given(arrays=array_lists(), p=norm_types, slack=st.floats(1.0, 10.0))
    def check(arrays, p, slack):
        max_norm = reference_norm(arrays, p) * slack + 1e-3
        dev = to_backend(arrays, backend)
        clip.clip_norm_(dev, max_norm, p, backend=backend)
        for before, after in zip(arrays, to_host(dev, backend)):
            assert before.tobytes() == after.tobytes()

    check()


@backends
def test_clipping_twice_equals_clipping_once(backend):
    @examples(backend)
    @given(arrays=array_lists(), max_norm=max_norms, p=norm_types)
    def check(arrays, max_norm, p):
        dev = to_backend(arrays, backend)
        clip.clip_norm_(dev, max_norm, p, backend=backend)
        once = to_host(dev, backend)
        clip.clip_norm_(dev, max_norm, p, backend=backend)
        for a, b in zip(once, to_host(dev, backend)):
            np.testing.assert_allclose(b, a, rtol=_eps(arrays) + 1e-6 / max_norm)

    check()


@backends
def test_norm_is_invariant_to_splitting_concatenating_and_permuting(backend):
    @examples(backend)
    @given(arrays=array_lists(min_arrays=2), p=norm_types, data=st.data())
    def check(arrays, p, data):
        whole = host_value(clip.total_norm(to_backend(arrays, backend), p, backend=backend), backend)
        flat = np.concatenate([a.ravel() for a in arrays])
        cuts = sorted(data.draw(st.lists(st.integers(0, flat.size), max_size=3)))
        pieces = data.draw(st.permutations(np.split(flat, cuts)))
        for other in ([flat], list(reversed(arrays)), pieces):
            n = host_value(clip.total_norm(to_backend(other, backend), p, backend=backend), backend)
            np.testing.assert_allclose(n, whole, rtol=1e-12)

    check()


@backends
def test_norm_is_absolutely_homogeneous(backend):
    @examples(backend)
    @given(arrays=array_lists(), p=norm_types, k=st.integers(-20, 20), sign=st.sampled_from([-1, 1]))
    def check(arrays, p, k, sign):
        c = sign * 2.0 ** k  # a power of two scales exactly, so only the sum's rounding is left
        scaled = [a * a.dtype.type(c) for a in arrays]
        n1 = host_value(clip.total_norm(to_backend(arrays, backend), p, backend=backend), backend)
        n2 = host_value(clip.total_norm(to_backend(scaled, backend), p, backend=backend), backend)
        np.testing.assert_allclose(n2, abs(c) * n1, rtol=1e-12)

    check()


@backends
def test_p_norms_decrease_with_p(backend):
    @examples(backend)
    @given(arrays=array_lists(), p=st.floats(0.3, 5.0), dq=st.floats(0.01, 5.0))
    def check(arrays, p, dq):
        dev = to_backend(arrays, backend)
        small = host_value(clip.total_norm(dev, p, backend=backend), backend)
        large = host_value(clip.total_norm(dev, p + dq, backend=backend), backend)
        inf = host_value(clip.total_norm(dev, math.inf, backend=backend), backend)
        assert small >= large * (1 - 1e-12) and large >= inf * (1 - 1e-12)

    check()


@backends
def test_inf_norm_is_the_max_abs_exactly(backend):
    @examples(backend)
    @given(arrays=array_lists())
    def check(arrays):
        expect = max([float(np.max(np.abs(a))) for a in arrays if a.size] + [0.0])
        assert host_value(clip.total_norm(to_backend(arrays, backend), "inf", backend=backend), backend) == expect

    check()


@backends
def test_value_clip_bounds_keeps_inner_elements_bitwise_and_equals_np_clip(backend):
    @examples(backend)
    @given(arrays=array_lists(), v=st.floats(0.0, 500.0))
    def check(arrays, v):
        dev = to_backend(arrays, backend)
        clip.clip_value_(dev, v, backend=backend)
        after = to_host(dev, backend)
        for before, got in zip(arrays, after):
            vv = before.dtype.type(v)
            assert np.all((got >= -vv) & (got <= vv))
            inside = np.abs(before) < vv
            assert before[inside].tobytes() == got[inside].tobytes()
            np.testing.assert_array_equal(got, np.clip(before, -vv, vv))
        clip.clip_value_(dev, v, backend=backend)  # idempotent
        for once, twice in zip(after, to_host(dev, backend)):
            assert once.tobytes() == twice.tobytes()

    check()


@backends
def test_value_clip_keeps_nan(backend):
    x = np.array([np.nan, 5.0, -5.0, 0.5, np.inf, -np.inf])
    dev = to_backend([x], backend)
    clip.clip_value_(dev, 1.0, backend=backend)
    np.testing.assert_array_equal(to_host(dev, backend)[0], [np.nan, 1.0, -1.0, 0.5, 1.0, -1.0])


@pytest.mark.parametrize("backend", ["numba", "cuda"])
def test_backends_agree_with_the_reference(backend):
    @examples(backend)
    @given(arrays=mixed_dtype_lists(), p=norm_types, max_norm=max_norms)
    def check(arrays, p, max_norm):
        ref = [a.copy() for a in arrays]
        dev = to_backend(arrays, backend)
        n_ref = clip.clip_norm_(ref, max_norm, p, backend="numpy")
        n_dev = clip.clip_norm_(dev, max_norm, p, backend=backend)
        np.testing.assert_allclose(host_value(n_dev, backend), float(n_ref), rtol=1e-12)
        for a, b in zip(ref, to_host(dev, backend)):
            np.testing.assert_allclose(b, a, rtol=1e-6 if a.dtype == np.float32 else 1e-12)

    check()


@backends
def test_huge_values_give_finite_correct_norms_and_get_clipped(backend):
    fp32 = np.full(10, 1e30, np.float32)
    fp64 = np.array([1e200, -1e200, 3e199])
    for arrays, expect in (([fp32], 1e30 * math.sqrt(10)), ([fp64], reference_norm([fp64], 2))):
        dev = to_backend(arrays, backend)
        norm = host_value(clip.clip_norm_(dev, 1.0, backend=backend), backend)
        np.testing.assert_allclose(norm, expect, rtol=1e-6)
        np.testing.assert_allclose(reference_norm(to_host(dev, backend), 2), 1.0, rtol=1e-5)
    tiny = np.array([1e-200, 1e-200])  # squares would underflow to 0 without scaling
    np.testing.assert_allclose(host_value(clip.total_norm(to_backend([tiny], backend), backend=backend), backend),
                               math.sqrt(2) * 1e-200, rtol=1e-12)


@backends
def test_empty_input_has_norm_zero_and_changes_nothing(backend):
    for arrays in ([], [np.zeros(0)], [np.zeros((0, 3), np.float32), np.zeros(0)]):
        dev = to_backend(arrays, backend)
        assert host_value(clip.clip_norm_(dev, 1.0, backend=backend), backend) == 0.0
        clip.clip_value_(dev, 1.0, backend=backend)
    zeros = [np.zeros(3)]
    assert host_value(clip.total_norm(to_backend(zeros, backend), 3.5, backend=backend), backend) == 0.0


@backends
@pytest.mark.filterwarnings("ignore:.*invalid value encountered in (scalar )?multiply:RuntimeWarning")  # 0 · inf
def test_nonfinite_norms_behave_as_torch(backend):
    # inf norm: coefficient 0, so finite entries become 0 and the inf entry 0 * inf = NaN
    dev = to_backend([np.array([1.0, np.inf]), np.array([2.0], np.float32)], backend)
    assert host_value(clip.clip_norm_(dev, 1.0, backend=backend), backend) == math.inf
    a, b = to_host(dev, backend)
    np.testing.assert_array_equal(a, [0.0, np.nan])
    np.testing.assert_array_equal(b, [0.0])
    # NaN norm: coefficient NaN, everything NaN
    dev = to_backend([np.array([1.0, np.nan])], backend)
    assert math.isnan(host_value(clip.clip_norm_(dev, 1.0, backend=backend), backend))
    assert np.all(np.isnan(to_host(dev, backend)[0]))


@backends
def test_error_if_nonfinite_raises_before_modifying(backend):
    arrays = [np.array([1.0, 2.0]), np.array([np.inf])]
    dev = to_backend(arrays, backend)
    with pytest.raises(RuntimeError, match="inf"):
        clip.clip_norm_(dev, 1.0, error_if_nonfinite=True, backend=backend)
    for before, after in zip(arrays, to_host(dev, backend)):
        assert before.tobytes() == after.tobytes()


