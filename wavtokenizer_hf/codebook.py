"""The codebook's nearest-code search, one copy for inference, streaming and training, and k-means to fit one."""

from __future__ import annotations

import torch


def search_terms(embed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, D) codebook -> its transpose (D, K), contiguous, and squared norms (1, K): what `nearest_codes` needs."""
    embed_t = embed.t().contiguous()
    return embed_t, embed_t.pow(2).sum(0, keepdim=True)


def nearest_codes(vectors: torch.Tensor, embed_t: torch.Tensor, embed_sq: torch.Tensor,
                  max_chunk_elements: int | None = None) -> torch.Tensor:
    """Index of the nearest codebook entry for each row of `vectors` (N, D).

    The distances are |x|^2 - 2 x.e + |e|^2 in the stock model's order of operations, in one matrix product as the
    stock model computes them (so the codes are the stock codes, ties included), or, with `max_chunk_elements`, in
    chunks of at most that many distances: memory O(chunk x K), never O(N x K x D) (k-means over many vectors)."""
    chunk = vectors.shape[0] if max_chunk_elements is None else max(1, max_chunk_elements // embed_t.shape[1])
    chunk = max(1, chunk)
    out = [(-(part.pow(2).sum(1, keepdim=True) - 2 * part @ embed_t + embed_sq)).max(dim=-1).indices
           for part in vectors.split(chunk)]
    return torch.cat(out) if out else vectors.new_zeros(0, dtype=torch.long)


def nearest_rows(vectors: torch.Tensor, embed: torch.Tensor, max_chunk_elements: int = 2**25) -> torch.Tensor:
    """Index of the nearest row of `embed` (K, D) for each vector (N, D), in chunks of at most `max_chunk_elements`
    distances (`nearest_codes`), so memory stays O(chunk x K) instead of O(N x K x D).

    Always in fp32: under a bf16 autocast (mixed-precision training) the distance product would otherwise run in bf16
    whatever its inputs' dtype, and about one frame in eight would get a code that is not its nearest."""
    with torch.autocast(vectors.device.type, enabled=False):
        return nearest_codes(vectors.float(), *search_terms(embed.float()),
                                      max_chunk_elements=max_chunk_elements)


def kmeans(vectors: torch.Tensor, num_codes: int, iterations: int, generator: torch.Generator | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on (N, D) vectors; returns (centroids (K, D), cluster sizes (K,)). Empty clusters keep
    their previous centre. With fewer vectors than codes, initial centres are drawn with replacement."""
    vectors = vectors.float()
    n = vectors.shape[0]
    if n >= num_codes:
        index = torch.randperm(n, generator=generator)[:num_codes]
    else:
        index = torch.randint(0, n, (num_codes,), generator=generator)
    centroids = vectors[index].clone()
    counts = torch.zeros(num_codes)
    for _ in range(iterations):
        assign = nearest_rows(vectors, centroids)
        counts = torch.bincount(assign, minlength=num_codes).float()
        sums = torch.zeros_like(centroids).index_add_(0, assign, vectors)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids, counts


def codebook_usage(codes, codebook_size: int) -> dict[str, float]:
    """Share of the codebook used at least once, entropy (bits) and perplexity of the code distribution, over all
    codes given (a tensor or array of any shape, or a list of them)."""
    import numpy as np

    parts = codes if isinstance(codes, (list, tuple)) else [codes]
    flat = np.concatenate([np.asarray(part.cpu() if isinstance(part, torch.Tensor) else part).ravel()
                           for part in parts]).astype(np.int64)
    counts = np.bincount(flat, minlength=codebook_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    return {"codebook_used": float((counts > 0).mean()), "code_entropy_bits": entropy, "code_perplexity": 2.0**entropy}
