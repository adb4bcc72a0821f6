"""Sampling from a causal LM with a KV cache, restricted to allowed ids, with temperature, top-k and top-p.

Its own small loop rather than `generate`, because TTS decoding alternates forced tokens (the next word's text)
with sampled ones (its duration and codes) on one cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wavtokenizer_hf.errors import WavTokenizerError

from .models import max_positions


@dataclass
class SamplingConfig:
    temperature: float = 0.8  # 0 = greedy
    top_k: int | None = 50
    top_p: float | None = 0.95
    seed: int = 0


def filter_logits(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """Apply top-k then nucleus (top-p) filtering to one row of logits (already temperature-scaled)."""
    if cfg.top_k is not None and 0 < cfg.top_k < logits.numel():
        kth = torch.topk(logits, cfg.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and 0 < cfg.top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= cfg.top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return logits


class CachedSampler:
    """Holds the KV cache of one sequence; `feed` forces tokens, `sample` draws tokens one by one."""

    def __init__(self, model, cfg: SamplingConfig):
        self.model = model
        self.cfg = cfg
        self.device = next(model.parameters()).device
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.cache = None
        self.next_logits: torch.Tensor | None = None
        self.length = 0
        self.limit = max_positions(model)

    @torch.no_grad()
    def feed(self, ids: list[int] | torch.Tensor) -> None:
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device).reshape(1, -1)
        if ids.numel() == 0:
            return
        if self.limit is not None and self.length + ids.shape[1] > self.limit:
            raise WavTokenizerError(f"the sequence would pass the model's {self.limit} positions; ask for less audio")
        out = self.model(input_ids=ids, cache=self.cache, use_cache=True)
        self.cache = out.cache
        self.next_logits = out.logits[0, -1].float().cpu()
        self.length += ids.shape[1]

    @torch.no_grad()
    def sample(self, allowed: torch.Tensor, stop_ids: set[int] = frozenset(), max_tokens: int = 1) -> list[int]:
        """Draw up to `max_tokens` ids from `allowed` (bool mask over the vocabulary), stopping after a stop id
        (which is included in the result)."""
        if self.next_logits is None:
            raise RuntimeError("feed a prompt before sampling")
        drawn: list[int] = []
        for _ in range(max_tokens):
            logits = self.next_logits[: allowed.numel()].masked_fill(~allowed, float("-inf"))
            if self.cfg.temperature <= 0:
                token = int(torch.argmax(logits))
            else:
                probs = torch.softmax(filter_logits(logits / self.cfg.temperature, self.cfg), dim=-1)
                token = int(torch.multinomial(probs, 1, generator=self.generator))
            drawn.append(token)
            self.feed([token])
            if token in stop_ids:
                break
        return drawn


def id_mask(vocab_size: int, *groups) -> torch.Tensor:
    """Bool mask with True at every id in the given ranges / iterables of ids."""
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    for group in groups:
        mask[torch.as_tensor(list(group), dtype=torch.long)] = True
    return mask
