"""Training configuration: dataclasses filled from a YAML preset plus `section.key=value` overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import WavTokenizerError

PRESETS_DIR = Path(__file__).parent / "presets"


@dataclass
class DataConfig:
    train: str = ""  # saved corpus, audio folder or .jsonl manifest
    split: str = "train"
    # keep only the corpus rows whose `source` contains one of these texts (case-insensitive); empty keeps all
    sources: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()  # keep only rows of these kinds (speech, music, noise); empty keeps all
    speakers: int = 0  # keep only the rows of this many speakers, drawn with run.seed (0: all)
    hours: float = 0.0  # a seeded subset of the selected rows holding this many hours (0: all); fewer is refused
    # not in the paper (empty keeps its sampling): F0 band edges in Hz, e.g. [100, 150]; each band's rows (by their
    # speaker's median F0 in the corpus's corpus_summary.json) repeat so the bands hold about equal hours
    f0_bands: tuple[float, ...] = ()
    # pitch and speed perturbation: each crop played up to this many semitones faster or slower (0: none)
    pitch_semitones: float = 0.0
    validation: str = ""  # corpus or folder for periodic evaluation (default: the train corpus's validation split)
    segment_seconds: float = 3.0
    batch_size: int = 40
    num_workers: int = 2
    # where loss.whisper's teacher features are cached ("" : ~/.cache/wavtokenizer-hf/whisper_teacher)
    teacher_cache: str = ""


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    max_steps: int = 1_000_000
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0  # None reproduces the authors' unclipped training
    grad_accum: int = 1


@dataclass
class LossConfig:
    mel: float = 45.0
    commit: float = 1000.0
    adversarial: float = 1.0
    feature_matching: float = 1.0
    mrd: float = 1.0  # weight of the multi-resolution discriminator terms (the authors' mrd_loss_coeff)
    # not in the paper (0 keeps its recipe): log-mel L1 at finer frequency resolutions, which resolve harmonics that
    # the 100-band mel blurs; each scale is (n_fft, hop, n_mels)
    multiscale_mel: float = 0.0
    multiscale_mel_scales: tuple[tuple[int, int, int], ...] = ((512, 128, 80), (1024, 256, 160), (2048, 512, 320))
    # not in the paper (0 keeps its recipe): a reconstruction term that sees phase (training/phase_losses.py);
    # phase_kind is "complex" or "anti_wrapping", each resolution is (n_fft, hop)
    phase: float = 0.0
    phase_kind: str = "complex"
    phase_resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
    gan_start_step: int = 0
    # not in the paper (0 keeps its recipe): a phone teacher, cross-entropy of a training-only head on the quantised
    # latents predicting each frame's phone from the corpus's timings (training/phones.py)
    phones: float = 0.0
    # not in the paper (0 keeps its recipe): a Whisper teacher, cosine distance of a training-only head on the
    # quantised latents to Whisper tiny.en's encoder features at each frame (training/whisper_teacher.py)
    whisper: float = 0.0
    # not in the paper (0 keeps its recipe): a pitch teacher, cross-entropy of a training-only head on the quantised
    # latents classifying each frame's F0 (one-semitone bins and no pitch) from the clip's YIN track (training/pitch_teacher.py)
    pitch: float = 0.0


@dataclass
class DiscriminatorConfig:
    use: tuple[str, ...] = ("mpd", "mrd", "dac")
    mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)  # also the DAC family's period members
    mrd_channels: int = 64
    dac_channels: int = 32  # the DAC family's multi-band complex STFT members


@dataclass
class QuantizerConfig:
    ema_decay: float = 0.99
    dead_code_threshold: float = 2.0  # an EMA count (the authors'); used when dead_code_share is 0
    dead_code_share: float = 0.0  # > 0: dead below this share of one step's mean vectors per code (scales with batch)
    kmeans_iterations: int = 200
    kmeans_max_vectors: int = 100_000
    kmeans_batches: int = 8
    # steps of plain autoencoder training before k-means (0 = the paper: k-means on the random encoder's latents,
    # which are nearly constant; a short warm-up gives k-means latents that carry the signal)
    warmup_steps: int = 0
    # with --init-from: a new codebook of this many entries (the loaded codec's own size refits it), fitted by
    # k-means on the trained encoder's latents before the first step (0 keeps the loaded codebook); the encoder,
    # decoder and head are kept
    codebook_size: int = 0
    # not in the paper ("straight_through" keeps its recipe): how the decoder's gradient reaches the encoder through
    # the code lookup; "rotation" is the rotation trick (training/vq.py), inference unchanged
    gradient: str = "straight_through"


@dataclass
class FixesConfig:
    """Each flag switches one fix of the authors' training code. All False, with `optim.grad_clip=null`,
    `run.mixed_precision=no` and the paper presets, reproduces their training, but for one thing: their MPD and MRD
    carry a bandwidth embedding (a learned per-channel projection, zero at the start) that ours do not
    (training/discriminators.py)."""

    train_dac: bool = True  # the DAC discriminator is in the optimiser (theirs: a second, unused instance)
    reseed_dead_codes: bool = True  # re-seeding takes effect (theirs: overwritten in the same call)
    kmeans_on_training_data: bool = True  # k-means on training batches (theirs: whatever batch comes first)
    single_ema_update: bool = True  # one EMA update per step (theirs: two, the D step re-runs G in train mode)
    nonfinite_guard: bool = True  # skip a step whose loss is NaN/Inf


@dataclass
class RunConfig:
    seed: int = 0
    save_every: int = 1000
    eval_every: int = 0
    export_every: int = 0  # stock-loadable snapshots out_dir/stepNNNNNNN (e.g. for probes vs. training step)
    eval_utterances: int = 8
    log_with: str = ""  # an accelerate tracker beside log.jsonl: tensorboard, trackio, wandb (installed separately)
    log_every: int = 10
    mixed_precision: str = "no"  # no | bf16 | fp16 (forward passes; mel/STFT losses and VQ stay fp32)
    # the clock of --max-minutes, the learning-rate decay and export_every_minutes: "wall" time, or "cpu" time of
    # this process (all its threads, not its data workers: set data.num_workers=0 to count everything), which
    # stays fair between runs that share the cores
    clock: str = "wall"
    export_every_minutes: float = 0.0  # snapshots out_dir/stepNNNNNNN each time the clock passes a multiple
    max_consecutive_nonfinite: int = 20
    # subnormal floats read and written as zero (x86 FTZ/DAZ) for this process while it trains: on CPUs the backward
    # passes meet enough of them that the same steps take about a sixth less CPU time, with losses equal to 4 digits
    # (BENCHMARKS.md, "Training throughput"); off gives IEEE arithmetic
    flush_denormal: bool = True


@dataclass
class TrainConfig:
    model: dict[str, Any] = field(default_factory=dict)  # WavTokenizerConfig fields
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    discriminators: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    fixes: FixesConfig = field(default_factory=FixesConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # "default": PyTorch's conv init under weight norm, as the authors' code (a random SEANet then passes only ~1% of
    # its input's variation to the latents); "kaiming": He-normal encoder convs, which keep the signal's spread
    encoder_init: str = "default"
    preset: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise WavTokenizerError(f"{where}: expected a mapping, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise WavTokenizerError(f"{where}: unknown setting '{key}' (known: {', '.join(known)})")
        if dataclasses.is_dataclass(known[key].default_factory() if known[key].default_factory is not dataclasses.MISSING
                                    else None) and isinstance(value, dict):
            value = _build(type(known[key].default_factory()), value, f"{where}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, str) and "float" in str(known[key].type):
            try:  # YAML 1.1 reads 2e-4 (no dot) as a string
                value = float(value)
            except ValueError:
                raise WavTokenizerError(f"{where}.{key}: expected a number, got {value!r}") from None
        kwargs[key] = value
    return cls(**kwargs)


def preset_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = PRESETS_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise WavTokenizerError(f"unknown preset '{name_or_path}' (presets: {', '.join(names)}, or a .yaml path)")
    return candidate


def apply_override(values: dict, override: str) -> None:
    """`section.key=value` with a YAML-typed value, e.g. `optim.lr=1e-3` or `data.train=runs/corpus`."""
    if "=" not in override:
        raise WavTokenizerError(f"override '{override}' is not of the form section.key=value")
    dotted, raw = override.split("=", 1)
    parts = dotted.split(".")
    node = values
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    value = yaml.safe_load(raw) if raw else ""
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()  # YAML 1.1 reads yes/no/on/off as booleans; `run.mixed_precision=no` means the word
    node[parts[-1]] = value


def preset_values(preset: str, seen: tuple[Path, ...] = ()) -> dict:
    """A preset's YAML values; `inherits: NAME` starts from another preset and overrides it key by key."""
    path = preset_path(preset).resolve()
    if path in seen:
        raise WavTokenizerError(f"presets inherit in a loop: {' -> '.join(p.stem for p in (*seen, path))}")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise WavTokenizerError(f"{path}: expected a mapping, got {values!r}")
    parent = values.pop("inherits", None)
    return _merged(preset_values(parent, (*seen, path)), values) if parent else values


