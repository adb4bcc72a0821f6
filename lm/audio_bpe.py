"""Acoustic BPE: SentencePiece (BPE or unigram) vocabularies over codec code streams, in Hugging Face form.

Code c is the character `chr(CHAR_BASE + c)` of Unicode's Supplementary Private Use Area-A, so a code stream is a
string with no whitespace and SentencePiece learns pieces of consecutive codes (no normalisation, no dummy prefix,
no byte fallback). SentencePiece only trains; the model is converted to a `tokenizers` model (`lm.text_sentencepiece`)
and that encodes, so the ids are by construction those of the saved `tokenizer.json`.

Ids: audio-BPE id k < K is the single code k (all K codes, seen in training or not, so every stream encodes and
decodes exactly); ids K .. V-1 are the multi-code pieces in SentencePiece's order (for BPE, merge order). In a joint
vocabulary, audio-BPE id i sits at `audio_offset + i` and is named after its codes, `<|a_12_873_5|>`, so `<|a_k|>`
stays the name of code k (`lm.vocabulary.audio_token`) and any id decodes to codes from its name alone.

A saved audio BPE is a directory:
  tokenizer.json, tokenizer_config.json   stock `AutoTokenizer.from_pretrained(dir)`; its input is one character per
                                          code: `"".join(chr(0xF0000 + c) for c in codes)`
  audio_bpe.json                          codebook size, model type, character base, vocabulary and training summary
"""

from __future__ import annotations

import heapq
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from wavtokenizer_hf.errors import WavTokenizerError

from .text_sentencepiece import (check_model_type, check_text_model, text_tokenizer, tokenizers_model,
                                 train_sentencepiece)
from .vocabulary import AudioTokenLayout, audio_token, build_joint_tokenizer, extend_tokenizer
from .tokenizer_files import save_tokenizer

CHAR_BASE = 0xF0000  # U+F0000, start of Supplementary Private Use Area-A
MAX_CODEBOOK_SIZE = 0xFFFFE - CHAR_BASE  # PUA-A ends at U+FFFFD
CONFIG_NAME = "audio_bpe.json"
MODEL_SUBDIR = "audio_bpe"  # where an LM saved with an audio BPE keeps it, inside its model folder
FORMAT = "wavtokenizer-hf-audio-bpe"
VERSION = 1
_MERGED_NAME = re.compile(r"<\|a_\d+(?:_\d+)+\|>")
_HASH_MULTIPLIER = 0x9E3779B97F4A7C15  # odd: the rolling hash of an n-gram is a polynomial in it, mod 2**64


# --- codes as text ----------------------------------------------------------------------------------------------

def check_codebook_size(codebook_size: int) -> int:
    if not 1 <= int(codebook_size) <= MAX_CODEBOOK_SIZE:
        raise WavTokenizerError(f"codebook_size must be in [1, {MAX_CODEBOOK_SIZE}] (one private-use character per "
                                f"code), got {codebook_size}")
    return int(codebook_size)


def check_codes(codes, codebook_size: int) -> np.ndarray:
    """`codes` as a 1-D int64 array, refusing other shapes, non-integers and codes outside [0, codebook_size)."""
    if hasattr(codes, "detach"):  # a torch tensor
        codes = codes.detach().cpu().numpy()
    array = np.asarray(codes)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1:
        raise WavTokenizerError(f"expected a 1-D code stream, got shape {array.shape} (lm.streams.codes_of flattens a "
                                "dataset row)")
    if not np.issubdtype(array.dtype, np.integer):
        raise WavTokenizerError(f"codes must be integers, got dtype {array.dtype}")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= codebook_size:
        raise WavTokenizerError(f"codes must lie in [0, {codebook_size}); got values in [{low}, {high}] (was the "
                                "audio BPE trained for another codec?)")
    return array.astype(np.int64, copy=False)


