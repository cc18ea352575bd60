"""Forward+backward time of minigrad's fused and composed RNN, LSTM and GRU against torch.nn's, in one run.

    python benchmarks/bench_rnn.py [--cells RNN LSTM GRU] [--steps 100 1000] [--repeat 5] [--json FILE]

B=32, I=H=128, float32, one layer (tanh for the RNN); loss = sum of outputs. Ratios > 1 mean minigrad's fused
is faster.
torch is timed with its default threads and with one thread; the table keeps its better time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_of_interleaved, fmt_time, table

import minigrad as mg
from minigrad import nn


def minigrad_step(rnn, x):
    def run():
        rnn.zero_grad()
        xt = mg.tensor(x, requires_grad=True)
        out, _ = rnn(xt)
        out.sum().backward()
    return run


def torch_step(torch, rnn, x):
    xt = torch.tensor(x)

    def run():
        rnn.zero_grad()
        xr = xt.clone().requires_grad_(True)
        out, _ = rnn(xr)
        out.sum().backward()
    return run


def with_one_thread(torch, fn):
    """fn with torch limited to one intra-op thread (on a noisy 2-core box that is sometimes faster)."""
    def run():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            fn()
        finally:
            torch.set_num_threads(threads)
    return run


def gemm_floor(steps: int, batch: int, size: int, gates: int = 1):
    """The matrix products alone that one forward+backward needs (I = H, G gate blocks: 1, 4 for the LSTM, 3 for
    the GRU): the input projection and dX (two (T·B) x H by H x G·H products), dW_ih and dW_hh (two G·H x (T·B)
    by (T·B) x H), and 2·T step products (B x H by H x G·H, and back, one per step each way). No implementation
    built on this BLAS can be faster, so torch's time over this one is the highest ratio reachable here."""
    rng = np.random.default_rng(0)
    flat = rng.standard_normal((steps * batch, size)).astype(np.float32)
    d_flat = rng.standard_normal((steps * batch, gates * size)).astype(np.float32)
    w = rng.standard_normal((gates * size, size)).astype(np.float32)
    w_t = np.ascontiguousarray(w.T)
    h, d_step = flat[:batch].copy(), d_flat[:batch].copy()
    out, d_out = np.empty((batch, gates * size), np.float32), np.empty((batch, size), np.float32)

    def run():
        flat @ w.T, d_flat @ w, d_flat.T @ flat, d_flat.T @ flat
        for _ in range(steps):
            np.matmul(h, w_t, out=out)
        for _ in range(steps):
            np.matmul(d_step, w, out=d_out)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="+", default=["RNN", "LSTM", "GRU"], choices=["RNN", "LSTM", "GRU"])
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
        print("torch is not installed: its column is left out (pip install torch)")
    results = []
    for cell in args.cells:
        gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[cell]
        rows = []
        for steps in args.steps:
            x = np.random.default_rng(0).standard_normal((steps, args.batch, args.size)).astype(np.float32)
            mg.manual_seed(0)
            fused = getattr(nn, cell)(args.size, args.size, fused=True)
            composed = getattr(nn, cell)(args.size, args.size, fused=False)
            composed.load_state_dict(fused.state_dict())
            fns = {"fused": minigrad_step(fused, x), "composed": minigrad_step(composed, x),
                   "GEMM floor": gemm_floor(steps, args.batch, args.size, gates)}
            if torch is not None:
                fns["torch"] = torch_step(torch, getattr(torch.nn, cell)(args.size, args.size), x)
                fns["torch, 1 thread"] = with_one_thread(torch, fns["torch"])
            best = best_of_interleaved(fns, args.repeat)
            t_fused, t_comp = best["fused"], best["composed"]
            t_torch = min(best["torch"], best["torch, 1 thread"]) if torch is not None else None  # torch's best
            floor = best["GEMM floor"]
            results.append(dict(cell=cell, steps=steps, fused=t_fused, composed=t_comp, torch=t_torch,
                                gemm_floor=floor))
            rows.append([f"T={steps}", fmt_time(t_fused), fmt_time(t_comp), f"{t_comp / t_fused:.2f}x",
                         fmt_time(t_torch) if t_torch else "-", f"{t_torch / t_fused:.2f}x" if t_torch else "-",
                         fmt_time(floor), f"{100 * floor / t_fused:.0f}%",
                         f"{t_torch / floor:.2f}x" if t_torch else "-"])
        print(f"{cell} forward+backward, B={args.batch}, I=H={args.size}, float32, best of {args.repeat} "
              f"(torch threads: {torch.get_num_threads() if torch else '-'}); GEMM floor: the matrix products alone "
              "(see gemm_floor), and torch/floor the best ratio reachable with this BLAS")
        print(table(["T", "fused", "composed", "composed/fused", "torch", "torch/fused", "GEMM floor",
                     "floor/fused", "torch/floor"], rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
