"""Causal LMs for token streams: any transformers causal-LM config, with a small Llama-style default."""

from __future__ import annotations

import json
from pathlib import Path

from wavtokenizer_hf.errors import WavTokenizerError

# Trains on 2 CPU cores in minutes (about 3.4 M parameters besides the embeddings).
SMALL_LLAMA = dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=4, max_position_embeddings=4096, rope_theta=10000.0, tie_word_embeddings=True,
                   attention_dropout=0.0)


def small_llama_config(vocab_size: int, layout=None, **overrides):
    """A small Llama config sized to a vocabulary; `layout` (an AudioTokenLayout) sets bos/eos/pad ids."""
    from transformers import LlamaConfig

    ids = {}
    if layout is not None:
        ids = dict(bos_token_id=layout["<|bos|>"], eos_token_id=layout["<|eos|>"], pad_token_id=layout["<|pad|>"])
    return LlamaConfig(vocab_size=vocab_size, **{**SMALL_LLAMA, **ids, **overrides})


def build_causal_lm(vocab_size: int, layout=None, model_config: str | Path | None = None,
                    init_from: str | Path | None = None, **overrides):
    """A causal LM: fine-tuned from `init_from`, built from a config JSON (any model_type transformers knows), or
    the small Llama default. Embeddings are resized to `vocab_size` when they are smaller."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if init_from is not None:
        if not (Path(init_from) / "config.json").exists():
            raise WavTokenizerError(f"--init-from {init_from}: no config.json there (expected a saved causal LM)")
        model = AutoModelForCausalLM.from_pretrained(init_from)
        if model.get_input_embeddings().weight.shape[0] < vocab_size:
            raise WavTokenizerError(f"{init_from} has {model.get_input_embeddings().weight.shape[0]} embeddings but the "
                                    f"tokenizer has {vocab_size} tokens: extend it with lm.extend_text_lm first")
        return model
    if model_config is not None:
        path = Path(model_config)
        if not path.exists():
            raise WavTokenizerError(f"model config not found: {path}")
        values = json.loads(path.read_text())
        if "model_type" not in values:
            raise WavTokenizerError(f"{path} has no model_type; accepted: any transformers causal-LM config JSON")
        model_type = values.pop("model_type")
        values.update(vocab_size=vocab_size, **overrides)
        if layout is not None:
            values.setdefault("bos_token_id", layout["<|bos|>"])
            values.setdefault("eos_token_id", layout["<|eos|>"])
            values.setdefault("pad_token_id", layout["<|pad|>"])
        config = AutoConfig.for_model(model_type, **values)
    else:
        config = small_llama_config(vocab_size, layout, **overrides)
    return AutoModelForCausalLM.from_config(config)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
