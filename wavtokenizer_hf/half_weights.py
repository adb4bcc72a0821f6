"""A codec folder with its weights stored in float16, half the size, that stock transformers still runs in float32.

Every floating tensor is stored as float16 except the quantizer's (`KEEP_FLOAT32`); `config.json` keeps
`"dtype": "float32"`, so `AutoModel.from_pretrained` casts the weights up on load and runs exactly as a float32
model whose weights are the float16 values. What it changes in codes and audio is measured by
`benchmarks/bench_half_weights.py` before a codec is shipped this way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import WavTokenizerModel

from .atomic import atomic_path
from .errors import WavTokenizerError

# The codebook stays float32: rounding it would move the nearest-code boundaries, change the codebook fingerprint
# (codes files and tokenized datasets are checked against it) and overflow the EMA cluster counts (float16 tops out at
# 65504).
KEEP_FLOAT32 = ("encoder_model.quantizer.",)
WEIGHTS = "model.safetensors"


def half_state_dict(model: WavTokenizerModel) -> dict[str, torch.Tensor]:
    """The model's state dict with every floating tensor outside KEEP_FLOAT32 cast to float16."""
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        if tensor.is_floating_point() and not name.startswith(KEEP_FLOAT32):
            tensor = tensor.to(torch.float16)
        state[name] = tensor
    return state


def write_half_weights(src: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Copy the codec folder `src` to `out` with float16 weights (the other files unchanged); written atomically.
    Refuses a codec whose weights float16 cannot hold (a value past its range)."""
    src, out = Path(src), Path(out)
    if not (src / "config.json").is_file() or not (src / WEIGHTS).is_file():
        raise WavTokenizerError(f"{src}: not a codec folder (needs config.json and {WEIGHTS})")
    model = WavTokenizerModel.from_pretrained(src, dtype=torch.float32)
    if model.config.dtype not in (None, torch.float32, "float32"):
        raise WavTokenizerError(f"{src}: config.json says dtype {model.config.dtype}; expected float32")
    state = half_state_dict(model)
    limit = torch.finfo(torch.float16).max
    for name, tensor in model.state_dict().items():
        if state[name].dtype == torch.float16 and tensor.abs().max() > limit:
            raise WavTokenizerError(f"{src}: {name} holds values past float16's range ({limit:g})")
    with atomic_path(out, overwrite=overwrite, is_dir=True) as tmp:
        for path in src.iterdir():
            if path.is_file() and path.name != WEIGHTS:
                shutil.copy2(path, tmp / path.name)
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
    return out


def stored_dtypes(folder: str | Path) -> dict[str, int]:
    """How many tensors of each dtype `folder`'s weights file stores (e.g. {'F16': 150, 'F32': 3, 'I64': 1})."""
    from safetensors import safe_open

    counts: dict[str, int] = {}
    with safe_open(str(Path(folder) / WEIGHTS), "pt") as f:
        for key in f.keys():
            dtype = str(f.get_slice(key).get_dtype())
            counts[dtype] = counts.get(dtype, 0) + 1
    return counts
