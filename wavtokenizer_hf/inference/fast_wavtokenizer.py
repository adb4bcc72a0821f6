"""`FastWavTokenizer`: exact batched encode (`encoder.py`) and decode (`decoder.py`) on a stock model's weights."""

from __future__ import annotations

from transformers import WavTokenizerModel

from .decoder import ExactDecoder
from .encoder import ExactEncoder


class FastWavTokenizer(ExactEncoder, ExactDecoder):
    """Batched, padding-exact `encode` / `decode` using the weights of a stock `WavTokenizerModel`; weight norm is
    folded once at construction instead of on every call, and nothing about the checkpoint changes."""

    def __init__(self, model: WavTokenizerModel, tile_seconds: float | None | str = "auto"):
        ExactEncoder.__init__(self, model, tile_seconds)
        ExactDecoder.__init__(self, model)
        self.config = model.config
        self.hop_length = model.config.hop_length
