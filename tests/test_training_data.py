"""Which corpus rows training reads (speakers, hours, kinds) and the pitch and speed perturbation of its crops."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.training.data import ClipSource, RandomCrops, RowSelection

RATE = 24000


def flac(wave: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format="FLAC")
    return buffer.getvalue()


def tone(freq: float, seconds: float, rate: int = RATE) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


@pytest.fixture(scope="module")
def speakers_corpus(tmp_path_factory) -> Path:
    """Six speakers with three 60 s rows each (their tone names them), and two music rows without a speaker."""
    from datasets import Dataset, DatasetDict

    rows = {"id": [], "kind": [], "speaker": [], "duration": [], "source": [], "audio": []}
    for number in range(6):
        for _ in range(3):
            rows["id"].append(f"s{number}-{len(rows['id'])}")
            rows["kind"].append("speech")
            rows["speaker"].append(f"speaker{number}")
            rows["duration"].append(60.0)
            rows["source"].append("synth")
            rows["audio"].append({"bytes": flac(tone(100 + 10 * number, 0.2)), "path": None})
    for number in range(2):
        rows["id"].append(f"m{number}")
        rows["kind"].append("music")
        rows["speaker"].append("")
        rows["duration"].append(60.0)
        rows["source"].append("midi")
        rows["audio"].append({"bytes": flac(tone(440, 0.2)), "path": None})
    out = tmp_path_factory.mktemp("speakers") / "corpus"
    DatasetDict({"train": Dataset.from_dict(rows)}).save_to_disk(str(out))
    return out


def speakers_of(source: ClipSource) -> set[int]:
    """The speakers of a source's rows, read back from their tones (100 + 10 x number Hz; music is 440 Hz)."""
    found = set()
    for index in range(len(source)):
        wave, rate = source.read(index)
        freq = np.argmax(np.abs(np.fft.rfft(wave))) * rate / len(wave)
        found.add(round((freq - 100) / 10) if freq < 300 else -1)
    return found


def test_a_speaker_count_keeps_every_row_of_that_many_speakers_drawn_with_the_seed(speakers_corpus):
    source = ClipSource(speakers_corpus, "train", RowSelection(kinds=("speech",), speakers=2, seed=1))
    drawn = speakers_of(source)
    assert len(drawn) == 2 and -1 not in drawn
    assert len(source) == 6  # all three rows of each drawn speaker
    assert "6 rows, 0.10 h, 2 speakers" in source.summary
    other_seeds = {frozenset(speakers_of(ClipSource(speakers_corpus, "train",
                                                    RowSelection(kinds=("speech",), speakers=2, seed=s))))
                   for s in range(2, 8)}
    assert len(other_seeds | {frozenset(drawn)}) > 1


def test_rows_without_a_speaker_stay_when_speakers_are_drawn(speakers_corpus):
    source = ClipSource(speakers_corpus, "train", RowSelection(speakers=1))
    assert len(source) == 3 + 2 and -1 in speakers_of(source)


def test_kinds_keep_only_rows_of_those_kinds(speakers_corpus):
    assert speakers_of(ClipSource(speakers_corpus, "train", RowSelection(kinds=("music",)))) == {-1}
    assert len(ClipSource(speakers_corpus, "train", RowSelection(kinds=("speech",)))) == 18


def test_hours_keep_a_seeded_subset_of_that_many_hours_and_more_than_the_corpus_holds_is_refused(speakers_corpus):
    source = ClipSource(speakers_corpus, "train", RowSelection(kinds=("speech",), hours=0.1))
    assert len(source) == 6  # 6 rows of 60 s
    assert "0.10 h" in source.summary
    subsets = {tuple(source.dataset.select_columns(["audio"]).to_pandas()["audio"].map(lambda a: a["bytes"]))
               for source in (ClipSource(speakers_corpus, "train", RowSelection(hours=0.1, seed=s)) for s in range(4))}
    assert len(subsets) > 1  # the seed draws the rows
    with pytest.raises(WavTokenizerError, match=r"data.hours=0.31, but .* hold 0.30 h"):
        ClipSource(speakers_corpus, "train", RowSelection(kinds=("speech",), hours=0.31))


def test_more_speakers_than_the_corpus_holds_are_refused(speakers_corpus):
    assert len(ClipSource(speakers_corpus, "train", RowSelection(speakers=6))) == 20
    with pytest.raises(WavTokenizerError, match="data.speakers=7, but .* hold 6 speakers"):
        ClipSource(speakers_corpus, "train", RowSelection(speakers=7))


def test_a_row_selection_on_an_audio_folder_is_refused(tmp_path):
    sf.write(tmp_path / "a.wav", tone(200, 0.5).astype(np.float32), RATE)
    with pytest.raises(WavTokenizerError, match="select rows of a saved corpus"):
        ClipSource(tmp_path, "train", RowSelection(speakers=1))


@pytest.fixture
def pitched_corpus(speakers_corpus, tmp_path) -> Path:
    """The six-speaker corpus with a corpus_summary.json: speaker0 at 90 Hz, speaker1 at 120 Hz, the rest at 200 Hz."""
    import shutil

    out = tmp_path / "pitched"
    shutil.copytree(speakers_corpus, out)
    f0 = {f"speaker{number}": 90.0 if number == 0 else 120.0 if number == 1 else 200.0 for number in range(6)}
    speakers = {name: {"median_f0_hz": value, "minutes": 3.0} for name, value in f0.items()}
    (out / "corpus_summary.json").write_text(json.dumps({"speakers": speakers}))
    return out


