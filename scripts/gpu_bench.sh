#!/usr/bin/env bash
# Every GPU benchmark (benchmarks/bench_gpu.py) in about 8 minutes, its JSON written to the folder given.
#   here, once:          scripts/device_wheels.sh
#   on the GPU machine:  scripts/gpu_bench.sh "$OUT/bench"        (device run with carry [".whl"], timeout_s 540)
#   a check on a CPU:    scripts/gpu_bench.sh /tmp/bench --device cpu --tiny --clip-seconds 1 --batch-sizes 1 \
#                            --long-minutes 0.2 --map-clips 2
# Extra arguments go to bench_gpu.py. New measurements stop starting after 400 s; the whole run is cut at 480 s.
# Where the machine has Ray (its 76 MiB wheel does not fit the device's 64 MiB carry), bench_gpu gets 80 s less and a
# Ray job with one GPU encoder actor tokenizes a few minutes of audio after it (OUT/ray.json).
set -euo pipefail
out=${1:?usage: scripts/gpu_bench.sh OUT_DIR [bench_gpu.py options]}
shift
out=$(mkdir -p "$out" && cd "$out" && pwd)
source "$(dirname "$0")/device_env.sh"
cd "$repo/benchmarks"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
if command -v nvidia-smi >/dev/null && "$PYTHON" -c "import ray.data" 2>/dev/null; then
    timeout 400 "$PYTHON" bench_gpu.py --out "$out" --budget-seconds 320 "$@" || true
    timeout 80 "$PYTHON" bench_ray_gpu_job.py --out "$out/ray.json" || echo "ray job: did not finish in 80 s"
else
    echo "ray: not installed here (its wheel is over the device's carry limit); no Ray run"
    timeout 480 "$PYTHON" bench_gpu.py --out "$out" --budget-seconds 400 "$@"
fi
