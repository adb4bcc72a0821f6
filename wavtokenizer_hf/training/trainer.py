"""The codec training loop (read it top to bottom): GAN training of WavTokenizer on accelerate.

One generator forward per micro-batch feeds both the discriminator step (on detached audio) and the generator step.
The codebook's EMA statistics of kept micro-batches are summed and applied once per optimisation step, after the
step is known to be kept: a non-finite loss on any process skips the step on every process (one collective
decision, so DDP never waits for a rank that skipped) and leaves the codebook untouched. Checkpoints are written
atomically with everything needed to continue bit for bit on CPU: weights, codebook buffers, optimisers,
schedulers, RNG states and the data position. One live run per output folder (`run_lock.OutputLock`).
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from accelerate import Accelerator
from torch import nn
from tqdm import tqdm
from transformers import AutoModel, WavTokenizerConfig, WavTokenizerModel

from ..atomic import atomic_path
from ..convert import save_hf_directory
from ..errors import WavTokenizerError
from ..run_lock import OutputLock
from ..schedule import warmup_cosine
from ..tracking import check_tracker, flat_config, numeric
from .config import TrainConfig
from .data import ClipSource, RowSelection, make_loader, set_position
from .discriminators import (
    DACDiscriminator,
    DiscriminatorSet,
    MultiPeriodDiscriminator,
    MultiResolutionDiscriminator,
)
from .generator import WavTokenizerGenerator
from .losses import MelLoss, MultiScaleMelLoss, discriminator_loss, feature_matching, generator_adversarial
from .phase_losses import phase_loss
from .phones import PhoneHead, phone_inventory, phone_loss
from .pitch_teacher import CLASSES as PITCH_CLASSES
from .pitch_teacher import pitch_tracks
from .whisper_teacher import DIM as WHISPER_DIM
from .whisper_teacher import teacher_features, teacher_loss

CHECKPOINT = "checkpoint.pt"


def build_generator(cfg: TrainConfig, init_from: str | None = None) -> WavTokenizerGenerator:
    """A fresh codec from `cfg.model`, or one initialised from an HF directory (converted or trained)."""
    q = cfg.quantizer
    kwargs = dict(ema_decay=q.ema_decay, dead_code_threshold=q.dead_code_threshold, dead_code_share=q.dead_code_share,
                  gradient=q.gradient, reseed_dead_codes=cfg.fixes.reseed_dead_codes)
    if init_from:
        model = AutoModel.from_pretrained(init_from)
        if q.codebook_size:  # a refit, at the loaded codec's own size too
            model = with_empty_codebook(model, q.codebook_size)
        return WavTokenizerGenerator(model.config, model=model, **kwargs)
    if q.codebook_size:
        raise WavTokenizerError("quantizer.codebook_size refits the codebook of an --init-from codec; "
                                "a fresh codec takes its size from model.codebook_size")
    try:
        config = WavTokenizerConfig(**cfg.model)
    except (TypeError, ValueError) as err:
        raise WavTokenizerError(f"model settings rejected by WavTokenizerConfig: {err}") from None
    generator = WavTokenizerGenerator(config, **kwargs)
    if cfg.encoder_init == "kaiming":
        kaiming_init_encoder(generator)
    elif cfg.encoder_init != "default":
        raise WavTokenizerError(f"encoder_init must be 'default' or 'kaiming', got {cfg.encoder_init!r}")
    return generator


def with_empty_codebook(model: WavTokenizerModel, size: int) -> WavTokenizerModel:
    """The same codec with an uninitialised codebook of `size` entries (k-means fills it before the first step):
    every weight but the codebook's buffers is carried over."""
    config = WavTokenizerConfig.from_dict({**model.config.to_dict(), "codebook_size": size})
    resized = WavTokenizerModel(config)
    prefix = "encoder_model.quantizer.codebook."
    state = {key: value for key, value in model.state_dict().items() if not key.startswith(prefix)}
    missing, unexpected = resized.load_state_dict(state, strict=False)
    if unexpected or any(not key.startswith(prefix) for key in missing):
        raise WavTokenizerError(f"cannot resize the codebook: weights do not carry over (missing {missing}, "
                                f"unexpected {unexpected})")
    resized.encoder_model.quantizer.codebook.inited.fill_(0.0)
    return resized


