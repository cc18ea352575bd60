"""Run under `mpiexec -n 2` by tests/test_distributed.py: `python tests/mpi_worker.py MODE OUT_DIR`.

Each rank writes what it computed to OUT_DIR/rank{r}.npz for the test to compare with one process.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_model import data, make_model, step

import minigrad as mg
from minigrad import distributed as dist
from minigrad import nn, optim


def data_parallel(out):
    rank, size = dist.get_rank(), dist.get_world_size()
    model = make_model(seed=rank)  # different on purpose: broadcast_parameters_ must fix it
    dist.broadcast_parameters_(model, root=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = data()
    half = x.shape[1] // size
    norms = []
    for _ in range(10):
        norms.append(step(model, opt, x[:, rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half],
                          reduce=lambda params: dist.all_reduce_grads_(params, op="mean")))
    return {**{k: v for k, v in model.state_dict().items()}, "norms": np.array(norms)}


def sharded(out):
    rank = dist.get_rank()
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) * 10 for s in [(4, 3), (7,), (2, 5), (3,)]]
    result = {}
    for p in (1.0, 2.0, 3.5, float("inf")):
        params = [nn.Parameter(np.zeros(g.shape)) for g in grads]
        for prm, g in zip(params, grads):
            prm.grad = g.copy()
        mine = params[rank::2]  # each rank holds every other parameter
        norm = dist.clip_grad_norm_(mine, max_norm=1.0, norm_type=p)
        result[f"norm_{p}"] = norm.data
        for i, prm in enumerate(params):
            if i % 2 == rank:
                result[f"grad_{p}_{i}"] = prm.grad
    # fp32 values whose squares overflow fp32, and an all-zero shard
    big = nn.Parameter(np.zeros(3, np.float32))
    big.grad = np.full(3, 1e30, np.float32) if rank == 0 else np.zeros(3, np.float32)
    result["norm_big"] = dist.clip_grad_norm_([big], 1.0).data
    checked = nn.Parameter(np.zeros(3))  # a finite norm with error_if_nonfinite=True: no error, no clip below it
    checked.grad = np.full(3, float(rank + 1))
    result["norm_checked"] = dist.clip_grad_norm_([checked], 10.0, error_if_nonfinite=True).data
    result["grad_checked"] = checked.grad.numpy()
    nan = nn.Parameter(np.zeros(2))  # max_norm=inf changes nothing, even with a NaN norm (no scaling by NaN)
    nan.grad = np.array([np.nan, 1.0]) if rank == 0 else np.array([2.0, 3.0])
    result["norm_nan"] = dist.clip_grad_norm_([nan], math.inf).data
    result["grad_nan"] = nan.grad.numpy()
    return result


SHARD_SHAPES = [(4, 3), (7,), (2, 5), (3,), (6,)]
SHARD_ORDERS = (1.0, 2.0, 3.5, float("inf"), 0.0, -1.5, float("-inf"))


def sharded_uneven(out):
    """Three ranks hold 2, 2 and 1 of five gradients (rank 2 one fewer); every order, and a rank with none."""
    rank, size = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s) * 10 for s in SHARD_SHAPES]
    result = {}
    for p in SHARD_ORDERS:
        params = [nn.Parameter(np.zeros(g.shape)) for g in grads]
        for prm, g in zip(params, grads):
            prm.grad = g.copy()
        norm = dist.clip_grad_norm_(params[rank::size], max_norm=1.0, norm_type=p)
        result[f"norm_{p}"] = norm.numpy()
        for i in range(rank, len(params), size):
            result[f"grad_{p}_{i}"] = params[i].grad.numpy()
        fresh = [nn.Parameter(np.zeros(g.shape)) for g in grads]
        for prm, g in zip(fresh, grads):
            prm.grad = g.copy()
        mine = [] if rank == size - 1 else fresh[rank::size - 1]  # the last rank holds no gradient at all
        result[f"norm_empty_{p}"] = dist.clip_grad_norm_(mine, max_norm=1e9, norm_type=p).numpy()
    return result


def all_reduce(out):
    """Rank r's gradients are (r + 1) · g: "sum" and "mean" in place, through a GradBuffer and without one."""
    rank = dist.get_rank()
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(s) for s in SHARD_SHAPES]
    result = {}
    for op in ("sum", "mean"):
        for buffered in (True, False):
            params = [nn.Parameter(np.zeros(g.shape)) for g in grads]
            for prm, g in zip(params, grads):
                prm.grad = (rank + 1) * g
            if buffered:
                buf = nn.utils.GradBuffer(params)  # copies the grads in
            views = [prm.grad for prm in params]
            dist.all_reduce_grads_(params, op=op)
            for i, prm in enumerate(params):
                assert prm.grad is views[i]  # reduced in place: the same tensors
                result[f"{op}_{buffered}_{i}"] = prm.grad.numpy()
            if buffered:
                assert all(np.shares_memory(prm.grad.numpy(), buf.flats[np.dtype(np.float64)]) for prm in params)
    two = [nn.Parameter(np.zeros(g.shape)) for g in grads[:2]]  # two arrays of one dtype: concatenated, not in place
    for prm, g in zip(two, grads):
        prm.grad = (rank + 1) * g
    dist.all_reduce_grads_(two, op="sum")
    for i, prm in enumerate(two):
        result[f"two_{i}"] = prm.grad.numpy()
    return result


