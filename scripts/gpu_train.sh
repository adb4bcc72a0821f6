#!/usr/bin/env bash
# Fine-tune the default codec on a lent GPU machine with the phone-teacher recipe (`tiny-finetune`,
# `loss.phones=1.0`; `make keep-training` adds the multi-period discriminator: pass `--set discriminators.use=[mpd]
# --set loss.gan_start_step=0` for the same), on a carried shard of the free-voices corpus (a codec
# trained on it can ship under the package's licence), writing what it has to OUT as it goes (a command killed at its
# time limit still returns its last snapshot and log).
#
#   here, once:         scripts/device_wheels.sh
#                       python scripts/make_gpu_shard.py --corpus runs/voices_free --out .gpu_shard   (0.15 h)
#   on the GPU machine: scripts/gpu_train.sh "$OUT"     (device run: carry [".whl", ".gpu_shard"], timeout_s 540)
#   a check on a CPU:   scripts/gpu_train.sh /tmp/gt --minutes 0.3 --batch-size 4 --workers 0 --eval-limit 2
#   back here:          scripts/gpu_train.sh --unpack FILES_AT runs/gpu_codec   (joins the weights, checks SHA-256)
#                       then Whisper on the unseen speakers (the recogniser's wheels do not fit the 64 MiB carry):
#                       python scripts/evaluate_codec.py --codec wavtokenizer_hf/default_codec --codec runs/gpu_codec \
#                           --data runs/voices_test_ref --split test --speech-only --limit 48 --out runs/gpu_codec_eval
#
# Options: --minutes M (training wall time, default 5), --shard DIR (.gpu_shard), --batch-size B (64), --workers W
# (8), --eval-limit N (40 test utterances, no recogniser there), --init-from DIR (the default codec), --pack-every S
# (seconds between copies of the newest snapshot to OUT, 20), and any `--set SECTION.KEY=VALUE` for the trainer.
# Budget: start and wheels ~2 min, training M, scoring ~1 min: under 8 (on an H100, --minutes 6 ran 412 s in all).
# OUT gets 8 files (the most the device tool returns, each under 16 MiB, so the weights travel in two parts; a 9th file
# there, a tee'd log say, leaves one of these behind):
#   codec/{config.json, preprocessor_config.json, model.safetensors.part-aa, -ab, SHA256}, log.jsonl,
#   evaluation.{json,md}
set -euo pipefail
if [ "${1:-}" = --unpack ]; then
    from=${2:?usage: scripts/gpu_train.sh --unpack FILES_AT CODEC_DIR} to=${3:?usage: scripts/gpu_train.sh --unpack FILES_AT CODEC_DIR}
    [ -e "$to" ] && { echo "gpu_train.sh: $to exists" >&2; exit 2; }
    tmp="$to.tmp.$$"
    mkdir -p "$tmp"
    cp "$from/codec/config.json" "$from/codec/preprocessor_config.json" "$tmp/"
    cat "$from"/codec/model.safetensors.part-* > "$tmp/model.safetensors"
    (cd "$tmp" && sha256sum -c --quiet "$(cd "$from/codec" && pwd)/SHA256") || { rm -rf "$tmp"; echo "gpu_train.sh: SHA-256 mismatch" >&2; exit 1; }
    mv "$tmp" "$to"
    echo "unpacked $to"
    exit 0
fi
out=${1:?usage: scripts/gpu_train.sh OUT_DIR [options]}
shift
minutes=5 shard="" batch=64 workers=8 eval_limit=40 init="" pack_every=20 sets=()
while [ $# -gt 0 ]; do
    case $1 in
        --minutes) minutes=$2; shift 2 ;;
        --shard) shard=$2; shift 2 ;;
        --batch-size) batch=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --eval-limit) eval_limit=$2; shift 2 ;;
        --init-from) init=$2; shift 2 ;;
        --pack-every) pack_every=$2; shift 2 ;;
        --set) sets+=("$2"); shift 2 ;;
        *) echo "gpu_train.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
out=$(mkdir -p "$out" && cd "$out" && pwd)
source "$(dirname "$0")/device_env.sh"
cd "$repo"
shard=$(cd "${shard:-$repo/.gpu_shard}" 2>/dev/null && pwd) \
    || { echo "gpu_train.sh: no corpus shard (scripts/make_gpu_shard.py, then carry .gpu_shard)" >&2; exit 2; }
init=${init:-$repo/wavtokenizer_hf/default_codec}
work=$(mktemp -d)
stage() { echo "== $(date +%T) $*"; }

# The newest snapshot and the log go to OUT as soon as they exist (each written beside, then renamed into place).
pack() {
    cp "$work/run/log.jsonl" "$out/.log.jsonl" 2>/dev/null && mv "$out/.log.jsonl" "$out/log.jsonl"
    local newest
    if [ -d "$work/run/final" ]; then newest=$work/run/final
    else newest=$( (ls -d "$work"/run/step* 2>/dev/null || true) | sort | tail -1); fi
    [ -n "$newest" ] && [ -f "$newest/model.safetensors" ] && [ "$newest" != "$(cat "$work/packed" 2>/dev/null)" ] || return 0
    rm -rf "$out/.codec" && mkdir -p "$out/.codec"
    cp "$newest/config.json" "$newest/preprocessor_config.json" "$out/.codec/"
    (cd "$newest" && sha256sum model.safetensors) > "$out/.codec/SHA256"
    split -b 15M "$newest/model.safetensors" "$out/.codec/model.safetensors.part-"
    rm -rf "$out/codec" && mv "$out/.codec" "$out/codec"
    echo "$newest" > "$work/packed"
    echo "== $(date +%T) packed $(basename "$newest")"
}
packer() { while sleep "$pack_every"; do pack || true; done; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: $(nproc) CPU cores"

stage "train: $minutes min from $init on $shard, batch $batch"
packer &
packer_pid=$!
trap 'kill $packer_pid 2>/dev/null || true; rm -rf "$work"' EXIT
"$PYTHON" scripts/train_codec.py --preset tiny-finetune --init-from "$init" --out "$work/run" --max-minutes "$minutes" \
    --set "data.train=$shard" "data.batch_size=$batch" "data.num_workers=$workers" run.clock=wall \
    run.save_every=0 "run.export_every_minutes=1" run.log_every=20 loss.phones=1.0 "${sets[@]}" \
    2>&1 | tr '\r' '\n' | grep -v "^train: .*step" || true
kill $packer_pid 2>/dev/null || true
wait $packer_pid 2>/dev/null || true
rm -f "$work/packed"  # the packer may have been stopped between packing the final snapshot and saying so
pack
[ -f "$work/run/final/model.safetensors" ] || { echo "gpu_train.sh: training exported nothing" >&2; exit 1; }

stage "score: default codec vs the trained one, $eval_limit test utterances of unseen speakers (no recogniser)"
"$PYTHON" scripts/evaluate_codec.py --codec "$init" --codec "$work/run/final" --data "$shard" --split test \
    --speech-only --limit "$eval_limit" --recognizer none --no-mos --no-speaker --out "$work/eval"
cp "$work/eval"/evaluation.json "$work/eval"/evaluation.md "$out/"
stage "done"
cat "$out/evaluation.md"
