"""Cost of data-parallel gradient averaging plus clipping over MPI, against clipping in one process.

    mpiexec -n 2 python benchmarks/bench_distributed.py [--elements 10000000] [--repeat 7]

Every rank holds the same number of float32 gradients in a GradBuffer. Rows: the single-process clip
(nn.utils.clip_grad_norm_, no communication), all_reduce_grads_ + clip (data parallel), and the sharded
distributed.clip_grad_norm_ (one small allgather). Best of --repeat, timed on rank 0 between barriers.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import fmt_time, table

from minigrad import distributed as dist
from minigrad import nn


def timed(fn, comm, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        comm.Barrier()
        start = time.perf_counter()
        fn()
        comm.Barrier()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--elements", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng(rank)
    params = [nn.Parameter(np.zeros(n, np.float32)) for n in [args.elements // 10] * 10]
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    nn.utils.GradBuffer(params)
    rows = {
        "clip_grad_norm_, one process": lambda: nn.utils.clip_grad_norm_(params, 1.0),
        "all_reduce_grads_ + clip_grad_norm_": lambda: (dist.all_reduce_grads_(params),
                                                        nn.utils.clip_grad_norm_(params, 1.0)),
        "all_reduce_grads_ alone": lambda: dist.all_reduce_grads_(params),
        "distributed.clip_grad_norm_ (sharded)": lambda: dist.clip_grad_norm_(params, 1.0),
    }
    times = {name: timed(fn, comm, args.repeat) for name, fn in rows.items()}
    if rank == 0:
        base = times["clip_grad_norm_, one process"]
        print(f"{size} ranks, {args.elements:,} float32 gradients per rank, best of {args.repeat}")
        print(table(["operation", "time", "vs one-process clip"],
                    [[name, fmt_time(t), f"{t / base:.2f}x"] for name, t in times.items()]))


if __name__ == "__main__":
    main()
