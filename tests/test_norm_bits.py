"""Which pass computes a norm, pinned to the bit.

The README promises reproducible bits, so each backend's choice between its paths is part of the answer, not
only of its speed: two paths give the same norm only to rounding. The rules (clip/pnorm.py,
clip/numba_backend.py, clip/__init__.py): one unscaled pass when its sum lies in [TINY_SUM, inf), else a pass
scaled by the largest |x|; within a factor e of float64's overflow the root goes through logarithms, elsewhere it
is the direct power; Numba reduces an array below SMALL elements with one serial kernel call and a larger one in
CHUNK-element pieces whose partials are added in index order; the default backend is NumPy below
NUMBA_MIN_ELEMENTS elements and Numba from there. Each test rebuilds the bits a rule gives from that path's own
formula (a NumPy formula for the reference; for Numba, its compiled reduction of one piece, composed as the rule
says) and checks, for the inputs used, that the other path's bits differ, so that the test can tell them apart.
"""
import math

import numpy as np
import pytest

from minigrad import clip
from minigrad.clip import numba_backend as nb
from minigrad.clip import numpy_backend
from minigrad.clip.pnorm import _LOG_MAX, TINY_SUM, finish, scaled_root

ORDERS = [0.5, 1.0, 1.5, 2.0, 3.0]
# The documented thresholds, as numbers: reading the module's constants would follow a changed one.
NUMBA_FROM = 1 << 10  # README: "host arrays of at least 2^10 elements to Numba"
SMALL = 1 << 16  # docs/internals.md: "an array under 65536 elements gets the serial chunk kernel"
CHUNK = 8192  # docs/internals.md: "fixed 8192-element chunks"


def _reference_one_pass(arrays, p):
    """The reference's unscaled norm as a NumPy formula: one float64 vector of every element; x·x for p = 2."""
    x = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float64)
    if p == 2.0:
        return math.sqrt(float(np.dot(x, x)))
    if p == 1.0:
        return float(np.sum(np.abs(x)))
    return float(np.sum(np.abs(x) ** p)) ** (1.0 / p)


def _scaled(arrays, p):
    """The norm by the scaled pass: m · (Σ(|x|/m)^p)^(1/p), m = max |x|."""
    m = numpy_backend.max_abs(arrays)
    return finish(numpy_backend.power_sum_all(arrays, p, m), p, m)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", ORDERS)
def test_the_reference_takes_one_unscaled_pass_when_its_sum_is_safe(p, dtype):
    rng = np.random.default_rng(7)
    differs = False
    for _ in range(5):
        arrays = [rng.standard_normal(n).astype(dtype) for n in (5, 300, 17)]
        want = _reference_one_pass(arrays, p)
        assert float(clip.total_norm(arrays, p, backend="numpy")) == want
        differs |= _scaled(arrays, p) != want
    assert differs  # the scaled pass gives other bits on some of these inputs


def _mode(p):
    return nb._SQUARES if p == 2.0 else nb._ABS if p == 1.0 else nb._POW


def _serial(x, p):
    return float(nb._reduce(x, p, 1.0, _mode(p)))


def _chunked(x, p):
    total = 0.0
    for start in range(0, x.size, CHUNK):
        total += float(nb._reduce(x[start:start + CHUNK], p, 1.0, _mode(p)))
    return total


def _serial_loses_what_chunks_keep(n, p, rng):
    """n elements whose serial sum and chunked sum differ on any machine, whatever the SIMD width: the first
    CHUNK have |x|^p = 2^53, the rest |x|^p = 8. Serially, each of up to 256 SIMD accumulators already holds at
    least 2^57 when the small terms come (half an ulp: 16), so every 8 is lost; chunked, each later chunk sums to
    2^16 on its own, which survives being added to the total of 2^66 (an ulp: 2^14)."""
    x = np.full(n, 8.0 ** (1.0 / p))
    x[:CHUNK] = 2.0 ** (53.0 / p)
    return x * rng.choice([-1.0, 1.0], n)


