"""The numba.cuda kernels of the CUDA backend (cuda_backend.py launches them): block reductions into
partials, one block that merges the partials in a fixed order and finishes the norm and the clip coefficient,
and the elementwise scale and clamp. Every reduction is deterministic: a thread's order and the tree are fixed,
and no atomics are used. Under NUMBA_ENABLE_CUDASIM=1 the same kernels run as Python threads, with small blocks.
"""
from __future__ import annotations

import math

from numba import config, cuda, float32, float64

from minigrad.clip import bfloat16
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
_bf16_value = cuda.jit(device=True)(bfloat16.value)
_bf16_bits = cuda.jit(device=True)(bfloat16.bits)


# Each elementwise kernel is built twice, around how it reads and writes an element: a float array's own
# elements, or a bfloat16 array seen as uint16 (bfloat16.py), decoded to float64 and rounded back from float32.
@cuda.jit(device=True)
def _get(x, i):  # pragma: no cover - compiled
    return x[i]


@cuda.jit(device=True)
def _put(x, i, v):  # pragma: no cover - compiled
    x[i] = v


@cuda.jit(device=True)
def _get_bf16(x, i):  # pragma: no cover - compiled
    # float64 on the simulator too: there a Python float times a NumPy float32 would be float32 (NEP 50), so the
    # product would be rounded before _put_bf16 rounds it to float32, as it is on the device
    return float64(_bf16_value(x[i]))


@cuda.jit(device=True)
def _put_bf16(x, i, v):  # pragma: no cover - compiled
    x[i] = _bf16_bits(float32(v))


def _for_both(make):
    """(the kernel over float arrays, the kernel over bfloat16 bits) from one kernel body."""
    return make(_get, _put), make(_get_bf16, _put_bf16)


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


def _make_block_reduce(get, put):
    @cuda.jit
    def block_reduce(x, kind, p, scale_buf, scaled, partials, offset):  # pragma: no cover - compiled
        """One partial per block: Σ (|x|/scale)^p (kind _SUM), max / min |x| or a count, accumulated in float64.

        Each thread takes x[i], x[i+g], x[i+2g], ... (g: the grid's size) in that order; the loop body loads
        four of them before adding any, so that four loads per thread are in flight (the order of the
        additions, and so the bits, are those of the plain one-at-a-time loop; docs/benchmarks.md has the
        timings)."""
        shared = cuda.shared.array(THREADS, float64)
        tid = cuda.threadIdx.x
        scale = scale_buf[0] if scaled else 1.0
        skip = scaled and not (0.0 < scale < math.inf)  # the scale alone decides the norm: no NaN from 0/0
        acc = math.inf if kind == _MIN else 0.0
        i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
        if not skip:
            while i + 3 * g < n:
                a, b, c, d = get(x, i), get(x, i + g), get(x, i + 2 * g), get(x, i + 3 * g)
                acc = _add(kind, p, scaled, scale, acc, a)
                acc = _add(kind, p, scaled, scale, acc, b)
                acc = _add(kind, p, scaled, scale, acc, c)
                acc = _add(kind, p, scaled, scale, acc, d)
                i += 4 * g
            while i < n:
                acc = _add(kind, p, scaled, scale, acc, get(x, i))
                i += g
        total = _block_total(shared, tid, kind, acc)
        if tid == 0:
            partials[offset + cuda.blockIdx.x] = total
    return block_reduce


_block_reduce, _block_reduce_bf16 = _for_both(_make_block_reduce)


def _make_block_sumsq(get, put):
    @cuda.jit
    def block_sumsq(x, partials, offset):  # pragma: no cover - compiled
        """block_reduce for the common case, Σ x² unscaled (p = 2, float32, float16 or bfloat16 input), with no
        branch on the order or the kind in the loop: one multiply-add per element, four loads in flight per
        thread."""
        shared = cuda.shared.array(THREADS, float64)
        tid = cuda.threadIdx.x
        acc = 0.0
        i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
        while i + 3 * g < n:
            a, b = float64(get(x, i)), float64(get(x, i + g))
            c, d = float64(get(x, i + 2 * g)), float64(get(x, i + 3 * g))
            acc += a * a
            acc += b * b
            acc += c * c
            acc += d * d
            i += 4 * g
        while i < n:
            v = float64(get(x, i))
            acc += v * v
            i += g
        total = _block_total(shared, tid, _SUM, acc)
        if tid == 0:
            partials[offset + cuda.blockIdx.x] = total
    return block_sumsq


