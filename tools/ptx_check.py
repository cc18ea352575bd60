"""Compile the clip's numba.cuda kernels for a real GPU (to PTX) on a machine without one.

The CUDA tests run under numba's simulator, which executes a kernel as Python: it cannot tell whether the kernel
types and lowers for the device (a function the device lacks, a type it cannot unify). This compiles every
kernel of minigrad/clip/cuda_kernels.py, for every element type the backend launches it with (float16, float32,
float64, and the uint16 bits of bfloat16), to PTX for one compute capability. It needs numba-cuda and NVVM, no
GPU and no driver:

    pip install "numba-cuda[cu12]" nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12
    python tools/ptx_check.py [--cc 9.0]

It exits 1 when a kernel fails to compile, 2 when numba-cuda is missing. numba-cuda asks the current device for
its compute capability when a kernel calls a device function; with no device, this tool answers for it.
"""
from __future__ import annotations

import argparse
import os
import sys
import types


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cc", default="9.0", help="compute capability, major.minor (default: %(default)s)")
    args = ap.parse_args(argv)
    cc = tuple(int(v) for v in args.cc.split("."))
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        print("unset NUMBA_ENABLE_CUDASIM: the simulator compiles nothing", file=sys.stderr)
        return 2
    from numba import cuda

    if getattr(cuda, "implementation", "") != "NVIDIA":
        print("numba-cuda is not installed (pip install \"numba-cuda[cu12]\" nvidia-cuda-nvcc-cu12 "
              "nvidia-cuda-nvrtc-cu12)", file=sys.stderr)
        return 2
    import numba.cuda.dispatcher as dispatcher
    from numba import boolean, float32, float64, int64, uint16
    from numba.core.types import float16

    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from minigrad.clip import cuda_kernels as k

    vec, items = float64[::1], int64[:, ::1]
    kernels = []
    # (element, coefficient and factors, clamp bounds, suffix): what cuda_backend.py launches
    for elem, coef, bound, sfx in ((float16, float32, float16, ""), (float32, float32, float32, ""),
                                   (float64, float64, float64, ""), (uint16, float32, float64, "_bf16")):
        x = elem[::1]
        kernels += [
            ("_block_reduce" + sfx, (x, int64, float64, vec, boolean, vec, int64)),
            ("_block_sumsq" + sfx, (x, vec, int64)),
            ("_scale" + sfx, (x, coef[::1])),
            ("_clamp" + sfx, (x, bound, bound)),
            ("_segment_block" + sfx, (x, items, int64, float64, vec, boolean, vec)),
            ("_scale_items" + sfx, (x, items, coef[::1])),
        ]
    kernels += [("_finish", (vec, int64, int64, float64, vec, boolean, vec, float64, float32[::1], vec)),
                ("_segment_combine", (vec, int64[::1], int64, float64, vec, boolean, vec)),
                ("_unit_factors", (vec, vec, float64, float64, float32[::1]))]
    failed = 0
    for name, sig in kernels:
        try:
            ptx, _ = cuda.compile_ptx(getattr(k, name).py_func, sig, cc=cc)
            print(f"ok    {name}({sig[0]}, ...): {len(ptx)} characters of PTX")
        except Exception as err:  # noqa: BLE001 - report every kernel, then fail
            failed += 1
            print(f"FAIL  {name}({sig[0]}, ...): {type(err).__name__}: {str(err).splitlines()[0][:300]}")
    print(f"{len(kernels) - failed} of {len(kernels)} kernels compile for compute capability {args.cc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
