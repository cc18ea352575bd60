"""The tensor API of ordinary RNN scripts (torch's names, arguments and dtype rules): every differentiable method
passes gradcheck in float64, and values, dtypes and gradients equal torch's; bad input gets torch's exception
type and changes nothing."""
import math

import numba
import numpy as np
import pytest

import minigrad as mg
from minigrad.gradcheck import gradcheck

RNG = np.random.default_rng(0)
X34 = RNG.standard_normal((3, 4))
X34B = RNG.standard_normal((3, 4))
X31 = RNG.standard_normal((3, 1))
X234 = RNG.standard_normal((2, 3, 4))
X243 = RNG.standard_normal((2, 4, 3))
MASK34 = RNG.random((3, 4)) < 0.5
IDX_REPEATS = np.array([[0, 0, 3], [2, 1, 2], [3, 3, 3]])
IDX_UNIQUE = np.array([[3, 0], [1, 2], [0, 3]])
ZERO_ROW = np.vstack([X34[:1], np.zeros((1, 4)), X34[2:]])  # a norm of exactly 0
UNIT_ROWS = np.array([[0.6, -0.8, 0.0], [0.0, 0.28, 0.96]])  # 2-norms of exactly 1
X0 = np.array(1.7)  # a 0-d tensor: torch takes dim 0 or -1 of it as the one dim of a 1-element vector
WITH_ZEROS = np.array([[0.5, 0.0, -2.0, 1.5], [0.0, 0.0, 3.0, -1.0], [1.2, -0.7, 0.9, 2.0]])
TIES = np.array([[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, 0.5, 0.5], [-1.0, 2.0, -1.0, 0.0]])  # amax/amin share ties
POSITIVE = np.abs(X34) + 0.5

