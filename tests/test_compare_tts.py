"""benchmarks/compare_tts_lms.py end to end on the micro tokenized corpus (three tiny runs: from scratch, a tiny Llama
"text LM" fine-tuned in full and with LoRA), its resumption and its input checks; and the generation speed that
lm.tts_training.evaluate_tts records."""

from __future__ import annotations

import io
import json
import runpy
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_lm_scripts import TINY_LLAMA, micro_corpus  # noqa: F401 (micro_corpus is a fixture)
from test_pretrained_lm import tiny_text_lm_dir  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "compare_tts_lms.py"
CONDITIONING = ("text_gain_bits_per_second", "text_gain_interval", "duration_gain_bits_per_second")
TEST = ("wer_generated", "wer_reconstruction", "wer_original", "wer_generated_interval", "wer_reconstruction_interval",
        "wer_original_interval", "wer_gap_interval", "cer_generated", "cer_original", "speaker_similarity_generated",
        "generated_audio_seconds_per_second", "generation_seconds")


def sine_flac(seconds: float = 0.5, rate: int = 24000) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, (0.1 * np.sin(np.arange(int(seconds * rate)) / 10)).astype(np.float32), rate, format="FLAC")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def eval_corpus(tmp_path_factory) -> Path:
    """A corpus whose test split holds two spoken sentences of two speakers (a sine each: only the plumbing counts)."""
    from datasets import Dataset, DatasetDict

    rows = [{"id": f"t{i}", "speaker": "ab"[i], "kind": "speech", "text": text,
             "audio": {"bytes": sine_flac(), "path": None}} for i, text in enumerate(["the cat sat", "birds sing"])]
    path = tmp_path_factory.mktemp("eval") / "corpus"
    DatasetDict({"test": Dataset.from_list(rows)}).save_to_disk(str(path))
    return path


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_three_runs_at_equal_cpu_minutes_report_every_number_and_a_second_invocation_reruns_nothing(
        micro_corpus, tiny_text_lm_dir, eval_corpus, tmp_path):  # noqa: F811
    data, codec = micro_corpus
    config = tmp_path / "llama.json"
    config.write_text(json.dumps(TINY_LLAMA))
    out = tmp_path / "compare"
    args = ["--data", str(data), "--codec", str(codec), "--eval-corpus", str(eval_corpus), "--text-lm",
            str(tiny_text_lm_dir), "--out", str(out), "--minutes", "0.2", "--parallel", "2", "--eval-items", "2",
            "--samples", "0", "--model-config", str(config), "--block-size", "128", "--batch-size", "4",
            "--max-steps", "2", "--warmup-steps", "1", "--eval-every", "0", "--validation-share", "0.2",
            "--selection-share", "0.2", "--lora-rank", "4"]
    done = compare(*args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert list(results["runs"]) == ["scratch", "full", "lora"]
    assert set(results["environment"]["versions"]) >= {"torch", "transformers", "peft"}
    assert results["environment"]["cpu"] and results["minutes"] == 0.2 and results["clock"] == "cpu"
    for name, run in results["runs"].items():
        assert not run["failed"], name
        assert run["steps"] == 2 and 0 < run["train_cpu_minutes"] <= run["process_cpu_minutes"]
        assert run["steps_per_cpu_minute"] == pytest.approx(2 / run["train_cpu_minutes"], rel=1e-6)
        assert run["peak_rss_mib"] > 100 and run["wall_minutes"] > 0 and run["parameters"] > 0
        assert np.isfinite(run["validation_bits_per_second"]) and run["validation_bits_per_second"] > 0
        metrics = json.loads((out / name / "metrics.json").read_text())  # every number is the run's own
        assert set(CONDITIONING) <= set(run["text_conditioning"]) <= set(metrics["text_conditioning"])
        assert set(TEST) <= set(run["test"]) <= set(metrics["test"])
        assert run["validation_bits_per_second"] == metrics["validation_bits_per_second"]
        assert run["text_conditioning"]["pairs"] > 0 and len(run["text_conditioning"]["text_gain_interval"]) == 2
        test = run["test"]
        assert test["sentences"] == 2 and test["generation_seconds"] > 0
        assert test["generated_audio_seconds_per_second"] == pytest.approx(
            test["generated_seconds"] / test["generation_seconds"], rel=0.05, abs=0.01)
        if test["recognizer"] is not None:  # Whisper or pocketsphinx installed: the WERs and intervals are numbers
            assert all(test[key] is not None for key in ("wer_generated", "wer_reconstruction", "wer_original",
                                                         "wer_gap_interval", "wer_generated_interval"))
        assert "--clock cpu" in run["command"] and "--max-minutes 0.2" in run["command"]
        assert run["command"].startswith("OMP_NUM_THREADS=1") and "nice -n" in run["command"]
    commands = {name: run["command"] for name, run in results["runs"].items()}
    assert "--text-lm" not in commands["scratch"] and "--lora-rank" not in commands["full"]
    assert "--lora-rank 4" in commands["lora"] and "--lr 0.002" in commands["scratch"]
    assert "--lr 0.0002" in commands["full"] and "--lr 0.001" in commands["lora"]
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == 4 and "LoRA r4" in table  # the header and three rows

    kept = {name: (out / name / "metrics.json").stat().st_mtime_ns for name in results["runs"]}
    again = compare(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("kept (") == 3 and "nice -n" not in again.stdout
    assert {name: (out / name / "metrics.json").stat().st_mtime_ns for name in kept} == kept
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]


def test_a_missing_input_folder_is_one_line_and_exit_2_before_anything_runs(tmp_path, converted_dir, monkeypatch,
                                                                             capsys):
    for missing in ("--data", "--codec", "--eval-corpus", "--text-lm"):
        paths = {"--data": tmp_path, "--codec": converted_dir, "--eval-corpus": tmp_path, "--text-lm": converted_dir}
        paths[missing] = tmp_path / "nowhere"
        argv = [str(v) for key, path in paths.items() for v in (key, path)]
        monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv, "--out", str(tmp_path / "out"), "--minutes", "1"])
        with pytest.raises(SystemExit) as exit_info:  # in this interpreter: a subprocess would take seconds each
            runpy.run_path(str(SCRIPT), run_name="__main__")
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == f"compare_tts_lms: error: {missing} {tmp_path / 'nowhere'}: not found\n"
        assert not (tmp_path / "out").exists()


