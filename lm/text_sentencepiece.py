"""SentencePiece vocabularies in `tokenizers` form: training, the conversion to a `tokenizers` model, and a
SentencePiece text side for the joint text + audio vocabulary.

SentencePiece only trains here. Each model is converted to a `tokenizers.Tokenizer` (Unigram with SentencePiece's
scores, or BPE with merges derived from SentencePiece's piece order), and that converted tokenizer is what encodes,
so the ids used for training are exactly those of the saved `tokenizer.json` that stock `AutoTokenizer` loads, and
nothing needs `sentencepiece` at load time. `lm.audio_bpe` uses the same helpers on code streams.

Text models (`text_tokenizer(texts, kind=...)`):
  bpe         byte-level BPE trained with `tokenizers` (`lm.vocabulary.train_text_bpe`, the default)
  sp-unigram  SentencePiece unigram, byte fallback (any text encodes), no normalisation (decoding is lossless)
  sp-bpe      SentencePiece BPE, likewise
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from wavtokenizer_hf.errors import WavTokenizerError

SP_MODEL_TYPES = ("bpe", "unigram")
TEXT_MODELS = ("bpe", "sp-unigram", "sp-bpe")
UNK = "<unk>"
METASPACE = "\u2581"  # SentencePiece's visible space


@dataclass(frozen=True)
class Piece:
    """One SentencePiece vocabulary entry: its text, score and kind ("normal", "byte", "unknown" or "control")."""

    text: str
    score: float
    kind: str


def check_model_type(model_type: str) -> str:
    if model_type not in SP_MODEL_TYPES:
        raise WavTokenizerError(f"unknown SentencePiece model type {model_type!r}; accepted: "
                                f"{', '.join(SP_MODEL_TYPES)}")
    return model_type


def train_sentencepiece(sentences: Iterable[str], vocab_size: int, model_type: str, **options) -> list[Piece]:
    """Train SentencePiece on `sentences` (an iterator is consumed once) and return its pieces in id order.

    `options` are SentencePiece trainer flags (e.g. `byte_fallback=True`); `bos`/`eos` are off (the joint
    vocabulary has its own markers) and `<unk>` is id 0. Raises WavTokenizerError on SentencePiece's refusals
    (too little data for the vocabulary size, ...)."""
    return read_pieces(train_sentencepiece_model(sentences, vocab_size, model_type, **options))


def train_sentencepiece_model(sentences: Iterable[str], vocab_size: int, model_type: str, **options) -> bytes:
    """`train_sentencepiece`, returning the serialised SentencePiece model."""
    import sentencepiece as spm

    check_model_type(model_type)
    settings = dict(model_type=model_type, vocab_size=vocab_size, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                    unk_piece=UNK, minloglevel=2, num_threads=1)
    settings.update(options)
    stream = iter(sentences)
    try:
        first = next(stream)
    except StopIteration:
        raise WavTokenizerError("no training data for SentencePiece (the iterable was empty)") from None
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=_chain(first, stream), model_writer=model, **settings)
    except RuntimeError as err:
        raise WavTokenizerError(f"SentencePiece could not train a {model_type} model of {vocab_size} pieces: "
                                f"{str(err).strip()}") from None
    return model.getvalue()


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def read_pieces(model_proto: bytes) -> list[Piece]:
    """The pieces of a serialised SentencePiece model, in id order."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=model_proto)
    pieces = []
    for index in range(processor.get_piece_size()):
        kind = ("unknown" if processor.is_unknown(index) else "control" if processor.is_control(index)
                else "byte" if processor.is_byte(index) else "normal")
        pieces.append(Piece(processor.id_to_piece(index), float(processor.get_score(index)), kind))
    return pieces


def bpe_merges(pieces: Sequence[str], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Merges for a `tokenizers` BPE that segments as SentencePiece's BPE does.

    SentencePiece's BPE repeatedly joins the adjacent pair whose concatenation is the highest-ranked piece, whichever
    two pieces it is made of; so every split of every multi-character piece into two vocabulary pieces is a merge,
    ranked by the piece's position in `pieces` (earlier = merged first)."""
    merges = []
    for rank, piece in enumerate(pieces):
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                merges.append((rank, vocab[left], vocab[right], left, right))
    merges.sort(key=lambda merge: merge[:3])
    return [(left, right) for *_, left, right in merges]


def tokenizers_model(pieces: Sequence[str], scores: Sequence[float], model_type: str, unk_token: str | None = None,
                     byte_fallback: bool = False):
    """A `tokenizers` model with `pieces` at ids 0..n-1: Unigram with `scores`, or BPE with `bpe_merges`."""
    from tokenizers import models

    check_model_type(model_type)
    if model_type == "unigram":
        unk_id = pieces.index(unk_token) if unk_token is not None else None
        return models.Unigram(list(zip(pieces, scores)), unk_id=unk_id, byte_fallback=byte_fallback)
    vocab = {piece: index for index, piece in enumerate(pieces)}
    return models.BPE(vocab=vocab, merges=bpe_merges(pieces, vocab), unk_token=unk_token, byte_fallback=byte_fallback)


def train_text_sentencepiece(texts: Iterable[str], vocab_size: int = 1024, model_type: str = "unigram",
                             max_sentences: int = 1_000_000):
    """A SentencePiece text vocabulary as a `tokenizers.Tokenizer`: words start with `▁` (so " word" encodes as
    inside a sentence), unknown characters fall back to bytes, decoding returns the text.

    At most `max_sentences` texts are kept for training (a random sample: memory stays bounded). The vocabulary
    may come out smaller than `vocab_size` when the texts hold fewer pieces."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers

    pieces = train_sentencepiece(
        texts, vocab_size, model_type, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, character_coverage=0.9995,
        input_sentence_size=max_sentences, shuffle_input_sentence=True, max_sentence_length=1 << 15,
        hard_vocab_limit=False)
    normal = [p.score for p in pieces if p.kind == "normal"]
    floor = min(normal, default=0.0) - 10.0  # byte pieces are fallbacks, never preferred as literal text
    scores = [p.score if p.kind == "normal" else floor for p in pieces]
    backend = Tokenizer(tokenizers_model([p.text for p in pieces], scores, model_type, UNK, byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    backend.decoder = decoders.Sequence([decoders.Replace(METASPACE, " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    return backend


def check_text_model(kind: str) -> str:
    if kind not in TEXT_MODELS:
        raise WavTokenizerError(f"unknown text model {kind!r}; accepted: {', '.join(TEXT_MODELS)}")
    return kind


def text_tokenizer(texts: Iterable[str], vocab_size: int = 1024, kind: str = "bpe"):
    """A text-only fast tokenizer (`PreTrainedTokenizerFast`) of `kind` (see TEXT_MODELS), ready for
    `lm.vocabulary.extend_tokenizer`."""
    from transformers import PreTrainedTokenizerFast

    from .vocabulary import train_text_bpe

    check_text_model(kind)
    if kind == "bpe":
        backend = train_text_bpe(texts, vocab_size)
    else:
        backend = train_text_sentencepiece(texts, vocab_size, kind.removeprefix("sp-"))
    return PreTrainedTokenizerFast(tokenizer_object=backend)
