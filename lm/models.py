"""Causal LMs for token streams: any transformers causal-LM config, with a small Llama-style default, and the checks
that a model can be trained on packed blocks (`check_block_fits`, `check_packing`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from wavtokenizer_hf.errors import WavTokenizerError

# Trains on 2 CPU cores in minutes (about 3.4 M parameters besides the embeddings).
SMALL_LLAMA = dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=4, max_position_embeddings=4096, rope_theta=10000.0, tie_word_embeddings=True,
                   attention_dropout=0.0)
# Attention implementations for which transformers builds a block-diagonal mask from restarting `position_ids`
# (masking_utils); flash attention honours them only for a batch of one row (it unpads that row into sequences).
PACKING_ATTENTION = ("eager", "sdpa", "flex_attention")


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
    the small Llama default. Embeddings are resized to `vocab_size` when they are smaller.

    Training packs utterances into blocks and relies on `use_cache=False` and on an attention implementation that
    turns restarting `position_ids` into a block-diagonal mask (eager, sdpa, flex; flash attention only at batch
    size 1). `lm.trainer.train_lm` runs `check_packing` and `check_block_fits` and refuses anything else."""
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


def max_positions(model) -> int | None:
    """The longest sequence the model's position embeddings allow (None when its config does not say)."""
    value = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    return int(value) if value else None


def check_block_fits(model, block_size: int) -> None:
    """Refuse blocks longer than the model's positions (training and held-out scoring never go past a block)."""
    limit = max_positions(model)
    if limit is not None and block_size > limit:
        raise WavTokenizerError(f"--block-size {block_size} is longer than the {limit} positions of the model "
                                f"({type(model).__name__}); use a block of at most {limit} tokens")


def check_packing(model, batch_size: int) -> None:
    """Refuse a model that would let packed utterances attend to each other: an attention implementation that
    ignores restarting `position_ids` (flash attention at batch size > 1, anything not in PACKING_ATTENTION), or a
    model whose logits for a packed utterance differ from its logits alone (a model class that builds its own mask)."""
    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    if "flash" in implementation:
        if batch_size > 1:
            raise WavTokenizerError(f"attn_implementation={implementation!r} separates packed utterances only in "
                                    f"a batch of one block, not {batch_size}: use --batch-size 1 or sdpa")
        return  # transformers unpads the single row by its position_ids; the probe below needs eager/sdpa kernels
    if implementation not in PACKING_ATTENTION:
        raise WavTokenizerError(f"attn_implementation={implementation!r} is not known to honour packed position_ids; "
                                f"accepted: {', '.join(PACKING_ATTENTION)} (flash attention at batch size 1)")
    leak, reach = _packing_leak(model)
    if reach > 0 and leak > 0.05 * reach:
        raise WavTokenizerError(f"{type(model).__name__} lets packed utterances attend to each other (logits change "
                                f"by {leak:.3g} beside the utterance alone): it cannot be trained on packed blocks")


@torch.no_grad()
def _packing_leak(model) -> tuple[float, float]:
    """(how far the logits of an utterance packed after another, in a batch of two rows, are from its logits alone;
    how far they are when it simply follows the other in one sequence)."""
    vocab = model.get_input_embeddings().weight.shape[0]
    first, second = (torch.arange(6) * 7 + 3) % vocab, (torch.arange(5) * 5 + 11) % vocab
    device = next(model.parameters()).device
    packed = torch.cat([first, second])[None].expand(2, -1).to(device)
    positions = torch.cat([torch.arange(6), torch.arange(5)])[None].expand(2, -1).to(device)
    was_training = model.training
    model.eval()
    try:
        together = model(input_ids=packed, position_ids=positions, use_cache=False).logits[:, 6:].float()
        alone = model(input_ids=second[None].to(device), use_cache=False).logits.float()
        joined = model(input_ids=packed[:1], use_cache=False).logits[:, 6:].float()
    finally:
        model.train(was_training)
    return float((together - alone).abs().max()), float((joined - alone).abs().max())
