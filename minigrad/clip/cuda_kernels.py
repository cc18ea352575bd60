"""The numba.cuda kernels of the CUDA backend (cuda_backend.py launches them): block reductions into
partials, one block that merges the partials in a fixed order and finishes the norm and the clip coefficient,
and the elementwise scale and clamp. Every reduction is deterministic: a thread's order and the tree are fixed,
and no atomics are used. Under NUMBA_ENABLE_CUDASIM=1 the same kernels run as Python threads, with small blocks.
"""
from __future__ import annotations

import math

from numba import config, cuda, float64

from minigrad.clip.pnorm import scaled_root

SIMULATED = bool(config.ENABLE_CUDASIM)
THREADS = 8 if SIMULATED else 256  # per block, a power of two; the simulator pays dearly for each syncthreads
_SUM, _MAX, _MIN, _COUNT = 0, 1, 2, 3


@cuda.jit(device=True)
def _merge(kind, a, b):  # pragma: no cover - compiled
    """Two partial results into one: a sum (or count), or a max / min in which NaN wins."""
    if kind == _SUM or kind == _COUNT:
        return a + b
    if kind == _MAX:
        return b if (b > a or b != b) else a
    return b if (b < a or b != b) else a


_scaled_root = cuda.jit(device=True)(scaled_root)  # scale · s^(1/p), inf only where that overflows


@cuda.jit(device=True)
def _block_total(shared, tid, kind, acc):  # pragma: no cover - compiled
    """Every thread's `acc` merged by a shared-memory tree; the block's total (read it in thread 0)."""
    shared[tid] = acc
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if tid < step:
            shared[tid] = _merge(kind, shared[tid], shared[tid + step])
        cuda.syncthreads()  # outside the branch: every thread of the block must reach it
        step //= 2
    return shared[0]


@cuda.jit(device=True)
def _finish_sum(acc, p, scale, scaled):  # pragma: no cover - compiled
    """scale · acc^(1/p) for a power sum; a special scale (0: all zeros or a zero for p < 0, inf, NaN) alone
    decides the norm."""
    if scaled and not (0.0 < scale < math.inf):
        return scale
    if p == 1.0:
        return scale * acc
    if p == 2.0:
        return scale * math.sqrt(acc)
    if acc != 0.0:
        return _scaled_root(acc, p, scale)
    return acc


@cuda.jit(device=True)
def _add(kind, p, scaled, scale, acc, x):  # pragma: no cover - compiled
    """acc with one element x merged in: |x| for a max / min, 1 for a non-zero (count), (|x|/scale)^p."""
    v = abs(float64(x))
    if kind == _MAX or kind == _MIN:
        return _merge(kind, acc, v)
    if kind == _COUNT:
        return acc + (0.0 if x == 0 else 1.0)
    if p < 0.0:  # scaled by the min: (|x|/m)^p = (m/|x|)^-p, which cannot overflow (|x| = inf gives 0)
        return acc + (scale / v) ** -p
    if scaled:
        v = v / scale
    return acc + (v * v if p == 2.0 else (v if p == 1.0 else v ** p))


@cuda.jit
def _block_reduce(x, kind, p, scale_buf, scaled, partials, offset):  # pragma: no cover - compiled
    """One partial per block: Σ (|x|/scale)^p (kind _SUM), max / min |x| or a count, accumulated in float64.

    Each thread takes x[i], x[i+g], x[i+2g], ... (g: the grid's size) in that order; the loop body loads four
    of them before adding any, so that four loads per thread are in flight (the order of the additions, and so
    the bits, are those of the plain one-at-a-time loop; docs/benchmarks.md has the timings)."""
    shared = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    scale = scale_buf[0] if scaled else 1.0
    skip = scaled and not (0.0 < scale < math.inf)  # the scale alone decides the norm: no NaN from 0/0
    acc = math.inf if kind == _MIN else 0.0
    i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
    if not skip:
        while i + 3 * g < n:
            a, b, c, d = x[i], x[i + g], x[i + 2 * g], x[i + 3 * g]
            acc = _add(kind, p, scaled, scale, acc, a)
            acc = _add(kind, p, scaled, scale, acc, b)
            acc = _add(kind, p, scaled, scale, acc, c)
            acc = _add(kind, p, scaled, scale, acc, d)
            i += 4 * g
        while i < n:
            acc = _add(kind, p, scaled, scale, acc, x[i])
            i += g
    total = _block_total(shared, tid, kind, acc)
    if tid == 0:
        partials[offset + cuda.blockIdx.x] = total


@cuda.jit
def _block_sumsq(x, partials, offset):  # pragma: no cover - compiled
    """_block_reduce for the common case, Σ x² unscaled (p = 2, float32 or float16 input), with no branch on the
    order or the kind in the loop: one multiply-add per element, four loads in flight per thread."""
    shared = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
    while i + 3 * g < n:
        a, b, c, d = float64(x[i]), float64(x[i + g]), float64(x[i + 2 * g]), float64(x[i + 3 * g])
        acc += a * a
        acc += b * b
        acc += c * c
        acc += d * d
        i += 4 * g
    while i < n:
        v = float64(x[i])
        acc += v * v
        i += g
    total = _block_total(shared, tid, _SUM, acc)
    if tid == 0:
        partials[offset + cuda.blockIdx.x] = total


