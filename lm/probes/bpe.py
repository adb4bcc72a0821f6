"""Acoustic BPE tokens as frame labels, and which multi-code tokens a vocabulary holds.

An audio-BPE token (`lm.audio_bpe`) spans a run of consecutive code frames; every frame is labelled with the id of
the token covering it. The tokens then sit on exactly the frames (and phone labels) of the codes they encode, so
their PNMI, its usage-matched null (the per-frame token labels circularly shifted within each utterance, which keeps
each token's frames together) and the bootstrap are those of the codes, and the two rows are directly comparable.

Per token occurrence, "within one phone" says whether all its frames carry one label (silence is a label); its chance
level is the share of the places in the same utterance where a span of the same length would.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from lm.audio_bpe import AudioBPE, top_pieces
from wavtokenizer_hf.errors import WavTokenizerError

from .codes import CodedSet
from .result import TokenVocabulary


def token_starts(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The first frame of each token of `ids` (token id i spans `lengths[i]` frames)."""
    return np.concatenate([[0], np.cumsum(lengths[ids])[:-1]]).astype(np.int64)


def frame_tokens(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The id of the token covering each frame: every token's id repeated over its frames."""
    return np.repeat(np.asarray(ids, dtype=np.int64), lengths[ids])


def row_name(bpe: AudioBPE, path: Path, taken: Sequence[str] = ()) -> str:
    """The row's name, e.g. `BPE-4096 tokens (frame-level)` (model type and vocabulary size), with the directory's
    name added when that is already taken."""
    kind = "BPE" if bpe.model_type == "bpe" else bpe.model_type
    name = f"{kind}-{bpe.vocab_size} tokens (frame-level)"
    return f"{name} [{path.name}]" if name in taken else name


def _one_label_spans(labels: np.ndarray, length: int) -> np.ndarray:
    """For each start frame, whether the `length` frames from it carry one label (the windows that fit)."""
    changes = np.concatenate([[0], np.cumsum(labels[1:] != labels[:-1])])
    return changes[length - 1:] == changes[:len(labels) - length + 1]


def occurrence_alignment(ids: list[np.ndarray], lengths: np.ndarray,
                         labels: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every token occurrence of every utterance: its id, whether its frames carry one label, and the chance of
    that (the share of start frames of its utterance at which a span of its length does)."""
    tokens, within, chance = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=bool)], [np.zeros(0)]
    for utt_ids, utt_labels in zip(ids, labels):
        spans_of = lengths[utt_ids]
        if spans_of.sum() != len(utt_labels):
            raise WavTokenizerError(f"the tokens span {spans_of.sum()} frames but the utterance has {len(utt_labels)} "
                                    "labelled frames")
        _, label_ids = np.unique(np.asarray(utt_labels, dtype=str), return_inverse=True)
        starts = token_starts(utt_ids, lengths)
        utt_within, utt_chance = np.zeros(len(utt_ids), dtype=bool), np.zeros(len(utt_ids))
        for length in np.unique(spans_of):
            one_label, mine = _one_label_spans(label_ids, int(length)), spans_of == length
            utt_within[mine], utt_chance[mine] = one_label[starts[mine]], one_label.mean()
        tokens.append(np.asarray(utt_ids, dtype=np.int64))
        within.append(utt_within)
        chance.append(utt_chance)
    return np.concatenate(tokens), np.concatenate(within), np.concatenate(chance)


def frequent_tokens(bpe: AudioBPE, ids: list[np.ndarray], labels: list[list[str]], frame_rate: float, count: int = 20,
                    alignment: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """The `count` most frequent multi-code tokens over the encoded utterances `ids` (`lm.audio_bpe.top_pieces`),
    with their codes, length in frames and milliseconds, occurrences, share of all tokens and of all frames, their
    frames' majority label and its share, and the share of their occurrences within one label, with its chance
    (`alignment`: `occurrence_alignment`'s result, when already computed)."""
    frames = np.concatenate([np.zeros(0, dtype=np.int64), *(frame_tokens(i, bpe.lengths) for i in ids)])
    flat_labels = np.asarray([label for per_utt in labels for label in per_utt], dtype=object)
    occurrences, within, chance = alignment or occurrence_alignment(ids, bpe.lengths, labels)
    out = []
    for piece in top_pieces(bpe, ids, frame_rate, count):
        token, length = piece["id"], int(bpe.lengths[piece["id"]])
        phone, phone_frames = Counter(flat_labels[frames == token]).most_common(1)[0]
        mine = occurrences == token
        out.append({"id": token, "token": piece["token"], "codes": list(bpe.pieces[token]), "frames": length,
                    "milliseconds": piece["milliseconds"], "count": piece["count"], "share_of_tokens": piece["share"],
                    "share_of_frames": piece["count"] * length / len(frames), "majority_phone": phone,
                    "majority_share": phone_frames / (piece["count"] * length),
                    "within_one_phone": float(within[mine].mean()),
                    "within_one_phone_chance": float(chance[mine].mean())})
    return out


def apply_bpe(coded: CodedSet, bpe: AudioBPE, path: Path, labels: list[list[str]], name: str,
              top: int = 20) -> tuple[CodedSet, TokenVocabulary]:
    """`coded`'s codes encoded with `bpe`: the per-frame token ids as a `CodedSet` (kind "bpe", K = the vocabulary
    size) to probe like codes, and what the vocabulary's tokens are on these utterances (`labels`: each frame's
    phone)."""
    bpe.check_codec(coded.codebook_size, f"codec {coded.name}")
    ids = bpe.encode_batch(coded.codes)
    per_frame = [frame_tokens(i, bpe.lengths) for i in ids]
    tokens = CodedSet(name, per_frame, coded.frame_rate, bpe.vocab_size, kind="bpe", sampling_rate=coded.sampling_rate)
    alignment = occurrence_alignment(ids, bpe.lengths, labels)
    occurrences, within, chance = alignment
    multi = bpe.lengths[occurrences] > 1
    frames = int(sum(len(f) for f in per_frame))
    summary = TokenVocabulary(
        name, str(path), bpe.model_type, bpe.vocab_size, bpe.codebook_size, len(occurrences), frames,
        multi_code_frames=float(bpe.lengths[occurrences[multi]].sum() / frames) if frames else float("nan"),
        within_one_phone=float(within[multi].mean()) if multi.any() else float("nan"),
        within_one_phone_chance=float(chance[multi].mean()) if multi.any() else float("nan"),
        top_tokens=frequent_tokens(bpe, ids, labels, coded.frame_rate, top, alignment))
    return tokens, summary