# name -> (function of (lib, *tensors), input arrays); every input is float64 and differentiated
CASES = {
    "t": (lambda lib, x: x.t(), [X34]),
    "cat-one-tensor": (lambda lib, x: lib.cat([x], -1), [X34]),
    "cat-last-dim": (lambda lib, x, y: lib.cat([x, y], -1), [X34, X31]),
    "stack-last-dim": (lambda lib, x, y: lib.stack([x, y], -1), [X34, X34B]),
    "T": (lambda lib, x: x.T * 2, [X234]),
    "narrow": (lambda lib, x: x.narrow(1, 1, 2), [X34]),
    "narrow-negative-start": (lambda lib, x: x.narrow(0, -2, 2), [X34]),
    "select": (lambda lib, x: x.select(1, -1), [X234]),
    "expand": (lambda lib, x: x.expand(2, 3, 4), [X31]),
    "expand-keep": (lambda lib, x: x.expand(-1, 5), [X31]),
    "expand_as": (lambda lib, x, y: x.expand_as(y) * y, [X31, X34]),
    "repeat": (lambda lib, x: x.repeat(2, 1, 2), [X34]),
    "flip": (lambda lib, x: x.flip(0) * lib.arange(4.0, dtype=lib.float64), [X34]),
    "flip-two": (lambda lib, x: x.flip(0, 2), [X234]),
    "masked_fill": (lambda lib, x: x.masked_fill(lib.tensor(MASK34), 0.5), [X34]),
    "masked_fill-row": (lambda lib, x: x.masked_fill(lib.tensor(MASK34[0]), -1.0), [X34]),
    "where": (lambda lib, x, y: lib.where(lib.tensor(MASK34), x, y), [X34, X34B]),
    "where-broadcast": (lambda lib, x, y: lib.where(lib.tensor(MASK34), x, y), [X31, X34B]),
    "where-method": (lambda lib, x: x.where(lib.tensor(MASK34), 2.0), [X34]),
    "gather": (lambda lib, x: x.gather(1, lib.tensor(IDX_REPEATS)), [X34]),
    "gather-dim0": (lambda lib, x: x.gather(0, lib.tensor(IDX_UNIQUE.T[:, :3] % 3)), [X34]),
    "scatter": (lambda lib, x, s: x.scatter(1, lib.tensor(IDX_UNIQUE), s), [X34, X34B[:, :2].copy()]),
    "scatter-value": (lambda lib, x: x.scatter(1, lib.tensor(IDX_UNIQUE), 7.0), [X34]),
    "scatter_add": (lambda lib, x, s: x.scatter_add(1, lib.tensor(IDX_REPEATS), s), [X34, X34B[:, :3].copy()]),
    "index_select": (lambda lib, x: x.index_select(1, lib.tensor([3, 0, 3])), [X34]),
    "masked_select": (lambda lib, x: x.masked_select(lib.tensor(MASK34)), [X34]),
    "chunk": (lambda lib, x: x.chunk(2, 1)[0] * 2 + x.chunk(2, 1)[1] * 3, [X34]),
    "chunk-uneven": (lambda lib, x: lib.cat([c * (k + 1) for k, c in enumerate(x.chunk(3, 0))], 0), [X234]),
    "split": (lambda lib, x: lib.cat([p * (k + 1) for k, p in enumerate(x.split([1, 3], 1))], 1), [X34]),
    "split-size": (lambda lib, x: lib.cat([p * (k + 1) for k, p in enumerate(x.split(3, 1))], 1), [X34]),
    "unbind": (lambda lib, x: lib.stack([r * (k + 1) for k, r in enumerate(x.unbind(1))], 0), [X34]),
    "cumsum": (lambda lib, x: x.cumsum(1), [X34]),
    "cumsum-dim0": (lambda lib, x: x.cumsum(-3), [X234]),
    "cumprod": (lambda lib, x: x.cumprod(1), [X34]),
    "cumprod-zeros": (lambda lib, x: x.cumprod(1), [WITH_ZEROS]),
    "cumprod-dim0": (lambda lib, x: x.cumprod(0), [WITH_ZEROS]),
    "var": (lambda lib, x: x.var(), [X34]),
    "var-dim": (lambda lib, x: x.var(1, keepdim=True), [X34]),
    "var-biased": (lambda lib, x: x.var(0, unbiased=False), [X34]),
    "var-correction": (lambda lib, x: x.var((0, 2), correction=2), [X234]),
    "std": (lambda lib, x: x.std(), [X34]),
    "std-dim": (lambda lib, x: x.std(dim=1), [X234]),
    "logsumexp": (lambda lib, x: x.logsumexp(1), [X34 * 30]),
    "logsumexp-keep": (lambda lib, x: x.logsumexp((0, 2), keepdim=True), [X234]),
    "topk": (lambda lib, x: x.topk(2, dim=1).values, [X34]),
    "topk-smallest": (lambda lib, x: x.topk(3, dim=0, largest=False)[0], [X34]),
    "sort": (lambda lib, x: x.sort(dim=1).values, [X34]),
    "sort-descending": (lambda lib, x: x.sort(dim=0, descending=True)[0], [X34]),
    "sin": (lambda lib, x: x.sin(), [X34]),
    "cos": (lambda lib, x: x.cos(), [X34]),
    "sqrt": (lambda lib, x: (x * x + 0.5).sqrt(), [X34]),
    "reciprocal": (lambda lib, x: (x * x + 0.5).reciprocal(), [X34]),
    "triu": (lambda lib, x: x.triu(1), [X34]),
    "tril": (lambda lib, x: x.tril(-1), [X234]),
    "mm": (lambda lib, x, y: x.mm(y.t()), [X34, X34B]),
    "bmm": (lambda lib, x, y: x.bmm(y), [X234, X243]),
    "dot": (lambda lib, x, y: x[0].dot(y[1]), [X34, X34B]),
    "movedim": (lambda lib, x: x.movedim(0, 2), [X234]),
    "movedim-two": (lambda lib, x: x.movedim((0, 1), (2, 0)), [X234]),
    "flatten": (lambda lib, x: x.flatten(1), [X234]),
    "squeeze-tuple": (lambda lib, x: x.unsqueeze(0).unsqueeze(2).squeeze((0, 2)), [X34]),
    "add-alpha": (lambda lib, x, y: x.add(y, alpha=2.5), [X34, X34B]),
    "sub-alpha": (lambda lib, x, y: lib.sub(x, y, alpha=-1.5), [X34, X34B]),
    "einsum-matmul": (lambda lib, x, y: lib.einsum("ij,kj->ik", x, y), [X34, X34B]),
    "einsum-batch": (lambda lib, x, y: lib.einsum("bij,bjk->bik", x, y), [X234, X243]),
    "einsum-dot": (lambda lib, x, y: lib.einsum("ij,ij->", x, y), [X34, X34B]),
    "einsum-transpose": (lambda lib, x: lib.einsum("ij->ji", x), [X34]),
    "einsum-implicit": (lambda lib, x, y: lib.einsum("ij,jk", x, y), [X34, X243[0]]),
    "einsum-ellipsis": (lambda lib, x, y: lib.einsum("...ij,jk->...ik", x, y), [X234, X34B.T.copy()]),
    "einsum-rowsum": (lambda lib, x: lib.einsum("ij->i", x), [X34]),
    "einsum-ellipsis-ranks": (lambda lib, x, y: lib.einsum("...ij,...jk->...ik", x, y), [X234, X34B.T.copy()]),
    "einsum-outer-list": (lambda lib, x, y: lib.einsum("i,j->ij", [x[0], y[1]]), [X34, X34B]),
    "0d-sum": (lambda lib, x: x.sum(0) * x.sum(-1, keepdim=True), [X0]),
    "0d-mean": (lambda lib, x: x.mean(dim=0), [X0]),
    "0d-max-min": (lambda lib, x: x.max(0)[0] * 2 + x.min(-1, keepdim=True).values, [X0]),
    "0d-var": (lambda lib, x: x.var(0, correction=0) + x, [X0]),
    "0d-logsumexp": (lambda lib, x: x.logsumexp(0), [X0]),
    "0d-norm": (lambda lib, x: x.norm(dim=0) + x.norm(3, dim=-1), [X0]),
    "0d-cumsum-cumprod": (lambda lib, x: x.cumsum(0) * x.cumprod(-1), [X0]),
    "0d-sort-topk": (lambda lib, x: x.sort(0).values + x.topk(1, 0)[0] * 2, [X0]),
    "0d-softmax": (lambda lib, x: x.log_softmax(0) + x.softmax(-1) + x, [X0]),
    "0d-flip-transpose-movedim": (lambda lib, x: x.flip(0) + x.transpose(0, -1) * 2 + x.movedim(0, -1) * 3, [X0]),
    "clamp_min-clamp_max": (lambda lib, x: x.clamp_min(-0.3) * lib.clamp_max(x, 0.4), [X34]),
    "addcmul": (lambda lib, x, y, z: x.addcmul(y, z, value=0.5) + lib.addcmul(x, y, z), [X34, X34B, X31]),
    "addcdiv": (lambda lib, x, y, z: lib.addcdiv(x, y, z * z + 1, value=-2.0), [X34, X34B, X31]),
    "lerp": (lambda lib, x, y: x.lerp(y, 0.3) * lib.lerp(x, y, 0.8), [X34, X34B]),
    "lerp-tensor-weight": (lambda lib, x, y, w: x.lerp(y, w.sigmoid()), [X34, X34B, X31]),
    "in-place-addcmul_-addcdiv_": (lambda lib, x, y, z: x.clone().addcmul_(y, z, value=0.5).addcdiv_(x, z * z + 1),
                                   [X34, X34B, X31]),
    "in-place-lerp_-clamps": (lambda lib, x, y: x.clone().lerp_(y, 0.25).clamp_min_(-0.4).clamp_max_(0.6) * x,
                              [X34, X34B]),
    "maximum-minimum": (lambda lib, x, y: lib.maximum(x, y) * 2 + x.minimum(y) * 3, [X34, X34B]),
    "maximum-ties-broadcast": (lambda lib, x, y: lib.maximum(x.clamp(-0.5, 0.5), y.clamp(-0.5, 0.5)), [X34, X31]),
    "maximum-minimum-ties": (lambda lib, x, y: lib.maximum(x, y) * 2 + x.minimum(y) * 3,
                             [np.array([1.0, 2.0, 3.0, -1.0]), np.array([1.0, 1.0, 4.0, -1.0])]),
    "floor-ceil-round-trunc": (lambda lib, x: (x * 3).floor() * x + (x * 3).ceil() + lib.round(x * 3) * x
                               + (x * 3).trunc() + (x * 3).round(decimals=1) * x, [X34]),
    "remainder": (lambda lib, x, y: (x * 5) % (y.abs() + 0.5) + lib.remainder(x, 0.3),
                  [X34, X34B]),
    "remainder-negative-divisor": (lambda lib, x, y: (x * 5) % -(y.abs() + 0.5), [X34, X31]),
    "outer": (lambda lib, x, y: lib.outer(x[0], y[1]), [X34, X34B]),
    "repeat_interleave": (lambda lib, x: x.repeat_interleave(2, dim=1) * lib.arange(8.0, dtype=lib.float64), [X34]),
    "repeat_interleave-counts": (lambda lib, x: x.repeat_interleave(lib.tensor([1, 0, 3]), dim=0), [X34]),
    "repeat_interleave-flat": (lambda lib, x: lib.repeat_interleave(x, 2), [X31]),
    "norm-function": (lambda lib, x: lib.norm(x, dim=1) + lib.norm(x), [X34]),
    "norm-orders": (lambda lib, x: x.norm(1, dim=0) + x.norm(3, dim=0) + x.norm(0.5, dim=0, keepdim=True)[0]
                    + x.norm(float("inf"), dim=0) + x.norm(-float("inf"), dim=0), [X34]),
    "norm-zero-row-leaf": (lambda lib, x: x.norm(dim=1) + x.norm(3, dim=1) + x.norm(0.5, dim=1), [ZERO_ROW]),
    "norm-zero-elements": (lambda lib, x: x.norm(0.5, dim=1) + x.norm(1.5, dim=1), [WITH_ZEROS]),
    "norm-exactly-one": (lambda lib, x: x.norm(dim=1) + x.norm(3, dim=1), [UNIT_ROWS]),
    "cumprod-length-two": (lambda lib, x: x[:2].cumprod(0), [X34]),
    "einsum-a-constant-operand": (lambda lib, x: lib.einsum("ij,jk->ik", lib.tensor(X34B), x.t()), [X34]),
    "norm-of-a-zero-row": (lambda lib, x: (x * lib.tensor([[1.0], [0.0], [1.0]], dtype=lib.float64)).norm(dim=1)
                           + (x * 0).norm(3, dim=1), [X34]),
    "log1p-expm1": (lambda lib, x: (x * x).log1p() + (x * 0.1).expm1(), [X34]),
    "activations": (lambda lib, x: lib.nn.functional.leaky_relu(x, 0.2) + lib.nn.functional.elu(x * 2, 0.5)
                    + lib.nn.functional.softplus(x * 8, beta=2, threshold=5) + lib.nn.functional.silu(x)
                    + lib.nn.functional.logsigmoid(x * 5) + lib.nn.functional.hardtanh(x, -0.5, 0.8), [X34]),
    "index-negative-arrays": (lambda lib, x: x[lib.tensor([-1, 0, -1])] * 2 + x[lib.tensor([-3, -2])].sum(), [X34]),
    "index-two-arrays": (lambda lib, x: x[lib.tensor([0, 2, 0]), lib.tensor([1, 3, 1])]
                         + x[lib.tensor([0, 2, 1]), lib.tensor([-1, 3, 1])].sum(), [X34]),
    "expand-new-dims-keep": (lambda lib, x: x.expand(2, -1, 4) * lib.arange(8.0, dtype=lib.float64).reshape(2, 1, 4),
                             [X31]),
    "repeat-as-many-as-dims": (lambda lib, x: x.repeat(2, 3), [X34]),
    "softmax-empty-rows": (lambda lib, x: x[:, :0].softmax(1).sum() + x[:0].log_softmax(0).sum() + x.sum(), [X34]),
    "0d-gather-index_select": (lambda lib, x: x.gather(0, lib.tensor(0)) + x.index_select(-1, lib.tensor([0])) * 2,
                               [X0]),
    "amax-amin": (lambda lib, x, y: x.amax(1) + x.amin(0).sum() + lib.amax(y, (0, 1), keepdim=True).sum() * 2,
                  [X34, X234]),
    "amax-all": (lambda lib, x: x.amax() + lib.amin(x) * 3, [X234]),
    "max-min-all": (lambda lib, x: x.max() * 2 + x.min(), [X34]),
    "prod": (lambda lib, x: x.prod(1) + lib.prod(x, 0, keepdim=True).sum() + x.prod() * 3, [X34]),
    "prod-with-zeros": (lambda lib, x: x.prod(1) + x[1].prod() + x.prod(0).sum() * 2, [WITH_ZEROS]),
    "prod-3d": (lambda lib, x: x.prod(-2), [X234]),
    "prod-cumprod-dims-of-two-and-one": (lambda lib, x: x[:2].prod(0) + x[:, :1].prod(1).sum() * 2
                                         + x[:, :1].cumprod(1).sum() * 3, [X34]),
    "square-rsqrt": (lambda lib, x: x.square() + x.rsqrt() * 2 + lib.square(x) * lib.rsqrt(x), [POSITIVE]),
    "roll": (lambda lib, x: x.roll(1, 1) * lib.arange(4.0, dtype=lib.float64) + lib.roll(x, (-1, 5), (0, -1)), [X34]),
    "roll-flat": (lambda lib, x: x.roll(-2) * lib.arange(24.0, dtype=lib.float64).reshape(2, 3, 4), [X234]),
    "mT-reshape_as": (lambda lib, x, y: x.mT * 2 + y.reshape_as(x.mT), [X234, X243]),
    "erf-gelu": (lambda lib, x: x.erf() + lib.erf(x * 3) + lib.nn.functional.gelu(x * 2) * 2
                 + lib.nn.GELU("tanh")(x * 2) * 3 + lib.nn.functional.gelu(x, approximate="tanh"), [X34]),
    "pad": (lambda lib, x: lib.nn.functional.pad(x, (1, 2, -1, 1), value=0.5) * 3, [X234]),
    "pad-three-dims-and-cuts": (lambda lib, x: lib.nn.functional.pad(x, (0, -2, 2, 0, 1, 1)), [X234]),
    "div-rounding-modes": (lambda lib, x, y: lib.div(x * 5, y, rounding_mode="floor") * x
                           + x.div(-(y.abs() + 0.5), rounding_mode="trunc") + x, [X34, X34B]),
    "max-min-of-two-tensors": (lambda lib, x, y: lib.max(x, y) * 2 + x.min(y) * 3 + lib.max(x[0, 0], y)
                               + lib.min(y, x[:1]), [X34, X34B]),
    "sum-mean-dtype": (lambda lib, x: x.sum(0, dtype=lib.float64) + lib.mean(x, 0, dtype=lib.float64), [X34]),
    "diag-vector": (lambda lib, x: lib.diag(x[0]) * lib.arange(16.0, dtype=lib.float64).reshape(4, 4), [X34]),
    "diag-vector-above": (lambda lib, x: x[0].diag(2), [X34]),
    "diag-vector-below": (lambda lib, x: lib.diag(x[1], -1), [X34]),
    "diag-matrix": (lambda lib, x: x.diag() * 2 + lib.diag(x, 1) + x.diag(-1)[:2].sum(), [X34]),
    "diag-matrix-offsets": (lambda lib, x: lib.cat([x.diag(3), x.diag(-2), x.diag(4), x.diag(-3)]), [X34]),
    "mv": (lambda lib, x, y: x.mv(y[0]) + lib.mv(x, y[1]), [X34, X34B]),
    "kl_div": (lambda lib, x, t: lib.nn.functional.kl_div(x.log_softmax(1), t.softmax(1), reduction="batchmean")
               + lib.nn.functional.kl_div(x, t, reduction="sum", log_target=True) * 2
               + lib.nn.KLDivLoss(reduction="none")(x.log_softmax(0), t.softmax(0)).sum(), [X34, X34B]),
    "kl_div-zero-targets": (lambda lib, x: lib.nn.functional.kl_div(x, lib.tensor(WITH_ZEROS.clip(0)),
                                                                     reduction="none"), [X34]),
    "unfold": (lambda lib, x: x.unfold(2, 2, 1) * lib.arange(2.0, dtype=lib.float64), [X234]),
    "unfold-step-and-dim": (lambda lib, x: x.unfold(1, 2, 2) + x.unfold(-1, 4, 3).sum(), [X234]),
    "nan_to_num": (lambda lib, x: x.masked_fill(lib.tensor(MASK34), np.nan).masked_fill(lib.tensor(~MASK34[0]), np.inf)
                   .masked_fill(lib.tensor(X34 < -1), -np.inf).nan_to_num(0.5, 7.0, -3.0) * x + lib.nan_to_num(x),
                   [X34]),
    "index_add": (lambda lib, x, s: x.index_add(1, lib.tensor([3, 0, 3]), s[:, :3], alpha=2.0), [X34, X34B]),
    "index_add_-in-place": (lambda lib, x, s: (x * 1).index_add_(0, lib.tensor([1, 1]), s[:2]), [X34, X34B]),
    "index_fill": (lambda lib, x: x.index_fill(1, lib.tensor([-1, 1]), 0.5) + x.index_fill(0, lib.tensor(2), -1.0),
                   [X34]),
    "index_put": (lambda lib, x, v: x.index_put((lib.tensor([0, 2]), lib.tensor([1, 3])), v[0, :2]), [X34, X34B]),
    "index_put-accumulate": (lambda lib, x, v: (x * 1).index_put_((lib.tensor([0, 0, 2]), lib.tensor([1, 1, 3])),
                                                                  v[1, :3], accumulate=True), [X34, X34B]),
    "index_put-accumulate-broadcast": (lambda lib, x, v: x.index_put((lib.tensor([1, 1]),), v[0], accumulate=True),
                                       [X34, X34B]),
    "kthvalue": (lambda lib, x: x.kthvalue(2, 1).values + x.kthvalue(3, dim=0, keepdim=True)[0].sum(), [X34]),
    "median": (lambda lib, x: x.median(1).values * 2 + x.median() + lib.median(x, 0, keepdim=True)[0].sum(), [X34]),
    "cosine_similarity": (lambda lib, x, y: lib.nn.functional.cosine_similarity(x, y)
                          + lib.nn.functional.cosine_similarity(x, y[:1], dim=0, eps=1e-3).sum(), [X34, X34B]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    fn, arrays = CASES[name]
    inputs = [mg.tensor(a.copy(), requires_grad=True) for a in arrays]
    assert gradcheck(lambda *xs: fn(mg, *xs), inputs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_dtypes_and_gradients_equal_torchs(torch, name):
    fn, arrays = CASES[name]
    results = []
    for lib in (mg, torch):
        inputs = [lib.tensor(a.copy(), requires_grad=True) for a in arrays]
        out = fn(lib, *inputs)
        upstream = np.random.default_rng(1).standard_normal(tuple(out.shape))
        out.backward(lib.tensor(upstream))
        results.append((out.detach().numpy(), str(out.dtype).replace("torch.", ""), tuple(out.shape),
                        [x.grad.numpy() for x in inputs]))
    (v1, d1, s1, g1), (v2, d2, s2, g2) = results
    assert s1 == s2 and d1 == d2
    np.testing.assert_allclose(v1, v2, rtol=1e-12, atol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_amax_amin_max_and_min_share_the_gradient_of_ties_as_torch(torch):
    results = []
    for lib in (mg, torch):
        x = lib.tensor(TIES.copy(), requires_grad=True)
        (x.amax(1) * lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64)).sum().backward()
        (x.amin(0).sum() + x[1].max() * 5 + x.min() * 7).backward()
        results.append(x.grad.numpy())
    np.testing.assert_array_equal(*results)


# ----- results without a gradient: indices, masks, creation ------------------------------------------------------
NO_GRAD = {
    "argsort": lambda lib: lib.tensor(X34).argsort(dim=1),
    "argsort-descending": lambda lib: lib.tensor(np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]]))
    .argsort(dim=1, descending=True, stable=True),
    "sort-ties-stable": lambda lib: lib.tensor(np.array([3, 1, 3, 1, 2])).sort(stable=True).indices,
    "sort-nan": lambda lib: lib.tensor(np.array([2.0, np.nan, -1.0])).sort(descending=True).indices,
    "sort-nan-ascending": lambda lib: lib.tensor(np.array([2.0, np.nan, -1.0])).sort().values,
    "topk-indices": lambda lib: lib.tensor(X34).topk(2).indices,
    "eq": lambda lib: lib.tensor(np.array([1, 2, 3])).eq(2),
    "ne-tensor": lambda lib: lib.tensor(np.array([1.0, 2.0])).ne(lib.tensor(np.array([1.0, 3.0]))),
    "and": lambda lib: lib.tensor(MASK34) & lib.tensor(~MASK34[0]),
    "or": lambda lib: lib.tensor(MASK34) | lib.tensor(MASK34[::-1].copy()),
    "invert": lambda lib: ~lib.tensor(MASK34),
    "any": lambda lib: lib.tensor(MASK34).any(1),
    "all": lambda lib: lib.tensor(MASK34).all(),
    "sign": lambda lib: lib.tensor(np.array([-2.0, 0.0, 3.0])).sign(),
    "cumsum-int": lambda lib: lib.tensor(np.array([1, 2, 3], dtype=np.int32)).cumsum(0),
    "new_zeros": lambda lib: lib.tensor(X34).new_zeros(2, 3),
    "new_ones-tuple": lambda lib: lib.tensor(np.arange(3)).new_ones((2,)),
    "new_full": lambda lib: lib.tensor(X34.astype(np.float32)).new_full((2, 2), 1.5),
    "new_tensor": lambda lib: lib.tensor(X34.astype(np.float32)).new_tensor([1, 2]),
    "new_tensor-dtype": lambda lib: lib.tensor(X34).new_tensor([1, 2], dtype=lib.int64),
    "LongTensor": lambda lib: lib.LongTensor([[1, 2], [3, 4]]),
    "FloatTensor": lambda lib: lib.FloatTensor([1.5, 2.5]),
    "DoubleTensor-size": lambda lib: lib.DoubleTensor(2, 3).zero_(),
    "one_hot": lambda lib: lib.nn.functional.one_hot(lib.tensor(np.array([2, 0, 1])), 4),
    "one_hot-inferred": lambda lib: lib.nn.functional.one_hot(lib.tensor(np.array([[1, 3], [0, 0]]))),
    "type-name": lambda lib: lib.tensor(np.arange(3.0)).type(),
    "type-cast": lambda lib: lib.tensor(np.array([1.7, -1.7])).type(lib.int64),
    "isnan-isinf-isfinite": lambda lib: lib.stack([f(lib.tensor(np.array([1.0, np.nan, np.inf, -np.inf])))
                                                   for f in (lib.isnan, lambda t: t.isinf(), lib.isfinite)]),
    "isnan-0d": lambda lib: lib.tensor(np.nan).isnan(),
    "isfinite-int": lambda lib: lib.isfinite(lib.tensor([1, 2])),
    "floor_divide": lambda lib: lib.tensor(np.array([-7, 7, 5])) // 2,
    "floor_divide-float": lambda lib: lib.tensor(np.array([-7.5, 7.0])) // lib.tensor(np.array([2.0, -2.0])),
    "rfloordiv": lambda lib: 7 // lib.tensor(np.array([2, -2])),
    "remainder-int": lambda lib: lib.tensor(np.array([-7, 7])) % 3,
    "rmod-int": lambda lib: 7 % lib.tensor(np.array([3, -3])),
    "floor-int": lambda lib: lib.tensor(np.array([-7, 7])).floor(),
    "round-half-even": lambda lib: lib.tensor(np.array([0.5, 1.5, 2.5, -0.5])).round(),
    "norm-0": lambda lib: lib.tensor(WITH_ZEROS).norm(0, dim=1),
    "expand-to-zero": lambda lib: lib.ones(1, 4).expand(0, 4),
    "repeat-zero-times": lambda lib: lib.ones(2, 3).repeat(0, 2),
    "0d-argmax": lambda lib: lib.tensor(X0).argmax(0),
    "0d-argmin-keepdim": lambda lib: lib.tensor(X0).argmin(-1, keepdim=True),
    "0d-max-indices": lambda lib: lib.tensor(X0).max(0).indices,
    "0d-argsort": lambda lib: lib.tensor(X0).argsort(0),
    "0d-any-all": lambda lib: lib.tensor(X0 > 1).any(0) & lib.tensor(X0 > 1).all(-1),
    "prod-int": lambda lib: lib.tensor(np.array([[2, -3], [4, 5]], dtype=np.int32)).prod(1),
    "prod-bool": lambda lib: lib.tensor(MASK34).prod(),
    "prod-empty": lambda lib: lib.ones(0, 3).prod(0),
    "prod-dtype": lambda lib: lib.tensor(np.array([2, 3])).prod(dtype=lib.float64),
    "amax-int": lambda lib: lib.tensor(np.array([[2, -3], [4, 5]])).amax(0),
    "amin-keepdim": lambda lib: lib.tensor(TIES).amin(-1, keepdim=True),
    "square-int": lambda lib: lib.tensor(np.array([-3, 2])).square(),
    "roll-int": lambda lib: lib.tensor(np.arange(6).reshape(2, 3)).roll((1, 1), (0, 1)),
    "roll-0d": lambda lib: lib.tensor(X0).roll(3),
    "isclose": lambda lib: lib.isclose(lib.tensor(np.array([1.0, 1.0 + 1e-6, np.nan, 2.0])),
                                       lib.tensor(np.array([1.0, 1.0, np.nan, 2.1]))),
    "isclose-tolerances": lambda lib: lib.tensor(np.array([1.0, np.nan])).isclose(
        lib.tensor(np.array([1.05, np.nan])), rtol=0.1, atol=0.0, equal_nan=True),
    "nonzero": lambda lib: lib.tensor(WITH_ZEROS).nonzero(),
    "nonzero-as-tuple": lambda lib: lib.stack(lib.tensor(WITH_ZEROS).nonzero(as_tuple=True)),
    "nonzero-0d": lambda lib: lib.nonzero(lib.tensor(X0)),
    "nonzero-0d-as-tuple": lambda lib: lib.tensor(X0).nonzero(as_tuple=True)[0],
    "argwhere": lambda lib: lib.argwhere(lib.tensor(MASK34)),
    "is_floating_point": lambda lib: lib.tensor([lib.tensor(X34).is_floating_point(), lib.is_floating_point(
        lib.tensor([1])), lib.tensor(MASK34).is_floating_point(), lib.tensor(X34).half().is_floating_point()]),
    "pad-int-value-cast": lambda lib: lib.nn.functional.pad(lib.tensor(np.array([1, 2])), (1, 1), value=2.7),
    "nelement-ndimension": lambda lib: lib.tensor([lib.tensor(X234).nelement(), lib.tensor(X234).ndimension()]),
    "Tensor-sizes": lambda lib: lib.Tensor(2, 3).zero_(),
    "Tensor-one-size": lambda lib: lib.Tensor(4).fill_(2),
    "Tensor-data-in-the-default-dtype": lambda lib: lib.Tensor([[1, 2], [3, 4]]),
    "Tensor-bools": lambda lib: lib.Tensor((True, False)),
    "Tensor-nothing": lambda lib: lib.Tensor(),
    "div-trunc-int": lambda lib: lib.div(lib.tensor(np.array([-7, 7, -6, 0, -1, 1, 5])), 2, rounding_mode="trunc"),
    "div-trunc-int-by-negatives": lambda lib: lib.tensor(np.array([-7, 7, -6, 6, -1])).div(
        lib.tensor(np.array([-2, -2, -3, -4, 3])), rounding_mode="trunc"),
    "div-trunc-int32": lambda lib: lib.tensor(np.array([-9, 9], dtype=np.int32)).div(4, rounding_mode="trunc"),
    "div-floor-int": lambda lib: lib.tensor(np.array([-7, 7, -6, -1])).div(2, rounding_mode="floor"),
    "div-floor-int-by-float": lambda lib: lib.div(lib.tensor(np.array([-7, 7])), 2.0, rounding_mode="floor"),
    "div-trunc-float32": lambda lib: lib.tensor(np.array([-7.5, 7.5, 1.0], dtype=np.float32)).div(
        2, rounding_mode="trunc"),
    "sum-dtype": lambda lib: lib.tensor(np.array([1, 2, 3])).sum(dtype=lib.float64),
    "sum-dtype-dim": lambda lib: lib.sum(lib.tensor(X34), 1, dtype=lib.float32),
    "mean-dtype-int": lambda lib: lib.tensor(np.array([[1, 2], [3, 6]])).mean(1, dtype=lib.float64),
    "mean-dtype-0d": lambda lib: lib.tensor(np.array(3)).mean(dtype=lib.float32),
    "logical-and-or-xor": lambda lib: lib.stack([f(lib.tensor(np.array([0.0, 0.5, 2.0, 0.0])),
                                                   lib.tensor(np.array([0, 0, 3, 1]))) for f in
                                                 (lib.logical_and, lib.logical_or, lib.logical_xor)]),
    "logical-methods": lambda lib: lib.tensor(np.array([1, 0])).logical_and(lib.tensor(np.array([1, 1])))
    ^ lib.logical_not(lib.tensor(np.array([0.0, 1.0]))).logical_or(lib.tensor(np.array([False, False]))),
    "comparison-functions": lambda lib: lib.stack([f(lib.tensor(X34), lib.tensor(X34B)) for f in
                                                   (lib.eq, lib.ne, lib.lt, lib.le, lib.gt, lib.ge)]),
    "allclose": lambda lib: lib.tensor([lib.allclose(lib.tensor(X34), lib.tensor(X34 + 1e-9)),
                                        lib.tensor(X34).allclose(lib.tensor(X34 + 1e-3)),
                                        lib.tensor([np.nan]).allclose(lib.tensor([np.nan]), equal_nan=True),
                                        lib.allclose(lib.tensor(X34), lib.tensor(X34 * 1.01), rtol=0.02)]),
    "randint_like": lambda lib: lib.randint_like(lib.zeros(2, 3), 1, 2),
    "randint_like-high-only": lambda lib: lib.randint_like(lib.zeros(2, dtype=lib.int64), 1),
    "finfo-iinfo": lambda lib: lib.tensor([lib.finfo().eps, lib.finfo(lib.float64).tiny, lib.finfo(lib.float16).max,
                                           lib.finfo(lib.float32).resolution, lib.iinfo(lib.int32).max,
                                           lib.iinfo(lib.int8).min], dtype=lib.float64),
    "format-0d": lambda lib: f"{lib.tensor(2.5):.3f}|{lib.tensor(7):>4}|{lib.tensor(1e-5):e}",
    "median-nan-and-ties": lambda lib: lib.stack(lib.tensor(np.array([[3.0, np.nan, 1.0, 2.0], [4.0, 4.0, 1.0, 0.0],
                                                                      [2.0, 1.0, 2.0, 1.0]])).median(1)),
    "median-empty": lambda lib: lib.zeros(0).median(),
    "median-all-with-nan": lambda lib: lib.tensor(np.array([1.0, np.nan, 0.0])).median(),
    "kthvalue-indices-int": lambda lib: lib.tensor(np.array([[5, 3, 9], [1, 7, 2]])).kthvalue(2).indices,
    "unfold-int-0d": lambda lib: lib.tensor(np.array(4)).unfold(0, 1, 1),
    "index_add-int": lambda lib: lib.zeros(3, dtype=lib.int64).index_add_(0, lib.tensor([0, 0, 2]),
                                                                         lib.tensor([1, 2, 3])),
    "index_fill-0d-index": lambda lib: lib.zeros(2, 3).index_fill_(1, lib.tensor(2), 1.0),
    "index_put-negative": lambda lib: lib.zeros(3, 2).index_put_((lib.tensor([-1]),), lib.tensor(1.0)),
    "nan_to_num-int": lambda lib: lib.tensor(np.array([1, 2])).nan_to_num(),
    "nan_to_num-defaults": lambda lib: lib.tensor(np.array([np.nan, np.inf, -np.inf, 2.0], dtype=np.float32))
    .nan_to_num(),
}


