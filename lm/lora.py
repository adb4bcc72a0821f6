"""LoRA fine-tuning of an extended text LM through `peft`: low-rank adapters on the attention and MLP projections,
the embedding rows of the new (audio) tokens trainable (peft's trainable tokens; a tied output head reads the same
rows, an untied one gets its own trainable rows), every other weight frozen.

Saved as an ordinary model folder (the adapters merged into the weights: stock `AutoModelForCausalLM` loads it
without peft) with the adapter itself in `adapter/` beside it.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Iterable

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.errors import WavTokenizerError

from .tokenizer_files import save_tokenizer

PEFT_INSTALL = "pip install 'wavtokenizer-hf[lm-pretrained]'"
ADAPTER_SUBDIR = "adapter"
# Llama-style blocks: every projection of attention and MLP
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TARGETS_BY_MODEL_TYPE = {"llama": LLAMA_TARGETS}


def _peft():
    try:
        import peft
    except ImportError as err:
        if getattr(err, "name", None) not in (None, "peft"):
            raise
        raise WavTokenizerError(f"LoRA needs the `peft` package, which is not installed: {PEFT_INSTALL}") from None
    return peft


def default_target_modules(model) -> list[str]:
    """The projections LoRA adapts for this model's architecture: all seven for Llama, peft's own default mapping
    for others; an architecture in neither is an error asking for `target_modules`."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    model_type = getattr(model.config, "model_type", None)
    targets = TARGETS_BY_MODEL_TYPE.get(model_type) or PEFT_DEFAULTS.get(model_type)
    if not targets:
        raise WavTokenizerError(f"no default LoRA target modules for model type {model_type!r}: pass "
                                "target_modules (the names of its attention/MLP linear layers)")
    return list(targets)


def _module_name(model, module) -> str:
    return next(name for name, candidate in model.named_modules() if candidate is module)


def _trainable_tokens(model, token_ids: list[int]) -> dict[str, list[int]]:
    """peft's `trainable_token_indices`: the input embedding's rows, and an untied output head's too."""
    embeddings, head = model.get_input_embeddings(), model.get_output_embeddings()
    layers = {_module_name(model, embeddings): token_ids}
    if head is not None and head.weight is not embeddings.weight:
        layers[_module_name(model, head)] = token_ids
    return layers


def apply_lora(model, new_token_ids: Iterable[int], rank: int = 8, alpha: float = 16, dropout: float = 0.0,
               target_modules: Iterable[str] | None = None):
    """A peft `PeftModel` around `model` (which it modifies): LoRA of `rank` on `target_modules` (default:
    `default_target_modules`), the rows of `new_token_ids` in the embeddings trainable, everything else frozen."""
    peft = _peft()
    ids = sorted({int(i) for i in new_token_ids})
    rows = model.get_input_embeddings().weight.shape[0]
    if not ids:
        raise WavTokenizerError("apply_lora needs the ids of the new tokens whose embedding rows are trained")
    if ids[0] < 0 or ids[-1] >= rows:
        raise WavTokenizerError(f"new token ids must lie in [0, {rows}) (the model's embedding rows); got "
                                f"[{ids[0]}, {ids[-1]}]: extend the model (lm.vocabulary.extend_text_lm) first")
    if rank < 1:
        raise WavTokenizerError(f"LoRA rank must be at least 1, got {rank} (rank 0 means full fine-tuning)")
    targets = list(target_modules) if target_modules is not None else default_target_modules(model)
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                             trainable_token_indices=_trainable_tokens(model, ids), task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        try:
            return peft.get_peft_model(model, config)
        except ValueError as err:  # e.g. a target module the model does not have
            raise WavTokenizerError(f"LoRA could not be applied: {err}") from None


def is_peft_model(model) -> bool:
    """Whether `model` is a peft `PeftModel` (False when peft is not installed)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def merged_copy(peft_model):
    """A plain transformers model with the adapters merged into its weights; `peft_model` is left as it was."""
    return copy.deepcopy(peft_model).merge_and_unload()


def save_model_folder(model, directory: str | Path) -> None:
    """`model.save_pretrained(directory)`; a PeftModel is saved merged (a stock-loadable folder) with its adapter
    in `directory/adapter`."""
    directory = Path(directory)
    if not is_peft_model(model):
        model.save_pretrained(directory)
        return
    merged_copy(model).save_pretrained(directory)
    model.save_pretrained(directory / ADAPTER_SUBDIR)


def save_lora(peft_model, tokenizer, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write `out_dir` atomically: the merged model and `tokenizer` (AutoModelForCausalLM/AutoTokenizer load it
    without peft) and the adapter in `out_dir/adapter`. Returns `out_dir`."""
    if not is_peft_model(peft_model):
        raise WavTokenizerError(f"save_lora needs a peft PeftModel (from apply_lora), got {type(peft_model).__name__}")
    out_dir = Path(out_dir)
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        save_model_folder(peft_model, tmp)
        if tokenizer is not None:
            save_tokenizer(tokenizer, tmp)
    return out_dir
