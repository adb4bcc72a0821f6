"""lm.audio_bpe and lm.text_sentencepiece: audio BPE over code streams, stock loading, the joint vocabulary."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lm.audio_bpe import (AudioBPE, AudioBPELayout, add_audio_bpe_tokens, codes_of_name, codes_to_text,
                          compare_bits_per_second, compression, frequent_ngrams, joint_tokenizer, load_audio_bpe,
                          sample_chunks, text_to_codes, top_pieces, train_audio_bpe)
from lm.text_sentencepiece import read_pieces, text_tokenizer, tokenizers_model, train_sentencepiece_model
from lm.vocabulary import BOS, EOS, AudioTokenLayout, build_joint_tokenizer
from wavtokenizer_hf.errors import WavTokenizerError

ROOT = Path(__file__).resolve().parents[1]
K = 64
TEXTS = ["the cat sat on the mat", "a dog ran in the park", "it was a fine day for a walk",
         "she sells sea shells by the sea shore", "the quick brown fox jumps over the lazy dog"] * 20


def corpus(seed: int, count: int, codebook_size: int = K) -> list[np.ndarray]:
    """Streams built from a fixed set of recurring code motifs (as phones recur), with 10% random codes."""
    motifs = [np.random.default_rng(1000 + i).integers(0, codebook_size, 2 + i % 5) for i in range(24)]
    rng = np.random.default_rng(seed)
    streams = []
    for _ in range(count):
        stream = np.concatenate([motifs[i] for i in rng.zipf(1.5, rng.integers(5, 40)) % len(motifs)])
        noise = rng.random(stream.size) < 0.1
        stream[noise] = rng.integers(0, codebook_size, int(noise.sum()))
        streams.append(stream)
    return streams


@pytest.fixture(scope="module")
def bpes() -> dict[str, AudioBPE]:
    return {model_type: train_audio_bpe(corpus(0, 200), K, 160, model_type) for model_type in ("bpe", "unigram")}


# --- round trips ------------------------------------------------------------------------------------------------

def test_encode_then_decode_is_exact_for_many_random_sequences(bpes):
    rng = np.random.default_rng(1)
    patterned = np.concatenate(corpus(2, 50))
    for bpe in bpes.values():
        streams = []
        for trial in range(300):
            length = int(rng.integers(0, 200))
            if trial % 2:
                start = int(rng.integers(0, patterned.size - length))
                streams.append(patterned[start:start + length])
            else:
                streams.append(rng.integers(0, K, length))
        for codes, ids in zip(streams, bpe.encode_batch(streams)):
            assert ids.dtype == np.int64 and ((ids >= 0) & (ids < bpe.vocab_size)).all()
            assert np.array_equal(bpe.encode(codes), ids)
            assert np.array_equal(bpe.decode(ids), codes)


def test_every_code_alone_all_codes_in_a_row_and_empty_input_round_trip(bpes):
    for bpe in bpes.values():
        for code in range(K):
            assert bpe.encode([code]).tolist() == [code]  # a single code is its own id
            assert bpe.decode([code]).tolist() == [code]
        for codes in (np.arange(K), np.arange(K)[::-1], np.repeat(np.arange(K), 3)):
            assert np.array_equal(bpe.decode(bpe.encode(codes)), codes)
        assert bpe.encode([]).shape == (0,) and bpe.encode(np.zeros(0, dtype=np.int16)).dtype == np.int64
        assert bpe.decode([]).shape == (0,) and bpe.encode_words([]) == []
        assert np.array_equal(bpe.decode(torch.from_numpy(bpe.encode(torch.arange(K)))), np.arange(K))


def test_codebooks_of_wavtokenizer_size_round_trip_every_code():
    bpe = train_audio_bpe(corpus(0, 100, 4096), 4096, 4096 + 200)
    assert bpe.vocab_size == 4296
    codes = np.random.default_rng(3).permutation(4096)
    assert np.array_equal(bpe.decode(bpe.encode(codes)), codes)
    assert codes_to_text([0, 4095], 4096) == "\U000f0000\U000f0fff"
    assert text_to_codes(codes_to_text(codes, 4096)).tolist() == codes.tolist()


def test_merged_tokens_shorten_patterned_streams(bpes):
    held_out = corpus(7, 30)
    for model_type, bpe in bpes.items():
        assert compression(bpe, held_out, 75.0)["codes_per_token"] > 1.5, model_type
        assert (bpe.lengths[:K] == 1).all() and (bpe.lengths[K:] > 1).all() and bpe.lengths.max() <= 16
    assert bpes["bpe"].vocab_size == 160 and K < bpes["unigram"].vocab_size <= 160
    top = top_pieces(bpes["bpe"], bpes["bpe"].encode_batch(held_out), 75.0, count=3)
    assert len(top) == 3 and top[0]["count"] >= top[1]["count"]
    assert top[0]["codes"] > 1 and top[0]["milliseconds"] == 1000 * top[0]["codes"] / 75


def test_a_vocabulary_the_size_of_the_codebook_is_plain_codes():
    bpe = train_audio_bpe(corpus(0, 10), K, K, "unigram")
    codes = corpus(1, 1)[0]
    assert bpe.vocab_size == K and np.array_equal(bpe.encode(codes), codes)


def test_converted_models_segment_exactly_like_sentencepiece():
    import sentencepiece as spm

    texts = [codes_to_text(codes, K) for codes in corpus(0, 100)]
    for model_type in ("bpe", "unigram"):
        proto = train_sentencepiece_model(texts, 150, model_type, character_coverage=1.0,
                                          normalization_rule_name="identity", add_dummy_prefix=False,
                                          split_by_whitespace=False, split_by_unicode_script=False,
                                          hard_vocab_limit=False)
        pieces = [p for p in read_pieces(proto) if p.kind == "normal"]
        converted = tokenizers_model([p.text for p in pieces], [p.score for p in pieces], model_type)
        processor = spm.SentencePieceProcessor(model_proto=proto)
        for text in texts:
            ours = [token.value for token in converted.tokenize(text)]
            assert ours == processor.encode(text, out_type=str), model_type


# --- word alignment ---------------------------------------------------------------------------------------------

def test_word_aligned_encoding_never_merges_across_word_boundaries(bpes):
    bpe = bpes["bpe"]
    first = bpe.pieces[K]  # the first merge: a frequent pair
    words = [np.array([first[0]]), np.array(first[1:])]
    assert bpe.encode(np.concatenate(words)).tolist() == [K]  # whole, the pair merges
    assert [ids.tolist() for ids in bpe.encode_words(words)] == [[first[0]], list(first[1:])]
    rng = np.random.default_rng(4)
    for stream in corpus(5, 40):
        cuts = np.sort(rng.choice(np.arange(1, stream.size), size=min(6, stream.size - 1), replace=False))
        words = np.split(stream, cuts)
        for word, ids in zip(words, bpe.encode_words(words)):
            assert np.array_equal(bpe.decode(ids), word)


# --- saving and stock loading -----------------------------------------------------------------------------------

def test_a_saved_audio_bpe_loads_back_identically(tmp_path, bpes):
    for model_type, bpe in bpes.items():
        directory = bpe.save(tmp_path / model_type)
        assert {p.name for p in directory.iterdir()} == {"tokenizer.json", "tokenizer_config.json", "audio_bpe.json"}
        config = json.loads((directory / "audio_bpe.json").read_text())
        assert (config["codebook_size"], config["model_type"], config["vocab_size"]) == (K, model_type, bpe.vocab_size)
        loaded = load_audio_bpe(directory, codebook_size=K)
        assert loaded.pieces == bpe.pieces
        codes = corpus(9, 1)[0]
        assert np.array_equal(loaded.encode(codes), bpe.encode(codes))


def test_stock_transformers_loads_the_audio_bpe_and_joint_tokenizers_in_a_clean_interpreter(tmp_path, bpes):
    bpe = bpes["bpe"]
    bpe.save(tmp_path / "audio_bpe")
    expected = {}
    for text_model in ("bpe", "sp-unigram"):
        tokenizer = joint_tokenizer(bpe, TEXTS, 400, text_model)
        tokenizer.save_pretrained(tmp_path / text_model)
        AudioBPELayout.from_tokenizer(tokenizer, bpe)  # the layout accepts the joint tokenizer
        expected[text_model] = {"len": len(tokenizer), "text": tokenizer("a fine day").input_ids}
    codes = np.concatenate(corpus(11, 3))
    ids = bpe.encode(codes)
    script = f"""
