"""Exact batched decoding: every item of a padded batch gets the audio it gets alone (the stock model's audio).

Where the stock decoder lets padding leak into an item, and what this does instead:
- GroupNorms compute statistics over all frames: here over each item's valid frames only;
- the attention attends to padded frames: here a key mask keeps them out (fused `scaled_dot_product_attention`);
- convolutions zero-pad at the batch end: here padded frames are zeroed before every convolution;
- the iSTFT overlap-add and its window envelope run over all frames: here padded frames are zeroed and each item is
  divided by the envelope of its own frame count.
A batch without padding takes the native kernels, so it is what the stock model sees.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import WavTokenizerModel
from transformers.models.wavtokenizer.modeling_wavtokenizer import (
    WavTokenizerVocosAttention,
    WavTokenizerVocosResnetBlock,
)

from .exact import without_tf32

DECODE_PRECISIONS = ("fp32", "bf16")


def decode_autocast(device: torch.device, precision: str):
    """The context a decode runs in: fp32 without TF32 for "fp32" (exact), bf16 autocast of the decoder's
    convolutions, linears and attention for "bf16" (normalisation statistics, the head's exponent and the iSTFT stay
    fp32). Speed and quality against fp32: `benchmarks/bench_decode_precision.py`."""
    if precision not in DECODE_PRECISIONS:
        raise ValueError(f"decode precision {precision!r}; accepted: {', '.join(DECODE_PRECISIONS)}")
    if precision == "fp32":
        return without_tf32()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


def group_norm(x: torch.Tensor, mask: torch.Tensor | None, norm: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm whose statistics cover each item's valid frames only (`mask` (B, 1, F), None: all valid)."""
    if mask is None:  # nothing padded: the native kernel
        return norm(x)
    x = x.float()  # statistics in fp32 under a bf16 decode too
    batch, channels, frames = x.shape
    grouped = x.view(batch, norm.num_groups, -1, frames)
    m = mask.view(batch, 1, 1, frames)
    count = m.sum(dim=(2, 3), keepdim=True) * grouped.shape[2]
    mean = (grouped * m).sum(dim=(2, 3), keepdim=True) / count
    var = (((grouped - mean) * m) ** 2).sum(dim=(2, 3), keepdim=True) / count
    normed = ((grouped - mean) / torch.sqrt(var + norm.eps)).view(batch, channels, frames)
    return normed * norm.weight[None, :, None] + norm.bias[None, :, None]


def _resnet(x: torch.Tensor, mask: torch.Tensor | None, block: WavTokenizerVocosResnetBlock) -> torch.Tensor:
    h = group_norm(x, mask, block.norm1)
    h = block.conv1(_masked(F.silu(h), mask))
    h = group_norm(h, mask, block.norm2)
    h = block.conv2(_masked(F.silu(h), mask))
    return x + h


def _attention(x: torch.Tensor, mask: torch.Tensor | None, block: WavTokenizerVocosAttention) -> torch.Tensor:
    h = group_norm(x, mask, block.norm)
    # contiguous (B, 1, F, C): the fused kernels need it; unmasked, CPU then takes the flash kernel (no F x F matrix)
    q, k, v = (conv(h).transpose(1, 2)[:, None].contiguous() for conv in (block.q, block.k, block.v))
    key_mask = None if mask is None else mask.bool()[:, None]  # (B, 1, 1, F): padded frames never attended
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
    return x + block.proj_out(out[:, 0].transpose(1, 2))


def _unknown(layer: nn.Module) -> ValueError:
    return ValueError(f"unexpected decoder layer {type(layer).__name__}: the exact path does not know it")


