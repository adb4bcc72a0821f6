"""Exact batched encode and decode on a stock `WavTokenizerModel`'s weights.

The stock model pads a batch and lets the padding leak into each item's last frames. Where it leaks in, and what
this module does instead:
- encoder convolutions pad with reflection at the *batch* end, and their receptive field reaches over the item's
  end into the padding: here every convolution builds each item's input exactly as the item alone would see it
  (reflect padding at its own end, plus the extra right padding computed from its own length), by one gather;
- the encoder LSTM runs forward in time, so padding after an item never reaches its frames (nothing to do);
- decoder GroupNorms compute statistics over all frames: here over each item's valid frames only;
- the decoder attention attends to padded frames: here a key mask keeps them out (fused `scaled_dot_product_attention`);
- decoder convolutions zero-pad at the batch end: here padded frames are zeroed before every convolution;
- the iSTFT overlap-add and its window envelope run over all frames: here padded frames are zeroed and each item is
  divided by the envelope of its own frame count.
Weight norm is folded once at construction instead of on every call. Nothing about the checkpoint changes.

Speed on CPU: the encoder's convolutions stream activations many times the size of the CPU caches (32 channels at
24 kHz), so they run memory-bound and slow down as clips or batches grow, while its LSTM runs faster on a batch than
on one sequence. On CPU the convolutions therefore run item by item in tiles of a few seconds (each tile with enough
real audio on both sides for its kept frames' receptive field, so the kept frames are the whole-clip values), and the
LSTM runs once over the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import WavTokenizerModel


@dataclass
class _Conv:
    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    dilation: int
    kernel: int  # effective kernel size (with dilation)

    @property
    def padding_total(self) -> int:
        return self.kernel - self.stride

    @property
    def padding_left(self) -> int:
        return self.padding_total - self.padding_total // 2

    def reach(self, first: int, last: int) -> tuple[int, int]:
        """Input positions read by output positions `first..last` (relative to the unpadded input)."""
        return first * self.stride - self.padding_left, last * self.stride - self.padding_left + self.kernel - 1

    def extra_padding(self, length):
        """Right padding beyond `padding_total // 2` that the authors add so the last window fits (int or tensor)."""
        frames = -((self.kernel - self.padding_total - length) // self.stride)  # ceil division, ints and tensors
        return frames * self.stride + self.kernel - self.padding_total - length

    def output_length(self, length):
        return (length + self.padding_total + self.extra_padding(length) - self.kernel) // self.stride + 1


def _fold_conv(module: nn.Module) -> _Conv:
    conv = module.conv
    with torch.no_grad():
        weight = conv.weight.detach().clone()  # weight norm evaluated once
    kernel = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
    return _Conv(weight, conv.bias.detach().clone(), conv.stride[0], conv.dilation[0], kernel)


def _reflect_index(positions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Map positions (B, T) to indices into sequences of `lengths` (B, 1) by reflection (no edge repeat)."""
    last = lengths - 1
    period = 2 * last.clamp(min=1)
    folded = torch.remainder(positions, period)
    return torch.where(folded > last, period - folded, folded)


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "bf16-all": torch.bfloat16,
              "fp16-all": torch.float16}


DECODE_PRECISIONS = ("fp32", "bf16")


