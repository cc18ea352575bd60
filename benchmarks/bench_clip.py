"""Gradient clipping speed: minigrad against torch.nn.utils and plain NumPy, all measured in one run.

    python benchmarks/bench_clip.py [--repeat 7] [--quick] [--json FILE] [--cuda]

Each row clips the same gradients with minigrad.nn.utils (automatic backend), with minigrad's NumPy reference
backend ("plain NumPy") and with torch.nn.utils (CPU, if installed). Bytes moved: a norm clip reads every
gradient twice and writes it once (3x), a value clip reads and writes once (2x). "% copy" compares that rate
with this machine's best measured copy bandwidth (read + write). Ratios > 1 mean minigrad is faster.
With --cuda (needs a GPU, CuPy and torch with CUDA) it times 1e8 float32 on the device instead.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_of_interleaved, cpu_info, fmt_time, save_json, table

import minigrad as mg
from minigrad import clip, nn
from minigrad.nn.utils.grad_buffer import grad_arrays


def copy_bandwidth(n: int, repeat: int) -> float:
    """Best of NumPy's copy and a parallel Numba copy, in bytes moved (read + write) per second."""
    from numba import njit, prange

    @njit(parallel=True)
    def par_copy(dst, src):
        for i in prange(src.size):
            dst[i] = src[i]

    src = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    dst = np.empty_like(src)
    best = best_of_interleaved({"numpy": lambda: np.copyto(dst, src), "numba": lambda: par_copy(dst, src)}, repeat)
    return 2 * src.nbytes / min(best.values())


def read_bandwidth(n: int, repeat: int) -> float:
    """A pure read pass (what a norm needs): the best of NumPy's float32 sum and a parallel Numba sum, in bytes
    read per second."""
    from numba import njit, prange

    @njit(parallel=True, fastmath=True)
    def par_sum(x):
        s = 0.0
        for i in prange(x.size):
            s += x[i]
        return s

    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    best = best_of_interleaved({"numpy": lambda: x.sum(), "numba": lambda: par_sum(x)}, repeat)
    return x.nbytes / min(best.values())


