"""The WavTokenizer encoder as a list of typed steps that run padding-exactly and know their own reach.

Each step takes `(x, lengths)`: a right-padded batch (B, C, T) and each item's valid length, and returns the same for
its output, where every item's valid part equals what the stock layer gives that item alone. A step also says which
input positions an output span reads (`reach`), which is what tiling and streaming need to stay exact.

Why a plain convolution is not enough: the authors' convolutions pad with reflection at the *batch* end, plus extra
right padding computed from the length, so the receptive field of an item's last frames reaches into the padding of
a batch. Here each item's input is built as the item alone would see it, by one gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.wavtokenizer.modeling_wavtokenizer import (
    WavTokenizerConv1d,
    WavTokenizerLSTM,
    WavTokenizerResnetBlock,
)

Batch = tuple[torch.Tensor, torch.Tensor]  # (B, C, T) right-padded, (B,) valid lengths


def _reflect_index(positions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Map positions (B, T) to indices into sequences of `lengths` (B, 1) by reflection (no edge repeat)."""
    last = lengths - 1
    period = 2 * last.clamp(min=1)
    folded = torch.remainder(positions, period)
    return torch.where(folded > last, period - folded, folded)


@dataclass
class Conv:
    """One weight-normed convolution with the authors' reflect padding, weight norm folded once."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    dilation: int
    kernel: int  # effective kernel size (with dilation)

    @classmethod
    def fold(cls, module: WavTokenizerConv1d) -> "Conv":
        conv = module.conv
        with torch.no_grad():
            weight = conv.weight.detach().clone()  # weight norm evaluated once
        kernel = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        return cls(weight, conv.bias.detach().clone(), conv.stride[0], conv.dilation[0], kernel)

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

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor) -> Batch:
        """The convolution where each item sees exactly the padding it would get alone."""
        left, right = self.padding_left, self.padding_total // 2
        extra = self.extra_padding(lengths)
        if left == 0 and right == 0 and bool((extra == 0).all()):
            return F.conv1d(x, self.weight, self.bias, self.stride, dilation=self.dilation), lengths
        if bool((lengths <= torch.clamp(right + extra, min=left)).any()):  # the stock `_pad1d` zero-extends these
            return self._short_items(x, lengths)
        if bool((lengths == x.shape[-1]).all()) and bool((extra == extra[0]).all()):  # no padding in this batch
            if self.stride == 1 and self.dilation == 1 and left == right and x.shape[-1] >= self.kernel:
                return self._same(x, left), lengths
            padded_x = F.pad(x, (left, right + int(extra[0])), mode="reflect")
            return (F.conv1d(padded_x, self.weight, self.bias, self.stride, dilation=self.dilation),
                    self.output_length(lengths))
        width = int((lengths + left + right + extra).max())
        positions = torch.arange(width, device=x.device)[None] - left  # (1, W)
        index = _reflect_index(positions, lengths[:, None])
        # the authors pad `extra` on the right by reflection too, inside the same reflect call
        gathered = torch.gather(x, 2, index[:, None, :].expand(-1, x.shape[1], -1))
        return F.conv1d(gathered, self.weight, self.bias, self.stride, dilation=self.dilation), self.output_length(lengths)

    def _same(self, x: torch.Tensor, pad: int) -> torch.Tensor:
        """Stride 1 with `pad` reflected samples each side, without copying the input into a padded buffer: zero
        padding inside the kernel, then only the `pad` outputs at each edge recomputed by reflection."""
        out = F.conv1d(x, self.weight, self.bias, padding=pad)
        width = self.kernel - 1
        head = F.pad(x[..., :width], (pad, 0), mode="reflect")
        tail = F.pad(x[..., -width:], (0, pad), mode="reflect")
        out[..., :pad] = F.conv1d(head, self.weight, self.bias)
        out[..., -pad:] = F.conv1d(tail, self.weight, self.bias)
        return out

    def _short_items(self, x: torch.Tensor, lengths: torch.Tensor) -> Batch:
        """Items shorter than the padding: per item, as the stock `_pad1d` does (zeros first, then reflect)."""
        outs, out_lengths = [], []
        left = self.padding_left
        for i, length in enumerate(lengths.tolist()):
            xi = x[i:i + 1, :, :length]
            right = self.padding_total // 2 + self.extra_padding(length)
            max_pad = max(left, right)
            zeros = max_pad - length + 1 if length <= max_pad else 0
            xi = F.pad(xi, (0, zeros))
            xi = F.pad(xi, (left, right), mode="reflect")[..., : xi.shape[-1] + left + right - zeros]
            outs.append(F.conv1d(xi, self.weight, self.bias, self.stride, dilation=self.dilation))
            out_lengths.append(outs[-1].shape[-1])
        width = max(out_lengths)
        out = torch.stack([F.pad(o[0], (0, width - o.shape[-1])) for o in outs])
        return out, torch.tensor(out_lengths, device=x.device)


@dataclass
class Elu:
    """ELU: position-wise, reads only the frame it writes."""

    def reach(self, first: int, last: int) -> tuple[int, int]:
        return first, last

    def output_length(self, length):
        return length

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor) -> Batch:
        return F.elu(x), lengths


@dataclass
class Resnet:
    """The encoder's residual block: ELU/conv steps plus an identity or 1x1-conv shortcut."""

    block: list[Conv | Elu]
    shortcut: Conv | None

    @classmethod
    def fold(cls, module: WavTokenizerResnetBlock) -> "Resnet":
        block = [Elu() if isinstance(m, nn.ELU) else Conv.fold(m) for m in module.block]
        return cls(block, None if isinstance(module.shortcut, nn.Identity) else Conv.fold(module.shortcut))

    def reach(self, first: int, last: int) -> tuple[int, int]:
        b_first, b_last = first, last
        for step in reversed(self.block):
            b_first, b_last = step.reach(b_first, b_last)
        s_first, s_last = (first, last) if self.shortcut is None else self.shortcut.reach(first, last)
        return min(b_first, s_first), max(b_last, s_last)

    def output_length(self, length):
        return length

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor) -> Batch:
        h = x
        for step in self.block:
            h = step(h, lengths)[0]
        residual = x if self.shortcut is None else self.shortcut(x, lengths)[0]
        return residual + h, lengths