def decode_autocast(device: torch.device, precision: str):
    """The context a decode runs in: nothing for "fp32" (exact), bf16 autocast of the decoder's convolutions, linears
    and attention for "bf16" (normalisation statistics, the head's exponent and the iSTFT stay fp32). Speed and quality
    against fp32: `benchmarks/bench_decode_precision.py`."""
    if precision not in DECODE_PRECISIONS:
        raise ValueError(f"decode precision {precision!r}; accepted: {', '.join(DECODE_PRECISIONS)}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


class FastWavTokenizer:
    """Batched, padding-exact `encode` / `decode` using the weights of a stock `WavTokenizerModel`."""

    def __init__(self, model: WavTokenizerModel, tile_seconds: float | None | str = "auto"):
        """`tile_seconds`: length of the encoder's convolution tiles; "auto" tiles 2.5 s on CPU and runs whole
        batches on GPU; None never tiles. Codes are the same either way (see the module docstring)."""
        config = model.config
        if config.use_causal_conv or config.pad_mode != "reflect" or config.norm_type != "weight_norm":
            raise ValueError("FastWavTokenizer supports the WavTokenizer encoder (non-causal, reflect, weight norm)")
        self.model = model.eval()
        self.config = config
        self.hop_length = config.hop_length
        self.device = next(model.parameters()).device
        self.encoder_plan = self._plan_encoder(model.encoder_model.encoder.layers)
        lstm = next(i for i, (kind, _) in enumerate(self.encoder_plan) if kind == "lstm")
        self.conv_plan, self.recurrent_plan = self.encoder_plan[:lstm], self.encoder_plan[lstm:]
        self.conv_stride = math.prod(op.stride for kind, op in self.conv_plan if kind == "conv")
        self.halo_frames = self._halo_frames()
        if tile_seconds == "auto":
            tile_seconds = 2.5 if self.device.type == "cpu" else None
        if tile_seconds is not None and (isinstance(tile_seconds, (str, bool)) or not tile_seconds > 0):
            raise ValueError(f"tile_seconds must be a positive number of seconds, None or 'auto', got {tile_seconds!r}")
        self.tile_frames = (None if tile_seconds is None
                            else max(1, round(tile_seconds * config.sampling_rate / self.conv_stride)))
        self.embed = model.encoder_model.quantizer.codebook.embed.detach()
        self.embed_t = self.embed.t().contiguous()
        self.embed_sq = self.embed_t.pow(2).sum(0, keepdim=True)

    # --- encoder -----------------------------------------------------------------------------------------------
    def _plan_encoder(self, layers: nn.ModuleList) -> list:
        plan = []
        for layer in layers:
            name = type(layer).__name__
            if name == "WavTokenizerConv1d":
                plan.append(("conv", _fold_conv(layer)))
            elif name == "WavTokenizerResnetBlock":
                block = [("elu", None) if isinstance(m, nn.ELU) else ("conv", _fold_conv(m)) for m in layer.block]
                shortcut = None if isinstance(layer.shortcut, nn.Identity) else _fold_conv(layer.shortcut)
                plan.append(("resnet", (block, shortcut)))
            elif isinstance(layer, nn.ELU):
                plan.append(("elu", None))
            elif name == "WavTokenizerLSTM":
                plan.append(("lstm", layer.lstm))
            else:
                raise ValueError(f"unexpected encoder layer {name}")
        return plan

    def _halo_frames(self) -> int:
        """Frames of real audio a tile needs on each side so that its kept frames equal the whole-clip ones."""
        first, last = 0, 0  # what LSTM-input frame 0 reads, walked back to the input samples
        for kind, op in reversed(self.conv_plan):
            if kind == "conv":
                first, last = op.reach(first, last)
            elif kind == "resnet":
                block, shortcut = op
                b_first, b_last = first, last
                for sub_kind, sub in reversed(block):
                    if sub_kind == "conv":
                        b_first, b_last = sub.reach(b_first, b_last)
                s_first, s_last = (first, last) if shortcut is None else shortcut.reach(first, last)
                first, last = min(b_first, s_first), max(b_last, s_last)
        # one frame more than the reach: frames next to a tile's edge also depend on its padding's length
        return math.ceil(max(-first, last) / self.conv_stride) + 1

    def _conv_frames(self, length: int) -> int:
        for kind, op in self.conv_plan:
            if kind == "conv":
                length = op.output_length(length)
        return length

    @staticmethod
    def _conv(x: torch.Tensor, lengths: torch.Tensor, conv: _Conv) -> tuple[torch.Tensor, torch.Tensor]:
        """One encoder convolution where each item sees exactly the padding it would get alone."""
        left, right = conv.padding_left, conv.padding_total // 2
        extra = conv.extra_padding(lengths)
        padded = lengths + left + right + extra
        if left == 0 and right == 0 and bool((extra == 0).all()):
            return F.conv1d(x, conv.weight, conv.bias, conv.stride, dilation=conv.dilation), lengths
        if bool((lengths <= torch.clamp(right + extra, min=left)).any()):  # the stock `_pad1d` zero-extends these
            return FastWavTokenizer._conv_short(x, lengths, conv)
        if bool((lengths == x.shape[-1]).all()) and bool((extra == extra[0]).all()):  # no padding in this batch
            if conv.stride == 1 and conv.dilation == 1 and left == right and x.shape[-1] >= conv.kernel:
                return FastWavTokenizer._conv_same(x, conv, left), lengths
            padded_x = F.pad(x, (left, right + int(extra[0])), mode="reflect")
            return F.conv1d(padded_x, conv.weight, conv.bias, conv.stride, dilation=conv.dilation), (
                conv.output_length(lengths))
        width = int(padded.max())
        positions = torch.arange(width, device=x.device)[None] - left  # (1, W)
        index = _reflect_index(positions, lengths[:, None])
        # the authors pad `extra` on the right by reflection too, inside the same reflect call
        gathered = torch.gather(x, 2, index[:, None, :].expand(-1, x.shape[1], -1))
        out = F.conv1d(gathered, conv.weight, conv.bias, conv.stride, dilation=conv.dilation)
        return out, conv.output_length(lengths)

    @staticmethod
    def _conv_same(x: torch.Tensor, conv: _Conv, pad: int) -> torch.Tensor:
        """A stride-1 convolution with `pad` reflected samples each side, without copying the input into a padded
        buffer: zero padding inside the kernel, then only the `pad` outputs at each edge recomputed by reflection."""
        out = F.conv1d(x, conv.weight, conv.bias, padding=pad)
        width = conv.kernel - 1
        head = F.pad(x[..., :width], (pad, 0), mode="reflect")
        tail = F.pad(x[..., -width:], (0, pad), mode="reflect")
        out[..., :pad] = F.conv1d(head, conv.weight, conv.bias)
        out[..., -pad:] = F.conv1d(tail, conv.weight, conv.bias)
        return out

    @staticmethod
    def _conv_short(x: torch.Tensor, lengths: torch.Tensor, conv: _Conv) -> tuple[torch.Tensor, torch.Tensor]:
        """Items shorter than the padding: per item, as the stock `_pad1d` does (zeros first, then reflect)."""
        outs, out_lengths = [], []
        left = conv.padding_left
        for i, length in enumerate(lengths.tolist()):
            xi = x[i:i + 1, :, :length]
            right = conv.padding_total // 2 + conv.extra_padding(length)
            max_pad = max(left, right)
            zeros = max_pad - length + 1 if length <= max_pad else 0
            xi = F.pad(xi, (0, zeros))
            xi = F.pad(xi, (left, right), mode="reflect")[..., : xi.shape[-1] + left + right - zeros]
            outs.append(F.conv1d(xi, conv.weight, conv.bias, conv.stride, dilation=conv.dilation))
            out_lengths.append(outs[-1].shape[-1])
        width = max(out_lengths)
        out = torch.stack([F.pad(o[0], (0, width - o.shape[-1])) for o in outs])
        return out, torch.tensor(out_lengths, device=x.device)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor, plan: list) -> tuple[torch.Tensor, torch.Tensor]:
        for kind, op in plan:
            if kind == "conv":
                x, lengths = self._conv(x, lengths, op)
            elif kind == "elu":
                x = F.elu(x)
            elif kind == "resnet":
                block, shortcut = op
                h = x
                for sub_kind, sub in block:
                    h = F.elu(h) if sub_kind == "elu" else self._conv(h, lengths, sub)[0]
                residual = x if shortcut is None else self._conv(x, lengths, shortcut)[0]
                x = residual + h
            else:  # forward-only LSTM with the skip connection: later padding never reaches valid frames
                seq = x.permute(2, 0, 1)
                x = (op(seq)[0] + seq).permute(1, 2, 0)
        return x, lengths

    def _tiled_convs(self, waveform: torch.Tensor) -> torch.Tensor:
        """(T,) audio -> (D, F) LSTM inputs, computed tile by tile; tiles start on frame boundaries and carry
        `halo_frames` of real audio each side, so every kept frame equals the whole-clip value."""
        length, stride, halo, tile = waveform.shape[-1], self.conv_stride, self.halo_frames, self.tile_frames
        total = self._conv_frames(length)
        if total <= tile + 2 * halo:
            return self._run(waveform[None, None], torch.tensor([length], device=waveform.device), self.conv_plan)[0][0]
        pieces = []
        for first in range(0, total, tile):
            last = min(total, first + tile)
            start, end = max(0, first - halo) * stride, min(length, (last + halo) * stride)
            span = torch.tensor([end - start], device=waveform.device)
            out = self._run(waveform[None, None, start:end], span, self.conv_plan)[0][0]
            offset = first - start // stride
            pieces.append(out[:, offset: offset + last - first])
        return torch.cat(pieces, dim=-1)

    @torch.inference_mode()
    def encode_latents(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) right-padded audio and valid lengths -> (B, D, F) latents and frame counts."""
        lengths = lengths.to(audio.device).long()
        if self.tile_frames is None:
            x, frames = self._run(audio.unsqueeze(1), lengths, self.conv_plan)
        else:
            items = [self._tiled_convs(audio[i, :n]) for i, n in enumerate(lengths.tolist())]
            frames = torch.tensor([item.shape[-1] for item in items], device=audio.device)
            x = audio.new_zeros(len(items), items[0].shape[0], int(frames.max()), dtype=items[0].dtype)
            for i, item in enumerate(items):
                x[i, :, : item.shape[-1]] = item
        return self._run(x, frames, self.recurrent_plan)

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
        with torch.autocast(self.device.type, dtype=low or torch.bfloat16, enabled=low is not None):
            latents, frames = self.encode_latents(audio, lengths)
        flat = latents.permute(0, 2, 1).reshape(-1, latents.shape[1])
        if precision.endswith("-all"):  # the distance arithmetic itself in low precision
            flat, embed_t, embed_sq = flat.to(low), self.embed_t.to(low), self.embed_sq.to(low)
        else:
            flat, embed_t, embed_sq = flat.float(), self.embed_t, self.embed_sq
        distances = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed_t + embed_sq)
        codes = distances.max(dim=-1).indices.view(latents.shape[0], -1)
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

    # --- decoder -----------------------------------------------------------------------------------------------
    @staticmethod
    def _group_norm(x: torch.Tensor, mask: torch.Tensor | None, norm: nn.GroupNorm) -> torch.Tensor:
        if mask is None:  # nothing padded: the native kernel
            return norm(x)
        x = x.float()  # statistics in fp32 under a bf16 decode too
        batch, channels, frames = x.shape
        groups = norm.num_groups
        grouped = x.view(batch, groups, -1, frames)
        m = mask.view(batch, 1, 1, frames)
        count = m.sum(dim=(2, 3), keepdim=True) * grouped.shape[2]
        mean = (grouped * m).sum(dim=(2, 3), keepdim=True) / count
        var = (((grouped - mean) * m) ** 2).sum(dim=(2, 3), keepdim=True) / count
        normed = ((grouped - mean) / torch.sqrt(var + norm.eps)).view(batch, channels, frames)
        return normed * norm.weight[None, :, None] + norm.bias[None, :, None]

    @staticmethod
    def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return x if mask is None else x * mask

    def _resnet(self, x, mask, block) -> torch.Tensor:
        h = self._group_norm(x, mask, block.norm1)
        h = block.conv1(self._masked(F.silu(h), mask))
        h = self._group_norm(h, mask, block.norm2)
        h = block.conv2(self._masked(F.silu(h), mask))
        return x + h

    def _attention(self, x, mask, block) -> torch.Tensor:
        h = self._group_norm(x, mask, block.norm)
        # contiguous (B, 1, F, C): the fused kernels need it; unmasked, CPU then takes the flash kernel (no F x F matrix)
        q, k, v = (conv(h).transpose(1, 2)[:, None].contiguous() for conv in (block.q, block.k, block.v))
        key_mask = None if mask is None else mask.bool()[:, None]  # (B, 1, 1, F): padded frames never attended
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return x + block.proj_out(out[:, 0].transpose(1, 2))

    def _pos_net(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The decoder's positional network (ResNet blocks, attention, GroupNorm): its global part."""
        for layer in self.model.backbone.pos_net:
            name = type(layer).__name__
            if name == "WavTokenizerVocosResnetBlock":
                x = self._resnet(x, mask, layer)
            elif name == "WavTokenizerVocosAttention":
                x = self._attention(x, mask, layer)
            else:
                x = self._group_norm(x, mask, layer)
            x = self._masked(x, mask)
        return x

    def _envelope(self, frames: int, device) -> torch.Tensor:
        head = self.model.head
        window_sq = head.window.square().to(device)
        size = (frames - 1) * head.hop_length + head.n_fft
        env = F.fold(window_sq.expand(1, frames, -1).transpose(1, 2), output_size=(1, size),
                     kernel_size=(1, head.n_fft), stride=(1, head.hop_length)).squeeze()
        return env[head.padding: -head.padding].clamp(min=1e-11)

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
        features = self._masked(F.embedding(codes.clamp(min=0), self.embed).transpose(1, 2), mask)
        backbone, head = self.model.backbone, self.model.head
        condition = torch.tensor([bandwidth_id], device=self.device)
        with decode_autocast(self.device, precision):
            x = self._pos_net(self._masked(backbone.embed(features), mask), mask)
            x = backbone.norm(x.transpose(1, 2), condition).transpose(1, 2)
            for block in backbone.convnext:
                x = block(self._masked(x, mask), condition)
            hidden = backbone.final_layer_norm(x.transpose(1, 2))  # (B, F, C)
            spec = head.linear(hidden)
        magnitude, phase = spec.float().chunk(2, dim=-1)
        complex_spec = torch.polar(torch.exp(magnitude).clamp(max=1e2), phase)
        time_frames = torch.fft.irfft(complex_spec, head.n_fft, dim=-1, norm="backward").transpose(1, 2)
        time_frames = self._masked(time_frames * head.window[None, :, None], mask)
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
        return [audio[i, : frames[i] * self.hop_length].cpu() for i in range(len(code_sequences))]