def raise_on_one(out):
    if dist.get_rank() == 1:
        raise RuntimeError("rank one fails on purpose")
    dist.all_reduce_grads_([nn.Parameter(np.zeros(3))])  # rank 0 would wait here forever
    return {}


def mismatch(out):
    shape = (3, 4) if dist.get_rank() == 0 else (4, 3)
    p = nn.Parameter(np.zeros(shape))
    p.grad = np.ones(shape)
    try:
        dist.all_reduce_grads_([p])
    except ValueError as err:
        print(f"rank {dist.get_rank()}: {err}")
    else:
        raise AssertionError("no error")
    dtype = np.float32 if dist.get_rank() == 0 else np.float64  # a dtype that differs; a parameter without grad
    q, none = nn.Parameter(np.zeros(2, dtype)), nn.Parameter(np.zeros(2))
    q.grad = np.ones(2, dtype)
    try:
        dist.all_reduce_grads_([none, q])
    except ValueError as err:
        print(f"rank {dist.get_rank()}: {err}")
        return {"untouched": p.grad, "q": q.grad}
    raise AssertionError("no error")


def broadcast_after_forward(out):
    module = nn.Module()
    module.w = nn.Parameter(np.ones(3) * (dist.get_rank() + 1))
    with mg.no_grad():
        module.w.mul_(1.0)  # an in-place op first: the version is 1 when the forward saves w
    loss = (module.w * module.w).sum()  # saves w for backward
    dist.broadcast_parameters_(module, root=0)
    try:
        loss.backward()
    except RuntimeError as e:
        return {"raised": "modified by an inplace operation" in str(e)}
    return {"raised": False}


def broadcast_rules(out):
    rank = dist.get_rank()
    module = nn.Module()
    module.w = nn.Parameter(np.full(3, rank + 1.0))
    refused = []
    for root in (-1, dist.get_world_size()):
        try:
            dist.broadcast_parameters_(module, root=root)
        except ValueError:
            refused.append(root)
    odd = nn.Module()  # the ranks disagree about the shapes: refused on every rank before any Bcast
    odd.w = nn.Parameter(np.full(2 + rank, rank + 1.0))
    try:
        dist.broadcast_parameters_(odd)
        mismatch = ""
    except ValueError as e:
        mismatch = str(e)
    dist.broadcast_parameters_(module)  # the default root: rank 0's values everywhere
    none = nn.Parameter(np.zeros(2))  # no gradient on any rank: a float32 zero, as torch returns
    norm = dist.clip_grad_norm_([none], 1.0)
    return {"refused": np.array(refused), "mismatch": mismatch, "odd": odd.w.data, "w": module.w.data,
            "norm_dtype": str(norm.dtype), "norm": norm.item()}


def abort_hook(out):
    dist.get_rank()  # installs the hook (unless MINIGRAD_MPI_ABORT=0)
    first = sys.excepthook
    dist.get_world_size()
    dist.all_reduce_grads_([nn.Parameter(np.zeros(2))])
    return {"hooked": first is not sys.__excepthook__, "kept": sys.excepthook is first}


def rejected(out):
    p = nn.Parameter(np.zeros(3))
    p.grad = np.array([3.0, 4.0, 12.0])
    q, r = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(1))
    q.grad = np.array([6.0, 8.0])
    read_only = np.array([5.0])
    read_only.flags.writeable = False
    r.grad = read_only
    for call in (lambda: dist.clip_grad_norm_([p], -1.0),
                 lambda: dist.clip_grad_norm_([q, r], 1.0),  # q's gradient would be scaled before r's failed
                 lambda: dist.clip_grad_norm_([p], 1.0, norm_type=float("nan")),
                 lambda: dist.all_reduce_grads_([p], op="max")):
        try:
            call()
        except ValueError:
            continue
        raise AssertionError("accepted")
    module = nn.Module()  # a transposed (non-contiguous) parameter is broadcast through a copy and written back
    module.w = nn.Parameter(np.arange(6.0).reshape(2, 3).T * (dist.get_rank() + 1))
    dist.broadcast_parameters_(module, root=1)
    return {"grad": p.grad, "w": module.w.data, "writable": q.grad}


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    result = globals()[mode](out)
    mg.save(result, os.path.join(out, f"rank{dist.get_rank()}.npz"))