def test_each_run_gets_its_own_learning_rate_batch_and_warm_up_unless_one_is_given_for_all(tmp_path):
    script = runpy.run_path(str(SCRIPT))  # its functions, without running main
    base = ["--data", "d", "--codec", "c", "--eval-corpus", "e", "--text-lm", "t", "--out", str(tmp_path), "--minutes",
            "3"]
    args = script["parse_args"](base)
    commands = {name: " ".join(script["run_command"](name, args)) for name in args.runs}
    assert args.runs == ["scratch", "full", "lora"]
    for name, (lr, batch, warmup) in {"scratch": ("0.002", 8, 50), "full": ("0.0002", 1, 10),
                                      "lora": ("0.001", 1, 10)}.items():
        assert f"--lr {lr} " in commands[name] and f"--batch-size {batch} " in commands[name]
        assert f"--warmup-steps {warmup} " in commands[name] and "--max-minutes 3 --clock cpu" in commands[name]
    assert "--text-lm" not in commands["scratch"] and "--lora-rank" not in commands["full"]
    assert commands["lora"].endswith("--text-lm t --lora-rank 16")
    args = script["parse_args"]([*base, "--batch-size", "4", "--warmup-steps", "3", "--lr-full", "5e-5"])
    assert all("--batch-size 4 --" in " ".join(script["run_command"](n, args)) for n in args.runs)
    assert "--lr 5e-05 " in " ".join(script["run_command"]("full", args))


def test_a_run_is_reported_with_the_settings_it_was_made_with_not_todays_defaults(tmp_path):
    script = runpy.run_path(str(SCRIPT))
    made = script["parse_args"](["--data", "d", "--codec", "c", "--eval-corpus", "e", "--text-lm", "t", "--out",
                                 str(tmp_path), "--minutes", "3", "--batch-size", "3", "--warmup-steps", "7",
                                 "--block-size", "256", "--lr-full", "5e-5"])
    folder = tmp_path / "full"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({
        "steps": 12, "train_seconds": 120.0, "validation_audio_loss": 1.0, "validation_bits_per_second": 100.0}))
    (folder / "train_summary.json").write_text(json.dumps({"clock": "cpu"}))
    (folder / "run.json").write_text(json.dumps({"command": script["command_of"]("full", made)}))
    today = script["parse_args"](["--data", "d", "--codec", "c", "--eval-corpus", "e", "--text-lm", "t", "--out",
                                  str(tmp_path), "--minutes", "3"])
    result = script["result_of"]("full", today)
    assert (result["batch_size"], result["warmup_steps"], result["block_size"]) == (3, 7, 256)
    assert result["learning_rate"] == 5e-5
    assert result["block_tokens_per_cpu_minute"] == 12 * 3 * 256 / 2.0


