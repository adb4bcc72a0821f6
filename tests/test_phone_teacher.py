"""The phone teacher: frame labels from phone timings (crops, repeats, speed), its loss, and a training run that
uses it without changing what is exported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import MICRO

from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.training import Trainer, load_train_config
from wavtokenizer_hf.training.phones import IGNORE, TimedPhones, frame_labels, phone_inventory, phone_loss

RATE, HOP = 24000, 320


def micro_config(corpus, *overrides):
    return load_train_config("tiny", [f"data.train={corpus}", *MICRO, *overrides])
INDEX = {"a": 0, "b": 1}
A_THEN_B = [{"phone": "b", "start": 0.5, "end": 1.0}, {"phone": "a", "start": 0.0, "end": 0.5}]


def labels(start: int = 0, speed: float = 1.0, phones=A_THEN_B, frames: int = 75) -> list[int]:
    return frame_labels(TimedPhones(phones, INDEX), RATE, start, frames, HOP, speed, RATE).tolist()


def test_each_frame_gets_the_phone_sounding_at_its_centre():
    assert labels() == [0] * 37 + [1] * 38  # frame 37's centre is 37.5 x 320 / 24000 = 0.5 s


def test_a_crop_past_the_clip_end_wraps_around_as_the_repeated_audio_does():
    assert labels(start=RATE // 2) == [1] * 37 + [0] * 38


def test_a_faster_crop_reads_its_labels_faster():
    assert labels(speed=2.0, frames=37) == [0] * 19 + [1] * 18  # frame 19's centre: 19.5 x 640 / 24000 = 0.52 s


def test_frames_outside_every_phone_and_untimed_rows_carry_no_label():
    gap = [{"phone": "a", "start": 0.0, "end": 0.2}, {"phone": "b", "start": 0.6, "end": 1.0}]
    got = labels(phones=gap)
    assert got[:15] == [0] * 15 and set(got[15:44]) == {IGNORE} and set(got[45:]) == {1}
    assert set(labels(phones=[])) == {IGNORE}
    assert phone_inventory([A_THEN_B, [], None, gap]) == ["a", "b"]


def test_the_phone_loss_counts_labelled_frames_only_and_is_zero_without_any():
    logits = torch.tensor([[[5.0, -5.0], [-5.0, 5.0], [5.0, -5.0]]])  # (1, 3 frames, 2 classes)
    right = torch.tensor([[0, 1, IGNORE]])
    wrong = torch.tensor([[1, 0, IGNORE]])
    loss, accuracy = phone_loss(logits, right)
    assert float(accuracy) == 1.0 and float(loss) < 1e-3
    loss, accuracy = phone_loss(logits, wrong)
    assert float(accuracy) == 0.0 and float(loss) == pytest.approx(10.0, abs=1e-3)
    loss, accuracy = phone_loss(logits, torch.full((1, 3), IGNORE))
    assert float(loss) == 0.0 and float(accuracy) == 0.0
    loss, _ = phone_loss(logits, torch.tensor([[0, 1, 0, 1]]))  # one label more than frames: cut to the frames
    assert float(loss) < 1e-3


def test_a_run_with_the_phone_teacher_trains_its_head_and_exports_a_stock_codec(small_corpus, tmp_path):
    from safetensors.torch import load_file

    trainer = Trainer(micro_config(small_corpus, "loss.phones=1.0"), tmp_path / "run")
    head = trainer.accelerator.unwrap_model(trainer.generator).phone_head
    before = [p.detach().clone() for p in head.parameters()]
    trainer.fit(4)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert records[0]["phone_inventory"] == trainer.phone_inventory and len(trainer.phone_inventory) > 5
    assert any(r.get("phone_ce", 0) > 0 for r in records)
    assert any(not torch.equal(a, b) for a, b in zip(before, head.parameters()))
    exported = load_file(str(trainer.export() / "model.safetensors"))
    assert not any("phone" in key for key in exported)
    plain = Trainer(micro_config(small_corpus), tmp_path / "plain")
    assert set(exported) == set(load_file(str(plain.export() / "model.safetensors")))


def test_resuming_with_another_phone_teacher_is_refused(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.phones=1.0"), tmp_path)
    trainer.fit(1)
    trainer.close()
    with pytest.raises(WavTokenizerError, match="phone teacher has .* classes, this run's .* give 0"):
        Trainer(micro_config(small_corpus), tmp_path)


def test_crops_come_with_labels_and_teacher_frames_that_follow_their_speed(small_corpus):
    from wavtokenizer_hf.training.data import ClipSource, RandomCrops
    from wavtokenizer_hf.training.whisper_teacher import DIM, frame_targets

    source = ClipSource(small_corpus, "train", with_phones=True)
    timed = next(i for i, p in enumerate(source.phones) if p)
    index = {p: i for i, p in enumerate(phone_inventory(source.phones))}
    # teacher features that name their own frame (the real ones: tests/test_whisper_teacher.py)
    source.teacher = [np.repeat(np.arange(int(source.read(i)[0].size / RATE * 50) + 1, dtype=np.float16)[:, None],
                                DIM, axis=1) for i in range(len(source))]
    crops = RandomCrops(source, RATE // 2, RATE, seed=0, pitch_semitones=3, phone_index=index, hop=HOP,
                        with_teacher=True)
    crop, got, teacher, _ = crops[timed]  # epoch 0
    rng = np.random.default_rng([0, 0, timed])  # the draws the crop made: its speed, then its start
    played = crops.played_rate(rng)
    clip = source.read(timed)[0].size
    needed = int(np.ceil(RATE // 2 * played / RATE)) + 1
    start = int(rng.integers(0, max(clip, needed * (needed // clip + 1) if clip < needed else clip) - needed + 1))
    expected = frame_labels(TimedPhones(source.phones[timed], index), clip, start, RATE // 2 // HOP, HOP,
                            played / RATE, RATE)
    assert played != RATE and crop.numel() == RATE // 2
    assert (got != IGNORE).any() and torch.equal(got, expected)
    assert torch.equal(teacher, frame_targets(source.teacher[timed], clip, start, RATE // 2 // HOP, HOP,
                                              played / RATE, RATE))
    assert teacher.shape == (RATE // 2 // HOP, DIM)
    assert torch.equal(RandomCrops(source, RATE // 2, RATE, seed=0, pitch_semitones=3)[timed][2], torch.empty(0))


def test_the_phone_loss_falls_as_the_teacher_trains(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.phones=1.0", "data.batch_size=8", "optim.lr=1e-2"), tmp_path)
    audio, phone_labels, *_ = next(iter(trainer.loader))
    assert (phone_labels != IGNORE).any()
    losses = [trainer.train_step(audio, phone_labels)["phone_ce"] for _ in range(25)]
    assert losses[-1] < 0.75 * losses[0]



def test_the_teacher_heads_take_bf16_latents_from_an_autocast_generator():
    # the heads run outside the generator's autocast, on its bf16 latents, with float32 weights
    from wavtokenizer_hf.training.phones import PhoneHead

    head = PhoneHead(16, 5)
    logits = head(torch.randn(2, 16, 10).to(torch.bfloat16))
    assert logits.shape == (2, 10, 5) and logits.dtype == torch.float32
