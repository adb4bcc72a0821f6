"""The authors' LightningCLI YAML <-> transformers' `WavTokenizerConfig`.

Every field is read from the YAML; the only values not in it are the ones the authors' code hard-codes
(`EncodecFeatures.__init__`: SEANet `n_filters=32`, latent `dimension=512`, LSTM of 2 layers, ...). A YAML may
override the first two with a top-level `fixture_overrides: {encoder_n_filters, latent_dim}` mapping, as the shrunken
reference fixture does. A structure the stock config cannot express is refused with a message naming the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from transformers import WavTokenizerConfig

from .errors import WavTokenizerError

# Values fixed in the authors' code, not configurable from their YAML.
AUTHORS_ENCODER_N_FILTERS = 32
AUTHORS_LATENT_DIM = 512
AUTHORS_FIXED = dict(
    num_residual_layers=1,
    dilation_growth_rate=2,
    compress=2,
    use_conv_shortcut=True,
    use_causal_conv=False,
    pad_mode="reflect",
    norm_type="weight_norm",
    kernel_size=7,
    last_kernel_size=7,
    residual_kernel_size=3,
    num_lstm_layers=2,
    decoder_attention_num_groups=32,
    norm_eps=1e-6,
)
# The unused SEANet decoder inside the authors' EncodecFeatures always uses these ratios.
AUTHORS_SEANET_DECODER_RATIOS = (8, 5, 4, 2)

FEATURE_EXTRACTOR_CLASS = "decoder.feature_extractors.EncodecFeatures"
BACKBONE_CLASS = "decoder.models.VocosBackbone"
HEAD_CLASS = "decoder.heads.ISTFTHead"


def _get(mapping: Any, dotted: str, source: str) -> Any:
    node = mapping
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise WavTokenizerError(f"{source}: missing key '{dotted}' (expected the authors' LightningCLI layout)")
        node = node[part]
    return node


def _int(value: Any, name: str, source: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise WavTokenizerError(f"{source}: '{name}' must be a number, got {value!r}") from None
    if number != int(number) or number <= 0:
        raise WavTokenizerError(f"{source}: '{name}' must be a positive integer, got {value!r}")
    return int(number)


def read_yaml(path: str | Path) -> dict:
    """Read a YAML file with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise WavTokenizerError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise WavTokenizerError(f"{path}: not a readable YAML file ({err.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise WavTokenizerError(f"{path}: expected a YAML mapping with a 'model' section")
    return data


def config_from_original_yaml(data: dict, source: str = "config") -> WavTokenizerConfig:
    """Build the stock `WavTokenizerConfig` described by an authors' YAML (already parsed)."""
    init = _get(data, "model.init_args", source)
    fe = _get(init, "feature_extractor", source + ": model.init_args")
    bb = _get(init, "backbone", source + ": model.init_args")
    hd = _get(init, "head", source + ": model.init_args")
    for part, expected in ((fe, FEATURE_EXTRACTOR_CLASS), (bb, BACKBONE_CLASS), (hd, HEAD_CLASS)):
        got = _get(part, "class_path", source)
        if got != expected:
            raise WavTokenizerError(
                f"{source}: class_path '{got}' is not supported; the stock WavTokenizerModel expresses only "
                f"{FEATURE_EXTRACTOR_CLASS} + {BACKBONE_CLASS} + {HEAD_CLASS}"
            )
    fe_args = _get(fe, "init_args", source)
    bb_args = _get(bb, "init_args", source)
    hd_args = _get(hd, "init_args", source)

    encodec_model = fe_args.get("encodec_model", "encodec_24khz")
    if encodec_model != "encodec_24khz":
        raise WavTokenizerError(f"{source}: encodec_model '{encodec_model}' is not supported (only encodec_24khz)")
    num_quantizers = _int(_get(fe_args, "num_quantizers", source), "num_quantizers", source)
    if num_quantizers != 1:
        raise WavTokenizerError(
            f"{source}: num_quantizers={num_quantizers}; the stock WavTokenizerModel has exactly one codebook"
        )
    ratios = [_int(r, "dowmsamples", source) for r in _get(fe_args, "dowmsamples", source)]
    hop = math.prod(ratios)

    overrides = data.get("fixture_overrides") or {}
    n_filters = _int(overrides.get("encoder_n_filters", AUTHORS_ENCODER_N_FILTERS), "encoder_n_filters", source)
    latent = _int(overrides.get("latent_dim", AUTHORS_LATENT_DIM), "latent_dim", source)

    input_channels = _int(_get(bb_args, "input_channels", source), "backbone input_channels", source)
    if input_channels != latent:
        raise WavTokenizerError(
            f"{source}: backbone input_channels={input_channels} must equal the encoder latent size {latent}"
        )
    adanorm = bb_args.get("adanorm_num_embeddings")
    if adanorm is None:
        raise WavTokenizerError(
            f"{source}: backbone without adanorm_num_embeddings (plain LayerNorm) is not expressible by the stock "
            "WavTokenizerModel, which always uses AdaLayerNorm"
        )
    dim = _int(_get(bb_args, "dim", source), "backbone dim", source)
    head_dim = _int(_get(hd_args, "dim", source), "head dim", source)
    if head_dim != dim:
        raise WavTokenizerError(f"{source}: head dim={head_dim} must equal backbone dim={dim}")
    head_hop = _int(_get(hd_args, "hop_length", source), "head hop_length", source)
    n_fft = _int(_get(hd_args, "n_fft", source), "head n_fft", source)
    if head_hop != hop:
        raise WavTokenizerError(f"{source}: head hop_length={head_hop} differs from the encoder hop {hop} = {ratios}")
    if n_fft != 4 * hop:
        raise WavTokenizerError(
            f"{source}: head n_fft={n_fft}; the stock WavTokenizerModel derives n_fft = 4 x hop = {4 * hop}"
        )
    padding = hd_args.get("padding", "same")
    if padding != "same":
        raise WavTokenizerError(f"{source}: head padding '{padding}' is not supported (only 'same')")

    sample_rate = _int(init.get("sample_rate", 24000), "sample_rate", source)
    try:
        return WavTokenizerConfig(
            sampling_rate=sample_rate,
            num_filters=n_filters,
            upsampling_ratios=ratios,
            hidden_size=latent,
            codebook_dim=latent,
            codebook_size=_int(_get(fe_args, "vq_bins", source), "vq_bins", source),
            decoder_hidden_size=dim,
            decoder_intermediate_size=_int(_get(bb_args, "intermediate_dim", source), "intermediate_dim", source),
            decoder_num_layers=_int(_get(bb_args, "num_layers", source), "num_layers", source),
            adanorm_num_embeddings=_int(adanorm, "adanorm_num_embeddings", source),
            **AUTHORS_FIXED,
        )
    except (ValueError, TypeError) as err:
        raise WavTokenizerError(f"{source}: the stock WavTokenizerConfig rejects this structure: {err}") from None


def load_original_config(path: str | Path) -> WavTokenizerConfig:
    """Read an authors' YAML file and return the stock config it describes."""
    return config_from_original_yaml(read_yaml(path), source=str(path))


def original_yaml_from_config(config: WavTokenizerConfig) -> dict:
    """The authors' YAML (model section) that builds the same model; inverse of `config_from_original_yaml`."""
    for key, value in AUTHORS_FIXED.items():
        got = getattr(config, key)
        if (list(got) if isinstance(got, tuple) else got) != value:
            raise WavTokenizerError(
                f"config field {key}={got!r} cannot be expressed in the authors' code (it hard-codes {value!r})"
            )
    data: dict[str, Any] = {
        "model": {
            "class_path": "decoder.experiment.WavTokenizer",
            "init_args": {
                "sample_rate": config.sampling_rate,
                "initial_learning_rate": 2.0e-4,
                "mel_loss_coeff": 45,
                "mrd_loss_coeff": 1.0,
                "num_warmup_steps": 0,
                "pretrain_mel_steps": 0,
                "feature_extractor": {
                    "class_path": FEATURE_EXTRACTOR_CLASS,
                    "init_args": {
                        "encodec_model": "encodec_24khz",
                        "bandwidths": [6.6] * config.adanorm_num_embeddings,
                        "train_codebooks": True,
                        "num_quantizers": 1,
                        "dowmsamples": list(config.upsampling_ratios),
                        "vq_bins": config.codebook_size,
                        "vq_kmeans": 200,
                    },
                },
                "backbone": {
                    "class_path": BACKBONE_CLASS,
                    "init_args": {
                        "input_channels": config.hidden_size,
                        "dim": config.decoder_hidden_size,
                        "intermediate_dim": config.decoder_intermediate_size,
                        "num_layers": config.decoder_num_layers,
                        "adanorm_num_embeddings": config.adanorm_num_embeddings,
                    },
                },
                "head": {
                    "class_path": HEAD_CLASS,
                    "init_args": {
                        "dim": config.decoder_hidden_size,
                        "n_fft": config.n_fft,
                        "hop_length": config.hop_length,
                        "padding": "same",
                    },
                },
            },
        }
    }
    if config.num_filters != AUTHORS_ENCODER_N_FILTERS or config.hidden_size != AUTHORS_LATENT_DIM:
        # The authors' code hard-codes these two; their loader must be patched as described in the fixture README.
        data["fixture_overrides"] = {"encoder_n_filters": config.num_filters, "latent_dim": config.hidden_size}
    return data
