#!/usr/bin/env bash
# A GPU session's checks in one go, each step bounded (device time is scarce): the CUDA tests for real, the
# CUDA benchmark, and train_rnn on the device. Logs go to $OUT (or /tmp); the tail of each is printed.
#     bash benchmarks/gpu_check.sh
set -u
export PYTHONPATH="${PYTHONPATH:-.}"
py="${PYTHON:-python3}"
out="${OUT:-/tmp}"
step() {
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "=== $name (at most ${limit} s)"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
    echo "--- $name: rc $rc after $((SECONDS - start)) s"
    tail -n "${TAIL:-40}" "$out/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$py" -c "import sys, numpy, numba, cupy, torch; print('python', sys.version.split()[0], 'numpy', numpy.__version__,
'numba', numba.__version__, 'cupy', cupy.__version__, 'torch', torch.__version__)"
step bench 120 "$py" benchmarks/bench_clip.py --cuda --repeat 10
step tests 300 env MINIGRAD_REAL_CUDA=1 "$py" -m pytest tests -k cuda -q -p no:cacheprovider -rs --maxfail=30
step train 60 "$py" examples/train_rnn.py --device cuda --quick
