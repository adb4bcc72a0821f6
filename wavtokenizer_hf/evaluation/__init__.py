"""Codec evaluation: spectral distances, PESQ, STOI, pitch, speaker similarity, MOS prediction, recogniser WER/CER
with its spread, codebook usage, and the provenance that makes two evaluations comparable."""

from .report import markdown_table
from .runner import (
    CodecReconstructor,
    Identity,
    LatentReconstructor,
    evaluate,
    merge_results,
    unique_codec_names,
    write_results,
)
from .test_set import TestSet, Utterance, load_test_set

__all__ = ["CodecReconstructor", "Identity", "LatentReconstructor", "TestSet", "Utterance", "evaluate",
           "load_test_set", "markdown_table", "merge_results", "unique_codec_names", "write_results"]
