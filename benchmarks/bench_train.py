"""The seed's loop end to end: examples/train_rnn.py under minigrad and, when installed, the same file with
torch's imports (`import torch`, `from torch import nn, optim`, `torch.nn.utils.rnn`), epoch time side by side.

    python benchmarks/bench_train.py [--repeat 3] [--epochs 2] [--quick] [--json FILE] [--profile]

Each run is a fresh subprocess (the two libraries never share a process); the candidates take turns, and
the table reports the best epoch over all runs. --profile prints where minigrad's epoch goes (cProfile).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _timing import cpu_info, fmt_time, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "train_rnn.py")
TORCH_IMPORTS = [("import minigrad as torch", "import torch"),
                 ("from minigrad import nn, optim", "from torch import nn, optim"),
                 ("from minigrad.nn.utils.rnn import", "from torch.nn.utils.rnn import")]

RUNNER = """
import json, sys, runpy, io, contextlib
sys.path.insert(0, {examples!r})
sys.argv = ["train_rnn.py", *{argv!r}]
source = open({path!r}).read()
for a, b in {replace!r}:
    assert a in source, a
    source = source.replace(a, b)
namespace = {{"__name__": "bench", "__file__": {path!r}}}
exec(compile(source, {path!r}, "exec"), namespace)
with contextlib.redirect_stdout(io.StringIO()):
    history = namespace["main"](sys.argv[1:])
print(json.dumps({{"epoch_time": history["epoch_time"], "acc": history["epoch_acc"][-1]}}))
"""


def run(library: str, argv: list[str]) -> dict:
    code = RUNNER.format(examples=os.path.dirname(EXAMPLE), argv=argv, path=EXAMPLE,
                         replace=TORCH_IMPORTS if library == "torch" else [])
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"{library} run failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def profile(argv: list[str]) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, os.path.dirname(EXAMPLE))
    import train_rnn

    train_rnn.main(argv)  # compile and warm the caches
    prof = cProfile.Profile()
    prof.enable()
    train_rnn.main(argv)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs per library (default: 3)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run; the first includes warm-up (default: 2)")
    ap.add_argument("--quick", action="store_true", help="train_rnn.py --quick (a smaller model and data)")
    ap.add_argument("--json", metavar="FILE", help="save the results here (default: no file)")
    ap.add_argument("--profile", action="store_true", help="print minigrad's cProfile of one run instead")
    args = ap.parse_args()
    argv = ["--epochs", str(args.epochs)] + (["--quick"] if args.quick else [])
    if args.profile:
        profile(argv)
        return
    print(time.strftime("%Y-%m-%d"), cpu_info())
    libraries = ["minigrad"]
    try:
        import torch

        libraries.append("torch")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        print("torch is not installed: its column is left out")
    best = {lib: float("inf") for lib in libraries}
    acc = {}
    for _ in range(args.repeat):
        for lib in libraries:
            out = run(lib, argv)
            best[lib] = min(best[lib], *out["epoch_time"][1:] or out["epoch_time"])
            acc[lib] = out["acc"]
    rows = [[lib, fmt_time(best[lib]), f"{acc[lib]:.3f}",
             f"{best['torch'] / best[lib]:.2f}x" if "torch" in best else "-"] for lib in libraries]
    print(f"\ntrain_rnn.py {' '.join(argv)}: best epoch (after the first) over {args.repeat} runs each")
    print(table(["library", "epoch", "last accuracy", "torch / this"], rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"best_epoch": best, "argv": argv}, f, indent=2)


if __name__ == "__main__":
    main()
