"""Exploding gradients and their cure, after Pascanu, Mikolov & Bengio (2013), "On the difficulty of training
recurrent neural networks".

    python examples/exploding_gradients.py [--quick] [--seeds 10] [--plot DIR] [--part all|cliff|tasks|norms]

(a) cliff:  the one-unit network x_t = w·σ(x_{t-1}) + b, x_0 = 0.5, 50 steps, loss (σ(x_50) - 0.7)². Its loss
            surface over (w, b) has a cliff; SGD with and without norm clipping from the same starts (one start
            per seed, drawn around (5, -2.2)).
(b) adding and (c) temporal order: a vanilla RNN (W_hh scaled to spectral radius 1.2, so gradients start out
            exploding) trained by SGD with no clipping, norm clipping and value clipping
            at several sequence lengths, each cell over --seeds seeds. The table gives the final training loss
            and the success rate on fresh sequences (adding: squared error < 0.04; order: the right class) as
            mean ± sd over the seeds, the runs that solved the task (success >= 90%) as k/n, and the median over
            the seeds of the largest pre-clip gradient norm.
(d) norms:  ‖∂L/∂h_t‖ over time at initialisation for a recurrent matrix with spectral radius below and
            above 1: vanishing against exploding.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

import minigrad as mg
from minigrad import nn, optim

CLIFF_START, CLIFF_LR, CLIFF_STEPS, CLIFF_MAX_NORM = (5.0, -2.2), 0.5, 40, 0.5
PLATEAU = 0.05  # a run whose final loss is above this was thrown onto the plateau (the minimum is ~0)


# ----- (a) the cliff --------------------------------------------------------------------------------------
def cliff_loss(w, b, steps: int = 50):
    """(σ(x_50) - 0.7)² for x_t = w·σ(x_{t-1}) + b; w and b may be Tensors (autograd) or arrays (a grid)."""
    x = mg.tensor(np.full(np.shape(w.data if isinstance(w, mg.Tensor) else w), 0.5))
    for _ in range(steps):
        x = w * x.sigmoid() + b
    return (x.sigmoid() - 0.7) ** 2


def cliff_start(seed: int) -> tuple[float, float]:
    """Seed 0 is CLIFF_START itself; other seeds draw a start in a small box around it."""
    if seed == 0:
        return CLIFF_START
    rng = np.random.default_rng(seed)
    return CLIFF_START[0] + rng.uniform(-0.25, 0.25), CLIFF_START[1] + rng.uniform(-0.1, 0.1)


def cliff_sgd(clip: float | None, start: tuple[float, float] = CLIFF_START
              ) -> tuple[float, np.ndarray, list[float]]:
    """SGD on (w, b) from `start`; returns the final loss, the path and the pre-clip gradient norms."""
    w = mg.tensor(np.array(start[0]), requires_grad=True)
    b = mg.tensor(np.array(start[1]), requires_grad=True)
    path, norms = [start], []
    for _ in range(CLIFF_STEPS):
        w.grad = b.grad = None
        cliff_loss(w, b).backward()
        if clip is None:
            norm = nn.utils.get_total_norm([w.grad, b.grad])
        else:
            norm = nn.utils.clip_grad_norm_([w, b], max_norm=clip)
        norms.append(norm.item())
        w.data -= CLIFF_LR * w.grad
        b.data -= CLIFF_LR * b.grad
        path.append((w.item(), b.item()))
    with mg.no_grad():
        return cliff_loss(w, b).item(), np.array(path), norms


def run_cliff(seeds: list[int], plot_dir: str | None) -> dict:
    methods = (("no clipping", None), ("norm clipping", CLIFF_MAX_NORM))
    runs = {name: [cliff_sgd(clip, cliff_start(seed)) for seed in seeds] for name, clip in methods}
    print(f"(a) one-unit RNN, SGD lr={CLIFF_LR} for {CLIFF_STEPS} steps from {len(seeds)} starts around "
          f"(w, b) = {CLIFF_START} (seeds {seeds[0]}-{seeds[-1]}); norm clipping at {CLIFF_MAX_NORM}")
    print(f"    {'':14s}  {'final loss (mean ± sd)':>22s}  {'on the plateau':>14s}  {'largest gradient norm':>21s}")
    out = {}
    for name, results in runs.items():
        losses = np.array([r[0] for r in results])
        peaks = np.array([max(r[2]) for r in results])
        plateau = int(np.sum(losses > PLATEAU))
        out[name] = dict(losses=losses, plateau=plateau, peaks=peaks)
        print(f"    {name:14s}  {losses.mean():10.4f} ± {losses.std():<9.4f}  {plateau:>9d}/{len(seeds):<4d}  "
              f"{'median':>8s} {np.median(peaks):6.2f}, max {peaks.max():.1f}")
    lower = int(np.sum(out["norm clipping"]["losses"] < out["no clipping"]["losses"]))
    print(f"    norm clipping ended lower than no clipping from {lower}/{len(seeds)} starts "
          f"(on the plateau: final loss > {PLATEAU})")
    out["clipped_lower"] = lower
    if plot_dir and (plt := _common.pyplot()):
        w, b = np.meshgrid(np.linspace(1, 8, 300), np.linspace(-8, 1, 300))
        with mg.no_grad():
            surface = cliff_loss(mg.tensor(w), mg.tensor(b)).data
        fig, ax = plt.subplots(figsize=(6, 5))
        cs = ax.contourf(w, b, surface, levels=30, cmap="viridis")
        fig.colorbar(cs, label="loss")
        for (name, results), color in zip(runs.items(), ("red", "white")):
            ax.plot(results[0][1][:, 0], results[0][1][:, 1], "o-", ms=3, color=color, label=name)
        ax.set(xlabel="w", ylabel="b", title=f"the cliff: SGD from {CLIFF_START} with and without norm clipping",
               xlim=(1, 8), ylim=(-8, 1))
        ax.legend(loc="lower right")
        save(fig, plot_dir, "cliff.png")
    return out


# ----- (b), (c) the long-memory tasks -----------------------------------------------------------------------
def adding_batch(rng, batch: int, steps: int):
    """Values in [0, 1] and two markers (one in each half); the target is the sum of the marked values."""
    x = np.zeros((steps, batch, 2), np.float32)
    x[:, :, 0] = rng.random((steps, batch))
    first = rng.integers(0, max(1, steps // 2), batch)
    second = rng.integers(steps // 2, steps, batch)
    x[first, np.arange(batch), 1] = 1
    x[second, np.arange(batch), 1] = 1
    y = x[first, np.arange(batch), 0] + x[second, np.arange(batch), 0]
    return x, y.astype(np.float32)


def order_batch(rng, batch: int, steps: int):
    """Distractor symbols with A or B at two positions (early, middle); the class is the ordered pair."""
    n_sym = 6  # symbols 0..3 distract, 4 = A, 5 = B
    sym = rng.integers(0, 4, (steps, batch))
    first = rng.integers(0, max(1, steps // 3), batch)
    second = rng.integers(steps // 3, max(steps // 3 + 1, 2 * steps // 3), batch)
    a, b = rng.integers(0, 2, batch), rng.integers(0, 2, batch)
    sym[first, np.arange(batch)] = 4 + a
    sym[second, np.arange(batch)] = 4 + b
    return np.eye(n_sym, dtype=np.float32)[sym], (2 * a + b).astype(np.int64)


class Reader(nn.Module):
    """An RNN that reads a sequence and answers from its last hidden state."""

    def __init__(self, n_in: int, hidden: int, n_out: int, radius: float):
        super().__init__()
        self.rnn = nn.RNN(n_in, hidden)
        self.head = nn.Linear(hidden, n_out)
        set_spectral_radius(self.rnn.weight_hh_l0, radius)

    def forward(self, x):
        _, h = self.rnn(mg.tensor(x))
        return self.head(h[-1])


def set_spectral_radius(weight: nn.Parameter, radius: float) -> None:
    weight.data *= radius / np.max(np.abs(np.linalg.eigvals(weight.data.astype(np.float64))))


TASKS = {
    "adding": dict(batch=adding_batch, n_in=2, n_out=1,
                   loss=lambda out, y: nn.functional.mse_loss(out.squeeze(1), mg.tensor(y)),
                   solved=lambda out, y: (out[:, 0] - y) ** 2 < 0.04),
    "order": dict(batch=order_batch, n_in=6, n_out=4,
                  loss=lambda out, y: nn.functional.cross_entropy(out, y),
                  solved=lambda out, y: out.argmax(axis=1) == y),
}
METHODS = {"none": None, "norm": ("norm", 1.0), "value": ("value", 0.1)}


SOLVED = 0.9  # a run solved its task when it answers at least this share of fresh sequences right


def train_task(task: str, steps: int, method: str, seed: int, updates: int, lr: float, radius: float) -> dict:
    spec = TASKS[task]
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Reader(spec["n_in"], 32, spec["n_out"], radius=radius)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    norms, losses = [], []
    for _ in range(updates):
        x, y = spec["batch"](rng, 32, steps)
        opt.zero_grad()
        loss = spec["loss"](model(x), y)
        loss.backward()
        if METHODS[method] is None:
            norm = nn.utils.get_total_norm([p.grad for p in model.parameters()])
        elif METHODS[method][0] == "norm":
            norm = nn.utils.clip_grad_norm_(model.parameters(), METHODS[method][1])
        else:
            norm = nn.utils.get_total_norm([p.grad for p in model.parameters()])
            nn.utils.clip_grad_value_(model.parameters(), METHODS[method][1])
        norms.append(norm.item())
        losses.append(loss.item())
        opt.step()
    x, y = spec["batch"](np.random.default_rng(10_000 + seed), 500, steps)
    with mg.no_grad():
        out = model(x).data
    final = float(np.mean(losses[-max(1, updates // 10):]))
    return dict(loss=final if np.isfinite(final) else float("inf"),
                success=float(np.mean(spec["solved"](np.nan_to_num(out), y))),
                peak=float(np.nanmax(norms)) if np.any(np.isfinite(norms)) else float("inf"))


def _train_job(job: tuple) -> tuple:
    return job, train_task(*job)


def run_tasks(lengths: list[int], seeds: list[int], updates: int, lr: float, radius: float,
              plot_dir: str | None, jobs: int = 1) -> list[dict]:
    cells = [(task, steps, method) for task in TASKS for steps in lengths for method in METHODS]
    work = [(task, steps, method, seed, updates, lr, radius) for task, steps, method in cells for seed in seeds]
    print(f"\n(b, c) vanilla RNN (H=32, spectral radius {radius}), SGD lr={lr} momentum 0.9, {updates} updates of "
          f"32, {len(seeds)} seeds ({seeds[0]}-{seeds[-1]}); norm clip at 1.0, value clip at 0.1; mean ± sd over "
          f"the seeds, solved = success >= {SOLVED:.0%}")
    results: dict = {}
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for job, res in _common.progress(pool.imap_unordered(_train_job, work), len(work), "training"):
                results[job] = res
    else:
        for job in _common.progress(work, len(work), "training"):
            results[job] = train_task(*job)
    print(f"{'task':8s} {'T':>4s} {'clipping':>8s} {'final loss':>17s} {'success':>15s} {'solved':>7s} "
          f"{'peak norm':>10s}")
    rows = []
    for task, steps, method in cells:
        runs = [results[(task, steps, method, seed, updates, lr, radius)] for seed in seeds]
        loss = np.array([r["loss"] for r in runs])
        success = np.array([r["success"] for r in runs])
        row = dict(task=task, T=steps, method=method, loss=float(np.mean(loss)), loss_sd=float(np.std(loss)),
                   success=float(np.mean(success)), success_sd=float(np.std(success)),
                   solved=int(np.sum(success >= SOLVED)), runs=len(runs),
                   peak=float(np.median([r["peak"] for r in runs])))
        rows.append(row)
        print(f"{task:8s} {steps:4d} {method:>8s} {row['loss']:8.4f} ± {row['loss_sd']:<6.4f} "
              f"{row['success']:6.1%} ± {row['success_sd']:<6.1%} {row['solved']:>3d}/{row['runs']:<3d} "
              f"{row['peak']:10.3g}")
    if plot_dir and (plt := _common.pyplot()):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for ax, task in zip(axes, TASKS):
            for method in METHODS:
                t, m, sd = zip(*[(r["T"], r["success"], r["success_sd"]) for r in rows
                                 if r["task"] == task and r["method"] == method])
                ax.errorbar(t, m, yerr=sd, fmt="o-", capsize=3, label=method)
            ax.set(title=f"{task}: success on fresh sequences (mean ± sd, {len(seeds)} seeds)",
                   xlabel="sequence length", ylim=(0, 1.05))
            ax.legend(title="clipping")
        save(fig, plot_dir, "tasks.png")
    return rows


# ----- (d) per-step gradient norms at initialisation ---------------------------------------------------------
def hidden_grad_profile(radius: float, steps: int, seed: int) -> np.ndarray:
    mg.manual_seed(seed)
    rnn = nn.RNN(4, 32).double()
    set_spectral_radius(rnn.weight_hh_l0, radius)
    rnn.bias_ih_l0.data[:] = rnn.bias_hh_l0.data[:] = 0  # tiny inputs, no bias: tanh stays in its linear part
    rnn.track_hidden_grads = True
    x = np.random.default_rng(seed).standard_normal((steps, 8, 4)) * 1e-6
    out, _ = rnn(mg.tensor(x))
    out[-1].sum().backward()  # the loss reads only the last step
    return rnn.hidden_grad_norms[0]


def run_norms(steps: int, seed: int, plot_dir: str | None) -> dict:
    profiles = {r: hidden_grad_profile(r, steps, seed) for r in (0.8, 1.2)}
    print(f"\n(d) ‖∂L/∂h_t‖ at initialisation, loss on the last of {steps} steps")
    marks = [0, steps // 4, steps // 2, 3 * steps // 4, steps - 1]
    print("    spectral radius  " + "".join(f"{'t=' + str(t):>11s}" for t in marks))
    for r, prof in profiles.items():
        print(f"    {r:15.1f}  " + "".join(f"{prof[t]:11.3e}" for t in marks))
    if plot_dir and (plt := _common.pyplot()):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for r, prof in profiles.items():
            ax.semilogy(prof, label=f"spectral radius {r}")
        ax.set(xlabel="time step t", ylabel="‖∂L/∂h_t‖", title="vanishing vs exploding, at initialisation")
        ax.legend()
        save(fig, plot_dir, "hidden_grad_norms.png")
    return profiles


def save(fig, plot_dir: str, name: str) -> None:
    os.makedirs(plot_dir, exist_ok=True)
    path = os.path.join(plot_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"    wrote {path}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="seconds, not minutes: T = 10 and 30, 150 updates, a harsher start (lr 0.05, radius 1.5)")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (default: 0)")
    ap.add_argument("--seeds", type=int, default=None,
                    help="how many seeds per cell of the table and starts of the cliff (default: 10; 2 with --quick)")
    ap.add_argument("--plot", metavar="DIR", help="write the figures into this folder (default: no figures)")
    ap.add_argument("--part", choices=["all", "cliff", "tasks", "norms"], default="all",
                    help="which part to run (default: all)")
    ap.add_argument("--lr", type=float, default=None,
                    help="SGD learning rate for the tasks (default: 0.02; 0.05 with --quick)")
    ap.add_argument("--radius", type=float, default=None,
                    help="initial spectral radius of W_hh for the tasks (default: 1.2; 1.5 with --quick)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="worker processes for the tasks (default: the number of CPUs; 1 with --quick)")
    args = ap.parse_args(argv)
    # --quick has 150 updates, not 1000: a harsher start (bigger steps, more expansive W_hh) makes the
    # explosions show up within them
    args.lr = args.lr if args.lr is not None else (0.05 if args.quick else 0.02)
    args.radius = args.radius if args.radius is not None else (1.5 if args.quick else 1.2)
    args.seeds = args.seeds if args.seeds is not None else (2 if args.quick else 10)
    args.jobs = args.jobs if args.jobs is not None else (1 if args.quick else os.cpu_count() or 1)
    if args.lr <= 0 or args.radius <= 0:
        ap.error("--lr and --radius must be > 0")
    if args.seeds < 1 or args.jobs < 1:
        ap.error("--seeds and --jobs must be >= 1")
    seeds = list(range(args.seed, args.seed + args.seeds))
    out = {}
    if args.part in ("all", "cliff"):
        out["cliff"] = run_cliff(list(range(args.seed, args.seed + max(args.seeds, 10))), args.plot)
    if args.part in ("all", "tasks"):
        lengths, updates = ([10, 30], 150) if args.quick else ([20, 50], 1000)
        out["tasks"] = run_tasks(lengths, seeds, updates, args.lr, args.radius, args.plot, args.jobs)
    if args.part in ("all", "norms"):
        out["norms"] = run_norms(40, args.seed, args.plot)
    return out


if __name__ == "__main__":
    main()
