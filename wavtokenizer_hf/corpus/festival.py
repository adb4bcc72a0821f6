"""Festival with Debian's `festvox-us-slt-hts`: an HTS statistical voice of the CMU ARCTIC speaker `slt`, the second
synthesiser of the corpus's held-out test speaker (Flite's `slt` is the first), with Festival's own segment end
times and the word each segment belongs to.

Optional: `available()` is False without the `festival` program or the voice. Festival's diphone voices (`kal`,
`ked`, `kdl`) are held out for evaluation and never used here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import WavTokenizerError

VOICE = "slt_hts"
VOICE_DIR = Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts")
LICENCE = ("Festival (BSD-style licence) with the festvox-us-slt-hts voice (CMU ARCTIC slt, free licence: see the "
           "voice's copyright file); output free to use and redistribute")
_SEGMENT = re.compile(r"^S (\S+) ([0-9.]+) (\S+) (\S+)$", re.MULTILINE)


@dataclass
class FestivalSpeech:
    audio: np.ndarray  # int16
    sampling_rate: int
    words: list[dict]
    phones: list[dict]


def available() -> bool:
    return shutil.which("festival") is not None and VOICE_DIR.is_dir()


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesize(text: str, stretch: float = 1.0) -> FestivalSpeech:
    """Speak `text` with the HTS `slt` voice; phones end where the next begins, pauses are 'sil', each word spans the
    segments Festival assigns to it."""
    from .text import normalize_words

    with tempfile.TemporaryDirectory() as tmp:
        wav, script = os.path.join(tmp, "out.wav"), os.path.join(tmp, "say.scm")
        Path(script).write_text(
            "(voice_cmu_us_slt_arctic_hts)\n"
            f"(Parameter.set 'Duration_Stretch {stretch:.3f})\n"
            f"(set! utt (Utterance Text {_scheme_string(text)}))\n"
            "(utt.synth utt)\n"
            f"(utt.save.wave utt {_scheme_string(wav)} 'riff)\n"
            "(mapcar (lambda (s) (format t \"S %s %f %s %s\\n\" (item.name s) (item.feat s \"end\") "
            "(item.feat s \"R:SylStructure.parent.parent.name\") (item.feat s \"R:SylStructure.parent.parent.id\")))"
            " (utt.relation.items utt 'Segment))\n")
        result = subprocess.run(["festival", "-b", script], capture_output=True, text=True)
        if result.returncode != 0 or not os.path.exists(wav):
            raise WavTokenizerError(f"festival failed: {(result.stderr or result.stdout).strip()[-300:]}")
        with wave.open(wav, "rb") as handle:  # not soundfile: see flite.py (forked pool workers)
            rate = handle.getframerate()
            audio = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").copy()
    duration = len(audio) / rate
    phones, words, start = [], [], 0.0
    for name, end, word, word_id in _SEGMENT.findall(result.stdout):
        end = min(float(end), duration)
        if end <= start:
            continue
        label = "sil" if name == "pau" else name
        if phones and label == "sil" and phones[-1]["phone"] == "sil":
            phones[-1]["end"] = round(end, 4)
        else:
            phones.append({"phone": label, "start": round(start, 4), "end": round(end, 4)})
        if label != "sil":
            if words and words[-1]["id"] == word_id:
                words[-1]["end"] = round(end, 4)
            else:
                words.append({"id": word_id, "word": word.lower(), "start": round(start, 4), "end": round(end, 4)})
        start = end
    if phones and phones[-1]["end"] < duration:
        if phones[-1]["phone"] == "sil":
            phones[-1]["end"] = round(duration, 4)
        else:
            phones.append({"phone": "sil", "start": phones[-1]["end"], "end": round(duration, 4)})
    if [w["word"] for w in words] != normalize_words(text):
        raise WavTokenizerError(f"festival's words {[w['word'] for w in words]} are not those of {text!r}; "
                                "sentence skipped")
    return FestivalSpeech(audio=audio, sampling_rate=rate, phones=phones,
                          words=[{k: w[k] for k in ("word", "start", "end")} for w in words])
