"""The audio-only GPT: `<bos> codes <eos>` streams from a tokenized dataset, trained with `lm.trainer`, scored
against unigram/bigram baselines on the same held-out utterances, and sampled back to audio through the codec."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.errors import WavTokenizerError

from .evaluate import summarize, utterance_nats
from .models import build_causal_lm, count_parameters
from .ngram import NgramBaselines
from .sampling import CachedSampler, SamplingConfig, id_mask
from .streams import Utterance, audio_sequence, codes_of, load_tokenized, pack_blocks, split_by_utterance
from .trainer import LMTrainConfig, train_lm
from .vocabulary import BOS, EOS, PAD, AudioTokenLayout, build_joint_tokenizer


def audio_utterances(dataset, layout: AudioTokenLayout, min_frames: int = 2) -> list[Utterance]:
    """One `<bos> codes <eos>` utterance per row (rows shorter than `min_frames` are skipped)."""
    utterances = []
    for index, row in enumerate(dataset):
        codes = codes_of(row)
        if codes.size < min_frames:
            continue
        ids = audio_sequence(codes, layout.audio_offset, layout[BOS], layout[EOS])
        utterances.append(Utterance(str(row.get("id", index)), ids, np.ones(len(ids), dtype=bool),
                                    seconds=codes.size / float(row["frame_rate"])))
    if not utterances:
        raise WavTokenizerError("no utterance with codes in the tokenized dataset")
    return utterances


def _evaluate(model, utterances: list[Utterance]) -> dict:
    seconds = sum(u.seconds for u in utterances)
    scored = utterance_nats(model, utterances)
    return summarize(scored["nats"], scored["tokens"], seconds)


def continue_audio(model, layout: AudioTokenLayout, prompt_codes: np.ndarray, max_new_frames: int,
                   sampling: SamplingConfig) -> np.ndarray:
    """Sample a continuation of `prompt_codes` (audio tokens only; stops early at `<eos>`)."""
    sampler = CachedSampler(model, sampling)
    sampler.feed([layout[BOS], *layout.codes_to_ids(prompt_codes).tolist()])
    vocab = model.get_input_embeddings().weight.shape[0]
    allowed = id_mask(vocab, range(layout.audio_offset, layout.audio_offset + layout.codebook_size), [layout[EOS]])
    drawn = sampler.sample(allowed, stop_ids={layout[EOS]}, max_tokens=max_new_frames)
    return layout.ids_to_codes(np.asarray(drawn), drop_other=True)


def train_audio_lm(data: str | Path, codec_dir: str | Path, out_dir: str | Path, cfg: LMTrainConfig,
                   model_config: str | Path | None = None, init_from: str | Path | None = None,
                   validation_share: float = 0.1, num_samples: int = 3, prompt_seconds: float = 2.0,
                   continuation_seconds: float = 4.0, sampling: SamplingConfig | None = None) -> dict:
    """Train, evaluate against baselines, write samples. Returns the metrics (also in out_dir/metrics.json)."""
    from wavtokenizer_hf.audio_io import write_audio
    from wavtokenizer_hf.codec import Codec

    out_dir = Path(out_dir)
    codec = Codec.from_pretrained(codec_dir)
    dataset = load_tokenized(data)
    tokenizer = build_joint_tokenizer(codec.codebook_size, durations=False)
    layout = AudioTokenLayout.from_tokenizer(tokenizer)
    utterances = audio_utterances(dataset, layout)
    is_validation = split_by_utterance([u.id for u in utterances], validation_share)
    train = [u for u, v in zip(utterances, is_validation) if not v]
    held_out = [u for u, v in zip(utterances, is_validation) if v]
    if not train or not held_out:
        raise WavTokenizerError(f"{len(utterances)} utterances are too few to split into train and validation")
    blocks = pack_blocks(train, cfg.block_size, separate=True, pad_id=layout[PAD])

    model = build_causal_lm(len(tokenizer), layout, model_config=model_config, init_from=init_from)
    summary = train_lm(model, blocks, cfg, out_dir, tokenizer, evaluate=lambda m: _evaluate(m, held_out))

    from transformers import AutoModelForCausalLM

    best = AutoModelForCausalLM.from_pretrained(out_dir / "model").eval()
    lm_metrics = _evaluate(best, held_out)
    support = np.concatenate([np.arange(layout.audio_offset, layout.audio_offset + layout.codebook_size), [layout[EOS]]])
    baselines = NgramBaselines(support, len(tokenizer)).fit(train).cross_entropy(held_out)
    seconds = sum(u.seconds for u in held_out)
    metrics = {
        "train_utterances": len(train), "validation_utterances": len(held_out),
        "train_tokens": int(sum(len(u.input_ids) for u in train)), "validation_seconds": round(seconds, 1),
        "parameters": count_parameters(best), "steps": summary["steps"], "train_seconds": summary["seconds"],
        "best_step": summary["best_step"],
        "lm": lm_metrics,
        "unigram": summarize(baselines["unigram_nats"], baselines["tokens"], seconds),
        "bigram": summarize(baselines["bigram_nats"], baselines["tokens"], seconds),
        "frame_rate": codec.frame_rate, "codebook_size": codec.codebook_size,
    }

    sampling = sampling or SamplingConfig()
    samples_dir = out_dir / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    prompt_frames = max(1, int(round(prompt_seconds * codec.frame_rate)))
    candidates = [u for u in held_out if len(u.input_ids) - 2 > prompt_frames]
    written = []
    for index, u in enumerate(candidates[:num_samples]):
        prompt = layout.ids_to_codes(u.input_ids[1:-1])[:prompt_frames]
        generated = continue_audio(best, layout, prompt, int(continuation_seconds * codec.frame_rate),
                                   SamplingConfig(**{**asdict(sampling), "seed": sampling.seed + index}))
        for name, codes in (("prompt", prompt), ("continuation", np.concatenate([prompt, generated]))):
            audio = codec.decode(torch.from_numpy(codes).long()[None]) if len(codes) >= 2 else None
            if audio is not None:
                path = samples_dir / f"{index:02d}_{u.id}_{name}.wav"
                write_audio(path, audio.reshape(-1), codec.sampling_rate, overwrite=True)
                written.append(str(path))
    metrics["samples"] = written
    metrics["sampling"] = asdict(sampling)
    with atomic_path(out_dir / "metrics.json", overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(metrics, indent=2))
    return metrics