# --- long audio in bounded memory ------------------------------------------------------------------------------

def _windows(total: int, window: int, context: int, minimum: int = 1) -> list[tuple[int, int, int, int]]:
    """(start, end, offset, count) per window of `window` frames with `context` frames each side: frames
    [start, end) are processed and [start + offset, start + offset + count) are kept."""
    spans = []
    for first in range(0, total, window):
        start, end = max(0, first - context), min(total, first + window + context)
        start = min(start, max(0, end - minimum))
        spans.append((start, end, first - start, min(window, total - first)))
    return spans


def encode_windowed(fast: FastWavTokenizer, audio: torch.Tensor, window_seconds: float = 30.0,
                    context_seconds: float = 2.0, batch_size: int = 4) -> torch.Tensor:
    """Codes of a long 1-D waveform, encoded in windows of `window_seconds` with `context_seconds` of audio on
    each side (the context's frames are dropped); memory is bounded by the window, not the file.

    Window starts are multiples of the hop, so window frames align with whole-file frames; the context lets the
    convolutions see the true neighbourhood and the forward LSTM warm up. Agreement with whole-file codes is
    measured in `benchmarks/bench_long_audio.py`."""
    hop, rate = fast.hop_length, fast.config.sampling_rate
    total_frames = -(-audio.numel() // hop)
    window = max(1, int(window_seconds * rate) // hop)
    context = max(0, int(context_seconds * rate) // hop)
    if total_frames <= window + 2 * context:
        return fast.encode_list([audio])[0]
    spans = _windows(total_frames, window, context)
    pieces = [audio[start * hop: end * hop] for start, end, _, _ in spans]
    spans = [(offset, count) for _, _, offset, count in spans]
    codes = []
    for i in range(0, len(pieces), batch_size):
        for piece_codes, (offset, count) in zip(fast.encode_list(pieces[i:i + batch_size]), spans[i:i + batch_size]):
            codes.append(piece_codes[offset: offset + count])
    return torch.cat(codes)


def decode_windowed(fast: FastWavTokenizer, codes: torch.Tensor, window_seconds: float = 30.0,
                    context_seconds: float = 2.0, batch_size: int = 4) -> torch.Tensor:
    """Audio of a long code sequence, decoded in windows with context frames on each side (dropped). The decoder's
    attention is global, so windows differ slightly from a whole-sequence decode; the mel distance between the two
    is measured in `benchmarks/bench_long_audio.py`."""
    hop, rate = fast.hop_length, fast.config.sampling_rate
    window = max(2, int(window_seconds * rate) // hop)
    context = max(0, int(context_seconds * rate) // hop)
    total = codes.numel()
    if total <= window + 2 * context:
        return fast.decode_list([codes])[0]
    spans = _windows(total, window, context, minimum=2)  # the decoder needs at least 2 frames
    pieces = [codes[start:end] for start, end, _, _ in spans]
    spans = [(offset * hop, count * hop) for _, _, offset, count in spans]
    audio = []
    for i in range(0, len(pieces), batch_size):
        for piece_audio, (offset, count) in zip(fast.decode_list(pieces[i:i + batch_size]), spans[i:i + batch_size]):
            audio.append(piece_audio[offset: offset + count])
    return torch.cat(audio)
