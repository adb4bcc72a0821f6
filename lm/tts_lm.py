"""Deprecated name of `lm.tts_training` (TTS-LM training and evaluation); import from there. Kept so that existing
imports keep working."""

from .tts_training import (conditioning_pairs, evaluate_tts, finetune_tts, make_tokenizer_and_model,
                           text_conditioning, tts_utterances)

__all__ = ["conditioning_pairs", "evaluate_tts", "finetune_tts", "make_tokenizer_and_model", "text_conditioning",
           "tts_utterances"]
