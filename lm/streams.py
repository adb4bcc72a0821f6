"""Token streams for language-model training: utterances as id sequences, a deterministic split by utterance, and
packing into fixed-length blocks.

Packing keeps utterances whole: a block holds whole utterances side by side, and a new block starts when an utterance
fits in no open one. Only an utterance longer than a block is split (`block_pieces`): each piece repeats the
utterance's prompt, unscored, so every piece starts as the utterance does, and every target is scored exactly once.
Held-out scoring (`lm.evaluate.utterance_nats` with `block_size`) cuts utterances into the same pieces, so training
and evaluation see the same positions, none at or past `block_size`.

Packed blocks carry `position_ids` that restart at 0 at every utterance start. With no `attention_mask` and no cache
(`use_cache=False`), transformers' causal mask turns restarts into a block-diagonal mask
(`masking_utils.find_packed_sequence_indices`) under the eager, sdpa and flex attention implementations, so no token
attends across utterances; `lm.models.check_packing` refuses a model that does otherwise. The first token of an
utterance is not scored against the previous one (its label is -100).
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from wavtokenizer_hf.corpus.builder import is_saved_dataset
from wavtokenizer_hf.errors import WavTokenizerError

IGNORE_INDEX = -100
TRAIN, SELECTION, VALIDATION = 0, 1, 2  # labels of `split_three_ways`


@dataclass
class Utterance:
    """One training example: ids and the per-token loss mask (False = context only, not scored)."""

    id: str
    input_ids: np.ndarray  # int64 [T]
    scored: np.ndarray  # bool [T]; scored[t] means token t is a prediction target
    seconds: float = 0.0
    prompt: int | None = None  # tokens a piece of this utterance repeats (None: those before the first target)


def audio_sequence(codes: np.ndarray, audio_offset: int, bos_id: int, eos_id: int) -> np.ndarray:
    """`<bos> codes <eos>` as ids."""
    return np.concatenate([[bos_id], np.asarray(codes, dtype=np.int64) + audio_offset, [eos_id]]).astype(np.int64)


def _buckets(ids: Sequence[str], salt: str) -> np.ndarray:
    """A number in [0, 1) per id, from a hash of the id: the same id always lands in the same place."""
    return np.asarray([int(hashlib.sha1(f"{salt}:{key}".encode()).hexdigest()[:8], 16) / 16**8 for key in ids])


def split_by_utterance(ids: Sequence[str], validation_share: float = 0.1, salt: str = "lm-split") -> np.ndarray:
    """Boolean mask: True for validation utterances. A hash of each id decides, so the split does not depend on
    order or on how many utterances there are."""
    if not 0 < validation_share < 1:
        raise WavTokenizerError(f"validation_share must be in (0, 1), got {validation_share}")
    return _buckets(ids, salt) < validation_share


def split_three_ways(ids: Sequence[str], validation_share: float, selection_share: float,
                     salt: str = "lm-split") -> np.ndarray:
    """TRAIN, SELECTION or VALIDATION per id, by the same hash as `split_by_utterance`: the validation utterances
    are exactly the ones `split_by_utterance(ids, validation_share)` picks, and the selection split (for choosing
    the best checkpoint) is carved out of what would otherwise be training data."""
    if not 0 < validation_share < 1:
        raise WavTokenizerError(f"validation_share must be in (0, 1), got {validation_share}")
    if not 0 <= selection_share < 1 - validation_share:
        raise WavTokenizerError(f"selection_share must be in [0, {1 - validation_share:g}) with validation_share "
                                f"{validation_share:g}, got {selection_share}")
    buckets = _buckets(ids, salt)
    labels = np.full(len(buckets), TRAIN)
    labels[buckets < validation_share + selection_share] = SELECTION
    labels[buckets < validation_share] = VALIDATION
    return labels


def prompt_length(utterance: Utterance) -> int:
    """The tokens every piece of a split utterance starts with: its `prompt` when it has one (a TTS example's text up
    to `<|audio_start|>`: in the interleaved format the first word's text also comes before the first target, and it
    must not be repeated in front of a later stretch), else those before the first prediction target (`<bos>` in an
    audio stream). Position 0 is never a target."""
    if utterance.prompt is not None:
        return utterance.prompt
    targets = np.flatnonzero(utterance.scored[1:])
    return int(targets[0]) + 1 if targets.size else len(utterance.input_ids)


def block_pieces(utterance: Utterance, block_size: int) -> list[Utterance]:
    """The utterance itself when it fits in `block_size` tokens; else pieces that do: each is the utterance's prompt
    (repeated, unscored) followed by the next stretch of the rest. Every target of the utterance is scored in
    exactly one piece; a target at the start of a piece sees the prompt but not the tokens before it."""
    length = len(utterance.input_ids)
    if length <= block_size:
        return [utterance]
    prompt = prompt_length(utterance)
    room = block_size - prompt
    if room < 1:
        raise WavTokenizerError(f"utterance {utterance.id}: its prompt has {prompt} tokens, so a block of {block_size} "
                                "holds none of what follows; raise the block size")
    pieces = []
    for index, start in enumerate(range(prompt, length, room)):
        stop = min(start + room, length)
        pieces.append(Utterance(f"{utterance.id}#{index}",
                                np.concatenate([utterance.input_ids[:prompt], utterance.input_ids[start:stop]]),
                                np.concatenate([utterance.scored[:prompt], utterance.scored[start:stop]]),
                                seconds=utterance.seconds * (stop - start) / (length - prompt)))
    return pieces


def fit_to_blocks(utterances: Iterable[Utterance], block_size: int) -> list[Utterance]:
    """Every utterance as `block_pieces` of at most `block_size` tokens (what training and scoring both use)."""
    if block_size < 2:
        raise WavTokenizerError(f"block_size must be at least 2, got {block_size}")
    return [piece for u in utterances for piece in block_pieces(u, block_size)]


def assign_blocks(lengths: Sequence[int], block_size: int) -> list[list[int]]:
    """Indices of the pieces in each block: best fit, longest first (each piece goes to the open block it fills
    most tightly; a new block opens when it fits in none)."""
    blocks: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, block index), sorted
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        slot = bisect.bisect_left(free, (lengths[index], -1))
        if slot < len(free):
            room, block = free.pop(slot)
        else:
            room, block = block_size, len(blocks)
            blocks.append([])
        blocks[block].append(index)
        if room - lengths[index] > 0:
            bisect.insort(free, (room - lengths[index], block))
    return blocks


def _block(pieces: list[Utterance], block_size: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, labels, positions) of one block of whole pieces; the padding continues the last piece's positions so
    that it does not open a segment of its own, and is not scored."""
    ids = np.concatenate([p.input_ids for p in pieces])
    labels = np.concatenate([np.where(p.scored, p.input_ids, IGNORE_INDEX) for p in pieces])
    starts = np.cumsum([0] + [len(p.input_ids) for p in pieces[:-1]])
    labels[starts] = IGNORE_INDEX  # nothing before it in its own utterance to predict it from
    positions = np.concatenate([np.arange(len(p.input_ids)) for p in pieces])
    pad = block_size - len(ids)
    return (np.concatenate([ids, np.full(pad, pad_id)]), np.concatenate([labels, np.full(pad, IGNORE_INDEX)]),
            np.concatenate([positions, positions[-1] + 1 + np.arange(pad)]))