def codes_to_text(codes, codebook_size: int) -> str:
    """One private-use character per code (vectorised)."""
    array = check_codes(codes, codebook_size)
    return (array.astype("<u4") + CHAR_BASE).tobytes().decode("utf-32-le")


def text_to_codes(text: str) -> np.ndarray:
    """Inverse of `codes_to_text` (no range check: the caller knows its codebook)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64) - CHAR_BASE


def token_name(codes: Sequence[int]) -> str:
    """The joint-vocabulary name of a piece: `<|a_3|>` for one code (as `lm.vocabulary.audio_token`), `<|a_3_9|>` for
    more."""
    return "<|a_" + "_".join(str(int(c)) for c in codes) + "|>"


def codes_of_name(name: str) -> tuple[int, ...]:
    """Inverse of `token_name`."""
    return tuple(int(part) for part in name[4:-2].split("_"))


# --- training ---------------------------------------------------------------------------------------------------

@dataclass
class TrainingSample:
    """A bounded random sample of code chunks, as SentencePiece sentences."""

    chunks: list[str]
    streams: int = 0
    codes: int = 0

    @property
    def sampled_codes(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    def distinct_codes(self) -> int:
        return len(set("".join(self.chunks)))


def sample_chunks(streams: Iterable, codebook_size: int, chunk_frames: int, max_codes: int,
                  seed: int = 0) -> TrainingSample:
    """Cut every stream into chunks of at most `chunk_frames` codes and keep a random sample of them holding at most
    `max_codes` codes (all of them when they fit): each chunk draws a random key and the chunks with the smallest
    keys are kept, so memory stays bounded whatever the data size. Kept chunks stay in their original order."""
    if chunk_frames < 2:
        raise WavTokenizerError(f"chunk_frames must be at least 2, got {chunk_frames}")
    rng = np.random.default_rng(seed)
    sample = TrainingSample([])
    kept: list[tuple[float, int, str]] = []  # heap of (-key, arrival, chunk): the largest key on top
    held = arrival = 0
    for stream in streams:
        text = codes_to_text(stream, codebook_size)
        sample.streams += 1
        sample.codes += len(text)
        for start in range(0, len(text), chunk_frames):
            chunk = text[start:start + chunk_frames]
            heapq.heappush(kept, (-float(rng.random()), arrival, chunk))
            held += len(chunk)
            arrival += 1
            while held > max_codes:
                held -= len(heapq.heappop(kept)[2])
    sample.chunks = [chunk for _, _, chunk in sorted(kept, key=lambda entry: entry[1])]
    return sample


def train_audio_bpe(streams: Iterable, codebook_size: int, vocab_size: int, model_type: str = "bpe", *,
                    max_piece_frames: int = 16, chunk_frames: int = 2048, max_training_codes: int = 5_000_000,
                    seed: int = 0, num_threads: int = 1) -> "AudioBPE":
    """Train an audio BPE (or unigram) vocabulary of `vocab_size` tokens (K single codes + vocab_size - K pieces of
    2..max_piece_frames codes) on code streams (1-D integer arrays, e.g. a tokenized dataset's `audio_codes`).

    Training sees a random sample of at most `max_training_codes` codes (in chunks of `chunk_frames`), so memory stays
    bounded whatever the data size: 5 M codes (18.5 hours at 75 Hz) took 0.7 GB above the caller's for BPE, 0.9 GB
    for unigram. The vocabulary comes out smaller than asked when the data holds fewer pieces (see
    `AudioBPE.vocab_size`)."""
    codebook_size = check_codebook_size(codebook_size)
    check_model_type(model_type)
    if vocab_size < codebook_size:
        raise WavTokenizerError(f"vocab_size must be at least the codebook size {codebook_size} (every code is a "
                                f"token), got {vocab_size}")
    if not 2 <= max_piece_frames <= 256:
        raise WavTokenizerError(f"max_piece_frames must be in [2, 256], got {max_piece_frames}")
    sample = sample_chunks(streams, codebook_size, chunk_frames, max_training_codes, seed)
    if sample.codes == 0:
        raise WavTokenizerError("no codes to train the audio BPE on (all streams were empty)")
    merged: list[tuple[str, float]] = []
    singles: dict[str, float] = {}
    if vocab_size > codebook_size:
        merged, singles = _train_pieces(sample, vocab_size - codebook_size, model_type, max_piece_frames, chunk_frames,
                                        num_threads)
    info = {"requested_vocab_size": vocab_size, "max_piece_frames": max_piece_frames, "streams": sample.streams,
            "codes": sample.codes, "sampled_codes": sample.sampled_codes, "seed": seed}
    return AudioBPE(_backend(codebook_size, model_type, merged, singles), codebook_size, model_type, info)


def _train_pieces(sample: TrainingSample, pieces: int, model_type: str, max_piece_frames: int, chunk_frames: int,
                  num_threads: int) -> tuple[list[tuple[str, float]], dict[str, float]]:
    """SentencePiece's multi-code pieces (at most `pieces`, in its order) and its single-code scores."""
    options = dict(character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=False,
                   remove_extra_whitespaces=False, byte_fallback=False, split_by_whitespace=False,
                   split_by_unicode_script=False, split_by_number=False, max_sentencepiece_length=max_piece_frames,
                   max_sentence_length=4 * chunk_frames + 16, input_sentence_size=0, shuffle_input_sentence=False,
                   hard_vocab_limit=False, num_threads=num_threads)
    # SentencePiece keeps every character it saw, plus `<unk>`: ask for exactly `pieces` more than that
    size = pieces + sample.distinct_codes() + 1
    with tempfile.TemporaryDirectory() as scratch:
        if model_type == "unigram":
            options["seed_sentencepieces_file"] = _write_seeds(sample, max_piece_frames, max(20 * pieces, 10_000),
                                                               Path(scratch) / "seeds.tsv")
        trained = train_sentencepiece(sample.chunks, size, model_type, **options)
    normal = [p for p in trained if p.kind == "normal"]
    merged = [(p.text, p.score) for p in normal if len(p.text) > 1][:pieces]
    singles = {p.text: p.score for p in normal if len(p.text) == 1}
    return merged, singles


def frequent_ngrams(chunks: Sequence[np.ndarray], max_length: int, limit: int,
                    min_count: int = 2) -> list[tuple[np.ndarray, int]]:
    """The `limit` code n-grams (2 <= n <= max_length, inside one chunk, seen at least `min_count` times) that cover
    the most codes (count x n), as (codes, count). Vectorised: one 64-bit rolling hash per position and length."""
    if not chunks:
        return []
    codes = np.concatenate(chunks).astype(np.uint64)
    chunk_of = np.repeat(np.arange(len(chunks)), [len(c) for c in chunks])
    hashes = codes.copy()
    found: list[tuple[int, int, int, int]] = []  # (score, n, start, count)
    for n in range(2, max_length + 1):
        windows = len(codes) - n + 1
        if windows < min_count:
            break
        hashes = hashes[:windows] * np.uint64(_HASH_MULTIPLIER) + codes[n - 1:]
        starts = np.flatnonzero(chunk_of[:windows] == chunk_of[n - 1:])
        _, first, counts = np.unique(hashes[starts], return_index=True, return_counts=True)
        frequent = np.flatnonzero(counts >= min_count)
        if frequent.size == 0:
            break  # no n-gram repeats, so no longer one does
        best = frequent[np.argsort(-counts[frequent], kind="stable")[:limit]]
        found.extend((int(counts[i]) * n, n, int(starts[first[i]]), int(counts[i])) for i in best)
    found.sort(key=lambda item: (-item[0], item[2], item[1]))
    return [(codes[start:start + n].astype(np.int64), count) for _, n, start, count in found[:limit]]


def _write_seeds(sample: TrainingSample, max_piece_frames: int, limit: int, path: Path) -> str:
    """SentencePiece's unigram seed file (piece TAB count per line) from `frequent_ngrams`. SentencePiece 0.2's own
    seed extraction keeps almost no multi-code candidates over these characters (44 seeds where this finds
    thousands, on the same codes; compare google/sentencepiece#1068), so the unigram trainer starts from these."""
    chunks = [text_to_codes(chunk) for chunk in sample.chunks]
    with path.open("w", encoding="utf-8") as seeds:
        for codes, count in frequent_ngrams(chunks, max_piece_frames, limit):
            seeds.write(f"{(codes.astype('<u4') + CHAR_BASE).tobytes().decode('utf-32-le')}\t{count}\n")
    return str(path)


def _backend(codebook_size: int, model_type: str, merged: list[tuple[str, float]], singles: dict[str, float]):
    """The `tokenizers.Tokenizer`: the K codes at ids 0..K-1, then the merged pieces. Codes SentencePiece never saw
    score below every piece (unigram), so they are used only where nothing else fits."""
    from tokenizers import Tokenizer, decoders

    floor = min([*singles.values(), *(score for _, score in merged)], default=0.0) - 10.0
    characters = [chr(CHAR_BASE + code) for code in range(codebook_size)]
    pieces = characters + [text for text, _ in merged]
    scores = [singles.get(c, floor) for c in characters] + [score for _, score in merged]
    backend = Tokenizer(tokenizers_model(pieces, scores, model_type))
    backend.decoder = decoders.Fuse()
    return backend


# --- the vocabulary ---------------------------------------------------------------------------------------------

class AudioBPE:
    """A trained audio-BPE vocabulary: codes <-> audio-BPE ids, exact for every stream."""

    def __init__(self, backend, codebook_size: int, model_type: str, info: dict | None = None):
        self.backend = backend
        self.codebook_size = check_codebook_size(codebook_size)
        self.model_type = check_model_type(model_type)
        self.info = dict(info or {})
        self.pieces = _pieces_of(backend, self.codebook_size)
        self.lengths = np.array([len(p) for p in self.pieces], dtype=np.int64)
        self._flat = np.array([c for p in self.pieces for c in p], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    @property
    def vocab_size(self) -> int:
        """K + the number of multi-code pieces."""
        return len(self.pieces)

    def __repr__(self) -> str:
        return f"AudioBPE({self.model_type}, codebook_size={self.codebook_size}, vocab_size={self.vocab_size})"

    def encode(self, codes) -> np.ndarray:
        """Audio-BPE ids (int64) of one code stream; refuses codes outside [0, K)."""
        text = codes_to_text(codes, self.codebook_size)
        return np.asarray(self.backend.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def encode_batch(self, streams: Sequence) -> list[np.ndarray]:
        """`encode` of each stream (in parallel, in `tokenizers`)."""
        texts = [codes_to_text(stream, self.codebook_size) for stream in streams]
        return [np.asarray(e.ids, dtype=np.int64) for e in self.backend.encode_batch(texts, add_special_tokens=False)]

    def encode_words(self, words: Sequence) -> list[np.ndarray]:
        """Word-aligned encoding: one id array per word's codes, so that no token spans a word boundary."""
        return self.encode_batch(words)

    def decode(self, ids) -> np.ndarray:
        """Codes (int64) of audio-BPE ids, vectorised; refuses ids outside [0, vocab_size)."""
        array = self.check_ids(ids)
        lengths = self.lengths[array]
        ends = np.cumsum(lengths)
        # position j of the output reads _flat[start of its token + (j - where that token's output begins)]
        total = int(ends[-1]) if ends.size else 0
        index = np.repeat(self._starts[array] - (ends - lengths), lengths) + np.arange(total)
        return self._flat[index]

    def check_ids(self, ids) -> np.ndarray:
        if hasattr(ids, "detach"):
            ids = ids.detach().cpu().numpy()
        array = np.asarray(ids)
        if array.size == 0:
            return np.zeros(0, dtype=np.int64)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise WavTokenizerError(f"audio-BPE ids must be a 1-D integer array, got shape {array.shape}, dtype "
                                    f"{array.dtype}")
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= self.vocab_size:
            raise WavTokenizerError(f"audio-BPE ids must lie in [0, {self.vocab_size}); got values in [{low}, {high}]")
        return array.astype(np.int64, copy=False)

    def token_names(self) -> list[str]:
        """Joint-vocabulary names, in id order (`<|a_k|>` for the K codes)."""
        return [token_name(piece) for piece in self.pieces]

    def check_codec(self, codebook_size: int, what: str = "codec") -> None:
        """Refuse a codec (or data, or tokenizer) with another codebook size."""
        if int(codebook_size) != self.codebook_size:
            raise WavTokenizerError(f"the audio BPE was trained on codes of a {self.codebook_size}-entry codebook but "
                                    f"the {what} has {codebook_size} codes: train an audio BPE for this codec")

    def hf_tokenizer(self):
        """The stand-alone `PreTrainedTokenizerFast` (input: `codes_to_text(codes, K)`)."""
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(self.backend.to_str()))

    def save(self, directory: str | Path) -> Path:
        """Write `tokenizer.json`, `tokenizer_config.json` and `audio_bpe.json` into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_tokenizer(self.hf_tokenizer(), directory)
        config = {"format": FORMAT, "version": VERSION, "codebook_size": self.codebook_size,
                  "model_type": self.model_type, "vocab_size": self.vocab_size, "char_base": CHAR_BASE,
                  "max_piece_length": int(self.lengths.max()), "training": self.info}
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "AudioBPE":
        """Read a directory written by `save`."""
        from tokenizers import Tokenizer

        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise WavTokenizerError(f"{directory} is not an audio BPE directory (no {CONFIG_NAME}); train one with "
                                    "lm.audio_bpe.train_audio_bpe")
        config = json.loads(config_path.read_text())
        if config.get("format") != FORMAT or config.get("version") != VERSION or config.get("char_base") != CHAR_BASE:
            raise WavTokenizerError(f"{config_path} is not a version-{VERSION} {FORMAT} file with character base "
                                    f"{CHAR_BASE:#x}")
        bpe = cls(Tokenizer.from_file(str(directory / "tokenizer.json")), config["codebook_size"], config["model_type"],
                  config.get("training"))
        if bpe.vocab_size != config["vocab_size"]:
            raise WavTokenizerError(f"{directory}: tokenizer.json has {bpe.vocab_size} tokens but {CONFIG_NAME} says "
                                    f"{config['vocab_size']}")
        return bpe


def load_audio_bpe(directory: str | Path, codebook_size: int | None = None) -> AudioBPE:
    """`AudioBPE.load`, refusing a vocabulary trained for another codebook size when one is given."""
    bpe = AudioBPE.load(directory)
    if codebook_size is not None:
        bpe.check_codec(codebook_size)
    return bpe


def _pieces_of(backend, codebook_size: int) -> list[tuple[int, ...]]:
    """Each id's codes, checking that ids 0..K-1 are the single codes and every piece is made of codes < K."""
    vocab = backend.get_vocab()
    if len(vocab) < codebook_size:
        raise WavTokenizerError(f"the audio BPE has {len(vocab)} tokens, fewer than the codebook size {codebook_size}")
    pieces: list[tuple[int, ...] | None] = [None] * len(vocab)
    for text, index in vocab.items():
        codes = text_to_codes(text)
        if codes.size == 0 or codes.min() < 0 or codes.max() >= codebook_size:
            raise WavTokenizerError(f"audio BPE token {index} is not made of codes below {codebook_size} (was it "
                                    "trained for another codebook size?)")
        pieces[index] = tuple(int(c) for c in codes)
    for code in range(codebook_size):
        if pieces[code] != (code,):
            raise WavTokenizerError(f"audio BPE id {code} should be the single code {code}")
    return pieces  # type: ignore[return-value]


# --- the joint text + audio vocabulary --------------------------------------------------------------------------

def add_audio_bpe_tokens(tokenizer, bpe: AudioBPE):
    """Append the multi-code pieces to a joint tokenizer that has the K code tokens `<|a_0|>`..`<|a_{K-1}|>` (as
    `lm.vocabulary` builds it), right after them, at consecutive ids. In place; returned."""
    layout = AudioTokenLayout.from_tokenizer(tokenizer)
    bpe.check_codec(layout.codebook_size, "tokenizer")
    if audio_bpe_size(tokenizer):
        raise WavTokenizerError("this tokenizer already has audio-BPE tokens")
    if layout.audio_offset + layout.codebook_size != len(tokenizer):
        raise WavTokenizerError("the audio-BPE tokens must follow the code tokens, but the tokenizer has tokens after "
                                f"{audio_token(layout.codebook_size - 1)}")
    from tokenizers import AddedToken

    tokenizer.add_tokens([AddedToken(name, special=False, normalized=False, single_word=False)
                          for name in bpe.token_names()[bpe.codebook_size:]])
    AudioBPELayout.from_tokenizer(tokenizer, bpe)  # asserts the layout
    return tokenizer


def joint_tokenizer(audio: AudioBPE | int, texts: Iterable[str] | None = None, text_vocab_size: int = 1024,
                    text_model: str = "bpe", durations: bool = True):
    """The joint vocabulary of `lm.vocabulary` (text, markers, durations, the K code tokens) with the audio BPE's
    pieces after the codes; `audio` is an AudioBPE, or a codebook size for plain codes. `text_model` picks the text
    side ("bpe": `tokenizers` byte-level BPE; "sp-unigram" / "sp-bpe": SentencePiece); no texts, no text side."""
    check_text_model(text_model)
    codebook_size = audio.codebook_size if isinstance(audio, AudioBPE) else check_codebook_size(audio)
    if texts is None or text_model == "bpe":
        tokenizer = build_joint_tokenizer(codebook_size, texts, text_vocab_size, durations)
    else:
        tokenizer = extend_tokenizer(text_tokenizer(texts, text_vocab_size, text_model), codebook_size, durations)
    return add_audio_bpe_tokens(tokenizer, audio) if isinstance(audio, AudioBPE) else tokenizer


def audio_bpe_size(tokenizer) -> int:
    """How many multi-code tokens follow the code tokens (0 for a plain-codes vocabulary)."""
    layout = AudioTokenLayout.from_tokenizer(tokenizer)
    start = layout.audio_offset + layout.codebook_size
    count = 0
    for name in tokenizer.convert_ids_to_tokens(list(range(start, len(tokenizer)))):
        if not (isinstance(name, str) and _MERGED_NAME.fullmatch(name)):
            break
        count += 1
    return count


@dataclass(frozen=True)
class AudioBPELayout:
    """Where the audio-BPE tokens sit in a joint tokenizer, and the codes <-> ids mapping of the LM side:
    `codes_to_ids` = `audio_offset` + `AudioBPE.encode`, `ids_to_codes` = `AudioBPE.decode` of `ids - audio_offset`
    (vectorised). Markers and durations as in `lm.vocabulary.AudioTokenLayout` (`base`)."""

    base: AudioTokenLayout
    bpe: AudioBPE

    @classmethod
    def from_tokenizer(cls, tokenizer, bpe: AudioBPE) -> "AudioBPELayout":
        """Checks that the tokenizer's audio tokens are exactly `bpe`'s, at consecutive ids; else a
        WavTokenizerError saying how they differ (an LM trained with another audio BPE, or with plain codes)."""
        base = AudioTokenLayout.from_tokenizer(tokenizer)
        bpe.check_codec(base.codebook_size, "tokenizer")
        found = audio_bpe_size(tokenizer)
        expected = bpe.vocab_size - bpe.codebook_size
        if found != expected:
            raise WavTokenizerError(f"the tokenizer's vocabulary does not match the audio BPE: it has {found} "
                                    f"multi-code audio tokens, the audio BPE {expected} (was the LM trained with "
                                    f"{'plain codes' if found == 0 else 'another audio BPE'}?)")
        start = base.audio_offset + bpe.codebook_size
        names = tokenizer.convert_ids_to_tokens(list(range(start, start + expected)))
        for index, (name, wanted) in enumerate(zip(names, bpe.token_names()[bpe.codebook_size:])):
            if name != wanted:
                raise WavTokenizerError(f"the tokenizer's vocabulary does not match the audio BPE: id {start + index} "
                                        f"is {name}, the audio BPE's token {bpe.codebook_size + index} is {wanted} "
                                        "(was the LM trained with another audio BPE?)")
        return cls(base, bpe)

    @property
    def audio_offset(self) -> int:
        return self.base.audio_offset

    @property
    def codebook_size(self) -> int:
        return self.bpe.codebook_size

    @property
    def audio_vocab_size(self) -> int:
        return self.bpe.vocab_size

    @property
    def vocab_size(self) -> int:
        return self.base.vocab_size

    def __getitem__(self, marker: str) -> int:
        return self.base[marker]

    def audio_ids(self) -> range:
        """All audio-token ids (codes and pieces)."""
        return range(self.audio_offset, self.audio_offset + self.audio_vocab_size)

    def frames_per_token(self) -> np.ndarray:
        """Codes (frames) each audio token decodes to, in `audio_ids()` order."""
        return self.bpe.lengths

    @property
    def marker_ids(self) -> dict[str, int]:
        return self.base.marker_ids

    @property
    def duration_offset(self) -> int | None:
        return self.base.duration_offset

    @property
    def num_durations(self) -> int:
        return self.base.num_durations

    def duration_id(self, seconds: float) -> int:
        return self.base.duration_id(seconds)

    def duration_ids(self) -> range:
        return self.base.duration_ids()

    def codes_to_ids(self, codes) -> np.ndarray:
        return self.bpe.encode(codes) + self.audio_offset

    def words_to_ids(self, words: Sequence) -> list[np.ndarray]:
        """Word-aligned: one id array per word, no token across a word boundary."""
        return [ids + self.audio_offset for ids in self.bpe.encode_words(words)]

    def is_audio(self, ids):
        return (ids >= self.audio_offset) & (ids < self.audio_offset + self.audio_vocab_size)

    def ids_to_codes(self, ids, drop_other: bool = False) -> np.ndarray:
        """Codes of joint-vocabulary ids. Ids that are not audio tokens raise, or are dropped when asked."""
        if hasattr(ids, "detach"):
            ids = ids.detach().cpu().numpy()
        array = np.asarray(ids, dtype=np.int64).reshape(-1)
        is_audio = self.is_audio(array)
        if drop_other:
            array = array[is_audio]
        elif not bool(is_audio.all()):
            raise WavTokenizerError("ids_to_codes got ids that are not audio tokens; pass drop_other=True to skip them")
        return self.bpe.decode(array - self.audio_offset)

    def check_codec(self, codebook_size: int, what: str = "codec") -> None:
        self.bpe.check_codec(codebook_size, what)

    def check_model(self, num_embeddings: int) -> None:
        """Refuse an LM whose embedding table cannot hold this vocabulary's audio tokens."""
        if num_embeddings < self.audio_offset + self.audio_vocab_size:
            raise WavTokenizerError(f"the LM has {num_embeddings} embeddings but the vocabulary's audio tokens reach "
                                    f"id {self.audio_offset + self.audio_vocab_size - 1}: the LM was trained with "
                                    "another vocabulary")


def audio_layout(tokenizer, bpe: AudioBPE | None = None) -> AudioTokenLayout | AudioBPELayout:
    """The tokenizer's audio layout: an `AudioBPELayout` with `bpe` (checked against the tokenizer), else the
    plain-codes `AudioTokenLayout`, refusing a tokenizer that has audio-BPE tokens (its BPE is needed to use them)."""
    if bpe is not None:
        return AudioBPELayout.from_tokenizer(tokenizer, bpe)
    merged = audio_bpe_size(tokenizer)
    if merged:
        raise WavTokenizerError(f"the tokenizer has {merged} audio-BPE tokens but no audio BPE was given: load it "
                                f"with the audio BPE it was built with (the {MODEL_SUBDIR!r} folder saved with the LM)")
    return AudioTokenLayout.from_tokenizer(tokenizer)


# --- measurement --------------------------------------------------------------------------------------------------

def compression(bpe: AudioBPE, streams: Iterable, frame_rate: float) -> dict[str, float]:
    """Codes, tokens, tokens per second of audio and codes per token over `streams`."""
    codes = tokens = 0
    for ids in _batched_encode(bpe, streams):
        codes += int(bpe.lengths[ids].sum())
        tokens += len(ids)
    seconds = codes / frame_rate
    return {"codes": codes, "tokens": tokens, "seconds": seconds,
            "tokens_per_second": tokens / seconds if seconds else float("nan"),
            "codes_per_token": codes / tokens if tokens else float("nan")}


def _batched_encode(bpe: AudioBPE, streams: Iterable, batch: int = 256) -> Iterator[np.ndarray]:
    pending = []
    for stream in streams:
        pending.append(stream)
        if len(pending) == batch:
            yield from bpe.encode_batch(pending)
            pending = []
    if pending:
        yield from bpe.encode_batch(pending)


def top_pieces(bpe: AudioBPE, ids: Iterable[np.ndarray], frame_rate: float, count: int = 20) -> list[dict]:
    """The most frequent multi-code tokens in encoded streams `ids`: name, occurrences, share of all tokens, codes
    and duration in milliseconds."""
    counts = np.zeros(bpe.vocab_size, dtype=np.int64)
    for stream in ids:
        counts += np.bincount(stream, minlength=bpe.vocab_size)
    total = max(int(counts.sum()), 1)
    merged = np.flatnonzero((bpe.lengths > 1) & (counts > 0))
    ranked = merged[np.argsort(-counts[merged], kind="stable")][:count]
    return [{"token": token_name(bpe.pieces[i]), "id": int(i), "count": int(counts[i]),
             "share": float(counts[i] / total), "codes": int(bpe.lengths[i]),
             "milliseconds": float(1000 * bpe.lengths[i] / frame_rate)} for i in ranked]


def bits_per_second(nats: float, seconds: float) -> float:
    """Held-out cross-entropy summed over an utterance set (nats), per second of its audio, in bits."""
    if seconds <= 0:
        raise WavTokenizerError(f"seconds must be positive, got {seconds}")
    return nats / np.log(2) / seconds


def compare_bits_per_second(raw: dict, bpe: dict, tolerance: float = 0.01) -> dict:
    """Raw codes vs audio BPE on the same held-out audio: each LM as {"nats": summed held-out nats, "seconds": audio
    seconds, "tokens": scored tokens (optional)}. Bits per *second* (not per token) is comparable across
    vocabularies; refuses two scores over different amounts of audio."""
    if abs(raw["seconds"] - bpe["seconds"]) > tolerance * max(raw["seconds"], bpe["seconds"]):
        raise WavTokenizerError(f"the two LMs were scored on different audio ({raw['seconds']:.1f} s vs "
                                f"{bpe['seconds']:.1f} s): score both on the same held-out utterances")
    out = {}
    for name, scores in (("raw", raw), ("bpe", bpe)):
        out[name] = {"bits_per_second": bits_per_second(scores["nats"], scores["seconds"])}
        if scores.get("tokens"):
            out[name]["tokens_per_second"] = scores["tokens"] / scores["seconds"]
    out["bpe_over_raw"] = out["bpe"]["bits_per_second"] / out["raw"]["bits_per_second"]
    return out
