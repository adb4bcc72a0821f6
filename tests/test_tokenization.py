"""`datasets.map` tokenization and the sharded, resumable tokenizer."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from datasets import Dataset, load_from_disk
from transformers import AutoModel

from wavtokenizer_hf.corpus import read_audio_column
from wavtokenizer_hf.tokenization import DatasetTokenizer, check_output, shard_dir, tokenize_shard


@pytest.fixture(scope="module")
def stock(converted_dir):
    return AutoModel.from_pretrained(converted_dir).eval()


def single_codes(model, audio):
    with torch.no_grad():
        return model.encode(torch.as_tensor(audio, dtype=torch.float32)[None, None]).audio_codes[0, 0].tolist()


def test_datasets_map_with_two_processes_matches_single_file_encoding(small_corpus, converted_dir, stock):
    rows = load_from_disk(str(small_corpus))["train"]
    tokenized = rows.map(DatasetTokenizer(converted_dir), batched=True, batch_size=4, with_rank=True, num_proc=2)
    assert tokenized.features["audio_codes"].feature.dtype == "int16"
    check_against_single_files(tokenized, stock)


def check_against_single_files(tokenized, stock):
    """map workers run one thread each and float sums depend on the thread count, so the reference runs on one
    thread too (the random-weight fixture has near-tie frames that a 1e-6 latent difference can flip)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check(tokenized, stock)
    finally:
        torch.set_num_threads(threads)


def _check(tokenized, stock):
    same = total = 0
    for row in tokenized:
        audio, rate = read_audio_column(row)
        reference = single_codes(stock, audio)
        assert rate == 24000 and row["num_frames"] == len(row["audio_codes"]) == len(reference)
        assert row["frame_rate"] == 75.0
        same += sum(a == b for a, b in zip(row["audio_codes"], reference))
        total += len(reference)
    # Padding no longer leaks (tests/test_inference.py checks exact equality); what remains are float-rounding
    # differences between kernels oneDNN picks for different batch shapes, which flip near-tie frames of this
    # random-weight codebook: measured 3 of 10,400 frames.
    assert same / total >= 0.999, f"{same}/{total}"


def test_arrays_column_with_a_sampling_rate(converted_dir, stock):
    generator = torch.Generator().manual_seed(1)
    arrays = [(torch.randn(n, generator=generator) * 0.1).tolist() for n in (4000, 24000, 9000)]
    dataset = Dataset.from_dict({"audio": arrays})
    tokenized = dataset.map(DatasetTokenizer(converted_dir, sampling_rate=24000), batched=True)
    for array, codes in zip(arrays, tokenized["audio_codes"]):
        assert codes == single_codes(stock, array)


def read_shards(directory):
    return {p.relative_to(directory).as_posix(): pq.read_table(p).to_pylist()
            for p in sorted(directory.rglob("part-*.parquet"))}


def test_resuming_after_an_interruption_gives_the_same_shards(small_corpus, converted_dir, tmp_path):
    clean = tmp_path / "clean"
    for index in range(2):
        tokenize_shard(small_corpus, clean, converted_dir, num_shards=2, shard_index=index, rows_per_part=4)
    assert check_output(clean, 2)["ok"]

    interrupted = tmp_path / "interrupted"
    shutil.copytree(clean, interrupted)
    shard = interrupted / "shard-00001-of-00002"
    (shard / "_COMPLETE.json").unlink()
    last = sorted(shard.glob("part-*.parquet"))[-1]
    last.unlink()
    (shard / f".{last.name}.tmp").write_bytes(b"half-written")  # what a kill mid-write leaves
    report = check_output(interrupted, 2)
    assert not report["ok"] and "shard 1: not complete" in report["problems"][0]

    summary = tokenize_shard(small_corpus, interrupted, converted_dir, num_shards=2, shard_index=1, rows_per_part=4)
    assert summary["parts_written"] == 1 and summary["parts_skipped"] >= 1
    assert check_output(interrupted, 2)["ok"]
    assert read_shards(interrupted) == read_shards(clean)


