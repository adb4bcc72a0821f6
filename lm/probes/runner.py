"""Run the alignment probes: label frames, encode with each codec, score codes and baselines on the same frames."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wavtokenizer_hf.errors import WavTokenizerError

from .association import association
from .baselines import log_mel_frames, mel_kmeans_codes, shuffled
from .labels import SILENCE, Interval, forced_alignment, labels_at_centres, phone_intervals, word_intervals
from .metrics import FrameTable, bootstrap, codebook_metrics

HEADLINE = ("pnmi", "mapping_accuracy", "phone_purity", "code_purity", "v_measure")


@dataclass
class ProbeUtterance:
    id: str
    waveform: torch.Tensor  # (samples,) float32
    rate: int
    text: str
    words: list[Interval]
    phones: list[Interval]


@dataclass
class CodedSet:
    """One codec's (or baseline's) codes for every utterance, with the frame rate they are on."""

    name: str
    codes: list[np.ndarray]
    frame_rate: float
    codebook_size: int
    step: int | None = None
    kind: str = "codec"  # codec | baseline
    extra: dict = field(default_factory=dict)


def load_probe_set(source: str | Path, split: str = "test", limit: int | None = None) -> list[ProbeUtterance]:
    """Speech with word and phone timings: a saved corpus split, or a folder of audio with transcripts (aligned
    here with pocketsphinx)."""
    from wavtokenizer_hf.corpus.builder import is_saved_dataset, load_split, read_audio_column
    from wavtokenizer_hf.evaluation import load_test_set
    from wavtokenizer_hf.evaluation.runner import EVAL_RATE

    source = Path(source)
    out: list[ProbeUtterance] = []
    if is_saved_dataset(source):
        for row in load_split(source, split):
            if row.get("kind", "speech") != "speech" or not row.get("phones"):
                continue
            data, rate = read_audio_column(row)
            out.append(ProbeUtterance(row["id"], torch.from_numpy(np.asarray(data, dtype=np.float32)).reshape(-1), rate,
                                      row["text"], word_intervals(row["words"]), phone_intervals(row["phones"])))
            if limit and len(out) >= limit:
                break
    else:
        utterances = [u for u in load_test_set(source, split, limit=limit) if u.text]
        if not utterances:
            raise WavTokenizerError(f"{source}: no audio with transcripts (NAME.txt, transcripts.tsv or manifest.jsonl)")
        for u in tqdm(utterances, desc="forced alignment", unit="file"):
            wave = torch.as_tensor(u.waveform, dtype=torch.float32).reshape(-1)
            try:
                words, phones = forced_alignment(wave, EVAL_RATE, u.text)
            except WavTokenizerError as err:
                print(f"skipped {u.id}: {err}")
                continue
            out.append(ProbeUtterance(u.id, wave, EVAL_RATE, u.text, words, phones))
    if not out:
        raise WavTokenizerError(f"{source}: no speech utterances with timings in split {split!r}")
    return out


def codec_step(path: Path) -> int | None:
    """Training step of a codec this package trained: its folder name (stepNNNNNNN) or its model card."""
    match = re.fullmatch(r"step(\d+)", path.name)
    if match:
        return int(match.group(1))
    card = path / "README.md"
    if card.exists():
        match = re.search(r"for (\d+) steps", card.read_text())
        if match:
            return int(match.group(1))
    return None


def encode_with(name: str, path: Path, utterances: list[ProbeUtterance]) -> CodedSet:
    from wavtokenizer_hf.codec import Codec

    codec = Codec.from_pretrained(path)
    codes = []
    for u in tqdm(utterances, desc=f"encode ({name})", unit="utt", leave=False):
        codes.append(codec.encode(u.waveform[None], u.rate).audio_codes[0].numpy().astype(np.int64))
    return CodedSet(name, codes, codec.frame_rate, codec.codebook_size, codec_step(path),
                    extra={"path": str(path), "codec": codec})


def frame_labels(utterances: list[ProbeUtterance], coded: CodedSet) -> tuple[list[list[str]], list[list[str]]]:
    phones, words = [], []
    for u, codes in zip(utterances, coded.codes):
        phones.append(labels_at_centres(u.phones, len(codes), coded.frame_rate))
        words.append(labels_at_centres(u.words, len(codes), coded.frame_rate))
    return phones, words


def frame_table(utterances: list[ProbeUtterance], coded: CodedSet, labels: list[list[str]],
                drop_silence: bool) -> FrameTable:
    names = sorted({label for per_utt in labels for label in per_utt})
    index = {name: i for i, name in enumerate(names)}
    label_ids, codes, owner = [], [], []
    for u_index, (per_utt, c) in enumerate(zip(labels, coded.codes)):
        keep = [t for t, label in enumerate(per_utt) if not (drop_silence and label == SILENCE)]
        label_ids += [index[per_utt[t]] for t in keep]
        codes += [int(c[t]) for t in keep]
        owner += [u_index] * len(keep)
    return FrameTable(np.asarray(label_ids), np.asarray(codes), np.asarray(owner), names, coded.codebook_size,
                      [u.id for u in utterances])


def probe(utterances: list[ProbeUtterance], coded: CodedSet, rounds: int, drop_silence: bool,
          shuffle_labels: bool = False, tokenizer=None) -> dict:
    """All metrics of one set of codes (optionally against shuffled phone labels: the chance level)."""
    phones, words = frame_labels(utterances, coded)
    if shuffle_labels:
        flat = shuffled(np.asarray([p for per_utt in phones for p in per_utt], dtype=object), seed=1)
        phones, start = [], 0
        for c in coded.codes:
            phones.append(list(flat[start:start + len(c)]))
            start += len(c)
    table = frame_table(utterances, coded, phones, drop_silence)
    result = {"name": coded.name + (" (shuffled labels)" if shuffle_labels else ""),
              "kind": "baseline" if shuffle_labels else coded.kind,
              "step": coded.step, "codebook_size": coded.codebook_size, "frames": int(len(table.codes)),
              "utterances": len(utterances), "metrics": bootstrap(table, rounds),
              **codebook_metrics(np.concatenate(coded.codes), coded.codebook_size)}
    if shuffle_labels:
        return result
    word_pairs = [(int(z), w) for c, per_utt in zip(coded.codes, words) for z, w in zip(c, per_utt) if w != SILENCE]
    result["word_association"] = association(word_pairs)
    if tokenizer is not None:
        token_pairs = [(z, token_text(tokenizer, t)) for z, w in word_pairs
                       for t in tokenizer(" " + w, add_special_tokens=False).input_ids]
        result["token_association"] = association(token_pairs)
    result["heatmap"] = {"labels": table.label_names, "counts": table.counts().astype(np.int64)}
    result["usage_counts"] = np.bincount(np.concatenate(coded.codes), minlength=coded.codebook_size)
    result["word_pairs"] = word_pairs
    return result


def token_text(tokenizer, token_id: int) -> str:
    """A text token as readable text, a leading space shown as '␣'."""
    text = tokenizer.decode([token_id])
    return "␣" + text[1:] if text.startswith(" ") else text


def mel_baseline(utterances: list[ProbeUtterance], reference: CodedSet) -> CodedSet:
    from wavtokenizer_hf.audio_io import resample

    hop = int(round(24000 / reference.frame_rate))
    features = []
    for u, codes in zip(utterances, reference.codes):
        wave = resample(u.waveform[None], u.rate, 24000)[0] if u.rate != 24000 else u.waveform
        features.append(log_mel_frames(wave, 24000, hop, len(codes)))
    codes = mel_kmeans_codes(features, reference.codebook_size)
    return CodedSet(f"k-means on log-mel (K={reference.codebook_size})", codes, reference.frame_rate,
                    reference.codebook_size, kind="baseline")


def run_probes(codecs: dict[str, Path], source: str | Path, split: str = "test", limit: int | None = None,
               rounds: int = 200, drop_silence: bool = False, lm_dir: str | Path | None = None) -> dict:
    """Probe every codec and the baselines (for the first codec's K and frames). Returns a JSON-able summary plus
    in-memory pieces the report draws (`_report`)."""
    utterances = load_probe_set(source, split, limit)
    coded = [encode_with(name, Path(path), utterances) for name, path in codecs.items()]
    main = coded[0]
    random_codes = CodedSet(f"random codes, same usage as {main.name}",
                            np.split(shuffled(np.concatenate(main.codes), seed=2),
                                     np.cumsum([len(c) for c in main.codes])[:-1]),
                            main.frame_rate, main.codebook_size, kind="baseline")
    baselines = [random_codes, mel_baseline(utterances, main)]
    tokenizer = model = None
    if lm_dir is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from lm.vocabulary import AudioTokenLayout

        tokenizer = AutoTokenizer.from_pretrained(lm_dir)
        AudioTokenLayout.from_tokenizer(tokenizer).check_codec(main.codebook_size, f"codec {main.name}")
        model = AutoModelForCausalLM.from_pretrained(lm_dir)
    rows = []
    for c in tqdm(coded + baselines, desc="probing", unit="set"):
        rows.append(probe(utterances, c, rounds, drop_silence, tokenizer=tokenizer if c is main else None))
    rows.append(probe(utterances, main, rounds, drop_silence, shuffle_labels=True))
    result = {"source": str(source), "split": split, "utterances": len(utterances),
              "seconds": round(sum(u.waveform.numel() / u.rate for u in utterances), 1),
              "drop_silence": drop_silence, "bootstrap_rounds": rounds, "rows": rows}
    if model is not None:
        from .embeddings import embedding_alignment

        main_row = rows[0]
        frequent = np.argsort(-main_row["usage_counts"])[:20].tolist()
        result["lm_embeddings"] = {"lm": str(lm_dir), **embedding_alignment(
            model, tokenizer, main_row["word_pairs"], main_row["word_association"]["partners"], frequent)}
    result["_report"] = {"utterances": utterances, "coded": coded}
    return result


def json_summary(result: dict) -> dict:
    """The result without arrays and in-memory objects (what `probe_results.json` holds)."""
    def clean(row: dict) -> dict:
        out = {k: v for k, v in row.items() if k not in ("heatmap", "usage_counts", "word_pairs")}
        for key in ("word_association", "token_association"):
            if key in out:
                out[key] = {k: v for k, v in out[key].items() if k != "partners"}
        return out

    summary = {k: v for k, v in result.items() if not k.startswith("_") and k != "rows"}
    summary["rows"] = [clean(r) for r in result["rows"]]
    return json.loads(json.dumps(summary, default=float))