@torch.no_grad()
def kaiming_init_encoder(generator: WavTokenizerGenerator) -> None:
    """He-normal directions for every weight-normed encoder conv (gain = |v|, zero bias), so a random encoder
    passes its input's variation on instead of shrinking it layer by layer."""
    for module in generator.model.encoder_model.encoder.modules():
        conv = getattr(module, "conv", None)
        if isinstance(conv, nn.Conv1d) and hasattr(conv, "parametrizations"):
            direction = conv.parametrizations.weight.original1
            nn.init.kaiming_normal_(direction, nonlinearity="relu")
            conv.parametrizations.weight.original0.copy_(direction.norm(dim=(1, 2), keepdim=True))
            nn.init.zeros_(conv.bias)


def build_discriminators(cfg: TrainConfig) -> DiscriminatorSet:
    d = cfg.discriminators
    available = {
        "mpd": lambda: MultiPeriodDiscriminator(channels=tuple(d.mpd_channels)),
        "mrd": lambda: MultiResolutionDiscriminator(channels=d.mrd_channels),
        "dac": lambda: DACDiscriminator(period_channels=tuple(d.mpd_channels), band_channels=d.dac_channels),
    }
    unknown = set(d.use) - set(available)
    if unknown:
        raise WavTokenizerError(f"unknown discriminators {sorted(unknown)} (available: {sorted(available)})")
    return DiscriminatorSet({name: available[name]() for name in d.use})


def cosine_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    time_fraction: Callable[[], float] = lambda: 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """`schedule.warmup_cosine` on the config's steps; `time_fraction()` is the share of the run's time limit used."""
    o = cfg.optim
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, o.warmup_steps, o.max_steps, o.min_lr_ratio, time_fraction()))


def first_batches(loader, count: int) -> Iterator:
    """The loader's first `count` batches from its first epoch on, over as many epochs as it takes (each epoch crops
    every clip anew); the loader's position is left as it was."""
    sampler = loader.sampler
    epoch, start = sampler.epoch, sampler.start
    sampler.epoch, sampler.start = 0, 0
    try:
        done = 0
        while done < count:
            for batch in loader:
                yield batch
                done += 1
                if done == count:
                    return
            sampler.epoch += 1
    finally:
        sampler.epoch, sampler.start = epoch, start


@torch.no_grad()
def initialize_codebook(generator: WavTokenizerGenerator, loader, cfg: TrainConfig, accelerator: Accelerator) -> dict:
    """k-means on encoder outputs of the first training batches (bounded number of vectors)."""
    q = cfg.quantizer
    vectors, batches = [], q.kmeans_batches if cfg.fixes.kmeans_on_training_data else 1
    for audio, *_ in first_batches(loader, batches):
        audio = audio.to(accelerator.device)
        if not cfg.fixes.kmeans_on_training_data:
            audio = audio[:5]  # the authors' init most likely saw one 5-clip sanity-check validation batch
        latents = generator.encode_latents(audio)
        vectors.append(latents.permute(0, 2, 1).reshape(-1, latents.shape[1]).float().cpu())
    per_step = vectors[0].shape[0] * accelerator.num_processes  # EMA statistics are summed over processes
    vectors = torch.cat(vectors)
    if vectors.shape[0] > q.kmeans_max_vectors:
        keep = torch.randperm(vectors.shape[0], generator=torch.Generator().manual_seed(cfg.run.seed))
        vectors = vectors[keep[: q.kmeans_max_vectors]]
    start = time.perf_counter()
    generator.quantizer.initialize(vectors, q.kmeans_iterations, seed=cfg.run.seed, vectors_per_step=per_step)
    return {"kmeans_vectors": int(vectors.shape[0]), "kmeans_seconds": round(time.perf_counter() - start, 2)}


