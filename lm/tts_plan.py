"""What the interleaved TTS format lets come next while a TTS-LM speaks a text: the rules of generation, kept in one
place for both our cached sampler (`lm.tts_generation`) and stock `model.generate` (`lm.audio_logits`).

Per word: its text (forced), one duration token (sampled), audio tokens (sampled) until they hold the frames that
duration gives, within the budgets, then `<|word_end|>`, or `<|audio_end|>` after the last word (forced). A word's
frames are capped so that every later word keeps at least one frame of the budget and, with a token budget, one
token; and at MAX_DURATION. With an audio BPE only tokens that fit in the word's frames left are allowed.
"""

from __future__ import annotations

import torch

from wavtokenizer_hf.errors import WavTokenizerError

from .sampling import id_mask
from .vocabulary import AUDIO_END, DURATION_STEP, MAX_DURATION, WORD_END


class InterleavedPlan:
    """`expected()` says what may come next, `push(token)` records what came; `audio` holds the audio ids so far."""

    def __init__(self, word_ids: list[list[int]], layout, frames: torch.Tensor, budget: int, frame_rate: float,
                 tokens_left: int | None = None):
        if not word_ids:
            raise WavTokenizerError("the text has no words to speak")
        self.word_ids, self.layout, self.frames = word_ids, layout, frames
        self.budget, self.frame_rate, self.tokens_left = budget, frame_rate, tokens_left
        self.durations = id_mask(frames.numel(), layout.duration_ids())
        self.audio: list[int] = []
        self.used = 0  # frames of every word so far
        self.word = 0
        self._start_word()

    def _start_word(self) -> None:
        self.queue = list(self.word_ids[self.word])  # the word's text, still to come
        self.limit, self.token_limit = 0, None  # the word's frames and audio tokens, set by its duration
        self.word_frames = self.word_tokens = 0
        self.state = "text" if self.queue else "duration"

    @property
    def closing(self) -> int:
        return self.layout[AUDIO_END] if self.word == len(self.word_ids) - 1 else self.layout[WORD_END]

    def expected(self) -> int | torch.Tensor | None:
        """The id that must come next (a word's text, its closing token), the mask of the ids that may (a duration,
        an audio token), or None once the last word is closed."""
        if self.state == "text":
            return self.queue[0]
        if self.state == "duration":
            return self.durations
        if self.state == "audio":
            room = self.limit - self.word_frames
            if room > 0 and (self.token_limit is None or self.word_tokens < self.token_limit):
                return (self.frames > 0) & (self.frames <= room)
            return self.closing
        return None

    def push(self, token: int) -> None:
        expected = self.expected()
        if expected is None:
            raise WavTokenizerError(f"token {token} after the last word was closed")
        if isinstance(expected, int):
            if token != expected:
                raise WavTokenizerError(f"token {token} where the interleaved format has {expected}")
            if self.state == "text":
                self.queue.pop(0)
                self.state = "text" if self.queue else "duration"
            else:  # the word's closing token
                self.word += 1
                if self.word == len(self.word_ids):
                    self.state = "done"
                else:
                    self._start_word()
            return
        if not (0 <= token < expected.numel() and bool(expected[token])):
            raise WavTokenizerError(f"token {token} is not allowed in the word's {self.state} here")
        if self.state == "duration":
            later = len(self.word_ids) - 1 - self.word
            steps = token - self.layout.duration_ids().start
            limit = min(int(MAX_DURATION * self.frame_rate), self.budget - self.used - later)
            self.limit = min(limit, max(1, int(round(steps * DURATION_STEP * self.frame_rate))))
            self.token_limit = None if self.tokens_left is None else self.tokens_left - len(self.audio) - later
            self.state = "audio"
        else:
            frames = int(self.frames[token])
            self.audio.append(token)
            self.word_frames += frames
            self.word_tokens += 1
            self.used += frames
