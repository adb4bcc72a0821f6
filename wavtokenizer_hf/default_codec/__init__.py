"""The default codec, shipped inside the package: a stock-loadable Hugging Face WavTokenizer directory.

`wavtokenizer init [DIR]` copies it to `./wavtokenizer` (or DIR), where `AutoModel.from_pretrained("wavtokenizer")`
finds it; its `README.md` is the model card.
"""

from __future__ import annotations

from pathlib import Path

FILES = ("config.json", "preprocessor_config.json", "model.safetensors", "README.md")


def default_codec_dir() -> Path:
    """The directory holding the default codec's files (inside the installed package)."""
    return Path(__file__).resolve().parent


def install_default_codec(destination: str | Path = "wavtokenizer", overwrite: bool = False) -> Path:
    """Copy the default codec to `destination` (written under a temporary name, then renamed) and return it."""
    import shutil

    from ..atomic import atomic_path
    from ..errors import WavTokenizerError

    source = default_codec_dir()
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        raise WavTokenizerError(f"the installed package lacks the default codec's {missing} in {source}; "
                                "reinstall wavtokenizer-hf")
    destination = Path(destination)
    with atomic_path(destination, overwrite=overwrite, is_dir=True) as tmp:
        for name in FILES:
            shutil.copyfile(source / name, tmp / name)
    return destination