def _stream_blocks(utterances: list[Utterance], block_size: int, pad_id: int) -> dict[str, np.ndarray]:
    """One stream cut into blocks wherever the edges fall (`separate=False`)."""
    ids = np.concatenate([u.input_ids for u in utterances])
    labels = np.concatenate([np.where(u.scored, u.input_ids, IGNORE_INDEX) for u in utterances])
    blocks = -(-len(ids) // block_size)
    pad = blocks * block_size - len(ids)
    shape = (blocks, block_size)
    return {"input_ids": np.concatenate([ids, np.full(pad, pad_id)]).reshape(shape),
            "labels": np.concatenate([labels, np.full(pad, IGNORE_INDEX)]).reshape(shape),
            "position_ids": np.tile(np.arange(block_size), (blocks, 1))}


def pack_blocks(utterances: Iterable[Utterance], block_size: int, separate: bool = True,
                pad_id: int = 0) -> dict[str, np.ndarray]:
    """Pack utterances into `block_size` blocks; returns `input_ids`, `labels` (IGNORE_INDEX where not scored) and
    `position_ids`, each [N, block_size].

    `separate=True` (training): whole utterances per block (see the module docstring), positions restarting at each,
    padding unscored. `separate=False`: one stream cut at block edges, utterances attending to each other (a
    comparison only: it trains on utterance pieces without their start)."""
    utterances = list(utterances)
    if block_size < 2:
        raise WavTokenizerError(f"block_size must be at least 2, got {block_size}")
    if not sum(len(u.input_ids) for u in utterances):
        raise WavTokenizerError("no tokens to pack")
    if not separate:
        return _stream_blocks(utterances, block_size, pad_id)
    pieces = fit_to_blocks(utterances, block_size)
    rows = [_block([pieces[i] for i in members], block_size, pad_id)
            for members in assign_blocks([len(p.input_ids) for p in pieces], block_size)]
    return {name: np.stack([row[k] for row in rows]).astype(np.int64)
            for k, name in enumerate(("input_ids", "labels", "position_ids"))}


def load_tokenized(path: str | Path, split: str | None = None, codebook_fingerprint: str | None = None):
    """A tokenized dataset written by `datasets.map(DatasetTokenizer(...))` + `save_to_disk` (a Dataset, or one
    split of a DatasetDict) or by `scripts/tokenize_dataset.py` (a folder of parquet parts). Codes made by several
    models are refused, and so are codes of another codebook than `codebook_fingerprint` (the codec the caller
    decodes with, `Codec.fingerprint`); data that records no model (written before it was recorded) is accepted."""
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
    made_by = codebooks_of(path, data)
    if len(made_by) > 1:
        raise WavTokenizerError(f"{path} holds codes of {len(made_by)} different codebooks ({', '.join(sorted(made_by))}): "
                                "tokenize it again with one model")
    if codebook_fingerprint and made_by and made_by != {codebook_fingerprint}:
        raise WavTokenizerError(f"{path} was tokenized by a model with codebook {made_by.pop()}, not by this codec "
                                f"(codebook {codebook_fingerprint}): its codes mean other sounds; tokenize it with "
                                "this codec")
    return data


def codebooks_of(path: Path, data) -> set[str]:
    """The codebook fingerprints a tokenized dataset records: its `codec_fingerprint` column, or its parquet parts'
    metadata; empty where nothing is recorded."""
    from wavtokenizer_hf.tokenization import part_identity

    if "codec_fingerprint" in data.column_names:
        return {f for f in data.unique("codec_fingerprint") if f}
    if path.is_dir() and not is_saved_dataset(path):
        found = {part_identity(p).get("codebook_fingerprint") for p in sorted(path.rglob("*.parquet"))}
        return {f for f in found if f}
    return set()


def codes_of(row: dict) -> np.ndarray:
    """A row's codes as a 1-D array. Leading size-1 axes are dropped, so the `[1][T]` layout and the `[n_q=1][1][T]`
    layout of published WavTokenizer-tokenized datasets (what the authors' `encode_infer` returns) read the same."""
    codes = np.asarray(row["audio_codes"], dtype=np.int64)
    while codes.ndim > 1 and codes.shape[0] == 1:
        codes = codes[0]
    if codes.ndim != 1:
        raise WavTokenizerError(f"row {row.get('id', '?')}: expected mono codes, got shape {codes.shape}")
    return codes