def _merged(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def load_train_config(preset: str, overrides: list[str] | None = None) -> TrainConfig:
    path = preset_path(preset)
    values = preset_values(preset)
    for override in overrides or []:
        apply_override(values, override)
    config = _build(TrainConfig, values, path.stem)
    config.preset = str(path)
    _check_choices(config)
    return config


def _check_choices(config: TrainConfig) -> None:
    choices = {"run.clock": (config.run.clock, ("wall", "cpu")),
               "loss.phase_kind": (config.loss.phase_kind, ("complex", "anti_wrapping")),
               "run.mixed_precision": (config.run.mixed_precision, ("no", "bf16", "fp16")),
               "quantizer.gradient": (config.quantizer.gradient, ("straight_through", "rotation"))}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise WavTokenizerError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    # a negative weight would train its term backwards; 0 turns a term off
    for entry in dataclasses.fields(config.loss):
        value = getattr(config.loss, entry.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise WavTokenizerError(f"loss.{entry.name} must be 0 or more (0 turns it off), not {value!r}")
    if config.quantizer.codebook_size < 0 or config.quantizer.codebook_size == 1:
        raise WavTokenizerError(f"quantizer.codebook_size must be 0 (keep the loaded codebook) or 2 or more, "
                                f"not {config.quantizer.codebook_size!r}")
    for name in ("sources", "kinds"):
        if isinstance(getattr(config.data, name), str):
            setattr(config.data, name, (getattr(config.data, name),))
    if isinstance(config.data.f0_bands, (int, float)):
        config.data.f0_bands = (float(config.data.f0_bands),)
