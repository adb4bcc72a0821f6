"""What the audio GPT run (`lm.audio_lm`) and the TTS-LM run (`lm.tts_training`) share: the three-way split by
utterance, packing, training with the checkpoint chosen on the selection split, reloading the best model, and the
metrics every run reports.

The selection split picks the checkpoint; the validation split is the one the reported numbers are measured on, so
the choice does not flatter them. `selection_share=0` selects on the validation split itself, and the metrics say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from wavtokenizer_hf.atomic import atomic_path
from wavtokenizer_hf.errors import WavTokenizerError

from .audio_bpe import MODEL_SUBDIR, AudioBPE
from .models import count_parameters
from .streams import SELECTION, TRAIN, VALIDATION, Utterance, pack_blocks, split_three_ways
from .trainer import LMTrainConfig, train_lm

Score = Callable[[object, list[Utterance]], dict]  # (model, utterances) -> {"loss": ..., ...}


@dataclass
class Splits:
    """Training, checkpoint-selection and validation (reported) utterances."""

    train: list[Utterance]
    selection: list[Utterance]
    validation: list[Utterance]

    @property
    def selection_is_validation(self) -> bool:
        return self.selection is self.validation


def split_utterances(utterances: list[Utterance], validation_share: float, selection_share: float) -> Splits:
    """Split by a hash of each id (`lm.streams.split_three_ways`); an empty split is an error, never a fallback."""
    labels = split_three_ways([u.id for u in utterances], validation_share, selection_share)
    parts = {label: [u for u, x in zip(utterances, labels) if x == label] for label in (TRAIN, SELECTION, VALIDATION)}
    needed = {"training": TRAIN, "validation": VALIDATION, **({"selection": SELECTION} if selection_share else {})}
    for name, label in needed.items():
        if not parts[label]:
            raise WavTokenizerError(f"the {name} split of {len(utterances)} utterances is empty (validation share "
                                    f"{validation_share:g}, selection share {selection_share:g}): add data or change "
                                    "the shares")
    validation = parts[VALIDATION]
    return Splits(parts[TRAIN], parts[SELECTION] if selection_share else validation, validation)


def training_rows(rows, validation_share: float = 0.05, selection_share: float = 0.05) -> list:
    """The rows of a tokenized split that an LM run with these shares trains on (by the same hash of each row's id
    as `split_utterances`): fit whatever the LM depends on, such as an audio BPE, on these alone, so that nothing
    of the validation and selection utterances leaks into it."""
    rows = list(rows)
    labels = split_three_ways([str(row.get("id", index)) for index, row in enumerate(rows)], validation_share,
                              selection_share)
    return [row for row, label in zip(rows, labels) if label == TRAIN]


class TokenizerWithAudioBPE:
    """A joint tokenizer and its audio BPE, saved together: `save_pretrained(dir)` writes the tokenizer into `dir`
    and the audio BPE into `dir/audio_bpe` (so it is part of the model folder's atomic save)."""

    def __init__(self, tokenizer, audio_bpe: AudioBPE):
        self.tokenizer = tokenizer
        self.audio_bpe = audio_bpe

    def save_pretrained(self, directory: str | Path) -> None:
        self.tokenizer.save_pretrained(directory)
        self.audio_bpe.save(Path(directory) / MODEL_SUBDIR)


def train_and_reload(model, tokenizer, splits: Splits, cfg: LMTrainConfig, out_dir: Path, pad_id: int, score: Score,
                     files: dict[str, str] | None = None, audio_bpe: AudioBPE | None = None):
    """Train on the packed training split, keeping the checkpoint that `score` rates best on the selection split;
    returns (the best model reloaded from `out_dir/model`, the training summary). Processes other than the main
    one get (None, summary): they trained, the main one reports. `audio_bpe` is saved in every checkpoint of the
    model, in `model/audio_bpe`."""
    from transformers import AutoModelForCausalLM

    blocks = pack_blocks(splits.train, cfg.block_size, separate=True, pad_id=pad_id)
    saved = tokenizer if audio_bpe is None else TokenizerWithAudioBPE(tokenizer, audio_bpe)
    summary = train_lm(model, blocks, cfg, out_dir, saved, evaluate=lambda m: score(m, splits.selection),
                       files=files)
    if not summary["main_process"]:
        return None, summary
    return AutoModelForCausalLM.from_pretrained(out_dir / "model").eval(), summary


def run_metrics(splits: Splits, summary: dict, best, cfg: LMTrainConfig) -> dict:
    """The sizes, the training run and how the checkpoint was chosen."""
    longer = {name: sum(len(u.input_ids) > cfg.block_size for u in part)
              for name, part in (("train", splits.train), ("validation", splits.validation))}
    return {
        "train_utterances": len(splits.train),
        "selection_utterances": 0 if splits.selection_is_validation else len(splits.selection),
        "validation_utterances": len(splits.validation),
        "checkpoint_selected_on": ("the validation utterances (the set reported here)" if splits.selection_is_validation
                                   else "the selection split (disjoint from the validation utterances reported here)"),
        "train_tokens": int(sum(len(u.input_ids) for u in splits.train)),
        "block_size": cfg.block_size, "utterances_split_at_block_size": longer,
        "parameters": count_parameters(best), "steps": summary["steps"], "train_seconds": summary["seconds"],
        "best_step": summary["best_step"], "best_selection_loss": summary["best_val_loss"],
    }


def write_metrics(out_dir: Path, metrics: dict) -> None:
    with atomic_path(out_dir / "metrics.json", overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(metrics, indent=2))