@dataclass
class Lstm:
    """The forward-only LSTM with its skip connection: padding after an item never reaches its valid frames. Its
    reach is the whole past, so it is run over whole sequences (or streamed with its state carried)."""

    lstm: nn.LSTM

    def output_length(self, length):
        return length

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor) -> Batch:
        seq = x.permute(2, 0, 1)
        return (self.lstm(seq)[0] + seq).permute(1, 2, 0), lengths


Step = Conv | Elu | Resnet | Lstm


def plan_encoder(layers: nn.ModuleList) -> list[Step]:
    """The stock encoder's layers as typed steps; a layer of any other type raises."""
    plan: list[Step] = []
    for layer in layers:
        if isinstance(layer, WavTokenizerConv1d):
            plan.append(Conv.fold(layer))
        elif isinstance(layer, WavTokenizerResnetBlock):
            plan.append(Resnet.fold(layer))
        elif isinstance(layer, nn.ELU):
            plan.append(Elu())
        elif isinstance(layer, WavTokenizerLSTM):
            plan.append(Lstm(layer.lstm))
        else:
            raise ValueError(f"unexpected encoder layer {type(layer).__name__}: the exact path does not know it")
    return plan


def run(plan: list[Step], x: torch.Tensor, lengths: torch.Tensor) -> Batch:
    for step in plan:
        x, lengths = step(x, lengths)
    return x, lengths


def output_length(plan: list[Step], length: int) -> int:
    for step in plan:
        length = step.output_length(length)
    return length


def reach(plan: list[Step], first: int, last: int) -> tuple[int, int]:
    """Input positions that the plan's outputs `first..last` read (steps with a local reach only)."""
    for step in reversed(plan):
        if isinstance(step, Lstm):
            raise ValueError("an LSTM's reach is its whole past: tile only the convolutions before it")
        first, last = step.reach(first, last)
    return first, last
