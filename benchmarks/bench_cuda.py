"""Gradient clipping and a clipped optimizer step on a CUDA GPU: minigrad (numba.cuda kernels on CuPy memory)
against torch's CUDA functions, every pair timed in turns in one run. Needs a GPU, CuPy and torch with CUDA.

    python benchmarks/bench_cuda.py [--repeat 10] [--quick]

Rows: norm and value clip of 1e8 float32 in 4 tensors (GB/s against the copy bandwidth measured here), the norm
clip of 1000 separate arrays of 1000, of a GradBuffer of 1000 x 10 000 against torch's foreach clip of the
same 1000 tensors, of 1e8 float16, and clip_grad_norm_ + a fused Adam step on 32M float32 parameters in 9
tensors. Ratios > 1 mean minigrad is faster; every call is synchronised, so the times include host costs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_of_interleaved, fmt_time, table

import minigrad as mg
from minigrad import clip, nn, optim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="a tenth of the sizes (a smoke test)")
    args = ap.parse_args()
    import cupy
    import torch

    scale = 10 if args.quick else 1
    print(time.strftime("%Y-%m-%d"), torch.cuda.get_device_name(), "| numpy", np.__version__, "| cupy",
          cupy.__version__, "| torch", torch.__version__)

    def sync(fn):
        def run():
            fn()
            cupy.cuda.runtime.deviceSynchronize()
        return run

    def torch_params(arrays):
        out = []
        for a in arrays:
            t = torch.nn.Parameter(torch.zeros(a.shape, device="cuda", dtype=getattr(torch, str(a.dtype))))
            t.grad = torch.as_tensor(a.copy(), device="cuda")
            out.append(t)
        return out

    rows = []

    def row(what, fns, nbytes=None, copy_bw=None, setup=None):
        def synced_setup(name):
            setup(name)
            cupy.cuda.runtime.deviceSynchronize()

        best = best_of_interleaved({k: sync(f) for k, f in fns.items()}, args.repeat,
                                   setup=None if setup is None else synced_setup)
        ours, theirs = best["minigrad"], best["torch"]
        bw = f"{nbytes / ours / 1e9:.0f} GB/s, {100 * nbytes / ours / copy_bw:.0f}% of copy" if nbytes else "-"
        rows.append([what, fmt_time(ours), fmt_time(theirs), bw, f"{theirs / ours:.2f}x"])

    n = 100_000_000 // scale
    arrays = [cupy.random.standard_normal(n // 4, dtype=cupy.float32) for _ in range(4)]
    dst = cupy.empty_like(arrays[0])
    copy = best_of_interleaved({"copy": sync(lambda: [dst.__setitem__(slice(None), a) for a in arrays])},
                               args.repeat)["copy"]
    dst = None
    copy_bw = 2 * 4 * n / copy
    tparams = torch_params(arrays)
    row("norm clip, 1e8 float32 in 4", {"minigrad": lambda: clip.clip_norm_(arrays, 1.0),
                                        "torch": lambda: torch.nn.utils.clip_grad_norm_(tparams, 1.0)},
        3 * 4 * n, copy_bw)
    row("value clip, 1e8 float32 in 4", {"minigrad": lambda: clip.clip_value_(arrays, 1.0),
                                         "torch": lambda: torch.nn.utils.clip_grad_value_(tparams, 1.0)},
        2 * 4 * n, copy_bw)
    arrays[:] = [a.astype(cupy.float16) for a in arrays]  # the float32 memory goes back to the pool
    tparams[:] = torch_params(arrays)
    row("norm clip, 1e8 float16 in 4", {"minigrad": lambda: clip.clip_norm_(arrays, 1.0),
                                        "torch": lambda: torch.nn.utils.clip_grad_norm_(tparams, 1.0)},
        3 * 2 * n, copy_bw)
    arrays.clear(), tparams.clear()

    small = [cupy.random.standard_normal(1000, dtype=cupy.float32) for _ in range(1000)]
    tsmall = torch_params(small)
    row("norm clip, 1000 separate x 1000", {"minigrad": lambda: clip.clip_norm_(small, 1.0),
                                            "torch": lambda: torch.nn.utils.clip_grad_norm_(tsmall, 1.0)})

    mg.manual_seed(0)
    params = [nn.Parameter(mg.zeros(10_000 // scale, device="cuda")) for _ in range(1000)]
    for p in params:
        p.grad = mg.tensor(np.random.default_rng(0).standard_normal(p.shape).astype(np.float32)).to("cuda")
    nn.utils.GradBuffer(params)
    tbuf = torch_params([p.grad._data for p in params])
    row("norm clip, GradBuffer 1000 x 10 000", {"minigrad": lambda: nn.utils.clip_grad_norm_(params, 1.0),
                                                 "torch": lambda: torch.nn.utils.clip_grad_norm_(tbuf, 1.0)})
    params.clear(), tbuf.clear(), small.clear(), tsmall.clear()

    sizes = [32_000_000 // scale // 9] * 9
    rng = np.random.default_rng(1)
    ours = [nn.Parameter(mg.tensor(rng.standard_normal(s).astype(np.float32), device="cuda")) for s in sizes]
    for p in ours:
        p.grad = mg.tensor(rng.standard_normal(p.shape).astype(np.float32) * 10, device="cuda")
    opt = optim.Adam(ours, lr=1e-3, fused=True)
    theirs = torch_params([p._data for p in ours])
    for t, p in zip(theirs, ours):
        t.data.copy_(torch.as_tensor(p._data, device="cuda"))
    topt = torch.optim.Adam(theirs, lr=1e-3, fused=True)

    def ours_step():
        nn.utils.clip_grad_norm_(ours, 1.0)
        opt.step()

    def theirs_step():
        torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        topt.step()

    ours_step(), theirs_step()  # the first fused step lays the parameters out flat
    saved = [p.grad._data.copy() for p in ours]

    def fresh(name):  # every step clips fresh gradients, as in training (a .grad read applies what is pending)
        for p, t, s in zip(ours, theirs, saved):
            p.grad._data[...] = s
            t.grad.copy_(torch.as_tensor(s, device="cuda"))

    row("clip + fused Adam step, 32M float32 in 9", {"minigrad": ours_step, "torch": theirs_step}, 32 * sum(sizes),
        copy_bw, setup=fresh)
    print(f"best of {args.repeat}; copy bandwidth (CuPy, read + write) {copy_bw / 1e9:.0f} GB/s")
    print(table(["what", "minigrad", "torch", "minigrad bandwidth", "torch / minigrad"], rows))


if __name__ == "__main__":
    main()
