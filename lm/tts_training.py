"""TTS-LM training (from scratch or by extending a text LM) and its evaluation: recogniser WER on generated test
sentences beside the WER on the codec's reconstructions of the same sentences (the ceiling) and on the originals,
and the text-conditioning gain on the validation utterances.

Held-out losses are reported per token and in bits per second of audio (all scored nats of the audio part, over the
utterances' seconds): only the latter compares an LM on single codes with one on audio-BPE tokens (`audio_bpe`),
whose tokens hold several frames each."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wavtokenizer_hf.corpus.text import load_sentence_pools, normalize_words
from wavtokenizer_hf.errors import WavTokenizerError

from .audio_bpe import MODEL_SUBDIR, AudioBPE, add_audio_bpe_tokens, audio_layout, joint_tokenizer, load_audio_bpe
from .evaluate import summarize, token_nats, utterance_nats
from .experiment import run_metrics, split_utterances, train_and_reload, write_metrics
from .models import build_causal_lm
from .sampling import SamplingConfig
from .streams import Utterance, codes_of, load_tokenized
from .text_sentencepiece import check_text_model
from .trainer import LMTrainConfig
from .tts_generation import FORMAT_FILE, TooFewFrames, generate_codes
from .tts_sequences import TTSFormatter, check_format, timed_words
from .vocabulary import PAD, extend_text_lm, extend_tokenizer

Row = tuple[list[dict], np.ndarray, float]  # (corpus word timings, codes, frame rate)


def make_tokenizer_and_model(audio: AudioBPE | int, text_lm: str | Path | None, model_config: str | Path | None,
                             text_vocab_size: int = 1024, text_model: str = "bpe", lora_rank: int = 0):
    """Extend an existing text LM and its tokenizer, or build a joint tokenizer (a `text_model` text side trained on
    the shipped training-pool sentences: never the held-out ones) and a fresh model. `audio` is the codebook size
    (single codes) or an audio BPE, whose pieces follow the codes. `lora_rank` > 0 (a text LM only) returns the
    extended model as a peft LoRA model whose new tokens' embedding rows train (`lm.lora.apply_lora`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bpe = audio if isinstance(audio, AudioBPE) else None
    if lora_rank and text_lm is None:
        raise WavTokenizerError("--lora-rank adapts an existing text LM: give --text-lm")
    if text_lm is not None:
        if text_model != "bpe":
            raise WavTokenizerError(f"--text-model {text_model} trains a text side for a model from scratch; "
                                    "--text-lm brings its own tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(text_lm)
        text_tokens = len(tokenizer)
        extend_tokenizer(tokenizer, bpe.codebook_size if bpe else int(audio))
        if bpe is not None:
            add_audio_bpe_tokens(tokenizer, bpe)
        model = AutoModelForCausalLM.from_pretrained(text_lm)
        extend_text_lm(model, tokenizer, text_vocab_size=text_tokens)
        if lora_rank > 0:
            from .lora import apply_lora

            model = apply_lora(model, range(text_tokens, len(tokenizer)), rank=lora_rank, alpha=2 * lora_rank)
        return tokenizer, model
    texts = (" ".join(normalize_words(s)) for s in load_sentence_pools()["train"])
    tokenizer = joint_tokenizer(audio, texts, text_vocab_size, text_model)
    return tokenizer, build_causal_lm(len(tokenizer), audio_layout(tokenizer, bpe), model_config=model_config)


def tts_utterances(dataset, formatter: TTSFormatter, keep_rows: dict | None = None) -> list[Utterance]:
    """Training examples of every speech row with word timings; `keep_rows` collects (words, codes, rate) by id."""
    utterances = []
    for index, row in enumerate(dataset):
        if row.get("kind", "speech") != "speech" or not row.get("words") or row.get("language", "en") != "en":
            continue  # English text only: the text side of the vocabulary is English
        codes = codes_of(row)
        uid = str(row.get("id", index))
        if codes.size < len(timed_words(row["words"])):
            continue  # too few frames for its words (a clipped or broken row)
        if codes.size and int(codes.max()) >= formatter.layout.codebook_size:
            raise WavTokenizerError(f"row {uid} has code {int(codes.max())} but the codec has "
                                    f"{formatter.layout.codebook_size} codes: tokenize the data with this codec")
        utterances.append(formatter.example(uid, row["words"], codes, float(row["frame_rate"])))
        if keep_rows is not None:
            keep_rows[uid] = (row["words"], codes, float(row["frame_rate"]))
    if not utterances:
        raise WavTokenizerError("no speech rows with word timings and codes (columns needed: words, audio_codes)")
    return utterances


def conditioning_pairs(formatter: TTSFormatter, rows: list[Row]) -> tuple[list[Utterance], list[Utterance]]:
    """(own, other): each row's example with its own text, and the same codes and timings with the words of another
    row that has as many words but different ones. Rows without such a partner are left out."""
    by_count: dict[int, list[Row]] = {}
    for row in rows:
        by_count.setdefault(len(timed_words(row[0])), []).append(row)
    own, other = [], []
    for group in by_count.values():
        texts = [[w for w, _ in timed_words(words)] for words, _, _ in group]
        for index, (words, codes, rate) in enumerate(group):
            partner = next((texts[(index + k) % len(group)] for k in range(1, len(group))
                            if texts[(index + k) % len(group)] != texts[index]), None)
            if partner is None:
                continue
            swapped = [{"word": w, "start": 0.0, "end": end} for w, (_, end) in zip(partner, timed_words(words))]
            own.append(formatter.example(f"own{len(own)}", words, codes, rate))
            other.append(formatter.example(f"other{len(other)}", swapped, codes, rate))
    return own, other


def text_conditioning(model, formatter: TTSFormatter, rows: list[Row], block_size: int | None = None,
                      resamples: int = 2000, seed: int = 0) -> dict:
    """How much the model reads its text: the loss of each utterance's audio part with its own text against the loss
    with another utterance's text (same number of words, put on this utterance's timings; `conditioning_pairs`).

    The gain is given per kind of scored token, in bits per second of audio (comparable across audio vocabularies):
    `text_gain_bits_per_second` over the audio tokens only (codes or audio-BPE pieces: what is heard), and apart
    from it the duration tokens (`duration_gain_bits_per_second`) and the word-end, audio-end and end markers
    (`marker_gain_bits_per_second`). A model whose codes ignore the text but whose durations follow the words gains
    only in the second. Each comes with a 95% interval from resampling the utterance pairs. `text_gain_nats` is the
    audio tokens' gain per audio token; the losses are over every scored token, as `audio_loss` gives them."""
    own, other = conditioning_pairs(formatter, rows)
    if not own:
        return {"pairs": 0}
    m = formatter.layout
    kinds = {"audio": np.arange(m.audio_ids().start, m.audio_ids().stop)}
    if m.duration_offset is not None:
        kinds["duration"] = np.arange(m.duration_ids().start, m.duration_ids().stop)
    own_nats, other_nats = token_nats(model, own, block_size=block_size), token_nats(model, other, block_size=block_size)
    seconds = np.array([u.seconds for u in own])
    gains: dict[str, np.ndarray] = {}  # per pair, nats (other - own) of each kind of token
    for name, ids in kinds.items():
        gains[name] = np.array([n2[np.isin(t2, ids)].sum() - n1[np.isin(t1, ids)].sum()
                                for (t1, n1), (t2, n2) in zip(own_nats, other_nats)])
    every = np.array([n2.sum() - n1.sum() for (_, n1), (_, n2) in zip(own_nats, other_nats)])
    gains["marker"] = every - sum(gains.values())
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(own), size=(resamples, len(own)))
    result = {"pairs": len(own), "seconds": round(float(seconds.sum()), 2)}
    for name, nats in gains.items():
        label = "text" if name == "audio" else name  # the gain over audio tokens is *the* text gain
        rate = nats / math.log(2)
        result[f"{label}_gain_bits_per_second"] = float(rate.sum() / seconds.sum())
        result[f"{label}_gain_interval"] = _percentiles(_resampled_ratio(rate, seconds, draws))
    audio_tokens = sum(int(np.isin(t, kinds["audio"]).sum()) for t, _ in own_nats)
    own_scores, other_scores = summarize_nats(own, own_nats), summarize_nats(other, other_nats)
    return {**result, "text_gain_nats": float(gains["audio"].sum() / max(audio_tokens, 1)),
            "all_scored_gain_bits_per_second": other_scores["bits_per_second"] - own_scores["bits_per_second"],
            "audio_loss_own_text": own_scores["loss"], "audio_loss_other_text": other_scores["loss"]}