@pytest.mark.parametrize("p", ORDERS)
def test_numba_sums_an_array_serially_below_small_and_in_chunks_from_small_up(p):
    """Arrays of SMALL - 1, SMALL and SMALL + 4321 elements: the first serially, the others in chunks, and each
    array's sum added to the total in order; one unscaled pass, as the sums are safe."""
    rng = np.random.default_rng(3)
    below = rng.standard_normal(SMALL - 1)
    at, above = (_serial_loses_what_chunks_keep(n, p, rng) for n in (SMALL, SMALL + 4321))
    for x in (at, above):
        assert _serial(x, p) != _chunked(x, p)  # the two paths differ here
    total = 0.0
    for part in (_serial(below, p), _chunked(at, p), _chunked(above, p)):
        total += part
    assert float(clip.total_norm([below, at, above], p, backend="numba")) == finish(total, p)
    for x in (at, above):
        assert float(clip.total_norm([x], p, backend="numba")) == finish(_chunked(x, p), p)
    assert float(clip.total_norm([below], p, backend="numba")) == finish(_serial(below, p), p)
    differs = False  # and Numba's scaled pass gives other bits, for some of these inputs
    for _ in range(5):
        x = rng.standard_normal(SMALL + 4321)
        m = nb._max_abs_all([x])
        differs |= finish(nb._sum([x], p, m, nb._SCALED), p, m) != finish(_chunked(x, p), p)
    assert differs


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_sum_from_tiny_sum_up_is_used_unscaled_and_below_it_scaled(backend):
    """|2^-300|^3 = 2^-900 = TINY_SUM, the least sum trusted unscaled: its root (2^-900)^(1/3) is a few ulps
    from 2^-300, which the scaled pass gives exactly. The rule, not the better value, fixes the bits."""
    x = np.array([2.0 ** -300])
    unscaled = finish(TINY_SUM, 3.0)
    assert unscaled != 2.0 ** -300
    assert float(clip.total_norm([x], 3.0, backend=backend)) == unscaled
    below = np.array([0.9 * 2.0 ** -300])  # a sum in [TINY_SUM / 2, TINY_SUM): scaled, which gives |x| itself
    assert finish(float(below[0]) ** 3, 3.0) != below[0]
    assert float(clip.total_norm([below], 3.0, backend=backend)) == below[0]
    padded = np.concatenate([np.ones(SMALL), x, np.ones(9)])  # numba's kernel path for the segments
    offsets = np.array([0, SMALL, SMALL + 1, padded.size])
    norms = clip.segment_norms(padded, offsets, 3.0, backend=backend)
    assert norms[1] == (np.array([TINY_SUM]) ** (1.0 / 3.0))[0]


def _with_log(target):
    """A float64 whose math.log is exactly `target` and that exp(target) does not give back."""
    back = math.exp(target)
    for direction in (math.inf, 0.0):
        x = back
        for _ in range(5000):
            x = float(np.nextafter(x, direction))
            if math.log(x) == target:
                return x
    raise AssertionError(f"no float64 has log {target!r} here")


def test_the_root_goes_through_logs_exactly_within_a_factor_e_of_the_overflow():
    """scaled_root(power_sum, p, scale): the direct product scale·power_sum^(1/p) unless the root or the result is
    within a factor e of float64's largest value (log > _LOG_MAX - 1), then exp(log(power_sum)/p + log(scale)),
    and inf past it. Each case is at a boundary or between the boundary and its neighbours, with values whose
    two routes give different bits."""
    for log in (_LOG_MAX - 1.0, _LOG_MAX - 1.5):  # at the margin and below it: direct
        s = _with_log(log)
        assert math.exp(log) != s
        assert scaled_root(s, 1.0, 1.0) == s  # the root's log
        assert scaled_root(1.0, 1.0, s) == s  # the result's log
    for log in (_LOG_MAX - 0.5, _LOG_MAX - 1e-9):  # inside the margin: through the logs
        s = _with_log(log)
        assert scaled_root(s, 1.0, 1.0) == math.exp(log) != s
        assert scaled_root(1.0, 1.0, s) == math.exp(log) != s
    biggest = float(np.finfo(np.float64).max)
    assert math.log(biggest) == _LOG_MAX
    assert scaled_root(1.0, 1.0, biggest) == math.exp(_LOG_MAX) < math.inf  # at the overflow itself: finite
    assert scaled_root(2.0, 1.0, biggest) == math.inf


