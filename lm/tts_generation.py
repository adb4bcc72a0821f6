"""TTS-LM generation: text -> codes (-> audio with the codec) with a TTS-LM trained on the joint vocabulary.

Budgets count decoded frames, not tokens: with an audio BPE (`lm.audio_bpe`) a token holds one or more frames, and
only tokens that fit in the frames left are allowed, so a budget is met without cutting a token.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.errors import WavTokenizerError

from .audio_bpe import MODEL_SUBDIR, load_audio_bpe
from .sampling import CachedSampler, SamplingConfig
from .tts_plan import InterleavedPlan
from .tts_sequences import TTSFormatter
from .vocabulary import AUDIO_END

FORMAT_FILE = "tts_format.json"  # beside the model: which format it was trained on (and whether with an audio BPE)


def load_tts(lm_dir: str | Path, codec, fmt: str | None = None):
    """(model, formatter) from a saved TTS-LM, with its audio BPE when it was trained with one (`lm_dir/audio_bpe`);
    refuses an LM whose audio vocabulary does not match `codec` or that audio BPE."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm_dir = Path(lm_dir)
    if not (lm_dir / "config.json").exists():
        raise WavTokenizerError(f"{lm_dir}: no config.json (expected the `model` folder a TTS-LM run writes)")
    info = lm_dir / FORMAT_FILE
    saved = json.loads(info.read_text()) if info.exists() else {}
    trained = saved.get("format")
    if fmt is not None and trained is not None and fmt != trained:
        raise WavTokenizerError(f"{lm_dir} was trained on the {trained!r} format; generating in {fmt!r} would feed it "
                                "sequences it never saw (leave --format out)")
    fmt = fmt or trained or "interleaved"
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    bpe_dir = lm_dir / MODEL_SUBDIR
    bpe = load_audio_bpe(bpe_dir, codec.codebook_size) if bpe_dir.is_dir() else None
    formatter = TTSFormatter(tokenizer, fmt, bpe, block_size=saved.get("block_size"))
    formatter.layout.check_codec(codec.codebook_size)
    model = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < len(tokenizer):
        raise WavTokenizerError(f"the LM has {rows} embeddings but its tokenizer {len(tokenizer)} tokens")
    return model, formatter


class TooFewFrames(WavTokenizerError):
    """A generation with fewer frames than the decoder needs (two): a failed generation, not a broken run."""


@torch.no_grad()
def generate_codes(model, formatter: TTSFormatter, text: str, frame_rate: float,
                   sampling: SamplingConfig | None = None, max_seconds: float = 30.0,
                   block_size: int | None = None) -> np.ndarray:
    """Sample the codes of `text`, at most `max_seconds` of frames and, with `block_size` (the block the LM was
    trained on; `load_tts` reads it), at most that many tokens in the whole sequence: positions past it were never
    trained. Interleaved: each word's text is written by us, the model adds its duration, then exactly the frames of
    that duration (within what the budgets leave: every word gets at least one frame, a word is cut short rather than
    a later one dropped), and the word is closed. Plain: the model writes audio tokens until `<|audio_end|>` or a
    budget."""
    words = normalize_words(text)
    m = formatter.layout
    block_size = block_size if block_size is not None else formatter.block_size
    prompt = formatter.prompt(words)
    sampler = CachedSampler(model, sampling or SamplingConfig())
    sampler.feed(prompt)
    budget = int(max_seconds * frame_rate)
    frames = _frames_of_ids(m, model.get_input_embeddings().weight.shape[0])
    if formatter.format == "plain":
        tokens_left = None if block_size is None else block_size - len(prompt) - 2  # <|audio_end|>, <|eos|>
        if tokens_left is not None and tokens_left < 1:
            raise WavTokenizerError(f"the text's prompt takes {len(prompt)} of the model's {block_size}-token block, "
                                    "leaving no room for audio")
        tokens = _sample_audio(sampler, frames, budget, m[AUDIO_END], max_tokens=tokens_left)
    else:
        plan = interleaved_plan(formatter, words, frames, budget, frame_rate, block_size, len(prompt))
        while (expected := plan.expected()) is not None:
            if isinstance(expected, int):  # forced ids (a closing token, the next word's text): fed at once
                forced = []
                while isinstance(expected, int):
                    forced.append(expected)
                    plan.push(expected)
                    expected = plan.expected()
                sampler.feed(forced)
            else:
                plan.push(sampler.sample(expected, max_tokens=1)[0])
        tokens = plan.audio
    codes = m.ids_to_codes(np.asarray(tokens, dtype=np.int64))
    if len(codes) < 2:  # the decoder needs two frames
        raise TooFewFrames(f"the LM produced {len(codes)} audio frame(s) for {text!r}")
    return codes