@cuda.jit
def _finish(partials, count, kind, p, scale_buf, scaled, out, max_norm, coef32, coef64):  # pragma: no cover
    """One block merges the partials in a fixed order (thread t takes partials t, t + THREADS, ... in turn, then
    a fixed tree: the same bits on every run) and finishes the norm into out[0]; with max_norm >= 0 it also
    writes min(max_norm / (norm + 1e-6), 1) into coef32 and coef64, so a clip needs no further launch."""
    shared = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    acc = math.inf if kind == _MIN else 0.0
    j = tid
    while j < count:
        acc = _merge(kind, acc, partials[j])
        j += THREADS
    total = _block_total(shared, tid, kind, acc)
    if tid == 0:
        if kind == _SUM:
            total = _finish_sum(total, p, scale_buf[0] if scaled else 1.0, scaled)
        out[0] = total
        if max_norm >= 0.0:
            c = max_norm / (total + 1e-6)
            if not (c != c or c < 1.0):
                c = 1.0
            coef32[0] = c
            coef64[0] = c


@cuda.jit(device=True)
def _clamped(v, lo, hi):  # pragma: no cover - compiled
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return v


@cuda.jit
def _scale(x, coef):  # pragma: no cover - compiled
    """x *= coef[0], four loads per thread in flight before the stores (as in _block_reduce). For float16 x the
    coefficient is float32: the product is taken in float32 and rounded once, as the CPU backends do."""
    c = coef[0]
    i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
    while i + 3 * g < n:
        a, b, d, e = x[i], x[i + g], x[i + 2 * g], x[i + 3 * g]
        x[i], x[i + g], x[i + 2 * g], x[i + 3 * g] = a * c, b * c, d * c, e * c
        i += 4 * g
    while i < n:
        x[i] = x[i] * c
        i += g


@cuda.jit
def _clamp(x, lo, hi):  # pragma: no cover - compiled
    """x = min(max(x, lo), hi) (NaN stays NaN), four loads per thread in flight before the stores."""
    i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
    while i + 3 * g < n:
        a, b, c, d = x[i], x[i + g], x[i + 2 * g], x[i + 3 * g]
        x[i], x[i + g] = _clamped(a, lo, hi), _clamped(b, lo, hi)
        x[i + 2 * g], x[i + 3 * g] = _clamped(c, lo, hi), _clamped(d, lo, hi)
        i += 4 * g
    while i < n:
        x[i] = _clamped(x[i], lo, hi)
        i += g


@cuda.jit
def _segment_block(x, items, kind, p, scales, scaled, partials):  # pragma: no cover - compiled
    """One block per work item (segment, lo, hi): Σ (|x|/scale_segment)^p or max |x| over its range."""
    shared = cuda.shared.array(THREADS, float64)
    w, tid = cuda.blockIdx.x, cuda.threadIdx.x
    seg, lo, hi = items[w, 0], items[w, 1], items[w, 2]
    scale = scales[seg] if scaled else 1.0
    skip = scaled and not (0.0 < scale < math.inf)
    acc = 0.0
    i = lo + tid
    while i < hi and not skip:
        v = abs(float64(x[i]))
        if kind == _MAX:
            acc = _merge(kind, acc, v)
        else:
            if scaled:
                v = v / scale
            acc += v * v if p == 2.0 else (v if p == 1.0 else v ** p)
        i += THREADS
    total = _block_total(shared, tid, kind, acc)
    if tid == 0:
        partials[w] = total


@cuda.jit
def _segment_combine(partials, item_start, kind, p, scales, scaled, out):  # pragma: no cover - compiled
    """One thread per segment: its items' partials in order, finished into the segment's norm."""
    k = cuda.grid(1)
    if k >= out.size:
        return
    acc = 0.0
    for j in range(item_start[k], item_start[k + 1]):
        acc = _merge(kind, acc, partials[j])
    if kind == _SUM:
        acc = _finish_sum(acc, p, scales[k] if scaled else 1.0, scaled)
    out[k] = acc


@cuda.jit
def _unit_factors(weight_norms, grad_norms, clip_factor, eps, factors):  # pragma: no cover - compiled
    """AGC: limit = max(‖W‖, eps)·clip_factor; limit / max(‖G‖, 1e-6) where ‖G‖ >= limit, else 1."""
    k = cuda.grid(1)
    if k < factors.size:
        limit = max(weight_norms[k], eps) * clip_factor
        factors[k] = limit / max(grad_norms[k], 1e-6) if grad_norms[k] >= limit else 1.0


@cuda.jit
def _scale_items(x, items, factors):  # pragma: no cover - compiled
    """One block per work item: x[lo:hi] *= factors[segment] (factors in x's dtype; 1 leaves it untouched)."""
    w = cuda.blockIdx.x
    f = factors[items[w, 0]]
    if f != 1:
        i = items[w, 1] + cuda.threadIdx.x
        while i < items[w, 2]:
            x[i] = x[i] * f
            i += THREADS
