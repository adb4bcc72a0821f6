"""`scripts/tokenize_dataset.py --check`: exit 0 only when every shard is complete, 1 with the problems otherwise."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from wavtokenizer_hf.tokenization import tokenize_shard

from conftest import ROOT, write_tone

SCRIPT = ROOT / "scripts" / "tokenize_dataset.py"


def check(out, num_shards, monkeypatch, capsys) -> tuple[int, dict]:
    """The script's --check run in this process (its own argument parsing, report and exit status)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "unused-input", str(out), "--num-shards", str(num_shards), "--check"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    return exit_.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def folder(tmp_path):
    for index in range(5):
        write_tone(tmp_path / "audio" / f"{index}.wav", seconds=0.2 + 0.05 * index, freq=200.0 + 30 * index)
    return tmp_path / "audio"


def test_check_passes_only_when_every_shard_is_complete(folder, converted_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "shards"
    tokenize_shard(folder, out, converted_dir, num_shards=2, shard_index=0, rows_per_part=2)
    code, report = check(out, 2, monkeypatch, capsys)
    assert code == 1 and not report["ok"] and report["rows"] == 3
    assert report["problems"] == [f"shard 1: not complete ({out / 'shard-00001-of-00002'} has no _COMPLETE.json)"]

    tokenize_shard(folder, out, converted_dir, num_shards=2, shard_index=1, rows_per_part=2)
    result = subprocess.run([sys.executable, str(SCRIPT), "unused-input", str(out), "--num-shards", "2", "--check"],
                            capture_output=True, text=True, timeout=300)  # the script as a user runs it
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == {"ok": True, "rows": 5, "problems": []}

    code, report = check(out, 3, monkeypatch, capsys)  # other shard counts are other outputs
    assert code == 1 and len(report["problems"]) == 3


def test_check_finds_a_missing_part_and_a_part_with_missing_rows(folder, converted_dir, tmp_path, monkeypatch,
                                                                   capsys):
    out = tmp_path / "shards"
    tokenize_shard(folder, out, converted_dir, num_shards=1, shard_index=0, rows_per_part=2)
    shard = out / "shard-00000-of-00001"
    assert check(out, 1, monkeypatch, capsys) == (0, {"ok": True, "rows": 5, "problems": []})

    part = shard / "part-00001.parquet"
    table = pq.read_table(part)
    pq.write_table(table.slice(0, 1), part)  # a part that lost a row
    code, report = check(out, 1, monkeypatch, capsys)
    assert code == 1 and report["problems"] == ["shard 0: 4 rows, expected 5"]

    part.unlink()
    code, report = check(out, 1, monkeypatch, capsys)
    assert code == 1 and report["problems"] == ["shard 0: 2 of 3 parts", "shard 0: 3 rows, expected 5"]