def test_each_childs_peak_memory_is_its_own_not_the_largest_of_all_children(tmp_path):
    script = runpy.run_path(str(SCRIPT))
    big = "import time; b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.8)"  # 400 MiB
    small = "import time; time.sleep(1.5)"  # exits after the big one has been reaped
    live = {}
    for name, code in (("big", big), ("small", small)):  # spawned by this process, itself far above 100 MiB
        process = subprocess.Popen([sys.executable, "-c", code])
        live[process.pid] = {"name": name, "process": process, "started": time.perf_counter(), "peak_kib": 0,
                             "log": open(tmp_path / f"{name}.log", "w")}
    done = {}
    while live:
        time.sleep(0.1)
        done.update({child["name"]: child for child in script["_reap"](live)})
    assert done["big"]["exit_code"] == done["small"]["exit_code"] == 0 and done["small"]["wall_s"] > 1.4
    assert done["big"]["peak_kib"] > 400 * 1024 and done["small"]["peak_kib"] < 100 * 1024


def test_generation_seconds_cover_sampling_and_decoding_and_give_the_audio_rate(converted_dir, tmp_path, monkeypatch):
    import lm.tts_training as training
    from lm.sampling import SamplingConfig
    from lm.tts_generation import TooFewFrames
    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.evaluation import asr, speaker

    codec = Codec.from_pretrained(converted_dir)
    frames = {"a": 150, "b": 75}

    def slow_generation(model, formatter, text, frame_rate, sampling, **kwargs):
        time.sleep(0.2)  # the time spent in a failed generation counts too
        if text == "fails":
            raise TooFewFrames("the LM produced 1 audio frame(s)")
        return np.random.default_rng(0).integers(0, codec.codebook_size, frames[text])

    monkeypatch.setattr(training, "generate_codes", slow_generation)
    monkeypatch.setattr(asr, "recognizer", lambda which="auto": None)
    monkeypatch.setattr(speaker, "available", lambda: False)
    rows = [{"id": f"u{i}", "text": text, "audio": {"bytes": sine_flac(0.3), "path": None}}
            for i, text in enumerate(["a", "fails", "b"])]
    result = training.evaluate_tts(None, None, codec, rows, tmp_path, SamplingConfig(seed=0), samples=0)
    generated = sum(item["generated_seconds"] for item in result["items"])
    assert generated == pytest.approx(225 / codec.frame_rate, rel=0.02) and result["failed_generations"] == 1
    assert 0.6 <= result["generation_seconds"] < 0.6 + 20
    assert result["generated_audio_seconds_per_second"] == pytest.approx(generated / result["generation_seconds"],
                                                                         rel=1e-3)


def test_the_demo_starts_its_tts_lm_from_a_pretrained_lm_prepared_when_missing(
        micro_corpus, tiny_text_lm_dir, eval_corpus, tmp_path, monkeypatch):  # noqa: F811
    import dataclasses
    import shutil

    import lm.pretrained_lm
    import lm.tts_training

    data, codec = micro_corpus
    demo = runpy.run_path(str(ROOT / "scripts" / "demo.py"))
    d = demo["Demo"](tmp_path / "demo", tts_minutes=0.05, tts_text_lm=tmp_path / "smollm2", tts_lora_rank=4)
    d.codec = codec
    d.out.mkdir()
    d.tokenized.symlink_to(data)
    d.corpus.symlink_to(eval_corpus)
    prepared, configs = [], []
    monkeypatch.setattr(lm.pretrained_lm, "prepare_text_lm",
                        lambda out: prepared.append(out) or shutil.copytree(tiny_text_lm_dir, out))
    real = lm.tts_training.finetune_tts
    monkeypatch.setattr(lm.tts_training, "finetune_tts",  # the tiny LM has 256 positions, the demo's blocks 1024
                        lambda *args, **kwargs: configs.append((args[4], kwargs)) or real(
                            *args[:4], dataclasses.replace(args[4], block_size=128), *args[5:], **kwargs))
    numbers: dict = {}
    stage = next(function for title, function in demo["STAGES"] if function.__name__ == "train_tts_lm")
    stage(d, numbers)
    assert prepared == [tmp_path / "smollm2"]
    cfg, kwargs = configs[0]
    assert (cfg.learning_rate, cfg.batch_size, cfg.warmup_steps) == lm.tts_training.START_SETTINGS["lora"]
    assert kwargs["text_lm"] == tmp_path / "smollm2" and kwargs["lora_rank"] == 4
    assert numbers["steps"] >= 1 and (d.out / "tts_lm" / "model" / "adapter").is_dir()
    assert "LoRA rank 4" in d.tts_start


def test_each_start_of_a_tts_lm_gets_its_own_rate_batch_and_warm_up():
    from lm.tts_training import START_SETTINGS, start_config

    assert start_config(None).batch_size == START_SETTINGS["scratch"][1] == 8
    full, lora = start_config("t", 0, max_minutes=2.0), start_config("t", 8, batch_size=3)
    assert (full.learning_rate, full.batch_size, full.warmup_steps, full.max_minutes) == (2e-4, 1, 10, 2.0)
    assert (lora.learning_rate, lora.batch_size, lora.warmup_steps) == (1e-3, 3, 10)
