"""Frame labels: the phone and the word covering the centre of each code frame.

Frame t spans samples [t * hop, (t + 1) * hop); its centre is (t + 0.5) / frame_rate seconds. An interval
[start, end) covers a centre when start <= centre < end; frames no interval covers get `SILENCE`.
Timings come from the corpus (espeak-ng's, Flite's or Festival's own events) or, for any audio with a transcript,
from an offline forced alignment with pocketsphinx (`forced_alignment`).

Silence has one label and one meaning, whatever the source: `SILENCE` ("sil") marks a frame where no speech sound is
labelled, be it a pause the synthesiser or aligner reports ("sil", "pau", "<sil>", "SIL", "sp", ...) or a frame no
interval covers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.errors import WavTokenizerError

SILENCE = "sil"
# pause names of the label sources (corpus backends, pocketsphinx, common aligners), all read as SILENCE
PAUSE_LABELS = frozenset({"sil", "<sil>", "SIL", "sp", "spn", "pau", "_", "", "<s>", "</s>"})


def phone_label(name: str) -> str:
    """A source's phone name, with every pause name mapped to `SILENCE`."""
    return SILENCE if name in PAUSE_LABELS or name.startswith("_") else name


@dataclass
class Interval:
    label: str
    start: float
    end: float


def interval_index_at_centres(intervals: list[Interval], num_frames: int, frame_rate: float) -> np.ndarray:
    """For each frame, the index (into `intervals`) of the interval covering its centre, -1 where none does."""
    if frame_rate <= 0:
        raise WavTokenizerError(f"frame_rate must be positive, got {frame_rate}")
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    order = sorted(range(len(intervals)), key=lambda i: intervals[i].start)
    starts = np.array([intervals[i].start for i in order], dtype=float)
    out = np.full(num_frames, -1, dtype=np.int64)
    for t, centre in enumerate(centres):
        rank = int(np.searchsorted(starts, centre, side="right")) - 1
        if rank >= 0 and intervals[order[rank]].start <= centre < intervals[order[rank]].end:
            out[t] = order[rank]
    return out


def labels_at_centres(intervals: list[Interval], num_frames: int, frame_rate: float) -> list[str]:
    """The label of the interval covering each frame centre (`SILENCE` where none does)."""
    index = interval_index_at_centres(intervals, num_frames, frame_rate)
    return [intervals[i].label if i >= 0 else SILENCE for i in index]


def word_intervals(words: list[dict]) -> list[Interval]:
    """Corpus word timings as intervals of normalised words ("world--every" -> "world every")."""
    out = []
    for entry in words:
        text = " ".join(normalize_words(entry["word"]))
        if text:
            out.append(Interval(text, float(entry["start"]), float(entry["end"])))
    return out


def phone_intervals(phones: list[dict]) -> list[Interval]:
    """Corpus phone timings as intervals, pauses labelled `SILENCE`."""
    return [Interval(phone_label(entry["phone"]), float(entry["start"]), float(entry["end"])) for entry in phones]


def forced_alignment(waveform, rate: int, transcript: str) -> tuple[list[Interval], list[Interval]]:
    """(words, phones) of English speech aligned to its transcript with pocketsphinx (CMUdict phones, 10 ms steps).
    Raises a clear error for words outside pocketsphinx's dictionary or when the alignment fails."""
    import torch
    from pocketsphinx import Decoder

    from wavtokenizer_hf.audio_io import resample

    words = normalize_words(transcript)
    if not words:
        raise WavTokenizerError("the transcript has no words to align")
    audio = torch.as_tensor(waveform, dtype=torch.float32).reshape(1, -1)
    pcm = (resample(audio, rate, 16000)[0].clamp(-1, 1).numpy() * 32767).astype(np.int16).tobytes()
    decoder = Decoder(samprate=16000, loglevel="FATAL", bestpath=False)
    missing = [w for w in words if decoder.lookup_word(w) is None]
    if missing:
        raise WavTokenizerError(f"words not in the aligner's dictionary: {', '.join(sorted(set(missing))[:10])}")
    decoder.set_align_text(" ".join(words))
    for second_pass in (False, True):  # the word pass, then phones within it
        if second_pass:
            decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
    alignment = decoder.get_alignment()
    if alignment is None:
        raise WavTokenizerError("forced alignment failed (audio and transcript may not match)")
    frame = 1.0 / 100  # pocketsphinx's frame rate
    word_out, phone_out = [], []
    for word in alignment:
        name = re.sub(r"\(\d+\)$", "", word.name)  # pronunciation variants: "and(2)"
        if name not in ("<sil>", "<s>", "</s>") and not name.startswith("["):
            word_out.append(Interval(name, word.start * frame, (word.start + word.duration) * frame))
            for phone in word:
                phone_out.append(Interval(phone_label(phone.name), phone.start * frame,
                                          (phone.start + phone.duration) * frame))
    return word_out, phone_out
