"""Festival (Debian's `festival`) with every installed voice this module knows: the HTS `slt` voice of the CMU ARCTIC
speaker the corpus holds out for its test split (Flite's `slt` is the same person), and Czech, Italian, Spanish,
Catalan, Finnish, Russian, Hindi, Marathi and Telugu voices, each with Festival's own segment end times and the word
each segment belongs to.

Optional: `available()` is False without the `festival` program or the `slt` voice, and `installed_voices()` is empty
without the program. Festival's diphone voices `kal`, `ked` and `kdl` are held out for evaluation and never listed
or spoken here.

Two interfaces:
- `synthesize(text, stretch)`: the English HTS `slt` voice the builder uses (`VOICE`, `VOICE_DIR`, `LICENCE`).
  Its `stretch` sets Festival's Duration_Stretch, which the HTS engine does not read: the audio is the same at any
  stretch (kept as it is for the builder; `speak` maps speed onto the engine's own rate for HTS voices).
- `installed_voices()` / `speak(text, voice, speed, pitch, seed)`: the shared backend interface (`voices.py`) over
  every installed voice in `_VOICES` (voices Festival offers that are not there are not listed: their speaker, sex
  and licence are undocumented here). Each is probed once per process by speaking a short native sentence; one that
  fails is left out.

Text is UTF-8 and is handed to each voice in the encoding its lexicon reads (`_Entry.encoding`: ISO-8859-2 for
Czech, ISO-8859-1 for Italian, Spanish and Finnish, ISO-8859-15 for Catalan, UTF-8 for Russian, the Indic voices and
English; a wrong encoding makes the voices spell each byte as an "unknown character"). Typographic quotes, dashes
and ellipses become ASCII first; other characters the encoding lacks are refused. `speed` multiplies the speaking
rate: Duration_Stretch (times the voice's own: the Indic voices speak at 1.4) for diphone voices, the HTS engine's
`-r` for HTS voices; the Russian unit-selection voice has no rate control and speaks only at speed 1 (see
`changes_speed`). `pitch` (semitones) scales the F0 targets of the diphone voices (`pitch_shift=True`); HTS and
unit-selection voices ignore it. Synthesis is deterministic: `seed` is unused. Licences are each voice's own
(GPL, LGPL or BSD-like), except the Spanish `el_diphone`: research, educational and individual use only
(`NON_FREE_VOICES`).
"""

from __future__ import annotations

import functools
import math
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
from .voices import MIN_PEAK, Speech, Voice, is_reserved, read_pcm16_wav

VOICE = "slt_hts"
VOICE_DIR = Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts")
LICENCE = ("Festival (BSD-style licence) with the festvox-us-slt-hts voice (CMU ARCTIC slt, free licence: see the "
           "voice's copyright file); output free to use and redistribute")
_SEGMENT = re.compile(r"^S (\S+) ([0-9.]+) (\S+) (\S+)$", re.MULTILINE)
MIN_SPEED, MAX_SPEED = 0.25, 4.0
MAX_PITCH = 12.0  # semitones either way

_BRAILCOM_GPL3 = "GPL-3+ (Brailcom, o.p.s.; festvox-czech-{} and festival-czech)"
_SUOPUHE = ("LGPL-2+ (Suopuhe: University of Helsinki and University of Joensuu; festvox-suopuhe-{} and "
            "festvox-suopuhe-common)")
_IFM = "GPL-2+ (Italian FESTIVAL Modules, ISTC-SPFD CNR and ITC-irst; festvox-ita{}16k and festlex-ifd)"
_NSK = "GPL-2+ ({}; festvox-{}-nsk and festival-{})"
# Indic voices set Int_Target_Method but no Int_Method (they relied on the voice loaded before them): Festival's
# simple intonation at their speaker's mean F0 and range from their own *_NSK_int.scm (120 Hz, 14 Hz).
_NSK_SETUP = "(Parameter.set 'Int_Method 'Simple)\n(set! int_simple_params '((f0_mean 120) (f0_std 14)))\n"


@dataclass(frozen=True)
class _Entry:
    """What the voice's documentation says (Debian package description, README, copyright file) and how to drive it."""

    speaker: str
    sex: str
    age: str
    language: str
    encoding: str
    engine: str  # "diphone" (UniSyn: rate and F0 follow Festival's targets), "hts", "clunits" (unit selection)
    licence: str
    probe: str  # a short native sentence
    setup: str = ""  # Scheme run after selecting the voice


