"""Trainable single-codebook vector quantiser: k-means initialisation on training data in bounded memory, EMA
codebook updates, commitment loss, straight-through gradients, and dead-code re-seeding that takes effect.

It works on the stock model's codebook buffers (`inited`, `cluster_size`, `embed`, `embed_avg` of
`encoder_model.quantizer.codebook`), so what it learns is saved by `save_pretrained` under the stock keys.

Fixes of the authors' `core_vq` (switchable in `config.FixesConfig`): re-seeded codes are written into `embed_avg`/`cluster_size` too, so the
EMA recomputation does not undo them; k-means uses chunked expanded-square distances instead of an N x K x D tensor;
initialisation is an explicit call on training data, never a side effect of the first forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..codebook import kmeans, nearest_rows


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # (B, D, T), straight-through in training
    codes: torch.Tensor  # (B, T)
    commit_loss: torch.Tensor  # scalar


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


GRADIENTS = ("straight_through", "rotation")


def rotated(latents: torch.Tensor, quantized: torch.Tensor, epsilon: float = 1e-8) -> torch.Tensor:
    """The rotation trick (Fifty et al., ICLR 2025): each (N, D) latent rotated onto the direction of its code and
    rescaled to the code's norm, with the rotation and the scale held constant, so that its value is the code and
    the gradient reaching the latent is the decoder's gradient rotated back (straight-through copies it unchanged).
    Only the encoder's gradients change: the forward values, the codes and the codebook's EMA do not."""
    latents_norm = latents.norm(dim=1, keepdim=True).clamp_min(epsilon)
    quantized_norm = quantized.norm(dim=1, keepdim=True).clamp_min(epsilon)
    latents_dir = (latents / latents_norm).detach()
    quantized_dir = (quantized / quantized_norm).detach()
    # the Householder-pair rotation taking latents_dir to quantized_dir: I - 2 r r^T + 2 q e^T
    halfway = latents_dir + quantized_dir
    halfway = (halfway / halfway.norm(dim=1, keepdim=True).clamp_min(epsilon)).detach()
    turned = (latents - 2 * halfway * (halfway * latents).sum(1, keepdim=True)
              + 2 * quantized_dir * (latents_dir * latents).sum(1, keepdim=True))
    return (quantized_norm / latents_norm).detach() * turned


class EMAQuantizer(nn.Module):
    """Quantise (B, D, T) latents with the codebook buffers of a stock `WavTokenizerEuclideanCodebook`."""

    def __init__(self, codebook: nn.Module, decay: float = 0.99, epsilon: float = 1e-5,
                 dead_code_threshold: float = 2.0, reseed_dead_codes: bool = True, dead_code_share: float = 0.0,
                 gradient: str = "straight_through"):
        super().__init__()
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {', '.join(GRADIENTS)}, not {gradient!r}")
        self.gradient = gradient
        # not registered as a submodule: the buffers belong to the stock model, which saves them once
        object.__setattr__(self, "codebook", codebook)
        self.decay = decay
        self.epsilon = epsilon
        self.dead_code_threshold = dead_code_threshold
        self.reseed_dead_codes = reseed_dead_codes
        # > 0: a code is dead below this share of the mean vectors per code of one step (the absolute threshold of
        # the authors, 2, is about the mean itself at one GPU's batch of paper-75: ~15% of codes re-seeded per step)
        self.dead_code_share = dead_code_share
        self.last_reseeded = 0  # codes re-seeded by the last EMA step (logged by the trainer)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long), persistent=False)
        self._initialized = False
        codebook.register_load_state_dict_post_hook(self._forget_initialized)

    @property
    def num_codes(self) -> int:
        return self.codebook.embed.shape[0]

    @property
    def initialized(self) -> bool:
        # remembered once true: reading the buffer at every forward would make the host wait for a GPU each step
        if not self._initialized:
            self._initialized = bool(self.codebook.inited.item())
        return self._initialized

    def _forget_initialized(self, module: nn.Module, incompatible_keys) -> None:
        self._initialized = False  # a state dict loaded into the codebook may hold an uninitialised one

    @torch.no_grad()
    def initialize(self, vectors: torch.Tensor, iterations: int, seed: int = 0,
                   vectors_per_step: int | None = None) -> None:
        """k-means on training vectors (N, D) -> codebook; the same on every process (computed on rank 0).

        The EMA counts start at each cluster's share of one step's vectors (`vectors_per_step`), so the EMA sees
        the same scale it will be fed; clusters k-means left empty start at the dead-code threshold, which keeps
        their centre (a zero count would turn them into zero vectors that swallow small latents) and lets the
        first update re-seed them if they stay unused."""
        generator = torch.Generator().manual_seed(seed)
        centroids, counts = kmeans(vectors.detach().cpu(), self.num_codes, iterations, generator)
        per_step = counts * (vectors_per_step or vectors.shape[0]) / vectors.shape[0]
        per_step = per_step.clamp(min=max(self.threshold(float(vectors_per_step or vectors.shape[0])), 100 * self.epsilon))
        book = self.codebook
        book.embed.copy_(centroids.to(book.embed))
        book.cluster_size.copy_(per_step.to(book.cluster_size))
        book.embed_avg.copy_((centroids * per_step[:, None]).to(book.embed_avg))
        book.inited.fill_(1.0)
        if _distributed():
            for buffer in (book.embed, book.cluster_size, book.embed_avg):
                dist.broadcast(buffer, src=0)

    def forward(self, latents: torch.Tensor, update: bool | None = None) -> QuantizerOutput:
        """`update` (default: `self.training`) applies one EMA step at once. The trainer passes `update=False` and
        calls `accumulate` / `apply_accumulated` instead, so that only kept steps move the codebook."""
        if not self.initialized:
            raise RuntimeError("the codebook is not initialised: call initialize() on training vectors first")
        update = self.training if update is None else update
        batch, dim, frames = latents.shape
        flat = latents.permute(0, 2, 1).reshape(-1, dim)
        embed = self.codebook.embed
        codes = nearest_rows(flat.detach().float(), embed.float())
        quantized = nn.functional.embedding(codes, embed).to(flat.dtype)
        commit_loss = nn.functional.mse_loss(flat, quantized.detach())
        if update:
            self.accumulate(latents, codes.reshape(batch, frames))
            self.apply_accumulated()
        passed = rotated(flat, quantized) if self.gradient == "rotation" else flat
        straight = passed + (quantized - passed).detach()
        return QuantizerOutput(
            quantized=straight.reshape(batch, frames, dim).permute(0, 2, 1),
            codes=codes.reshape(batch, frames),
            commit_loss=commit_loss,
        )

    @torch.no_grad()
    def accumulate(self, latents: torch.Tensor, codes: torch.Tensor) -> None:
        """Add one micro-batch's statistics ((B, D, T) latents and their (B, T) codes) to the pending EMA step."""
        flat = latents.detach().permute(0, 2, 1).reshape(-1, latents.shape[1]).float()
        codes = codes.reshape(-1)
        counts = torch.bincount(codes, minlength=self.num_codes).to(flat)
        sums = torch.zeros(self.num_codes, flat.shape[1], dtype=flat.dtype, device=flat.device).index_add_(0, codes, flat)
        pending = getattr(self, "_pending", None)
        if pending is None:
            self._pending = [counts, sums, [flat]]
        else:
            pending[0] += counts
            pending[1] += sums
            pending[2].append(flat)

    def discard_accumulated(self) -> None:
        self._pending = None

    @torch.no_grad()
    def apply_accumulated(self) -> bool:
        """One EMA step from the statistics accumulated since the last one (summed over micro-batches and, under
        DDP, over processes); returns False when nothing was accumulated."""
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is None:
            return False
        counts, sums, flats = pending
        self._ema_update(torch.cat(flats), counts, sums)
        return True

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, counts: torch.Tensor, sums: torch.Tensor) -> None:
        book = self.codebook
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        book.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        book.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = book.cluster_size.sum()
        smoothed = (book.cluster_size + self.epsilon) / (total + self.num_codes * self.epsilon) * total
        book.embed.copy_(book.embed_avg / smoothed[:, None])
        self.last_reseeded = 0
        if self.reseed_dead_codes:
            self._reseed(flat, self.threshold(counts.sum()))
        self.updates += 1

    def threshold(self, vectors_per_step: float | torch.Tensor) -> float | torch.Tensor:
        """The EMA count under which a code counts as dead, for a step of `vectors_per_step` vectors (a number, or a
        tensor on the device, which keeps the training step free of host syncs)."""
        if self.dead_code_share > 0:
            return self.dead_code_share * vectors_per_step / self.num_codes
        return self.dead_code_threshold

    @torch.no_grad()
    def _reseed(self, flat: torch.Tensor, threshold: float | torch.Tensor) -> None:
        """Move codes whose EMA count fell below the threshold onto random vectors of this batch.

        Written into `embed`, `embed_avg` and `cluster_size` alike, so the next EMA step starts from the new
        vector (the authors' version changed `embed` only and recomputed it from the stale averages at once).
        A candidate vector is drawn for every code and kept where the code is dead: no count of dead codes or
        boolean indexing, whose sizes the host would have to wait for on a GPU."""
        book = self.codebook
        dead = book.cluster_size < threshold
        self.last_reseeded = dead.sum()  # a tensor: read only when logged
        new = flat[torch.randint(0, flat.shape[0], (self.num_codes,), device=flat.device)]
        if _distributed():  # every process re-seeds with the first one's vectors
            new = new.contiguous()
            dist.broadcast(new, src=0)
        rows = dead[:, None]
        threshold = torch.as_tensor(threshold, dtype=book.cluster_size.dtype, device=book.cluster_size.device)
        book.embed.copy_(torch.where(rows, new.to(book.embed), book.embed))
        book.cluster_size.copy_(torch.where(dead, threshold, book.cluster_size))
        book.embed_avg.copy_(torch.where(rows, (new * threshold).to(book.embed_avg), book.embed_avg))
