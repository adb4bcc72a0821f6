"""Run the alignment probes: label frames, encode with each codec, score codes and baselines on the same frames
and the same utterance resamples."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from lm.audio_bpe import AudioBPE, load_audio_bpe
from lm.vocabulary import token_text as _token_text
from wavtokenizer_hf.errors import WavTokenizerError

from .association import association, unit_occurrences
from .baselines import MelKMeans, log_mel_frames, shuffled, shuffled_per_utterance
from .bpe import apply_bpe, row_name
from .codes import CodedSet, codec_step, encode_with
from .data import ProbeUtterance, TrainingAudio, load_probe_set, load_training_audio
from .labels import SILENCE, labels_at_centres
from .metrics import HEADLINE, INTERVALS, FrameTable, codebook_metrics, paired_bootstrap
from .result import ProbeResult, ProbeRow, TokenVocabulary, json_summary

__all__ = ["CodedSet", "HEADLINE", "ProbeUtterance", "codec_step", "encode_with", "frame_labels", "frame_table",
           "json_summary", "load_probe_set", "mel_baseline", "probe", "run_probes", "token_text"]


def token_text(tokenizer, token_id: int) -> str:
    """Deprecated alias of `lm.vocabulary.token_text`."""
    return _token_text(tokenizer, token_id)


def frame_labels(utterances: list[ProbeUtterance], coded: CodedSet) -> tuple[list[list[str]], list[list[str]]]:
    phones, words = [], []
    for u, codes in zip(utterances, coded.codes):
        phones.append(labels_at_centres(u.phones, len(codes), coded.frame_rate))
        words.append(labels_at_centres(u.words, len(codes), coded.frame_rate))
    return phones, words


def frame_table(utterances: list[ProbeUtterance], coded: CodedSet, labels: list[list[str]],
                drop_silence: bool) -> FrameTable:
    """The frames of every utterance with their label and code; `drop_silence` leaves out every `SILENCE` frame."""
    names = sorted({label for per_utt in labels for label in per_utt if not (drop_silence and label == SILENCE)})
    index = {name: i for i, name in enumerate(names)}
    label_ids, codes, owner = [], [], []
    for u_index, (per_utt, c) in enumerate(zip(labels, coded.codes)):
        keep = [t for t, label in enumerate(per_utt) if not (drop_silence and label == SILENCE)]
        label_ids += [index[per_utt[t]] for t in keep]
        codes += [int(c[t]) for t in keep]
        owner += [u_index] * len(keep)
    return FrameTable(np.asarray(label_ids, dtype=np.int64), np.asarray(codes, dtype=np.int64),
                      np.asarray(owner, dtype=np.int64), names, coded.codebook_size, [u.id for u in utterances],
                      [u.sentence for u in utterances])


def _shuffle_labels(labels: list[list[str]], drop_silence: bool, seed: int = 1) -> list[list[str]]:
    """Labels shuffled across the frames of all utterances (only among the frames kept: silence stays in place when
    it is dropped)."""
    flat = np.asarray([p for per_utt in labels for p in per_utt], dtype=object)
    movable = np.flatnonzero(flat != SILENCE) if drop_silence else np.arange(len(flat))
    flat[movable] = shuffled(flat[movable], seed)
    return [list(part) for part in np.split(flat, np.cumsum([len(p) for p in labels])[:-1])]


def probe(utterances: list[ProbeUtterance], coded: CodedSet, drop_silence: bool, shuffle_labels: bool = False,
          tokenizer=None) -> tuple[ProbeRow, FrameTable]:
    """One set of codes' row (without the bootstrap metrics, which `run_probes` adds for all rows at once) and its
    frame table. With `shuffle_labels`, against phone labels shuffled across frames (the chance level)."""
    phones, _ = frame_labels(utterances, coded)
    if shuffle_labels:
        phones = _shuffle_labels(phones, drop_silence)
    table = frame_table(utterances, coded, phones, drop_silence)
    row = ProbeRow(coded.name + (" (shuffled labels)" if shuffle_labels else ""),
                   "baseline" if shuffle_labels else coded.kind, coded.step, coded.codebook_size, int(len(table.codes)),
                   len(utterances), codebook_metrics(np.concatenate(coded.codes), coded.codebook_size))
    if shuffle_labels:
        return row, table
    words = [o for u, c in zip(utterances, coded.codes)
             for o in unit_occurrences(u.words, c, coded.frame_rate, stratum=u.id)]
    row.word_association = association(words)
    if tokenizer is not None:
        def tokens(word: str) -> list[str]:
            return [_token_text(tokenizer, t) for t in tokenizer(" " + word, add_special_tokens=False).input_ids]

        row.token_association = association([o for u, c in zip(utterances, coded.codes)
                                             for o in unit_occurrences(u.words, c, coded.frame_rate, tokens,
                                                                       stratum=u.id)])
    row.heatmap_labels, row.heatmap_counts = table.label_names, table.counts().astype(np.int64)
    row.usage_counts = np.bincount(np.concatenate(coded.codes), minlength=coded.codebook_size)
    row.word_pairs = [(int(z), o.units[0]) for o in words for z in o.codes]
    return row, table


def _resampled(wave: torch.Tensor, rate: int, target: int) -> torch.Tensor:
    from wavtokenizer_hf.audio_io import resample

    return resample(wave[None], rate, target)[0] if rate != target else wave


def mel_baseline(utterances: list[ProbeUtterance], reference: CodedSet, training: list[TrainingAudio],
                 iterations: int = 20, seed: int = 0) -> CodedSet:
    """K-means on log-mel frames at the reference codec's frames and K, fitted on `training` audio only."""
    if reference.sampling_rate is None:
        raise WavTokenizerError(f"{reference.name}: the sampling rate of its codes is unknown (CodedSet.sampling_rate)")
    rate = reference.sampling_rate
    hop = int(round(rate / reference.frame_rate))
    fit = []
    for audio in training:
        wave = _resampled(audio.waveform, audio.rate, rate)
        if wave.numel() >= hop:
            fit.append(log_mel_frames(wave, rate, hop, wave.numel() // hop))
    model = MelKMeans.fit(fit, reference.codebook_size, iterations, seed)
    codes = [model.assign(log_mel_frames(_resampled(u.waveform, u.rate, rate), rate, hop, len(c)))
             for u, c in zip(utterances, reference.codes)]
    return CodedSet(f"k-means on log-mel (K={reference.codebook_size})", codes, reference.frame_rate,
                    reference.codebook_size, kind="baseline", sampling_rate=rate)


def _training_audio(source: Path, split: str, utterances: list[ProbeUtterance], fit_source: str | Path | None,
                    fit_split: str, fit_limit: int | None, seed: int) -> tuple[list[TrainingAudio] | None, str]:
    """The audio the k-means baseline is fitted on (None when there is none), and a sentence saying what it is."""
    from wavtokenizer_hf.corpus.builder import is_saved_dataset

    fit_from = Path(fit_source) if fit_source is not None else (source if is_saved_dataset(source) else None)
    if fit_from is None:
        return None, ("k-means baseline left out: the probed folder has no training split; pass training audio "
                      "(fit_source / --fit-data)")
    if fit_from.resolve() == source.resolve() and (fit_split == split or not is_saved_dataset(source)):
        raise WavTokenizerError(f"the k-means baseline must be fitted on other audio than the probed split "
                                f"({source}, split {split!r}); choose another fit split or fit data")
    limit = fit_limit if fit_limit is not None else len(utterances)
    training = load_training_audio(fit_from, fit_split, limit, seed)
    shared = {a.id for a in training} & {u.id for u in utterances}
    if shared:
        raise WavTokenizerError(f"the k-means baseline's training audio includes probed utterances "
                                f"({', '.join(sorted(shared)[:3])}...)")
    where = f"{fit_from}, split {fit_split!r}" if is_saved_dataset(fit_from) else str(fit_from)
    seconds = sum(a.waveform.numel() / a.rate for a in training)
    return training, f"k-means fitted on {len(training)} training utterances ({seconds:.0f} s) of {where}"


def bpe_token_sets(utterances: list[ProbeUtterance], main: CodedSet, bpes: dict[Path, AudioBPE],
                   taken: Sequence[str]) -> tuple[list[CodedSet], list[TokenVocabulary]]:
    """Each audio BPE applied to `main`'s codes: the per-frame tokens to probe and what the vocabulary holds."""
    phones = frame_labels(utterances, main)[0] if bpes else []
    sets, vocabularies, names = [], [], list(taken)
    for path, bpe in bpes.items():
        names.append(row_name(bpe, path, names))
        tokens, vocabulary = apply_bpe(main, bpe, path, phones, names[-1])
        sets.append(tokens)
        vocabularies.append(vocabulary)
    return sets, vocabularies


def run_probes(codecs: dict[str, Path], source: str | Path, split: str = "test", limit: int | None = None,
               rounds: int = 200, drop_silence: bool = False, lm_dir: str | Path | None = None, *,
               fit_source: str | Path | None = None, fit_split: str = "train", fit_limit: int | None = None,
               null_draws: int = 3, seed: int = 0, audio_bpe: Sequence[str | Path] = ()) -> ProbeResult:
    """Probe every codec and the baselines (for the first codec's K and frames); the first codec is the reference
    of the paired differences. The k-means baseline is fitted on `fit_limit` (default: as many as probed)
    utterances of `fit_source`'s `fit_split` (default: the probed corpus's training split). Each `audio_bpe`
    directory (`lm.audio_bpe`, trained on the first codec's codes) adds a row of its tokens as frame labels on the
    first codec's frames (`lm.probes.bpe`) and a table of its most frequent multi-code tokens."""
    if not codecs:
        raise WavTokenizerError("run_probes needs at least one codec")
    if rounds < 1 or null_draws < 1:
        raise WavTokenizerError(f"rounds and null_draws must be at least 1, got {rounds} and {null_draws}")
    source = Path(source)
    bpes = {Path(path): load_audio_bpe(path) for path in audio_bpe}  # a wrong directory fails before any encoding
    utterances = load_probe_set(source, split, limit)
    training, baseline_fit = _training_audio(source, split, utterances, fit_source, fit_split, fit_limit, seed)
    coded = [encode_with(name, Path(path), utterances) for name, path in codecs.items()]
    main = coded[0]
    token_sets, vocabularies = bpe_token_sets(utterances, main, bpes, list(codecs))
    baselines = [CodedSet(f"random codes, same usage as {main.name}", shuffled_per_utterance(main.codes, seed=2),
                          main.frame_rate, main.codebook_size, kind="baseline", sampling_rate=main.sampling_rate)]
    if training is not None:
        baselines.append(mel_baseline(utterances, main, training, seed=seed))
    tokenizer = model = None
    if lm_dir is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from lm.vocabulary import AudioTokenLayout

        tokenizer = AutoTokenizer.from_pretrained(lm_dir)
        AudioTokenLayout.from_tokenizer(tokenizer).check_codec(main.codebook_size, f"codec {main.name}")
        model = AutoModelForCausalLM.from_pretrained(lm_dir)
    probed = [probe(utterances, c, drop_silence, tokenizer=tokenizer if c is main else None)
              for c in tqdm(coded + token_sets + baselines, desc="probing", unit="set")]
    probed.append(probe(utterances, main, drop_silence, shuffle_labels=True))
    rows = [row for row, _ in probed]
    metrics, differences = paired_bootstrap([table for _, table in probed], rounds, seed, null_draws=null_draws)
    for row, values, difference in zip(rows, metrics, differences):
        row.metrics, row.difference = values, difference
    result = ProbeResult(str(source), split, round(sum(u.waveform.numel() / u.rate for u in utterances), 1),
                         drop_silence, rounds, null_draws, rows, INTERVALS.format(level=0.95, rounds=rounds),
                         baseline_fit, audio_bpe=vocabularies, probe_set=utterances, coded=coded)
    if training is None:
        result.notes.append(baseline_fit)
    if model is not None:
        from .embeddings import embedding_alignment

        frequent = np.argsort(-rows[0].usage_counts)[:20].tolist()
        result.lm_embeddings = {"lm": str(lm_dir), **embedding_alignment(
            model, tokenizer, rows[0].word_pairs, rows[0].word_association["partners"], frequent)}
    return result