@pytest.mark.parametrize("name", sorted(NO_GRAD))
def test_results_without_gradient_equal_torchs(torch, name):
    ours, theirs = NO_GRAD[name](mg), NO_GRAD[name](torch)
    if isinstance(ours, str):
        assert ours == theirs
        return
    assert str(ours.dtype).replace("torch.", "") == str(theirs.dtype).replace("torch.", "")
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_multinomial_draws_each_rows_categories_at_their_rates():
    mg.manual_seed(0)
    probs = mg.tensor(np.array([[0.0, 1.0, 3.0], [5.0, 0.0, 5.0]]))
    draws = probs.multinomial(4000, replacement=True)
    assert draws.dtype == np.int64 and draws.shape == (2, 4000)
    counts = [np.bincount(r, minlength=3) / 4000 for r in draws.numpy()]
    np.testing.assert_allclose(counts[0], [0.0, 0.25, 0.75], atol=0.03)
    np.testing.assert_allclose(counts[1], [0.5, 0.0, 0.5], atol=0.03)
    once = mg.tensor(np.array([1.0, 1.0, 1.0])).multinomial(3)
    assert sorted(once.tolist()) == [0, 1, 2]  # without replacement: each category once


def test_bernoulli_and_the_like_constructors_draw_what_torchs_draw(torch):
    """bernoulli draws 1 at each element's rate (or p's), in the input's dtype, reproducibly from a generator;
    bernoulli_ fills in place; rand_like/randn_like keep shape and dtype: as torch's (the draws differ)."""
    probs = np.array([0.0, 0.2, 0.9, 1.0], dtype=np.float32)
    g = mg.Generator().manual_seed(0)
    draws = mg.stack([mg.bernoulli(mg.tensor(probs), generator=g) for _ in range(3000)])
    assert draws.dtype == torch.bernoulli(torch.tensor(probs)).numpy().dtype == np.float32
    np.testing.assert_allclose(draws.mean(0).numpy(), probs, atol=0.03)
    assert set(np.unique(draws.numpy())) <= {0.0, 1.0}
    assert mg.equal(mg.bernoulli(mg.tensor(probs), generator=mg.Generator().manual_seed(5)),
                    mg.bernoulli(mg.tensor(probs), generator=mg.Generator().manual_seed(5)))
    x = mg.zeros(2000, dtype=mg.float64)
    assert x.bernoulli_(0.25) is x and x.dtype == np.float64 and abs(x.mean().item() - 0.25) < 0.04
    per = mg.zeros(3000, 2).bernoulli_(mg.tensor([[0.1, 0.8]]))
    np.testing.assert_allclose(per.mean(0).numpy(), [0.1, 0.8], atol=0.04)
    assert mg.ones(3).bernoulli(0.0).sum().item() == 0
    base = mg.tensor(X234.astype(np.float32))
    for fn in ("rand_like", "randn_like"):
        ours, theirs = getattr(mg, fn)(base), getattr(torch, fn)(torch.tensor(X234.astype(np.float32)))
        assert ours.shape == tuple(theirs.shape) and ours.dtype == np.float32 and not ours.requires_grad
        assert getattr(mg, fn)(base, dtype=mg.float64, requires_grad=True).requires_grad
    u = mg.rand_like(mg.zeros(5000)).numpy()
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    n = mg.randn_like(mg.zeros(5000)).numpy()
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05


