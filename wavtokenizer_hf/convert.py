"""Authors' `.ckpt` + `.yaml` <-> Hugging Face directory that stock transformers loads.

`convert_original_checkpoint` writes `config.json`, `model.safetensors`, `preprocessor_config.json` and a model card;
`export_original_checkpoint` writes the authors' Lightning layout back (with its YAML beside it). Every source key is
mapped (see `key_map.RULES`) or dropped on purpose (`key_map.DROPPED_PREFIXES`); anything else is an error.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
import yaml
from safetensors.torch import load_file
from transformers import WavTokenizerConfig, WavTokenizerFeatureExtractor, WavTokenizerModel

from .atomic import atomic_path
from .errors import WavTokenizerError
from .key_map import dropped_reason, hf_to_original, original_to_hf
from .model_card import write_model_card
from .original_config import (
    AUTHORS_SEANET_DECODER_RATIOS,
    load_original_config,
    original_yaml_from_config,
)


@dataclass
class ConversionReport:
    """What a conversion did with every source key."""

    mapped: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for reason in self.dropped.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        lines = [f"mapped {len(self.mapped)} tensors"]
        lines += [f"dropped {n} ({reason})" for reason, n in reasons.items()]
        return "\n".join(lines)


def load_torch_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a Lightning checkpoint (`state_dict` inside) or a plain state dict, with `weights_only=True`."""
    path = Path(path)
    if not path.is_file():
        raise WavTokenizerError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise WavTokenizerError(
            f"{path}: cannot read the checkpoint (truncated, corrupt, or not a PyTorch file): {first_line[:200]}"
        ) from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WavTokenizerError(
            f"{path}: expected a Lightning checkpoint with a 'state_dict' of tensors, or a plain state dict"
        )
    return dict(state)


def expected_state_shapes(config: WavTokenizerConfig) -> dict[str, torch.Size]:
    """Key -> shape of the stock model's state dict for `config`, without allocating weights."""
    with torch.device("meta"):
        model = WavTokenizerModel(config)
    return {key: value.shape for key, value in model.state_dict().items()}


def map_original_state(state: Mapping[str, torch.Tensor], config: WavTokenizerConfig) -> tuple[dict, ConversionReport]:
    """Rename an authors' state dict to stock keys, checking every key and shape."""
    expected = expected_state_shapes(config)
    report = ConversionReport()
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        target = original_to_hf(key)
        if target is None:
            reason = dropped_reason(key)
            if reason is None:
                raise WavTokenizerError(f"unexpected key in checkpoint: '{key}' {tuple(tensor.shape)} (no rule maps it)")
            report.dropped[key] = reason
            continue
        if target not in expected:
            raise WavTokenizerError(
                f"unexpected key in checkpoint: '{key}' {tuple(tensor.shape)} maps to '{target}', which the model "
                "described by the config does not have (does the YAML match the checkpoint?)"
            )
        if tensor.shape != expected[target]:
            raise WavTokenizerError(
                f"shape mismatch for '{key}': checkpoint has {tuple(tensor.shape)}, the config expects "
                f"{tuple(expected[target])} (does the YAML match the checkpoint?)"
            )
        if not tensor.is_floating_point():
            raise WavTokenizerError(f"'{key}' has dtype {tensor.dtype}; expected floating point weights")
        mapped[target] = tensor.to(torch.float32).contiguous()
        report.mapped[key] = target
    missing = sorted(set(expected) - set(mapped))
    if missing:
        shown = ", ".join(f"'{hf_to_original(k) or k}' {tuple(expected[k])}" for k in missing[:5])
        raise WavTokenizerError(f"checkpoint is missing {len(missing)} key(s) the model needs: {shown}")
    if "head.istft.window" in state:
        window = state["head.istft.window"].float()
        if window.shape != (config.n_fft,) or not torch.allclose(window, torch.hann_window(config.n_fft), atol=1e-6):
            raise WavTokenizerError("head.istft.window is not the periodic Hann window the stock model recomputes")
    inited = mapped["encoder_model.quantizer.codebook.inited"]
    if not bool(inited.item()):
        raise WavTokenizerError(
            "the codebook was never initialised (inited = 0): the authors' code would run k-means on the first audio "
            "it encodes; this checkpoint is untrained"
        )
    return mapped, report


def codebook_fingerprint(embed: torch.Tensor) -> str:
    """Short hash of the codebook: codes from one model are only meaningful with the same codebook."""
    return hashlib.sha256(embed.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()).hexdigest()[:16]


def feature_extractor_for(config: WavTokenizerConfig) -> WavTokenizerFeatureExtractor:
    return WavTokenizerFeatureExtractor(sampling_rate=config.sampling_rate, hop_length=config.hop_length)


def save_hf_directory(
    model: WavTokenizerModel, out_dir: str | Path, source: str, overwrite: bool = False, notes: str = ""
) -> Path:
    """Write model, feature extractor and model card to `out_dir` atomically."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        feature_extractor_for(model.config).save_pretrained(tmp)
        write_model_card(tmp, model.config, source=source, notes=notes)
    return out_dir


def convert_original_checkpoint(
    checkpoint: str | Path, config_yaml: str | Path, out_dir: str | Path, overwrite: bool = False
) -> ConversionReport:
    """Authors' checkpoint + YAML -> Hugging Face directory."""
    config = load_original_config(config_yaml)
    state = load_torch_checkpoint(checkpoint)
    mapped, report = map_original_state(state, config)
    model = WavTokenizerModel(config)
    model.load_state_dict(mapped, strict=True)
    model.eval()
    name = Path(checkpoint).name
    save_hf_directory(
        model, out_dir, source=f"converted from the authors' checkpoint `{name}` with `{Path(config_yaml).name}`",
        overwrite=overwrite, notes=report.summary(),
    )
    return report


