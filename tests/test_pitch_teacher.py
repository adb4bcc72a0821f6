"""The pitch teacher: F0 classes, each crop's classes under speed and wrap-around, the cached tracks, and a training
run that uses it without changing what is exported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import MICRO

from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.training import Trainer, load_train_config
from wavtokenizer_hf.training import pitch_teacher
from wavtokenizer_hf.training.pitch_teacher import BINS, CLASSES, frame_pitch_labels, pitch_classes

RATE, HOP = 24000, 320


def micro_config(corpus, cache, *overrides):
    return load_train_config("tiny", [f"data.train={corpus}", f"data.teacher_cache={cache}", *MICRO, *overrides])


def test_each_semitone_above_sixty_hertz_is_one_class_and_no_pitch_is_class_zero():
    f0 = np.array([0.0, 60.0, 61.0, 60 * 2 ** (1 / 12) + 0.01, 120.0, 240.0, 449.0, 2000.0, 30.0])
    assert pitch_classes(f0).tolist() == [0, 1, 1, 2, 13, 25, BINS, BINS, 1]
    assert CLASSES == BINS + 1 == 36


def tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(RATE * seconds)) / RATE)).astype(np.float32)


def test_a_tone_gets_its_semitone_and_a_crop_played_faster_a_higher_one():
    track = np.full(101, 200.0, dtype=np.float32)  # 1 s at 10 ms frames
    plain = frame_pitch_labels(track, RATE, 0, 75, HOP, 1.0, RATE)
    assert plain.tolist() == [int(pitch_classes(np.array([200.0]))[0])] * 75
    up = frame_pitch_labels(track, RATE, 0, 37, HOP, 2 ** (3 / 12), RATE)
    assert (up - plain[:37]).tolist() == [3] * 37
    assert frame_pitch_labels(None, RATE, 0, 5, HOP, 1.0, RATE).tolist() == [0] * 5


def test_each_frame_takes_the_track_at_its_centre_wrapping_as_the_repeated_audio_does():
    track = np.where(np.arange(101) < 50, 100.0, 0.0).astype(np.float32)  # voiced for the first half second
    labels = frame_pitch_labels(track, RATE, 0, 75, HOP, 1.0, RATE).tolist()
    voiced = int(pitch_classes(np.array([100.0]))[0])
    assert labels == [voiced] * 37 + [0] * 38  # frame 37's centre is 0.5 s: the track's frame 50
    wrapped = frame_pitch_labels(track, RATE, RATE // 2, 75, HOP, 1.0, RATE).tolist()
    assert wrapped == [0] * 37 + [voiced] * 38


def test_the_tracks_are_cached_under_the_clips_and_read_back(small_corpus, tmp_path, monkeypatch):
    from wavtokenizer_hf.training.data import ClipSource

    source = ClipSource(small_corpus)
    calls = []
    real = pitch_teacher.track_pitch
    monkeypatch.setattr(pitch_teacher, "track_pitch", lambda *a: calls.append(1) or real(*a))
    first = pitch_teacher.pitch_tracks(source, tmp_path, progress=False)
    again = pitch_teacher.pitch_tracks(source, tmp_path, progress=False)
    assert len(calls) == len(source) == len(first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    durations = [source.read(i)[0].size / source.read(i)[1] for i in range(len(source))]
    assert [len(t) for t in first] == [int(d * 100) + 1 for d in durations]
    source.dataset = source.dataset.select(range(len(source) - 1))  # other clips: another key, tracked anew
    pitch_teacher.pitch_tracks(source, tmp_path, progress=False)
    assert len(calls) == 2 * len(source) + 1 and len(list(tmp_path.glob("*.safetensors"))) == 2


def test_crops_come_with_the_pitch_classes_of_their_own_audio(small_corpus, tmp_path):
    from wavtokenizer_hf.training.data import ClipSource, RandomCrops

    source = ClipSource(small_corpus)
    source.pitch = pitch_teacher.pitch_tracks(source, tmp_path, progress=False)
    crops = RandomCrops(source, RATE // 2, RATE, seed=0, pitch_semitones=3, hop=HOP, with_pitch=True)
    clip = next(i for i, t in enumerate(source.pitch) if (t > 0).mean() > 0.3)
    crop, _, _, labels = crops[clip]
    assert labels.shape == (RATE // 2 // HOP,) and (labels > 0).any()
    from wavtokenizer_hf.evaluation.pitch import track_pitch

    f0, _ = track_pitch(crop, RATE)  # the crop's own pitch, where both call it voiced, within a semitone
    own = pitch_classes(f0[np.round((np.arange(len(labels)) + 0.5) * HOP / RATE * 100).astype(int)])
    both = (own > 0) & (labels.numpy() > 0)
    assert both.mean() > 0.3 and np.median(np.abs(own[both] - labels.numpy()[both])) <= 1
    with pytest.raises(WavTokenizerError, match="pitch teacher's F0 tracks are not loaded"):
        RandomCrops(ClipSource(small_corpus), RATE // 2, RATE, with_pitch=True)


def test_the_pitch_loss_falls_as_the_teacher_trains(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, tmp_path / "cache", "loss.pitch=1.0", "data.batch_size=8",
                                   "optim.lr=1e-2"), tmp_path / "run")
    audio, _, _, pitch = next(iter(trainer.loader))
    assert pitch.shape == (audio.shape[0], audio.shape[1] // HOP) and (pitch > 0).any()
    losses = [trainer.train_step(audio, None, None, pitch)["pitch_ce"] for _ in range(25)]
    assert losses[-1] < 0.75 * losses[0]


def test_a_run_with_the_pitch_teacher_trains_its_head_and_exports_a_stock_codec(small_corpus, tmp_path):
    from safetensors.torch import load_file

    cache = tmp_path / "cache"
    trainer = Trainer(micro_config(small_corpus, cache, "loss.pitch=1.0", "run.save_every=1"), tmp_path / "run")
    head = trainer.accelerator.unwrap_model(trainer.generator).pitch_head
    before = [p.detach().clone() for p in head.parameters()]
    trainer.fit(2)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("pitch_ce", 0) > 0 for r in records)
    assert any(not torch.equal(a, b) for a, b in zip(before, head.parameters()))
    exported = load_file(str(trainer.export() / "model.safetensors"))
    plain = Trainer(micro_config(small_corpus, cache), tmp_path / "plain")
    assert set(exported) == set(load_file(str(plain.export() / "model.safetensors")))
    trainer.close()
    with pytest.raises(WavTokenizerError, match="trained with the pitch teacher"):
        Trainer(micro_config(small_corpus, cache), tmp_path / "run")
