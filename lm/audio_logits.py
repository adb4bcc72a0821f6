"""Constrained decoding for stock `model.generate` on the plain TTS format (`lm.tts_sequences`): once a sequence is
inside its audio part (its last `<|audio_start|>` comes after its last `<|audio_end|>`, as in a prompt that ends with
`<|audio_start|>`), only audio tokens and `<|audio_end|>` may follow; every other logit is -inf.

  processor = plain_audio_processor(tokenizer)
  model.generate(prompt_ids, logits_processor=[processor], eos_token_id=processor.end_id, ...)

The interleaved format writes each word's text inside the audio part: `InterleavedLogitsProcessor` follows the plan
of `lm.tts_plan` (the word's text and closing token forced, its duration and audio tokens sampled within their
budgets), and `lm.tts_generation.interleaved_generation` builds the prompt and processor for a text:

  prompt, processor = interleaved_generation(model, formatter, "Hello world.", codec.frame_rate)
  out = model.generate(torch.tensor([prompt]), logits_processor=[processor], eos_token_id=processor.eos_id, ...)
  codes = formatter.layout.ids_to_codes(np.asarray(processor.plan.audio))
"""

from __future__ import annotations

from typing import Iterable

import torch
from transformers import LogitsProcessor

from wavtokenizer_hf.errors import WavTokenizerError

from .audio_bpe import AudioBPE, audio_layout
from .tts_plan import InterleavedPlan
from .vocabulary import AUDIO_END, AUDIO_START, EOS


class AudioOnlyLogitsProcessor(LogitsProcessor):
    """Inside the audio part (after `start_id`, before `end_id`), every id but `allowed_ids` gets -inf."""

    def __init__(self, allowed_ids: Iterable[int], start_id: int, end_id: int):
        self.allowed_ids = sorted({int(i) for i in allowed_ids})
        if not self.allowed_ids or self.allowed_ids[0] < 0:
            raise WavTokenizerError("AudioOnlyLogitsProcessor needs non-negative allowed token ids")
        self.start_id, self.end_id = int(start_id), int(end_id)
        self._mask: torch.Tensor | None = None

    def _allowed(self, vocab_size: int, device: torch.device) -> torch.Tensor:
        """Boolean mask over the logits' ids: True where allowed (built once per size and device)."""
        if self._mask is None or self._mask.shape[0] != vocab_size or self._mask.device != device:
            if self.allowed_ids[-1] >= vocab_size:
                raise WavTokenizerError(f"allowed id {self.allowed_ids[-1]} is past the model's {vocab_size} logits")
            mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
            mask[torch.tensor(self.allowed_ids, device=device)] = True
            self._mask = mask
        return self._mask

    def in_audio(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """Per row: whether its last `start_id` comes after its last `end_id` (neither: False)."""
        positions = torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)
        last_start = torch.where(input_ids == self.start_id, positions, -1).amax(dim=-1)
        last_end = torch.where(input_ids == self.end_id, positions, -1).amax(dim=-1)
        return last_start > last_end

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        blocked = self.in_audio(input_ids)[:, None] & ~self._allowed(scores.shape[-1], scores.device)[None]
        return scores.masked_fill(blocked, float("-inf"))


def plain_audio_processor(tokenizer, audio_bpe: AudioBPE | None = None) -> AudioOnlyLogitsProcessor:
    """The processor for a joint tokenizer's plain format: its audio tokens (an audio BPE's pieces too) and
    `<|audio_end|>` allowed after `<|audio_start|>`."""
    layout = audio_layout(tokenizer, audio_bpe)
    return AudioOnlyLogitsProcessor([*layout.audio_ids(), layout[AUDIO_END]], layout[AUDIO_START], layout[AUDIO_END])


class InterleavedLogitsProcessor(LogitsProcessor):
    """For stock `generate` on the interleaved format, one sequence at a time: every id the plan does not allow next
    gets -inf; after the last word's `<|audio_end|>`, only `<|eos|>` (`eos_id`) may follow, as in training."""

    def __init__(self, plan: InterleavedPlan, prompt_length: int):
        self.plan, self.seen = plan, int(prompt_length)
        self.eos_id = plan.layout[EOS]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != 1:
            raise WavTokenizerError(f"InterleavedLogitsProcessor follows one sequence, got a batch of "
                                    f"{input_ids.shape[0]} (generate one text at a time, num_return_sequences=1)")
        for token in input_ids[0, self.seen:].tolist():  # what generate drew since the last call
            self.plan.push(token)
        self.seen = input_ids.shape[1]
        expected = self.plan.expected()
        allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        if expected is None:
            allowed[self.eos_id] = True
        elif isinstance(expected, int):
            allowed[expected] = True
        else:
            allowed[: expected.numel()] = expected[: scores.shape[-1]].to(scores.device)
        return scores.masked_fill(~allowed[None], float("-inf"))
