"""A Hub-style model card (`README.md`) for every directory the package writes."""

from __future__ import annotations

import math
from pathlib import Path

from transformers import WavTokenizerConfig


def describe_config(config: WavTokenizerConfig) -> dict[str, str]:
    """The config in words: the numbers a user of a codec looks for first."""
    bits = math.log2(config.codebook_size)
    frame_rate = config.sampling_rate / config.hop_length
    return {
        "sampling rate": f"{config.sampling_rate} Hz, mono",
        "frame rate": f"{frame_rate:g} tokens per second (hop {config.hop_length} samples)",
        "codebook": f"1 codebook of {config.codebook_size} entries ({bits:g} bits per token), dimension {config.codebook_dim}",
        "bitrate": f"{frame_rate * bits:g} bit/s",
        "encoder": f"SEANet, {config.num_filters} base filters, ratios {list(config.upsampling_ratios)}, "
        f"{config.num_lstm_layers}-layer LSTM, latent {config.hidden_size}",
        "decoder": f"Vocos backbone: width {config.decoder_hidden_size}, {config.decoder_num_layers} ConvNeXt blocks "
        f"(inner {config.decoder_intermediate_size}), attention block; iSTFT head n_fft {config.n_fft}",
    }


def write_model_card(out_dir: str | Path, config: WavTokenizerConfig, source: str, notes: str = "",
                     license_name: str = "other") -> Path:
    facts = "\n".join(f"| {key} | {value} |" for key, value in describe_config(config).items())
    notes_block = f"\n## Conversion notes\n\n```\n{notes}\n```\n" if notes else ""
    text = f"""---
library_name: transformers
license: {license_name}
tags:
- audio
- audio-tokenizer
- wavtokenizer
---

# WavTokenizer codec

Source: {source}.

| property | value |
| --- | --- |
{facts}

The license field is `{license_name}`: the weights carry the license of the checkpoint they came from; check it
before redistributing.

## How to load

With stock transformers (no `trust_remote_code`, this package not needed):

```python
from transformers import AutoFeatureExtractor, AutoModel

model = AutoModel.from_pretrained("path/to/this/folder").eval()
feature_extractor = AutoFeatureExtractor.from_pretrained("path/to/this/folder")
inputs = feature_extractor(waveform, sampling_rate={config.sampling_rate}, return_tensors="pt")
codes = model.encode(inputs["input_values"]).audio_codes          # (batch, 1, frames)
audio = model.decode(codes).audio_values                          # (batch, 1, frames * {config.hop_length})
```

With wavtokenizer-hf (resampling, channel handling, codes files):

```python
from wavtokenizer_hf import Codec

codec = Codec.from_pretrained("path/to/this/folder")
codes = codec.encode(waveform, sampling_rate)
audio = codec.decode(codes)
```
{notes_block}"""
    path = Path(out_dir) / "README.md"
    path.write_text(text)
    return path
