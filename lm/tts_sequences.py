"""TTS-LM sequences: the two formats that lay out text and codes on the joint vocabulary (`TTSFormatter`), used for
training examples (`lm.tts_training`) and generation prompts (`lm.tts_generation`).

plain (text, then audio; as Llasa):
    <|bos|><|text_start|> the text <|text_end|><|audio_start|> codes... <|audio_end|><|eos|>
interleaved (as OuteTTS: the whole text first, then each word followed by its duration and its codes):
    <|bos|><|text_start|> the text <|text_end|><|audio_start|>
        ␣the <|t_0.17|> codes... <|space|> ␣text <|t_0.31|> codes... <|audio_end|><|eos|>

With an audio BPE (`lm.audio_bpe`) the codes are its tokens, each one or more frames. In the interleaved format each
word's frames are encoded on their own (`words_to_ids`), so no audio token spans two words; a word's duration token
still counts its frames.

Only the audio part is scored (the loss mask): codes, durations, word ends, `<|audio_end|>` and `<|eos|>`. The
words repeated inside the audio part are not scored: generation writes them itself (it knows the text), so the model
needs no aligner at inference and cannot skip or repeat a word.
Words are lower-cased and stripped of punctuation (`normalize_words`); WER and CER are scored on Whisper's English
normalisation of the texts (`evaluation.asr`).
"""

from __future__ import annotations

import numpy as np

from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.errors import WavTokenizerError

from .audio_bpe import AudioBPE, AudioBPELayout, audio_layout
from .streams import Utterance
from .vocabulary import AUDIO_END, AUDIO_START, BOS, EOS, TEXT_END, TEXT_START, WORD_END, AudioTokenLayout

FORMATS = ("plain", "interleaved")


def check_format(name: str) -> str:
    """`name` if it is a known format, else a clear error."""
    if name not in FORMATS:
        raise WavTokenizerError(f"unknown TTS format {name!r}; accepted: {', '.join(FORMATS)}")
    return name


def timed_words(words: list[dict]) -> list[tuple[str, float]]:
    """(normalised word, end time) per corpus word; a token like "world--every" becomes two words sharing its end."""
    out = []
    for entry in words:
        for word in normalize_words(entry["word"]):
            out.append((word, float(entry["end"])))
    return out


def word_code_spans(ends: list[float], num_frames: int, frame_rate: float) -> list[tuple[int, int]]:
    """Frame span of each word: from the previous word's end to its own end (leading silence goes to the first word,
    trailing silence to the last); at least one frame each."""
    count = len(ends)
    if num_frames < count:
        raise WavTokenizerError(f"{num_frames} frames cannot hold {count} words")
    spans, start = [], 0
    for index, end in enumerate(ends):
        stop = num_frames if index == count - 1 else int(round(end * frame_rate))
        stop = min(max(stop, start + 1), num_frames - (count - 1 - index))
        spans.append((start, stop))
        start = stop
    return spans


class TTSFormatter:
    """Turns (words, codes) into training utterances and text into generation prompts; with `audio_bpe`, the
    audio tokens are that audio BPE's (the tokenizer must hold exactly its pieces, `lm.audio_bpe.audio_layout`)."""

    def __init__(self, tokenizer, fmt: str = "interleaved", audio_bpe: AudioBPE | None = None,
                 block_size: int | None = None):
        self.tokenizer = tokenizer
        self.block_size = block_size  # the block the LM was trained on: generation stays within it
        self.layout: AudioTokenLayout | AudioBPELayout = audio_layout(tokenizer, audio_bpe)
        self.format = check_format(fmt)
        if self.format == "interleaved" and self.layout.duration_offset is None:
            raise WavTokenizerError("the interleaved format needs duration tokens; build the tokenizer with durations")

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def word_ids(self, word: str) -> list[int]:
        # with the leading space, a word has the same tokens as inside the text section
        return self.text_ids(" " + word)

    def prompt(self, words: list[str]) -> list[int]:
        """Everything up to and including `<|audio_start|>`."""
        if not words:
            raise WavTokenizerError("the text has no words to speak (letters a-z are needed)")
        m = self.layout
        return [m[BOS], m[TEXT_START], *self.text_ids(" ".join(words)), m[TEXT_END], m[AUDIO_START]]

    def example(self, uid: str, words: list[dict], codes: np.ndarray, frame_rate: float) -> Utterance:
        """A training utterance from corpus word timings and the utterance's codes."""
        m = self.layout
        timed = timed_words(words)
        if not timed:
            raise WavTokenizerError(f"{uid}: no words")
        prompt = self.prompt([w for w, _ in timed])
        ids, scored = list(prompt), [False] * len(prompt)
        if self.format == "plain":
            audio = m.codes_to_ids(codes).tolist() + [m[AUDIO_END], m[EOS]]
            ids += audio
            scored += [True] * len(audio)
        else:
            spans = word_code_spans([end for _, end in timed], len(codes), frame_rate)
            per_word = m.words_to_ids([codes[start:stop] for start, stop in spans])  # no token across two words
            for index, ((word, _), (start, stop), tokens) in enumerate(zip(timed, spans, per_word)):
                word_ids = self.word_ids(word)
                closing = m[AUDIO_END] if index == len(timed) - 1 else m[WORD_END]
                audio = [m.duration_id((stop - start) / frame_rate), *tokens.tolist(), closing]
                ids += word_ids + audio
                scored += [False] * len(word_ids) + [True] * len(audio)
            ids.append(m[EOS])
            scored.append(True)
        return Utterance(uid, np.asarray(ids, dtype=np.int64), np.asarray(scored), seconds=len(codes) / frame_rate,
                         prompt=len(prompt))
