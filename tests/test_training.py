"""Codec training: the loop learns, each fixed defect of the authors' code stays fixed, resume continues from the
checkpoint bit for bit, a non-finite batch moves nothing, one run owns its folder, the export loads in stock
transformers, and a real two-process (torchrun, gloo) run keeps both processes identical."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import socket
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
from wavtokenizer_hf.training.phase_losses import phase_loss, wrapped_abs
from wavtokenizer_hf.training.generator import WavTokenizerGenerator
from wavtokenizer_hf.training.trainer import build_generator
from wavtokenizer_hf.codebook import kmeans, nearest_rows
from wavtokenizer_hf.training.vq import EMAQuantizer, rotated

from conftest import MICRO, ROOT

SCRIPT = str(ROOT / "scripts" / "train_codec.py")


def micro_config(corpus, *overrides):
    return load_train_config("tiny", [f"data.train={corpus}", *MICRO, *overrides])


def log_records(path):
    return [r for r in map(json.loads, open(path)) if "step" in r and "event" not in r]


def test_a_few_steps_lower_the_mel_loss(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=25", "optim.lr=3e-3"), tmp_path)
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    fixed = torch.cat([audio for _, (audio, *_) in zip(range(3), trainer.loader)])  # the same audio before and after

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
    assert {"d_mpd", "d_mrd", "d_dac", "g_adv_dac", "fm_dac"} <= set(last)  # the GAN phase ran


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


@pytest.mark.parametrize("train_dac", [True, False])
def test_the_dac_discriminator_is_trained(small_corpus, tmp_path, train_dac):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=0", f"fixes.train_dac={train_dac}"), tmp_path)
    in_optimizer = {id(p) for group in trainer.opt_d.param_groups for p in group["params"]}
    dac = list(trainer.accelerator.unwrap_model(trainer.discriminators)["dac"].parameters())
    before = parameters_of(trainer, "dac")
    trainer.fit(2)
    changed = any(not torch.equal(a, b) for a, b in zip(before, parameters_of(trainer, "dac")))
    assert all(id(p) in in_optimizer for p in dac) == train_dac
    assert changed == train_dac
    if not train_dac:  # the authors' untrained DAC: no gradients pile up in it (they would inflate the clip norm)
        assert all(p.grad is None for p in dac)


def test_training_clips_generator_and_discriminator_gradients(small_corpus, tmp_path, monkeypatch):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=0", "optim.grad_clip=0.01",
                                   "fixes.train_dac=false"), tmp_path)
    generator = set(map(id, trainer.accelerator.unwrap_model(trainer.generator).parameters()))
    discriminators = trainer.accelerator.unwrap_model(trainer.discriminators)
    dac = set(map(id, discriminators["dac"].parameters()))
    trained_d = {id(p) for name, m in discriminators.items() if name != "dac" for p in m.parameters()}
    clipped, real_clip = [], trainer.accelerator.clip_grad_norm_

    def spy(parameters, max_norm):
        parameters = list(parameters)
        norm = real_clip(parameters, max_norm)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None]))
        clipped.append(({id(p) for p in parameters}, float(norm), float(after)))
        return norm

    monkeypatch.setattr(trainer.accelerator, "clip_grad_norm_", spy)
    trainer.fit(2)
    groups = [ids for ids, _, _ in clipped]
    assert generator in groups and trained_d in groups  # both steps clip, every step
    assert len(clipped) == 4 and not any(ids & dac for ids in groups)
    assert all(norm > 0.01 and after <= 0.01 * (1 + 1e-4) for _, norm, after in clipped)


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
    if reseed:  # each re-seeded code starts at the threshold's count, with an average that agrees with its vector
        counts = book.cluster_size[1:]
        assert torch.equal(counts, torch.full_like(counts, 2.0))
        assert torch.allclose(book.embed_avg[1:], book.embed[1:] * counts[:, None])
    usage = quantizer(data, update=False).codes.unique().numel()
    near_data = int((book.embed.abs().max(dim=1).values < 10).sum())
    if reseed:
        assert near_data == 16 and usage > 8  # re-seeded codes sit on batch vectors and get used
        # the next EMA step starts from the new vectors, not the stale averages (no re-seeding in it to hide that)
        quantizer.reseed_dead_codes = False
        quantizer(torch.randn(2, 4, 100))
        assert int((book.embed.abs().max(dim=1).values < 10).sum()) == 16
    else:
        assert near_data == 1 and usage == 1  # the authors' behaviour: nothing moves


def test_mixed_precision_no_on_the_command_line_means_the_word_and_a_bad_choice_is_refused():
    assert load_train_config("tiny", ["run.mixed_precision=no"]).run.mixed_precision == "no"
    assert load_train_config("tiny", ["run.mixed_precision=bf16"]).run.mixed_precision == "bf16"
    assert load_train_config("tiny", ["fixes.train_dac=false"]).fixes.train_dac is False  # true and false stay booleans
    with pytest.raises(WavTokenizerError, match="run.mixed_precision must be one of no, bf16, fp16"):
        load_train_config("tiny", ["run.mixed_precision=fp8"])


def test_the_codebook_search_stays_fp32_inside_a_bf16_autocast():
    torch.manual_seed(0)
    quantizer = make_quantizer(num_codes=512, dim=64, reseed=False)
    quantizer.codebook.embed.copy_(torch.randn(512, 64))
    latents = torch.randn(4, 64, 200)
    exact = torch.cdist(latents.permute(0, 2, 1).reshape(-1, 64), quantizer.codebook.embed).argmin(1).reshape(4, 200)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = quantizer(latents, update=False).codes
    assert torch.equal(codes, exact)  # in bf16, about one frame in eight gets another code


def test_a_dead_code_share_scales_the_threshold_with_the_vectors_of_a_step_and_counts_the_reseeds():
    torch.manual_seed(0)
    quantizer = make_quantizer(num_codes=16, dim=4)
    quantizer.dead_code_share = 0.5
    assert quantizer.threshold(3200) == 100.0 and quantizer.threshold(320) == 10.0
    book = quantizer.codebook
    book.embed.copy_(torch.randn(16, 4))
    book.cluster_size[:] = 40.0  # still under half the mean count per code (200) after the next step
    book.cluster_size[:4] = 5000.0
    book.embed_avg.copy_(book.embed * book.cluster_size[:, None])
    quantizer.train()
    quantizer(torch.randn(8, 4, 400))  # 3,200 vectors: mean 200 per code, dead below 100
    dead = int((book.cluster_size < 100.0).sum())
    assert dead == 0 and quantizer.last_reseeded >= 8  # the rarely used codes were re-seeded at the new threshold
    quantizer.dead_code_share = 0.0  # the authors' absolute threshold (2): nothing is dead at these counts
    quantizer(torch.randn(8, 4, 400))
    assert quantizer.last_reseeded == 0


def test_kmeans_runs_in_bounded_memory():
    # 40,000 x 4,096 x 64 floats would be 42 GB as one difference tensor; chunked distances need ~130 MB
    vectors = torch.randn(40_000, 64)
    centroids, counts = kmeans(vectors, 4096, iterations=1, generator=torch.Generator().manual_seed(0))
    assert centroids.shape == (4096, 64) and int(counts.sum()) == 40_000
    small, book = torch.randn(500, 8), torch.randn(64, 8)
    brute = torch.cdist(small, book).argmin(1)
    assert torch.equal(nearest_rows(small, book, max_chunk_elements=64 * 7), brute)


def test_kmeans_finds_well_separated_clusters():
    """Four tight blobs far apart: Lloyd's iterations end with every centre at the mean of its points, every blob
    covered, and far less spread than the initial picks (a k-means whose update did nothing fails all three)."""
    generator = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    points = torch.cat([c + 0.3 * torch.randn(200, 2, generator=generator) for c in centres])

    def inertia(found):
        return float((points - found[nearest_rows(points, found)]).pow(2).sum(1).mean())

    start, _ = kmeans(points, 8, iterations=0, generator=torch.Generator().manual_seed(0))
    found, counts = kmeans(points, 8, iterations=20, generator=torch.Generator().manual_seed(0))
    assign = nearest_rows(points, found)
    for code in assign.unique():
        assert torch.allclose(found[code], points[assign == code].mean(0), atol=1e-4)
    assert torch.cdist(centres, found).min(1).values.max() < 1.0
    assert inertia(found) < 0.5 * inertia(start) and int(counts.sum()) == len(points)


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


def quantisation_error(generator, audio) -> float:
    with torch.no_grad():
        latents = generator.encode_latents(audio)
        flat = latents.permute(0, 2, 1).reshape(-1, latents.shape[1])
        embed = generator.quantizer.codebook.embed
        return float(((flat - embed[nearest_rows(flat, embed)]) ** 2).mean())


def test_a_codec_refitted_to_a_larger_codebook_keeps_its_other_weights_and_k_means_fills_the_codebook(
        small_corpus, tmp_path):
    source = Trainer(micro_config(small_corpus), tmp_path / "source")
    source.fit(2)
    source_dir = source.export("final")
    source.close()
    before = AutoModel.from_pretrained(source_dir)
    config = micro_config(small_corpus, "quantizer.codebook_size=128", "quantizer.kmeans_iterations=20")
    trainer = Trainer(config, tmp_path / "refit", init_from=str(source_dir))
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    assert generator.quantizer.num_codes == 128 and generator.quantizer.initialized
    assert trainer.init_info["kmeans_vectors"] > 128  # the new codebook was fitted on training latents
    prefix = "encoder_model.quantizer.codebook."
    kept = {k: v for k, v in before.state_dict().items() if not k.startswith(prefix)}
    assert_same(kept, {k: v for k, v in generator.model.state_dict().items() if not k.startswith(prefix)}, "weights")
    audio = torch.cat([audio for _, (audio, *_) in zip(range(2), trainer.loader)])
    old = WavTokenizerGenerator(before.config, model=before).eval()
    generator.eval()
    assert quantisation_error(generator, audio) < quantisation_error(old, audio)
    trainer.fit(0, max_seconds=20)  # what `--max-steps 0` does: no step, the refitted codec as it starts
    assert trainer.step == 0
    trainer.fit(1)
    trainer.save_checkpoint()
    assert AutoModel.from_pretrained(trainer.export("final")).config.codebook_size == 128
    trainer.close()
    with pytest.raises(WavTokenizerError, match="codebook has 128 entries, this run's has 64"):
        Trainer(micro_config(small_corpus), tmp_path / "refit", init_from=str(source_dir))
    same = Trainer(micro_config(small_corpus, "quantizer.codebook_size=64", "quantizer.kmeans_iterations=20"),
                   tmp_path / "same", init_from=str(source_dir))  # the codec's own size: refitted all the same
    codes = same.accelerator.unwrap_model(same.generator).quantizer.codebook.embed
    assert same.init_info["kmeans_vectors"] > 64 and not torch.equal(codes, old.quantizer.codebook.embed)
    same.close()


def test_k_means_takes_its_batches_over_several_epochs_and_leaves_the_loader_where_it_was(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "quantizer.kmeans_batches=1"), tmp_path / "one")
    per_batch, epoch = trainer.init_info["kmeans_vectors"], len(trainer.loader)
    trainer.close()
    wanted = 2 * epoch + 1  # two epochs and a batch of the third
    trainer = Trainer(micro_config(small_corpus, f"quantizer.kmeans_batches={wanted}",
                                   "quantizer.kmeans_max_vectors=1000000"), tmp_path / "many")
    assert trainer.init_info["kmeans_vectors"] == wanted * per_batch
    assert (trainer.loader.sampler.epoch, trainer.loader.sampler.start) == (0, 0)
    from wavtokenizer_hf.training.trainer import first_batches
    batches = [audio for audio, *_ in first_batches(trainer.loader, wanted)]
    assert not torch.equal(batches[0], batches[epoch])  # the second epoch crops anew
    trainer.close()


def test_a_codebook_size_is_refused_without_a_codec_to_refit_or_below_two(small_corpus, tmp_path):
    with pytest.raises(WavTokenizerError, match="model.codebook_size"):
        Trainer(micro_config(small_corpus, "quantizer.codebook_size=128"), tmp_path)
    with pytest.raises(WavTokenizerError, match="quantizer.codebook_size must be"):
        load_train_config("tiny", ["quantizer.codebook_size=1"])


def codebook_state(trainer) -> dict[str, torch.Tensor]:
    quantizer = trainer.accelerator.unwrap_model(trainer.generator).quantizer
    book = quantizer.codebook
    return {"embed": book.embed.clone(), "embed_avg": book.embed_avg.clone(),
            "cluster_size": book.cluster_size.clone(), "updates": quantizer.updates.clone()}


def test_a_nan_batch_leaves_weights_and_codebook_unchanged(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=0"), tmp_path)
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    weights, book = [p.detach().clone() for p in generator.parameters()], codebook_state(trainer)
    audio = next(iter(trainer.loader))[0]
    audio[1, 100:200] = float("nan")
    trainer.train_step(audio)
    assert trainer.skipped == 2  # the discriminator step and the generator step
    assert all(torch.equal(a, b) for a, b in zip(weights, generator.parameters()))
    after = codebook_state(trainer)
    assert all(torch.equal(book[k], after[k]) for k in book), "the EMA moved the codebook on a skipped step"
    trainer.train_step(next(iter(trainer.loader))[0])  # a finite batch afterwards trains and moves the codebook
    assert int(codebook_state(trainer)["updates"]) == int(book["updates"]) + 1


def test_with_accumulation_a_nan_last_micro_batch_skips_the_whole_step(small_corpus, tmp_path):
    """The earlier micro-batch's gradients and codebook statistics must not leak into the next step."""
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=0", "optim.grad_accum=2"), tmp_path)
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    weights, book = [p.detach().clone() for p in generator.parameters()], codebook_state(trainer)
    batches = (audio for audio, *_ in trainer.loader)
    trainer.train_step(next(batches))  # finite, accumulated
    poisoned = next(batches)
    poisoned[0, :50] = float("nan")
    trainer.train_step(poisoned)  # the step's last micro-batch: the whole step is skipped
    assert all(torch.equal(a, b) for a, b in zip(weights, generator.parameters()))
    assert all(p.grad is None for p in generator.parameters())
    assert all(torch.equal(book[k], v) for k, v in codebook_state(trainer).items())
    assert all(p.grad is None for m in trainer.trained_discriminators for p in m.parameters())