def pos_net(model: WavTokenizerModel, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The decoder's positional network (ResNet blocks, attention, a final GroupNorm): its global part."""
    for layer in model.backbone.pos_net:
        if isinstance(layer, WavTokenizerVocosResnetBlock):
            x = _resnet(x, mask, layer)
        elif isinstance(layer, WavTokenizerVocosAttention):
            x = _attention(x, mask, layer)
        elif isinstance(layer, nn.GroupNorm):
            x = group_norm(x, mask, layer)
        else:
            raise _unknown(layer)
        x = _masked(x, mask)
    return x


def window_envelope(model: WavTokenizerModel, frames: int, device: torch.device) -> torch.Tensor:
    """The iSTFT's summed squared window over `frames` frames, trimmed like the audio (never below 1e-11)."""
    head = model.head
    window_sq = head.window.square().to(device)
    size = (frames - 1) * head.hop_length + head.n_fft
    env = F.fold(window_sq.expand(1, frames, -1).transpose(1, 2), output_size=(1, size),
                 kernel_size=(1, head.n_fft), stride=(1, head.hop_length)).squeeze()
    return env[head.padding: -head.padding].clamp(min=1e-11)


class ExactDecoder:
    """The decoding half of `FastWavTokenizer`."""

    def __init__(self, model: WavTokenizerModel):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.embed = model.encoder_model.quantizer.codebook.embed.detach()
        for layer in model.backbone.pos_net:  # refuse an unknown layer now, not at the first decode
            if not isinstance(layer, (WavTokenizerVocosResnetBlock, WavTokenizerVocosAttention, nn.GroupNorm)):
                raise _unknown(layer)

    def _pos_net(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return pos_net(self.model, x, mask)

    def _envelope(self, frames: int, device) -> torch.Tensor:
        return window_envelope(self.model, frames, device)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor, frames: torch.Tensor | None = None, bandwidth_id: int = 0,
               precision: str = "fp32") -> torch.Tensor:
        """(B, F) codes (padding anything) and frame counts -> (B, F * hop) audio; each item as decoded alone
        (samples past an item's `frames * hop` are zero). `precision`: "fp32" (exact) or "bf16" (see
        `decode_autocast`)."""
        codes = codes.to(self.device)
        batch, length = codes.shape
        if frames is None:
            frames = torch.full((batch,), length, dtype=torch.long)
        frames = frames.to(self.device)
        mask = (torch.arange(length, device=self.device)[None] < frames[:, None]).to(torch.float32)[:, None]  # (B,1,F)
        padded = bool((frames < length).any())
        if not padded:
            mask = None  # skip every masking step: this batch is what the stock model sees
        features = _masked(F.embedding(codes.clamp(min=0), self.embed).transpose(1, 2), mask)
        backbone, head = self.model.backbone, self.model.head
        condition = torch.tensor([bandwidth_id], device=self.device)
        with decode_autocast(self.device, precision):
            x = pos_net(self.model, _masked(backbone.embed(features), mask), mask)
            x = backbone.norm(x.transpose(1, 2), condition).transpose(1, 2)
            for block in backbone.convnext:
                x = block(_masked(x, mask), condition)
            hidden = backbone.final_layer_norm(x.transpose(1, 2))  # (B, F, C)
            spec = head.linear(hidden)
        magnitude, phase = spec.float().chunk(2, dim=-1)
        complex_spec = torch.polar(torch.exp(magnitude).clamp(max=1e2), phase)
        time_frames = torch.fft.irfft(complex_spec, head.n_fft, dim=-1, norm="backward").transpose(1, 2)
        time_frames = _masked(time_frames * head.window[None, :, None], mask)
        size = (length - 1) * head.hop_length + head.n_fft
        audio = F.fold(time_frames, output_size=(1, size), kernel_size=(1, head.n_fft),
                       stride=(1, head.hop_length))[:, 0, 0, head.padding: -head.padding]
        if not padded:
            return audio / self._envelope(length, self.device)
        envelopes = {n: self._envelope(n, self.device) for n in set(frames.tolist())}
        out = torch.zeros_like(audio)
        for i, n in enumerate(frames.tolist()):
            samples = n * head.hop_length
            out[i, :samples] = audio[i, :samples] / envelopes[n][:samples]
        return out

    def decode_list(self, code_sequences: list[torch.Tensor], precision: str = "fp32") -> list[torch.Tensor]:
        """Decode 1-D code sequences of any lengths as one padded batch; each result equals decoding it alone."""
        frames = torch.tensor([c.shape[-1] for c in code_sequences])
        batch = torch.zeros(len(code_sequences), int(frames.max()), dtype=torch.long)
        for i, c in enumerate(code_sequences):
            batch[i, : c.shape[-1]] = c
        audio = self.decode(batch, frames, precision=precision)
        hop = self.model.config.hop_length
        return [audio[i, : frames[i] * hop].cpu() for i in range(len(code_sequences))]