import json, sys
from transformers import AutoTokenizer
audio = AutoTokenizer.from_pretrained({str(tmp_path / 'audio_bpe')!r})
text = "".join(chr(0xF0000 + c) for c in {codes.tolist()})
ids = audio(text, add_special_tokens=False).input_ids
out = {{"ids": ids, "decoded": [ord(c) - 0xF0000 for c in audio.decode(ids)]}}
for name in ("bpe", "sp-unigram"):
    joint = AutoTokenizer.from_pretrained({str(tmp_path)!r} + "/" + name)
    offset = joint.convert_tokens_to_ids("<|a_0|>")
    names = joint.convert_ids_to_tokens([offset + i for i in ids])
    out[name] = {{"len": len(joint), "text": joint("a fine day").input_ids,
                 "codes": [int(c) for n in names for c in n[4:-2].split("_")]}}
assert "wavtokenizer_hf" not in sys.modules and "lm" not in sys.modules
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ids"] == ids.tolist() and out["decoded"] == codes.tolist()
    for text_model in ("bpe", "sp-unigram"):
        assert out[text_model]["codes"] == codes.tolist()
        assert out[text_model]["len"] == expected[text_model]["len"]
        assert out[text_model]["text"] == expected[text_model]["text"]


# --- the joint vocabulary ---------------------------------------------------------------------------------------