def test_with_accumulation_a_nan_first_micro_batch_skips_the_whole_step(small_corpus, tmp_path):
    """The later, finite micro-batch must not step the optimiser with half a step's gradient."""
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=0", "optim.grad_accum=2"), tmp_path)
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    weights, book = [p.detach().clone() for p in generator.parameters()], codebook_state(trainer)
    discriminator = [p.detach().clone() for m in trainer.trained_discriminators for p in m.parameters()]
    batches = (audio for audio, *_ in trainer.loader)
    poisoned = next(batches)
    poisoned[0, :50] = float("nan")
    trainer.train_step(poisoned)
    trainer.train_step(next(batches))  # finite, but the step it ends was poisoned
    assert all(torch.equal(a, b) for a, b in zip(weights, generator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(discriminator, (p for m in trainer.trained_discriminators
                                                                  for p in m.parameters())))
    assert all(torch.equal(book[k], v) for k, v in codebook_state(trainer).items())
    trainer.train_step(next(batches))
    trainer.train_step(next(batches))  # the next step trains again
    assert not all(torch.equal(a, b) for a, b in zip(weights, generator.parameters()))


def test_a_generator_that_stays_non_finite_aborts_even_while_the_discriminators_are_finite(small_corpus, tmp_path,
                                                                                          monkeypatch):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=0", "run.max_consecutive_nonfinite=3"),
                      tmp_path)
    real_mel = trainer.mel_loss.forward
    monkeypatch.setattr(trainer.mel_loss, "forward", lambda a, b: real_mel(a, b) * float("nan"))
    with pytest.raises(WavTokenizerError, match="generator loss was not finite for 4 steps in a row"):
        trainer.fit(10)
    assert trainer.step == 3