def as_numbers(logs: dict) -> dict[str, float]:
    """A step's logs as plain numbers, the tensors among them read from the device in one transfer."""
    names = [name for name, value in logs.items() if isinstance(value, torch.Tensor)]
    read = torch.stack([logs[n].detach().float().reshape(()) for n in names]).tolist() if names else []
    numbers = dict(zip(names, read))
    return {name: numbers[name] if name in numbers else value for name, value in logs.items()}


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
             "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | Path, init_from: str | None = None,
                 discriminators_from: str | None = None):
        self.cfg, self.out_dir = cfg, Path(out_dir)
        # first, so that the intra-op threads, started by the first parallel operation, inherit it
        torch.set_flush_denormal(cfg.run.flush_denormal)
        # cpu=True on a machine without CUDA: without it accelerate ignores torchrun's environment on CPU and
        # every process trains alone (process 0 of 1)
        self.accelerator = Accelerator(gradient_accumulation_steps=cfg.optim.grad_accum,
                                       mixed_precision=cfg.run.mixed_precision, cpu=not torch.cuda.is_available(),
                                       log_with=check_tracker(cfg.run.log_with), project_dir=str(self.out_dir))
        self.lock = OutputLock(self.out_dir, "codec training run")
        if self.accelerator.is_main_process:
            self.lock.acquire()
        try:
            self._build(cfg, init_from, discriminators_from)
        except BaseException:
            self.lock.release()  # a failed start (bad checkpoint, bad data) leaves the folder free
            raise

    def _build(self, cfg: TrainConfig, init_from: str | None, discriminators_from: str | None) -> None:
        torch.manual_seed(cfg.run.seed)
        random.seed(cfg.run.seed)
        np.random.seed(cfg.run.seed)
        self.generator = build_generator(cfg, init_from)
        self.discriminators = build_discriminators(cfg)
        if discriminators_from:
            state = torch.load(discriminators_from, map_location="cpu", weights_only=True)
            self.discriminators.load_state_dict(state["discriminators"])
        self.sampling_rate = self.generator.config.sampling_rate
        if not cfg.data.train:
            raise WavTokenizerError("no training data: set data.train=PATH (a corpus, an audio folder or a manifest)")
        d = cfg.data
        selection = RowSelection(d.sources, d.kinds, d.speakers, d.hours, cfg.run.seed, tuple(d.f0_bands))
        source = ClipSource(d.train, d.split, selection, with_phones=cfg.loss.phones > 0)
        if source.summary and self.accelerator.is_main_process:
            print(f"[data] {source.summary}", flush=True)
        self.phone_inventory: list[str] = []
        if cfg.loss.phones > 0:
            self.phone_inventory = phone_inventory(source.phones)
            if not self.phone_inventory:
                raise WavTokenizerError(f"loss.phones: no training row of {d.train} has phone timings")
            self.generator.phone_head = PhoneHead(self.generator.config.codebook_dim, len(self.phone_inventory))
        if cfg.loss.whisper > 0:  # the same linear read-out as the phone teacher's, to Whisper's 384 features
            source.teacher = teacher_features(source, d.teacher_cache or None,
                                              progress=self.accelerator.is_main_process)
            self.generator.whisper_head = PhoneHead(self.generator.config.codebook_dim, WHISPER_DIM)
        if cfg.loss.pitch > 0:  # the same read-out, to the pitch classes
            source.pitch = pitch_tracks(source, d.teacher_cache or None, progress=self.accelerator.is_main_process)
            self.generator.pitch_head = PhoneHead(self.generator.config.codebook_dim, PITCH_CLASSES)
        hop = int(np.prod(self.generator.config.upsampling_ratios))
        self.loader = make_loader(source, int(d.segment_seconds * self.sampling_rate), self.sampling_rate,
                                  d.batch_size, cfg.run.seed, d.num_workers,
                                  self.accelerator.num_processes, self.accelerator.process_index, d.pitch_semitones,
                                  {p: i for i, p in enumerate(self.phone_inventory)} if self.phone_inventory else None,
                                  hop, with_teacher=cfg.loss.whisper > 0, with_pitch=cfg.loss.pitch > 0)
        o = cfg.optim
        self.opt_g = torch.optim.AdamW(self.generator.parameters(), o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        # With fixes.train_dac off (the authors' code) the DAC discriminator scores but never learns: it is frozen,
        # so no gradient piles up in it and none enters the other discriminators' clipping norm.
        self.trained_discriminators = [m for name, m in self.discriminators.items()
                                       if name != "dac" or cfg.fixes.train_dac]
        for name, module in self.discriminators.items():
            module.requires_grad_(module in self.trained_discriminators)
        self.opt_d = torch.optim.AdamW([p for m in self.trained_discriminators for p in m.parameters()], o.lr,
                                       betas=tuple(o.betas), weight_decay=o.weight_decay)
        self.time_fraction = 0.0  # share of fit()'s time limit used, the same on every process
        self.sched_g, self.sched_d = (cosine_schedule(opt, cfg, lambda: self.time_fraction)
                                      for opt in (self.opt_g, self.opt_d))
        self.mel_loss = MelLoss(self.sampling_rate).to(self.accelerator.device)
        self.multiscale_mel_loss = (MultiScaleMelLoss(self.sampling_rate, cfg.loss.multiscale_mel_scales)
                                    .to(self.accelerator.device) if cfg.loss.multiscale_mel else None)
        self.phase_loss = (phase_loss(cfg.loss.phase_kind, cfg.loss.phase_resolutions).to(self.accelerator.device)
                           if cfg.loss.phase else None)
        self.step, self.epoch, self.batches_done, self.skipped = 0, 0, 0, 0
        self._poisoned: set[str] = set()  # "g"/"d": a micro-batch of the current step was not finite
        self.seconds_done = 0.0  # on the run's clock, in earlier fits and runs resumed from (the time budget)
        self._start: float | None = None
        self.nonfinite_in_a_row = {"discriminator": 0, "generator": 0}
        self.log_path = self.out_dir / "log.jsonl"
        self.resumed = self._load_checkpoint()
        self.resumed_from_step = self.step if self.resumed else None
        self.init_info = {}
        self._maybe_initialize_codebook()
        self.generator, self.discriminators, self.opt_g, self.opt_d = self.accelerator.prepare(
            self.generator, self.discriminators, self.opt_g, self.opt_d)

    def _maybe_initialize_codebook(self) -> None:
        """k-means once the autoencoder warm-up (if any) is over; a resumed run finds `inited` set already."""
        generator = self.accelerator.unwrap_model(self.generator)
        if generator.quantizer.initialized or self.step < self.cfg.quantizer.warmup_steps:
            return
        generator.to(self.accelerator.device)
        was_training = generator.training
        generator.eval()
        self.init_info = {"kmeans_step": self.step,
                          **initialize_codebook(generator, self.loader, self.cfg, self.accelerator)}
        generator.train(was_training)
        torch.manual_seed(self.cfg.run.seed + 1 + self.step)  # the same RNG state after init, whatever it consumed
        if self.accelerator.is_main_process and self.log_path.parent.exists():
            with open(self.log_path, "a") as handle:
                handle.write(json.dumps({"event": "kmeans", **self.init_info}) + "\n")

    # --- checkpoints ---------------------------------------------------------------------------------------------
    def _load_checkpoint(self) -> bool:
        path = self.out_dir / CHECKPOINT
        if not path.exists():
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable checkpoint gets one clear message
            raise WavTokenizerError(f"{path}: cannot read the checkpoint ({err}); remove it to start afresh") from None
        if state.get("phone_inventory", []) != self.phone_inventory:
            raise WavTokenizerError(f"{path}: the checkpoint's phone teacher has {len(state.get('phone_inventory', []))} "
                                    f"classes, this run's data and loss.phones give {len(self.phone_inventory)}; "
                                    "resume with the same data and loss.phones, or use another --out")
        for head, teacher, weight in (("whisper_head", "Whisper", "whisper"), ("pitch_head", "pitch", "pitch")):
            has_head = any(key.startswith(f"{head}.") for key in state["generator"])
            if has_head != (getattr(self.generator, head) is not None):
                raise WavTokenizerError(f"{path}: the checkpoint was trained {'with' if has_head else 'without'} the "
                                        f"{teacher} teacher, this run's loss.{weight} says otherwise; resume with the "
                                        f"same loss.{weight}, or use another --out")
        saved_codes = state["generator"].get("model.encoder_model.quantizer.codebook.embed")
        if saved_codes is not None and saved_codes.shape[0] != self.generator.quantizer.num_codes:
            raise WavTokenizerError(f"{path}: the checkpoint's codebook has {saved_codes.shape[0]} entries, this run's "
                                    f"has {self.generator.quantizer.num_codes} (quantizer.codebook_size); resume with "
                                    "the same setting, or use another --out")
        self.generator.load_state_dict(state["generator"])
        self.generator.quantizer.updates.fill_(state["codebook_updates"])
        self.discriminators.load_state_dict(state["discriminators"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        self.step, self.epoch, self.batches_done = state["step"], state["epoch"], state["batches_done"]
        self.skipped = state["skipped"]
        self.seconds_done = float(state.get("seconds_done", 0.0))  # older checkpoints: the budget starts again
        set_rng_state(state["rng"])
        self._apply_optimiser_settings()
        return True

    def _apply_optimiser_settings(self) -> None:
        """The optimisers' and schedulers' saved states carry the learning rate, betas and weight decay the run
        started with; a resumed run follows the config it is given now (the same values resume bit for bit)."""
        o = self.cfg.optim
        for optimizer, scheduler in ((self.opt_g, self.sched_g), (self.opt_d, self.sched_d)):
            scheduler.base_lrs = [o.lr] * len(optimizer.param_groups)
            factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
            for group in optimizer.param_groups:
                group.update(initial_lr=o.lr, lr=o.lr * factor, betas=tuple(o.betas), weight_decay=o.weight_decay)

    def save_checkpoint(self) -> None:
        if not self.accelerator.is_main_process:
            return
        unwrap = self.accelerator.unwrap_model
        state = {
            "generator": unwrap(self.generator).state_dict(),
            "codebook_updates": int(unwrap(self.generator).quantizer.updates),
            "discriminators": unwrap(self.discriminators).state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
            "step": self.step, "epoch": self.epoch, "batches_done": self.batches_done, "skipped": self.skipped,
            "seconds_done": self._clock() - self._start if self._start is not None else self.seconds_done,
            "rng": rng_state(), "config": json.dumps(self.cfg.to_dict()), "phone_inventory": self.phone_inventory,
        }
        with atomic_path(self.out_dir / CHECKPOINT, overwrite=True) as tmp:
            torch.save(state, tmp)

    def evaluate(self) -> dict:
        """Score the current codec on held-out audio (`data.validation`, default: the training corpus's validation
        split) with the evaluation module (no recogniser, MOS or speaker similarity: fast), and write two audio
        samples."""
        from ..audio_io import write_audio
        from ..codec import Codec
        from ..saved_dataset import is_saved_dataset
        from ..evaluation import evaluate, load_test_set
        from ..evaluation.runner import EVAL_RATE, CodecReconstructor

        cfg = self.cfg
        source, split = (cfg.data.validation, "test") if cfg.data.validation else (cfg.data.train, "validation")
        if not cfg.data.validation and not is_saved_dataset(cfg.data.train):
            raise WavTokenizerError("run.eval_every needs data.validation when data.train is not a saved corpus")
        if not hasattr(self, "_eval_set"):
            self._eval_set = load_test_set(source, split, limit=cfg.run.eval_utterances)
        generator = self.accelerator.unwrap_model(self.generator)
        was_training = generator.training
        generator.eval()
        reconstructor = CodecReconstructor(Codec(generator.model, name=f"step{self.step}"))
        results = evaluate([reconstructor], self._eval_set, with_asr=False, with_mos=False, with_speaker=False)
        samples = self.out_dir / "samples"
        for utterance in self._eval_set[:2]:
            audio, _ = reconstructor.reconstruct(utterance.waveform)
            write_audio(samples / f"step{self.step:07d}_{Path(utterance.id).stem}.wav", audio, EVAL_RATE, overwrite=True)
        generator.train(was_training)
        return results["codecs"][reconstructor.name]["summary"]

    def export(self, name: str = "final", notes: str = "") -> Path:
        """Write the codec as a stock-loadable HF directory (`out_dir/<name>`)."""
        generator = self.accelerator.unwrap_model(self.generator)
        source = f"trained by wavtokenizer-hf (`{Path(self.cfg.preset).stem}` preset) for {self.step} steps"
        return save_hf_directory(generator.model, self.out_dir / name, source=source, overwrite=True,
                                 notes=notes or json.dumps(self.cfg.to_dict(), indent=1))

    # --- one optimisation step -----------------------------------------------------------------------------------
    def train_step(self, audio: torch.Tensor, phone_labels: torch.Tensor | None = None,
                   teacher: torch.Tensor | None = None, pitch_labels: torch.Tensor | None = None) -> dict[str, float]:
        cfg, weights = self.cfg, self.cfg.loss
        gan = self.step >= weights.gan_start_step and len(self.accelerator.unwrap_model(self.discriminators)) > 0
        batch = audio.shape[0]
        with self.accelerator.accumulate(self.generator, self.discriminators):
            quantize = self.accelerator.unwrap_model(self.generator).quantizer.initialized
            with self.accelerator.autocast():  # the codebook moves only once the step is known to be kept
                out = self.generator(audio, quantize=quantize, update_codebook=False)
            fake = out.audio_values.float()
            logs: dict[str, float] = {}

            if gan:  # discriminator step on detached audio: real and fake in one pass
                if not cfg.fixes.single_ema_update:  # the authors' D step re-ran G in training mode
                    with torch.no_grad(), self.accelerator.autocast():
                        fake_for_d = self.generator(audio, quantize=quantize, update_codebook=quantize).audio_values.float()
                else:
                    fake_for_d = fake.detach()
                outputs = self.discriminators(torch.cat([audio, fake_for_d]))
                d_loss = torch.zeros((), device=audio.device)
                for name, (logits, _) in outputs.items():
                    term = discriminator_loss(name, [x[:batch] for x in logits], [x[batch:] for x in logits])
                    d_loss = d_loss + (weights.mrd if name == "mrd" else 1.0) * term
                    logs[f"d_{name}"] = term.detach()
                if not self._finite(d_loss, "discriminator"):
                    self._poisoned.add("d")  # the whole optimisation step is skipped, whichever micro-batch it was
                if "d" not in self._poisoned and d_loss.requires_grad:
                    self.accelerator.backward(d_loss)
                    self._clip([p for m in self.trained_discriminators for p in m.parameters()])
                    self.opt_d.step()
                    self.opt_d.zero_grad(set_to_none=True)
                elif self.accelerator.sync_gradients:  # a skipped step: no micro-batch's gradient reaches the next
                    self.opt_d.zero_grad(set_to_none=True)
                logs["d_loss"] = d_loss.detach()

            mel = self.mel_loss(fake, audio)
            g_loss = weights.mel * mel + weights.commit * out.commit_loss.float()
            if self.multiscale_mel_loss is not None:
                multiscale = self.multiscale_mel_loss(fake, audio)
                g_loss = g_loss + weights.multiscale_mel * multiscale
                logs["multiscale_mel"] = multiscale.detach()
            if self.phase_loss is not None:
                phase = self.phase_loss(fake, audio)
                g_loss = g_loss + weights.phase * phase
                logs["phase"] = phase.detach()
            head = self.accelerator.unwrap_model(self.generator).phone_head
            if head is not None and phone_labels is not None:
                phone_ce, phone_accuracy = phone_loss(head(out.quantized), phone_labels)
                g_loss = g_loss + weights.phones * phone_ce
                logs["phone_ce"], logs["phone_accuracy"] = phone_ce.detach(), phone_accuracy.detach()
            whisper_head = self.accelerator.unwrap_model(self.generator).whisper_head
            if whisper_head is not None and teacher is not None and teacher.numel():
                distance, similarity = teacher_loss(whisper_head(out.quantized), teacher)
                g_loss = g_loss + weights.whisper * distance
                logs["whisper_distance"], logs["whisper_similarity"] = distance.detach(), similarity.detach()
            pitch_head = self.accelerator.unwrap_model(self.generator).pitch_head
            if pitch_head is not None and pitch_labels is not None and pitch_labels.numel():
                pitch_ce, pitch_accuracy = phone_loss(pitch_head(out.quantized), pitch_labels)  # the same cross-entropy
                g_loss = g_loss + weights.pitch * pitch_ce
                logs["pitch_ce"], logs["pitch_accuracy"] = pitch_ce.detach(), pitch_accuracy.detach()
            if gan:
                # frozen, unwrapped discriminators: gradients reach the generator only (and DDP is not involved)
                discriminators = self.accelerator.unwrap_model(self.discriminators).requires_grad_(False)
                outputs = discriminators(torch.cat([audio, fake]))
                for name, (logits, features) in outputs.items():
                    scale = weights.mrd if name == "mrd" else 1.0
                    real_features = [[f[:batch] for f in fs] for fs in features]
                    fake_features = [[f[batch:] for f in fs] for fs in features]
                    adv = generator_adversarial(name, [x[batch:] for x in logits])
                    fm = feature_matching(name, real_features, fake_features)
                    g_loss = g_loss + scale * (weights.adversarial * adv + weights.feature_matching * fm)
                    logs[f"g_adv_{name}"], logs[f"fm_{name}"] = adv.detach(), fm.detach()
            quantizer = self.accelerator.unwrap_model(self.generator).quantizer
            if not self._finite(g_loss, "generator"):
                self._poisoned.add("g")
            if "g" not in self._poisoned:
                self.accelerator.backward(g_loss)
                logs["grad_norm_g"] = self._clip(list(self.generator.parameters()))
                self.opt_g.step()
                self.opt_g.zero_grad(set_to_none=True)
                if quantize:
                    quantizer.accumulate(out.latents, out.audio_codes)
            elif self.accelerator.sync_gradients:  # the optimiser skips this step: so do the codebook and the
                self.opt_g.zero_grad(set_to_none=True)  # gradients of its earlier micro-batches
                quantizer.discard_accumulated()
            if gan:
                for module in self.trained_discriminators:
                    module.requires_grad_(True)
        if self.accelerator.sync_gradients:
            self._poisoned.clear()
            quantizer.apply_accumulated()  # one EMA step per optimisation step, from its kept micro-batches
            with warnings.catch_warnings():  # the discriminators' schedule advances before their first step
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                self.sched_g.step()
                self.sched_d.step()
        used = torch.bincount(out.audio_codes.reshape(-1), minlength=quantizer.num_codes).gt(0).sum()
        logs.update(loss=g_loss.detach(), mel=mel.detach(), commit=out.commit_loss.detach(),
                    batch_code_usage=used / quantizer.num_codes, codes_reseeded=quantizer.last_reseeded,
                    lr=self.sched_g.get_last_lr()[0])
        return logs

    def _finite(self, loss: torch.Tensor, which: str) -> bool:
        """Whether `loss` is finite on every process (one all-reduce: all processes take the same decision).
        Each loss counts its own failures in a row, so a finite discriminator loss cannot hide a generator that
        stays non-finite."""
        if not self.cfg.fixes.nonfinite_guard:
            return True
        finite = torch.isfinite(loss.detach()).all().to(torch.int32).reshape(1)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if bool(finite.item()):
            self.nonfinite_in_a_row[which] = 0
            return True
        self.skipped += 1
        self.nonfinite_in_a_row[which] += 1
        if self.nonfinite_in_a_row[which] > self.cfg.run.max_consecutive_nonfinite:
            raise WavTokenizerError(f"{which} loss was not finite for {self.nonfinite_in_a_row[which]} steps in a "
                                    "row; lower optim.lr or check the data")
        return False

    def _clip(self, parameters: list[nn.Parameter]) -> float | torch.Tensor:
        if self.cfg.optim.grad_clip is None or not self.accelerator.sync_gradients:
            return float("nan")
        return self.accelerator.clip_grad_norm_(parameters, self.cfg.optim.grad_clip)

    # --- the loop ------------------------------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None, on_step=None, max_seconds: float | None = None) -> dict:
        """Train until `max_steps` (default: the config's) or, if given, `max_seconds` on the run's clock
        (`run.clock`: wall time, or this process's CPU time)."""
        cfg = self.cfg
        max_steps = cfg.optim.max_steps if max_steps is None else max_steps  # 0: export the starting codec
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.accelerator.is_main_process:
            self.lock.acquire()
            if not self.resumed:
                self.log_path.write_text(json.dumps({"event": "start", **self.init_info, "config": cfg.to_dict(),
                                                     "phone_inventory": self.phone_inventory}) + "\n")
                self.resumed = True  # a later fit() on this trainer appends to the same log
            elif self.resumed_from_step is not None:
                with open(self.log_path, "a") as handle:
                    handle.write(json.dumps({"event": "resume", "step": self.resumed_from_step,
                                             "world_size": self.accelerator.num_processes}) + "\n")
                self.resumed_from_step = None
        if cfg.run.log_with:
            self.accelerator.init_trackers(self.out_dir.name, config=flat_config(cfg.to_dict()))
        self.generator.train()
        self.discriminators.train()
        progress = tqdm(total=max_steps, initial=self.step, desc="train", unit="step",
                        disable=not self.accelerator.is_main_process)
        # the run's clock counts the time of earlier fits and of the runs this one resumed: a resumed
        # `--max-minutes` run keeps its budget and its learning-rate decay instead of starting them again
        start, last = self._clock() - self.seconds_done, {}
        self._start = start
        export_period = cfg.run.export_every_minutes * 60
        next_export = export_period * (1 + self.seconds_done // export_period) if export_period else 0
        while self.step < max_steps:
            set_position(self.loader, self.epoch, self.batches_done)
            for audio, phone_labels, teacher, pitch_labels in self.loader:
                if max_seconds:
                    self.time_fraction = self._elapsed(start) / max_seconds
                self._maybe_initialize_codebook()
                logs = self.train_step(audio.to(self.accelerator.device), phone_labels.to(self.accelerator.device),
                                       teacher.to(self.accelerator.device), pitch_labels.to(self.accelerator.device))
                self.batches_done += 1
                if not self.accelerator.sync_gradients:
                    continue
                self.step += 1
                last = logs
                progress.update(1)
                if self.accelerator.is_main_process and (self.step % cfg.run.log_every == 0 or self.step == 1):
                    values = as_numbers(logs)  # the device is read on logged steps only
                    progress.set_postfix(mel=f"{values['mel']:.3f}", usage=f"{values['batch_code_usage']:.2f}")
                    record = {"step": self.step, "seconds": round(self._clock() - start, 2),
                              "codebook_updates": int(self.accelerator.unwrap_model(self.generator).quantizer.updates),
                              "skipped": self.skipped, **values}
                    with open(self.log_path, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    if cfg.run.log_with:
                        self.accelerator.log(numeric(record), step=self.step)
                if cfg.run.save_every and self.step % cfg.run.save_every == 0:
                    self.save_checkpoint()
                if cfg.run.export_every and self.step % cfg.run.export_every == 0 and self.accelerator.is_main_process:
                    self.export(f"step{self.step:07d}")
                if export_period and (elapsed := self._elapsed(start)) >= next_export:
                    if self.accelerator.is_main_process:
                        self._export_timed(elapsed)
                    next_export += export_period * (1 + (elapsed - next_export) // export_period)
                if cfg.run.eval_every and self.step % cfg.run.eval_every == 0 and self.accelerator.is_main_process:
                    scores = self.evaluate()
                    with open(self.log_path, "a") as handle:
                        handle.write(json.dumps({"event": "eval", "step": self.step, **scores}) + "\n")
                    if cfg.run.log_with:
                        self.accelerator.log({f"eval/{k}": v for k, v in numeric(scores).items()}, step=self.step)
                if on_step is not None:
                    on_step(self)
                if self.step >= max_steps or (max_seconds and self._elapsed(start) > max_seconds):
                    max_steps = self.step
                    break
            else:
                self.epoch, self.batches_done = self.epoch + 1, 0
        progress.close()
        self.save_checkpoint()
        elapsed = self._elapsed(start)  # on every process: it is a collective under DDP
        self.seconds_done, self._start = elapsed, None
        if self.accelerator.is_main_process:
            with open(self.log_path, "a") as handle:
                handle.write(json.dumps({"event": "stop", "step": self.step, "clock": cfg.run.clock,
                                         "minutes": round(elapsed / 60, 3)}) + "\n")
        if cfg.run.log_with:
            self.accelerator.end_training()
        return as_numbers(last)

    def _clock(self) -> float:
        return time.process_time() if self.cfg.run.clock == "cpu" else time.perf_counter()

    def _export_timed(self, seconds: float) -> None:
        """A snapshot named by its step, with the clock's minutes in the log (for quality-vs-minutes curves)."""
        path = self.export(f"step{self.step:07d}")
        with open(self.log_path, "a") as handle:
            handle.write(json.dumps({"event": "export", "step": self.step, "path": path.name,
                                     "minutes": round(seconds / 60, 3), "clock": self.cfg.run.clock}) + "\n")

    def _elapsed(self, start: float) -> float:
        """Seconds on the run's clock since `start`, the largest over processes: every process decays its learning
        rate and stops on the same number."""
        elapsed = self._clock() - start
        if self.accelerator.num_processes > 1:
            largest = torch.tensor(elapsed, device=self.accelerator.device)
            dist.all_reduce(largest, op=dist.ReduceOp.MAX)
            elapsed = float(largest)
        return elapsed

    def close(self) -> None:
        """Release the output folder for other runs (also released when this process ends), and give the process back
        IEEE arithmetic on subnormal floats (`run.flush_denormal`)."""
        self.lock.release()
        torch.set_flush_denormal(False)