def test_a_second_tokenizer_on_a_live_shard_is_refused(small_corpus, converted_dir, tmp_path):
    from wavtokenizer_hf.errors import WavTokenizerError
    from wavtokenizer_hf.run_lock import OutputLock
    from wavtokenizer_hf.tokenization import shard_dir

    with OutputLock(shard_dir(tmp_path, 2, 0), "tokenizer for this shard"):  # as a running tokenizer holds it
        with pytest.raises(WavTokenizerError, match="in use by another tokenizer"):
            tokenize_shard(small_corpus, tmp_path, converted_dir, num_shards=2, shard_index=0, rows_per_part=4)
        assert not list(shard_dir(tmp_path, 2, 0).glob("part-*"))
    summary = tokenize_shard(small_corpus, tmp_path, converted_dir, num_shards=2, shard_index=0, rows_per_part=4)
    assert summary["parts_written"] >= 1


def test_the_map_fingerprint_depends_on_model_and_options_not_on_the_process(converted_dir, tmp_path):
    """datasets hashes the callable to name its cache: a process id inside it made every run re-tokenize."""
    import subprocess
    import sys

    from datasets.fingerprint import Hasher

    here = Hasher.hash(DatasetTokenizer(converted_dir))
    script = ("from datasets.fingerprint import Hasher; from wavtokenizer_hf.tokenization import DatasetTokenizer; "
              f"print(Hasher.hash(DatasetTokenizer({str(converted_dir)!r})))")
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    assert here == there
    assert Hasher.hash(DatasetTokenizer(converted_dir, precision="bf16", long_audio="fp32")) != here


def test_codes_of_large_codebooks_get_an_int32_column():
    import numpy as np

    from wavtokenizer_hf.tokenization import codes_table

    rows = {"id": ["a"], "audio_codes": [np.array([1, 40000], dtype=np.int32)], "num_frames": [2], "frame_rate": [75.0]}
    table = codes_table(rows)
    assert str(table.schema.field("audio_codes").type) == "list<item: int32>"
    assert table.column("audio_codes").to_pylist() == [[1, 40000]]
    small = codes_table({**rows, "audio_codes": [np.array([1, 4095], dtype=np.int16)]})
    assert str(small.schema.field("audio_codes").type) == "list<item: int16>"


def test_bad_audio_in_a_shard_stops_it_clearly_or_is_skipped_and_listed(converted_dir, tmp_path):
    import json

    import numpy as np
    import soundfile as sf

    from wavtokenizer_hf.errors import WavTokenizerError

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "c"):
        sf.write(folder / f"{name}.wav", 0.1 * np.sin(np.arange(12000) / 10), 24000)
    (folder / "b.wav").write_bytes(b"RIFF not really audio")
    sf.write(folder / "d.wav", np.zeros(100), 24000)  # shorter than two frames
    sf.write(folder / "e.wav", np.full(4800, np.nan), 24000, subtype="FLOAT")
    with pytest.raises(WavTokenizerError, match=r"b.wav: not readable audio.*--skip-errors"):
        tokenize_shard(folder, tmp_path / "strict", converted_dir, rows_per_part=2)
    summary = tokenize_shard(folder, tmp_path / "lenient", converted_dir, rows_per_part=2, skip_errors=True)
    assert summary["files_skipped"] == 3
    manifest = json.loads((tmp_path / "lenient" / "shard-00000-of-00001" / "_COMPLETE.json").read_text())
    reasons = {s["id"]: s["reason"] for s in manifest["skipped"]}
    assert set(reasons) == {"b.wav", "d.wav", "e.wav"}
    assert "too short" in reasons["d.wav"] and "NaN" in reasons["e.wav"]
    assert check_output(tmp_path / "lenient", 1) == {"ok": True, "rows": 2, "problems": []}


def test_a_resumed_shard_refuses_changed_input_or_part_size(small_corpus, converted_dir, tmp_path):
    from wavtokenizer_hf.errors import WavTokenizerError

    tokenize_shard(small_corpus, tmp_path, converted_dir, num_shards=2, shard_index=0, rows_per_part=4)
    with pytest.raises(WavTokenizerError, match="started with other rows_per_part"):
        tokenize_shard(small_corpus, tmp_path, converted_dir, num_shards=2, shard_index=0, rows_per_part=5)
    with pytest.raises(WavTokenizerError, match="started with other .*input_fingerprint"):
        tokenize_shard(small_corpus, tmp_path, converted_dir, num_shards=2, shard_index=0, rows_per_part=4,
                       split="validation")


