#!/usr/bin/env bash
# Download, here, the Python wheels that a lent GPU machine lacks (it reaches no package index) into .whl/, at the
# versions of requirements/lock.txt. Pass `carry: [".whl"]` to the device run; scripts/device_env.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
pin() { grep -E "^$1==" requirements/lock.txt | cut -d' ' -f1; }
packages=(transformers datasets soundfile cffi pycparser dill multiprocess pystoi)  # no voices: the corpus travels as a shard
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $(for p in "${packages[@]}"; do pin "$p"; done)
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
wheels=$(du -cb .whl/*.whl | tail -1 | cut -f1)
echo "wheels $((wheels / 2**20)) MiB + tracked files $((tracked / 2**20)) MiB (a device run carries at most 64 MiB)"
