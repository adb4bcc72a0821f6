"""lm.probes baselines: shuffling really shuffles, the log-mel k-means is fitted on training audio only, at the codec's
sampling rate, and never on the probed split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lm.probes.runner as runner
from lm.probes.baselines import MelKMeans, log_mel_frames, shuffled, shuffled_per_utterance
from lm.probes.codes import CodedSet
from lm.probes.data import ProbeUtterance, TrainingAudio
from wavtokenizer_hf.errors import WavTokenizerError


def test_shuffled_is_a_seeded_permutation_that_moves_the_values():
    values = np.arange(1000)
    out = shuffled(values, seed=0)
    assert sorted(out) == sorted(values)  # same histogram
    assert np.mean(out == values) < 0.01  # an identity "shuffle" keeps every value in place
    assert abs(np.corrcoef(out, values)[0, 1]) < 0.1
    assert (shuffled(values, seed=0) == out).all() and not (shuffled(values, seed=1) == out).all()
    parts = shuffled_per_utterance([np.zeros(300, dtype=int), np.ones(200, dtype=int)], seed=0)
    assert [len(p) for p in parts] == [300, 200] and 0 < parts[0].mean() < 1  # mixed across utterances


def _utterances(count: int, seed: int, rate: int = 24000) -> list[ProbeUtterance]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):  # noise through a random low-pass: spectra differ by utterance
        width = int(rng.integers(1, 12))
        wave = np.convolve(rng.normal(size=rate // 2), np.ones(width) / width, mode="same").astype(np.float32)
        out.append(ProbeUtterance(f"utt{seed}-{i}", torch.from_numpy(wave), rate, "", [], []))
    return out


def _reference(utterances: list[ProbeUtterance], rate: int = 24000, frame_rate: float = 75.0, k: int = 16) -> CodedSet:
    frames = [int(u.waveform.numel() / u.rate * frame_rate) for u in utterances]
    return CodedSet("codec", [np.zeros(n, dtype=np.int64) for n in frames], frame_rate, k, sampling_rate=rate)


def test_kmeans_codes_of_an_utterance_do_not_depend_on_the_other_probed_utterances():
    probed = _utterances(6, seed=1)
    training = [TrainingAudio(u.id, u.waveform, u.rate) for u in _utterances(6, seed=2)]
    together = runner.mel_baseline(probed, _reference(probed), training).codes
    alone = runner.mel_baseline(probed[:1], _reference(probed[:1]), training).codes
    assert (alone[0] == together[0]).all()  # fitted on the probed frames, the centroids would move with them
    hop = 24000 // 75
    fitted = MelKMeans.fit([log_mel_frames(a.waveform, 24000, hop, a.waveform.numel() // hop) for a in training], 16)
    assert (fitted.assign(log_mel_frames(probed[0].waveform, 24000, hop, len(together[0]))) == together[0]).all()


def test_the_log_mel_baseline_runs_at_the_codec_sampling_rate(monkeypatch):
    calls = []

    def recording(waveform, sampling_rate, hop, num_frames):
        calls.append((sampling_rate, hop))
        return log_mel_frames(waveform, sampling_rate, hop, num_frames)

    monkeypatch.setattr(runner, "log_mel_frames", recording)
    probed = _utterances(2, seed=3, rate=16000)
    training = [TrainingAudio(u.id, u.waveform, u.rate) for u in _utterances(2, seed=4, rate=16000)]
    runner.mel_baseline(probed, _reference(probed, rate=16000, frame_rate=50.0), training)
    assert set(calls) == {(16000, 320)}


def test_the_kmeans_baseline_is_never_fitted_on_the_probed_split(small_corpus):
    with pytest.raises(WavTokenizerError, match="other audio than the probed split"):
        runner.run_probes({"c": "unused"}, small_corpus, "test", limit=2, fit_split="test")
    with pytest.raises(WavTokenizerError, match="training frames"):
        MelKMeans.fit([], 16)
