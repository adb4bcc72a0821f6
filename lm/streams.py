"""Token streams for language-model training: utterances as id sequences, a deterministic split by utterance, and
packing into fixed-length blocks.

Packed blocks carry `position_ids` that restart at 0 at every utterance start. With no `attention_mask`,
transformers' causal mask turns restarts into a block-diagonal mask (`masking_utils.find_packed_sequence_indices`),
so `separate=True` means no token attends across utterances, and the first token of an utterance is not scored
against the previous one (its label is -100).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from wavtokenizer_hf.corpus.builder import is_saved_dataset
from wavtokenizer_hf.errors import WavTokenizerError

IGNORE_INDEX = -100


@dataclass
class Utterance:
    """One training example: ids and the per-token loss mask (False = context only, not scored)."""

    id: str
    input_ids: np.ndarray  # int64 [T]
    scored: np.ndarray  # bool [T]; scored[t] means token t is a prediction target
    seconds: float = 0.0


def audio_sequence(codes: np.ndarray, audio_offset: int, bos_id: int, eos_id: int) -> np.ndarray:
    """`<bos> codes <eos>` as ids."""
    return np.concatenate([[bos_id], np.asarray(codes, dtype=np.int64) + audio_offset, [eos_id]]).astype(np.int64)


def split_by_utterance(ids: Sequence[str], validation_share: float = 0.1, salt: str = "lm-split") -> np.ndarray:
    """Boolean mask: True for validation utterances. A hash of each id decides, so the split does not depend on
    order or on how many utterances there are."""
    if not 0 < validation_share < 1:
        raise WavTokenizerError(f"validation_share must be in (0, 1), got {validation_share}")
    buckets = [int(hashlib.sha1(f"{salt}:{key}".encode()).hexdigest()[:8], 16) / 16**8 for key in ids]
    return np.asarray(buckets) < validation_share


def pack_blocks(utterances: Iterable[Utterance], block_size: int, separate: bool = True,
                pad_id: int = 0) -> dict[str, np.ndarray]:
    """Concatenate utterances and cut the stream into `block_size` blocks (the last one padded, padding unscored).

    Returns `input_ids`, `labels` (IGNORE_INDEX where not scored) and `position_ids`, each [N, block_size].
    An utterance that crosses a block edge continues in the next block as a new segment (positions restart)."""
    if block_size < 2:
        raise WavTokenizerError(f"block_size must be at least 2, got {block_size}")
    ids_parts, label_parts, position_parts = [], [], []
    total = 0
    for utterance in utterances:
        ids = utterance.input_ids
        labels = np.where(utterance.scored, ids, IGNORE_INDEX)
        if separate:
            labels = labels.copy()
            labels[0] = IGNORE_INDEX  # nothing before it in its own utterance to predict it from
        # positions restart at each utterance and again at each block edge it crosses
        positions = np.arange(len(ids)) if separate else np.arange(total, total + len(ids))
        if separate:
            start_in_block = total % block_size
            cut = block_size - start_in_block
            while cut < len(ids):
                positions[cut:] -= positions[cut]
                labels[cut] = IGNORE_INDEX
                cut += block_size
        ids_parts.append(ids)
        label_parts.append(labels)
        position_parts.append(positions)
        total += len(ids)
    if total == 0:
        raise WavTokenizerError("no tokens to pack")
    ids, labels, positions = (np.concatenate(parts) for parts in (ids_parts, label_parts, position_parts))
    if not separate:
        positions = np.arange(total) % block_size
    blocks = -(-total // block_size)
    pad = blocks * block_size - total
    # padding continues the last segment's positions so that it does not open a segment of its own
    tail = positions[-1] + 1 + np.arange(pad)
    ids = np.concatenate([ids, np.full(pad, pad_id)])
    labels = np.concatenate([labels, np.full(pad, IGNORE_INDEX)])
    positions = np.concatenate([positions, tail])
    shape = (blocks, block_size)
    return {"input_ids": ids.reshape(shape), "labels": labels.reshape(shape), "position_ids": positions.reshape(shape)}


def load_tokenized(path: str | Path, split: str | None = None):
    """A tokenized dataset written by `datasets.map(DatasetTokenizer(...))` + `save_to_disk` (a Dataset, or one
    split of a DatasetDict) or by `scripts/tokenize_dataset.py` (a folder of parquet parts)."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    path = Path(path)
    if not path.exists():
        raise WavTokenizerError(f"tokenized dataset not found: {path}")
    if is_saved_dataset(path):
        data = load_from_disk(str(path))
        if isinstance(data, DatasetDict):
            name = split or "train"
            if name not in data:
                raise WavTokenizerError(f"{path} has splits {list(data)}, not {name!r}")
            data = data[name]
    else:
        parts = sorted(str(p) for p in path.rglob("*.parquet"))
        if not parts:
            raise WavTokenizerError(f"{path} is neither a saved dataset nor a folder of parquet parts")
        data = load_dataset("parquet", data_files=parts, split="train")
    assert isinstance(data, Dataset)
    if "audio_codes" not in data.column_names:
        raise WavTokenizerError(f"{path} has no audio_codes column (columns: {data.column_names}); tokenize it with "
                                "wavtokenizer_hf.tokenization.DatasetTokenizer first")
    return data


def codes_of(row: dict) -> np.ndarray:
    """A row's codes as a 1-D array. Leading size-1 axes are dropped, so the `[1][T]` layout and the `[n_q=1][1][T]`
    layout of published WavTokenizer-tokenized datasets (what the authors' `encode_infer` returns) read the same."""
    codes = np.asarray(row["audio_codes"], dtype=np.int64)
    while codes.ndim > 1 and codes.shape[0] == 1:
        codes = codes[0]
    if codes.ndim != 1:
        raise WavTokenizerError(f"row {row.get('id', '?')}: expected mono codes, got shape {codes.shape}")
    return codes