def test_cuda_answers_without_a_gpu():
    assert mg.cuda.is_available() in (True, False)
    assert mg.cuda.device_count() == (1 if mg.cuda.is_available() else 0) or mg.cuda.device_count() > 1
    device = mg.device("cuda" if mg.cuda.is_available() else "cpu")
    assert mg.ones(2).to(device).device == device


# ----- bad input: torch's exception type, nothing changed ---------------------------------------------------------
BAD = {
    "narrow-past-end": (lambda lib, x: x.narrow(1, 3, 2), RuntimeError),
    "select-out-of-range": (lambda lib, x: x.select(0, 3), IndexError),
    "dim-out-of-range": (lambda lib, x: x.cumsum(2), IndexError),
    "transpose-dim": (lambda lib, x: x.transpose(0, 5), IndexError),
    "gather-index-out-of-bounds": (lambda lib, x: x.gather(1, lib.tensor(np.array([[4]]))), RuntimeError),
    "gather-negative-index": (lambda lib, x: x.gather(1, lib.tensor(np.array([[-1]]))), RuntimeError),
    "scatter-negative-index": (lambda lib, x: x.scatter_(1, lib.tensor(np.array([[-1]])), 1.0), RuntimeError),
    "scatter_add-negative-index": (lambda lib, x: x.scatter_add_(1, lib.tensor(np.array([[0, -4]])),
                                                                x[:1, :2].clone()), RuntimeError),
    "gather-float-index": (lambda lib, x: x.gather(1, lib.tensor(np.array([[1.0]]))), RuntimeError),
    "gather-index-dims": (lambda lib, x: x.gather(1, lib.tensor(np.array([1]))), RuntimeError),
    "scatter-index-too-large": (lambda lib, x: x.scatter(1, lib.tensor(np.array([[0]] * 4)), 1.0), RuntimeError),
    "index_select-2d-index": (lambda lib, x: x.index_select(0, lib.tensor(np.array([[0]]))), IndexError),
    "expand-incompatible": (lambda lib, x: x.expand(3, 5), RuntimeError),
    "expand-fewer-dims": (lambda lib, x: x.expand(4), RuntimeError),
    "repeat-fewer-dims": (lambda lib, x: x.repeat(2), RuntimeError),
    "masked_fill-float-mask": (lambda lib, x: x.masked_fill(lib.tensor(X34), 0.0), RuntimeError),
    "masked_fill-vector-value": (lambda lib, x: x.masked_fill(lib.tensor(MASK34), lib.ones(2)), RuntimeError),
    "mm-3d": (lambda lib, x: x.mm(lib.ones(4, 2, 2, dtype=lib.float64)), RuntimeError),
    "bmm-2d": (lambda lib, x: x.bmm(x), RuntimeError),
    "topk-k-too-large": (lambda lib, x: x.topk(5, dim=1), RuntimeError),
    "split-bad-sizes": (lambda lib, x: x.split([1, 2], 1), RuntimeError),
    "chunk-zero": (lambda lib, x: x.chunk(0), RuntimeError),
    "t-3d": (lambda lib, x: x.reshape(1, 3, 4).t(), RuntimeError),
    "einsum-operands": (lambda lib, x: lib.einsum("ij,jk->ik", x), RuntimeError),
    "einsum-subscripts": (lambda lib, x: lib.einsum("ijk->i", x), RuntimeError),
    "flatten-start-after-end": (lambda lib, x: x.flatten(1, 0), RuntimeError),
    "int-result-in-place": (lambda lib, x: lib.tensor(np.array([1, 2])).add_(0.5), RuntimeError),
    "cat-dim-out-of-range": (lambda lib, x: lib.cat([x], 2), IndexError),
    "cat-dim-below-range": (lambda lib, x: lib.cat([x, x], -3), IndexError),
    "cat-dims-differ": (lambda lib, x: lib.cat([x, x[0]], -1), RuntimeError),
    "stack-dim-out-of-range": (lambda lib, x: lib.stack([x], 3), IndexError),
    "stack-dim-below-range": (lambda lib, x: lib.stack([x, x], -4), IndexError),
    "max-empty-dim": (lambda lib, x: x[:, :0].max(1), IndexError),
    "min-empty-dim": (lambda lib, x: x[:0].min(0), IndexError),
    "argmax-empty-dim": (lambda lib, x: x[:0].argmax(0), IndexError),
    "argmin-empty": (lambda lib, x: x[:0].argmin(), IndexError),
    "masked_fill-mask-shape": (lambda lib, x: x.masked_fill(lib.tensor(MASK34[0, :2]), 0.0), RuntimeError),
    "where-values-shapes": (lambda lib, x: lib.where(lib.tensor([True]), x[0, :3], x[0, :2]), RuntimeError),
    "where-condition-and-input": (lambda lib, x: lib.where(lib.tensor(MASK34[0, :3]), x[0, :2], x[0, 0]),
                                  RuntimeError),
    "where-condition-and-other": (lambda lib, x: lib.where(lib.tensor(MASK34[0, :3]), x[0, 0], x[0, :2]),
                                  RuntimeError),
    "remainder-shapes": (lambda lib, x: x % x[:2], RuntimeError),
    "maximum-shapes": (lambda lib, x: lib.maximum(x, x[:2]), RuntimeError),
    "cat-sizes-differ": (lambda lib, x: lib.cat([x, x[:, :2]], 0), RuntimeError),
    "expand-first-dim": (lambda lib, x: x.expand(2, 4), RuntimeError),
    "expand-first-dim-after-new": (lambda lib, x: x.expand(2, 5, 4), RuntimeError),
    "gather-index-past-the-end-among-valid": (lambda lib, x: x.gather(1, lib.tensor(np.array([[0, 4]]))), RuntimeError),
    "scatter-index-past-the-end-among-valid": (lambda lib, x: x.scatter(1, lib.tensor(np.array([[4, 0]])), 1.0),
                                               RuntimeError),
    "0d-dim-1": (lambda lib, x: x[0, 0].sum(1), IndexError),
    "0d-dim-minus-2": (lambda lib, x: x[0, 0].cumsum(-2), IndexError),
    "1d-dim-1": (lambda lib, x: x[0].mean(1), IndexError),
    "1d-dim-minus-2": (lambda lib, x: x[0].max(-2), IndexError),
    "0d-narrow": (lambda lib, x: x[0, 0].narrow(0, 0, 1), RuntimeError),
    "0d-select": (lambda lib, x: x[0, 0].select(0, 0), IndexError),
    "0d-unbind": (lambda lib, x: x[0, 0].unbind(0), IndexError),
    "0d-split": (lambda lib, x: x[0, 0].split(1), RuntimeError),
    "0d-chunk": (lambda lib, x: x[0, 0].chunk(1), RuntimeError),
    "amax-empty": (lambda lib, x: x[:0].amax(), RuntimeError),
    "amax-empty-dim": (lambda lib, x: x[:, :0].amax(1), IndexError),
    "amin-dim-out-of-range": (lambda lib, x: x.amin(2), IndexError),
    "max-empty": (lambda lib, x: x[:0].max(), RuntimeError),
    "prod-dim-out-of-range": (lambda lib, x: x.prod(-3), IndexError),
    "roll-shifts-and-dims": (lambda lib, x: x.roll((1, 2), 0), RuntimeError),
    "roll-shifts-without-dims": (lambda lib, x: x.roll((1, 2)), RuntimeError),
    "roll-dim-out-of-range": (lambda lib, x: x.roll(1, 2), IndexError),
    "mT-1d": (lambda lib, x: x[0].mT, RuntimeError),
    "bernoulli-p-above-1": (lambda lib, x: x.bernoulli_(1.5), RuntimeError),
    "gelu-approximate": (lambda lib, x: lib.nn.functional.gelu(x, approximate="exact"), RuntimeError),
    "pad-odd-length": (lambda lib, x: lib.nn.functional.pad(x, (1,)), RuntimeError),
    "pad-too-long": (lambda lib, x: lib.nn.functional.pad(x, (1,) * 6), RuntimeError),
    "pad-cuts-too-much": (lambda lib, x: lib.nn.functional.pad(x, (-3, -2)), RuntimeError),
    "bernoulli-probabilities-below-0": (lambda lib, x: lib.bernoulli(x), RuntimeError),
    "div-rounding-mode": (lambda lib, x: x.div(2, rounding_mode="round"), RuntimeError),
    "div-rounding-mode-shapes": (lambda lib, x: lib.div(x, x[:2], rounding_mode="floor"), RuntimeError),
    "diag-3d": (lambda lib, x: x.reshape(1, 3, 4).diag(), RuntimeError),
    "mv-matrix-and-matrix": (lambda lib, x: x.mv(x), RuntimeError),
    "mv-vector": (lambda lib, x: lib.mv(x[0], x[0]), RuntimeError),
    "Tensor-data-then-sizes": (lambda lib, x: lib.Tensor([1.0], 2), TypeError),
    "Tensor-size-not-an-int": (lambda lib, x: lib.Tensor(2, "3"), TypeError),
    "Tensor-negative-size": (lambda lib, x: lib.Tensor(2, -1), RuntimeError),
    "set_num_threads-zero": (lambda lib, x: lib.set_num_threads(0), RuntimeError),
    "format-a-vector": (lambda lib, x: f"{x:.2f}", TypeError),
    "kl_div-reduction": (lambda lib, x: lib.nn.functional.kl_div(x, x, reduction="mean_over_batch"), ValueError),
    "KLDivLoss-reduction": (lambda lib, x: lib.nn.KLDivLoss(reduction="average")(x, x), ValueError),
    "unfold-size": (lambda lib, x: x.unfold(1, 5, 1), RuntimeError),
    "unfold-step": (lambda lib, x: x.unfold(1, 2, 0), RuntimeError),
    "kthvalue-k": (lambda lib, x: x.kthvalue(5, 1), RuntimeError),
    "kthvalue-0": (lambda lib, x: x.kthvalue(0), RuntimeError),
    "median-empty-dim": (lambda lib, x: x[:, :0].median(1), IndexError),
    "index_add_-source-shape": (lambda lib, x: x.index_add_(1, lib.tensor([0]), lib.ones(3, 2, dtype=lib.float64)),
                                RuntimeError),
    "index_add_-2d-index": (lambda lib, x: x.index_add_(1, lib.tensor([[0]]), lib.ones(3, 1, dtype=lib.float64)),
                            IndexError),
    "index_add_-float-index": (lambda lib, x: x.index_add_(1, lib.tensor([0.0]), lib.ones(3, 1, dtype=lib.float64)),
                               RuntimeError),
    "index_add_-negative-index": (lambda lib, x: x.index_add_(1, lib.tensor([-1]),
                                                              lib.ones(3, 1, dtype=lib.float64)), RuntimeError),
    "index_add_-index-past-the-end": (lambda lib, x: x.index_add_(1, lib.tensor([0, 7]),
                                                                  lib.ones(3, 2, dtype=lib.float64)), RuntimeError),
    "index_fill_-2d-index": (lambda lib, x: x.index_fill_(1, lib.tensor([[0]]), 1.0), RuntimeError),
    "index_fill_-index-past-the-end": (lambda lib, x: x.index_fill_(1, lib.tensor([1, 7]), 1.0), IndexError),
    "index_put_-not-a-tuple": (lambda lib, x: x.index_put_(lib.tensor([0]), lib.tensor(1.0, dtype=lib.float64)),
                               TypeError),
    "index_put_-values-shape": (lambda lib, x: x.index_put_((lib.tensor([0, 1]),), lib.ones(3, dtype=lib.float64),
                                                            accumulate=True), RuntimeError),
    "cosine_similarity-shapes": (lambda lib, x: lib.nn.functional.cosine_similarity(x, x[:, :3]), RuntimeError),
    # torch refuses an input that is the written-to tensor itself for these (not only a partial overlap)
    "scatter_add_-onto-itself": (lambda lib, x: x.scatter_add_(0, lib.tensor(np.tile(np.arange(3)[:, None], (1, 4))),
                                                               x), RuntimeError),
    "scatter_-onto-itself": (lambda lib, x: x.scatter_(1, lib.tensor(np.tile(np.arange(4), (3, 1))), x), RuntimeError),
    "index_add_-onto-itself": (lambda lib, x: x.index_add_(0, lib.tensor([0, 1, 2]), x), RuntimeError),
    "index_add_-onto-a-part-of-itself": (lambda lib, x: x.index_add_(0, lib.tensor([0, 1]), x[1:]), RuntimeError),
    "index_put_-onto-itself": (lambda lib, x: x.index_put_((lib.tensor([0, 1, 2]),), x), RuntimeError),
    "index_put_-accumulate-onto-itself": (lambda lib, x: x.index_put_((lib.tensor([0, 1, 2]),), x, accumulate=True),
                                          RuntimeError),
    "setitem-advanced-onto-itself": (lambda lib, x: x.__setitem__(lib.tensor([0, 1, 2]), x), RuntimeError),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_gets_torchs_exception_type_and_changes_nothing(name):
    fn, error = BAD[name]
    x = mg.tensor(X34.copy())
    before = x.numpy().copy()
    with pytest.raises(error):
        fn(mg, x)
    np.testing.assert_array_equal(x.numpy(), before)
    assert x._version == 0


@pytest.mark.parametrize("name", sorted(BAD))
def test_torch_raises_the_same_type(torch, name):
    fn, error = BAD[name]
    with pytest.raises(error):
        fn(torch, torch.tensor(X34.copy()))


def test_erf_and_gelu_in_float32_and_on_integers_as_torchs(torch):
    x = np.random.default_rng(4).standard_normal(2000).astype(np.float32) * 3
    for fn in (lambda lib, t: t.erf(), lambda lib, t: lib.nn.GELU()(t), lambda lib, t: lib.nn.GELU("tanh")(t)):
        ours, theirs = fn(mg, mg.tensor(x)), fn(torch, torch.tensor(x))
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=2e-6)  # float32 round-off
    ints = mg.erf(mg.tensor(np.array([0, 1, -2])))
    assert ints.dtype == torch.erf(torch.tensor([0, 1, -2])).numpy().dtype
    np.testing.assert_array_equal(ints.numpy(), torch.erf(torch.tensor([0, 1, -2])).numpy())
    with pytest.raises(RuntimeError, match="approximate"):
        mg.nn.GELU("exact")


