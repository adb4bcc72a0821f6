"""Line-delimited files and audio listings, read one way everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_tone
from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.listing import audio_files, manifest_entries, or_na, read_jsonl


def test_a_malformed_line_is_named_by_file_and_line_number(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n\n{"step": 2\n')
    with pytest.raises(WavTokenizerError, match=r"log.jsonl:3: not a JSON line"):
        read_jsonl(log)
    log.write_text('{"step": 1}\n\n{"step": 2}\n')
    assert read_jsonl(log) == [{"step": 1}, {"step": 2}]


def test_manifest_paths_are_taken_from_the_manifests_folder_and_ids_default_to_the_path(tmp_path):
    manifest = tmp_path / "sub" / "m.jsonl"
    manifest.parent.mkdir()
    manifest.write_text('{"audio_filepath": "a.wav", "id": "first"}\n{"path": "/abs/b.flac"}\n')
    assert manifest_entries(manifest) == [("first", tmp_path / "sub" / "a.wav"), ("/abs/b.flac", Path("/abs/b.flac"))]
    manifest.write_text('{"text": "no audio here"}\n')
    with pytest.raises(WavTokenizerError, match="entry 1 has none of audio_filepath, path, audio"):
        manifest_entries(manifest)


def test_audio_files_are_listed_recursively_in_sorted_order_and_other_files_left_out(tmp_path):
    for name in ("b/z.wav", "a.flac", "b/a.wav"):
        write_tone(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not audio")
    assert [p.relative_to(tmp_path).as_posix() for p in audio_files(tmp_path)] == ["a.flac", "b/a.wav", "b/z.wav"]


def test_a_missing_value_prints_as_n_a():
    assert or_na(None, "{:.1%}") == "n/a" and or_na(0.25, "{:.1%}") == "25.0%"


def test_temporary_files_a_killed_run_left_are_never_inputs(tmp_path):
    from wavtokenizer_hf.atomic import atomic_path, is_temporary
    from wavtokenizer_hf.file_jobs import run_job

    write_tone(tmp_path / "a.wav")
    write_tone(tmp_path / ".a.wav.k3j9x2.tmp.wav")  # what atomic_path writes before its rename
    (tmp_path / ".a.codes.safetensors.q8w1.tmp.safetensors").write_bytes(b"half written")
    assert [p.name for p in audio_files(tmp_path)] == ["a.wav"]
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.wav") as tmp:  # the real name, whatever it is
        assert is_temporary(tmp)
        raise RuntimeError("killed")
    assert not is_temporary(tmp_path / "a.wav") and not is_temporary(tmp_path / ".hidden.wav")
    seen = []
    run_job(lambda src, dst: seen.append(src.name), tmp_path, tmp_path / "out", lambda p: True, "", ".x", False, "x")
    assert seen == ["a.wav"]  # accepting every file, the temporary ones are still left out
