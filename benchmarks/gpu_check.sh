#!/usr/bin/env bash
# A GPU session's checks in one go, each step bounded (device time is scarce): the CUDA tests for real, the CUDA
# benchmark table (docs/benchmarks.md holds its last run), and the examples on the device. Logs go to $OUT (or
# /tmp); the tail of each is printed.
#     bash benchmarks/gpu_check.sh
set -u
out="${OUT:-/tmp}"
# numba-cuda releases that still call np.row_stack fail under NumPy 2.5; give them the alias (docs/internals.md)
mkdir -p "$out/site"
printf 'import numpy\nif not hasattr(numpy, "row_stack"):\n    numpy.row_stack = numpy.vstack\n' >"$out/site/sitecustomize.py"
export PYTHONPATH="$out/site:.${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS=0
py="${PYTHON:-python3}"
step() {
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "=== $name (at most ${limit} s)"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
    echo "--- $name: rc $rc after $((SECONDS - start)) s"
    tail -n "${TAIL:-30}" "$out/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$py" -c "import sys, numpy, numba, cupy, torch; print('python', sys.version.split()[0], 'numpy', numpy.__version__,
'numba', numba.__version__, 'cupy', cupy.__version__, 'torch', torch.__version__)"
step tests 150 env MINIGRAD_REAL_CUDA=1 "$py" -m pytest tests -k cuda -q -p no:cacheprovider -rs --maxfail=20
step bench 100 "$py" benchmarks/bench_cuda.py --repeat 5
step train 40 "$py" examples/train_rnn.py --device cuda --quick
step wlm 30 "$py" examples/word_language_model.py --quick