def test_the_default_backend_switches_to_numba_at_numba_min_elements():
    rng = np.random.default_rng(5)
    n = NUMBA_FROM
    for size, backend in ((n - 1, "numpy"), (n, "numba"), (2 * n - 1, "numba"), (2 * n, "numba")):
        x = next(x for x in (rng.standard_normal(size).astype(np.float32) for _ in range(50))
                 if float(clip.total_norm([x], backend="numpy")) != float(clip.total_norm([x], backend="numba")))
        assert float(clip.total_norm([x])) == float(clip.total_norm([x], backend=backend)), size


def _kernel_segment_norms(x, offsets, p):
    """Each segment cut into CHUNK pieces from its own start, the pieces' sums added in order, then NumPy's
    array power (** 0.5 is NumPy's sqrt)."""
    want = []
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        total = 0.0
        for start in range(lo, hi, CHUNK):
            total += float(nb._reduce(x[start:min(start + CHUNK, hi)], p, 1.0, _mode(p)))
        want.append((np.array([total]) ** (1.0 / p))[0])
    return want


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_numba_segment_norms_add_each_segments_chunks_in_order(p):
    """From SMALL elements up, each segment is cut into CHUNK pieces from its own start; a segment's pieces are
    added in order and the root taken as NumPy's array power. Segments here straddle chunk boundaries, and one
    is empty. Below SMALL, Numba gives the reference's bits. The input is the first of a few random draws on
    which the reference's bits and the kernel's differ, above and below SMALL, and a segment's total_norm differs
    too (which draw that is depends on the machine's SIMD width)."""
    rng = np.random.default_rng(11)
    offsets = np.array([0, 5000, 5000, 20000, 3 * CHUNK + 7, SMALL + 300])
    cut = np.append(offsets[:-1], SMALL - 1)
    at_cut = np.append(offsets[:-1], SMALL)  # exactly SMALL elements: the kernel too
    for _ in range(50):
        x = rng.standard_normal(SMALL + 300)
        want = _kernel_segment_norms(x, offsets, p)
        below, at = x[:SMALL - 1], x[:SMALL]
        if ((numpy_backend.segment_norms(x, offsets, p) != want).any()
                and numpy_backend.segment_norms(below, cut, p).tolist() != _kernel_segment_norms(below, cut, p)
                and numpy_backend.segment_norms(at, at_cut, p).tolist() != _kernel_segment_norms(at, at_cut, p)
                and any(float(numpy_backend.total_norm([x[lo:hi]], p)) != w
                        for lo, hi, w in zip(offsets[:-1], offsets[1:], want) if hi > lo)):
            break
    else:
        raise AssertionError("no draw on which the reference's bits and the kernel's differ")
    assert clip.segment_norms(x, offsets, p, backend="numba").tolist() == want
    assert clip.segment_norms(at, at_cut, p, backend="numba").tolist() == _kernel_segment_norms(at, at_cut, p)
    got_below = clip.segment_norms(below, cut, p, backend="numba")  # below SMALL: the reference's bits
    assert got_below.tolist() == numpy_backend.segment_norms(below, cut, p).tolist()


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_reference_segment_norms_are_one_reduceat_sum_per_segment(p):
    """np.add.reduceat over |x|^p (x·x for p = 2), then NumPy's array power: a segment whose sum is safe is not
    recomputed by total_norm, which for p = 2 takes BLAS's dot, other bits."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal(5000)
    offsets = np.array([0, 1000, 1000, 2500, 5000])
    magnitude = np.abs(x)
    keep = np.diff(offsets) > 0
    sums = np.add.reduceat(magnitude * magnitude if p == 2.0 else magnitude ** p, offsets[:-1][keep])
    want = np.zeros(len(offsets) - 1)
    want[keep] = sums ** (1.0 / p)
    got = clip.segment_norms(x, offsets, p, backend="numpy")
    assert got.tolist() == want.tolist()
    if p == 2.0:  # reduceat adds as np.sum does (pairwise); total_norm's x·x is BLAS's dot, other bits
        assert any(float(numpy_backend.total_norm([x[lo:hi]], p)) != w
                   for lo, hi, w in zip(offsets[:-1], offsets[1:], want) if hi > lo)
