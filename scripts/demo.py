"""`make demo`: the whole pipeline end to end on the data shipped in the repository; each stage prints its name,
its time and its headline numbers. It lives here, not in the codec package, because it also runs the `lm` stages."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
FIXTURE = ASSETS / "original_small"


@contextlib.contextmanager
def stage(name: str) -> Iterator[dict]:
    """Print a stage banner, run it, then print its time and the numbers it put in the yielded dict."""
    print(f"\n=== {name}", flush=True)
    numbers: dict = {}
    start = time.perf_counter()
    yield numbers
    elapsed = time.perf_counter() - start
    details = ", ".join(f"{key}: {value}" for key, value in numbers.items())
    print(f"--- {name}: {elapsed:.1f} s" + (f" | {details}" if details else ""), flush=True)


def run(out_dir: Path, corpus_hours: float = 1.5, train_minutes: float = 9.0, use_own_codec: bool = False,
        lm_minutes: float = 3.0, tts_minutes: float = 6.0, eval_items: int = 30) -> None:
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from wavtokenizer_hf.audio_io import read_audio, write_audio
    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.convert import convert_original_checkpoint, export_original_checkpoint
    from wavtokenizer_hf.model_card import describe_config

    hf_logging.disable_progress_bar()
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_dir = out_dir / "converted_small75"

    with stage("1. convert the authors' checkpoint (shipped shrunken 75 tokens/s fixture)") as numbers:
        report = convert_original_checkpoint(
            FIXTURE / "wavtokenizer_small_frame75.ckpt", FIXTURE / "config_small_frame75.yaml", hf_dir, overwrite=True
        )
        numbers["tensors mapped"] = len(report.mapped)
        numbers["dropped on purpose"] = len(report.dropped)
        numbers["written to"] = str(hf_dir)

    with stage("2. load with stock transformers and compare with the authors' outputs") as numbers:
        model = AutoModel.from_pretrained(hf_dir).eval()
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

    with stage("3. reconstruct a speech file through the codec (random-weight fixture: expect noise)") as numbers:
        codec = Codec.from_pretrained(hf_dir)
        speech_path = ASSETS / "audio" / "arctic_a0007.wav"
        waveform, rate = read_audio(speech_path)
        start = time.perf_counter()
        encoded = codec.encode(waveform, rate)
        encoded.save(out_dir / "arctic_a0007.codes.safetensors", overwrite=True)
        decoded = codec.decode_to_source_rate(encoded)
        seconds = waveform.shape[-1] / rate
        numbers["audio"] = f"{seconds:.2f} s at {rate} Hz"
        numbers["tokens"] = f"{encoded.num_frames} ({encoded.frame_rate:g}/s)"
        numbers["real-time factor"] = f"{(time.perf_counter() - start) / seconds:.3f}"
        write_audio(out_dir / "arctic_a0007_reconstructed.wav", decoded, rate, overwrite=True)
        numbers["lengths in/out"] = f"{waveform.shape[-1]}/{decoded.shape[-1]}"

    with stage("4. export back to the authors' layout and convert again") as numbers:
        ckpt = export_original_checkpoint(hf_dir, out_dir / "exported" / "small75.ckpt", overwrite=True)
        again = out_dir / "reconverted_small75"
        convert_original_checkpoint(ckpt, ckpt.with_suffix(".yaml"), again, overwrite=True)
        from safetensors.torch import load_file

        first, second = load_file(hf_dir / "model.safetensors"), load_file(again / "model.safetensors")
        identical = sum(torch.equal(first[k], second[k]) for k in first)
        numbers["tensors bit-identical"] = f"{identical}/{len(first)}"

    corpus_dir = out_dir / "corpus"
    with stage("5. build the default offline corpus (espeak-ng speech with timings, music, noise)") as numbers:
        from wavtokenizer_hf.corpus import build_corpus

        summary = build_corpus(corpus_dir, hours=corpus_hours, seed=0, overwrite=True)
        for split, info in summary["splits"].items():
            numbers[split] = f"{info['items']} items / {info['minutes']} min / {len(info['voices'])} voices"

    with stage("6. evaluate reconstruction of the held-out test split (identity vs. the converted fixture)") as numbers:
        from wavtokenizer_hf.evaluation import CodecReconstructor, Identity, evaluate, load_test_set, markdown_table, write_results

        utterances = load_test_set(corpus_dir, "test", limit=eval_items)
        numbers["utterances"] = len(utterances)
        results = evaluate([Identity(), CodecReconstructor(hf_dir)], utterances)
        write_results(results, out_dir / "evaluation")
        print(markdown_table(results))
        fixture = results["codecs"][hf_dir.name]["summary"]
        numbers["fixture STOI"] = f"{fixture['stoi']:.3f}"
        numbers["fixture mel distance"] = f"{fixture['mel_distance']:.3f}"
        numbers["written to"] = str(out_dir / "evaluation")

    tiny_dir = out_dir / "tiny_codec"
    with stage(f"7. train the `tiny` codec on the corpus for {train_minutes:g} minutes (CPU)") as numbers:
        from wavtokenizer_hf.training import Trainer, load_train_config

        import shutil

        shutil.rmtree(tiny_dir, ignore_errors=True)  # a fresh run each time (the trainer would resume otherwise)
        # snapshots every 200 steps let stage 8 plot quality and the probes (stage 13) alignment against training
        cfg = load_train_config("tiny", [f"data.train={corpus_dir}", "run.export_every=200"])
        trainer = Trainer(cfg, tiny_dir)
        last = trainer.fit(max_seconds=train_minutes * 60)
        exported = trainer.export("final")
        numbers["steps"] = trainer.step
        numbers["last batch mel loss"] = f"{last.get('mel', float('nan')):.3f}"
        numbers["exported"] = str(exported)

    with stage("8. evaluate the tiny codec on the held-out test split") as numbers:
        results = evaluate([CodecReconstructor(exported)], utterances)
        write_results(results, out_dir / "evaluation_tiny")
        print(markdown_table(results))
        summary = results["codecs"][exported.name]["summary"]
        numbers["STOI"] = f"{summary['stoi']:.3f}"
        numbers["recogniser"] = results["recognizer"]
        numbers["WER"] = _percent(summary["wer"]) + f" (original {_percent(summary['wer_original'])})"
        numbers["CER"] = _percent(summary["cer"]) + f" (original {_percent(summary['cer_original'])})"
        numbers["codebook used"] = _percent(summary.get("codebook_used"))
        # the curve the targets ask for: quality against minutes of training, from the snapshots
        from wavtokenizer_hf.curves import plot_scores
        from wavtokenizer_hf.evaluation.snapshots import best_snapshot, score_snapshots

        curve = score_snapshots(tiny_dir, utterances, final_step=trainer.step)
        (tiny_dir / "quality_curve.json").write_text(json.dumps(curve, indent=1))
        numbers["STOI vs minutes"] = ", ".join(f"{r['minutes']:.1f} min {r['stoi']:.3f}" for r in curve)
        if curve[0].get("cer") is not None:
            numbers["CER vs minutes"] = ", ".join(f"{r['minutes']:.1f} min {r['cer']:.1%}" for r in curve)
        numbers["best snapshot (lowest CER)"] = f"step {best_snapshot(curve)['step']}"
        keys = ("cer", "stoi") if curve[0].get("cer") is not None else ("stoi", "mel_distance")
        numbers["curve"] = str(plot_scores(curve, tiny_dir / "quality_curve.png", keys=keys,
                                           title="tiny codec, held-out"))

    with stage("9. place the codec the later stages use at ./wavtokenizer and load it with AutoModel") as numbers:
        from wavtokenizer_hf.default_codec import install_default_codec

        target = Path("wavtokenizer")
        if use_own_codec:
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(exported, target)
        else:
            install_default_codec(target, overwrite=True)  # what `wavtokenizer init` does
        model = AutoModel.from_pretrained("wavtokenizer")
        numbers["codec"] = f"this demo's tiny codec ({exported})" if use_own_codec else "the default codec (wavtokenizer init)"
        numbers["loaded"] = f"{type(model).__name__}, {model.config.codebook_size} codes, {model.config.frame_rate} tokens/s"

    tokenized_dir = out_dir / "tokenized"
    with stage("10. tokenize the corpus (all splits) with datasets.map (2 processes)") as numbers:
        from datasets import load_from_disk

        from wavtokenizer_hf.tokenization import DatasetTokenizer

        corpus = load_from_disk(str(corpus_dir))
        start = time.perf_counter()
        tokenized = corpus.map(DatasetTokenizer("wavtokenizer"), batched=True, batch_size=16, with_rank=True,
                               num_proc=2, remove_columns=["audio"])
        seconds = time.perf_counter() - start
        audio_seconds = sum(sum(split["audio_seconds"]) for split in tokenized.values())
        tokenized.save_to_disk(str(tokenized_dir))
        numbers["rows"] = {name: len(split) for name, split in tokenized.items()}
        numbers["audio"] = f"{audio_seconds / 60:.1f} min"
        numbers["throughput"] = f"{audio_seconds / seconds:.0f}x real time ({audio_seconds / 3600 / seconds:.4f} audio-h/s)"
        numbers["written to"] = str(tokenized_dir)

    with stage(f"11. train a GPT on the audio-token streams for {lm_minutes:g} minutes; compare with n-gram baselines") as numbers:
        from lm.audio_lm import train_audio_lm
        from lm.trainer import LMTrainConfig

        cfg = LMTrainConfig(block_size=512, batch_size=8, learning_rate=2e-3, max_steps=2000, max_minutes=lm_minutes,
                            eval_every=100)
        metrics = train_audio_lm(tokenized_dir, "wavtokenizer", out_dir / "audio_lm", cfg, num_samples=2)
        numbers["steps"] = metrics["steps"]
        for name in ("lm", "bigram", "unigram"):
            numbers[f"{name} perplexity"] = f"{metrics[name]['perplexity']:.1f} ({metrics[name]['bits_per_second']:.0f} bits/s)"
        numbers["samples"] = str(out_dir / "audio_lm" / "samples")

    with stage(f"12. train a TTS-LM (interleaved words + durations + codes) for {tts_minutes:g} minutes; speak held-out sentences") as numbers:
        from lm.tts_lm import finetune_tts

        cfg = LMTrainConfig(block_size=1024, batch_size=8, learning_rate=2e-3, max_steps=3000,
                            max_minutes=tts_minutes, eval_every=200)
        metrics = finetune_tts(tokenized_dir, "wavtokenizer", out_dir / "tts_lm", "interleaved", cfg,
                               eval_corpus=corpus_dir, eval_items=20)
        test = metrics["test"]
        numbers["steps"] = metrics["steps"]
        numbers["held-out audio loss"] = f"{metrics['validation_audio_loss']:.3f}"
        conditioning = metrics["text_conditioning"]
        if conditioning.get("pairs"):
            numbers["loss with another sentence's text"] = (f"{conditioning['audio_loss_other_text']:.3f} "
                                                            f"(text gain {conditioning['text_gain_nats']:.3f} nats/token)")
        numbers["recogniser"] = test["recognizer"]
        numbers["WER generated"] = _percent(test["wer_generated"])
        numbers["WER codec ceiling"] = _percent(test["wer_reconstruction"])
        numbers["WER originals"] = _percent(test["wer_original"])
        numbers["duration ratio"] = f"{test['duration_ratio']:.2f}"
        numbers["samples"] = str(out_dir / "tts_lm" / "samples")

    with stage("13. probe how codes align with phones and words; write the HTML report") as numbers:
        from lm.probes import json_summary, run_probes, write_report

        codecs = {"./wavtokenizer (stage 9)": Path("wavtokenizer")}
        codecs.update({f"demo tiny codec {p.name}": p for p in sorted(tiny_dir.glob("step*"))})
        codecs["demo tiny codec final"] = exported
        result = run_probes(codecs, corpus_dir, "test", rounds=200, lm_dir=out_dir / "tts_lm" / "model")
        report = write_report(result, out_dir / "report.html")
        summary = json_summary(result)
        (out_dir / "report.json").write_text(json.dumps(summary, indent=2))
        for row in summary["rows"]:
            if row["name"] == summary["rows"][0]["name"] or row["kind"] == "baseline":
                m = row["metrics"]
                numbers[row["name"]] = (f"PNMI {m['pnmi']['value']:.3f} [{m['pnmi']['low']:.3f}, {m['pnmi']['high']:.3f}], "
                                        f"mapping {m['mapping_accuracy']['value']:.3f} "
                                        f"[{m['mapping_accuracy']['low']:.3f}, {m['mapping_accuracy']['high']:.3f}]")
        numbers["report"] = str(report.resolve())
    print(f"\nDemo finished; outputs in {out_dir}")


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


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
    args = parser.parse_args()
    run(args.out, args.corpus_hours, args.train_minutes, args.use_own_codec, args.lm_minutes, args.tts_minutes,
        args.eval_items)


if __name__ == "__main__":
    main()
