"""Writing under a temporary name, then renaming."""

from __future__ import annotations

import os

import pytest

from wavtokenizer_hf.atomic import atomic_path


def test_outputs_get_the_ordinary_permissions_of_the_umask_not_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
        with atomic_path(tmp_path / "model", is_dir=True) as tmp:
            (tmp / "config.json").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755


def test_a_failed_write_leaves_nothing_and_keeps_the_old_output(tmp_path):
    (tmp_path / "a.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.json", overwrite=True) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert (tmp_path / "a.json").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