def test_pad_supports_only_the_constant_mode():
    with pytest.raises(NotImplementedError, match="reflect"):
        mg.nn.functional.pad(mg.ones(2, 3), (1, 1), mode="reflect")


def test_var_of_one_element_is_nan_like_torchs():
    assert math.isnan(mg.tensor([2.0]).var().item())
    assert mg.tensor([2.0]).var(unbiased=False).item() == 0.0


def test_an_advanced_index_adds_its_gradient_into_a_non_contiguous_grad():
    """The sparse gradient of x[idx] adds into an existing .grad that is a transposed (non-contiguous) array."""
    x = mg.tensor(X34.copy(), requires_grad=True)
    x.grad = mg.tensor(np.arange(12.0).reshape(4, 3)).t()
    assert not x.grad.is_contiguous()
    x[mg.tensor([2, 0, 2]), mg.tensor([1, 3, 1])].sum().backward()  # two index arrays: flattened, then added
    want = np.arange(12.0).reshape(4, 3).T.copy()
    want[0, 3] += 1
    want[2, 1] += 2
    np.testing.assert_array_equal(x.grad.numpy(), want)


def test_autograd_backward_takes_several_outputs_as_torch(torch):
    """torch.autograd.backward: several outputs (one repeated: it counts twice), tensor and None gradients,
    and `inputs=` to accumulate into some leaves only."""
    results = []
    for lib in (mg, torch):
        a, b = lib.tensor(X34.copy(), requires_grad=True), lib.tensor(X34B.copy(), requires_grad=True)
        y, z = a * b, (a * a).sum()
        g = lib.tensor(X34B.copy() * 3)
        lib.autograd.backward([y, z, y], [g, None, g])
        lib.autograd.backward([(a * 3).sum(), (b * 2).sum()])  # no grad_tensors: 1 for each one-element output
        results.append((a.grad.numpy().copy(), b.grad.numpy().copy()))
        a.grad = b.grad = None
        lib.autograd.backward((a * b).sum(), inputs=[b])
        results.append((None if a.grad is None else a.grad.numpy(), b.grad.numpy().copy()))
    (ga, gb), (ha, hb), (ga2, gb2), (ha2, hb2) = results
    np.testing.assert_allclose(ga, ga2, rtol=1e-12)
    np.testing.assert_allclose(gb, gb2, rtol=1e-12)
    assert ha is None and ha2 is None
    np.testing.assert_allclose(hb, hb2, rtol=1e-12)


