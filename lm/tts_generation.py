"""TTS-LM generation: text -> codes (-> audio with the codec) with a TTS-LM trained on the joint vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.errors import WavTokenizerError

from .sampling import CachedSampler, SamplingConfig, id_mask
from .tts_sequences import TTSFormatter
from .vocabulary import AUDIO_END, MAX_DURATION, WORD_END, AudioTokenLayout

FORMAT_FILE = "tts_format.json"  # beside the model: which format it was trained on


def load_tts(lm_dir: str | Path, codec, fmt: str | None = None):
    """(model, formatter) from a saved TTS-LM; refuses an LM whose audio vocabulary does not match `codec`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm_dir = Path(lm_dir)
    if not (lm_dir / "config.json").exists():
        raise WavTokenizerError(f"{lm_dir}: no config.json (expected the `model` folder a TTS-LM run writes)")
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    layout = AudioTokenLayout.from_tokenizer(tokenizer)
    layout.check_codec(codec.codebook_size)
    model = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < len(tokenizer):
        raise WavTokenizerError(f"the LM has {rows} embeddings but its tokenizer {len(tokenizer)} tokens")
    if fmt is None:
        info = lm_dir / FORMAT_FILE
        fmt = json.loads(info.read_text())["format"] if info.exists() else "interleaved"
    return model, TTSFormatter(tokenizer, fmt)


@torch.no_grad()
def generate_codes(model, formatter: TTSFormatter, text: str, frame_rate: float,
                   sampling: SamplingConfig | None = None, max_seconds: float = 30.0) -> np.ndarray:
    """Sample the codes of `text`. Interleaved: each word's text is written by us, the model adds its duration and
    codes and closes the word; every word gets at least one frame and all of them fit in `max_seconds` (a word is
    cut short rather than a later one dropped). Plain: the model writes codes until `<|audio_end|>`."""
    words = normalize_words(text)
    m: AudioTokenLayout = formatter.layout
    sampler = CachedSampler(model, sampling or SamplingConfig())
    sampler.feed(formatter.prompt(words))
    budget = int(max_seconds * frame_rate)
    if formatter.format == "plain":
        vocab = model.get_input_embeddings().weight.shape[0]
        allowed = id_mask(vocab, range(m.audio_offset, m.audio_offset + m.codebook_size), [m[AUDIO_END]])
        codes = [t for t in sampler.sample(allowed, {m[AUDIO_END]}, max_tokens=budget) if t != m[AUDIO_END]]
    else:
        if budget < len(words):
            raise WavTokenizerError(f"max_seconds={max_seconds:g} gives {budget} frames, fewer than the {len(words)} "
                                    "words of the text need (one frame each)")
        codes = _interleaved_codes(model, formatter, sampler, words, budget, int(MAX_DURATION * frame_rate))
    if len(codes) < 2:  # the decoder needs two frames
        raise WavTokenizerError(f"the LM produced {len(codes)} audio frame(s) for {text!r}")
    return m.ids_to_codes(np.asarray(codes))


def _interleaved_codes(model, formatter: TTSFormatter, sampler: CachedSampler, words: list[str], budget: int,
                       per_word: int) -> list[int]:
    """Feed each word, sample its duration and codes, close it; each word's frames are capped so that every later
    word keeps at least one frame of the budget."""
    m = formatter.layout
    vocab = model.get_input_embeddings().weight.shape[0]
    audio_ids = range(m.audio_offset, m.audio_offset + m.codebook_size)
    only_audio, durations = id_mask(vocab, audio_ids), id_mask(vocab, m.duration_ids())
    codes: list[int] = []
    for index, word in enumerate(words):
        closing = m[AUDIO_END] if index == len(words) - 1 else m[WORD_END]
        limit = min(per_word, budget - len(codes) - (len(words) - 1 - index))  # >= 1 (see generate_codes)
        sampler.feed(formatter.word_ids(word))
        sampler.sample(durations, max_tokens=1)
        first = sampler.sample(only_audio, max_tokens=1)  # every word gets at least one frame
        rest = sampler.sample(id_mask(vocab, audio_ids, [closing]), {closing}, max_tokens=limit - 1)
        codes += first + [t for t in rest if t != closing]
        if not rest or rest[-1] != closing:
            sampler.feed([closing])
    return codes
