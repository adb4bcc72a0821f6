"""Held-out cross-entropy of a causal LM, in nats, perplexity and bits per second of audio, scored on the same
targets as the n-gram baselines. Utterances are scored unpacked (one per row, padding masked); with `block_size`
they are first cut into the pieces training saw (`lm.streams.fit_to_blocks`), so no position past the training
block is scored."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .streams import Utterance, fit_to_blocks


@torch.no_grad()
def utterance_nats(model, utterances: Sequence[Utterance], batch_size: int = 8,
                   block_size: int | None = None) -> dict[str, float]:
    """Sum of -log p over every scored token after each utterance's first, and how many there were."""
    if block_size is not None:
        utterances = fit_to_blocks(utterances, block_size)
    device = next(model.parameters()).device
    order = sorted(range(len(utterances)), key=lambda i: len(utterances[i].input_ids))
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        group = [utterances[i] for i in order[start:start + batch_size]]
        length = max(len(u.input_ids) for u in group)
        ids = torch.zeros(len(group), length, dtype=torch.long)
        mask = torch.zeros(len(group), length, dtype=torch.long)
        scored = torch.zeros(len(group), length, dtype=torch.bool)
        for row, u in enumerate(group):
            ids[row, : len(u.input_ids)] = torch.from_numpy(u.input_ids)
            mask[row, : len(u.input_ids)] = 1
            scored[row, 1 : len(u.input_ids)] = torch.from_numpy(u.scored[1:])
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits.float()
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
        target_lp = log_probs.gather(-1, ids[:, 1:, None].to(device))[..., 0]
        keep = scored[:, 1:].to(device)
        total -= float(target_lp[keep].sum())
        count += int(keep.sum())
    return {"nats": total, "tokens": count}


def summarize(nats: float, tokens: int, seconds: float) -> dict[str, float]:
    """Cross-entropy per token, perplexity and bits per second of audio."""
    per_token = nats / max(tokens, 1)
    return {"loss": per_token, "perplexity": math.exp(per_token),
            "bits_per_second": nats / math.log(2) / seconds if seconds > 0 else float("nan")}
