"""Explicit, two-way map between the authors' state-dict keys and the stock `WavTokenizerModel` keys.

Each rule is a pair of templates; `{i}` stands for a layer index, `{sub}` for an optional `block.N.` / `shortcut.`
prefix inside a SEANet layer, `{rest}` for any remaining key path. A rule maps in both directions, so conversion and
export cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLACEHOLDERS = {"i": r"\d+", "sub": r"(?:block\.\d+\.|shortcut\.)?", "rest": r".+"}

ORIGINAL_ENCODER = "feature_extractor.encodec.encoder.model"
ORIGINAL_CODEBOOK = "feature_extractor.encodec.quantizer.vq.layers.0._codebook"
HF_ENCODER = "encoder_model.encoder.layers"
HF_CODEBOOK = "encoder_model.quantizer.codebook"

RULES: list[tuple[str, str]] = [
    (f"{ORIGINAL_ENCODER}.{{i}}.{{sub}}conv.conv.bias", f"{HF_ENCODER}.{{i}}.{{sub}}conv.bias"),
    (f"{ORIGINAL_ENCODER}.{{i}}.{{sub}}conv.conv.weight_g", f"{HF_ENCODER}.{{i}}.{{sub}}conv.parametrizations.weight.original0"),
    (f"{ORIGINAL_ENCODER}.{{i}}.{{sub}}conv.conv.weight_v", f"{HF_ENCODER}.{{i}}.{{sub}}conv.parametrizations.weight.original1"),
    (f"{ORIGINAL_ENCODER}.{{i}}.lstm.{{rest}}", f"{HF_ENCODER}.{{i}}.lstm.{{rest}}"),
    (f"{ORIGINAL_CODEBOOK}.inited", f"{HF_CODEBOOK}.inited"),
    (f"{ORIGINAL_CODEBOOK}.cluster_size", f"{HF_CODEBOOK}.cluster_size"),
    (f"{ORIGINAL_CODEBOOK}.embed", f"{HF_CODEBOOK}.embed"),
    (f"{ORIGINAL_CODEBOOK}.embed_avg", f"{HF_CODEBOOK}.embed_avg"),
    ("backbone.{rest}", "backbone.{rest}"),
    ("head.out.weight", "head.linear.weight"),
    ("head.out.bias", "head.linear.bias"),
]

# Keys of the authors' checkpoints that conversion drops on purpose, with the reason.
DROPPED_PREFIXES: dict[str, str] = {
    "feature_extractor.encodec.decoder.": "EnCodec SEANet decoder: built and saved by the authors' code, never called",
    "head.istft.window": "iSTFT Hann window: recomputed by the stock model (checked equal before dropping)",
    "multiperioddisc.": "multi-period discriminator (training only)",
    "multiresddisc.": "multi-resolution discriminator (training only)",
    "dac.": "DAC multi-band discriminator (training only)",
    "dacdiscriminator.": "DAC GAN-loss wrapper (training only)",
    "melspec_loss.": "mel-loss buffers (training only)",
}


@dataclass(frozen=True)
class _Rule:
    source: re.Pattern
    target: str


def _compile(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for name, regex in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{regex})")
    return re.compile(f"^{pattern}$")


_TO_HF = [_Rule(_compile(orig), hf) for orig, hf in RULES]
_TO_ORIGINAL = [_Rule(_compile(hf), orig) for orig, hf in RULES]


def _apply(rules: list[_Rule], key: str) -> str | None:
    for rule in rules:
        match = rule.source.match(key)
        if match:
            return rule.target.format(**match.groupdict())
    return None


def original_to_hf(key: str) -> str | None:
    """The stock key for an authors' key, or None when no rule maps it."""
    return _apply(_TO_HF, key)


def hf_to_original(key: str) -> str | None:
    """The authors' key for a stock key, or None when no rule maps it."""
    return _apply(_TO_ORIGINAL, key)


def dropped_reason(key: str) -> str | None:
    """Why an authors' key is dropped on purpose, or None when it is not on the list."""
    for prefix, reason in DROPPED_PREFIXES.items():
        if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
            return reason
    return None