def summarize_nats(utterances: list[Utterance], scored: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """`summarize` over `token_nats`' output for these utterances."""
    return summarize(float(sum(n.sum() for _, n in scored)), int(sum(n.size for _, n in scored)),
                     sum(u.seconds for u in utterances))


def audio_loss(model, utterances: list[Utterance], block_size: int | None = None) -> dict:
    """Held-out loss of the audio parts: per scored token (`loss`, `perplexity`), in bits per second of audio
    (`bits_per_second`), with the scored tokens per second (`tokens_per_second`) and the seconds."""
    scored = utterance_nats(model, utterances, block_size=block_size)
    seconds = sum(u.seconds for u in utterances)
    return {**summarize(scored["nats"], scored["tokens"], seconds), "seconds": seconds,
            "tokens_per_second": scored["tokens"] / seconds if seconds > 0 else float("nan")}


def evaluate_tts(model, formatter: TTSFormatter, codec, rows: list[dict], out_dir: Path,
                 sampling: SamplingConfig, samples: int = 5, resamples: int = 2000) -> dict:
    """Generate every row's sentence; WER and CER (Whisper tiny.en where installed, else pocketsphinx: named in
    `recognizer`) of generated, reconstructed and original audio, each with a 95% interval from resampling the
    sentences, and the paired gap between generated speech and the codec's ceiling; speaker similarity of generated
    speech and of the reconstruction to the original (Resemblyzer, where installed); durations. Writes the first
    `samples` triples as FLAC for listening, and per-item results."""
    from wavtokenizer_hf.audio_io import resample, write_audio
    from wavtokenizer_hf.corpus.builder import read_audio_column
    from wavtokenizer_hf.evaluation import asr, speaker

    recognizer = asr.recognizer("auto")
    has_asr = recognizer is not None
    counts = {name: [] for name in NAMES}  # per sentence: word errors, words, char errors, chars
    similarity = {"generated": [], "reconstruction": []}
    items, seconds = [], {"generated": 0.0, "original": 0.0, "generation": 0.0}  # generation: wall s generating
    samples_dir = out_dir / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    for index, row in enumerate(tqdm(rows, desc="TTS evaluation", unit="sentence")):
        waveform, rate = read_audio_column(row)
        original = torch.as_tensor(waveform, dtype=torch.float32).reshape(1, -1)
        original = resample(original, rate, codec.sampling_rate) if rate != codec.sampling_rate else original
        reconstruction = codec.decode(codec.encode(original, codec.sampling_rate)).reshape(-1)
        failure, started = None, time.perf_counter()
        try:
            codes = generate_codes(model, formatter, row["text"], codec.frame_rate,
                                   SamplingConfig(**{**asdict(sampling), "seed": sampling.seed + index}))
            generated = codec.decode(torch.from_numpy(codes).long()[None]).reshape(-1)
        except TooFewFrames as err:  # scored as silence: every word missed
            failure, generated = str(err), torch.zeros(0)
        seconds["generation"] += time.perf_counter() - started  # sampling the codes and decoding them
        audio = {"generated": generated, "reconstruction": reconstruction, "original": original.reshape(-1)}
        item = {"id": row["id"], "text": row["text"], "original_seconds": original.shape[-1] / codec.sampling_rate,
                "generated_seconds": generated.shape[-1] / codec.sampling_rate, "generation_failed": failure}
        seconds["generated"] += item["generated_seconds"]
        seconds["original"] += item["original_seconds"]
        if has_asr:
            for name, wave in audio.items():
                hypothesis = recognizer.transcribe(wave, codec.sampling_rate) if wave.numel() else ""
                counts[name].append(asr.word_errors(row["text"], hypothesis) + asr.char_errors(row["text"], hypothesis))
                item[f"asr_{name}"] = hypothesis
                item[f"errors_{name}"] = list(counts[name][-1])
        if speaker.available():
            for name in similarity:
                value = speaker.speaker_similarity(audio["original"], audio[name], codec.sampling_rate) \
                    if audio[name].numel() else 0.0
                item[f"speaker_similarity_{name}"] = value
                if value is not None:
                    similarity[name].append(value)
        if index < samples:
            for name, wave in ((n, w) for n, w in audio.items() if w.numel()):
                write_audio(samples_dir / f"{index:02d}_{row['id']}_{name}.flac", wave, codec.sampling_rate,
                            overwrite=True)
        items.append(item)
    rates = _error_rates(counts, resamples) if has_asr else {}
    return {"sentences": len(rows), "recognizer": recognizer.name if has_asr else None,
            "failed_generations": sum(item["generation_failed"] is not None for item in items),
            **{f"{kind}_{name}": rates.get(f"{kind}_{name}") for kind in ("wer", "cer") for name in NAMES},
            **{key: value for key, value in rates.items() if key.endswith("_interval")},
            **{f"speaker_similarity_{name}": float(np.mean(values)) if values else None
               for name, values in similarity.items()},
            "generated_seconds": round(seconds["generated"], 2),
            "generation_seconds": round(seconds["generation"], 3),
            "generated_audio_seconds_per_second": seconds["generated"] / seconds["generation"]
            if seconds["generation"] > 0 else None,
            "original_seconds": round(seconds["original"], 2),
            "duration_ratio": seconds["generated"] / seconds["original"] if seconds["original"] else None,
            "items": items}


# How each start of a TTS-LM trains by default: (peak learning rate, blocks per step, warm-up steps). From scratch,
# the small GPT's rate; a pretrained 135M model fine-tuned in full, a tenth of it so the new rows learn without
# wrecking what it knows; LoRA's adapters start at zero and take a larger step. A pretrained model's block costs some
# 20 CPU s, so one block a step (and a short warm-up) keeps the updates coming (benchmarks/compare_tts_lms.py).
START_SETTINGS = {"scratch": (2e-3, 8, 50), "full": (2e-4, 1, 10), "lora": (1e-3, 1, 10)}


def start_of(text_lm: str | Path | None, lora_rank: int = 0) -> str:
    """"scratch", "full" or "lora": the key of START_SETTINGS for these finetune_tts arguments."""
    return "scratch" if text_lm is None else "lora" if lora_rank else "full"


def start_config(text_lm: str | Path | None, lora_rank: int = 0, **settings) -> LMTrainConfig:
    """An LMTrainConfig with the START_SETTINGS of this start (`settings` set the other fields, or override)."""
    learning_rate, batch_size, warmup_steps = START_SETTINGS[start_of(text_lm, lora_rank)]
    return LMTrainConfig(**{"learning_rate": learning_rate, "batch_size": batch_size, "warmup_steps": warmup_steps,
                            **settings})


NAMES = ("generated", "reconstruction", "original")


def test_sentences(corpus: str | Path, count: int) -> list[dict]:
    """`count` speech rows of the corpus's test split, taken from each speaker in turn (a split stored speaker by
    speaker would otherwise give one voice)."""
    from wavtokenizer_hf.evaluation.test_set import speaker_and_source, speaker_turns
    from wavtokenizer_hf.saved_dataset import load_split

    rows = load_split(corpus, "test")
    table = rows.remove_columns([c for c in ("audio",) if c in rows.column_names])
    kinds = table["kind"] if "kind" in table.column_names else ["speech"] * len(table)
    speech = [i for i, kind in enumerate(kinds) if kind == "speech"]
    if not speech:
        raise WavTokenizerError(f"{corpus}: no speech rows in its test split")
    chosen = speaker_turns(speech, [speaker_and_source(r) for r in table])[:count]
    return [rows[i] for i in chosen]


def _error_rates(counts: dict[str, list], resamples: int, seed: int = 0) -> dict:
    """WER and CER of each kind of audio (errors over reference words or characters, summed over sentences) with a
    95% interval from resampling the sentences, and the paired gap generated - reconstruction."""
    table = {name: np.asarray(rows, dtype=float).reshape(-1, 4) for name, rows in counts.items()}
    if not len(table["original"]):
        return {}
    draws = np.random.default_rng(seed).integers(0, len(table["original"]), (resamples, len(table["original"])))
    out: dict = {}
    for kind, (errors, total) in (("wer", (0, 1)), ("cer", (2, 3))):
        resampled = {}
        for name, rows in table.items():
            out[f"{kind}_{name}"] = rows[:, errors].sum() / rows[:, total].sum() if rows[:, total].sum() else None
            resampled[name] = _resampled_ratio(rows[:, errors], rows[:, total], draws)
            out[f"{kind}_{name}_interval"] = _percentiles(resampled[name])
        out[f"{kind}_gap_interval"] = _percentiles(resampled["generated"] - resampled["reconstruction"])
    return out


def _resampled_ratio(numerator: np.ndarray, denominator: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """sum(numerator) / sum(denominator) over each resample of the units (`draws`: rows of unit indices)."""
    return numerator[draws].sum(axis=1) / np.maximum(denominator[draws].sum(axis=1), 1e-12)


def _percentiles(samples: np.ndarray) -> list[float]:
    """The 95% percentile interval of resampled values."""
    return [float(v) for v in np.percentile(samples, [2.5, 97.5])]


def finetune_tts(data: str | Path, codec_dir: str | Path, out_dir: str | Path, fmt: str, cfg: LMTrainConfig,
                 text_lm: str | Path | None = None, model_config: str | Path | None = None,
                 eval_corpus: str | Path | None = None, eval_items: int = 60, sampling: SamplingConfig | None = None,
                 validation_share: float = 0.05, samples: int = 5, selection_share: float = 0.05,
                 audio_bpe: str | Path | None = None, text_model: str = "bpe", lora_rank: int = 0) -> dict:
    """Train a TTS-LM on a tokenized corpus with word timings; evaluate on `eval_corpus`'s test split if given.
    The checkpoint is chosen on a selection split apart from the validation utterances whose audio loss and
    text-conditioning gain are reported (`lm.experiment`); an empty split is an error. `audio_bpe`: an audio-BPE
    directory whose tokens replace the single codes (each word's frames encoded on their own), saved in the model
    folder (`model/audio_bpe`) so that `load_tts` restores it. `text_model`: the text side of a model from scratch
    (`lm.text_sentencepiece.TEXT_MODELS`). `lora_rank`: 0 fine-tunes all of `text_lm`, > 0 LoRA of that rank
    (`lm.lora`)."""
    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.corpus.builder import load_split

    out_dir = Path(out_dir)
    check_format(fmt)
    check_text_model(text_model)
    codec = Codec.from_pretrained(codec_dir)
    bpe = None if audio_bpe is None else load_audio_bpe(audio_bpe, codec.codebook_size)
    dataset = load_tokenized(data, codebook_fingerprint=codec.fingerprint)
    if dataset[0]["frame_rate"] != codec.frame_rate:
        raise WavTokenizerError(f"the data has {dataset[0]['frame_rate']} frames/s but the codec {codec.frame_rate}: "
                                "tokenize it with this codec")
    tokenizer, model = make_tokenizer_and_model(bpe or codec.codebook_size, text_lm, model_config,
                                                text_model=text_model, lora_rank=lora_rank)
    formatter = TTSFormatter(tokenizer, fmt, bpe, block_size=cfg.block_size)
    rows: dict[str, Row] = {}
    splits = split_utterances(tts_utterances(dataset, formatter, rows), validation_share, selection_share)
    format_info = {"format": fmt, "block_size": cfg.block_size, **({"audio_bpe": MODEL_SUBDIR} if bpe else {})}
    best, summary = train_and_reload(model, tokenizer, splits, cfg, out_dir, formatter.layout[PAD],
                                     lambda m, utterances: audio_loss(m, utterances, cfg.block_size),
                                     files={FORMAT_FILE: json.dumps(format_info)}, audio_bpe=bpe)
    if best is None:
        return {"main_process": False}
    sampling = sampling or SamplingConfig()
    validation = audio_loss(best, splits.validation, cfg.block_size)
    metrics = {"format": fmt, **run_metrics(splits, summary, best, cfg),
               "codebook_size": codec.codebook_size, "frame_rate": codec.frame_rate,
               "audio_vocab_size": formatter.layout.audio_vocab_size,
               "audio_bpe": None if audio_bpe is None else str(audio_bpe), "text_model": text_model,
               "validation_seconds": round(validation["seconds"], 2),
               "validation_audio_loss": validation["loss"],
               "validation_bits_per_second": validation["bits_per_second"],
               "validation_tokens_per_second": validation["tokens_per_second"],
               "sampling": asdict(sampling),
               "text_conditioning": text_conditioning(best, formatter, [rows[u.id] for u in splits.validation],
                                                      cfg.block_size)}
    if eval_corpus is not None:
        metrics["test"] = evaluate_tts(best, formatter, codec, test_sentences(eval_corpus, eval_items), out_dir,
                                       sampling, samples)
    write_metrics(out_dir, metrics)
    return metrics
