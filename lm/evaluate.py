"""Held-out cross-entropy of a causal LM, in nats, perplexity and bits per second of audio, scored on the same
targets as the n-gram baselines. Utterances are scored unpacked (one per row, padding masked); with `block_size`
they are first cut into the pieces training saw (`lm.streams.fit_to_blocks`), so no position past the training
block is scored."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .streams import Utterance, fit_to_blocks


@torch.no_grad()
def token_nats(model, utterances: Sequence[Utterance], batch_size: int = 8,
               block_size: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per utterance, (target ids, -log p of each) over its scored tokens after the first; with `block_size`, the
    targets of all its pieces, in order."""
    pieces, owner = [], []
    for index, utterance in enumerate(utterances):
        parts = [utterance] if block_size is None else fit_to_blocks([utterance], block_size)
        pieces += parts
        owner += [index] * len(parts)
    device = next(model.parameters()).device
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i].input_ids))
    found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in pieces]
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        group = [pieces[i] for i in chosen]
        length = max(len(u.input_ids) for u in group)
        ids = torch.zeros(len(group), length, dtype=torch.long)
        mask = torch.zeros(len(group), length, dtype=torch.long)
        for row, u in enumerate(group):
            ids[row, : len(u.input_ids)] = torch.from_numpy(u.input_ids)
            mask[row, : len(u.input_ids)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits.float()
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
        target_lp = log_probs.gather(-1, ids[:, 1:, None].to(device))[..., 0].cpu()
        for row, (piece_index, u) in enumerate(zip(chosen, group)):
            keep = np.flatnonzero(u.scored[1:])
            found[piece_index] = (u.input_ids[1:][keep], -target_lp[row, keep].double().numpy())
    out: list[list] = [[] for _ in utterances]
    for piece_index, index in enumerate(owner):
        out[index].append(found[piece_index])
    return [(np.concatenate([t for t, _ in parts]), np.concatenate([n for _, n in parts])) for parts in out]


def utterance_nats(model, utterances: Sequence[Utterance], batch_size: int = 8,
                   block_size: int | None = None) -> dict[str, float]:
    """Sum of -log p over every scored token after each utterance's first, and how many there were."""
    scored = token_nats(model, utterances, batch_size, block_size)
    return {"nats": float(sum(n.sum() for _, n in scored)), "tokens": int(sum(n.size for _, n in scored))}


def summarize(nats: float, tokens: int, seconds: float) -> dict[str, float]:
    """Cross-entropy per token, perplexity and bits per second of audio."""
    per_token = nats / max(tokens, 1)
    return {"loss": per_token, "perplexity": math.exp(per_token),
            "bits_per_second": nats / math.log(2) / seconds if seconds > 0 else float("nan")}
