"""Exact batched encoding: every item of a padded batch gets the codes it gets alone (the stock model's codes).

Speed on CPU: the encoder's convolutions stream activations many times the size of the CPU caches (32 channels at
24 kHz), so they run memory-bound and slow down as clips or batches grow, while its LSTM runs faster on a batch than
on one sequence. On CPU the convolutions therefore run item by item in tiles of a few seconds, each tile with enough
real audio on both sides for its kept frames' receptive field (`halo_frames`, from the steps' reach), so the kept
frames are the whole-clip values; the LSTM then runs once over the whole batch.
"""

from __future__ import annotations

import contextlib
import math

import torch
from transformers import WavTokenizerModel

from ..codebook import nearest_codes, search_terms
from . import encoder_plan
from .encoder_plan import Conv, Lstm, Step
from .exact import without_tf32

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "bf16-all": torch.bfloat16,
              "fp16-all": torch.float16}


def check_exact_path_supports(model: WavTokenizerModel) -> None:
    config = model.config
    if config.use_causal_conv or config.pad_mode != "reflect" or config.norm_type != "weight_norm":
        raise ValueError("FastWavTokenizer supports the WavTokenizer encoder (non-causal, reflect, weight norm)")


class ExactEncoder:
    """The encoding half of `FastWavTokenizer`."""

    def __init__(self, model: WavTokenizerModel, tile_seconds: float | None | str = "auto"):
        """`tile_seconds`: length of the encoder's convolution tiles; "auto" tiles 2.5 s on CPU and runs whole
        batches on GPU; None never tiles. Codes are the same either way."""
        check_exact_path_supports(model)
        config = model.config
        self.device = next(model.parameters()).device
        self.encoder_plan: list[Step] = encoder_plan.plan_encoder(model.encoder_model.encoder.layers)
        lstm = next(i for i, step in enumerate(self.encoder_plan) if isinstance(step, Lstm))
        self.conv_plan, self.recurrent_plan = self.encoder_plan[:lstm], self.encoder_plan[lstm:]
        self.conv_stride = math.prod(step.stride for step in self.conv_plan if isinstance(step, Conv))
        self.halo_frames = self._halo_frames()
        if tile_seconds == "auto":
            tile_seconds = 2.5 if self.device.type == "cpu" else None
        if tile_seconds is not None and (isinstance(tile_seconds, (str, bool)) or not tile_seconds > 0):
            raise ValueError(f"tile_seconds must be a positive number of seconds, None or 'auto', got {tile_seconds!r}")
        self.tile_frames = (None if tile_seconds is None
                            else max(1, round(tile_seconds * config.sampling_rate / self.conv_stride)))
        self.embed = model.encoder_model.quantizer.codebook.embed.detach()
        self.embed_t, self.embed_sq = search_terms(self.embed)

    def _halo_frames(self) -> int:
        """Frames of real audio a tile needs on each side so that its kept frames equal the whole-clip ones."""
        first, last = encoder_plan.reach(self.conv_plan, 0, 0)  # what LSTM-input frame 0 reads
        # one frame more than the reach: frames next to a tile's edge also depend on its padding's length
        return math.ceil(max(-first, last) / self.conv_stride) + 1

    def conv_frame_count(self, length: int) -> int:
        """Frames the convolutions make of `length` samples."""
        return encoder_plan.output_length(self.conv_plan, length)

    @staticmethod
    def _run(x: torch.Tensor, lengths: torch.Tensor, plan: list[Step]) -> tuple[torch.Tensor, torch.Tensor]:
        return encoder_plan.run(plan, x, lengths)

    def conv_frames_of(self, waveform: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """LSTM inputs (D, last - first) of frames first..last-1 of a 1-D waveform, from the audio around them
        (`halo_frames` each side): exactly the whole-clip values."""
        stride, halo = self.conv_stride, self.halo_frames
        start, end = max(0, first - halo) * stride, min(waveform.shape[-1], (last + halo) * stride)
        span = torch.tensor([end - start], device=waveform.device)
        out = encoder_plan.run(self.conv_plan, waveform[None, None, start:end], span)[0][0]
        offset = first - start // stride
        return out[:, offset: offset + last - first]

    def _tiled_convs(self, waveform: torch.Tensor) -> torch.Tensor:
        """(T,) audio -> (D, F) LSTM inputs, computed tile by tile (tiles start on frame boundaries)."""
        length, tile = waveform.shape[-1], self.tile_frames
        total = self.conv_frame_count(length)
        if total <= tile + 2 * self.halo_frames:
            lengths = torch.tensor([length], device=waveform.device)
            return encoder_plan.run(self.conv_plan, waveform[None, None], lengths)[0][0]
        return torch.cat([self.conv_frames_of(waveform, first, min(total, first + tile))
                          for first in range(0, total, tile)], dim=-1)

    @torch.inference_mode()
    def encode_latents(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) right-padded audio and valid lengths -> (B, D, F) latents and frame counts."""
        lengths = lengths.to(audio.device).long()
        if self.tile_frames is None:
            x, frames = encoder_plan.run(self.conv_plan, audio.unsqueeze(1), lengths)
        else:
            items = [self._tiled_convs(audio[i, :n]) for i, n in enumerate(lengths.tolist())]
            frames = torch.tensor([item.shape[-1] for item in items], device=audio.device)
            x = audio.new_zeros(len(items), items[0].shape[0], int(frames.max()), dtype=items[0].dtype)
            for i, item in enumerate(items):
                x[i, :, : item.shape[-1]] = item
        return encoder_plan.run(self.recurrent_plan, x, frames)

    def codes_of(self, latents: torch.Tensor) -> torch.Tensor:
        """(frames, D) latents -> (frames,) codes, searched in fp32."""
        return nearest_codes(latents.float(), self.embed_t, self.embed_sq)

    @torch.inference_mode()
    def encode(self, audio: torch.Tensor, lengths: torch.Tensor | None = None,
               precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) padded audio -> codes (B, F) and frame counts (B,); frames past an item's count are -1.

        `precision`: "fp32" (exact); "bf16"/"fp16" run the encoder under autocast and the nearest-code search in
        fp32; "bf16-all"/"fp16-all" also search in low precision, as a model cast to that dtype does (see
        BENCHMARKS.md for the measured code agreement of each)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
        audio = audio.to(self.device, torch.float32)
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[-1], dtype=torch.long)
        low = PRECISIONS[precision]
        exact = without_tf32() if low is None else contextlib.nullcontext()
        with exact, torch.autocast(self.device.type, dtype=low or torch.bfloat16, enabled=low is not None):
            latents, frames = self.encode_latents(audio, lengths)
        flat = latents.permute(0, 2, 1).reshape(-1, latents.shape[1])
        if precision.endswith("-all"):  # the distance arithmetic itself in low precision
            codes = nearest_codes(flat.to(low), self.embed_t.to(low), self.embed_sq.to(low))
        else:
            codes = self.codes_of(flat)
        codes = codes.view(latents.shape[0], -1)
        valid = torch.arange(codes.shape[1], device=codes.device)[None] < frames[:, None]
        return codes.masked_fill(~valid, -1), frames

    def encode_list(self, waveforms: list[torch.Tensor], precision: str = "fp32") -> list[torch.Tensor]:
        """Encode 1-D waveforms of any lengths as one padded batch; each result equals encoding it alone."""
        lengths = torch.tensor([w.shape[-1] for w in waveforms])
        batch = torch.zeros(len(waveforms), int(lengths.max()))
        for i, w in enumerate(waveforms):
            batch[i, : w.shape[-1]] = w
        codes, frames = self.encode(batch, lengths, precision)
        return [codes[i, : frames[i]].cpu() for i in range(len(waveforms))]
