"""Deprecated name of `lm.tts_sequences` (the TTS-LM sequence formats); import from there. Kept so that existing
imports keep working."""

from .tts_sequences import FORMATS, TTSFormatter, check_format, timed_words, word_code_spans

__all__ = ["FORMATS", "TTSFormatter", "check_format", "timed_words", "word_code_spans"]