def test_autograd_backward_inputs_as_torch(torch):
    """autograd.backward(inputs=...): one tensor or a list; an input the outputs do not use keeps grad None; the
    leaf's .grad never aliases the caller's gradient (changing that tensor afterwards leaves .grad alone)."""
    results = []
    for lib in (mg, torch):
        a, b = lib.ones(3, requires_grad=True), lib.ones(3, requires_grad=True)
        unused = lib.ones(2, requires_grad=True)
        g = lib.full((3,), 2.0)
        lib.autograd.backward(b + 0, g, inputs=[b])  # b's gradient is g's values
        g.add_(1.0)
        lib.autograd.backward(b * 1, g, inputs=b)
        lib.autograd.backward((a * 2).sum(), inputs=[a, unused])
        results.append((a.grad.numpy().copy(), b.grad.numpy().copy(), unused.grad))
    for got, want in zip(results[0][:2], results[1][:2]):
        np.testing.assert_array_equal(got, want)
    assert results[0][2] is None and results[1][2] is None


def test_autograd_grad_of_an_output_with_respect_to_itself_is_its_grad_output(torch):
    """torch.autograd.grad(y, y, g) hands back g itself (no copy): a later change of g shows in the result."""
    for lib in (mg, torch):
        b = lib.ones(3, requires_grad=True)
        for out in (b, b * 1):
            g = lib.full((3,), 2.0)
            r = lib.autograd.grad(out, out, g)[0]
            g.add_(1.0)
            assert r.tolist() == [3.0, 3.0, 3.0], lib.__name__