def _altered_copy(source, target, codebook: bool = False):
    """A copy of a codec directory with other weights: its encoder's first bias moved (and its codebook too)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target, dirs_exist_ok=True)
    state = load_file(source / "model.safetensors")
    key = next(k for k in state if k.startswith("encoder_model.encoder") and k.endswith("bias"))
    state[key] = state[key] + 0.5
    if codebook:
        state["encoder_model.quantizer.codebook.embed"] = state["encoder_model.quantizer.codebook.embed"].flip(0)
    save_file(state, target / "model.safetensors")
    return target


def test_a_model_replaced_in_the_same_folder_gets_a_new_map_fingerprint_and_new_codes(converted_dir, tmp_path):
    """After `wavtokenizer init --overwrite` or a fine-tuned codec copied over the folder, the same `ds.map` must not
    return the old model's codes from the cache."""
    import shutil

    import numpy as np
    from datasets import Dataset
    from datasets.fingerprint import Hasher

    from wavtokenizer_hf.codec import Codec

    folder = tmp_path / "wavtokenizer"
    shutil.copytree(converted_dir, folder)
    audio = [{"array": 0.1 * np.sin(np.arange(9600 + 480 * i) / (7 + i)), "sampling_rate": 24000} for i in range(3)]
    Dataset.from_dict({"audio": audio}).save_to_disk(tmp_path / "rows")
    rows = Dataset.load_from_disk(tmp_path / "rows")  # a dataset on disk: maps are cached
    first = rows.map(DatasetTokenizer(folder), batched=True)
    before = Hasher.hash(DatasetTokenizer(folder))
    assert first["codec_fingerprint"] == [Codec.from_pretrained(folder).fingerprint] * 3
    _altered_copy(converted_dir, folder)  # same path, other weights, same codebook
    assert Hasher.hash(DatasetTokenizer(folder)) != before
    again = rows.map(DatasetTokenizer(folder), batched=True)
    assert again["audio_codes"] != first["audio_codes"]  # computed anew, not read from the first map's cache
    expected = [Codec.from_pretrained(folder).encode(np.asarray(a["array"], dtype=np.float32), 24000).audio_codes[0]
                .tolist() for a in audio]
    assert again["audio_codes"] == expected
    assert Hasher.hash(DatasetTokenizer(tmp_path / ".." / tmp_path.name / "wavtokenizer")) == Hasher.hash(
        DatasetTokenizer(folder))  # the same model by another path


