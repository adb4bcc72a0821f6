"""Levers of codec quality at equal CPU minutes: train each run of a spec for the same CPU time (one thread each,
`run.clock=cpu`, so runs that share the cores stay fair), score the timed snapshots on one held-out set, and plot
quality against CPU minutes, one figure per lever. Resumable: finished runs and scored snapshots are kept.

  python benchmarks/compare_levers.py --spec benchmarks/levers.yaml --out runs/levers --minutes 10 \\
      --export-every 2.5 --parallel 2 --eval-data runs/corpus4h_natural --eval-split validation --eval-limit 40

The spec (YAML): `common` overrides for every run; `runs`: id -> {label, preset, init_from, set: [overrides]};
`levers`: name -> [run ids] (a run may appear in several levers). A run with `init_from` starts its curve at
minute 0 with the codec it starts from. Writes OUT/levers.json, OUT/levers.md and OUT/<lever>.png. Scores are
kept in OUT/runs/<id>/quality_curve.json and OUT/start_<codec>.json, each keyed by the held-out set (data, split,
limit and a hash of its audio and texts) and, for a start codec, the hash of its weights: a cache made on another
held-out set or another codec is scored anew, never reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from transformers.utils import logging as hf_logging

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.curves import plot_comparison
from wavtokenizer_hf.errors import WavTokenizerError, run_script
from wavtokenizer_hf.evaluation import CodecReconstructor, evaluate, load_test_set
from wavtokenizer_hf.evaluation.provenance import utterance_hashes
from wavtokenizer_hf.evaluation.snapshots import CURVE_METRICS, score_snapshots
from wavtokenizer_hf.listing import or_na, read_jsonl

ROOT = Path(__file__).resolve().parents[1]
PLOTTED = ("wer_capped", "cer_capped", "stoi", "vuv_f1", "phase_advance_error")
TABLE = [("wer_capped", "WER (capped)", "{:.1%}"), ("cer_capped", "CER (capped)", "{:.1%}"), ("wer", "WER", "{:.1%}"),
         ("stoi", "STOI", "{:.3f}"),
         ("mel_distance", "mel distance", "{:.3f}"), ("vuv_f1", "voicing F1", "{:.3f}"),
         ("f0_gross_error", "F0 gross errors", "{:.1%}"), ("phase_advance_error", "phase advance error", "{:.3f}"),
         ("codebook_used", "codebook used", "{:.1%}")]


def load_spec(path: Path) -> dict:
    spec = yaml.safe_load(path.read_text()) or {}
    runs, levers = spec.get("runs") or {}, spec.get("levers") or {}
    if not runs or not levers:
        raise WavTokenizerError(f"{path}: the spec needs `runs` and `levers`")
    for name in runs:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise WavTokenizerError(f"{path}: run id '{name}' names a folder: letters, digits, - and _ only")
    for lever, names in levers.items():
        unknown = [n for n in names if n not in runs]
        if unknown:
            raise WavTokenizerError(f"{path}: lever '{lever}' names runs not in `runs`: {', '.join(unknown)}")
    return spec


def train_command(spec: dict, name: str, out: Path, minutes: float, export_every: float) -> list[str]:
    run = spec["runs"][name]
    command = [sys.executable, str(ROOT / "scripts" / "train_codec.py"), "--preset", run.get("preset", "tiny"),
               "--out", str(out / "runs" / name), "--max-minutes", str(minutes)]
    if run.get("init_from"):
        command += ["--init-from", str(run["init_from"])]
    overrides = [*spec.get("common", []), *run.get("set", []), "run.clock=cpu", "data.num_workers=0",
                 f"run.export_every_minutes={export_every}"]
    return command + ["--set", *overrides]


def train_all(spec: dict, out: Path, minutes: float, export_every: float, parallel: int) -> None:
    """Run every unfinished run, `parallel` at a time, each on one thread at low priority."""
    pending = [n for n in spec["runs"] if not (out / "runs" / n / "final").exists()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    live: list[tuple[str, subprocess.Popen]] = []
    while pending or live:
        while pending and len(live) < parallel:
            name = pending.pop(0)
            (out / "runs").mkdir(parents=True, exist_ok=True)
            log = open(out / "runs" / f"{name}.log", "a")
            command = ["nice", "-n", "5", *train_command(spec, name, out, minutes, export_every)]
            print(f"[train] {name}: {' '.join(command[3:])}", flush=True)
            live.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)))
        time.sleep(5)
        for name, process in list(live):
            if process.poll() is not None:
                live.remove((name, process))
                status = "done" if process.returncode == 0 else f"FAILED (exit {process.returncode}; see its log)"
                print(f"[train] {name}: {status}", flush=True)


def held_out_key(data: Path, split: str, limit: int | None, utterances) -> dict:
    """What a cached score depends on: the held-out set named and its content (audio and texts, hashed)."""
    digest = hashlib.sha256(json.dumps(utterance_hashes(utterances), sort_keys=True).encode()).hexdigest()
    return {"data": str(Path(data).resolve()), "split": split, "limit": limit, "content_sha256": digest}


def scored(path: Path, key: dict, compute) -> list[dict]:
    """Rows cached at `path` under `key`; computed (and cached) when there are none or they were made under
    another key (an older cache without one included)."""
    if path.exists():
        cached = json.loads(path.read_text())
        if isinstance(cached, dict) and cached.get("key") == key:
            return cached["rows"]
        print(f"[score] {path}: cached for another held-out set or codec; scoring anew", flush=True)
    rows = compute()
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"key": key, "rows": rows}, indent=1))
    return rows


def curve_of(spec: dict, name: str, out: Path, utterances, key: dict) -> list[dict]:
    """Scored snapshots of one run, with the codec it started from at minute 0 and its final export."""
    run_dir = out / "runs" / name
    if not (run_dir / "final").exists():
        raise WavTokenizerError(f"{run_dir}: the run did not finish; see {run_dir}.log")
    stop = [r["step"] for r in read_jsonl(run_dir / "log.jsonl") if r.get("event") == "stop"][-1]
    final_step = None if (run_dir / f"step{stop:07d}").exists() else stop  # a timed snapshot at the stop is final/
    rows = scored(run_dir / "quality_curve.json", key, lambda: score_snapshots(run_dir, utterances, final_step=final_step))
    for row in rows:
        row.setdefault("run", name)
    final = rows[-1]
    rows = [r for r in rows[:-1] if r["step"] != final["step"]] + [final]  # a snapshot at the last step = final
    start = spec["runs"][name].get("init_from")
    if start:
        tag = Path(start).name
        codec = CodecReconstructor(Path(start), name=tag)
        start_row = scored(out / f"start_{tag}.json", {**key, "codec_sha256": codec.weights_sha256},
                           lambda: [_score_codec(codec, utterances)])[0]
        rows = [{**start_row, "step": 0, "minutes": 0.0}] + rows
    return rows


def _score_codec(codec: CodecReconstructor, utterances) -> dict:
    summary = evaluate([codec], utterances, with_asr=True, with_mos=False, asr_variants=0,
                       with_speaker=False)["codecs"][codec.name]["summary"]
    return {key: summary.get(key) for key in (*CURVE_METRICS, "wer_capped_original", "cer_capped_original")}


def report(spec: dict, curves: dict[str, list[dict]], out: Path) -> str:
    lines = []
    for lever, names in spec["levers"].items():
        labels = {n: spec["runs"][n].get("label", n) for n in names}
        plot_comparison({labels[n]: curves[n] for n in names}, out / f"{_file_name(lever)}.png", PLOTTED,
                        title=lever, xlabel="CPU minutes (one thread)")
        lines += [f"### {lever}", "", "| run | steps | CPU minutes | " + " | ".join(t for _, t, _ in TABLE) + " |",
                  "| --- " * (len(TABLE) + 3) + "|"]
        for name in names:
            last = curves[name][-1]
            cells = [or_na(last.get(key), fmt) for key, _, fmt in TABLE]
            lines.append(f"| {labels[name]} | {last['step']} | {last['minutes']:.1f} | " + " | ".join(cells) + " |")
        lines += ["", f"![{lever}]({_file_name(lever)}.png)", ""]
    return "\n".join(lines)


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=ROOT / "benchmarks" / "levers.yaml")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=10.0, help="CPU minutes per run (one thread)")
    parser.add_argument("--export-every", type=float, default=2.5, help="CPU minutes between scored snapshots")
    parser.add_argument("--parallel", type=int, default=2, help="runs trained at once (one core each)")
    parser.add_argument("--eval-data", type=Path, required=True, help="saved corpus with a held-out split")
    parser.add_argument("--eval-split", default="validation")
    parser.add_argument("--eval-limit", type=int, default=40)
    parser.add_argument("--only", nargs="*", default=None, help="levers to run (default: all)")
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    spec = load_spec(args.spec)
    if args.only:
        spec["levers"] = {k: v for k, v in spec["levers"].items() if k in args.only}
        wanted = {n for names in spec["levers"].values() for n in names}
        spec["runs"] = {k: v for k, v in spec["runs"].items() if k in wanted}
    started = time.perf_counter()
    train_all(spec, args.out, args.minutes, args.export_every, args.parallel)
    print(f"[train] {(time.perf_counter() - started) / 60:.1f} min of wall time", flush=True)
    utterances = load_test_set(args.eval_data, args.eval_split, args.eval_limit, speech_only=True)
    key = held_out_key(args.eval_data, args.eval_split, args.eval_limit, utterances)
    curves = {name: curve_of(spec, name, args.out, utterances, key) for name in spec["runs"]}
    with atomic_path(args.out / "levers.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps({"spec": spec, "minutes": args.minutes, "eval": {
            "data": str(args.eval_data), "split": args.eval_split, "limit": args.eval_limit}, "curves": curves}, indent=1))
    table = report(spec, curves, args.out)
    with atomic_path(args.out / "levers.md", overwrite=True) as tmp:
        tmp.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    run_script(main)
