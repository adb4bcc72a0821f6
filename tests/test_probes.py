"""lm.probes: frame labels, clustering metrics against hand-computed values, baselines, and
scripts/probe_alignment.py end to end on a micro corpus (its HTML report and JSON)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from lm.probes.baselines import log_mel_frames
from lm.probes.codes import CodedSet
from lm.probes.data import ProbeUtterance
from lm.probes.embeddings import linear_cka
from lm.probes.labels import SILENCE, Interval, forced_alignment, labels_at_centres, phone_intervals, phone_label
from lm.probes.metrics import FrameTable, bootstrap, codebook_metrics, contingency_metrics, mapping_accuracy
from lm.probes.runner import frame_labels, frame_table
from wavtokenizer_hf.errors import WavTokenizerError

ROOT = Path(__file__).resolve().parents[1]


def table_of(labels, codes, utterances, k):
    names = sorted(set(labels))
    return FrameTable(np.array([names.index(l) for l in labels]), np.array(codes), np.array(utterances), names, k,
                      [f"u{i}" for i in range(max(utterances) + 1)])


def test_labels_at_frame_centres_and_boundaries():
    intervals = [Interval("a", 0.0, 0.25), Interval("b", 0.25, 0.5)]
    # frame rate 10: centres 0.05 ... 0.55; a centre exactly on 0.25 belongs to the interval starting there
    assert labels_at_centres(intervals, 6, 10.0) == ["a", "a", "b", "b", "b", SILENCE]
    assert labels_at_centres([Interval("x", 0.1, 0.2)], 3, 10.0) == [SILENCE, "x", SILENCE]
    assert labels_at_centres([Interval("late", 0.3, 0.4), Interval("early", 0.0, 0.1)], 4, 10.0) == \
        ["early", SILENCE, SILENCE, "late"]


def test_every_pause_is_the_one_silence_label_and_drop_silence_drops_all_of_it():
    # corpus pauses ("sil", Flite's "pau"), an aligner's "<sil>"/"SIL", and a gap no phone covers (0.6-0.8 s)
    phones = phone_intervals([{"phone": "sil", "start": 0.0, "end": 0.2}, {"phone": "ah", "start": 0.2, "end": 0.4},
                              {"phone": "pau", "start": 0.4, "end": 0.5}, {"phone": "t", "start": 0.5, "end": 0.6},
                              {"phone": "<sil>", "start": 0.8, "end": 0.9}, {"phone": "SIL", "start": 0.9, "end": 1.0}])
    assert [p.label for p in phones] == [SILENCE, "ah", SILENCE, "t", SILENCE, SILENCE]
    assert {phone_label(name) for name in ("sil", "<sil>", "SIL", "sp", "pau", "_")} == {SILENCE}
    words = [Interval("a", 0.2, 0.4), Interval("t", 0.5, 0.6)]
    utterance = ProbeUtterance("u", torch.zeros(24000), 24000, "a t", words, phones)
    coded = CodedSet("c", [np.arange(10)], 10.0, 16, sampling_rate=24000)
    labels, _ = frame_labels([utterance], coded)
    assert labels[0] == [SILENCE, SILENCE, "ah", "ah", SILENCE, "t", SILENCE, SILENCE, SILENCE, SILENCE]
    kept = frame_table([utterance], coded, labels, drop_silence=True)
    assert kept.label_names == ["ah", "t"] and kept.codes.tolist() == [2, 3, 5]
    assert len(frame_table([utterance], coded, labels, drop_silence=False).codes) == 10


def test_perfect_clustering_scores_one():
    labels = ["a", "b", "c"] * 20
    codes = [5, 7, 9] * 20
    table = table_of(labels, codes, [i % 4 for i in range(60)], 16)
    metrics = contingency_metrics(table.counts())
    for name in ("phone_purity", "code_purity", "pnmi", "completeness", "v_measure"):
        assert metrics[name] == pytest.approx(1.0)
    assert mapping_accuracy(table) == pytest.approx(1.0)


def test_independent_codes_score_zero_information():
    counts = np.outer([10, 30], [5, 5, 10])  # p(y, z) = p(y) p(z)
    metrics = contingency_metrics(counts.astype(float))
    assert metrics["pnmi"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["completeness"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["phone_purity"] == pytest.approx(30 / 40)  # every code predicts the majority label


def test_hand_computed_example_and_sklearn_homogeneity():
    counts = np.array([[2.0, 0.0], [1.0, 1.0]])  # rows: labels, columns: codes
    p = counts / 4
    h_y = -(0.5 * math.log(0.5) * 2)
    h_y_given_z = -(p[0, 0] * math.log(2 / 3) + p[1, 0] * math.log(1 / 3) + p[1, 1] * math.log(1.0))
    metrics = contingency_metrics(counts)
    assert metrics["pnmi"] == pytest.approx(1 - h_y_given_z / h_y)
    assert metrics["phone_purity"] == pytest.approx(3 / 4)
    assert metrics["code_purity"] == pytest.approx(3 / 4)
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels, codes = rng.integers(0, 6, 500), rng.integers(0, 9, 500)
    codes[:250] = labels[:250]  # partly informative
    table = np.zeros((6, 9))
    np.add.at(table, (labels, codes), 1)
    h, c, v = sklearn.homogeneity_completeness_v_measure(labels, codes)
    got = contingency_metrics(table)
    assert (got["pnmi"], got["completeness"], got["v_measure"]) == pytest.approx((h, c, v))


def test_mapping_accuracy_is_held_out():
    # each code is seen once with a random label: purity is 1 but a held-out mapping cannot do better than chance
    rng = np.random.default_rng(0)
    n = 400
    labels = [str(x) for x in rng.integers(0, 4, n)]
    table = table_of(labels, list(range(n)), list(range(n)), n)
    assert contingency_metrics(table.counts())["phone_purity"] == 1.0
    assert mapping_accuracy(table) < 0.4


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_data():
    rng = np.random.default_rng(1)
    def noisy(n_utt):
        labels = rng.integers(0, 5, n_utt * 50)
        codes = np.where(rng.random(labels.size) < 0.6, labels, rng.integers(0, 5, labels.size))
        return FrameTable(labels, codes, np.repeat(np.arange(n_utt), 50), list("abcde"), 5,
                          [str(i) for i in range(n_utt)])
    small, large = bootstrap(noisy(10), rounds=100)["pnmi"], bootstrap(noisy(100), rounds=100)["pnmi"]
    for interval in (small, large):
        assert interval["low"] <= interval["value"] <= interval["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]


def test_codebook_metrics():
    values = codebook_metrics(np.array([0, 1, 2, 3] * 5), 8)
    assert values["codebook_used"] == 0.5
    assert values["code_entropy_bits"] == pytest.approx(2.0)
    assert values["code_perplexity"] == pytest.approx(4.0)


def test_linear_cka():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8))
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, x @ rotation * 3.0) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(500, 8))) < 0.1


def test_log_mel_frames_have_one_row_per_code_frame():
    frames = log_mel_frames(torch.randn(24000), 24000, 320, 75)
    assert frames.shape == (75, 80) and torch.isfinite(frames).all()


def test_forced_alignment_of_a_real_recording():
    pytest.importorskip("pocketsphinx")
    from wavtokenizer_hf.audio_io import read_audio

    wave, rate = read_audio(ROOT / "assets" / "audio" / "arctic_a0007.wav")
    text = "And you always want to see it in the superlative degree."
    words, phones = forced_alignment(wave[0], rate, text)
    assert [w.label for w in words] == text.lower().rstrip(".").split()
    seconds = wave.shape[-1] / rate
    assert all(0 <= w.start < w.end <= seconds + 0.01 for w in words)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(words, words[1:]))
    assert words[0].start <= phones[0].start and phones[-1].end <= words[-1].end + 1e-9
    with pytest.raises(WavTokenizerError, match="dictionary"):
        forced_alignment(wave[0], rate, "and you qzxqzx")


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def timed_english(corpus, split: str) -> int:
    from wavtokenizer_hf.saved_dataset import load_split

    return sum(1 for r in load_split(corpus, split) if r["kind"] == "speech" and r["phones"] and r["language"] == "en")


@pytest.fixture(scope="module")
def report(small_corpus, tmp_path_factory):
    """scripts/probe_alignment.py end to end: a split with word and phone times probed (the test split, unless its
    speakers' backends report no times, as Piper's test voice on a machine without system voices), the k-means
    fitted on the training split."""
    split = "test" if timed_english(small_corpus, "test") >= 2 else "validation"
    out = tmp_path_factory.mktemp("report") / "report.html"
    command = [sys.executable, str(ROOT / "scripts" / "probe_alignment.py"), "--data", str(small_corpus),
               "--split", split, "--codec", f"shipped={ROOT / 'wavtokenizer_hf' / 'default_codec'}", "--out", str(out),
               "--limit", "4", "--rounds", "5", "--null-draws", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "report:" in done.stdout and "intervals" in done.stdout
    return out, json.loads(out.with_suffix(".json").read_text()), min(4, timed_english(small_corpus, split))


def test_the_script_reports_chance_adjusted_metrics_and_paired_differences_for_every_row(report):
    _, summary, expected_utterances = report
    assert summary["utterances"] == expected_utterances >= 2 and summary["reference"] == "shipped"
    assert "'train'" in summary["baseline_fit"] and "bootstrap" in summary["intervals"]
    for row in summary["rows"]:
        for name in ("pnmi_adjusted", "pnmi_null", "mapping_accuracy_adjusted", "majority_accuracy"):
            assert math.isfinite(row["metrics"][name]["value"]), (row["name"], name)
        assert set(row["difference_to_reference"]) >= {"pnmi_adjusted", "mapping_accuracy_adjusted"}
    reference = summary["rows"][0]
    assert reference["difference_to_reference"]["pnmi_adjusted"]["value"] == 0.0
    assert "stratified by utterance" in reference["word_association"]["test"]


def test_report_has_table_images_and_players(report):
    path, summary, _ = report
    parser = _Elements()
    parser.feed(path.read_text())
    tags = parser.found
    assert any(tag == "table" and attrs.get("id") == "metrics" for tag, attrs in tags)
    images = [a["src"] for t, a in tags if t == "img"]
    players = [a["src"] for t, a in tags if t == "audio"]
    assert len(images) >= 3 and all(src.startswith("data:image/png;base64,") for src in images)
    assert len(players) >= 2 and all(src.startswith("data:audio/wav;base64,") for src in players)
    assert not any(t == "script" or (t == "link" and "http" in a.get("href", "")) for t, a in tags)  # offline
    names = [row["name"] for row in summary["rows"]]
    assert names[0] == "shipped" and any("log-mel" in n for n in names) and any("shuffled" in n for n in names)
    assert any(tag == "table" and attrs.get("id") == "differences" for tag, attrs in tags)
    assert any(tag == "p" and attrs.get("id") == "intervals" for tag, attrs in tags)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium on this machine")
def test_report_renders_in_headless_chromium(report, tmp_path):
    path, _, _ = report
    # a copy with a probe script: after load it writes how many images decoded and players hold audio
    probe = ("<script>window.addEventListener('load', () => setTimeout(() => {"
             "const imgs = [...document.images].filter(i => i.naturalWidth > 0).length;"
             "const players = [...document.querySelectorAll('audio')].filter(a => a.readyState >= 1).length;"
             "const rows = document.querySelectorAll('#metrics tr').length;"
             "document.body.insertAdjacentHTML('beforeend', `<pre id=probe>${imgs} ${players} ${rows}</pre>`);"
             "}, 500));</script>")
    page = tmp_path / "page.html"
    page.write_text(path.read_text().replace("</body>", probe + "</body>"))
    result = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                             "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="probe">(\d+) (\d+) (\d+)</pre>', result.stdout)
    assert match, result.stderr[-2000:]
    images, players, rows = map(int, match.groups())
    assert images >= 3 and players >= 2 and rows >= 4