def test_a_resumed_shard_refuses_a_changed_model_and_the_check_finds_parts_of_two_models(small_corpus, converted_dir,
                                                                                         tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from wavtokenizer_hf.errors import WavTokenizerError
    from wavtokenizer_hf.tokenization import part_identity

    model = tmp_path / "model"
    shutil.copytree(converted_dir, model)
    out = tmp_path / "out"
    tokenize_shard(small_corpus, out, model, num_shards=1, rows_per_part=4)
    directory = shard_dir(out, 1, 0)
    parts = sorted(directory.glob("part-*.parquet"))
    assert len(parts) >= 2 and check_output(out, 1)["ok"]
    assert part_identity(parts[0])["codebook_fingerprint"] == json.loads((directory / "_PLAN.json").read_text())[
        "codebook_fingerprint"]
    _altered_copy(converted_dir, model)
    parts[-1].unlink()  # as if killed before its last part
    with pytest.raises(WavTokenizerError, match="started with other model_sha256"):
        tokenize_shard(small_corpus, out, model, num_shards=1, rows_per_part=4)
    # a part written by another model behind the job's back
    other = tmp_path / "other"
    tokenize_shard(small_corpus, other, model, num_shards=1, rows_per_part=4)
    shutil.copy(sorted(shard_dir(other, 1, 0).glob("part-*.parquet"))[-1], parts[-1])
    report = check_output(out, 1)
    assert not report["ok"] and any("made by another model" in p for p in report["problems"])
    assert pq.read_table(parts[-1]).num_rows > 0


def test_the_lm_loaders_refuse_codes_of_another_codebook_or_of_several(small_corpus, converted_dir, tmp_path):
    import shutil

    from lm.streams import load_tokenized
    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.errors import WavTokenizerError

    tokenize_shard(small_corpus, tmp_path / "out", converted_dir, num_shards=1, rows_per_part=4)
    mine = Codec.from_pretrained(converted_dir).fingerprint
    assert len(load_tokenized(tmp_path / "out", codebook_fingerprint=mine)) > 0
    with pytest.raises(WavTokenizerError, match="not by this codec"):
        load_tokenized(tmp_path / "out", codebook_fingerprint="0123456789abcdef")
    other = _altered_copy(converted_dir, tmp_path / "other_model", codebook=True)
    tokenize_shard(small_corpus, tmp_path / "mixed", other, num_shards=1, rows_per_part=4)
    shutil.copy(sorted((tmp_path / "out").rglob("part-*.parquet"))[0],
                sorted((tmp_path / "mixed").rglob("part-*.parquet"))[0])
    with pytest.raises(WavTokenizerError, match="codes of 2 different codebooks"):
        load_tokenized(tmp_path / "mixed")


def test_any_channel_count_is_mixed_down_over_channels_never_over_time(tmp_path):
    import numpy as np
    import soundfile as sf

    from wavtokenizer_hf.tokenization import decode_audio_value

    t = np.arange(4800) / 24000
    channels = np.stack([np.sin(2 * np.pi * (100 + 10 * c) * t) * 0.01 * (c + 1) for c in range(20)], axis=1)
    sf.write(tmp_path / "twenty.wav", channels, 24000, subtype="FLOAT")
    expected = channels.mean(axis=1)
    for value in (str(tmp_path / "twenty.wav"), {"path": str(tmp_path / "twenty.wav"), "bytes": None},
                  {"bytes": (tmp_path / "twenty.wav").read_bytes(), "path": None}):
        data, rate = decode_audio_value(value)
        assert rate == 24000 and data.shape == (4800,) and np.allclose(data, expected, atol=1e-6)
    sf.write(tmp_path / "short.wav", channels[:12], 24000, subtype="FLOAT")  # more channels than frames: a file says
    for value in (str(tmp_path / "short.wav"), {"path": str(tmp_path / "short.wav"), "bytes": None}):
        data, _ = decode_audio_value(value)
        assert data.shape == (12,) and np.allclose(data, expected[:12], atol=1e-6)
    for array in (channels, channels.T):  # (samples, channels) or (channels, samples)
        data, _ = decode_audio_value({"array": array.astype(np.float32), "sampling_rate": 24000})
        assert data.shape == (4800,) and np.allclose(data, expected, atol=1e-6)


def test_a_file_that_fails_with_any_error_is_recorded_and_the_directory_run_goes_on(tmp_path):
    from conftest import write_tone
    from wavtokenizer_hf.file_jobs import run_job

    for name in ("a", "b", "c"):
        write_tone(tmp_path / "in" / f"{name}.wav")

    def job(source, target):
        if source.stem == "b":
            raise MemoryError("cannot allocate 5.7 GB")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("ok")

    summary = run_job(job, tmp_path / "in", tmp_path / "out", lambda p: p.suffix == ".wav", "", ".txt", False, "x")
    assert [p.name for p in summary.done] == ["a.txt", "c.txt"]
    assert [(p.name, why) for p, why in summary.failed] == [("b.wav", "MemoryError: cannot allocate 5.7 GB")]


def test_a_saved_dataset_s_audio_column_can_be_named(converted_dir, tmp_path):
    import numpy as np
    from datasets import Dataset

    from wavtokenizer_hf.errors import WavTokenizerError

    speech = [{"array": 0.1 * np.sin(np.arange(9600) / 9), "sampling_rate": 24000}]
    Dataset.from_dict({"id": ["a"], "speech": speech}).save_to_disk(tmp_path / "data")
    with pytest.raises(WavTokenizerError, match="has no column 'audio'.*--audio-column"):
        tokenize_shard(tmp_path / "data", tmp_path / "out", converted_dir)
    tokenize_shard(tmp_path / "data", tmp_path / "out", converted_dir, audio_column="speech")
    assert check_output(tmp_path / "out", 1)["rows"] == 1


def test_a_map_can_record_a_bad_row_s_error_instead_of_stopping(converted_dir):
    import numpy as np
    from datasets import Dataset

    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.errors import WavTokenizerError

    good = 0.1 * np.sin(np.arange(9600) / 9)
    rows = Dataset.from_dict({"audio": [{"array": good, "sampling_rate": 24000},
                                        {"array": np.full(4800, np.nan), "sampling_rate": 24000},
                                        {"array": good[:4800], "sampling_rate": 24000}]})
    with pytest.raises(WavTokenizerError, match="NaN"):
        rows.map(DatasetTokenizer(converted_dir), batched=True)
    mapped = rows.map(DatasetTokenizer(converted_dir, on_error="record"), batched=True)
    assert mapped["error"][0] is None and mapped["error"][2] is None and "NaN or Inf" in mapped["error"][1]
    assert mapped["num_frames"][1] == 0 and mapped["audio_codes"][1] == []
    codec = Codec.from_pretrained(converted_dir)
    assert mapped["audio_codes"][2] == codec.encode(good[:4800].astype(np.float32), 24000).audio_codes[0].tolist()
    with pytest.raises(WavTokenizerError, match="on_error='skip'"):
        DatasetTokenizer(converted_dir, on_error="skip")


def test_a_low_precision_map_asks_at_construction_what_to_do_with_items_over_60_s(converted_dir):
    import numpy as np

    from wavtokenizer_hf.errors import WavTokenizerError
    from wavtokenizer_hf.long_audio import StreamingEncoder

    with pytest.raises(WavTokenizerError, match="long_audio='fp32'.*or long_audio='error'"):
        DatasetTokenizer(converted_dir, precision="bf16")
    long = torch.from_numpy(0.1 * np.sin(np.arange(24000 * 61) / 9).astype(np.float32))
    with pytest.raises(WavTokenizerError, match="is for shorter items"):
        DatasetTokenizer(converted_dir, precision="bf16", long_audio="error").encode_waveforms([long])
    tokenizer = DatasetTokenizer(converted_dir, precision="bf16", long_audio="fp32")
    (codes,) = tokenizer.encode_waveforms([long])
    assert codes.tolist() == StreamingEncoder(tokenizer._fast(None)).encode(long).tolist()  # exact fp32


def test_the_map_encodes_at_the_precision_it_was_given(converted_dir):
    import numpy as np

    speech = [torch.from_numpy((0.2 * np.sin(np.arange(24000 * 3) / (5 + i)) * np.sin(np.arange(24000 * 3) / 900))
                               .astype(np.float32)) for i in range(4)]
    exact = DatasetTokenizer(converted_dir)
    low = DatasetTokenizer(converted_dir, precision="bf16", long_audio="error")
    fp32 = [c.tolist() for c in exact.encode_waveforms(speech)]
    bf16 = [c.tolist() for c in low.encode_waveforms(speech)]
    expected = [c.tolist() for c in low._fast(None).encode_list(speech, "bf16")]
    assert bf16 == expected and bf16 != fp32  # some codes flip in bf16: the option is not ignored


def test_a_map_worker_forked_after_cuda_started_is_told_how_to_call_map(converted_dir, monkeypatch):
    import numpy as np

    from wavtokenizer_hf.errors import WavTokenizerError

    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)  # what a worker forked after CUDA sees
    rows = Dataset.from_dict({"audio": [{"array": 0.1 * np.sin(np.arange(9600) / 9), "sampling_rate": 24000}]})
    with pytest.raises(WavTokenizerError, match="num_proc=None"):
        rows.map(DatasetTokenizer(converted_dir, device="cuda:0"), batched=True)
    assert rows.map(DatasetTokenizer(converted_dir, device="cpu"), batched=True)["num_frames"][0] > 0  # CPU: fine