def _seanet_decoder_placeholders(config: WavTokenizerConfig) -> dict[str, torch.Tensor]:
    """The authors' unused SEANet decoder, which their strict loader expects: placeholder weights (never called).

    Weights are ones, biases and LSTM weights zero; the layout follows their `EncodecFeatures`.
    """
    prefix = "feature_extractor.encodec.decoder.model"
    ratios = AUTHORS_SEANET_DECODER_RATIOS
    n_filters, latent = config.num_filters, config.hidden_size
    mult = 2 ** len(ratios)
    out: dict[str, torch.Tensor] = {}

    def conv(name: str, c_out: int, c_in: int, k: int, transposed: bool = False) -> None:
        kind = "convtr.convtr" if transposed else "conv.conv"
        # old weight_norm uses dim 0: output channels for Conv1d, input channels for ConvTranspose1d
        g_channels = c_in if transposed else c_out
        v_shape = (c_in, c_out, k) if transposed else (c_out, c_in, k)
        out[f"{prefix}.{name}.{kind}.bias"] = torch.zeros(c_out)
        out[f"{prefix}.{name}.{kind}.weight_g"] = torch.ones(g_channels, 1, 1)
        out[f"{prefix}.{name}.{kind}.weight_v"] = torch.ones(v_shape)

    conv("0", mult * n_filters, latent, config.kernel_size)
    hidden = mult * n_filters
    for layer in range(config.num_lstm_layers):
        for kind in ("weight_ih", "weight_hh"):
            out[f"{prefix}.1.lstm.{kind}_l{layer}"] = torch.zeros(4 * hidden, hidden)
        for kind in ("bias_ih", "bias_hh"):
            out[f"{prefix}.1.lstm.{kind}_l{layer}"] = torch.zeros(4 * hidden)
    index = 2
    for ratio in ratios:
        dim_in, dim_out = mult * n_filters, mult * n_filters // 2
        conv(str(index + 1), dim_out, dim_in, 2 * ratio, transposed=True)
        res = str(index + 2)
        conv(f"{res}.block.1", dim_out // config.compress, dim_out, config.residual_kernel_size)
        conv(f"{res}.block.3", dim_out, dim_out // config.compress, 1)
        conv(f"{res}.shortcut", dim_out, dim_out, 1)
        mult //= 2
        index += 3
    conv(str(index + 1), config.audio_channels, n_filters, config.last_kernel_size)
    return out


def load_hf_state(hf_dir: str | Path) -> tuple[WavTokenizerConfig, dict[str, torch.Tensor]]:
    """Config and raw tensors of a Hugging Face WavTokenizer directory (checked against the config)."""
    hf_dir = Path(hf_dir)
    config_path, weights_path = hf_dir / "config.json", hf_dir / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise WavTokenizerError(f"{hf_dir}: not a WavTokenizer directory ({path.name} is missing)")
    try:
        config = WavTokenizerConfig.from_pretrained(hf_dir)
    except (ValueError, TypeError, OSError) as err:
        raise WavTokenizerError(f"{config_path}: not a valid WavTokenizer config ({err})") from None
    try:
        state = load_file(weights_path)
    except Exception as err:  # safetensors raises its own error types
        raise WavTokenizerError(f"{weights_path}: cannot read the weights (truncated or corrupt): {err}") from None
    expected = expected_state_shapes(config)
    if set(state) != set(expected):
        extra, missing = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
        raise WavTokenizerError(f"{weights_path}: keys do not match the config (extra {extra[:3]}, missing {missing[:3]})")
    for key, tensor in state.items():
        if tensor.shape != expected[key]:
            raise WavTokenizerError(f"{weights_path}: '{key}' has shape {tuple(tensor.shape)}, config expects {tuple(expected[key])}")
    return config, state


def export_original_checkpoint(hf_dir: str | Path, out_ckpt: str | Path, overwrite: bool = False) -> Path:
    """Hugging Face directory -> authors' Lightning checkpoint, with `<name>.yaml` written beside it."""
    config, state = load_hf_state(hf_dir)
    original: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        target = hf_to_original(key)
        if target is None:
            raise WavTokenizerError(f"no rule maps the stock key '{key}' to the authors' layout")
        original[target] = tensor.clone()
    original.update(_seanet_decoder_placeholders(config))
    original["head.istft.window"] = torch.hann_window(config.n_fft)
    yaml_data = original_yaml_from_config(config)
    checkpoint = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": "1.8.6",
        "state_dict": dict(sorted(original.items(), key=lambda kv: _original_order(kv[0]))),
        "loops": {},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"sample_rate": config.sampling_rate},
    }
    out_ckpt = Path(out_ckpt)
    out_yaml = out_ckpt.with_suffix(".yaml")
    with atomic_path(out_ckpt, overwrite=overwrite) as tmp_ckpt, atomic_path(out_yaml, overwrite=overwrite) as tmp_yaml:
        torch.save(checkpoint, tmp_ckpt)
        tmp_yaml.write_text(
            f"# Written by wavtokenizer-hf from {Path(hf_dir).name}; the authors' model section.\n"
            + yaml.safe_dump(yaml_data, sort_keys=False)
        )
    return out_ckpt


_ORDER = ("feature_extractor.encodec.encoder", "feature_extractor.encodec.quantizer", "feature_extractor.encodec.decoder",
          "backbone", "head")


def _original_order(key: str) -> tuple[int, str]:
    """Group keys as the authors' module registers them (within a group, stock order is kept by sort stability)."""
    for rank, prefix in enumerate(_ORDER):
        if key.startswith(prefix):
            return (rank, "")
    return (len(_ORDER), "")
