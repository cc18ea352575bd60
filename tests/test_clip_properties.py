"""Invariants of minigrad.clip, each checked on every backend (numpy, numba, cuda simulated or real).

Every property states its input domain. The kernels' thresholds are shrunk for these tests (`small_kernels`):
16-element chunks, Numba from 32 elements, per-array kernels from 8, so arrays of a few hundred elements run the
multi-chunk kernels, both sides of every threshold, and the concatenation of small arrays.
"""
import math

import numpy as np
import pytest
from backends import BACKENDS, examples, host_value, reference_norm, to_backend, to_host
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import DEVICE_DTYPES, array_lists, device_lists, norm_types, positive_orders

from minigrad import clip

backends = pytest.mark.parametrize("backend", BACKENDS)
max_norms = st.floats(1e-3, 1e3)
EPS = {np.dtype(np.float16): 1e-3, np.dtype(np.float32): 1.2e-7, np.dtype(np.float64): 2.3e-16}


@pytest.fixture(autouse=True)
def small_thresholds(small_kernels, monkeypatch):
    """Tiny chunks and thresholds, so that small drawn arrays reach every kernel path."""
    monkeypatch.setattr(clip, "NUMBA_MIN_ELEMENTS", 32)


def lists_for(backend, **kwargs):
    """The drawn arrays a backend takes: every dtype and layout on the host, float32/64 on a device."""
    return device_lists(**kwargs) if backend == "cuda" else array_lists(**kwargs)


WIDE_DTYPES = (np.float32, np.float64)  # where scaling by 2^±20 or a clip of 1e-20 stays in range


def _rtol(p) -> float:
    """A p-th root amplifies the sum's relative rounding by 1/|p|."""
    p = {"inf": math.inf, "-inf": -math.inf}.get(p, p) if isinstance(p, str) else p
    return 1e-12 * max(1.0, 1.0 / abs(p)) if p not in (0.0, math.inf, -math.inf) else 0.0