def test_the_joint_vocabulary_puts_pieces_after_the_codes_and_maps_codes_like_the_tokenizer(tmp_path, bpes):
    from transformers import AutoTokenizer

    bpe = bpes["unigram"]
    joint_tokenizer(bpe, TEXTS, 400).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    layout = AudioBPELayout.from_tokenizer(tokenizer, bpe)
    base = AudioTokenLayout.from_tokenizer(tokenizer)
    assert (base.audio_offset, base.codebook_size) == (layout.audio_offset, K) and layout.vocab_size == len(tokenizer)
    assert layout.audio_ids().stop == len(tokenizer)
    names = tokenizer.convert_ids_to_tokens(list(layout.audio_ids()))
    assert names == bpe.token_names() and [codes_of_name(n) for n in names] == bpe.pieces
    codes = np.concatenate(corpus(12, 5))
    ids = layout.codes_to_ids(codes)
    assert np.array_equal(ids, bpe.encode(codes) + layout.audio_offset) and layout.is_audio(ids).all()
    assert np.array_equal(layout.ids_to_codes(ids), codes)
    assert np.array_equal(layout.ids_to_codes(torch.from_numpy(ids)), codes)
    framed = np.concatenate([[layout[BOS]], ids, tokenizer("hi").input_ids, [layout[EOS]]])
    assert np.array_equal(layout.ids_to_codes(framed, drop_other=True), codes)
    words = np.split(codes, [3, 10])
    assert [layout.ids_to_codes(w).tolist() for w in layout.words_to_ids(words)] == [w.tolist() for w in words]
    assert tokenizer.decode(tokenizer("the cat sat").input_ids, skip_special_tokens=True) == "the cat sat"


def test_sentencepiece_text_sides_round_trip_text_and_keep_word_tokens():
    for kind in ("sp-unigram", "sp-bpe", "bpe"):
        tokenizer = joint_tokenizer(K, TEXTS, 400, kind)
        assert AudioTokenLayout.from_tokenizer(tokenizer).codebook_size == K
        for text in ("the cat sat on the mat", "a zebra, naïve café! 😀", "x"):
            ids = tokenizer(text, add_special_tokens=False).input_ids
            assert tokenizer.decode(ids) == text, kind
        word = tokenizer(" dog", add_special_tokens=False).input_ids  # as lm.tts_format writes a word
        sentence = tokenizer("a dog ran", add_special_tokens=False).input_ids
        assert any(sentence[i:i + len(word)] == word for i in range(len(sentence))), kind
    assert len(text_tokenizer(TEXTS, 300, "sp-bpe")) <= 300


# --- errors -----------------------------------------------------------------------------------------------------

