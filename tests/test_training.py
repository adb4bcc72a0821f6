"""Codec training: the loop learns, each fixed defect of the authors' code stays fixed, resume is bit-exact,
the export loads in stock transformers, and a two-process accelerate run works."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoModel

from wavtokenizer_hf.curves import plot_scores
from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.evaluation import load_test_set
from wavtokenizer_hf.evaluation.snapshots import score_snapshots
from wavtokenizer_hf.training import Trainer, load_train_config
from wavtokenizer_hf.training.losses import MelLoss, MultiScaleMelLoss
from wavtokenizer_hf.training.vq import EMAQuantizer, kmeans, nearest_codes

from conftest import MICRO, ROOT

SCRIPT = str(ROOT / "scripts" / "train_codec.py")


def micro_config(corpus, *overrides):
    return load_train_config("tiny", [f"data.train={corpus}", *MICRO, *overrides])


def log_records(path):
    return [r for r in map(json.loads, open(path)) if "step" in r]


def test_a_few_steps_lower_the_mel_loss(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=25", "optim.lr=3e-3"), tmp_path)
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    fixed = torch.cat([batch for _, batch in zip(range(3), trainer.loader)])  # the same audio before and after

    def mel_on_fixed() -> float:
        generator.eval()
        with torch.no_grad():
            value = float(trainer.mel_loss(generator(fixed).audio_values, fixed))
        generator.train()
        return value

    before = mel_on_fixed()
    trainer.fit(30)
    assert len(log_records(tmp_path / "log.jsonl")) == 30
    assert mel_on_fixed() < 0.9 * before
    last = log_records(tmp_path / "log.jsonl")[-1]
    assert {"d_mpd", "d_mrd", "d_mbd", "g_adv_mbd", "fm_mbd"} <= set(last)  # the GAN phase ran


def harmonic_tone(f0: float = 200.0, seconds: float = 1.0, rate: int = 24000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return 0.1 * sum(torch.sin(2 * math.pi * k * f0 * t + k) / k for k in range(1, int(4000 / f0))).unsqueeze(0)


def test_multiscale_mel_sees_smeared_harmonics_more_than_the_mel():
    """A copy of a harmonic tone with the same 1024-point STFT magnitudes but random phases (what an incoherent
    iSTFT head produces) costs more, relative to the 100-band mel loss, at the finer resolutions."""
    tone = harmonic_tone()
    window = torch.hann_window(1024)
    spec = torch.stft(tone, 1024, 256, window=window, return_complex=True)
    phases = torch.rand(spec.shape, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    smeared = torch.istft(spec.abs() * torch.exp(1j * phases), 1024, 256, window=window, length=tone.shape[-1])
    mel = MelLoss(24000)
    multiscale = MultiScaleMelLoss(24000, load_train_config("tiny").loss.multiscale_mel_scales)
    assert float(multiscale(tone, tone)) == 0.0
    assert float(multiscale(smeared, tone)) > 1.2 * float(mel(smeared, tone))


def test_multiscale_mel_term_enters_the_generator_loss(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.multiscale_mel=15", "loss.gan_start_step=100"), tmp_path)
    trainer.fit(2)
    trainer.fit(3)  # a second fit() continues the same log
    records = log_records(tmp_path / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        expected = 45 * record["mel"] + record["commit"] + 15 * record["multiscale_mel"]
        assert record["loss"] == pytest.approx(expected, rel=1e-5)


def test_snapshots_are_scored_against_minutes_and_plotted(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "run.export_every=2", "loss.gan_start_step=100"), tmp_path)
    trainer.fit(4)
    trainer.export("final")
    utterances = load_test_set(small_corpus, "test", limit=2)
    rows = score_snapshots(tmp_path, utterances, final_step=trainer.step)
    assert [r["step"] for r in rows] == [2, 4, 4]
    assert 0 < rows[0]["minutes"] < rows[1]["minutes"] == rows[2]["minutes"]
    assert rows[1]["stoi"] == pytest.approx(rows[2]["stoi"])  # the final export is the step-4 model
    assert all(0 < r["stoi"] < 1 and r["mel_distance"] > 0 for r in rows)
    png = plot_scores(rows, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(WavTokenizerError, match="no snapshots"):
        score_snapshots(_empty_run(tmp_path), utterances)


def _empty_run(tmp_path):
    run = tmp_path / "empty_run"
    run.mkdir()
    (run / "log.jsonl").write_text("")
    return run


# --- defects of the authors' training code, each with a test that fails on the defect ---------------------------

def parameters_of(trainer, name):
    return [p.detach().clone() for p in trainer.accelerator.unwrap_model(trainer.discriminators)[name].parameters()]


@pytest.mark.parametrize("train_mbd", [True, False])
def test_multiband_discriminator_is_trained(small_corpus, tmp_path, train_mbd):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=0", f"fixes.train_mbd={train_mbd}"), tmp_path)
    in_optimizer = {id(p) for group in trainer.opt_d.param_groups for p in group["params"]}
    mbd = list(trainer.accelerator.unwrap_model(trainer.discriminators)["mbd"].parameters())
    before = parameters_of(trainer, "mbd")
    trainer.fit(2)
    changed = any(not torch.equal(a, b) for a, b in zip(before, parameters_of(trainer, "mbd")))
    assert all(id(p) in in_optimizer for p in mbd) == train_mbd
    assert changed == train_mbd


def make_quantizer(num_codes=16, dim=4, reseed=True):
    book = torch.nn.Module()
    for name, value in (("inited", torch.ones(1)), ("cluster_size", torch.zeros(num_codes)),
                        ("embed", torch.zeros(num_codes, dim)), ("embed_avg", torch.zeros(num_codes, dim))):
        book.register_buffer(name, value)
    return EMAQuantizer(book, decay=0.99, dead_code_threshold=2.0, reseed_dead_codes=reseed)


@pytest.mark.parametrize("reseed", [True, False])
def test_dead_codes_are_reseeded_and_stay(reseed):
    torch.manual_seed(0)
    quantizer = make_quantizer(reseed=reseed)
    book = quantizer.codebook
    book.embed[:] = 100.0  # every code far from the data...
    book.embed[0] = 0.0  # ...except one, which takes every vector
    book.cluster_size[:] = 1.0  # all but code 0 are below the threshold of 2 after this step
    book.cluster_size[0] = 50.0
    book.embed_avg.copy_(book.embed * book.cluster_size[:, None])
    quantizer.train()
    data = torch.randn(2, 4, 100)
    quantizer(data)  # one EMA step: dead codes get re-seeded
    usage = quantizer(data, update=False).codes.unique().numel()
    near_data = int((book.embed.abs().max(dim=1).values < 10).sum())
    if reseed:
        assert near_data == 16 and usage > 8  # re-seeded codes sit on batch vectors and get used
        quantizer(torch.randn(2, 4, 100))  # the next EMA step starts from the new vectors, not the stale averages
        assert int((book.embed.abs().max(dim=1).values < 10).sum()) == 16
    else:
        assert near_data == 1 and usage == 1  # the authors' behaviour: nothing moves


def test_kmeans_runs_in_bounded_memory():
    # 40,000 x 4,096 x 64 floats would be 42 GB as one difference tensor; chunked distances need ~130 MB
    vectors = torch.randn(40_000, 64)
    centroids, counts = kmeans(vectors, 4096, iterations=1, generator=torch.Generator().manual_seed(0))
    assert centroids.shape == (4096, 64) and int(counts.sum()) == 40_000
    small, book = torch.randn(500, 8), torch.randn(64, 8)
    brute = torch.cdist(small, book).argmin(1)
    assert torch.equal(nearest_codes(small, book, max_chunk_elements=64 * 7), brute)


def test_kmeans_initialises_on_training_batches(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "quantizer.kmeans_batches=2"), tmp_path)
    assert trainer.init_info["kmeans_vectors"] == 2 * 4 * 38  # 2 batches of 4 crops of 0.5 s = 38 frames
    assert trainer.accelerator.unwrap_model(trainer.generator).quantizer.initialized


@pytest.mark.parametrize("single_update", [True, False])
def test_codebook_ema_is_updated_once_per_step(small_corpus, tmp_path, single_update):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=0", f"fixes.single_ema_update={single_update}"),
                      tmp_path)
    trainer.fit(3)
    updates = int(trainer.accelerator.unwrap_model(trainer.generator).quantizer.updates)
    assert updates == (3 if single_update else 6)


def test_non_finite_loss_is_skipped_and_gradients_are_clipped(small_corpus, tmp_path, monkeypatch):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=100"), tmp_path)
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    before = [p.detach().clone() for p in generator.parameters()]
    real_mel = trainer.mel_loss.forward
    monkeypatch.setattr(trainer.mel_loss, "forward", lambda a, b: real_mel(a, b) * float("nan"))
    trainer.fit(1)
    assert trainer.skipped == 1
    assert all(torch.equal(a, b) for a, b in zip(before, generator.parameters()))
    for p in generator.parameters():
        p.grad = torch.full_like(p, 1e3)
    norm = trainer._clip(trainer.generator)
    clipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in generator.parameters()]))
    assert norm > 1e3 and float(clipped) <= 1.0 + 1e-4


# --- resume, export, distributed ---------------------------------------------------------------------------------

def train_command(out, corpus, steps, *extra):
    overrides = [f"data.train={corpus}", *MICRO, "loss.gan_start_step=2", "run.save_every=3", *extra]
    return [sys.executable, SCRIPT, "--preset", "tiny", "--out", str(out), "--max-steps", str(steps),
            "--set", *overrides]


def test_resume_after_sigkill_is_bit_exact(small_corpus, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    clean = tmp_path / "clean"
    subprocess.run(train_command(clean, small_corpus, 9), check=True, capture_output=True, env=env)

    killed = tmp_path / "killed"
    process = subprocess.Popen(train_command(killed, small_corpus, 9), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        log = killed / "log.jsonl"
        if log.exists() and any(r.get("step", 0) >= 4 for r in map(json.loads, log.read_text().splitlines())):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    subprocess.run(train_command(killed, small_corpus, 9), check=True, capture_output=True, env=env)

    def by_step(path):
        return {r["step"]: (r["loss"], r["mel"], r["commit"], r.get("d_loss")) for r in log_records(path)}

    expected, resumed = by_step(clean / "log.jsonl"), by_step(killed / "log.jsonl")
    assert sorted(expected) == list(range(1, 10))
    for step in range(4, 10):  # steps after the checkpoint at step 3, recomputed after the kill
        assert resumed[step] == expected[step], step


def test_periodic_evaluation_logs_scores_and_writes_samples(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=100", "run.eval_every=2",
                                   "run.eval_utterances=3"), tmp_path)
    trainer.fit(2)
    events = [r for r in map(json.loads, open(tmp_path / "log.jsonl")) if r.get("event") == "eval"]
    assert len(events) == 1 and events[0]["step"] == 2 and 0 <= events[0]["stoi"] <= 1
    assert len(list((tmp_path / "samples").glob("step0000002_*.wav"))) == 2
    assert trainer.accelerator.unwrap_model(trainer.generator).training  # back to training mode


def test_export_loads_in_stock_transformers_with_the_same_codes(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=100", "run.export_every=2"), tmp_path)
    trainer.fit(3)
    assert sorted(p.name for p in tmp_path.glob("step*")) == ["step0000002"]  # periodic snapshot
    assert AutoModel.from_pretrained(tmp_path / "step0000002").config.codebook_size == 64
    path = trainer.export("final")
    generator = trainer.accelerator.unwrap_model(trainer.generator).eval()
    audio = next(iter(trainer.loader))
    with torch.no_grad():
        ours = generator(audio).audio_codes
        stock = AutoModel.from_pretrained(path).eval().encode(audio[:, None]).audio_codes[:, 0]
    assert torch.equal(ours, stock)
    assert (path / "README.md").exists() and "trained by wavtokenizer-hf" in (path / "README.md").read_text()


def test_two_process_accelerate_run(small_corpus, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               *train_command(out, small_corpus, 3)[1:]]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "final" / "model.safetensors").exists()
    assert [r["step"] for r in log_records(out / "log.jsonl")] == [1, 2, 3]


def test_training_logs_to_tensorboard(small_corpus, tmp_path):
    pytest.importorskip("tensorboard")
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=100", "run.log_with=tensorboard"), tmp_path)
    trainer.fit(2)
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and max(e.stat().st_size for e in events) > 100
