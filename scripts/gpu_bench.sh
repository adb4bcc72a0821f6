#!/usr/bin/env bash
# Every GPU benchmark (benchmarks/bench_gpu.py) in about 8 minutes, its JSON written to the folder given.
#   here, once:          scripts/device_wheels.sh
#   on the GPU machine:  scripts/gpu_bench.sh "$OUT/bench"        (device run with carry [".whl"], timeout_s 540)
#   a check on a CPU:    scripts/gpu_bench.sh /tmp/bench --device cpu --tiny --clip-seconds 1 --batch-sizes 1 \
#                            --long-minutes 0.2 --map-clips 2
# Extra arguments go to bench_gpu.py. New measurements stop starting after 400 s; the whole run is cut at 480 s.
set -euo pipefail
out=${1:?usage: scripts/gpu_bench.sh OUT_DIR [bench_gpu.py options]}
shift
out=$(mkdir -p "$out" && cd "$out" && pwd)
source "$(dirname "$0")/device_env.sh"
cd "$repo/benchmarks"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
timeout 480 "$PYTHON" bench_gpu.py --out "$out" --budget-seconds 400 "$@"
