"""Frame labels: the phone and the word covering the centre of each code frame.

Frame t spans samples [t * hop, (t + 1) * hop); its centre is (t + 0.5) / frame_rate seconds. An interval
[start, end) covers a centre when start <= centre < end; frames no interval covers get `SILENCE`.
Timings come from the corpus (espeak-ng's own events) or, for any audio with a transcript, from an offline forced
alignment with pocketsphinx (`forced_alignment`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from wavtokenizer_hf.corpus.text import normalize_words
from wavtokenizer_hf.errors import WavTokenizerError

SILENCE = "<sil>"


@dataclass
class Interval:
    label: str
    start: float
    end: float


def labels_at_centres(intervals: list[Interval], num_frames: int, frame_rate: float) -> list[str]:
    """The label of the interval covering each frame centre (`SILENCE` where none does)."""
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    labels = [SILENCE] * num_frames
    ordered = sorted(intervals, key=lambda i: i.start)
    starts = np.array([i.start for i in ordered])
    for t, centre in enumerate(centres):
        index = int(np.searchsorted(starts, centre, side="right")) - 1
        if index >= 0 and ordered[index].start <= centre < ordered[index].end:
            labels[t] = ordered[index].label
    return labels


def word_intervals(words: list[dict]) -> list[Interval]:
    """Corpus word timings as intervals of normalised words ("world--every" -> "world every")."""
    out = []
    for entry in words:
        text = " ".join(normalize_words(entry["word"]))
        if text:
            out.append(Interval(text, float(entry["start"]), float(entry["end"])))
    return out


def phone_intervals(phones: list[dict]) -> list[Interval]:
    return [Interval(entry["phone"], float(entry["start"]), float(entry["end"])) for entry in phones]


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
                phone_out.append(Interval(phone.name, phone.start * frame, (phone.start + phone.duration) * frame))
    return word_out, phone_out