def test_flip_gives_a_copy_as_torchs():
    x = mg.tensor([1.0, 2.0, 3.0])
    y = x.flip(0)
    y.add_(10.0)
    assert x.tolist() == [1.0, 2.0, 3.0] and y.tolist() == [13.0, 12.0, 11.0]


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, 0, float("inf"), "fro"])
def test_data_norm_as_torchs_for_the_gradient_norm_loop(torch, p):
    x = np.concatenate([X34, np.zeros((1, 4))]).astype(np.float32)
    ours, theirs = mg.tensor(x).data, torch.tensor(x).data
    np.testing.assert_allclose(ours.norm(p).item(), theirs.norm(p).item(), rtol=1e-6)
    assert ours.norm(p).dtype == np.float32
    for dim, keepdim in ((1, False), (0, True)):
        np.testing.assert_allclose(ours.norm(p, dim, keepdim), theirs.norm(p, dim, keepdim).numpy(), rtol=1e-6)


def test_kl_div_warns_about_mean_as_torch(torch):
    for lib in (mg, torch):
        x = lib.tensor(X34).log_softmax(1)
        with pytest.warns(UserWarning, match="batchmean"):
            lib.nn.functional.kl_div(x, x.exp())


def test_script_header_flags_are_kept():
    threads = mg.get_num_threads()
    try:
        mg.set_num_threads(1)
        assert mg.get_num_threads() == 1
        mg.set_num_threads(10_000)  # more than Numba started with: capped, as torch caps at what it can
        assert mg.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        mg.set_num_threads(threads)
    mg.use_deterministic_algorithms(True)
    assert mg.are_deterministic_algorithms_enabled()
    mg.use_deterministic_algorithms(False)
    assert not mg.are_deterministic_algorithms_enabled()
    assert not mg.backends.mps.is_available() and not mg.backends.cudnn.is_available()