def test_codes_out_of_range_are_refused_with_the_accepted_range(bpes):
    bpe = bpes["bpe"]
    for bad in ([0, K], [-1, 3]):
        with pytest.raises(WavTokenizerError, match=r"codes must lie in \[0, 64\)"):
            bpe.encode(bad)
    with pytest.raises(WavTokenizerError, match="integers"):
        bpe.encode(np.array([1.0, 2.0]))
    with pytest.raises(WavTokenizerError, match="1-D"):
        bpe.encode(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(WavTokenizerError, match=r"\[0, 64\)"):
        bpe.encode_words([np.array([1, 2]), np.array([K + 5])])
    with pytest.raises(WavTokenizerError, match=r"\[0, 64\)"):
        train_audio_bpe([np.array([1, 2, 300])], K, 100)


def test_ids_out_of_range_are_refused_by_decode(bpes):
    bpe = bpes["bpe"]
    with pytest.raises(WavTokenizerError, match=r"ids must lie in \[0, 160\)"):
        bpe.decode([0, 160])
    with pytest.raises(WavTokenizerError, match=r"ids must lie in \[0, 160\)"):
        bpe.decode([-1])


def test_an_audio_bpe_trained_for_another_codebook_size_is_refused(tmp_path, bpes):
    bpe = bpes["bpe"]
    bpe.save(tmp_path)
    with pytest.raises(WavTokenizerError, match="64-entry codebook but the codec has 128 codes"):
        load_audio_bpe(tmp_path, codebook_size=128)
    with pytest.raises(WavTokenizerError, match="64-entry codebook but the tokenizer has 128"):
        add_audio_bpe_tokens(build_joint_tokenizer(128, durations=False), bpe)
    with pytest.raises(WavTokenizerError, match="64-entry codebook but the tokenizer has 128"):
        AudioBPELayout.from_tokenizer(build_joint_tokenizer(128, durations=False), bpe)
    with pytest.raises(WavTokenizerError, match="another codebook size"):
        AudioBPE(bpe.backend, 32, "bpe")  # its pieces use codes up to 63


def test_an_lm_vocabulary_that_does_not_match_the_audio_bpe_is_refused(bpes):
    bpe = bpes["bpe"]
    with pytest.raises(WavTokenizerError, match="does not match the audio BPE.*plain codes"):
        AudioBPELayout.from_tokenizer(build_joint_tokenizer(K, durations=False), bpe)
    other = train_audio_bpe(corpus(99, 200), K, 160)  # same size, other data: other pieces
    assert other.pieces != bpe.pieces
    with pytest.raises(WavTokenizerError, match="does not match the audio BPE: id .* another audio BPE"):
        AudioBPELayout.from_tokenizer(joint_tokenizer(other), bpe)
    with pytest.raises(WavTokenizerError, match="does not match the audio BPE: it has .* another audio BPE"):
        AudioBPELayout.from_tokenizer(joint_tokenizer(train_audio_bpe(corpus(0, 200), K, 120)), bpe)
    layout = AudioBPELayout.from_tokenizer(joint_tokenizer(bpe), bpe)
    layout.check_model(layout.vocab_size)
    with pytest.raises(WavTokenizerError, match="embeddings"):
        layout.check_model(layout.vocab_size - 1)
    with pytest.raises(WavTokenizerError, match="already has audio-BPE tokens"):
        add_audio_bpe_tokens(joint_tokenizer(bpe), bpe)


def test_bad_training_settings_are_refused():
    streams = corpus(0, 5)
    cases = [(dict(vocab_size=K - 1), "at least the codebook size"), (dict(model_type="wordpiece"), "model type"),
             (dict(codebook_size=0), "codebook_size"), (dict(codebook_size=70_000), "codebook_size"),
             (dict(max_piece_frames=1), "max_piece_frames"), (dict(streams=[]), "no codes"),
             (dict(streams=[np.zeros(0, dtype=np.int64)]), "no codes"), (dict(chunk_frames=1), "chunk_frames")]
    for overrides, message in cases:
        arguments = {**dict(streams=streams, codebook_size=K, vocab_size=100), **overrides}
        with pytest.raises(WavTokenizerError, match=message):
            train_audio_bpe(**arguments)
    with pytest.raises(WavTokenizerError, match="unknown text model"):
        joint_tokenizer(K, TEXTS, text_model="wordpiece")


def test_a_directory_that_is_not_an_audio_bpe_is_refused(tmp_path, bpes):
    with pytest.raises(WavTokenizerError, match="not an audio BPE directory"):
        AudioBPE.load(tmp_path)
    bpes["bpe"].save(tmp_path)
    config = json.loads((tmp_path / "audio_bpe.json").read_text())
    (tmp_path / "audio_bpe.json").write_text(json.dumps({**config, "vocab_size": 10}))
    with pytest.raises(WavTokenizerError, match="160 tokens but audio_bpe.json says 10"):
        AudioBPE.load(tmp_path)
    (tmp_path / "audio_bpe.json").write_text(json.dumps({**config, "version": 99}))
    with pytest.raises(WavTokenizerError, match="version-1"):
        AudioBPE.load(tmp_path)


# --- training internals and measurement -------------------------------------------------------------------------

def test_the_training_sample_is_bounded_and_counts_every_code():
    streams = (np.full(100, i % K) for i in range(1000))  # a generator: seen once
    sample = sample_chunks(streams, K, chunk_frames=50, max_codes=1000)
    assert (sample.streams, sample.codes) == (1000, 100_000)
    assert len(sample.chunks) == 20 and sample.sampled_codes == 1000
    again = sample_chunks((np.full(100, i % K) for i in range(1000)), K, chunk_frames=50, max_codes=1000)
    assert again.chunks == sample.chunks  # seeded
    short = sample_chunks((np.full(30, i % K) for i in range(1000)), K, chunk_frames=50, max_codes=1000)
    assert len(short.chunks) == 33 and short.sampled_codes == 990  # the budget is in codes, not chunks
    assert len({chunk[0] for chunk in short.chunks}) > 20  # drawn from all over the stream, not just its start
    everything = sample_chunks(corpus(0, 5), K, chunk_frames=50, max_codes=10**6)
    assert "".join(everything.chunks) == "".join(codes_to_text(s, K) for s in corpus(0, 5))


def test_frequent_ngrams_count_repeats_inside_chunks_only():
    chunks = [np.array([1, 2, 3, 1, 2]), np.array([3, 1, 2, 9])]
    found = {tuple(codes.tolist()): count for codes, count in frequent_ngrams(chunks, 4, 100)}
    assert found == {(1, 2): 3, (3, 1): 2, (3, 1, 2): 2}  # (2, 3) is across the chunk edge once and inside once


def test_bits_per_second_compares_lms_on_the_same_audio_only():
    raw = {"nats": 1000 * math.log(2), "seconds": 10.0, "tokens": 750}
    bpe = {"nats": 900 * math.log(2), "seconds": 10.0, "tokens": 300}
    out = compare_bits_per_second(raw, bpe)
    assert out["raw"]["bits_per_second"] == pytest.approx(100) and out["bpe"]["bits_per_second"] == pytest.approx(90)
    assert out["bpe_over_raw"] == pytest.approx(0.9) and out["bpe"]["tokens_per_second"] == 30
    with pytest.raises(WavTokenizerError, match="different audio"):
        compare_bits_per_second(raw, {**bpe, "seconds": 12.0})


def test_the_benchmark_reports_compression_and_frequent_pieces(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    streams = corpus(0, 60)
    table = pa.table({"id": [f"u{i}" for i in range(len(streams))], "audio_codes": [s.tolist() for s in streams],
                      "num_frames": [len(s) for s in streams], "frame_rate": [75.0] * len(streams)})
    (tmp_path / "data").mkdir()
    pq.write_table(table, tmp_path / "data" / "part-00000.parquet")
    spec = importlib.util.spec_from_file_location("bench_audio_bpe", ROOT / "benchmarks" / "bench_audio_bpe.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--data", str(tmp_path / "data"), "--codebook-size", str(K), "--vocab-sizes", "64", "128",
                         "--top", "3", "--out", str(tmp_path / "report.json"), "--save-dir", str(tmp_path / "bpes")])
    assert json.loads((tmp_path / "report.json").read_text())["results"] == report["results"]
    assert report["held_out_utterances"] + report["train_utterances"] == 60 and report["held_out_utterances"] > 0
    by_name = {(r["model_type"], r["requested_vocab_size"]): r for r in report["results"]}
    assert set(by_name) == {("bpe", 64), ("bpe", 128), ("unigram", 64), ("unigram", 128)}
    assert by_name[("bpe", 64)]["held_out_tokens_per_second"] == pytest.approx(75.0)
    assert by_name[("bpe", 128)]["held_out_tokens_per_second"] < 60 and len(by_name[("bpe", 128)]["top_pieces"]) == 3
    assert load_audio_bpe(tmp_path / "bpes" / "unigram-128", K).vocab_size == by_name[("unigram", 128)]["vocab_size"]
