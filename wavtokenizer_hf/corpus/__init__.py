"""The offline corpus: synthetic speech with word/phone timings and non-speech audio, as a `datasets` dataset."""

from .builder import build_corpus, plan_corpus, read_audio_column

__all__ = ["build_corpus", "plan_corpus", "read_audio_column"]
