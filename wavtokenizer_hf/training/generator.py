"""The trainable codec: the stock `WavTokenizerModel`'s encoder, backbone and head plus the trainable quantiser.

All weights live in a stock `WavTokenizerModel`, so `save_pretrained` writes exactly what stock transformers loads,
and in eval mode the codes equal those of the exported model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import WavTokenizerConfig, WavTokenizerModel

from .vq import EMAQuantizer


@dataclass
class GeneratorOutput:
    audio_values: torch.Tensor  # (B, T')
    audio_codes: torch.Tensor  # (B, F)
    commit_loss: torch.Tensor
    latents: torch.Tensor  # (B, D, F) encoder output before quantisation
    quantized: torch.Tensor | None = None  # (B, D, F) what the decoder gets (straight-through in training)


class WavTokenizerGenerator(nn.Module):
    def __init__(self, config: WavTokenizerConfig, ema_decay: float = 0.99, dead_code_threshold: float = 2.0,
                 reseed_dead_codes: bool = True, model: WavTokenizerModel | None = None, dead_code_share: float = 0.0,
                 gradient: str = "straight_through"):
        super().__init__()
        self.model = model if model is not None else WavTokenizerModel(config)
        if model is None:  # a fresh codebook waits for k-means on training data
            self.model.encoder_model.quantizer.codebook.inited.fill_(0.0)
        self.quantizer = EMAQuantizer(self.model.encoder_model.quantizer.codebook, decay=ema_decay,
                                      dead_code_threshold=dead_code_threshold, reseed_dead_codes=reseed_dead_codes,
                                      dead_code_share=dead_code_share, gradient=gradient)
        self.num_conditions = config.adanorm_num_embeddings
        self.phone_head: nn.Module | None = None  # training only (training/phones.py); never exported
        self.whisper_head: nn.Module | None = None  # training only (training/whisper_teacher.py); never exported
        self.pitch_head: nn.Module | None = None  # training only (training/pitch_teacher.py); never exported

    @property
    def config(self) -> WavTokenizerConfig:
        return self.model.config

    def encode_latents(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) audio -> (B, D, F) latents."""
        return self.model.encoder_model.encoder(audio.unsqueeze(1))

    def decode_features(self, features: torch.Tensor, bandwidth_id: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.model.backbone(features, bandwidth_id))[:, 0]

    def forward(self, audio: torch.Tensor, bandwidth_id: torch.Tensor | None = None,
                update_codebook: bool | None = None, quantize: bool = True) -> GeneratorOutput:
        """Copy synthesis of (B, T) audio; in training one conditioning id is drawn per batch, as in the paper.

        `quantize=False` decodes the continuous latents (an optional autoencoder warm-up before k-means)."""
        if bandwidth_id is None:
            bandwidth_id = (torch.randint(0, self.num_conditions, (1,), device=audio.device) if self.training
                            else torch.zeros(1, dtype=torch.long, device=audio.device))
        latents = self.encode_latents(audio)
        if not quantize:
            audio_values = self.decode_features(latents, bandwidth_id)
            empty = torch.zeros(latents.shape[0], latents.shape[-1], dtype=torch.long, device=audio.device)
            return GeneratorOutput(audio_values[:, : audio.shape[-1]], empty, latents.new_zeros(()), latents)
        quantized = self.quantizer(latents, update=update_codebook)
        audio_values = self.decode_features(quantized.quantized, bandwidth_id)
        return GeneratorOutput(audio_values[:, : audio.shape[-1]], quantized.codes, quantized.commit_loss, latents,
                               quantized.quantized)
