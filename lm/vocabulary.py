"""A joint text + audio vocabulary as a standard Hugging Face fast tokenizer.

Layout: the text vocabulary's ids first, then the markers, then one duration token per `DURATION_STEP` seconds,
then the K audio tokens `<|a_0|>` ... `<|a_{K-1}|>` at consecutive ids. Codes become ids by adding the offset of
`<|a_0|>` (no strings involved); the strings are registered at exactly those ids so that `tokenizer.decode` shows
them, and `AudioTokenLayout.from_tokenizer` checks that they are consecutive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from wavtokenizer_hf.errors import WavTokenizerError

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
TEXT_START, TEXT_END = "<|text_start|>", "<|text_end|>"
AUDIO_START, AUDIO_END = "<|audio_start|>", "<|audio_end|>"
WORD_END = "<|space|>"  # closes one word's codes in the interleaved format (OuteTTS's name)
MARKERS = [BOS, EOS, PAD, TEXT_START, TEXT_END, AUDIO_START, AUDIO_END, WORD_END]
DURATION_STEP = 0.01  # seconds, as OuteTTS writes word durations
MAX_DURATION = 3.0  # longer words are clamped (espeak words last 0.1-1.2 s)


def audio_token(code: int) -> str:
    return f"<|a_{code}|>"


NUM_DURATIONS = int(round(MAX_DURATION / DURATION_STEP)) + 1


def duration_steps(seconds: float) -> int:
    """Index of the duration token of `seconds`: rounded to DURATION_STEP, clamped to [0, MAX_DURATION]."""
    return min(max(int(round(seconds / DURATION_STEP)), 0), NUM_DURATIONS - 1)


def duration_token(seconds: float) -> str:
    """The duration token of `seconds` as a string (`AudioTokenLayout.duration_id` gives its id)."""
    return f"<|t_{duration_steps(seconds) * DURATION_STEP:.2f}|>"


def duration_tokens() -> list[str]:
    return [duration_token(steps * DURATION_STEP) for steps in range(NUM_DURATIONS)]


@dataclass(frozen=True)
class AudioTokenLayout:
    """Where the audio tokens and markers sit in a tokenizer's id space."""

    audio_offset: int
    codebook_size: int
    vocab_size: int
    marker_ids: dict[str, int]
    duration_offset: int | None
    num_durations: int

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "AudioTokenLayout":
        vocab = tokenizer.get_vocab()
        if audio_token(0) not in vocab:
            raise WavTokenizerError(f"the tokenizer has no audio tokens ({audio_token(0)} is not in its vocabulary); "
                                    "build one with lm.build_joint_tokenizer or lm.extend_tokenizer")
        offset, size = vocab[audio_token(0)], 0
        while audio_token(size) in vocab:
            if vocab[audio_token(size)] != offset + size:
                raise WavTokenizerError(f"audio tokens are not consecutive: {audio_token(size)} has id "
                                        f"{vocab[audio_token(size)]}, expected {offset + size}")
            size += 1
        missing = [m for m in MARKERS if m not in vocab]
        if missing:
            raise WavTokenizerError(f"the tokenizer lacks the markers {missing}")
        durations = duration_tokens()
        duration_offset = vocab.get(durations[0])
        if duration_offset is not None and any(vocab.get(d) != duration_offset + i for i, d in enumerate(durations)):
            raise WavTokenizerError("duration tokens are not consecutive")
        return cls(offset, size, len(tokenizer), {m: vocab[m] for m in MARKERS}, duration_offset,
                   len(durations) if duration_offset is not None else 0)

    def __getitem__(self, marker: str) -> int:
        return self.marker_ids[marker]

    def codes_to_ids(self, codes: np.ndarray | torch.Tensor | Sequence[int]):
        """Vectorised: ids = offset + codes. Rejects codes outside [0, K)."""
        array = codes if isinstance(codes, (np.ndarray, torch.Tensor)) else np.asarray(codes, dtype=np.int64)
        if array.numel() if isinstance(array, torch.Tensor) else array.size:
            low, high = int(array.min()), int(array.max())
            if low < 0 or high >= self.codebook_size:
                raise WavTokenizerError(f"codes must lie in [0, {self.codebook_size}); got values in [{low}, {high}] "
                                        "(was the tokenizer built for another codec?)")
        return array.astype(np.int64) + self.audio_offset if isinstance(array, np.ndarray) else array.long() + self.audio_offset

    def ids_to_codes(self, ids: np.ndarray | torch.Tensor | Sequence[int], drop_other: bool = False):
        """Vectorised inverse of `codes_to_ids`. Ids that are not audio tokens raise, or are dropped when asked."""
        array = ids if isinstance(ids, (np.ndarray, torch.Tensor)) else np.asarray(ids, dtype=np.int64)
        is_audio = (array >= self.audio_offset) & (array < self.audio_offset + self.codebook_size)
        if drop_other:
            array = array[is_audio]
        elif not bool(is_audio.all()):
            raise WavTokenizerError("ids_to_codes got ids that are not audio tokens; pass drop_other=True to skip them")
        return array - self.audio_offset

    def is_audio(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= self.audio_offset) & (ids < self.audio_offset + self.codebook_size)

    @property
    def audio_vocab_size(self) -> int:
        """Audio tokens in the vocabulary: one per code here (an audio-BPE layout has more)."""
        return self.codebook_size

    def audio_ids(self) -> range:
        return range(self.audio_offset, self.audio_offset + self.codebook_size)

    def frames_per_token(self) -> np.ndarray:
        """Codes (frames) each audio token stands for, in `audio_ids()` order: one each here (an audio-BPE layout
        has longer pieces)."""
        return np.ones(self.codebook_size, dtype=np.int64)

    def words_to_ids(self, words: Sequence) -> list[np.ndarray]:
        """One id array per word's codes (as `AudioBPELayout.words_to_ids`, where no token spans two words)."""
        return [self.codes_to_ids(np.asarray(word, dtype=np.int64)) for word in words]

    def duration_id(self, seconds: float) -> int:
        if self.duration_offset is None:
            raise WavTokenizerError("this tokenizer has no duration tokens (built with durations=False)")
        return self.duration_offset + duration_steps(seconds)

    def duration_ids(self) -> range:
        return range(self.duration_offset or 0, (self.duration_offset or 0) + self.num_durations)

    def check_codec(self, codebook_size: int, what: str = "codec") -> None:
        if codebook_size != self.codebook_size:
            raise WavTokenizerError(f"the LM's vocabulary has {self.codebook_size} audio tokens but the {what} has "
                                    f"{codebook_size} codes: use the codec the LM was trained on")


