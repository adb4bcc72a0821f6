"""Text -> codes -> audio with a TTS-LM trained on the joint vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.errors import WavTokenizerError

from .sampling import CachedSampler, SamplingConfig, id_mask
from .tts_format import TTSFormatter
from .vocabulary import AUDIO_END, MAX_DURATION, WORD_END, AudioTokenLayout


def load_tts(lm_dir: str | Path, codec, fmt: str | None = None):
    """(model, formatter) from a saved TTS-LM; refuses an LM whose audio vocabulary does not match `codec`."""
    import json

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
        info = lm_dir / "tts_format.json"
        fmt = json.loads(info.read_text())["format"] if info.exists() else "interleaved"
    return model, TTSFormatter(tokenizer, fmt)


@torch.no_grad()
def generate_codes(model, formatter: TTSFormatter, text: str, frame_rate: float,
                   sampling: SamplingConfig | None = None, max_seconds: float = 30.0) -> np.ndarray:
    """Sample the codes of `text`. Interleaved: each word's text is written by us, the model adds its duration and
    codes and closes the word; plain: the model writes codes until `<|audio_end|>`."""
    words = normalize_words(text)
    m: AudioTokenLayout = formatter.layout
    vocab = model.get_input_embeddings().weight.shape[0]
    audio_ids = range(m.audio_offset, m.audio_offset + m.codebook_size)
    sampler = CachedSampler(model, sampling or SamplingConfig())
    sampler.feed(formatter.prompt(words))
    budget = int(max_seconds * frame_rate)
    codes: list[int] = []
    if formatter.format == "plain":
        drawn = sampler.sample(id_mask(vocab, audio_ids, [m[AUDIO_END]]), {m[AUDIO_END]}, max_tokens=budget)
        codes = [t for t in drawn if t != m[AUDIO_END]]
    else:
        only_audio = id_mask(vocab, audio_ids)
        durations = id_mask(vocab, m.duration_ids())
        per_word = int(MAX_DURATION * frame_rate)
        for index, word in enumerate(words):
            closing = m[AUDIO_END] if index == len(words) - 1 else m[WORD_END]
            sampler.feed(formatter.word_ids(word))
            sampler.sample(durations, max_tokens=1)
            first = sampler.sample(only_audio, max_tokens=1)  # every word gets at least one frame
            rest = sampler.sample(id_mask(vocab, audio_ids, [closing]), {closing},
                                  max_tokens=max(0, min(per_word, budget - len(codes)) - 1))
            word_codes = first + [t for t in rest if t != closing]
            codes += word_codes
            if not rest or rest[-1] != closing:
                sampler.feed([closing])
            if len(codes) >= budget:
                break
    if len(codes) < 2:  # the decoder needs two frames
        raise WavTokenizerError(f"the LM produced {len(codes)} audio frame(s) for {text!r}")
    return m.ids_to_codes(np.asarray(codes))