def test_with_gradient_accumulation_the_codebook_moves_once_per_optimisation_step(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=100", "optim.grad_accum=2"), tmp_path)
    calls, real_step = [], trainer.train_step
    trainer.train_step = lambda audio, *targets: calls.append(1) or real_step(audio, *targets)
    trainer.fit(2)
    assert len(calls) == 4 and trainer.step == 2
    assert int(codebook_state(trainer)["updates"]) == 2  # the statistics of both micro-batches, in one EMA step


def test_a_second_run_on_a_live_output_folder_is_refused(small_corpus, tmp_path):
    first = Trainer(micro_config(small_corpus, "loss.gan_start_step=100"), tmp_path)
    script = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from conftest import MICRO
from wavtokenizer_hf.training import Trainer, load_train_config
Trainer(load_train_config("tiny", ["data.train={small_corpus}", *MICRO]), {str(tmp_path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode != 0 and "is in use by another codec training run" in result.stderr
    first.close()  # released (a killed run releases it too: the kernel drops the flock with the process)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


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
    # the rerun started from the checkpoint, not from step 1 (a restart would rewrite the log from step 1)
    records = [json.loads(line) for line in (killed / "log.jsonl").read_text().splitlines()]
    (resume,) = [r for r in records if r.get("event") == "resume"]
    after_resume = [r["step"] for r in records[records.index(resume):] if "loss" in r]
    assert after_resume == list(range(resume["step"] + 1, 10)) and resume["step"] in (3, 6)
    assert [r["step"] for r in records if "loss" in r].count(1) == 1
    # and ended where the uninterrupted run ended: weights, discriminators, optimisers and codebook, exactly
    final_clean = torch.load(clean / "checkpoint.pt", weights_only=True)
    final_resumed = torch.load(killed / "checkpoint.pt", weights_only=True)
    for key in ("generator", "discriminators", "opt_g", "opt_d", "step"):
        assert_same(final_clean[key], final_resumed[key], key)
    assert final_clean["codebook_updates"] == final_resumed["codebook_updates"] == 9


def test_a_resumed_time_limited_run_keeps_its_time_budget_and_learning_rate_decay(small_corpus, tmp_path, monkeypatch):
    ticks = iter(range(0, 10**6, 10))  # a clock that advances 10 s at each reading
    monkeypatch.setattr(Trainer, "_clock", lambda self: float(next(ticks)))
    config = micro_config(small_corpus, "optim.warmup_steps=0")
    first = Trainer(config, tmp_path)
    first.fit(1000, max_seconds=400)
    stopped_at, lr_at_stop = first.step, first.sched_g.get_last_lr()[0]
    assert 3 <= stopped_at < 100 and lr_at_stop < 0.9 * config.optim.lr  # decayed with the time used
    first.close()
    resumed = Trainer(config, tmp_path)
    assert resumed.seconds_done > 400
    resumed.fit(1000, max_seconds=400)  # the budget is spent: one step at most, at the decayed rate
    assert resumed.step <= stopped_at + 1
    assert resumed.sched_g.get_last_lr()[0] <= lr_at_stop


def test_a_resumed_run_follows_the_optimiser_settings_it_is_given_now(small_corpus, tmp_path):
    first = Trainer(micro_config(small_corpus, "loss.gan_start_step=100", "optim.max_steps=20"), tmp_path)
    first.fit(3)
    first.save_checkpoint()
    first.close()
    resumed = Trainer(micro_config(small_corpus, "loss.gan_start_step=100", "optim.max_steps=20", "optim.lr=4e-4",
                                   "optim.betas=[0.5,0.95]", "optim.weight_decay=0.25"), tmp_path)
    assert resumed.resumed and resumed.step == 3
    factor = resumed.sched_g.lr_lambdas[0](3)
    for optimizer in (resumed.opt_g, resumed.opt_d):
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(4e-4 * factor) and group["initial_lr"] == 4e-4
            assert group["betas"] == (0.5, 0.95) and group["weight_decay"] == 0.25
    resumed.fit(5)
    assert log_records(tmp_path / "log.jsonl")[-1]["lr"] == pytest.approx(4e-4 * resumed.sched_g.lr_lambdas[0](5))
    resumed.close()


def assert_same(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


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
    audio = next(iter(trainer.loader))[0]
    with torch.no_grad():
        ours = generator(audio).audio_codes
        stock = AutoModel.from_pretrained(path).eval().encode(audio[:, None]).audio_codes[:, 0]
    assert torch.equal(ours, stock)
    assert (path / "README.md").exists() and "trained by wavtokenizer-hf" in (path / "README.md").read_text()


def torchrun(tmp_path, corpus, *extra):
    report = tmp_path / "report"
    with socket.socket() as probe:  # a free port (torchrun's --master_port 0 hangs on CPU)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               str(ROOT / "tests" / "ddp_worker.py"), "--out", str(tmp_path / "run"), "--report", str(report),
               "--corpus", str(corpus), *extra]
    try:  # a healthy run takes seconds; a collective that one process never joins hangs until the timeout
        result = subprocess.run(command, capture_output=True, text=True, timeout=180,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        pytest.fail("the two processes hung (a collective that one of them never joined)")
    assert result.returncode == 0, result.stderr[-4000:]
    from safetensors.torch import load_file

    return ([json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1)],
            [load_file(report / f"rank{r}.safetensors") for r in (0, 1)])


def test_two_real_processes_train_one_identical_codec_on_different_data(small_corpus, tmp_path):
    reports, tensors = torchrun(tmp_path, small_corpus, "--steps", "4")
    assert [r["world_size"] for r in reports] == [2, 2]
    assert all(r["distributed_type"].endswith("MULTI_CPU") for r in reports)
    assert len(reports[0]["batches"]) == len(reports[1]["batches"]) == 4
    assert not set(reports[0]["batches"]) & set(reports[1]["batches"])  # each process saw its own data
    assert tensors[0].keys() == tensors[1].keys()
    for key in tensors[0]:  # codebook (embed, embed_avg, cluster_size) and every weight, bit for bit
        assert torch.equal(tensors[0][key], tensors[1][key]), key
    for report in reports:  # k-means and re-seeding went through broadcast, the EMA statistics through all-reduce
        assert report["quantizer_calls"]["broadcast"] > 3 and report["quantizer_calls"]["all_reduce"] == 2 * 4
    assert [r["step"] for r in log_records(tmp_path / "run" / "log.jsonl")] == [1, 2, 3, 4]  # one writer


def test_a_nan_batch_on_one_process_skips_the_step_on_both_without_hanging(small_corpus, tmp_path):
    reports, tensors = torchrun(tmp_path, small_corpus, "--steps", "3", "--nan-rank", "1")
    assert [r["skipped"] for r in reports] == [1, 1]  # step 2 is mel-only: one generator skip, on both processes
    assert [r["codebook_updates"] for r in reports] == [2, 2]
    for key in tensors[0]:
        assert torch.equal(tensors[0][key], tensors[1][key]), key


def test_training_logs_to_tensorboard(small_corpus, tmp_path):
    pytest.importorskip("tensorboard")
    trainer = Trainer(micro_config(small_corpus, "loss.gan_start_step=100", "run.log_with=tensorboard"), tmp_path)
    trainer.fit(2)
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and max(e.stat().st_size for e in events) > 100


def test_a_run_stopped_by_its_time_limit_ends_with_the_learning_rate_annealed(small_corpus, tmp_path):
    """Stopped by wall time long before max_steps, the learning rate has still decayed to its floor: the schedule
    follows whichever of steps or time runs out first (inside a warm-up too: tests/test_schedule.py)."""
    cfg = micro_config(small_corpus, "loss.gan_start_step=100", "optim.max_steps=100000", "run.save_every=0",
                       "optim.warmup_steps=0", "optim.min_lr_ratio=0.1")
    trainer = Trainer(cfg, tmp_path)
    trainer.fit(max_seconds=4.0)
    assert 2 <= trainer.step < 1000
    assert trainer.sched_g.get_last_lr()[0] < 0.15 * cfg.optim.lr
    trainer.close()


# --- options beyond the paper's recipe: phase terms, the CPU clock, timed snapshots, data by source ---------------

def scrambled_phase(tone: torch.Tensor, n_fft: int = 1024, hop: int = 256) -> torch.Tensor:
    """The same STFT magnitudes with random phases (what an incoherent iSTFT head produces)."""
    window = torch.hann_window(n_fft)
    spec = torch.stft(tone, n_fft, hop, window=window, return_complex=True)
    phases = torch.rand(spec.shape, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    return torch.istft(spec.abs() * torch.exp(1j * phases), n_fft, hop, window=window, length=tone.shape[-1])


@pytest.mark.parametrize("kind", ["complex", "anti_wrapping"])
def test_phase_terms_see_a_scrambled_phase_that_the_mel_loss_barely_sees(kind):
    tone = harmonic_tone()
    smeared = scrambled_phase(tone)
    terms = phase_loss(kind, load_train_config("tiny").loss.phase_resolutions)
    assert float(terms(tone, tone)) == 0.0
    assert float(terms(smeared, tone)) > 0.3 * float(terms(-tone, tone))  # a scrambled phase is far from right
    assert float(terms(smeared, tone)) > 2.0 * float(terms(0.8 * tone, tone))  # more than a level change


def test_the_group_delay_term_sees_phase_errors_across_frequency_and_the_frequency_term_across_time(monkeypatch):
    monkeypatch.setattr("wavtokenizer_hf.training.phase_losses.stft", lambda spectrum, n_fft, hop: spectrum)
    bins, frames = 64, 20
    truth = torch.ones(1, bins, frames, dtype=torch.complex64)
    ramp = 0.3 * torch.arange(bins, dtype=torch.float32)[:, None].expand(bins, frames)
    loss = phase_loss("anti_wrapping", ((1024, 256),))
    across_frequency = loss.terms(torch.polar(torch.ones(1, bins, frames), ramp[None]), truth)
    assert float(across_frequency["group_delay"]) == pytest.approx(0.3, abs=1e-4)
    assert float(across_frequency["frequency"]) == pytest.approx(0.0, abs=1e-4)
    ramp = 0.3 * torch.arange(frames, dtype=torch.float32)[None, :].expand(bins, frames)
    across_time = loss.terms(torch.polar(torch.ones(1, bins, frames), ramp[None]), truth)
    assert float(across_time["frequency"]) == pytest.approx(0.3, abs=1e-4)
    assert float(across_time["group_delay"]) == pytest.approx(0.0, abs=1e-4)


def test_the_generator_hinge_pushes_fake_scores_up_and_the_discriminator_hinge_separates_them():
    from wavtokenizer_hf.training.losses import discriminator_hinge, generator_hinge

    fake = torch.tensor([2.0, -1.0], requires_grad=True)
    loss = generator_hinge([fake])
    loss.backward()
    assert float(loss) == pytest.approx(1.0) and fake.grad.tolist() == [0.0, -0.5]  # raising -1 lowers the loss
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([-2.0, 1.0])
    assert float(discriminator_hinge([real], [fake])) == pytest.approx(2.0)


def test_the_commitment_loss_reaches_the_encoder(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus), tmp_path)
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    out = generator(next(iter(trainer.loader))[0], update_codebook=False)
    out.commit_loss.backward()
    encoder = generator.model.encoder_model.encoder
    assert sum(float(p.grad.abs().sum()) for p in encoder.parameters() if p.grad is not None) > 0


def test_two_micro_batches_move_the_codebook_as_their_union_does():
    torch.manual_seed(3)
    first, second = make_quantizer(num_codes=16, dim=4), make_quantizer(num_codes=16, dim=4)
    for quantizer in (first, second):
        quantizer.codebook.embed.copy_(torch.randn(16, 4, generator=torch.Generator().manual_seed(0)))
        quantizer.codebook.cluster_size.fill_(10.0)
        quantizer.codebook.embed_avg.copy_(quantizer.codebook.embed * 10.0)
        quantizer.reseed_dead_codes = False
    a, b = torch.randn(2, 4, 50), torch.randn(2, 4, 50)
    for part in (a, b):
        first.accumulate(part, first(part, update=False).codes)
    first.apply_accumulated()
    union = torch.cat([a, b])
    second.accumulate(union, second(union, update=False).codes)
    second.apply_accumulated()
    assert torch.allclose(first.codebook.embed, second.codebook.embed, atol=1e-6)
    assert torch.allclose(first.codebook.cluster_size, second.codebook.cluster_size)


def test_the_anti_wrapping_phase_error_counts_a_full_turn_as_no_error():
    assert float(wrapped_abs(torch.tensor(2 * math.pi))) == pytest.approx(0.0, abs=1e-6)
    assert float(wrapped_abs(torch.tensor(1.5 * math.pi))) == pytest.approx(0.5 * math.pi, rel=1e-6)


def test_the_anti_wrapping_phase_error_ignores_silent_bins():
    """Where the target is silent its phase is undefined: any estimate there costs (almost) nothing."""
    tone = harmonic_tone()
    silence = torch.zeros_like(tone)
    noise = 0.1 * torch.randn(tone.shape, generator=torch.Generator().manual_seed(1))
    terms = phase_loss("anti_wrapping", ((1024, 256),))
    assert float(terms(torch.cat([tone, noise], -1), torch.cat([tone, silence], -1))) < 0.05


def test_the_phase_term_enters_the_generator_loss(small_corpus, tmp_path):
    trainer = Trainer(micro_config(small_corpus, "loss.phase=7", "loss.gan_start_step=100"), tmp_path)
    trainer.fit(2)
    for record in log_records(tmp_path / "log.jsonl"):
        assert record["phase"] > 0
        assert record["loss"] == pytest.approx(45 * record["mel"] + record["commit"] + 7 * record["phase"], rel=1e-5)


def test_the_finetune_preset_is_tiny_with_its_own_losses_and_schedule():
    tiny, finetune = load_train_config("tiny"), load_train_config("tiny-finetune")
    assert finetune.model == tiny.model and finetune.data == tiny.data
    assert finetune.quantizer == dataclasses.replace(tiny.quantizer, dead_code_share=0.5)
    assert (finetune.loss.mel, finetune.loss.multiscale_mel, finetune.loss.phase) == (45.0, 45.0, 10.0)
    assert finetune.loss.phase_kind == "anti_wrapping" and finetune.loss.gan_start_step > 10**6
    assert (finetune.optim.lr, finetune.optim.grad_clip, finetune.run.clock) == (2e-4, tiny.optim.grad_clip, "cpu")
    assert load_train_config("tiny-finetune", ["optim.lr=1e-4"]).optim.lr == 1e-4


def test_fine_tuning_the_shipped_codec_with_its_preset_keeps_its_codebook(small_corpus, tmp_path):
    """The preset's dead-code rule scales with the codebook: tiny's absolute count, fit for 1,024 codes, would re-seed
    most of the shipped codec's 4,096 at every step; the share re-seeds only the little-used tail (about a tenth)."""
    from wavtokenizer_hf.default_codec import default_codec_dir

    def reseeded(out, *extra) -> list[float]:
        overrides = [f"data.train={small_corpus}", "data.num_workers=0", "run.save_every=0", "run.log_every=1", *extra]
        trainer = Trainer(load_train_config("tiny-finetune", overrides), out, init_from=str(default_codec_dir()))
        trainer.fit(3)
        trainer.close()
        return [r["codes_reseeded"] for r in log_records(out / "log.jsonl")]

    codes = AutoModel.from_pretrained(default_codec_dir()).config.codebook_size
    with_preset = reseeded(tmp_path / "preset")
    assert len(with_preset) == 3 and max(with_preset) < 0.2 * codes, with_preset
    assert min(reseeded(tmp_path / "absolute", "quantizer.dead_code_share=0")) > 0.5 * codes


def test_presets_that_inherit_in_a_loop_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(f"inherits: {tmp_path / 'b.yaml'}\n")
    (tmp_path / "b.yaml").write_text(f"inherits: {tmp_path / 'a.yaml'}\noptim:\n  lr: 1.0\n")
    with pytest.raises(WavTokenizerError, match="presets inherit in a loop: a -> b -> a"):
        load_train_config(str(tmp_path / "a.yaml"))


@pytest.mark.parametrize("setting", ["loss.phase_kind=group_delay", "run.clock=gpu"])
def test_an_unknown_phase_kind_or_clock_is_refused_by_name(setting):
    with pytest.raises(WavTokenizerError, match=setting.split("=")[0]):
        load_train_config("tiny", [setting])


@pytest.mark.parametrize("setting", ["loss.pitch=-1", "loss.phones=-0.5", "loss.mel=-45", "loss.gan_start_step=-1"])
def test_a_negative_loss_weight_is_refused_by_name(setting):
    with pytest.raises(WavTokenizerError, match=f"{setting.split('=')[0]} must be 0 or more"):
        load_train_config("tiny", [setting])
    assert load_train_config("tiny", [setting.split("=")[0] + "=0"])  # 0 turns a term off


def test_on_the_cpu_clock_the_time_limit_and_timed_snapshots_follow_cpu_time(small_corpus, tmp_path, monkeypatch):
    """With run.clock=cpu the limit counts this process's CPU time: a clock that runs 20 s per reading stops the run
    after a few steps and exports a snapshot per 0.5 simulated minutes, each logged with its minutes."""
    import wavtokenizer_hf.training.trainer as trainer_module

    ticks = iter(range(0, 10**6, 20))
    monkeypatch.setattr(trainer_module.time, "process_time", lambda: float(next(ticks)))
    cfg = micro_config(small_corpus, "loss.gan_start_step=100", "optim.max_steps=100000", "run.save_every=0",
                       "run.clock=cpu", "run.export_every_minutes=0.5")
    trainer = Trainer(cfg, tmp_path)
    trainer.fit(max_seconds=120.0)
    assert trainer.step < 20  # the wall clock would have allowed thousands of micro steps
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    exports = [r for r in records if r.get("event") == "export"]
    assert len(exports) >= 2 and all((tmp_path / r["path"] / "model.safetensors").exists() for r in exports)
    assert [r["minutes"] for r in exports] == sorted(r["minutes"] for r in exports)
    assert all(r["clock"] == "cpu" for r in exports)
    assert records[-1]["event"] == "stop" and records[-1]["step"] == trainer.step
    trainer.close()


def test_snapshot_minutes_come_from_their_export_records(tmp_path):
    from wavtokenizer_hf.evaluation.snapshots import _minutes_at

    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"step": 10, "seconds": 60.0}, {"event": "export", "step": 12, "minutes": 1.25},
        {"event": "stop", "step": 13, "minutes": 1.4}]))
    assert _minutes_at(tmp_path / "log.jsonl") == {10: 1.0, 12: 1.25, 13: 1.4}


