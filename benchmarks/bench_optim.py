"""Clip + optimizer step on 32M float32 parameters: minigrad (unfused and fused, the clip folded into the fused
step) against torch (clip_grad_norm_ + Adam(fused=True) / SGD(foreach=True)), all measured in one run.

    python benchmarks/bench_optim.py [--repeat 5] [--size 32000000] [--json FILE]

Bytes moved per step, float32 (4 bytes), n elements, at least. Adam: the norm reads g (4n); a separate
scaling pass reads and writes g (8n); Adam reads p, g, m, v and writes p, m, v (28n). torch: 4n + 8n + 28n =
40n. minigrad fused with the clip folded in: the step applies the coefficient while reading g and leaves it
pending on the GradBuffer instead of writing g back (see minigrad/optim/_fused.py), so 4n + 28n = 32n — a
bound of 40/32 = 1.25x at equal bandwidth. SGD with momentum reads p, g, buf and writes p, buf (20n): torch
4n + 8n + 20n = 32n (its foreach ops move more), fused 4n + 20n = 24n.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_of_interleaved, cpu_info, fmt_time, save_json, table

import minigrad as mg
from minigrad import nn, optim

SHAPES = lambda n: [(n // 9,)] * 8 + [(n - 8 * (n // 9),)]  # noqa: E731  (bench_clip.py's 9 tensors)
BYTES = {"Adam": {"torch": 40, "unfused": 40, "fused": 32}, "SGD": {"torch": 32, "unfused": 32, "fused": 24}}


def make(n: int, name: str, fused: bool | None):
    rng = np.random.default_rng(0)
    params = [nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES(n)]
    nn.utils.GradBuffer(params)
    for p in params:
        p.grad.data[...] = rng.standard_normal(p.shape) * 10
    kwargs = dict(lr=1e-3) if name == "Adam" else dict(lr=1e-3, momentum=0.9)
    return params, getattr(optim, name)(params, fused=fused, **kwargs)


def make_torch(n: int, name: str):
    import torch

    rng = np.random.default_rng(0)
    params = [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s).astype(np.float32))) for s in SHAPES(n)]
    for p in params:
        p.grad = torch.from_numpy((rng.standard_normal(p.shape) * 10).astype(np.float32))
    if name == "Adam":
        return params, torch.optim.Adam(params, lr=1e-3, fused=True)
    return params, torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="best of this many (default: 5)")
    ap.add_argument("--size", type=int, default=32_000_000, help="parameters in all (default: 32000000)")
    ap.add_argument("--json", metavar="FILE", help="save the results here (default: no file)")
    args = ap.parse_args()
    print(time.strftime("%Y-%m-%d"), cpu_info())
    try:
        import torch
    except ImportError:
        torch = None
        print("torch is not installed: its column is left out")
    results, rows = [], []
    for name in ("Adam", "SGD"):
        fns, params_of = {}, {}
        for label, fused in (("unfused", None), ("fused", True)):
            params, opt = make(args.size, name, fused)
            params_of[label] = params

            def run(params=params, opt=opt):
                nn.utils.clip_grad_norm_(params, max_norm=1.0)
                opt.step()

            fns[label] = run
        if torch is not None:
            tparams, topt = make_torch(args.size, name)
            params_of["torch"] = tparams

            def trun(tparams=tparams, topt=topt):
                torch.nn.utils.clip_grad_norm_(tparams, max_norm=1.0, foreach=True)
                topt.step()

            fns["torch"] = trun
        saved = [p.grad.numpy().copy() for p in params_of["fused"]]  # every candidate starts from these (norm ~6e4)

        def restore(label, params_of=params_of, saved=saved):  # each step clips fresh gradients, as in training
            for p, s in zip(params_of[label], saved):
                np.copyto(p.grad.numpy(), s)  # minigrad: the .grad read applies what the last step left pending

        best = best_of_interleaved(fns, args.repeat, min_time=0.0, setup=restore)
        for label, t in best.items():
            moved = BYTES[name][label] * args.size
            rows.append([name, label, fmt_time(t), f"{moved / t / 1e9:6.1f}",
                         f"{best['torch'] / t:.2f}x" if "torch" in best else "-"])
        results.append(dict(optimizer=name, **{f"t_{k}": v for k, v in best.items()}))
    print(f"\nclip_grad_norm_ + step, {args.size / 1e6:.0f}M float32 in 9 tensors, best of {args.repeat}"
          + (f", torch threads {torch.get_num_threads()}" if torch else ""))
    print(table(["optimizer", "minigrad / torch", "time", "GB/s", "torch / this"], rows))
    save_json(args.json, results)


if __name__ == "__main__":
    mg.manual_seed(0)
    main()
