#!/usr/bin/env bash
# Fine-tune the default codec on a lent GPU machine with the full adversarial recipe, export it, score it against the
# default codec on the corpus's validation split, and write the codec and its numbers to the folder given.
#
#   here, once:           scripts/device_wheels.sh
#   on the GPU machine:   scripts/gpu_train.sh "$OUT"          (device run: carry [".whl"], timeout_s 600)
#   a check on a CPU:     scripts/gpu_train.sh /tmp/gt --minutes 0.33 --corpus runs/demo/corpus --batch-size 4 \
#                             --eval-limit 2
#   back here:            cat OUT/codec/model.safetensors.part-* > CODEC/model.safetensors (sha256 in OUT/codec)
#
# Options: --minutes M (training wall time, default 8), --corpus DIR (a saved corpus; default: build --hours H of it
# there, espeak-ng voices where flite is absent), --hours H (0.5), --batch-size B (64), --eval-limit N (40 validation
# utterances), --init-from DIR (the default codec), and any `--set SECTION.KEY=VALUE` for the trainer.
# Budget on a GPU: start and wheels ~2 min, corpus ~1-2 min, training M, export and scoring ~1 min.
# OUT gets at most 7 files (the device tool returns 8, each under 16 MiB, so the weights travel in parts):
#   codec/{config.json, preprocessor_config.json, model.safetensors.part-*, SHA256}, evaluation.{json,md}, log.jsonl
set -euo pipefail
out=${1:?usage: scripts/gpu_train.sh OUT_DIR [options]}
shift
minutes=8 corpus="" hours=0.5 batch=64 eval_limit=40 init="" sets=()
while [ $# -gt 0 ]; do
    case $1 in
        --minutes) minutes=$2; shift 2 ;;
        --corpus) corpus=$2; shift 2 ;;
        --hours) hours=$2; shift 2 ;;
        --batch-size) batch=$2; shift 2 ;;
        --eval-limit) eval_limit=$2; shift 2 ;;
        --init-from) init=$2; shift 2 ;;
        --set) sets+=("$2"); shift 2 ;;
        *) echo "gpu_train.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
out=$(mkdir -p "$out" && cd "$out" && pwd)
[ -n "$corpus" ] && corpus=$(cd "$corpus" && pwd)
source "$(dirname "$0")/device_env.sh"
cd "$repo"
init=${init:-$repo/wavtokenizer_hf/default_codec}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage() { echo "== $(date +%T) $*"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: $(nproc) CPU cores"

if [ -z "$corpus" ]; then
    stage "corpus: $hours h"
    "$PYTHON" scripts/build_corpus.py --hours "$hours" --jobs "$(nproc)" --out "$work/corpus"
    corpus=$work/corpus
fi

stage "train: $minutes min from $init, batch $batch"
workers=$(( $(nproc) > 8 ? 8 : 1 ))
"$PYTHON" scripts/train_codec.py --preset tiny --init-from "$init" --out "$work/run" --max-minutes "$minutes" \
    --set "data.train=$corpus" "data.batch_size=$batch" "data.num_workers=$workers" optim.lr=4e-4 \
    optim.max_steps=1000000 optim.warmup_steps=50 loss.gan_start_step=0 run.save_every=0 run.export_every=0 \
    "${sets[@]}" 2>&1 | tr '\r' '\n' | grep -v "^train: .*step/s" || true
[ -f "$work/run/final/model.safetensors" ] || { echo "gpu_train.sh: training exported nothing" >&2; exit 1; }

stage "score: default codec vs the trained one, $eval_limit validation utterances"
recognizer=none
"$PYTHON" -c "import faster_whisper" 2>/dev/null && recognizer=whisper
"$PYTHON" scripts/evaluate_codec.py --codec "$init" --codec "$work/run/final" --data "$corpus" --split validation \
    --speech-only --limit "$eval_limit" --recognizer "$recognizer" --no-mos --out "$work/eval"

stage "pack into $out"
mkdir -p "$out/codec"
cp "$work/run/final/config.json" "$work/run/final/preprocessor_config.json" "$out/codec/"
(cd "$work/run/final" && sha256sum model.safetensors) > "$out/codec/SHA256"
split -b 15M "$work/run/final/model.safetensors" "$out/codec/model.safetensors.part-"
cp "$work/eval"/evaluation.json "$work/eval"/evaluation.md "$out/"
cp "$work/run/log.jsonl" "$out/"
stage "done"
cat "$out/evaluation.md"