def test_data_sources_keep_only_the_rows_of_those_sources(small_corpus):
    from datasets import load_from_disk

    from wavtokenizer_hf.training.data import ClipSource, RowSelection

    rows = load_from_disk(str(small_corpus))["train"]
    espeak = sum("espeak" in s.lower() for s in rows["source"])
    assert 0 < espeak < len(rows)
    assert len(ClipSource(small_corpus, "train", RowSelection(sources=("ESPEAK",)))) == espeak
    with pytest.raises(WavTokenizerError, match="no row"):
        ClipSource(small_corpus, "train", RowSelection(sources=("no such engine",)))


def test_data_f0_bands_reach_the_training_rows_and_one_edge_may_be_given_as_a_number(small_corpus, tmp_path, capsys):
    config = micro_config(small_corpus, "data.f0_bands=10000")
    assert config.data.f0_bands == (10000.0,)
    Trainer(config, tmp_path / "run").close()
    assert "F0 bands repeated <10000 Hz x1" in capsys.readouterr().out  # every voice is under 10 kHz: one band


def test_each_discriminator_family_gets_its_own_losses(small_corpus, tmp_path, monkeypatch):
    import wavtokenizer_hf.training.trainer as trainer_module

    calls: dict[str, list[str]] = {"d": [], "adv": [], "fm": []}
    for key, name in (("d", "discriminator_loss"), ("adv", "generator_adversarial"), ("fm", "feature_matching")):
        real = getattr(trainer_module, name)
        monkeypatch.setattr(trainer_module, name,
                            lambda family, *args, _real=real, _key=key: calls[_key].append(family) or _real(family, *args))
    Trainer(micro_config(small_corpus, "loss.gan_start_step=0"), tmp_path).fit(1)
    assert calls == {key: ["mpd", "mrd", "dac"] for key in calls}