def test_cosine_similarity_of_a_norm_below_eps_has_torchs_gradient(torch):
    """torch clamps the norms outside autograd: the gradient is not the derivative of the clamped function (so
    no gradcheck), and a norm of 0 gives the direct term only."""
    x1, x2 = np.vstack([X34[:2] * 1e-5, np.zeros((1, 4))]), X34B
    results = []
    for lib in (mg, torch):
        a, b = lib.tensor(x1, requires_grad=True), lib.tensor(x2, requires_grad=True)
        out = lib.nn.functional.cosine_similarity(a, b, eps=1e-4)
        out.backward(lib.tensor(np.array([1.0, 2.0, 3.0])))
        results.append([out.detach().numpy(), a.grad.numpy(), b.grad.numpy()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_variable_strides_and_sizes_as_torchs(torch):
    for lib in (mg, torch):
        t = lib.ones(2, dtype=lib.float64)
        v = lib.autograd.Variable(t, requires_grad=True)
        assert v is not t and v.is_leaf and v.requires_grad and not t.requires_grad
        v.data[0] = 5.0  # the same memory
        assert t[0].item() == 5.0 and not lib.autograd.Variable(t).requires_grad
        x = lib.zeros(2, 3, 4, dtype=lib.float64)
        assert x.stride() == (12, 4, 1) and x.transpose(0, 2).stride() == (1, 4, 12) and x.stride(1) == 4
        assert x.element_size() == 8 and x.itemsize == 8 and x.nbytes == 192
        assert lib.zeros(3, dtype=lib.int16).element_size() == 2
    with pytest.raises(TypeError):
        mg.autograd.Variable(np.ones(2))


def test_index_put_accumulate_into_a_read_only_array_raises_torchs_error_and_changes_nothing():
    t = mg.zeros(3)
    t._data.flags.writeable = False
    with pytest.raises(RuntimeError, match="read-only"):
        t.index_put_((mg.tensor([0, 0]),), mg.tensor(1.0), accumulate=True)
    assert t.tolist() == [0.0, 0.0, 0.0] and t._version == 0
