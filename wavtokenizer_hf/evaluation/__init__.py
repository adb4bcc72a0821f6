"""Codec evaluation: spectral distances, PESQ, STOI, pitch, MOS prediction, recogniser WER/CER, codebook usage."""

from .runner import (
    CodecReconstructor,
    Identity,
    LatentReconstructor,
    evaluate,
    load_test_set,
    markdown_table,
    merge_results,
    unique_codec_names,
    write_results,
)

__all__ = ["CodecReconstructor", "Identity", "LatentReconstructor", "evaluate", "load_test_set", "markdown_table",
           "merge_results", "unique_codec_names", "write_results"]