_block_sumsq, _block_sumsq_bf16 = _for_both(_make_block_sumsq)


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


def _make_scale(get, put):
    @cuda.jit
    def scale(x, coef):  # pragma: no cover - compiled
        """x *= coef[0], four loads per thread in flight before the stores (as in block_reduce). For float16 and
        bfloat16 x the coefficient is float32: the product is taken in float32 and rounded once, as the CPU
        backends do."""
        c = coef[0]
        i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
        while i + 3 * g < n:
            a, b, d, e = get(x, i), get(x, i + g), get(x, i + 2 * g), get(x, i + 3 * g)
            put(x, i, a * c)
            put(x, i + g, b * c)
            put(x, i + 2 * g, d * c)
            put(x, i + 3 * g, e * c)
            i += 4 * g
        while i < n:
            put(x, i, get(x, i) * c)
            i += g
    return scale


_scale, _scale_bf16 = _for_both(_make_scale)


def _make_clamp(get, put):
    @cuda.jit(device=True)
    def clamp_one(x, i, v, lo, hi):  # pragma: no cover - compiled
        """Writes only an element out of [lo, hi]: the others (NaN among them) keep their bits."""
        if v < lo:
            put(x, i, lo)
        elif v > hi:
            put(x, i, hi)

    @cuda.jit
    def clamp(x, lo, hi):  # pragma: no cover - compiled
        """x = min(max(x, lo), hi) (NaN stays NaN), four loads per thread in flight before the stores; lo and hi
        are numbers of x's dtype (bfloat16 ones as float64)."""
        i, g, n = cuda.grid(1), cuda.gridsize(1), x.size
        while i + 3 * g < n:
            a, b, c, d = get(x, i), get(x, i + g), get(x, i + 2 * g), get(x, i + 3 * g)
            clamp_one(x, i, a, lo, hi)
            clamp_one(x, i + g, b, lo, hi)
            clamp_one(x, i + 2 * g, c, lo, hi)
            clamp_one(x, i + 3 * g, d, lo, hi)
            i += 4 * g
        while i < n:
            clamp_one(x, i, get(x, i), lo, hi)
            i += g
    return clamp


_clamp, _clamp_bf16 = _for_both(_make_clamp)


def _make_segment_block(get, put):
    @cuda.jit
    def segment_block(x, items, kind, p, scales, scaled, partials):  # pragma: no cover - compiled
        """One block per work item (segment, lo, hi): Σ (|x|/scale_segment)^p or max |x| over its range."""
        shared = cuda.shared.array(THREADS, float64)
        w, tid = cuda.blockIdx.x, cuda.threadIdx.x
        seg, lo, hi = items[w, 0], items[w, 1], items[w, 2]
        scale = scales[seg] if scaled else 1.0
        skip = scaled and not (0.0 < scale < math.inf)
        acc = 0.0
        i = lo + tid
        while i < hi and not skip:
            v = abs(float64(get(x, i)))
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
    return segment_block


_segment_block, _segment_block_bf16 = _for_both(_make_segment_block)


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


def _make_scale_items(get, put):
    @cuda.jit
    def scale_items(x, items, factors):  # pragma: no cover - compiled
        """One block per work item: x[lo:hi] *= factors[segment] (factors in x's dtype, float32 for float16 and
        bfloat16; 1 leaves the segment untouched)."""
        w = cuda.blockIdx.x
        f = factors[items[w, 0]]
        if f != 1:
            i = items[w, 1] + cuda.threadIdx.x
            while i < items[w, 2]:
                put(x, i, get(x, i) * f)
                i += THREADS
    return scale_items


_scale_items, _scale_items_bf16 = _for_both(_make_scale_items)
