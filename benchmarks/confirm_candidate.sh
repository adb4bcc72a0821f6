#!/usr/bin/env bash
# Score a background run's timed snapshot against the shipped codec under a selection rule written beforehand:
# wait for the run's first export at or after MINUTES on its clock, pause the run (SIGSTOP, so both get the cores and
# the run's CPU clock stands still), store the snapshot in float16, evaluate it beside the shipped codec in one
# process per set (tts_samples and real_speech when ../shared has them, minutes each, then the test rows with
# DistillMOS, the longest), print the paired tables, and resume the run whatever happens. A set already scored
# (its evaluation.json, written atomically, exists) is not scored again, so a confirm cut off resumes where it was.
#
#   benchmarks/confirm_candidate.sh RUN_DIR MINUTES NAME TEST_CORPUS [ROWS]
#   benchmarks/confirm_candidate.sh runs/keep_training_mpd 120 keep120 runs/voices_test_all 360
#
# Results: runs/confirm/NAME/<set>/ (report, per-utterance rows, provenance); the float16 snapshot: runs/NAME_fp16.
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,11p "$0"; exit 2; }
run=$1 minutes=$2 name=$3 corpus=$4 rows=${5:-360}
py=${PYTHON:-.venv/bin/python}
shared=${SHARED:-../shared/data}
log=$run/log.jsonl
[ -f "$log" ] || { echo "confirm: no $log (is $run a training run's folder?)"; exit 2; }
[ -d "$corpus" ] || { echo "confirm: no test corpus at $corpus"; exit 2; }

export_at() {  # the first timed export at or after $minutes, as "stepNNNNNNN minutes", or nothing yet
    "$py" - "$log" "$minutes" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    record = json.loads(line)
    if record.get("event") == "export" and record["minutes"] >= float(sys.argv[2]):
        print(record["path"], record["minutes"])
        break
PY
}

until found=$(export_at) && [ -n "$found" ]; do sleep 60; done
read -r step at <<<"$found"
echo "confirm: $run/$step, exported at $at minutes of the run's clock"

resume() { pkill -CONT -f -- "--out $run( |$)" || true; }
trap resume EXIT
pkill -STOP -f -- "--out $run( |$)" || echo "confirm: no running process trains $run"

candidate=runs/${name}_fp16
"$py" -m wavtokenizer_hf.cli half-weights "$run/$step" "$candidate" --overwrite  # the same bytes on a rerun
evaluate=("$py" scripts/evaluate_codec.py --codec wavtokenizer_hf/default_codec --codec "$candidate")
out=runs/confirm/$name
scored() { [ -f "$out/$1/evaluation.json" ] && echo "confirm: $out/$1 already scored; kept"; }
set -x
for set in tts_samples real_speech; do
    if [ -d "$shared/$set" ] && ! scored "$set"; then "${evaluate[@]}" --data "$shared/$set" --no-mos --out "$out/$set"; fi
done
scored test || "${evaluate[@]}" --data "$corpus" --split test --speech-only --limit "$rows" --out "$out/test"
for set in test tts_samples real_speech; do
    if [ -d "$out/$set" ]; then "$py" benchmarks/card_table.py "$out/$set" --reference default_codec --codec "${name}_fp16"; fi
done
