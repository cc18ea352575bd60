"""What max_norm should I use? The seed's last paragraph as an experiment.

    python examples/choose_threshold.py [--quick] [--seeds 5] [--plot FILE] [--jobs N]

The threshold "can be configured by trial and error, by using common values used in the literature, or by
first observing common vector norms or ranges via experimentation and then choosing a sensible value".
On two tasks — the temporal-order task of exploding_gradients.py (T = 20, W_hh at spectral radius 1.2, SGD with
momentum) and train_rnn.py's marker task (Adam) — this script does each of those, every point over --seeds seeds:

(a) observe: a pilot run without clipping records the gradient norms (nn.utils.GradNormMonitor) and prints
    their quantiles and the suggested max_norm (their 90th percentile);
(b) trial and error: clip_grad_norm_ at every max_norm of a log grid from 0.01 to 100, and no clipping; the
    final loss as mean ± sd over the seeds;
(c) the adaptive tools on the same scale: the suggestion from (a) (each seed clipped at its own pilot run's
    suggestion), AutoClip (the 10th percentile of the norms so far), AGC (clip_factor 0.01) and, for Adam,
    update clipping (update_clip 1.0);
(d) --plot: the loss-against-max_norm curves with (c) marked on them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common
import exploding_gradients as eg

import minigrad as mg
from minigrad import nn, optim

GRID = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
QUICK_GRID = [0.1, 1.0, 10.0]
ADAPTIVE = ["suggestion", "autoclip", "agc", "update clip"]


# ----- the order task --------------------------------------------------------------------------------------------
def order_run(seed: int, method: str, value: float | None, updates: int, steps: int, observe: int = 0) -> dict:
    """Train exploding_gradients' Reader on the order task; clip by `method` ("none", "norm" with max_norm
    `value`, "autoclip", "agc"). With `observe`, only record the norms of that many unclipped updates."""
    spec = eg.TASKS["order"]
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = eg.Reader(spec["n_in"], 32, spec["n_out"], radius=1.2)
    opt = optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    monitor = nn.utils.GradNormMonitor(model) if observe else None
    autoclip = nn.utils.AutoClip(model.parameters(), percentile=10.0) if method == "autoclip" else None
    losses = []
    for _ in range(observe or updates):
        x, y = spec["batch"](rng, 32, steps)
        opt.zero_grad()
        loss = spec["loss"](model(x), y)
        loss.backward()
        if monitor is not None:
            monitor.record()
        elif method == "norm":
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=value)
        elif method == "autoclip":
            autoclip()
        elif method == "agc":
            nn.utils.adaptive_clip_grad_(model.parameters(), clip_factor=value)
        opt.step()
        losses.append(loss.item())
    if monitor is not None:
        return {"suggestion": monitor.suggest_max_norm(), "quantiles": monitor.quantiles()}
    final = float(np.mean(losses[-max(1, updates // 10):]))
    return {"loss": final if np.isfinite(final) else float("inf")}


# ----- train_rnn -------------------------------------------------------------------------------------------------
def train_rnn_run(seed: int, method: str, value: float | None, epochs: int, quick: bool, observe: bool = False) -> dict:
    import train_rnn

    argv = ["--seed", str(seed), "--epochs", str(1 if observe else epochs)] + (["--quick"] if quick else [])
    if observe:
        with tempfile.TemporaryDirectory() as tmp:
            with contextlib.redirect_stdout(io.StringIO()):
                history = train_rnn.main(argv + ["--clip", "none", "--monitor", os.path.join(tmp, "m.png")])
        return {"suggestion": history["suggested_max_norm"]}
    extra = {"none": ["--clip", "none"], "norm": ["--clip", "norm", "--max-norm", str(value)],
             "autoclip": ["--clip", "autoclip"], "agc": ["--clip", "agc", "--clip-factor", str(value)],
             "update clip": ["--clip", "none", "--update-clip", str(value)]}[method]
    with contextlib.redirect_stdout(io.StringIO()):
        history = train_rnn.main(argv + extra)
    return {"loss": float(history["epoch_loss"][-1]), "accuracy": float(history["epoch_acc"][-1])}


def _job(job: tuple) -> tuple:
    task, seed, method, value, args = job
    if task == "order":
        if method == "suggestion":
            suggestion = order_run(seed, "none", None, 0, args["steps"], observe=args["observe"])["suggestion"]
            return job, {**order_run(seed, "norm", suggestion, args["updates"], args["steps"]),
                         "max_norm": suggestion}
        return job, order_run(seed, method, value, args["updates"], args["steps"])
    if method == "suggestion":
        suggestion = train_rnn_run(seed, "none", None, 1, args["quick"], observe=True)["suggestion"]
        return job, {**train_rnn_run(seed, "norm", suggestion, args["epochs"], args["quick"]), "max_norm": suggestion}
    return job, train_rnn_run(seed, method, value, args["epochs"], args["quick"])


def plan(seeds: list[int], grid: list[float], quick: bool) -> list[tuple]:
    order = dict(steps=10 if quick else 20, updates=150 if quick else 1000, observe=50 if quick else 200)
    rnn = dict(epochs=3 if quick else 5, quick=quick)
    jobs = []
    for task, args in (("order", order), ("train_rnn", rnn)):
        methods = [("none", None)] + [("norm", v) for v in grid] + [("suggestion", None), ("autoclip", None),
                                                                     ("agc", 0.01)]
        if task == "train_rnn":
            methods.append(("update clip", 1.0))
        jobs += [(task, seed, m, v, args) for m, v in methods for seed in seeds]
    return jobs


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="seconds: 3 grid points, short runs, 2 seeds")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (default: 0)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per point (default: 5; 2 with --quick)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="worker processes (default: the number of CPUs; 1 with --quick)")
    ap.add_argument("--plot", metavar="FILE", help="write the sweep figure to this PNG (default: no figure)")
    args = ap.parse_args(argv)
    n_seeds = args.seeds if args.seeds is not None else (2 if args.quick else 5)
    jobs_n = args.jobs if args.jobs is not None else (1 if args.quick else os.cpu_count() or 1)
    if n_seeds < 1 or jobs_n < 1:
        ap.error("--seeds and --jobs must be >= 1")
    seeds = list(range(args.seed, args.seed + n_seeds))
    grid = QUICK_GRID if args.quick else GRID
    work = plan(seeds, grid, args.quick)
    results: dict = {}
    if jobs_n > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs_n) as pool:
            for job, res in _common.progress(pool.imap_unordered(_job, work), len(work), "runs"):
                results[job[:4]] = res
    else:
        for job in _common.progress(work, len(work), "runs"):
            results[job[:4]] = _job(job)[1]
    table = report(results, seeds, grid)
    if args.plot:
        plot(table, grid, args.plot, steps=10 if args.quick else 20)
    return table


def report(results: dict, seeds: list[int], grid: list[float]) -> dict:
    table: dict = {}
    for task in ("order", "train_rnn"):
        rows = {}
        for (t, _, method, value), res in results.items():
            if t == task:
                rows.setdefault((method, value), []).append(res)
        table[task] = {}
        print(f"\n{task}: final loss over {len(seeds)} seeds (seeds {seeds[0]}-{seeds[-1]})")
        print(f"  {'clipping':>22s} {'final loss (mean ± sd)':>24s} {'best':>8s} {'worst':>8s}")
        for (method, value), runs in sorted(rows.items(), key=lambda kv: (kv[0][0] != "none", kv[0][0] != "norm",
                                                                           kv[0][0], kv[0][1] or 0)):
            loss = np.array([r["loss"] for r in runs])
            finite = loss[np.isfinite(loss)]
            entry = dict(mean=float(np.mean(loss)), sd=float(np.std(loss)), runs=len(loss),
                         diverged=int(np.sum(~np.isfinite(loss))))
            if "max_norm" in runs[0]:
                entry["max_norm"] = float(np.median([r["max_norm"] for r in runs]))
            table[task][(method, value)] = entry
            label = (f"max_norm {value:g}" if method == "norm" else
                     f"suggestion (~{entry['max_norm']:.3g})" if method == "suggestion" else
                     method + (f" {value:g}" if value is not None else ""))
            spread = (f"{finite.min():8.4f} {finite.max():8.4f}" if finite.size else f"{'-':>8s} {'-':>8s}")
            diverged = f"  ({entry['diverged']} diverged)" if entry["diverged"] else ""
            print(f"  {label:>22s} {entry['mean']:12.4f} ± {entry['sd']:<9.4f} {spread}{diverged}")
    return table


def plot(table: dict, grid: list[float], path: str, steps: int) -> None:
    plt = _common.pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    markers = {"suggestion": ("*", "red"), "autoclip": ("s", "green"), "agc": ("^", "purple"),
               "update clip": ("D", "orange")}
    for ax, task in zip(axes, ("order", "train_rnn")):
        rows = table[task]
        means = [rows[("norm", v)]["mean"] for v in grid]
        sds = [rows[("norm", v)]["sd"] for v in grid]
        ax.errorbar(grid, means, yerr=sds, fmt="o-", capsize=3, label="clip_grad_norm_ at max_norm")
        none = rows[("none", None)]
        ax.axhline(none["mean"], color="gray", ls="--", label=f"no clipping ({none['mean']:.3f})")
        beyond = grid[-1]
        for (method, _), entry in sorted(rows.items(), key=lambda kv: kv[0][0]):
            if method not in markers:
                continue
            if "max_norm" in entry:  # the suggestion sits at the max_norm it suggested
                x = entry["max_norm"]
            else:  # the others set no single max_norm: to the right of the grid, labelled
                beyond *= 3
                x = beyond
                ax.annotate(method, (x, entry["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
            marker, color = markers[method]
            ax.errorbar([x], [entry["mean"]], yerr=[entry["sd"]], fmt=marker, color=color, capsize=3,
                        label=f"{method}{' (at its max_norm)' if 'max_norm' in entry else ' (no fixed max_norm)'}")
        title = {"order": f"temporal order, T={steps}, SGD", "train_rnn": "train_rnn.py marker task, Adam"}[task]
        ax.set(xscale="log", xlabel="max_norm", ylabel="final training loss (mean ± sd)", title=title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