def test_the_rotation_trick_keeps_the_codes_values_and_rotates_the_gradient_back_onto_the_latent():
    torch.manual_seed(0)
    latents = torch.randn(5, 8, dtype=torch.float64)
    codes = torch.randn(5, 8, dtype=torch.float64)
    inputs = latents.clone().requires_grad_(True)
    out = rotated(inputs, codes)
    assert torch.allclose(out, codes)  # the decoder sees the codes themselves
    upstream = torch.randn(5, 8, dtype=torch.float64)
    out.backward(upstream)
    for row in range(5):  # d out / d latent is the constant matrix scale * (I - 2 r r^T + 2 q e^T)
        e, q = latents[row], codes[row]
        e_dir, q_dir = e / e.norm(), q / q.norm()
        r = (e_dir + q_dir) / (e_dir + q_dir).norm()
        jacobian = q.norm() / e.norm() * (torch.eye(8, dtype=torch.float64) - 2 * torch.outer(r, r)
                                            + 2 * torch.outer(q_dir, e_dir))
        assert torch.allclose(inputs.grad[row], jacobian.T @ upstream[row])
    assert not torch.allclose(inputs.grad, upstream)  # straight-through would copy the gradient unchanged


@pytest.mark.parametrize("gradient", ["straight_through", "rotation"])
def test_the_quantizers_gradient_choice_changes_only_the_encoders_gradient(gradient):
    torch.manual_seed(0)
    quantizer = make_quantizer(num_codes=16, dim=4, reseed=False)
    quantizer.codebook.embed.copy_(torch.randn(16, 4))
    quantizer.gradient = gradient
    latents = torch.randn(2, 4, 10, requires_grad=True)
    out = quantizer(latents, update=False)
    expected = quantizer.codebook.embed[out.codes].permute(0, 2, 1)
    assert torch.allclose(out.quantized, expected, atol=1e-6)
    upstream = torch.randn_like(latents)
    out.quantized.backward(upstream)
    assert torch.allclose(latents.grad, upstream) == (gradient == "straight_through")


def test_an_unknown_quantizer_gradient_is_refused_by_name():
    chosen = load_train_config("tiny", ["quantizer.gradient=rotation"])
    assert build_generator(chosen).quantizer.gradient == "rotation"
    with pytest.raises(WavTokenizerError, match="quantizer.gradient must be one of straight_through, rotation"):
        load_train_config("tiny", ["quantizer.gradient=rotate"])


def _subnormal_survives() -> bool:
    return (torch.tensor([1e-40]) * 3).item() != 0.0


@pytest.mark.parametrize("settings, flush", [((), True), (("run.flush_denormal=false",), False)])
def test_a_trainer_reads_subnormal_floats_as_zero_unless_told_not_to_and_close_gives_ieee_back(
        small_corpus, tmp_path, settings, flush):
    assert _subnormal_survives()
    trainer = Trainer(micro_config(small_corpus, *settings), tmp_path)
    assert _subnormal_survives() is not flush
    trainer.close()
    assert _subnormal_survives()