def interleaved_generation(model, formatter: TTSFormatter, text: str, frame_rate: float, max_seconds: float = 30.0,
                           block_size: int | None = None):
    """(prompt ids, processor) for stock `model.generate` on the interleaved format, with the budgets and rules
    `generate_codes` uses; the audio ids drawn are `processor.plan.audio` once generation has stopped (at
    `processor.eos_id`)."""
    from .audio_logits import InterleavedLogitsProcessor

    if formatter.format != "interleaved":
        raise WavTokenizerError(f"interleaved_generation is for the interleaved format, not {formatter.format!r} "
                                "(plain: lm.audio_logits.plain_audio_processor)")
    words = normalize_words(text)
    prompt = formatter.prompt(words)
    frames = _frames_of_ids(formatter.layout, model.get_input_embeddings().weight.shape[0])
    block_size = block_size if block_size is not None else formatter.block_size
    plan = interleaved_plan(formatter, words, frames, int(max_seconds * frame_rate), frame_rate, block_size,
                            len(prompt))
    return prompt, InterleavedLogitsProcessor(plan, len(prompt))


def interleaved_plan(formatter: TTSFormatter, words: list[str], frames: torch.Tensor, budget: int, frame_rate: float,
                     block_size: int | None, prompt_length: int) -> InterleavedPlan:
    """The plan of an interleaved generation of `words` after a prompt of `prompt_length` ids: `budget` frames and,
    with `block_size`, the tokens the block leaves (each word also takes its text, a duration and a closing token;
    then `<|eos|>`). Refuses budgets that cannot give every word one frame and one token."""
    if budget < len(words):
        raise WavTokenizerError(f"max_seconds gives {budget} frames, fewer than the {len(words)} words of the text "
                                "need (one frame each)")
    word_ids = [formatter.word_ids(w) for w in words]
    tokens_left = None
    if block_size is not None:
        fixed = prompt_length + sum(len(ids) + 2 for ids in word_ids) + 1
        tokens_left = block_size - fixed
        if tokens_left < len(words):
            raise WavTokenizerError(f"the text needs {fixed + len(words)} tokens at least, more than the model's "
                                    f"{block_size}-token block: generate it in shorter sentences")
    return InterleavedPlan(word_ids, formatter.layout, frames, budget, frame_rate, tokens_left)


def _frames_of_ids(layout, vocab_size: int) -> torch.Tensor:
    """Frames each id decodes to over the model's vocabulary: 0 for every id that is not an audio token."""
    frames = torch.zeros(vocab_size, dtype=torch.long)
    ids = layout.audio_ids()
    frames[ids.start:ids.stop] = torch.from_numpy(np.asarray(layout.frames_per_token(), dtype=np.int64))
    return frames


def _sample_audio(sampler: CachedSampler, frames: torch.Tensor, budget: int, closing: int,
                  max_tokens: int | None = None) -> list[int]:
    """Audio tokens until `closing` is drawn (fed, not returned), their frames reach `budget` or `max_tokens` are
    drawn; only tokens that fit in the frames left are allowed."""
    drawn: list[int] = []
    used = 0
    while used < budget and (max_tokens is None or len(drawn) < max_tokens):
        allowed = (frames > 0) & (frames <= budget - used)
        allowed[closing] = True
        token = sampler.sample(allowed, max_tokens=1)[0]
        if token == closing:
            return drawn
        drawn.append(token)
        used += int(frames[token])
    return drawn
