"""Best-of-N timing shared by the benchmark scripts (these 2-core machines are noisy: report the best)."""
from __future__ import annotations

import os
import time
from typing import Callable


def best_of_interleaved(fns: dict[str, Callable[[], object]], repeat: int = 7, min_time: float = 0.05,
                        setup: Callable[[str], object] | None = None) -> dict[str, float]:
    """The fastest time per call of each candidate over `repeat` rounds (each round looping for about
    `min_time` seconds), taking turns each round so that load drifting over the run (these
    machines are shared) hits every candidate alike.

    `setup(name)`, when given, runs untimed before every call of candidate `name` (each call is then timed on
    its own): a clip must meet gradients that need clipping every time, or the second call of a norm clip
    finds a norm below max_norm and skips its scaling pass, which flatters whoever skips it.
    """
    def timed(name: str, fn: Callable[[], object], loops: int) -> float:
        if setup is None:
            start = time.perf_counter()
            for _ in range(loops):
                fn()
            return time.perf_counter() - start
        spent = 0.0
        for _ in range(loops):
            setup(name)
            start = time.perf_counter()
            fn()
            spent += time.perf_counter() - start
        return spent

    loops = {}
    for name, fn in fns.items():
        timed(name, fn, 1)
        loops[name] = max(1, int(min_time / max(timed(name, fn, 1), 1e-9)))
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            best[name] = min(best[name], timed(name, fn, loops[name]) / loops[name])
    return best


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds:8.2f} s "


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).rjust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def cpu_info() -> str:
    """The CPU's model, its widest SIMD level, the target Numba compiles for, and the thread counts: every
    speed table says where it was measured."""
    import platform

    import numba

    flags, model = set(), platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE/other"
    import llvmlite.binding as llvm

    target = numba.config.CPU_NAME or llvm.get_host_cpu_name()
    if numba.config.CPU_NAME:  # without NUMBA_CPU_FEATURES Numba keeps the host's features (AVX-512 stays on)
        target += (" (NUMBA_CPU_NAME, with NUMBA_CPU_FEATURES)" if numba.config.CPU_FEATURES else
                   " (NUMBA_CPU_NAME only: the host's SIMD features are still used; set NUMBA_CPU_FEATURES too)")
    return (f"CPU {model}, {os.cpu_count()} cores, SIMD {simd}, Numba target {target}, "
            f"numba threads {numba.get_num_threads()}")


def save_json(path: str | None, results: object) -> None:
    """Write a benchmark's results to `path` (its --json option); nothing when no path was given."""
    if path:
        import json

        with open(path, "w") as f:
            json.dump(results, f, indent=2)
