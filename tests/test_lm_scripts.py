"""scripts/train_audio_lm.py, scripts/finetune_tts.py and scripts/tts_generate.py end to end on a micro tokenized
corpus (the columns `datasets.map(DatasetTokenizer(...))` writes, with corpus word timings; codes drawn at random),
run in this interpreter through each script's `main`, with models small enough for seconds per script."""

from __future__ import annotations

import json
import math
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [["the", "cat", "sat"], ["a", "dog", "ran", "home"], ["birds", "sing"], ["it", "was", "a", "fine", "day"],
             ["rain", "fell", "all", "night"], ["we", "walked", "on"]]


def run_script(name: str, *args: str, monkeypatch) -> int:
    monkeypatch.setattr(sys, "argv", [name, *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts" / name), run_name="__main__")
    return exit_info.value.code


def micro_rows(codec, codes_of) -> list[dict]:
    """40 tokenized utterances of 40-139 frames with evenly timed words; `codes_of(rng, frames, codebook_size)`
    draws each one's codes."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(40):
        words = SENTENCES[index % len(SENTENCES)]
        frames = int(rng.integers(40, 140))
        ends = np.linspace(0, frames / codec.frame_rate, len(words) + 1)
        rows.append({"id": f"utt{index:03d}", "kind": "speech", "frame_rate": float(codec.frame_rate),
                     "num_frames": frames, "audio_codes": [np.asarray(codes_of(rng, frames, codec.codebook_size)).tolist()],
                     "words": [{"word": w, "start": float(s), "end": float(e)}
                               for w, s, e in zip(words, ends[:-1], ends[1:])]})
    return rows


@pytest.fixture(scope="module")
def micro_corpus(tmp_path_factory, converted_dir) -> tuple[Path, Path]:
    """(tokenized dataset, codec): 40 utterances of 0.5-1.9 s, some longer than the blocks the tests use."""
    from datasets import Dataset

    from wavtokenizer_hf.codec import Codec

    codec = Codec.from_pretrained(converted_dir)
    rows = micro_rows(codec, lambda rng, frames, size: rng.integers(0, size, frames))
    path = tmp_path_factory.mktemp("micro") / "tokenized"
    Dataset.from_list(rows).save_to_disk(str(path))
    return path, converted_dir


TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 1024}
TRAIN = ["--batch-size", "4", "--max-steps", "3", "--warmup-steps", "1", "--eval-every", "2",
         "--validation-share", "0.2", "--selection-share", "0.2"]


def test_train_audio_lm_script_runs_end_to_end_with_a_model_shorter_than_its_longest_utterance(
        micro_corpus, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data, codec = micro_corpus
    config = tmp_path / "gpt2.json"  # 64 positions; utterances have up to 141 tokens
    config.write_text(json.dumps({"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 64}))
    out = tmp_path / "audio_lm"
    code = run_script("train_audio_lm.py", "--data", str(data), "--codec", str(codec), "--out", str(out),
                      "--model-config", str(config), "--block-size", "64", "--samples", "1", "--prompt-seconds",
                      "0.5", "--continuation-seconds", "2", *TRAIN, monkeypatch=monkeypatch)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["utterances_split_at_block_size"]["train"] > 0 and metrics["selection_utterances"] > 0
    assert all(math.isfinite(metrics[name]["perplexity"]) for name in ("lm", "bigram", "unigram"))
    assert metrics["sampling"]["prompt_frames"] + metrics["sampling"]["continuation_frames"] <= 63
    assert [Path(p).name.endswith(("_prompt.wav", "_continuation.wav")) for p in metrics["samples"]] == [True, True]
    assert AutoModelForCausalLM.from_pretrained(out / "model").config.model_type == "gpt2"
    assert len(AutoTokenizer.from_pretrained(out / "model")) == metrics["codebook_size"] + 8


def test_finetune_tts_and_tts_generate_scripts_run_end_to_end(micro_corpus, tmp_path, monkeypatch):
    data, codec = micro_corpus
    config = tmp_path / "llama.json"
    config.write_text(json.dumps(TINY_LLAMA))
    out = tmp_path / "tts"
    code = run_script("finetune_tts.py", "--data", str(data), "--codec", str(codec), "--out", str(out),
                      "--format", "interleaved", "--model-config", str(config), "--block-size", "128", *TRAIN,
                      monkeypatch=monkeypatch)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(metrics["validation_audio_loss"]) and metrics["text_conditioning"]["pairs"] > 0
    assert metrics["utterances_split_at_block_size"]["train"] > 0 and "disjoint" in metrics["checkpoint_selected_on"]
    assert json.loads((out / "model" / "tts_format.json").read_text()) == {"format": "interleaved", "block_size": 128}
    wav = tmp_path / "spoken.wav"
    code = run_script("tts_generate.py", "--lm", str(out / "model"), "--codec", str(codec), "--text", "The cat sat.",
                      "--out", str(wav), "--max-seconds", "1", monkeypatch=monkeypatch)
    assert code == 0 and wav.stat().st_size > 0


def test_finetune_tts_refuses_an_empty_validation_split(micro_corpus, tmp_path, monkeypatch, capsys):
    data, codec = micro_corpus
    config = tmp_path / "llama.json"  # a run that would train in seconds, were the split accepted
    config.write_text(json.dumps(TINY_LLAMA))
    code = run_script("finetune_tts.py", "--data", str(data), "--codec", str(codec), "--out", str(tmp_path / "t"),
                      "--model-config", str(config), "--block-size", "128", "--max-steps", "1",
                      "--validation-share", "0.0001", monkeypatch=monkeypatch)
    assert code == 2 and "validation split of 40 utterances is empty" in capsys.readouterr().err


def test_train_audio_lm_with_an_audio_bpe_trains_on_fewer_tokens_and_samples_codes(micro_corpus, tmp_path, monkeypatch):
    from datasets import load_from_disk

    from lm.audio_bpe import load_audio_bpe, train_audio_bpe

    data, codec = micro_corpus
    rows = load_from_disk(str(data))
    streams = [np.asarray(r["audio_codes"][0]) for r in rows]
    streams = [np.repeat(s[: len(s) // 2], 2) for s in streams]  # repeated codes: something for BPE to merge
    bpe_rows = rows.remove_columns("audio_codes").add_column("audio_codes", [[s.tolist()] for s in streams])
    bpe_rows = bpe_rows.remove_columns("num_frames").add_column("num_frames", [len(s) for s in streams])
    bpe_data = tmp_path / "tokenized"
    bpe_rows.save_to_disk(str(bpe_data))
    codebook_size = int(json.loads((Path(codec) / "config.json").read_text())["codebook_size"])
    train_audio_bpe(streams, codebook_size, codebook_size + 200).save(tmp_path / "bpe")
    out, config = tmp_path / "audio_lm", tmp_path / "llama.json"
    config.write_text(json.dumps(TINY_LLAMA))
    code = run_script("train_audio_lm.py", "--data", str(bpe_data), "--codec", str(codec), "--out", str(out),
                      "--audio-bpe", str(tmp_path / "bpe"), "--model-config", str(config), "--block-size", "64",
                      "--samples", "1", "--prompt-seconds", "0.5", "--continuation-seconds", "1", *TRAIN,
                      monkeypatch=monkeypatch)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["audio_vocab_size"] > codebook_size
    assert metrics["validation_tokens_per_second"] < 0.8 * float(rows[0]["frame_rate"])  # merged tokens
    assert math.isfinite(metrics["lm"]["bits_per_second"])
    assert load_audio_bpe(out / "audio_bpe", codebook_size).vocab_size == metrics["audio_vocab_size"]
    assert [Path(p).name.endswith(("_prompt.wav", "_continuation.wav")) for p in metrics["samples"]] == [True, True]
    bench = tmp_path / "sampling.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_lm_sampling.py"), "--run", str(out),
                           "--seconds", "0.4", "--repeats", "1", "--out", str(bench)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    speed = json.loads(bench.read_text())["runs"][str(out)]
    assert speed["frames_per_token"] > 1.1  # the BPE's merged tokens each hold several frames
    assert speed["sampled_audio_seconds_per_second"] == pytest.approx(
        speed["sampling_tokens_per_second"] * speed["frames_per_token"] / float(rows[0]["frame_rate"]), rel=1e-6)
    assert speed["audio_seconds_per_training_second"] > 0
