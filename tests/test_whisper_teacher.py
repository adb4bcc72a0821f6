"""The Whisper teacher: encoder features per clip (alone, cut to its length, cached), their frames under crops and
speed, the cosine loss, and a training run that uses it without changing what is exported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MICRO

from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.training import Trainer, load_train_config
from wavtokenizer_hf.training import whisper_teacher
from wavtokenizer_hf.training.whisper_teacher import DIM, frame_targets, teacher_loss

pytest.importorskip("faster_whisper", reason="the Whisper teacher needs the recogniser's packages")
RATE, HOP = 24000, 320


def micro_config(corpus, cache: Path, *overrides):
    return load_train_config("tiny", [f"data.train={corpus}", f"data.teacher_cache={cache}", *MICRO, *overrides])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("teacher_cache")


def test_each_clip_gets_fifty_frames_a_second_and_a_long_one_its_windows_in_turn():
    rng = np.random.default_rng(0)
    short, long = (0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000 * 2 + 17, 16000 * 31))
    features = whisper_teacher.encoder_features([short, long], progress=False)
    assert [f.shape for f in features] == [(101, DIM), (1550, DIM)] and features[0].dtype == np.float16
    first, rest = whisper_teacher.encoder_features([long[:16000 * 30], long[16000 * 30:]], progress=False)
    assert np.array_equal(features[1], np.concatenate([first, rest]))


def test_the_features_are_cached_under_the_clips_and_weights_and_read_back(small_corpus, tmp_path, monkeypatch):
    from wavtokenizer_hf.training.data import ClipSource

    source = ClipSource(small_corpus)
    calls = []
    real = whisper_teacher.encoder_features
    monkeypatch.setattr(whisper_teacher, "encoder_features", lambda clips, **kw: calls.append(len(clips)) or real(
        clips, **kw))
    first = whisper_teacher.teacher_features(source, tmp_path, progress=False)
    again = whisper_teacher.teacher_features(source, tmp_path, progress=False)
    assert calls == [len(source)] and len(first) == len(source)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    durations = [source.read(i)[0].size / source.read(i)[1] for i in range(len(source))]
    assert [len(f) for f in first] == [int(np.ceil(d * 50 - 1e-9)) for d in durations]
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    source.dataset = source.dataset.select(range(len(source) - 1))  # other clips: another key, computed anew
    whisper_teacher.teacher_features(source, tmp_path, progress=False)
    assert calls == [len(source) + 1, len(source)] and len(list(tmp_path.glob("*.safetensors"))) == 2


def test_each_frame_takes_the_teacher_frame_at_its_centre_wrapping_and_faster_as_the_crop_does():
    features = np.repeat(np.arange(50, dtype=np.float16)[:, None], DIM, axis=1)  # a 1 s clip: frame k holds k
    plain = frame_targets(features, RATE, 0, 75, HOP, 1.0, RATE)[:, 0]
    assert plain.tolist() == [int((t + 0.5) * HOP / RATE * 50) for t in range(75)]
    wrapped = frame_targets(features, RATE, RATE // 2, 75, HOP, 1.0, RATE)[:, 0]
    assert wrapped[0] == 25 and wrapped[-1] == 24  # from 0.5 s on, round past the clip's end
    faster = frame_targets(features, RATE, 0, 37, HOP, 2.0, RATE)[:, 0]
    assert faster[10] == int(10.5 * 2 * HOP / RATE * 50)
    assert torch.isnan(frame_targets(None, RATE, 0, 5, HOP, 1.0, RATE)).all()


def test_the_teacher_loss_is_zero_along_the_targets_and_counts_only_frames_that_have_one():
    target = torch.randn(2, 4, DIM)
    target[1, 2:] = float("nan")
    distance, similarity = teacher_loss(3 * torch.nan_to_num(target), target)
    assert float(distance) == pytest.approx(0, abs=1e-5) and float(similarity) == pytest.approx(1, abs=1e-5)
    opposite, _ = teacher_loss(-torch.nan_to_num(target), target)
    assert float(opposite) == pytest.approx(2, abs=1e-5)
    wrong = torch.nan_to_num(target).clone()
    wrong[1, 2:] = torch.randn(2, DIM)  # frames without a target do not count
    assert float(teacher_loss(wrong, target)[0]) == pytest.approx(0, abs=1e-5)
    none, _ = teacher_loss(torch.randn(1, 3, DIM), torch.full((1, 3, DIM), float("nan")))
    assert float(none) == 0.0


def test_a_run_with_the_whisper_teacher_trains_its_head_and_exports_a_stock_codec(small_corpus, cache, tmp_path):
    from safetensors.torch import load_file

    trainer = Trainer(micro_config(small_corpus, cache, "loss.whisper=1.0", "optim.lr=1e-2"), tmp_path / "run")
    audio, _, teacher, _ = next(iter(trainer.loader))
    assert teacher.shape == (audio.shape[0], audio.shape[1] // HOP, DIM) and not torch.isnan(teacher).any()
    distances = [trainer.train_step(audio, None, teacher)["whisper_distance"] for _ in range(20)]
    assert distances[-1] < 0.8 * distances[0]
    trainer.fit(trainer.step + 2)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("whisper_distance", 0) > 0 for r in records)
    exported = load_file(str(trainer.export() / "model.safetensors"))
    assert not any("whisper" in key or "head." == key[:5] and "proj" in key for key in exported)
    plain = Trainer(micro_config(small_corpus, cache), tmp_path / "plain")
    assert set(exported) == set(load_file(str(plain.export() / "model.safetensors")))


def test_resuming_with_or_without_the_whisper_teacher_against_the_checkpoint_is_refused(small_corpus, cache,
                                                                                      tmp_path):
    trainer = Trainer(micro_config(small_corpus, cache, "loss.whisper=1.0", "run.save_every=1"), tmp_path)
    trainer.fit(1)
    trainer.close()
    with pytest.raises(WavTokenizerError, match="trained with the Whisper teacher"):
        Trainer(micro_config(small_corpus, cache), tmp_path)