def simd_report() -> None:
    """The widest vector registers in the machine code Numba generated for each clip kernel (zmm: AVX-512,
    ymm: AVX2/AVX, xmm: SSE or scalar): the way to check that a kernel vectorises for this target. Run in a
    subprocess with an empty cache (Numba cannot show the code of cached kernels); NUMBA_CPU_NAME=haswell
    shows what an AVX2 machine gets."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        code = "import sys; sys.path.insert(0, 'benchmarks'); import bench_clip; bench_clip._simd_table()"
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        print(res.stdout if res.returncode == 0 else f"(no SIMD report: {res.stderr.strip()[-300:]})")


def _simd_table() -> None:
    import re

    from minigrad.clip import numba_backend as nb

    rows = []
    calls = {"_sum_squares": lambda x: (x,), "_sum_abs": lambda x: (x,), "_sum_pow": lambda x: (x, 3.0),
             "_sum_scaled": lambda x: (x, 3.0, 2.0), "_chunk_max_abs": lambda x: (x,),
             "_scale_chunk": lambda x: (x, x.dtype.type(0.5)), "_clamp_chunk": lambda x: (x, x.dtype.type(-1),
                                                                                          x.dtype.type(1))}
    for name, make_args in calls.items():
        fn = getattr(nb, name)
        for dtype in (np.float32, np.float64):  # the chunk functions compile here as Python calls them
            fn(*make_args(np.ones(64, dtype)))
        for sig in fn.signatures:
            asm = fn.inspect_asm(sig)
            widest = next((r for r in ("zmm", "ymm", "xmm") if re.search(rf"%{r}\d", asm)), "-")
            packed = len(re.findall(r"\tv\w+p[sd]\s", asm))
            rows.append([name, str(sig[0]), widest, str(packed)])
    print(f"\nNumba kernels for {cpu_info()}:\nwidest vector register in the generated code, packed SIMD ops")
    print(table(["kernel", "input", "widest register", "packed ops"], rows))


def make_case(shapes: list[tuple], buffer: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = [nn.Parameter(np.zeros(s, np.float32)) for s in shapes]
    for p in params:
        p.grad = (rng.standard_normal(s).astype(np.float32) * 10) if (s := p.shape) else None
    if buffer:
        nn.utils.GradBuffer(params)
    return params


def torch_params(params):
    import torch

    out = []
    for p in params:
        t = torch.nn.Parameter(torch.zeros(p.shape))
        t.grad = torch.from_numpy(p.grad.numpy().copy())
        out.append(t)
    return out


CASES = [
    ("32M fp32 in 9 tensors", [(3_555_556,)] * 8 + [(32_000_000 - 8 * 3_555_556,)], False),
    ("1000 x 1000 fp32, GradBuffer", [(1000,)] * 1000, True),
    ("1000 x 1000 fp32, no buffer", [(1000,)] * 1000, False),
    ("tiny RNN (64x64, 64x32, 64, 64)", [(64, 64), (64, 32), (64,), (64,)], False),
    ("100 x 100k fp32", [(100_000,)] * 100, False),
]


def fresh_gradients(grads: list, tparams: list | None):
    """setup for best_of_interleaved: every call clips the original gradients (norm ~10 per element), not the
    already clipped ones of the call before (whose norm is at max_norm: no scaling pass left to time)."""
    saved = [g.copy() for g in grads]

    def restore(name: str) -> None:
        if name == "torch":
            for t, g in zip(tparams, saved):
                t.grad.numpy()[...] = g
        else:  # minigrad and the NumPy reference clip the same arrays
            for a, g in zip(grads, saved):
                np.copyto(a, g)
    return restore


def clip_calls(op: str, params, grads, tparams, torch) -> dict:
    """The same clip through minigrad.nn.utils, the NumPy reference backend and torch.nn.utils."""
    if op == "norm":
        fns = {"minigrad": lambda: nn.utils.clip_grad_norm_(params, 1.0),
               "numpy": lambda: clip.clip_norm_(grads, 1.0, backend="numpy")}
        if torch:
            fns["torch"] = lambda: torch.nn.utils.clip_grad_norm_(tparams, 1.0, foreach=True)
    else:
        fns = {"minigrad": lambda: nn.utils.clip_grad_value_(params, 1.0),
               "numpy": lambda: clip.clip_value_(grads, 1.0, backend="numpy")}
        if torch:
            fns["torch"] = lambda: torch.nn.utils.clip_grad_value_(tparams, 1.0, foreach=True)
    return fns


def run_cpu(args) -> list[dict]:
    try:
        import torch
    except ImportError:
        torch = None
        print("torch is not installed: its column is left out")
    bandwidth = copy_bandwidth(8_000_000 if args.quick else 32_000_000, args.repeat)
    reading = read_bandwidth(8_000_000 if args.quick else 32_000_000, args.repeat)
    print(f"copy bandwidth (best of NumPy / parallel Numba copy): {bandwidth / 1e9:.1f} GB/s; read bandwidth "
          f"(best of NumPy / parallel Numba sum): {reading / 1e9:.1f} GB/s")
    results = []
    cases = CASES[1:4] if args.quick else CASES
    for name, shapes, buffer in cases:
        params = make_case(shapes, buffer)
        grads = [p.grad.numpy() for p in params]
        nbytes = sum(g.nbytes for g in grads)
        tparams = torch_params(params) if torch else None
        restore = fresh_gradients(grads, tparams)
        for op in ("norm", "value"):
            fns = clip_calls(op, params, grads, tparams, torch)
            moved = (3 if op == "norm" else 2) * nbytes
            best = best_of_interleaved(fns, args.repeat, setup=restore)
            results.append(dict(case=name, op=op, bytes_moved=moved, **{f"t_{k}": v for k, v in best.items()}))
            if op == "norm":  # the norm alone: one read pass, compared with the read bandwidth
                arrays = grad_arrays(params)  # what clip_grad_norm_ reads (a GradBuffer's flat array)
                t = best_of_interleaved({"n": lambda arrays=arrays: clip.total_norm(arrays)}, args.repeat)["n"]
                results[-1]["t_norm_only"] = t
    rows = []
    for r in results:
        t = r["t_minigrad"]
        gbs = r["bytes_moved"] / t / 1e9
        read = f"{100 * r['bytes_moved'] / 3 / r['t_norm_only'] / reading:5.0f}%" if "t_norm_only" in r else "-"
        rows.append([r["case"], r["op"], fmt_time(t), f"{gbs:6.1f}", f"{100 * gbs * 1e9 / bandwidth:5.0f}%", read,
                     f"{r['t_torch'] / t:.2f}x" if "t_torch" in r else "-", f"{r['t_numpy'] / t:.2f}x"])
    print(f"\nclip on CPU, best of {args.repeat}" + (f", torch threads {torch.get_num_threads()}" if torch else ""))
    print(table(["case", "op", "minigrad", "GB/s", "% copy", "norm % read", "vs torch", "vs numpy"], rows))
    return results


def threshold_scan(args) -> None:
    """Time one float32 array's norm clip on the numpy and numba backends across sizes (sets NUMBA_MIN_ELEMENTS)."""
    rows = []
    for k in range(4, 23, 2):
        a = np.random.default_rng(0).standard_normal(1 << k).astype(np.float32)
        fns = {b: (lambda b=b, a=a: clip.clip_norm_([a], 1.0, backend=b)) for b in ("numpy", "numba")}
        best = best_of_interleaved(fns, args.repeat, setup=fresh_gradients([a], None))
        speedup = best["numpy"] / best["numba"]
        rows.append([f"2^{k}", fmt_time(best["numpy"]), fmt_time(best["numba"]), f"{speedup:.2f}x"])
    print("\nbackend threshold: one float32 array, norm clip")
    print(table(["elements", "numpy", "numba", "numba speed-up"], rows))


