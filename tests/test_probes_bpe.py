"""lm.probes.bpe and `probe_alignment.py --audio-bpe`: audio-BPE tokens as frame labels, scored like codes, and the
table of the most frequent multi-code tokens in the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from lm.audio_bpe import train_audio_bpe
from lm.probes.bpe import apply_bpe, frame_tokens, frequent_tokens, occurrence_alignment, token_starts
from lm.probes.codes import CodedSet
from lm.probes.data import ProbeUtterance
from lm.probes.labels import Interval
from lm.probes.metrics import INTERVALS, paired_bootstrap
from lm.probes.report import write_report
from lm.probes.result import ProbeResult
from lm.probes.runner import bpe_token_sets, frame_labels, probe

ROOT = Path(__file__).resolve().parents[1]
K, RATE = 32, 75.0
PHONES = ["aa", "b", "k", "s", "iy", "m"]


def synthetic(count: int, seed: int = 0) -> tuple[list[ProbeUtterance], CodedSet]:
    """Utterances of random phones (3-9 frames each, 75 frames/s) whose codes repeat a motif of their phone, with
    10% random codes: the phones recur, so the BPE finds merges inside them."""
    rng = np.random.default_rng(seed)
    motifs = {p: np.random.default_rng(100 + i).integers(0, K, 3) for i, p in enumerate(PHONES)}
    utterances, streams = [], []
    for u in range(count):
        phones, codes, start = [], [], 0
        for p in rng.choice(PHONES, int(rng.integers(6, 14))):
            n = int(rng.integers(3, 10))
            phones.append(Interval(str(p), start / RATE, (start + n) / RATE))
            codes.append(np.resize(motifs[str(p)], n))
            start += n
        stream = np.concatenate(codes)
        noise = rng.random(stream.size) < 0.1
        stream[noise] = rng.integers(0, K, int(noise.sum()))
        words = [Interval(f"w{i % 5}", interval.start, interval.end) for i, interval in enumerate(phones)]
        utterances.append(ProbeUtterance(f"u{u}", torch.zeros(start * 320), 24000, f"sentence {u}", words, phones))
        streams.append(stream.astype(np.int64))
    return utterances, CodedSet("codec", streams, RATE, K, sampling_rate=24000)


@pytest.fixture(scope="module")
def data():
    utterances, coded = synthetic(40)
    return utterances, coded, train_audio_bpe(coded.codes, K, K + 24)


def test_frame_labels_from_bpe_tokens_cover_every_frame_exactly_once_and_keep_the_token_boundaries(data):
    utterances, coded, bpe = data
    phones, _ = frame_labels(utterances, coded)
    tokens, vocabulary = apply_bpe(coded, bpe, Path("bpe"), phones, "tokens")
    assert (bpe.lengths > 1).any() and vocabulary.multi_code_frames > 0  # the BPE merges
    for codes, per_frame in zip(coded.codes, tokens.codes):
        ids = bpe.encode(codes)
        assert len(per_frame) == len(codes)
        coverage = np.zeros(len(codes), dtype=np.int64)
        for token, start in zip(ids, token_starts(ids, bpe.lengths)):
            span = slice(start, start + bpe.lengths[token])
            coverage[span] += 1
            assert (per_frame[span] == token).all()  # the token's frames carry its id...
            assert np.array_equal(codes[span], bpe.pieces[token])  # ...and are the codes it encodes
        assert (coverage == 1).all()  # every frame in exactly one token
    assert np.array_equal(frame_tokens(np.array([2, K, 1]), np.array([1, 1, 1] + [1] * (K - 3) + [3])),
                          [2, K, K, K, 1])


def test_a_bpe_whose_tokens_are_the_single_codes_scores_the_same_pnmi_as_the_codes(data):
    utterances, coded, merging = data
    singles = train_audio_bpe(coded.codes, K, K)
    assert singles.vocab_size == K
    sets, _ = bpe_token_sets(utterances, coded, {Path("singles"): singles, Path("merging"): merging}, ["codec"])
    tables = [probe(utterances, c, drop_silence=False)[1] for c in (coded, *sets)]
    metrics, _ = paired_bootstrap(tables, rounds=10, null_draws=2)
    for name in ("pnmi", "pnmi_null", "pnmi_adjusted", "mapping_accuracy"):
        assert metrics[1][name]["value"] == pytest.approx(metrics[0][name]["value"], abs=1e-12), name
    assert metrics[2]["pnmi"]["value"] != pytest.approx(metrics[0]["pnmi"]["value"])  # merges change the labels


def test_the_top_token_table_gives_durations_of_frames_over_75_times_1000_ms(data):
    utterances, coded, bpe = data
    phones, _ = frame_labels(utterances, coded)
    table = frequent_tokens(bpe, bpe.encode_batch(coded.codes), phones, 75.0, count=10)
    assert table and all(len(t["codes"]) == t["frames"] > 1 for t in table)
    for t in table:
        assert t["milliseconds"] == pytest.approx(t["frames"] / 75 * 1000)
        assert list(bpe.pieces[t["id"]]) == t["codes"]
        assert 0 < t["majority_share"] <= 1 and t["majority_phone"] in PHONES + ["sil"]
    counts = [t["count"] for t in table]
    assert counts == sorted(counts, reverse=True)
    total = sum(len(c) for c in coded.codes)
    assert table[0]["share_of_frames"] == pytest.approx(table[0]["count"] * table[0]["frames"] / total)


def test_within_one_phone_and_its_chance_on_a_hand_made_utterance():
    lengths = np.array([1, 1, 2, 3])  # ids 0, 1: single codes; 2: two frames; 3: three frames
    labels = [["a", "a", "b", "b", "b", "c"]]
    tokens, within, chance = occurrence_alignment([np.array([3, 2, 0])], lengths, labels)  # a a b | b b | c
    assert tokens.tolist() == [3, 2, 0] and within.tolist() == [False, True, True]
    # three-frame windows with one label: b-b-b of 4; two-frame: a-a, b-b, b-b of 5; one frame: always
    assert chance.tolist() == pytest.approx([1 / 4, 3 / 5, 1.0])


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self.cells: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"class": dict(attrs).get("class"), "id": dict(attrs).get("id"), "rows": []})
        elif tag == "tr":
            self.cells = []

    def handle_endtag(self, tag):
        if tag == "tr" and self.cells is not None:
            self.tables[-1]["rows"].append(self.cells)
            self.cells = None

    def handle_data(self, text):
        if self.cells is not None and text.strip():
            self.cells.append(text.strip())


def test_the_report_holds_the_bpe_row_and_its_top_token_table(data, tmp_path):
    utterances, coded, bpe = data
    sets, vocabularies = bpe_token_sets(utterances, coded, {Path("runs/bpe_56"): bpe}, ["codec"])
    probed = [probe(utterances, c, drop_silence=False) for c in (coded, *sets)]
    metrics, differences = paired_bootstrap([t for _, t in probed], rounds=5, null_draws=1)
    rows = [row for row, _ in probed]
    for row, values, difference in zip(rows, metrics, differences):
        row.metrics, row.difference = values, difference
    result = ProbeResult("synthetic", "test", 10.0, False, 5, 1, rows, INTERVALS.format(level=0.95, rounds=5), "none",
                         audio_bpe=vocabularies)
    parser = _Tables()
    parser.feed(write_report(result, tmp_path / "report.html", examples=0).read_text())
    main = next(t for t in parser.tables if t["id"] == "metrics")
    assert [r[0] for r in main["rows"][1:]] == ["codec", f"BPE-{bpe.vocab_size} tokens (frame-level)"]
    top = [t for t in parser.tables if t["class"] == "bpe-tokens"]
    assert len(top) == 1 and top[0]["rows"][0][:4] == ["codes", "frames", "ms", "count"]
    first = vocabularies[0].top_tokens[0]
    assert top[0]["rows"][1][:4] == [" ".join(map(str, first["codes"])), str(first["frames"]),
                                     f"{first['milliseconds']:.0f}", str(first["count"])]
    assert len(top[0]["rows"]) == 1 + len(vocabularies[0].top_tokens)
    summary = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert summary["audio_bpe"][0]["top_tokens"][0]["codes"] == first["codes"]


@pytest.fixture(scope="module")
def bpe_report(small_corpus, tmp_path_factory):
    """The script with --audio-bpe: a BPE with merges trained on the probed utterances' codes, and one of K tokens
    (no merges)."""
    from lm.probes.codes import encode_with
    from lm.probes.data import load_probe_set

    codec = ROOT / "wavtokenizer_hf" / "default_codec"
    utterances = load_probe_set(small_corpus, "test", 4)
    coded = encode_with("shipped", codec, utterances)
    out = tmp_path_factory.mktemp("bpe_report")
    train_audio_bpe(coded.codes, coded.codebook_size, coded.codebook_size + 40).save(out / "merging")
    train_audio_bpe(coded.codes, coded.codebook_size, coded.codebook_size).save(out / "singles")
    command = [sys.executable, str(ROOT / "scripts" / "probe_alignment.py"), "--data", str(small_corpus),
               "--split", "test", "--codec", f"shipped={codec}", "--out", str(out / "report.html"), "--limit", "4",
               "--rounds", "5", "--null-draws", "2", "--examples", "0", "--audio-bpe", str(out / "merging"),
               "--audio-bpe", str(out / "singles")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, out / "report.html", json.loads((out / "report.json").read_text())


def test_the_script_probes_audio_bpe_tokens_beside_the_codes(bpe_report):
    stdout, path, summary = bpe_report
    rows = {row["name"]: row for row in summary["rows"]}
    merging, singles = summary["audio_bpe"]
    shipped = json.loads((ROOT / "wavtokenizer_hf" / "default_codec" / "config.json").read_text())["codebook_size"]
    assert merging["vocab_size"] > shipped and singles["vocab_size"] == shipped
    assert merging["name"] == f"BPE-{merging['vocab_size']} tokens (frame-level)"
    assert singles["name"] == f"BPE-{shipped} tokens (frame-level)"
    for vocabulary in (merging, singles):
        row = rows[vocabulary["name"]]
        assert row["kind"] == "bpe" and row["frames"] == rows["shipped"]["frames"] == vocabulary["frames"]
        assert "pnmi_adjusted" in row["metrics"] and "pnmi_adjusted" in row["difference_to_reference"]
        assert f"{vocabulary['name']}: " in stdout
    for name in ("pnmi", "pnmi_adjusted"):  # no merges: the codes' values exactly
        codes, tokens = rows["shipped"]["metrics"][name], rows[singles["name"]]["metrics"][name]
        assert tokens["value"] == pytest.approx(codes["value"])
    assert merging["multi_code_frames"] > 0 and merging["top_tokens"] and not singles["top_tokens"]
    assert all(t["milliseconds"] == pytest.approx(t["frames"] / 75 * 1000) for t in merging["top_tokens"])
    parser = _Tables()
    parser.feed(path.read_text())
    assert [len(t["rows"]) for t in parser.tables if t["class"] == "bpe-tokens"] == \
        [1 + len(merging["top_tokens"]), 1]
