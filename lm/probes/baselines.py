"""Baselines with the same K and the same frames as a codec: its codes shuffled across frames (same usage
histogram, no relation to content), k-means on log-mel frames, and the labels shuffled across frames."""

from __future__ import annotations

import numpy as np
import torch

from wavtokenizer_hf.training.vq import kmeans, nearest_codes

MEL_BANDS = 80


def shuffled(values: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(values)


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


def mel_kmeans_codes(features: list[torch.Tensor], codebook_size: int, iterations: int = 20,
                     seed: int = 0) -> list[np.ndarray]:
    """K-means (K = the codec's codebook size) on standardised log-mel frames of all utterances."""
    stacked = torch.cat(features)
    mean, std = stacked.mean(0), stacked.std(0).clamp_min(1e-5)
    normed = (stacked - mean) / std
    centroids, _ = kmeans(normed, codebook_size, iterations, torch.Generator().manual_seed(seed))
    codes = nearest_codes(normed, centroids).numpy()
    out, start = [], 0
    for f in features:
        out.append(codes[start:start + len(f)])
        start += len(f)
    return out
