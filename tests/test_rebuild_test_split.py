"""benchmarks/rebuild_reference_test_split.py: the sentences a new split must not read."""

from __future__ import annotations

import sys

import pytest
from datasets import Dataset, DatasetDict

from conftest import ROOT
from wavtokenizer_hf.errors import WavTokenizerError

sys.path.insert(0, str(ROOT / "benchmarks"))
import rebuild_reference_test_split as rebuild  # noqa: E402


def _save(path, splits: dict[str, list[str]]) -> None:
    DatasetDict({name: Dataset.from_dict({"text": texts}) for name, texts in splits.items()}).save_to_disk(str(path))


def test_every_sentence_of_every_split_of_every_corpus_is_collected_and_empty_texts_are_not(tmp_path):
    _save(tmp_path / "a", {"train": ["one", "two", ""], "test": ["three"]})
    _save(tmp_path / "b", {"validation": ["four", "one"]})
    texts = rebuild.sentences_of([tmp_path / "a", tmp_path / "b"])
    assert texts == frozenset({"one", "two", "three", "four"})
    assert rebuild.sentences_of([]) == frozenset()


def test_a_folder_that_is_not_a_saved_corpus_is_refused_by_name(tmp_path):
    (tmp_path / "audio").mkdir()
    with pytest.raises(WavTokenizerError, match="not a saved corpus"):
        rebuild.sentences_of([tmp_path / "audio"])
