"""PyTorch's own tests for gradient clipping and packed sequences, ported to minigrad.

The cases follow (credit) pytorch/pytorch: test/test_nn.py (`test_clip_grad_norm`, `test_clip_grad_value`,
`test_clip_grad_norm_error_if_nonfinite`) and test/nn/test_packed_sequence.py (`PackedSequenceTest`), rewritten
here against minigrad with our own small adapter (`_assert_equal`), so they run without torch. Where minigrad
differs from torch on purpose, the case says so and checks our documented answer instead (README,
"Differences from PyTorch").
"""
import itertools
import math
import random

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn.utils import clip_grad_norm_, clip_grad_value_
from minigrad.nn.utils import rnn as rnn_utils

inf, nan = math.inf, math.nan


def _assert_equal(a, b, rtol=1.3e-6, atol=1e-5):
    """torch's assertEqual for what these tests compare: tensors, arrays, numbers and lists of them."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and a and isinstance(a[0], mg.Tensor):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_equal(x, y, rtol, atol)
        return
    a = np.asarray(a.detach() if isinstance(a, mg.Tensor) else a)
    b = np.asarray(b.detach() if isinstance(b, mg.Tensor) else b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol)


# ----- test/test_nn.py: test_clip_grad_norm ----------------------------------------------------------------
def _compute_norm(layer, norm_type):
    norm_type = float(norm_type)
    if norm_type == inf:
        return max(p.grad.data.abs().max() for p in layer.parameters())
    total = sum(float(p.grad.data.abs().pow(norm_type).sum()) for p in layer.parameters())
    return total ** (1.0 / norm_type)


def _common_scale(layer, grads):
    """Every element was scaled by the same factor: return it."""
    scale = np.concatenate([(p.grad.data / g).reshape(-1) for p, g in zip(layer.parameters(), grads)])
    assert np.std(scale) == pytest.approx(0.0, abs=1e-7)
    return scale[0]


def test_clip_grad_norm():
    layer = nn.Linear(10, 10)
    max_norm = 2
    grads = np.arange(1.0, 101, dtype=np.float32).reshape(10, 10), np.ones(10, np.float32) / 1000
    for norm_type in [0.5, 1.5, 2, 4, "inf"]:
        for p, g in zip(layer.parameters(), grads):
            p.grad = g.copy().reshape(p.shape)
        before = _compute_norm(layer, norm_type)
        norm = clip_grad_norm_(layer.parameters(), max_norm, norm_type=norm_type)
        after = _compute_norm(layer, norm_type)
        _assert_equal(norm, before)
        _assert_equal(after, max_norm)
        assert after <= before
        _common_scale(layer, grads)
    # small gradients are left unchanged
    grads = np.random.default_rng(0).random((10, 10)).astype(np.float32) / 10000, np.ones(10, np.float32) / 500
    for norm_type in [0.5, 1.5, 2, 4, "inf"]:
        for p, g in zip(layer.parameters(), grads):
            p.grad.data.copy_(g)
        before = _compute_norm(layer, norm_type)
        norm = clip_grad_norm_(layer.parameters(), max_norm, norm_type=norm_type)
        after = _compute_norm(layer, norm_type)
        _assert_equal(norm, before)
        _assert_equal(before, after)
        assert after <= max_norm
        assert _common_scale(layer, grads) == pytest.approx(1.0)
    # a single Tensor is accepted as the input
    p1, p2 = mg.randn(10, 10), mg.randn(10, 10)
    g = np.arange(1.0, 101, dtype=np.float32).reshape(10, 10)
    p1.grad, p2.grad = g.copy(), g.copy()
    for norm_type in [0.5, 1.5, 2, 4, "inf"]:
        clip_grad_norm_(p1, max_norm, norm_type=norm_type)
        clip_grad_norm_([p2], max_norm, norm_type=norm_type)
        _assert_equal(p1.grad, p2.grad)


def test_clip_grad_norm_returns_the_gradients_dtype_and_warns_on_an_empty_generator():
    for dtype in (np.float32, np.float64):
        layer = nn.Linear(4, 3, dtype=dtype)
        (layer(mg.ones(2, 4, dtype=dtype)).sum()).backward()
        assert clip_grad_norm_(layer.parameters(), 1.0).dtype == dtype
    params = layer.parameters()
    list(params)  # consumed: a classic mistake
    with pytest.warns(UserWarning, match="empty generator"):
        norm = clip_grad_norm_(params, 1.0)
    assert norm.item() == 0.0 and norm.dtype == np.float32


# ----- test/test_nn.py: test_clip_grad_value ---------------------------------------------------------------
def test_clip_grad_value():
    layer = nn.Linear(10, 10)
    clip_value = 2.5
    grad_w = np.arange(-50.0, 50, dtype=np.float32).reshape(10, 10) / 5
    grad_b = np.ones(10, np.float32) * 2
    for grad_list in [[grad_w, grad_b], [grad_w, None]]:
        for p, g in zip(layer.parameters(), grad_list):
            p.grad = None if g is None else g.copy().reshape(p.shape)
        clip_grad_value_(layer.parameters(), clip_value)
        for p in layer.parameters():
            if p.grad is not None:
                assert p.grad.data.max() <= clip_value and p.grad.data.min() >= -clip_value
    p1, p2 = mg.randn(10, 10), mg.randn(10, 10)
    g = np.arange(-50.0, 50, dtype=np.float32).reshape(10, 10) / 5
    p1.grad, p2.grad = g.copy(), g.copy()
    clip_grad_value_(p1, clip_value)
    clip_grad_value_([p2], clip_value)
    _assert_equal(p1.grad, p2.grad)


# ----- test/test_nn.py: test_clip_grad_norm_error_if_nonfinite ---------------------------------------------
NORMS_POS = [0.1, 1, 2, 3.5, inf]
NORMS_NEG = [-0.1, -1, -2, -3.5]
NORMS_NEG_PLUS_0 = [0, -0.1, -1, -2, -3.5]
NORMS_EXCEPT_0 = NORMS_POS + NORMS_NEG
NORMS_ALL = [0] + NORMS_EXCEPT_0

# (grad_only_one_elem, prefix_finite_grad_param, scalars, norms giving a non-finite total, norms giving a finite one)
NONFINITE_CASES = [
    (False, False, [inf, -inf], NORMS_EXCEPT_0, [0]),
    (False, True, [inf, -inf], NORMS_POS, NORMS_NEG_PLUS_0),
    (True, False, [inf, -inf], NORMS_POS, NORMS_NEG_PLUS_0),
    (True, True, [inf, -inf], NORMS_POS, NORMS_NEG_PLUS_0),
    (False, False, [nan], NORMS_EXCEPT_0, [0]),
    (False, True, [nan], NORMS_EXCEPT_0, [0]),
    (True, False, [nan], NORMS_EXCEPT_0, [0]),
    (True, True, [nan], NORMS_EXCEPT_0, [0]),
    (False, False, [2e22, -2e22], [], NORMS_ALL),  # never overflows
    (False, True, [2e22, -2e22], [], NORMS_ALL),
    (True, False, [2e22, -2e22], [], NORMS_ALL),
    (True, True, [2e22, -2e22], [], NORMS_ALL),
    # torch overflows to inf here for orders 3.5, 2 (and -2, -3.5 without a finite prefix); minigrad scales by
    # the largest (smallest) element first and returns the finite norm: a documented difference
    (False, False, [2e200, -2e200], [], NORMS_ALL),
    (False, True, [2e200, -2e200], [], NORMS_ALL),
    (True, False, [2e200, -2e200], [], NORMS_ALL),
    (True, True, [2e200, -2e200], [], NORMS_ALL),
]


def _nonfinite_params(scalar, grad_only_one_elem, prefix_finite_grad_param):
    param = mg.ones(10, dtype=np.float64, requires_grad=True)
    (param[1] * scalar if grad_only_one_elem else param * scalar).sum().backward()
    params = [param]
    if prefix_finite_grad_param:
        prefix = mg.ones(1, dtype=np.float64, requires_grad=True)
        (prefix * 1).sum().backward()
        params.insert(0, prefix)
    return params


def _nonfinite_subcases():
    for one, prefix, scalars, norms_nonfinite, norms_finite in NONFINITE_CASES:
        for error_if_nonfinite, scalar in itertools.product([False, True], scalars):
            for norm_type in norms_nonfinite:
                yield norm_type, error_if_nonfinite, scalar, one, prefix, True
            for norm_type in norms_finite:
                yield norm_type, error_if_nonfinite, scalar, one, prefix, False


@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")  # inf · 0, as torch
def test_clip_grad_norm_error_if_nonfinite():
    count = 0
    for norm_type, error, scalar, one, prefix, nonfinite in _nonfinite_subcases():
        params = _nonfinite_params(scalar, one, prefix)
        msg = f"norm_type {norm_type}, error {error}, scalar {scalar}, one elem {one}, prefix {prefix}"
        if nonfinite and error:
            before = [p.grad.numpy().copy() for p in params]
            with pytest.raises(RuntimeError):
                clip_grad_norm_(params, 1.0, norm_type, True)
            for p, g in zip(params, before):  # nothing changed
                np.testing.assert_array_equal(p.grad.numpy(), g, err_msg=msg)
        else:
            norm = clip_grad_norm_(params, 1.0, norm_type, error)
            assert math.isfinite(norm.item()) != nonfinite, msg
        count += 1
    assert count == 560  # torch's table on one device


# ----- test/nn/test_packed_sequence.py -----------------------------------------------------------------------
BATCH, MAX_LEN = 5, 6
TYPES = {"float64": "double", "float32": "float", "int64": "long", "int32": "int", "int16": "short",
         "int8": "char", "uint8": "byte"}


def _ordered_sequences(dtype):
    rng = np.random.default_rng(0)
    seqs = [mg.tensor(rng.integers(0 if dtype == "uint8" else -128, 128, rng.integers(1, MAX_LEN + 1))
                      .astype(dtype)) for _ in range(BATCH)]
    return sorted(seqs, key=len, reverse=True)


def _padded_sequence(dtype):
    ordered = _ordered_sequences(dtype)
    return rnn_utils.pad_sequence(ordered), [len(s) for s in ordered]


def test_type_casts():
    for input_type in TYPES:
        for expected_type, cast in TYPES.items():
            for enforce_sorted in (True, False):
                padded, lengths = _padded_sequence(input_type)
                packed = rnn_utils.pack_padded_sequence(padded, lengths, enforce_sorted=enforce_sorted)
                unpacked, _ = rnn_utils.pad_packed_sequence(getattr(packed, cast)())
                assert unpacked.dtype == np.dtype(expected_type)


def test_wrong_order():
    a, b = mg.ones(25, 300), mg.ones(22, 300)
    b_a = rnn_utils.pad_sequence([b, a])
    with pytest.raises(RuntimeError):
        rnn_utils.pack_padded_sequence(b_a, [22, 25], enforce_sorted=True)


def test_pad_sequence_with_tensor_sequences():
    from_tuple = rnn_utils.pad_sequence((mg.tensor([[7, 6]]), mg.tensor([[-7, -1]])))
    from_tensor = rnn_utils.pad_sequence(mg.tensor([[[7, 6]], [[-7, -1]]]))
    _assert_equal(from_tuple, from_tensor)
    assert from_tuple.shape == (1, 2, 2)


def test_pad_sequence_with_non_iterable_sequences():
    with pytest.raises(RuntimeError, match="Expected iterable for input sequences, but got arg of type"):
        rnn_utils.pad_sequence(5)


def test_total_length():
    padded, lengths = _padded_sequence("float32")
    max_length = max(lengths)
    packed = rnn_utils.pack_padded_sequence(padded, lengths)
    for total_length in (-1, 0, max_length - 1):
        for batch_first in (True, False):
            with pytest.raises(ValueError, match="Expected total_length to be at least the length of the longest"):
                rnn_utils.pad_packed_sequence(packed, batch_first=batch_first, total_length=total_length)
    for batch_first in (True, False):
        no_extra_pad, _ = rnn_utils.pad_packed_sequence(packed, batch_first=batch_first)
        for delta in (0, 1, 8):
            total_length = max_length + delta
            unpacked, lengths_out = rnn_utils.pad_packed_sequence(packed, batch_first=batch_first,
                                                                   total_length=total_length)
            _assert_equal(lengths, lengths_out)
            assert unpacked.shape[1 if batch_first else 0] == total_length
            if delta == 0:
                ref = no_extra_pad
            elif batch_first:
                ref = mg.cat([no_extra_pad, mg.zeros(BATCH, delta)], 1)
            else:
                ref = mg.cat([no_extra_pad, mg.zeros(delta, BATCH)], 0)
            _assert_equal(unpacked, ref)


def test_to():
    for enforce_sorted in (True, False):
        padded, lengths = _padded_sequence("int32")
        a = rnn_utils.pack_padded_sequence(padded, lengths, enforce_sorted=enforce_sorted).cpu()
        assert a is a.to("cpu")
        assert a is a.cpu()
        assert a is a.to("cpu", dtype=mg.int32)
        _assert_equal(a.long().data, a.to(mg.int64).data)
        assert a.long().data.dtype == np.int64


def test_pad_sequence():
    a, b, c = mg.tensor([1, 2, 3]), mg.tensor([4, 5]), mg.tensor([6])
    expected = mg.tensor([[4, 5, 0], [1, 2, 3], [6, 0, 0]])
    _assert_equal(rnn_utils.pad_sequence([b, a, c], True), expected)
    _assert_equal(rnn_utils.pad_sequence([b, a, c]), expected.transpose(0, 1))
    _assert_equal(rnn_utils.pad_sequence([b, a, c], True, 1), mg.tensor([[4, 5, 1], [1, 2, 3], [6, 1, 1]]))
    _assert_equal(rnn_utils.pad_sequence([a, b, c], True), mg.tensor([[1, 2, 3], [4, 5, 0], [6, 0, 0]]))
    maxlen = 9
    for num_dim in (0, 1, 2, 3):
        trailing = [4] * num_dim
        sequences = [mg.rand(i * i, 5, *trailing) for i in range(1, maxlen + 1)]
        random.Random(num_dim).shuffle(sequences)
        expected = mg.stack([mg.cat([s, mg.zeros(maxlen * maxlen - s.shape[0], *s.shape[1:])]) for s in sequences])
        _assert_equal(rnn_utils.pad_sequence(sequences, True), expected)
        _assert_equal(rnn_utils.pad_sequence(sequences), expected.transpose(0, 1))


def test_unpad_sequence():
    a, b, c = mg.tensor([1, 2, 3]), mg.tensor([4, 5]), mg.tensor([6])
    sequences = [a, b, c]
    lengths = mg.tensor([len(v) for v in sequences])
    for batch_first in (True, False):
        padded = rnn_utils.pad_sequence(sequences, batch_first=batch_first)
        _assert_equal(sequences, rnn_utils.unpad_sequence(padded, lengths, batch_first=batch_first))
    maxlen = 9
    for num_dim in (0, 1, 2, 3):
        sequences = [mg.rand(i * i, 5, *([4] * num_dim)) for i in range(1, maxlen + 1)]
        random.Random(num_dim).shuffle(sequences)
        lengths = mg.tensor([len(v) for v in sequences])
        for batch_first in (True, False):
            padded = rnn_utils.pad_sequence(sequences, batch_first=batch_first)
            _assert_equal(sequences, rnn_utils.unpad_sequence(padded, lengths, batch_first=batch_first))


def _assert_packed_equal(x, y):
    _assert_equal(x.data, y.data)
    _assert_equal(x.batch_sizes, y.batch_sizes)
    for u, v in ((x.sorted_indices, y.sorted_indices), (x.unsorted_indices, y.unsorted_indices)):
        assert (u is None) == (v is None)
        if u is not None:
            _assert_equal(u, v)


def test_pack_sequence():
    def compatible(sequences, lengths, batch_first, enforce_sorted=False):
        padded = rnn_utils.pad_sequence(sequences, batch_first)
        packed = rnn_utils.pack_sequence(sequences, enforce_sorted)
        unpacked = rnn_utils.pad_packed_sequence(packed, batch_first)
        _assert_equal(padded, unpacked[0])
        _assert_packed_equal(packed, rnn_utils.pack_padded_sequence(padded, lengths, batch_first, enforce_sorted))

    a, b, c = mg.tensor([1, 2, 3]), mg.tensor([4, 5]), mg.tensor([6])
    expected = [1, 4, 6, 2, 5, 3]
    packed = rnn_utils.pack_sequence([a, b, c], enforce_sorted=False)
    _assert_equal(packed.batch_sizes, [3, 2, 1])
    _assert_equal(packed.data, expected)
    _assert_equal(packed.sorted_indices, [0, 1, 2])
    _assert_equal(packed.unsorted_indices, [0, 1, 2])
    unsorted = rnn_utils.pack_sequence([b, c, a], enforce_sorted=False)
    _assert_equal(unsorted.batch_sizes, [3, 2, 1])
    _assert_equal(unsorted.data, expected)
    _assert_equal(unsorted.sorted_indices, [2, 0, 1])
    _assert_equal(unsorted.unsorted_indices, [1, 2, 0])
    enforced = rnn_utils.pack_sequence([a, b, c], enforce_sorted=True)
    _assert_equal(enforced.batch_sizes, [3, 2, 1])
    _assert_equal(enforced.data, expected)
    assert enforced.sorted_indices is None and enforced.unsorted_indices is None
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        rnn_utils.pack_sequence([b, c, a], enforce_sorted=True)
    with pytest.raises(RuntimeError, match="You can pass `enforce_sorted=False`"):
        rnn_utils.pack_sequence([b, c, a], enforce_sorted=True)
    maxlen = 9
    for num_dim in (0, 1, 2, 3):
        lengths = [i * i for i in range(maxlen, 0, -1)]
        sequences = [mg.rand(n, 5, *([4] * num_dim)) for n in lengths]
        unsorted_sequences = [s.clone() for s in sequences]
        random.Random(num_dim).shuffle(unsorted_sequences)
        for batch_first in (True, False):
            for enforce_sorted in (True, False):
                compatible(sequences, lengths, batch_first, enforce_sorted)
            compatible(unsorted_sequences, [len(s) for s in unsorted_sequences], batch_first)


def test_unpack_sequence():
    a, b, c = mg.tensor([1, 2, 3]), mg.tensor([4, 5]), mg.tensor([6])
    sequences = [a, b, c]
    _assert_equal(sequences, rnn_utils.unpack_sequence(rnn_utils.pack_sequence(sequences, enforce_sorted=False)))
    for num_dim in (0, 1, 2, 3):
        sequences = [mg.rand(i * i, 5, *([4] * num_dim)) for i in range(1, 10)]
        random.Random(num_dim).shuffle(sequences)
        packed = rnn_utils.pack_sequence(sequences, enforce_sorted=False)
        _assert_equal(sequences, rnn_utils.unpack_sequence(packed))


def _pack_padded_case(sorted_lengths, should_shuffle, seed):
    max_length = sorted_lengths[0]
    batch_sizes = [sum(n >= i for n in sorted_lengths) for i in range(1, max_length + 1)]
    padded = mg.cat([mg.cat([(i * 100 + mg.arange(1.0, 5 * n + 1)).view(n, 1, 5), mg.zeros(max_length - n, 1, 5)])
                     for i, n in enumerate(sorted_lengths, 1)], 1)
    expected = mg.stack([mg.arange(1.0, 6) + (i + 1) * 100 + 5 * t for t, size in enumerate(batch_sizes)
                         for i in range(size)])
    if should_shuffle:
        permutation = list(range(len(sorted_lengths)))
        random.Random(seed).shuffle(permutation)
        unsorted_indices = np.asarray(permutation)
        padded = padded[:, unsorted_indices]
        lengths = np.asarray(sorted_lengths)[unsorted_indices]
    else:
        unsorted_indices, lengths = None, sorted_lengths
    return padded.detach().requires_grad_(), lengths, expected, batch_sizes, unsorted_indices


def test_pack_padded_sequence():
    cases = [([10, 8, 4, 2, 2, 2, 1], False), ([11, 10, 8, 6, 4, 3, 1], False), ([11, 10, 8, 6, 4, 3, 1], True)]
    for seed, ((sorted_lengths, shuffle), batch_first) in enumerate(itertools.product(cases, (True, False))):
        padded, lengths, expected, batch_sizes, unsorted_indices = _pack_padded_case(sorted_lengths, shuffle, seed)
        src = padded.transpose(0, 1) if batch_first else padded
        packed = rnn_utils.pack_padded_sequence(src, lengths, batch_first=batch_first, enforce_sorted=not shuffle)
        _assert_equal(packed.data, expected)
        _assert_equal(packed.batch_sizes, batch_sizes)
        if unsorted_indices is None:
            assert packed.unsorted_indices is None
        else:
            _assert_equal(packed.unsorted_indices, unsorted_indices)
        unpacked, unpacked_len = rnn_utils.pad_packed_sequence(packed, batch_first=batch_first)
        _assert_equal(unpacked, src)
        _assert_equal(unpacked_len, lengths)
        if padded.grad is not None:
            padded.grad.data.zero_()
        grad_output = np.random.default_rng(seed).standard_normal(unpacked.shape).astype(np.float32)
        unpacked.backward(grad_output)
        if batch_first:
            grad_output = grad_output.swapaxes(0, 1)
        for i, n in enumerate(lengths):
            _assert_equal(padded.grad.data[:n, i], grad_output[:n, i])
            if n < 10:
                assert np.abs(padded.grad.data[n:, i]).sum() == 0
    with pytest.raises(RuntimeError, match="You can pass `enforce_sorted=False`"):
        rnn_utils.pack_padded_sequence(mg.randn(3, 3), [1, 3, 2])
    with pytest.raises(RuntimeError, match="empty tensor"):
        rnn_utils.pack_padded_sequence(mg.randn(0, 0), [])
    with pytest.raises(RuntimeError, match="empty tensor"):
        rnn_utils.pack_padded_sequence(mg.randn(0, 1, 10), mg.randn(11, 14, 14, 2), True)