_VOICES: dict[str, _Entry] = {  # Festival's voice name (its selection function without `voice_`) -> entry
    "cmu_us_slt_arctic_hts": _Entry(
        "slt", "female", "adult", "en", "utf-8", "hts",
        "EST-2003/EST-2000 CMU licence (free use, modification and distribution with the notice kept; CMU ARCTIC "
        "slt), HTS parts BSD-3-clause; festvox-us-slt-hts", "Hello there."),
    "czech_dita": _Entry("dita", "female", "adult", "cs", "iso-8859-2", "diphone", _BRAILCOM_GPL3.format("dita"),
                         "Dobrý den."),
    "czech_krb": _Entry("krb", "male", "child", "cs", "iso-8859-2", "diphone", _BRAILCOM_GPL3.format("krb"),
                        "Dobrý den."),
    "czech_machac": _Entry("machac", "male", "adult", "cs", "iso-8859-2", "diphone",
                           _BRAILCOM_GPL3.format("machac"), "Dobrý den."),
    "czech_ph": _Entry("ph", "male", "adult", "cs", "iso-8859-2", "diphone",
                       "GPL-2+ (Brailcom, o.p.s.; festvox-czech-ph and festival-czech)", "Dobrý den."),
    "lp_diphone": _Entry("lp", "female", "adult", "it", "iso-8859-1", "diphone", _IFM.format("lp"), "Buongiorno."),
    "pc_diphone": _Entry("pc", "male", "adult", "it", "iso-8859-1", "diphone", _IFM.format("pc"), "Buongiorno."),
    "el_diphone": _Entry(
        "el", "male", "adult", "es", "iso-8859-1", "diphone",
        "CSTR, University of Edinburgh licence: research, educational and individual use only, no commercial use "
        "without permission (festvox-ellpc11k; its diphones are commercially restricted)", "Buenos días.",
        # `¿¡` are punctuation, else the Spanish tokenizer spells a token like `¿Cómo` letter by letter
        "(set! token.prepunctuation (string-append token.prepunctuation \"\xbf\xa1\"))\n"),
    "upc_ca_ona_hts": _Entry(
        "ona", "female", "adult", "ca", "iso-8859-15", "hts",
        "LGPL-2.1+ (Universitat Politècnica de Catalunya, Antonio Bonafonte), HTS parts BSD-3-clause; "
        "festvox-ca-ona-hts and festival-ca", "Bon dia."),
    "suo_fi_lj_diphone": _Entry("lj", "female", "adult", "fi", "iso-8859-1", "diphone", _SUOPUHE.format("lj"),
                                "Hyvää päivää."),
    "hy_fi_mv_diphone": _Entry("mv", "male", "adult", "fi", "iso-8859-1", "diphone", _SUOPUHE.format("mv"),
                               "Hyvää päivää."),
    "msu_ru_nsh_clunits": _Entry(
        "nsh", "male", "adult", "ru", "utf-8", "clunits",
        "BSD-like free licence (Nickolay V. Shmyrev 2005: use, modification and distribution with the notice kept); "
        "festvox-ru", "Добрый день."),
    # the three NSK voices share one diphone database (identical NSKlpc.group files): one man
    "hindi_NSK_diphone": _Entry("nsk", "male", "adult", "hi", "utf-8", "diphone",
                                _NSK.format("C-DAC Mumbai and Chaitanya Kamisetty", "hi", "hi"), "नमस्ते।",
                                _NSK_SETUP),
    "marathi_NSK_diphone": _Entry("nsk", "male", "adult", "mr", "utf-8", "diphone",
                                  _NSK.format("C-DAC Mumbai and Chaitanya Kamisetty", "mr", "mr"), "नमस्कार.",
                                  _NSK_SETUP),
    "telugu_NSK_diphone": _Entry("nsk", "male", "adult", "te", "utf-8", "diphone",
                                 _NSK.format("Chaitanya Kamisetty, DONLab IIT Madras", "te", "te"), "నమస్కారం.",
                                 _NSK_SETUP),
}
NON_FREE_VOICES = frozenset({"el_diphone"})  # licences that forbid commercial use
_TYPOGRAPHY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                             "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2013": "-", "\u2014": " - ",
                             "\u2026": "...", "\u00a0": " "})


