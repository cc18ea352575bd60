"""Beyond one process: data-parallel and sharded training over MPI, through mpi4py (imported lazily).

    mpiexec -n 2 python train.py

- `all_reduce_grads_(parameters, op="mean")`: average (or sum) every `.grad` across ranks in place, one
  collective per dtype (on the GradBuffer's flat array when the grads live in one). Data parallel: after it
  every rank holds the same averaged gradient, so `minigrad.nn.utils.clip_grad_norm_` then computes the same
  coefficient on every rank.
- `clip_grad_norm_(parameters, max_norm, norm_type)`: sharded training (each rank holds a different part of
  the model, as in ZeRO/FSDP): the norm of the union of all ranks' gradients. Each rank computes the norm
  of its own part (float64, overflow-safe, as minigrad.clip does); one allgather of one number per rank; every
  rank combines them in rank order, so all ranks return the same bits and apply the same coefficient.
- `broadcast_parameters_(module, root=0)`: every rank starts from the root's weights.

Before any reduction the ranks compare a signature of what they are about to reduce (shapes, dtypes): a
mismatch raises ValueError on every rank, naming the first difference, instead of corrupting memory or
hanging. Arguments are checked before anything is touched.

Failure: the first use of a communicator installs an excepthook that prints the rank and the error and calls
`comm.Abort(1)`, so an exception on one rank ends the whole job with a non-zero exit instead of leaving the
others blocked in a collective (set MINIGRAD_MPI_ABORT=0 to keep Python's default hook).
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import traceback
from typing import Any

import numpy as np

from minigrad import clip
from minigrad._promotion import default_dtype
from minigrad._validation import check_nonnegative, check_norm_type
from minigrad.clip.pnorm import clip_coef, finish, special_scale
from minigrad.nn.utils.grad_buffer import as_tensors as _as_tensors
from minigrad.nn.utils.grad_buffer import grad_arrays as _grads
from minigrad.tensor import Tensor

_hook_installed = False
_OPS = ("mean", "sum")


def _comm(comm: Any = None) -> Any:
    """The communicator to use (COMM_WORLD by default); installs the abort-on-error hook once."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("minigrad.distributed needs mpi4py: pip install -e '.[mpi]' "
                          "(mpi4py and mpich, which brings mpiexec)") from None
    comm = MPI.COMM_WORLD if comm is None else comm
    _install_abort_hook(comm)
    return comm


def _install_abort_hook(comm: Any) -> None:
    global _hook_installed
    if _hook_installed or os.environ.get("MINIGRAD_MPI_ABORT") == "0" or comm.Get_size() == 1:
        return
    previous = sys.excepthook

    def abort(exc_type: Any, exc: BaseException, tb: Any) -> None:
        rank = comm.Get_rank()
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(f"[minigrad rank {rank}] {text}[minigrad rank {rank}] aborting the MPI job\n")
        sys.stderr.flush()
        try:
            comm.Abort(1)
        finally:
            previous(exc_type, exc, tb)

    sys.excepthook = abort
    _hook_installed = True


def get_rank(comm: Any = None) -> int:
    return _comm(comm).Get_rank()


def get_world_size(comm: Any = None) -> int:
    return _comm(comm).Get_size()


def _check_same_everywhere(comm: Any, what: str, items: list[tuple]) -> None:
    """Raise ValueError on every rank when `items` differ between ranks, naming the first difference."""
    digest = hashlib.sha1(repr(items).encode()).hexdigest()
    if len(set(comm.allgather(digest))) == 1:
        return
    everyone = comm.allgather(items)
    reference = everyone[0]
    for rank, theirs in enumerate(everyone):
        if theirs == reference:
            continue
        if len(theirs) != len(reference):
            raise ValueError(f"{what}: rank {rank} has {len(theirs)} entries, rank 0 has {len(reference)}")
        i = next(i for i, (a, b) in enumerate(zip(theirs, reference)) if a != b)
        raise ValueError(f"{what}: entry {i} differs: rank {rank} has {_describe(theirs[i])}, "
                         f"rank 0 has {_describe(reference[i])}")


def _describe(item: tuple) -> str:
    name, shape, dtype = item
    return f"{name + ' ' if name else ''}shape {shape} dtype {dtype}"


def _grad_groups(parameters: Any) -> dict[np.dtype, list[np.ndarray]]:
    """The gradients to reduce, per dtype (a complete GradBuffer counts as its one flat array)."""
    groups: dict[np.dtype, list[np.ndarray]] = {}
    for g in _grads(parameters):
        if not isinstance(g, np.ndarray):
            raise TypeError("minigrad.distributed reduces host (NumPy) gradients; move CUDA grads to the host")
        groups.setdefault(g.dtype, []).append(g)
    return groups