def _add_audio_vocabulary(backend, codebook_size: int, durations: bool) -> None:
    """Append markers, duration tokens and audio tokens (in that order) to a `tokenizers.Tokenizer`."""
    from tokenizers import AddedToken

    backend.add_special_tokens([AddedToken(m, special=True, normalized=False) for m in MARKERS])
    extra = (duration_tokens() if durations else []) + [audio_token(code) for code in range(codebook_size)]
    backend.add_tokens([AddedToken(t, special=False, normalized=False, single_word=False) for t in extra])


def train_text_bpe(texts: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE text vocabulary trained with `tokenizers` (no unknown tokens, any text encodes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(texts, trainer=trainer)
    return backend


def build_joint_tokenizer(codebook_size: int, texts: Iterable[str] | None = None, text_vocab_size: int = 1024,
                          durations: bool = True):
    """A fast tokenizer with a BPE text vocabulary trained on `texts` (or none, for audio-only LMs) plus the markers
    and one token per codebook entry. Save it with `save_pretrained`; `AutoTokenizer` loads it back."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    if codebook_size < 1:
        raise WavTokenizerError(f"codebook_size must be positive, got {codebook_size}")
    backend = train_text_bpe(texts, text_vocab_size) if texts is not None else Tokenizer(models.WordLevel({}, unk_token=None))
    _add_audio_vocabulary(backend, codebook_size, durations)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    AudioTokenLayout.from_tokenizer(tokenizer)  # asserts the layout
    return tokenizer


def extend_tokenizer(tokenizer, codebook_size: int, durations: bool = True):
    """Add the markers, durations and audio tokens to an existing fast text tokenizer (in place; returned)."""
    if not getattr(tokenizer, "is_fast", False):
        raise WavTokenizerError("extend_tokenizer needs a fast (tokenizers-backed) tokenizer")
    if audio_token(0) in tokenizer.get_vocab():
        raise WavTokenizerError("this tokenizer already has audio tokens")
    tokenizer.add_special_tokens({"additional_special_tokens": MARKERS[3:]}, replace_extra_special_tokens=False)
    for name, marker in (("bos_token", BOS), ("eos_token", EOS), ("pad_token", PAD)):
        if getattr(tokenizer, name) is None:
            tokenizer.add_special_tokens({name: marker})
        elif marker not in tokenizer.get_vocab():
            tokenizer.add_tokens([marker], special_tokens=True)
    tokenizer.add_tokens((duration_tokens() if durations else []) + [audio_token(c) for c in range(codebook_size)])
    AudioTokenLayout.from_tokenizer(tokenizer)
    return tokenizer


def extend_text_lm(model, tokenizer, pad_to_multiple_of: int | None = None, text_vocab_size: int | None = None) -> int:
    """Grow (or trim) a text LM's embeddings and untied output head to the extended `tokenizer`; every row from
    `text_vocab_size` on is set to the mean of the rows below it. Returns how many rows were set.

    `text_vocab_size` is the tokenizer's length before `extend_tokenizer`: the rows of real text tokens. It is not the
    old row count: models often carry spare rows past their tokenizer (Pythia 50,304 for 50,277 tokens), which were
    never trained and now belong to new tokens. Without it, it is taken as the lowest id of the tokens
    `extend_tokenizer` adds (pass it when the text tokenizer already had one of them). The mean keeps the new tokens'
    initial logits at the average of the known ones, so fine-tuning starts from the text LM's loss scale."""
    rows = model.get_input_embeddings().weight.shape[0]
    boundary = text_vocab_size if text_vocab_size is not None else _first_added_id(tokenizer)
    if not 0 < boundary <= min(rows, len(tokenizer)):
        raise WavTokenizerError(f"text_vocab_size {boundary} must be in [1, {min(rows, len(tokenizer))}]: the model "
                                f"has {rows} embedding rows and the tokenizer {len(tokenizer)} tokens")
    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=pad_to_multiple_of, mean_resizing=False)
    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight
        embeddings[boundary:] = embeddings[:boundary].mean(dim=0, keepdim=True)
        head = model.get_output_embeddings()
        if head is not None and head.weight.data_ptr() != embeddings.data_ptr():
            head.weight[boundary:] = head.weight[:boundary].mean(dim=0, keepdim=True)
            if getattr(head, "bias", None) is not None:
                head.bias[boundary:] = head.bias[:boundary].mean()
    return embeddings.shape[0] - boundary


def _first_added_id(tokenizer) -> int:
    """The lowest id among the markers, durations and audio tokens (where `extend_tokenizer` starts adding)."""
    layout = AudioTokenLayout.from_tokenizer(tokenizer)
    ids = [*layout.marker_ids.values(), layout.audio_offset]
    return min(ids + ([layout.duration_offset] if layout.duration_offset is not None else []))


def token_text(tokenizer, token_id: int) -> str:
    """A text token as readable text, a leading space shown as '␣'."""
    text = tokenizer.decode([token_id])
    return "␣" + text[1:] if text.startswith(" ") else text
