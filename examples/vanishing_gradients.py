"""Vanishing gradients and their cures, side by side: which ones let a recurrent network learn dependencies that
span 50 to 200 steps.

    python examples/vanishing_gradients.py [--quick] [--seeds 5] [--lengths 50 100 200] [--plot DIR]
                                           [--tasks order adding] [--updates 5000] [--jobs N]

Tasks (Hochreiter & Schmidhuber 1997, as Pascanu, Mikolov & Bengio 2013 used them): temporal order (two marked
symbols, A or B, among distractors, one in the first and one in the middle third; the class is the ordered pair)
and adding (two marked values in [0, 1], one in each half; the target is their sum). Methods, each trained by SGD
(momentum 0.9) on batches of 20, H = 50, reading out the last hidden state:

    sgd          tanh RNN, torch's init, no clipping
    clip         the same with clip_grad_norm_(max_norm=1)
    clip+omega   the same plus Pascanu et al.'s regularizer Ω (alpha = 2, nn.utils.vanishing_gradient_regularizer_)
    irnn         relu RNN with W_hh = I and zero biases (Le, Jaitly & Hinton 2015), clipped
    orthogonal   tanh RNN with an orthogonal W_hh (nn.init.orthogonal_), clipped
    lstm, gru    nn.LSTM and nn.GRU, clipped

A run solves a task when it errs on under 1% of 1000 fresh sequences (the paper's criterion; adding: an error is
a squared error over 0.04); it is checked every 250 updates and stops when solved. The table gives the success
rate over the seeds per length, the figure success against length, and the profiles ‖∂L/∂h_t‖ / ‖∂L/∂h_T‖ of each
method at initialisation and after training (seed 0, the longest length): how far back a gradient reaches.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common
from exploding_gradients import adding_batch, order_batch

import minigrad as mg
from minigrad import nn, optim

METHODS = ["sgd", "clip", "clip+omega", "irnn", "orthogonal", "lstm", "gru"]
TASKS = {"order": dict(batch=order_batch, n_in=6, n_out=4), "adding": dict(batch=adding_batch, n_in=2, n_out=1)}
MAX_NORM, ALPHA, BATCH, CHECK_EVERY, ERROR_RATE = 1.0, 2.0, 20, 250, 0.01


class Reader(nn.Module):
    """A recurrent network (one of METHODS) that reads a sequence and answers from its last hidden state."""

    def __init__(self, method: str, n_in: int, hidden: int, n_out: int):
        super().__init__()
        if method in ("lstm", "gru"):
            self.rnn = (nn.LSTM if method == "lstm" else nn.GRU)(n_in, hidden)
        else:
            self.rnn = nn.RNN(n_in, hidden, nonlinearity="relu" if method == "irnn" else "tanh")
        if method == "irnn":
            nn.init.eye_(self.rnn.weight_hh_l0)
            nn.init.zeros_(self.rnn.bias_ih_l0)
            nn.init.zeros_(self.rnn.bias_hh_l0)
        elif method == "orthogonal":
            nn.init.orthogonal_(self.rnn.weight_hh_l0)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        out, _ = self.rnn(mg.tensor(x))
        return self.head(out[-1])


def loss_of(task: str, out, y):
    if task == "order":
        return nn.functional.cross_entropy(out, mg.tensor(y))
    return nn.functional.mse_loss(out.squeeze(1), mg.tensor(y))


def error_rate(task: str, model: Reader, rng, steps: int, n: int = 1000) -> float:
    x, y = TASKS[task]["batch"](rng, n, steps)
    with mg.no_grad():
        out = np.nan_to_num(model(x).data, nan=1e9)
    wrong = out.argmax(axis=1) != y if task == "order" else (out[:, 0] - y) ** 2 > 0.04
    return float(np.mean(wrong))


def profile(task: str, model: Reader, rng, steps: int) -> np.ndarray:
    """‖∂L/∂h_t‖ / ‖∂L/∂h_T‖ over t for one batch (how far back the gradient of the answer reaches)."""
    x, y = TASKS[task]["batch"](rng, BATCH, steps)
    model.rnn.track_hidden_grads = True
    model.zero_grad()
    loss_of(task, model(x), y).backward()
    model.rnn.track_hidden_grads = False
    norms = model.rnn.hidden_grad_norms[0]
    return norms / max(norms[-1], 1e-300)


def train(task: str, method: str, steps: int, seed: int, updates: int, lr: float, hidden: int,
          with_profiles: bool = False) -> dict:
    spec = TASKS[task]
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Reader(method, spec["n_in"], hidden, spec["n_out"])
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    result = dict(solved_at=None, error=1.0)
    if with_profiles:
        result["profile_init"] = profile(task, model, np.random.default_rng(1), steps)
    model.rnn.track_hidden_grads = method == "clip+omega"
    for update in range(1, updates + 1):
        x, y = spec["batch"](rng, BATCH, steps)
        opt.zero_grad()
        loss = loss_of(task, model(x), y)
        loss.backward()
        if method == "clip+omega":
            nn.utils.vanishing_gradient_regularizer_(model.rnn, alpha=ALPHA)
        if method != "sgd":
            nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        opt.step()
        if update % CHECK_EVERY == 0 or update == updates:
            result["error"] = error_rate(task, model, np.random.default_rng(10_000 + seed), steps)
            if result["error"] < ERROR_RATE:
                result["solved_at"] = update
                break
    if with_profiles:
        result["profile_trained"] = profile(task, model, np.random.default_rng(1), steps)
    return result


def _job(job: tuple) -> tuple:
    return job, train(*job)


def run(tasks: list[str], lengths: list[int], seeds: list[int], updates: int, lr: float, hidden: int,
        jobs: int, plot_dir: str | None) -> dict:
    work = [(task, method, steps, seed, updates, lr, hidden, seed == seeds[0] and steps == max(lengths))
            for task in tasks for steps in lengths for method in METHODS for seed in seeds]
    results: dict = {}
    if jobs > 1:
        import multiprocessing

        # one BLAS thread per worker: workers with several each oversubscribe the cores, and OpenBLAS's waiting
        # threads then slow the small products of these runs by an order of magnitude
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for job, res in _common.progress(pool.imap_unordered(_job, work), len(work), "training"):
                results[job[:4]] = res
    else:
        for job in _common.progress(work, len(work), "training"):
            results[job[:4]] = train(*job)
    print(f"SGD lr={lr} momentum 0.9, batches of {BATCH}, H={hidden}, at most {updates} updates; solved: under "
          f"{ERROR_RATE:.0%} errors on 1000 fresh sequences; seeds {seeds[0]}-{seeds[-1]}")
    rows = []
    for task in tasks:
        print(f"\n{task}: runs solved out of {len(seeds)} (median updates to solve)")
        print(f"{'method':12s}" + "".join(f"{'T=' + str(t):>16s}" for t in lengths))
        for method in METHODS:
            line = f"{method:12s}"
            for steps in lengths:
                runs = [results[(task, method, steps, s)] for s in seeds]
                at = [r["solved_at"] for r in runs if r["solved_at"] is not None]
                rows.append(dict(task=task, method=method, T=steps, solved=len(at), runs=len(runs),
                                 median_updates=float(np.median(at)) if at else None,
                                 errors=[r["error"] for r in runs]))
                line += f"{len(at):>8d}/{len(runs)}" + (f" ({int(np.median(at)):>5d})" if at else " " * 8)
            print(line)
    profiles = {(task, method): results[(task, method, max(lengths), seeds[0])] for task in tasks
                for method in METHODS}
    print(f"\nhow far back the gradient reaches (seed {seeds[0]}, T={max(lengths)}): ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖")
    print(f"{'method':12s}" + "".join(f"{task + ' ' + when:>22s}" for task in tasks for when in ("init", "trained")))
    for method in METHODS:
        print(f"{method:12s}" + "".join(f"{profiles[(task, method)]['profile_' + when][0]:>22.3g}"
                                        for task in tasks for when in ("init", "trained")))
    if plot_dir and (plt := _common.pyplot()):
        plot(plt, tasks, lengths, seeds, rows, profiles, plot_dir)
    return dict(rows=rows, profiles={k: (v["profile_init"], v["profile_trained"]) for k, v in profiles.items()})


def plot(plt, tasks, lengths, seeds, rows, profiles, plot_dir) -> None:
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for method in METHODS:
            rate = [r["solved"] / r["runs"] for r in rows if r["task"] == task and r["method"] == method]
            ax.plot(lengths, rate, "o-", label=method)
        ax.set(title=f"{task}: runs solved ({len(seeds)} seeds)", xlabel="sequence length", ylim=(-0.05, 1.05))
    axes[0][-1].legend(fontsize=8)
    _save(fig, plot_dir, "vanishing_success.png")
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.2 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        for col, when in enumerate(("at initialisation", "after training")):
            ax = axes[row][col]
            for method in METHODS:
                ax.semilogy(profiles[(task, method)]["profile_init" if col == 0 else "profile_trained"], label=method)
            ax.set(title=f"{task}, T={max(lengths)}: ‖∂L/∂h_t‖ / ‖∂L/∂h_T‖ {when}", xlabel="t")
    axes[0][1].legend(fontsize=8)
    _save(fig, plot_dir, "vanishing_profiles.png")


def _save(fig, plot_dir: str, name: str) -> None:
    os.makedirs(plot_dir, exist_ok=True)
    fig.tight_layout()
    fig.savefig(os.path.join(plot_dir, name), dpi=110)
    print(f"wrote {os.path.join(plot_dir, name)}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="seconds: T = 8 and 16, H = 16, 100 updates, 2 seeds")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (default: 0)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: 5; 2 with --quick)")
    ap.add_argument("--lengths", type=int, nargs="+", default=None, help="sequence lengths (default: 50 100 200)")
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=["order", "adding"],
                    help="which tasks (default: order adding)")
    ap.add_argument("--updates", type=int, default=None, help="at most this many updates a run (default: 5000)")
    ap.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default: 0.01)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs; 1 with --quick)")
    ap.add_argument("--plot", metavar="DIR", help="write the figures into this folder (default: no figures)")
    args = ap.parse_args(argv)
    seeds = list(range(args.seed, args.seed + (args.seeds or (2 if args.quick else 5))))
    lengths = args.lengths or ([8, 16] if args.quick else [50, 100, 200])
    updates = args.updates or (100 if args.quick else 5000)
    jobs = args.jobs or (1 if args.quick else os.cpu_count() or 1)
    if min(lengths) < 3 or updates < 1 or jobs < 1 or args.lr <= 0 or len(seeds) < 1:
        ap.error("--lengths must be >= 3, --updates, --jobs and --seeds >= 1, --lr > 0")
    return run(args.tasks, lengths, seeds, updates, args.lr, 16 if args.quick else 50, jobs, args.plot)


if __name__ == "__main__":
    main()
