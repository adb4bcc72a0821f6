"""Exact batched encode and decode on a stock `WavTokenizerModel`'s weights.

The stock model pads a batch and lets the padding leak into each item's last frames; `FastWavTokenizer` gives every
item of a padded batch what it gets alone, and is faster on CPU. One concept a module:
- `encoder_plan`: the encoder as typed steps (convolution, ELU, residual block, LSTM) that run padding-exactly and
  know their reach;
- `encoder`: tiling, latents, the nearest-code search and its precisions;
- `decoder`: the masked decoder (GroupNorm statistics, attention keys, iSTFT envelope per item), bf16 option;
- `fast_wavtokenizer`: the two halves in one object;
- `windowed`: fixed windows with context (approximate; the exact long-audio paths are in `long_audio.py`).
"""

from .decoder import DECODE_PRECISIONS, decode_autocast
from .encoder import PRECISIONS
from .encoder_plan import Conv
from .fast_wavtokenizer import FastWavTokenizer
from .windowed import decode_windowed, encode_windowed

__all__ = ["DECODE_PRECISIONS", "PRECISIONS", "Conv", "FastWavTokenizer", "decode_autocast", "decode_windowed",
           "encode_windowed"]