def compile_time() -> None:
    """First call of every Numba kernel: cold (empty cache, compiles) and warm (loads cache=True's files)."""
    code = "from minigrad.clip import numba_backend as b; print(b.warm_up())"
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cold = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout)
        warm = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout)
    print(f"\nNumba kernels, first call: {cold:.1f} s compiling (empty cache), {warm:.2f} s from the cache")


def run_cuda(args) -> None:
    """1e8 float32 on the GPU: minigrad's numba.cuda kernels on CuPy memory against torch's CUDA clip."""
    import cupy
    import torch

    n = 100_000_000
    sizes = [n // 4] * 4

    def torch_cuda_params(arrays):
        """torch CUDA parameters whose gradients are copies of the CuPy `arrays` (the module's torch_params
        copies minigrad parameters' gradients on the CPU)."""
        params = []
        for a in arrays:
            t = torch.nn.Parameter(torch.zeros(a.size, device="cuda"))
            t.grad = torch.as_tensor(a.copy(), device="cuda")
            params.append(t)
        return params

    arrays = [cupy.random.standard_normal(s, dtype=cupy.float32) for s in sizes]
    tparams = torch_cuda_params(arrays)
    dst = cupy.empty_like(arrays[0])

    def sync(fn):
        def run():
            fn()
            cupy.cuda.runtime.deviceSynchronize()
        return run

    fns = {"copy": sync(lambda: [dst.__setitem__(slice(None), a) for a in arrays]),
           "minigrad norm": sync(lambda: clip.clip_norm_(arrays, 1.0)),
           "torch norm": sync(lambda: torch.nn.utils.clip_grad_norm_(tparams, 1.0)),
           "minigrad value": sync(lambda: clip.clip_value_(arrays, 1.0)),
           "torch value": sync(lambda: torch.nn.utils.clip_grad_value_(tparams, 1.0))}
    best = best_of_interleaved(fns, args.repeat)
    nbytes = 4 * n
    bw = 2 * nbytes / best["copy"]
    rows = [["copy", fmt_time(best["copy"]), f"{bw / 1e9:.0f}", "100%", "-"]]
    for op, factor in (("norm", 3), ("value", 2)):
        t = best[f"minigrad {op}"]
        rows.append([f"minigrad {op}", fmt_time(t), f"{factor * nbytes / t / 1e9:.0f}",
                     f"{100 * factor * nbytes / t / bw:.0f}%", f"{best[f'torch {op}'] / t:.2f}x"])
        rows.append([f"torch {op}", fmt_time(best[f"torch {op}"]), f"{factor * nbytes / best[f'torch {op}'] / 1e9:.0f}",
                     f"{100 * factor * nbytes / best[f'torch {op}'] / bw:.0f}%", "-"])
    print(f"clip on {torch.cuda.get_device_name()}, 1e8 float32 in 4 tensors, best of {args.repeat}")
    print(table(["what", "time", "GB/s", "% copy", "torch/minigrad"], rows))
    rows = []
    for count, size in ((1, 1024), (1000, 10_000)):  # fixed costs: numba launches from Python, torch's foreach
        small = [cupy.random.standard_normal(size, dtype=cupy.float32) for _ in range(count)]
        tsmall = torch_cuda_params(small)
        best = best_of_interleaved({"minigrad": sync(lambda s=small: clip.clip_norm_(s, 1.0)),
                                    "torch": sync(lambda s=tsmall: torch.nn.utils.clip_grad_norm_(s, 1.0))},
                                   args.repeat)
        rows.append([f"{count} x {size}", fmt_time(best["minigrad"]), fmt_time(best["torch"]),
                     f"{best['torch'] / best['minigrad']:.2f}x"])
    print("\nnorm clip of many small arrays (launch costs)")
    print(table(["arrays", "minigrad", "torch", "torch/minigrad"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="small cases only")
    ap.add_argument("--json", metavar="FILE", help="save the CPU results")
    ap.add_argument("--cuda", action="store_true", help="time 1e8 float32 on a GPU instead")
    args = ap.parse_args()
    print(time.strftime("%Y-%m-%d"), cpu_info())
    if args.cuda:
        run_cuda(args)
        return
    results = run_cpu(args)
    if not args.quick:
        threshold_scan(args)
        compile_time()
    simd_report()
    save_json(args.json, results)


if __name__ == "__main__":
    mg.manual_seed(0)
    main()
