"""The audio-only GPT: `<bos> codes <eos>` streams from a tokenized dataset, trained with `lm.trainer`, scored
against unigram/bigram baselines on the same validation utterances (cut into the same block-sized pieces as
training), and sampled back to audio through the codec."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from wavtokenizer_hf.errors import WavTokenizerError

from .evaluate import summarize, utterance_nats
from .experiment import run_metrics, split_utterances, train_and_reload, write_metrics
from .models import build_causal_lm
from .ngram import NgramBaselines
from .sampling import CachedSampler, SamplingConfig, id_mask
from .streams import Utterance, codes_of, fit_to_blocks, load_tokenized
from .trainer import LMTrainConfig
from .audio_bpe import AudioBPELayout, joint_tokenizer, load_audio_bpe
from .vocabulary import BOS, EOS, PAD, AudioTokenLayout, build_joint_tokenizer


def audio_utterances(dataset, layout: AudioTokenLayout | AudioBPELayout, min_frames: int = 2) -> list[Utterance]:
    """One `<bos> audio tokens <eos>` utterance per row (rows shorter than `min_frames` are skipped); the audio tokens
    are the codes, or their audio-BPE tokens with an `AudioBPELayout`."""
    utterances = []
    for index, row in enumerate(dataset):
        codes = codes_of(row)
        if codes.size < min_frames:
            continue
        ids = np.concatenate([[layout[BOS]], layout.codes_to_ids(codes), [layout[EOS]]]).astype(np.int64)
        utterances.append(Utterance(str(row.get("id", index)), ids, np.ones(len(ids), dtype=bool),
                                    seconds=codes.size / float(row["frame_rate"])))
    if not utterances:
        raise WavTokenizerError("no utterance with codes in the tokenized dataset")
    return utterances


def _evaluate(model, utterances: list[Utterance], block_size: int) -> dict:
    seconds = sum(u.seconds for u in utterances)
    scored = utterance_nats(model, utterances, block_size=block_size)
    return summarize(scored["nats"], scored["tokens"], seconds)


def continue_audio(model, layout: AudioTokenLayout, prompt_codes: np.ndarray, max_new_frames: int,
                   sampling: SamplingConfig) -> np.ndarray:
    """Sample a continuation of `prompt_codes` (audio tokens only; stops early at `<eos>`), at most `max_new_frames`
    frames (an audio-BPE token holds one or more)."""
    sampler = CachedSampler(model, sampling)
    sampler.feed([layout[BOS], *layout.codes_to_ids(prompt_codes).tolist()])
    vocab = model.get_input_embeddings().weight.shape[0]
    allowed = id_mask(vocab, layout.audio_ids(), [layout[EOS]])
    drawn = sampler.sample(allowed, stop_ids={layout[EOS]}, max_tokens=max_new_frames)
    return layout.ids_to_codes(np.asarray(drawn), drop_other=True)[:max_new_frames]


def _sample_lengths(block_size: int, prompt_frames: int, continuation_frames: int) -> tuple[int, int]:
    """Prompt and continuation frames cut down to what fits in one training block after `<bos>` (the positions the
    model was trained on): the prompt to at most half of it, the continuation to the rest."""
    room = block_size - 1
    prompt = max(1, min(prompt_frames, room // 2))
    return prompt, max(0, min(continuation_frames, room - prompt))


def write_samples(model, codec, layout: AudioTokenLayout, utterances: list[Utterance], out_dir: Path,
                  num_samples: int, prompt_frames: int, continuation_frames: int,
                  sampling: SamplingConfig) -> list[str]:
    """Held-out prompts and their sampled continuations, decoded by the codec; returns the files written."""
    from wavtokenizer_hf.audio_io import write_audio

    samples_dir = out_dir / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    candidates = [u for u in utterances if len(u.input_ids) - 2 > prompt_frames]
    written = []
    for index, u in enumerate(candidates[:num_samples]):
        prompt = layout.ids_to_codes(u.input_ids[1:-1])[:prompt_frames]
        generated = continue_audio(model, layout, prompt, continuation_frames,
                                   SamplingConfig(**{**asdict(sampling), "seed": sampling.seed + index}))
        for name, codes in (("prompt", prompt), ("continuation", np.concatenate([prompt, generated]))):
            if len(codes) >= 2:  # the decoder needs two frames
                audio = codec.decode(torch.from_numpy(codes).long()[None])
                path = samples_dir / f"{index:02d}_{u.id}_{name}.wav"
                write_audio(path, audio.reshape(-1), codec.sampling_rate, overwrite=True)
                written.append(str(path))
    return written


def train_audio_lm(data: str | Path, codec_dir: str | Path, out_dir: str | Path, cfg: LMTrainConfig,
                   model_config: str | Path | None = None, init_from: str | Path | None = None,
                   validation_share: float = 0.1, num_samples: int = 3, prompt_seconds: float = 2.0,
                   continuation_seconds: float = 4.0, sampling: SamplingConfig | None = None,
                   selection_share: float = 0.05, audio_bpe: str | Path | None = None) -> dict:
    """Train, evaluate against baselines, write samples. Returns the metrics (also in out_dir/metrics.json); the
    checkpoint is chosen on a selection split apart from the validation utterances the metrics are measured on
    (`lm.experiment`). Samples fit in one training block (prompt and continuation are shortened if needed).
    `audio_bpe`: an audio-BPE directory (`lm.audio_bpe`) whose tokens replace the single codes; it is saved with the
    model (`out_dir/audio_bpe`), and bits per second of audio compare the two fairly."""
    from wavtokenizer_hf.codec import Codec

    out_dir = Path(out_dir)
    codec = Codec.from_pretrained(codec_dir)
    dataset = load_tokenized(data, codebook_fingerprint=codec.fingerprint)
    if audio_bpe is None:
        tokenizer = build_joint_tokenizer(codec.codebook_size, durations=False)
        layout = AudioTokenLayout.from_tokenizer(tokenizer)
    else:
        bpe = load_audio_bpe(audio_bpe, codec.codebook_size)
        tokenizer = joint_tokenizer(bpe, durations=False)
        layout = AudioBPELayout.from_tokenizer(tokenizer, bpe)
        bpe.save(out_dir / "audio_bpe")
    splits = split_utterances(audio_utterances(dataset, layout), validation_share, selection_share)
    model = build_causal_lm(len(tokenizer), layout, model_config=model_config, init_from=init_from)
    best, summary = train_and_reload(model, tokenizer, splits, cfg, out_dir, layout[PAD],
                                     lambda m, utterances: _evaluate(m, utterances, cfg.block_size))
    if best is None:
        return {"main_process": False}

    # the baselines see the same pieces as the LM: the same targets, each with the same context
    support = np.concatenate([np.asarray(layout.audio_ids()), [layout[EOS]]])
    baselines = (NgramBaselines(support, len(tokenizer)).fit(fit_to_blocks(splits.train, cfg.block_size))
                 .cross_entropy(fit_to_blocks(splits.validation, cfg.block_size)))
    seconds = sum(u.seconds for u in splits.validation)
    metrics = {
        **run_metrics(splits, summary, best, cfg), "validation_seconds": round(seconds, 1),
        "lm": _evaluate(best, splits.validation, cfg.block_size),
        "unigram": summarize(baselines["unigram_nats"], baselines["tokens"], seconds),
        "bigram": summarize(baselines["bigram_nats"], baselines["tokens"], seconds),
        "frame_rate": codec.frame_rate, "codebook_size": codec.codebook_size,
        "audio_vocab_size": layout.audio_vocab_size, "audio_bpe": None if audio_bpe is None else str(audio_bpe),
        "validation_tokens_per_second": round(sum(len(u.input_ids) for u in splits.validation) / seconds, 2),
    }
    sampling = sampling or SamplingConfig()
    prompt_frames, continuation_frames = _sample_lengths(cfg.block_size,
                                                         max(1, int(round(prompt_seconds * codec.frame_rate))),
                                                         int(continuation_seconds * codec.frame_rate))
    metrics["samples"] = write_samples(best, codec, layout, splits.validation, out_dir, num_samples, prompt_frames,
                                       continuation_frames, sampling)
    metrics["sampling"] = {**asdict(sampling), "prompt_frames": prompt_frames,
                           "continuation_frames": continuation_frames}
    write_metrics(out_dir, metrics)
    return metrics
