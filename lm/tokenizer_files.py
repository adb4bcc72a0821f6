"""Saving tokenizers that both transformers majors load: 5.x records `tokenizer_class: TokenizersBackend`, a class
4.x does not have; the fast tokenizer's files are the same, so the class is written as `PreTrainedTokenizerFast`,
which both resolve."""

from __future__ import annotations

import json
from pathlib import Path

PORTABLE_CLASS = "PreTrainedTokenizerFast"


def save_tokenizer(tokenizer, directory: str | Path) -> None:
    """`tokenizer.save_pretrained(directory)`, with a tokenizer class that transformers 4.x and 5.x both load."""
    directory = Path(directory)
    tokenizer.save_pretrained(directory)
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = PORTABLE_CLASS
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