def all_reduce_grads_(parameters: Any, op: str = "mean", comm: Any = None) -> None:
    """Sum or average every gradient across ranks in place; one Allreduce per dtype."""
    if op not in _OPS:
        raise ValueError(f"op must be one of {_OPS}, got {op!r}")
    comm = _comm(comm)
    from mpi4py import MPI

    params = _as_tensors(parameters)
    _check_same_everywhere(comm, "all_reduce_grads_: gradients",
                           [("", p.shape, None if p._grad is None else str(p._grad.dtype)) for p in params])
    size = comm.Get_size()
    for dtype, arrays in sorted(_grad_groups(params).items(), key=lambda kv: kv[0].str):
        in_place = len(arrays) == 1 and arrays[0].flags.c_contiguous  # e.g. a GradBuffer's flat array
        flat = arrays[0].reshape(-1) if in_place else np.concatenate([a.reshape(-1) for a in arrays])
        comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        if op == "mean":
            flat /= dtype.type(size)
        if not in_place:
            offset = 0
            for a in arrays:
                a[...] = flat[offset:offset + a.size].reshape(a.shape)
                offset += a.size


def _combine_norms(local: list[tuple[float, int]], p: float) -> float:
    """‖x‖_p from the ranks' (‖x_r‖_p, element count), scaled by the largest norm (the smallest for p < 0) so
    that no power overflows; NaN propagates. Order 0 counts add up; ±inf take the max or min. Ranks holding
    no elements do not take part (for p < 0 their norm of 0 would otherwise decide)."""
    norms = np.asarray([n for n, count in local if count], dtype=np.float64)
    if norms.size == 0:
        return 0.0
    if np.isnan(norms).any():
        return math.nan
    if p == 0.0:
        return float(norms.sum())
    if p == math.inf or p == -math.inf:
        return float(norms.max() if p > 0 else norms.min())
    scale = float(norms.max() if p > 0 else norms.min())
    if special_scale(scale):
        return scale
    with np.errstate(over="ignore", under="ignore"):
        return finish(float(np.sum((norms / scale) ** p)), p, scale)


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    comm: Any = None) -> Tensor:
    """Clip by the norm of the union of every rank's gradients (each rank passes the parameters it holds).

    Returns that norm (the same bits on every rank) as a 0-d Tensor; every rank scales its gradients by the
    same min(max_norm / (norm + 1e-6), 1).
    """
    max_norm = check_nonnegative("max_norm", max_norm)
    p = check_norm_type(norm_type)
    comm = _comm(comm)
    grads = [g for group in _grad_groups(parameters).values() for g in group]
    clip.check_arrays(grads, writable=True)  # every rank's refusal comes before any rank writes
    dtype = np.result_type(*[g.dtype for g in grads]).str if grads else None
    gathered = comm.allgather((float(clip.total_norm(grads, p)), sum(g.size for g in grads), dtype))
    norm = _combine_norms([(n, count) for n, count, _ in gathered], p)
    if error_if_nonfinite and not math.isfinite(norm):
        raise RuntimeError(f"the total norm of order {p} of the gradients across ranks is {norm}; "
                           "set error_if_nonfinite=False to clip anyway")
    coef = clip_coef(norm, max_norm)
    if grads and max_norm != math.inf and coef != 1.0:
        clip.scale_(grads, coef)
    dtypes = [np.dtype(d) for _, _, d in gathered if d is not None]  # the same on every rank, as torch's would be
    return Tensor(np.asarray(norm, dtype=np.result_type(*dtypes) if dtypes else default_dtype()))


def broadcast_parameters_(module: Any, root: int = 0, comm: Any = None) -> None:
    """Copy the root rank's parameter values into every rank's module, in place."""
    comm = _comm(comm)
    if not 0 <= root < comm.Get_size():
        raise ValueError(f"root must be a rank in [0, {comm.Get_size()}), got {root}")
    named = list(module.named_parameters())
    _check_same_everywhere(comm, "broadcast_parameters_: parameters",
                           [(name, p.shape, str(p.dtype)) for name, p in named])
    for _, p in named:
        buf = p._data if p._data.flags.c_contiguous else np.ascontiguousarray(p._data)
        comm.Bcast(buf, root=root)
        if buf is not p._data:
            p._data[...] = buf
        p._versions[0] += 1


__all__ = ["get_rank", "get_world_size", "all_reduce_grads_", "clip_grad_norm_", "broadcast_parameters_"]