def _same(got: float, want: float, rtol: float) -> None:
    if math.isnan(want) or math.isinf(want) or rtol == 0.0:
        assert got == want or (math.isnan(got) and math.isnan(want)), (got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


def _norm(arrays, p, backend) -> float:
    return host_value(clip.total_norm(to_backend(arrays, backend), p, backend=backend), backend)


@backends
def test_norm_equals_the_reference_formula(backend):
    """Domain: everything. float16/32/64 (device: 32/64), any layout, values from subnormal to 1e30 (fp32) and
    1e200 (fp64) with NaN and ±inf, sizes 0-300 (many chunks), every order (0, p < 0, tiny to 20, ±inf)."""
    @examples(backend)
    @given(arrays=lists_for(backend, special=True), p=norm_types)
    def check(arrays, p):
        _same(_norm(arrays, p, backend), reference_norm(arrays, p), _rtol(p))

    check()


def _pow_rounding(arrays, p) -> float:
    """The relative error of a norm computed through pow, for orders other than 1, 2 and inf: x^p is
    exp(p·ln x) and s^(1/p) uses 1/p rounded, so the error grows with |ln| of the largest |x| (about 100 ulps
    for x ~ 1e166, p = 1.5)."""
    big = max([float(np.max(np.abs(a.astype(np.float64)))) for a in arrays if a.size] + [0.0])
    if p in (1.0, 2.0, math.inf) or not big > 0:
        return 0.0
    return 8 * EPS[np.dtype(np.float64)] * abs(math.log(big))


@backends
def test_after_clip_the_norm_is_at_most_max_norm(backend):
    """Domain: finite values (any dtype, layout, magnitude), orders p > 0 and inf, max_norm 1e-3..1e3.

    The bound allows the rounding of the norm: a few ulps of each array's dtype, amplified by 1/p, and for
    orders other than 1, 2 and inf the error of pow itself, which is relative to |p·ln|x|| (x^p is
    exp(p·ln x)): found by Hypothesis with x = 5.1e39, p = 0.375, clipped to 1 + 5e-15."""
    @examples(backend)
    @given(arrays=lists_for(backend), max_norm=max_norms, p=positive_orders)
    def check(arrays, max_norm, p):
        dev = to_backend(arrays, backend)
        clip.clip_norm_(dev, max_norm, p, backend=backend)
        worst = max([EPS[a.dtype] for a in arrays if a.size] + [0.0])
        rel = 8 * worst / min(1.0, abs(p)) + _pow_rounding(arrays, p)
        assert reference_norm(to_host(dev, backend), p) <= max_norm * (1 + rel)

    check()


@backends
def test_clipping_scales_every_array_by_one_common_coefficient(backend):
    """Domain: finite values, any dtype and layout, every order. Each array becomes exactly x · dtype(c) with
    c = min(max_norm / (norm + 1e-6), 1) from the returned norm: one coefficient, applied in the array's dtype
    (float16: x · float32(c) rounded once to float16)."""
    @examples(backend)
    @given(arrays=lists_for(backend), max_norm=max_norms, p=norm_types)
    def check(arrays, max_norm, p):
        dev = to_backend(arrays, backend)
        norm = host_value(clip.clip_norm_(dev, max_norm, p, backend=backend), backend)
        coef = min(max_norm / (norm + 1e-6), 1.0)
        for before, after in zip(arrays, to_host(dev, backend)):
            if coef == 1.0:
                expect = before
            elif before.dtype == np.float16:
                expect = (before.astype(np.float32) * np.float32(coef)).astype(np.float16)
            else:
                expect = before * before.dtype.type(coef)
            assert after.tobytes() == np.ascontiguousarray(expect).astype(after.dtype).tobytes() or \
                np.array_equal(after, expect)

    check()


@backends
def test_below_the_threshold_nothing_changes_bit_for_bit(backend):
    """Domain: finite values, any dtype and layout, orders p > 0; max_norm at or above the norm."""
    @examples(backend)
    @given(arrays=lists_for(backend), p=positive_orders, slack=st.floats(1.0, 10.0))
    def check(arrays, p, slack):
        max_norm = reference_norm(arrays, p) * slack * (1 + 1e-9) + 1e-3
        if not math.isfinite(max_norm):
            return
        dev = to_backend(arrays, backend)
        clip.clip_norm_(dev, max_norm, p, backend=backend)
        for before, after in zip(arrays, to_host(dev, backend)):
            assert np.array_equal(before, after)

    check()


@backends
def test_clipping_twice_equals_clipping_once(backend):
    """Domain: finite float32/64 values of magnitude >= 1e-20 (no subnormal results), any layout, p > 0."""
    @examples(backend)
    @given(arrays=array_lists(dtypes=WIDE_DTYPES, lo=1e-20), max_norm=max_norms, p=positive_orders)
    @example(arrays=[np.array([3.0, 5.32085139e166])], max_norm=7.0, p=1.5)
    def check(arrays, max_norm, p):
        dev = to_backend(arrays, backend)
        clip.clip_norm_(dev, max_norm, p, backend=backend)
        once = to_host(dev, backend)
        clip.clip_norm_(dev, max_norm, p, backend=backend)
        worst = max([EPS[a.dtype] for a in arrays if a.size] + [0.0])
        # the first clip leaves the norm at max_norm within the norm's own rounding; the second then scales by
        # max_norm / (that norm + 1e-6) (found by Hypothesis: [3, 5.3e166], p = 1.5, a norm 2e-14 too low)
        rtol = 4 * worst + 1e-6 / max_norm + _pow_rounding(arrays, p) + _pow_rounding([np.array([max_norm])], p)
        for a, b in zip(once, to_host(dev, backend)):
            np.testing.assert_allclose(b, a, rtol=rtol)

    check()


@backends
def test_norm_is_invariant_to_splitting_concatenating_and_permuting(backend):
    """Domain: finite values of one dtype per list, every order: the norm of the elements as one vector."""
    @examples(backend)
    @given(dtype=st.sampled_from(DEVICE_DTYPES), p=norm_types, data=st.data())
    def check(dtype, p, data):
        arrays = data.draw(array_lists(min_arrays=2, dtypes=(dtype,)))
        whole = _norm(arrays, p, backend)
        flat = np.concatenate([a.ravel() for a in arrays])
        cuts = sorted(data.draw(st.lists(st.integers(0, flat.size), max_size=3)))
        pieces = data.draw(st.permutations(np.split(flat, cuts)))
        for other in ([flat], list(reversed(arrays)), pieces):
            _same(_norm(other, p, backend), whole, _rtol(p))

    check()


@backends
def test_norm_is_absolutely_homogeneous(backend):
    """Domain: finite float32/64 values of magnitude 1e-20..1e30 (1e200 in float64), so that scaling by 2^k,
    |k| <= 20, neither overflows nor underflows; every order but 0 (a count)."""
    @examples(backend)
    @given(arrays=array_lists(dtypes=WIDE_DTYPES, lo=1e-20), p=norm_types.filter(lambda p: p != 0.0),
           k=st.integers(-20, 20), sign=st.sampled_from([-1, 1]))
    def check(arrays, p, k, sign):
        c = sign * 2.0 ** k  # a power of two scales exactly, so only the sum's rounding is left
        scaled = [a * a.dtype.type(c) for a in arrays]
        _same(_norm(scaled, p, backend), abs(c) * _norm(arrays, p, backend), _rtol(p))

    check()


@backends
def test_p_norms_decrease_with_p(backend):
    """Domain: finite values, any dtype and layout, 0 < p < p + dq, and inf."""
    @examples(backend)
    @given(arrays=lists_for(backend), p=st.floats(0.05, 10.0), dq=st.floats(0.01, 10.0))
    def check(arrays, p, dq):
        small, large, inf = (_norm(arrays, q, backend) for q in (p, p + dq, math.inf))
        assert small >= large * (1 - 1e-12) and large >= inf * (1 - 1e-12)

    check()


@backends
def test_max_and_min_norms_are_exact_and_nan_wins(backend):
    """Domain: everything, with NaN and ±inf: ±inf orders are max / min |x| exactly, NaN if any NaN."""
    @examples(backend)
    @given(arrays=lists_for(backend, special=True))
    def check(arrays):
        flat = np.concatenate([np.abs(a.astype(np.float64)).ravel() for a in arrays])
        for p, fn in (("inf", np.max), (-math.inf, np.min)):
            want = 0.0 if flat.size == 0 else (math.nan if np.isnan(flat).any() else float(fn(flat)))
            _same(_norm(arrays, p, backend), want, 0.0)

    check()


@backends
def test_value_clip_bounds_keeps_inner_elements_bitwise_and_equals_np_clip(backend):
    """Domain: everything, with NaN and ±inf, any dtype and layout, clip_value 0..1e3 (NaN stays NaN)."""
    @examples(backend)
    @given(arrays=lists_for(backend, special=True), v=st.floats(0.0, 1e3))
    def check(arrays, v):
        dev = to_backend(arrays, backend)
        clip.clip_value_(dev, v, backend=backend)
        after = to_host(dev, backend)
        for before, got in zip(arrays, after):
            vv = before.dtype.type(v)
            assert np.all((got >= -vv) & (got <= vv) | np.isnan(got))
            inside = np.abs(before) < vv
            assert np.array_equal(before[inside], got[inside])
            np.testing.assert_array_equal(got, np.clip(before, -vv, vv))
        clip.clip_value_(dev, v, backend=backend)  # idempotent
        for once, twice in zip(after, to_host(dev, backend)):
            assert once.tobytes() == twice.tobytes()

    check()


@pytest.mark.parametrize("backend", BACKENDS[1:])
@pytest.mark.filterwarnings("ignore:.*invalid value encountered in (scalar )?multiply:RuntimeWarning")  # 0 · inf
def test_backends_agree_with_the_reference(backend):
    """Domain: everything, with NaN and ±inf, mixed dtypes, every order: the norm, and every clipped element
    (NaN where the reference has NaN)."""
    @examples(backend)
    @given(arrays=lists_for(backend, special=True), p=norm_types, max_norm=max_norms)
    def check(arrays, p, max_norm):
        ref = to_backend(arrays, "numpy")
        dev = to_backend(arrays, backend)
        n_ref = float(clip.clip_norm_(ref, max_norm, p, backend="numpy"))
        _same(host_value(clip.clip_norm_(dev, max_norm, p, backend=backend), backend), n_ref, _rtol(p))
        for a, b in zip(ref, to_host(dev, backend)):  # the coefficient carries the norm's rounding (1/p amplified)
            np.testing.assert_allclose(b, a, rtol=max(4 * EPS[a.dtype], _rtol(p)), equal_nan=True)

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




ORDERS = [0.0, 0.5, 1.0, 2.0, 3.0, 8.0, 20.0, math.inf, -0.5, -1.0, -2.0, -math.inf, "inf", "-inf"]


def _fixed_lists(backend):
    """Fixed inputs that every order must get right on every backend, beside the drawn ones (a simulated GPU
    sees few drawn examples): zeros among values, ±inf, NaN, subnormals, huge and tiny, several arrays and
    dtypes, sizes spanning several chunks, blocks and grid strides."""
    rng = np.random.default_rng(7)
    dtypes = (np.float32, np.float64) if backend == "cuda" else (np.float16, np.float32, np.float64)
    mixed = [rng.standard_normal(n).astype(dtypes[i % len(dtypes)]) for i, n in enumerate((37, 1, 70, 5))]
    mixed[0][::3] = 0.0
    cases = {
        "mixed": mixed,
        "zeros": [np.zeros(40), np.zeros(3)],
        "with inf": [np.array([1.0, -np.inf, 0.0, 2.0] * 9)],
        "with nan": [np.array([1.0, 2.0, 0.0] * 11), np.array([np.nan, 0.0])],
        "huge fp32": [np.full(50, 1e30, np.float32), np.array([-3e38, 3e38, -3e38], np.float32)],  # Σx⁸ overflows
        "tiny fp64": [np.full(33, 5e-324), np.array([1e-310, 0.0])],
        "empty": [np.zeros(0), np.zeros(0, np.float32)],
    }
    if backend != "cuda":  # the simulator computes with NumPy scalars, which warn where a GPU rounds to inf
        cases["overflow fp64"] = [np.full(4, 1.7e308)]  # the norm overflows for p >= 0.5, but not for p < 0
    return cases


@backends
@pytest.mark.parametrize("p", ORDERS, ids=str)
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0 when an inf norm clips
def test_every_order_on_fixed_hard_inputs_matches_the_reference(backend, p):
    rtol = _rtol(p) if not isinstance(p, str) else 0.0
    for name, arrays in _fixed_lists(backend).items():
        want = reference_norm(arrays, p)
        got = _norm(arrays, p, backend)
        try:
            _same(got, want, max(rtol, 1e-6) if arrays[0].dtype == np.float16 else rtol)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from None
        dev = to_backend(arrays, backend)  # clipping scales by the reference coefficient
        returned = host_value(clip.clip_norm_(dev, 1.0, p, backend=backend), backend)
        _same(returned, want, rtol)
        coef = min(1.0 / (returned + 1e-6), 1.0) if not math.isnan(returned) else math.nan  # torch's rule
        for before, after in zip(arrays, to_host(dev, backend)):
            work = np.float32 if before.dtype == np.float16 else before.dtype.type  # float16 is scaled in float32
            with np.errstate(invalid="ignore", over="ignore"):
                expect = (before.astype(work) * work(coef)).astype(before.dtype) if coef != 1.0 else before
            np.testing.assert_array_equal(after, expect, err_msg=f"{name}, p={p}")
