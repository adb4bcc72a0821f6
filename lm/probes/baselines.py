"""Baselines with the same K and the same frames as a codec: its codes shuffled across frames (same usage
histogram, no relation to content), k-means on log-mel frames (fitted on training audio, never on the frames it is
scored on), and the labels shuffled across frames."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.codebook import kmeans, nearest_rows

MEL_BANDS = 80


def shuffled(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """`values` in a random order (a permutation: the same histogram, no relation to position)."""
    return np.random.default_rng(seed).permutation(values)


def shuffled_per_utterance(codes: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """All frames' codes shuffled across frames and utterances, then cut back to each utterance's length."""
    flat = shuffled(np.concatenate(codes), seed)
    return np.split(flat, np.cumsum([len(c) for c in codes])[:-1])


def log_mel_frames(waveform: torch.Tensor, sampling_rate: int, hop: int, num_frames: int) -> torch.Tensor:
    """[num_frames, MEL_BANDS] log-mel, window centred on each code frame's centre ((t + 0.5) * hop)."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sampling_rate, n_fft=4 * hop, hop_length=hop, n_mels=MEL_BANDS,
                                               center=True, power=2.0)
    shifted = torch.nn.functional.pad(waveform.reshape(1, -1).float(), (0, hop // 2))[:, hop // 2:]
    spec = torch.log(mel(shifted)[0].clamp_min(1e-7)).T  # center=True: frame t is centred at t * hop
    shifted_frames = spec[:num_frames]
    if shifted_frames.shape[0] < num_frames:  # pad by repeating the last frame
        shifted_frames = torch.cat([shifted_frames, shifted_frames[-1:].expand(num_frames - shifted_frames.shape[0], -1)])
    return shifted_frames


@dataclass
class MelKMeans:
    """K-means codebook of standardised log-mel frames; `fit` on training frames, `assign` any other frames."""

    mean: torch.Tensor
    std: torch.Tensor
    centroids: torch.Tensor

    @classmethod
    def fit(cls, features: list[torch.Tensor], codebook_size: int, iterations: int = 20, seed: int = 0) -> "MelKMeans":
        if not features or sum(len(f) for f in features) == 0:
            raise WavTokenizerError("the k-means baseline needs training frames to fit on; got none")
        stacked = torch.cat(features).float()
        mean = stacked.mean(0)
        std = stacked.std(0).clamp_min(1e-5) if len(stacked) > 1 else torch.ones(stacked.shape[1])
        centroids, _ = kmeans((stacked - mean) / std, codebook_size, iterations, torch.Generator().manual_seed(seed))
        return cls(mean, std, centroids)

    def assign(self, features: torch.Tensor) -> np.ndarray:
        return nearest_rows((features.float() - self.mean) / self.std, self.centroids).numpy().astype(np.int64)


def mel_kmeans_codes(features: list[torch.Tensor], codebook_size: int, iterations: int = 20, seed: int = 0,
                     fit_features: list[torch.Tensor] | None = None) -> list[np.ndarray]:
    """Codes of k-means (K = the codec's codebook size) on standardised log-mel frames, fitted on `fit_features`.

    Without `fit_features` (deprecated) it is fitted on `features` themselves, which favours it: it then learns the
    very frames it is scored on."""
    if fit_features is None:
        warnings.warn("mel_kmeans_codes without fit_features fits k-means on the frames it labels; pass training "
                      "frames as fit_features", DeprecationWarning, stacklevel=2)
        fit_features = features
    model = MelKMeans.fit(fit_features, codebook_size, iterations, seed)
    return [model.assign(f) for f in features]