@dataclass
class FestivalSpeech:
    audio: np.ndarray  # int16
    sampling_rate: int
    words: list[dict]
    phones: list[dict]


def available() -> bool:
    return shutil.which("festival") is not None and VOICE_DIR.is_dir()


def version() -> str:
    try:
        result = subprocess.run(["festival", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "festival"
    found = re.search(r"System: (\S+?):", result.stdout)
    return f"Festival {found.group(1)}" if found else "festival"


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _timeline(segments, duration: float) -> tuple[list[dict], list[dict]]:
    """Phones and word spans from Festival's segments (name, end, is_pause, word_id) in order: phones end where the
    next begins, pauses are 'sil' (runs of them merged), the last phone ends at the audio's end; each word spans its
    non-pause segments (a segment of word_id None, such as the Czech voices' glottal stop `_`, is in no word). Word
    spans carry their `id`."""
    phones, words, start = [], [], 0.0
    for name, end, pause, word_id in segments:
        end = min(float(end), duration)
        if end <= start:
            continue
        label = "sil" if pause else name
        if phones and label == "sil" and phones[-1]["phone"] == "sil":
            phones[-1]["end"] = round(end, 4)
        else:
            phones.append({"phone": label, "start": round(start, 4), "end": round(end, 4)})
        if label != "sil" and word_id is not None:
            if words and words[-1]["id"] == word_id:
                words[-1]["end"] = round(end, 4)
            else:
                words.append({"id": word_id, "start": round(start, 4), "end": round(end, 4)})
        start = end
    if phones and phones[-1]["end"] < duration:
        if phones[-1]["phone"] == "sil":
            phones[-1]["end"] = round(duration, 4)
        else:
            phones.append({"phone": "sil", "start": phones[-1]["end"], "end": round(duration, 4)})
    return phones, words


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
    found = _SEGMENT.findall(result.stdout)
    names = {word_id: word for _, _, word, word_id in found}
    phones, spans = _timeline([(name, end, name == "pau", word_id) for name, end, _, word_id in found],
                              len(audio) / rate)
    words = [{"word": names[w["id"]].lower(), "start": w["start"], "end": w["end"]} for w in spans]
    if [w["word"] for w in words] != normalize_words(text):
        raise WavTokenizerError(f"festival's words {[w['word'] for w in words]} are not those of {text!r}; "
                                "sentence skipped")
    return FestivalSpeech(audio=audio, sampling_rate=rate, phones=phones, words=words)


def _voice(name: str) -> Voice:
    entry = _VOICES[name]
    return Voice(backend="festival", name=name, speaker=entry.speaker, sex=entry.sex, age=entry.age,
                 language=entry.language, licence=entry.licence, timed=True,
                 pitch_shift=entry.engine == "diphone", rate_change=entry.engine != "clunits",
                 free=name not in NON_FREE_VOICES)


def _offered() -> list[str]:
    """The voices Festival finds in its voice path (`voice.list`), without loading them."""
    try:
        result = subprocess.run(["festival", "-b", "(print (voice.list))"], capture_output=True, text=True,
                                timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    listing = re.search(r"\(([^()]*)\)", result.stdout)
    return listing.group(1).split() if result.returncode == 0 and listing else []


def _speaks(name: str) -> bool:
    try:
        speak(_VOICES[name].probe, _voice(name))
    except WavTokenizerError:
        return False
    return True


def _probe(names: list[str]) -> set[str]:
    """The voices among `names` that speak their probe sentence into non-silent audio. One festival process tries
    them all in turn (a failing voice is caught there); any voice it did not report on (the process died) is tried
    alone, through `speak`."""
    usable: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for name in names:
            entry, wav = _VOICES[name], os.path.join(tmp, f"{name}.wav")
            parts.append(("(unwind-protect (begin\n"
                          f"(voice_{name})\n{entry.setup}"
                          f"(set! utt (utt.synth (Utterance Text {_scheme_string(entry.probe)})))\n"
                          f"(utt.save.wave utt {_scheme_string(wav)} 'riff)\n"
                          f"(format t \"TRIED {name}\\n\"))\n"
                          f"(format t \"TRIED {name}\\n\"))\n").encode(entry.encoding))
        script = os.path.join(tmp, "probe.scm")
        Path(script).write_bytes(b"".join(parts))
        try:
            result = subprocess.run(["festival", "-b", script], capture_output=True, timeout=120)
            reported = set(re.findall(r"^TRIED (\S+)$", result.stdout.decode("latin-1"), re.MULTILINE))
        except (OSError, subprocess.TimeoutExpired):
            reported = set()
        for name in names:
            if name not in reported:
                if _speaks(name):
                    usable.add(name)
                continue
            try:
                with wave.open(os.path.join(tmp, f"{name}.wav"), "rb") as handle:
                    audio = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
            except (OSError, wave.Error, EOFError):
                continue
            if audio.size and int(np.abs(audio.astype(np.int32)).max()) >= MIN_PEAK:
                usable.add(name)
    return usable


def installed_voices() -> list[Voice]:
    """Every installed Festival voice in `_VOICES` that speaks its probe sentence into non-silent audio, except
    reserved ones, sorted by name. Probed once per process (about 1 s for the 15 Debian voices)."""
    return list(_installed())


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[Voice, ...]:
    if shutil.which("festival") is None:
        return ()
    names = [name for name in _offered() if name in _VOICES and not _held_out(name)]
    usable = _probe(names) if names else set()
    return tuple(sorted((_voice(name) for name in names if name in usable), key=lambda voice: voice.name))


def _held_out(name: str) -> bool:
    speaker = _VOICES[name].speaker if name in _VOICES else name
    return (is_reserved("festival", name) or is_reserved("festival", speaker)
            or any(is_reserved("festival", part) for part in re.split(r"[_-]", name)))


def changes_speed(voice: Voice) -> bool:
    """Whether `speak` can change this voice's speaking rate (the unit-selection voice speaks only at speed 1)."""
    entry = _VOICES.get(voice.name)
    return entry is not None and entry.engine != "clunits"


def _encode(text: str, voice: Voice, encoding: str) -> bytes:
    text = text.translate(_TYPOGRAPHY)
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        missing = "".join(sorted({ch for ch in text if not _encodable(ch, encoding)}))
        raise WavTokenizerError(f"festival voice {voice.name}: {missing[:20]!r} in {text[:40]!r} cannot be written "
                                f"in {encoding}, the only encoding this voice reads") from None


def _encodable(ch: str, encoding: str) -> bool:
    try:
        ch.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def _script(text: bytes, wav: str, entry: _Entry, name: str, speed: float, pitch: float) -> bytes:
    lines = [f"(voice_{name})\n", entry.setup]
    if entry.engine == "diphone" and speed != 1.0:
        lines.append(f"(Parameter.set 'Duration_Stretch (* {1.0 / speed:.6f} "
                     "(if (Parameter.get 'Duration_Stretch) (Parameter.get 'Duration_Stretch) 1.0)))\n")
    if entry.engine == "hts" and speed != 1.0:  # hts_engine's own rate; it reads no Duration_Stretch
        lines.append(f"(set! hts_engine_params (cons (list \"-r\" {speed:.6f}) hts_engine_params))\n")
    if entry.engine == "diphone" and pitch != 0.0:  # UniSyn follows the Target relation's F0
        lines.append("(set! corpus_Int_Targets Int_Targets)\n"
                     "(define (Int_Targets utt) (corpus_Int_Targets utt)\n"
                     f"  (mapcar (lambda (t) (item.set_feat t \"f0\" (* {2 ** (pitch / 12):.6f} (item.feat t \"f0\"))))"
                     " (utt.relation.items utt 'Target)) utt)\n")
    lines += [
        "(set! utt (Utterance Text ", None, "))\n",
        "(utt.synth utt)\n",
        f"(utt.save.wave utt {_scheme_string(wav)} 'riff)\n",
        "(mapcar (lambda (w) (format t \"W\\t%s\\t%s\\n\" (item.feat w \"id\") (item.name w)))"
        " (utt.relation.items utt 'Word))\n",
        "(mapcar (lambda (s) (format t \"S\\t%s\\t%f\\t%s\\t%s\\n\" (item.name s) (item.feat s \"end\")"
        " (if (phone_is_silence (item.name s)) \"1\" \"0\") (item.feat s \"R:SylStructure.parent.parent.id\")))"
        " (utt.relation.items utt 'Segment))\n",
    ]
    encoded = [line.encode(entry.encoding) if line is not None else
               b'"' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"' for line in lines]
    return b"".join(encoded)


def speak(text: str, voice: Voice, speed: float = 1.0, pitch: float = 0.0, seed: int = 0) -> Speech:
    """Speak `text` (UTF-8, in the voice's language) as int16 audio at the voice's own rate, with phone spans
    (Festival's Segment relation; pauses 'sil'; each phone ends where the next begins, the last at the audio's end)
    and word spans (the words of Festival's Word relation that have segments, in order, lower-cased; for the English
    voice they must be `text.normalize_words(text)`). `speed` multiplies the speaking rate (0.25..4; only 1 for a
    voice where `changes_speed` is False); `pitch` shifts F0 by semitones (-12..12) where `voice.pitch_shift`, else
    it is ignored. `seed` is unused: the same call gives the same samples."""
    if voice.backend != "festival" or voice.name not in _VOICES:
        raise WavTokenizerError(f"festival voice {voice.name!r} ({voice.key}) is not one of this module's voices "
                                f"({', '.join(sorted(_VOICES))})")
    if _held_out(voice.name) or is_reserved("festival", voice.speaker):
        raise WavTokenizerError(f"festival voice {voice.name} is held out for evaluation and never spoken here")
    entry = _VOICES[voice.name]
    if not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
        raise WavTokenizerError(f"festival voice {voice.name}: speed {speed} outside {MIN_SPEED}..{MAX_SPEED}")
    if speed != 1.0 and not changes_speed(voice):
        raise WavTokenizerError(f"festival voice {voice.name}: a unit-selection voice speaks only at its own rate "
                                f"(speed 1), not {speed}")
    if not (math.isfinite(pitch) and abs(pitch) <= MAX_PITCH):
        raise WavTokenizerError(f"festival voice {voice.name}: pitch {pitch} semitones outside "
                                f"-{MAX_PITCH:g}..{MAX_PITCH:g}")
    if not any(ch.isalnum() for ch in text):
        raise WavTokenizerError(f"festival voice {voice.name}: nothing to say in {text[:40]!r}")
    encoded = _encode(text, voice, entry.encoding)
    with tempfile.TemporaryDirectory() as tmp:
        wav, script = os.path.join(tmp, "out.wav"), os.path.join(tmp, "say.scm")
        Path(script).write_bytes(_script(encoded, wav, entry, voice.name, speed, pitch))
        try:
            result = subprocess.run(["festival", "-b", script], capture_output=True, timeout=60 + len(text) / 10)
        except subprocess.TimeoutExpired:
            raise WavTokenizerError(f"festival voice {voice.name}: festival timed out on {text[:40]!r}") from None
        except OSError as error:
            raise WavTokenizerError(f"festival voice {voice.name}: cannot run festival ({error})") from None
        stdout = result.stdout.decode(entry.encoding, errors="replace")
        if result.returncode != 0 or not os.path.exists(wav):
            message = (result.stderr.decode(entry.encoding, errors="replace") or stdout).strip()[-300:]
            raise WavTokenizerError(f"festival voice {voice.name}: festival exited {result.returncode} without audio "
                                    f"for {text[:40]!r}: {message}")
        audio, rate = read_pcm16_wav(wav, f"festival voice {voice.name}", text)
    names, segments = {}, []
    for line in stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "W" and len(fields) == 3:
            names[fields[1]] = fields[2]
        elif fields[0] == "S" and len(fields) == 5:
            segments.append((fields[1], fields[2], fields[3] == "1", None if fields[4] == "0" else fields[4]))
    phones, spans = _timeline(segments, len(audio) / rate)
    order = {word_id: index for index, word_id in enumerate(names)}
    if not spans or any(w["id"] not in order for w in spans) or \
            [order[w["id"]] for w in spans] != sorted(order[w["id"]] for w in spans):
        raise WavTokenizerError(f"festival voice {voice.name}: no words, or segments out of word order, for "
                                f"{text[:40]!r}")
    words = [{"word": names[w["id"]].lower(), "start": w["start"], "end": w["end"]} for w in spans]
    if entry.language == "en":
        from .text import normalize_words

        if [w["word"] for w in words] != normalize_words(text):
            raise WavTokenizerError(f"festival voice {voice.name}: words {[w['word'] for w in words]} are not those "
                                    f"of {text!r}; sentence skipped")
    return Speech(audio=audio, sampling_rate=rate, words=words, phones=phones)
