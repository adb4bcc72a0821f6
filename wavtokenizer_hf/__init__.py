"""WavTokenizer as a Hugging Face audio tokenizer: conversion, tokenization, training and evaluation of the codec.

The layout and import rules: docs/architecture.md."""

from .codec import Codec
from .codes_file import CODES_SUFFIX, AudioCodes
from .convert import convert_original_checkpoint, export_original_checkpoint
from .errors import WavTokenizerError

__all__ = [
    "CODES_SUFFIX",
    "AudioCodes",
    "Codec",
    "WavTokenizerError",
    "convert_original_checkpoint",
    "export_original_checkpoint",
]
__version__ = "0.1.0"
