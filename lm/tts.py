"""Deprecated name of `lm.tts_generation` (text -> codes with a TTS-LM); import from there. Kept so that existing
imports keep working."""

from .tts_generation import generate_codes, load_tts

__all__ = ["generate_codes", "load_tts"]