def rows_by_speaker(source: ClipSource) -> dict[int, int]:
    counts: dict[int, int] = {}
    for index in range(len(source)):
        wave, rate = source.read(index)
        freq = np.argmax(np.abs(np.fft.rfft(wave))) * rate / len(wave)
        speaker = round((freq - 100) / 10) if freq < 300 else -1
        counts[speaker] = counts.get(speaker, 0) + 1
    return counts


def test_f0_bands_repeat_each_bands_rows_until_the_bands_hold_about_equal_hours(pitched_corpus):
    # bands: under 100 Hz holds 3 rows (speaker0), 100-150 Hz 3 rows (speaker1), 150 Hz and up 12 rows (four speakers)
    source = ClipSource(pitched_corpus, "train", RowSelection(f0_bands=(100.0, 150.0)))
    assert rows_by_speaker(source) == {0: 12, 1: 12, 2: 3, 3: 3, 4: 3, 5: 3, -1: 2}  # music rows stay once
    assert "<100 Hz x4, 100-150 Hz x4, >=150 Hz x1" in source.summary
    one_edge = ClipSource(pitched_corpus, "train", RowSelection(kinds=("speech",), f0_bands=(150.0,)))
    assert rows_by_speaker(one_edge) == {0: 6, 1: 6, 2: 3, 3: 3, 4: 3, 5: 3}  # 6 rows below against 12: x2
    assert "<150 Hz x2, >=150 Hz x1" in one_edge.summary


def test_a_voice_on_a_band_edge_counts_in_the_band_above_it(pitched_corpus):
    source = ClipSource(pitched_corpus, "train", RowSelection(kinds=("speech",), f0_bands=(90.0,)))
    assert rows_by_speaker(source)[0] == 3  # 90 Hz is in [90, inf) with the other 15 rows, not alone below 90


def test_f0_bands_without_the_speakers_median_f0_are_refused(speakers_corpus, pitched_corpus):
    with pytest.raises(WavTokenizerError, match="corpus_summary.json, which does not exist"):
        ClipSource(speakers_corpus, "train", RowSelection(f0_bands=(100.0,)))
    summary = json.loads((pitched_corpus / "corpus_summary.json").read_text())
    del summary["speakers"]["speaker3"]
    (pitched_corpus / "corpus_summary.json").write_text(json.dumps(summary))
    with pytest.raises(WavTokenizerError, match="no median F0 for speaker3"):
        ClipSource(pitched_corpus, "train", RowSelection(f0_bands=(100.0,)))


@pytest.mark.parametrize("edges", [(150.0, 100.0), (100.0, 100.0), (0.0, 100.0)])
def test_f0_band_edges_that_do_not_increase_from_above_zero_are_refused(pitched_corpus, edges):
    with pytest.raises(WavTokenizerError, match="data.f0_bands must be increasing edges"):
        ClipSource(pitched_corpus, "train", RowSelection(f0_bands=edges))


class OneTone:
    """A clip source of one long tone."""

    def __init__(self, freq: float, seconds: float = 2.0):
        self.wave = tone(freq, seconds).astype(np.float32)

    def __len__(self) -> int:
        return 1

    def read(self, index: int) -> tuple[np.ndarray, int]:
        return self.wave, RATE


def peak_frequency(crop: torch.Tensor) -> float:
    spectrum = np.abs(np.fft.rfft(crop.numpy() * np.hanning(crop.numel())))
    return float(np.argmax(spectrum) * RATE / crop.numel())


def test_pitch_perturbation_moves_a_tone_by_the_drawn_factor_within_the_range(monkeypatch):
    crops = RandomCrops(OneTone(300.0), RATE, RATE, seed=0, pitch_semitones=4)
    seen = []
    for epoch in range(6):
        rng = np.random.default_rng([crops.seed, epoch, 0])
        played = crops.played_rate(rng)
        crop = crops[epoch][0]  # epoch x 1 clip + clip 0
        assert crop.numel() == RATE
        assert abs(peak_frequency(crop) - 300.0 * played / RATE) <= 1.5  # 1 Hz bins
        seen.append(played / RATE)
    assert all(2 ** (-4 / 12) - 0.005 <= f <= 2 ** (4 / 12) + 0.005 for f in seen)
    assert max(seen) > 1.03 and min(seen) < 0.97  # both ways


def test_without_pitch_perturbation_a_crop_keeps_its_pitch():
    crop = RandomCrops(OneTone(300.0), RATE, RATE, seed=0)[0][0]
    assert abs(peak_frequency(crop) - 300.0) <= 1.0


def test_a_negative_pitch_range_is_refused():
    with pytest.raises(WavTokenizerError, match="pitch_semitones must be >= 0"):
        RandomCrops(OneTone(300.0), RATE, RATE, pitch_semitones=-1)


def test_the_sampler_keys_carry_the_epoch_so_persistent_workers_crop_as_a_fresh_loader_would():
    from wavtokenizer_hf.training.data import make_loader, set_position

    class Tones(OneTone):
        def __len__(self) -> int:
            return 4

    source = Tones(300.0)
    loader = make_loader(source, 2400, RATE, batch_size=2, seed=0, num_workers=1)
    assert loader.persistent_workers
    epochs = []
    for epoch in range(2):
        set_position(loader, epoch, 0)
        epochs.append(torch.cat([audio for audio, *_ in loader]))
    assert not torch.equal(epochs[0], epochs[1])  # new crops each epoch, from the same live workers
    fresh = make_loader(source, 2400, RATE, batch_size=2, seed=0, num_workers=0)
    set_position(fresh, 1, 1)  # epoch 1, after its first batch
    torch.testing.assert_close(torch.cat([audio for audio, *_ in fresh]), epochs[1][2:])
