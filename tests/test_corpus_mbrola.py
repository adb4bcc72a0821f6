"""MBROLA voices through the system's espeak-ng, and the other languages' text they read."""

from __future__ import annotations

import gettext
import multiprocessing
import struct

import numpy as np
import pytest
import torch

from wavtokenizer_hf.corpus import mbrola, native_text
from wavtokenizer_hf.corpus.voices import is_reserved
from wavtokenizer_hf.errors import WavTokenizerError
from wavtokenizer_hf.evaluation.pitch import track_pitch

needs_mbrola = pytest.mark.skipif(not mbrola.available() or not mbrola.installed_voices(),
                                  reason="MBROLA voices not installed (make corpus-extras NONFREE=1)")


def _voice(name):
    return next(v for v in mbrola.installed_voices() if v.name == name)


def _speak(name, text, pitch=0.0):
    """In a fresh process: libespeak-ng keeps state between utterances."""
    with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(mbrola.speak, (text, _voice(name), 1.0, pitch, 0))


@needs_mbrola
def test_mbrola_voices_name_their_database_sex_and_language_and_never_the_reserved_ones():
    voices = mbrola.installed_voices()
    assert len({v.speaker for v in voices}) >= 60
    assert not any(is_reserved("mbrola", v.name) for v in voices)
    assert not {"mb-us1", "mb-en1", "mb-us1-en"} & {v.name for v in voices}
    de1 = [v for v in voices if v.speaker == "mbrola-de1"]
    assert {v.name: v.language for v in de1} == {"mb-de1": "de", "mb-de1-en": "en"}
    assert all(v.sex == "female" and not v.free and not v.timed for v in de1)
    assert _voice("mb-us2").sex == "male" and "mb-de6-grc" not in {v.name for v in voices}


@needs_mbrola
def test_a_german_voice_speaks_german_and_a_pitch_shift_moves_its_f0():
    text = "Guten Tag, wie geht es Ihnen heute, und was machen Sie morgen?"
    base, higher = _speak("mb-de1", text), _speak("mb-de1", text, pitch=4.0)
    assert base.sampling_rate == 16000 and 2.0 < len(base.audio) / 16000 < 6.0
    assert not base.words and not base.phones  # untimed: see the module docstring

    def median_f0(speech):
        f0, voiced = track_pitch(torch.from_numpy(speech.float_audio()), speech.sampling_rate)
        return float(np.median(f0[voiced]))

    ratio = median_f0(higher) / median_f0(base)
    assert 1.15 < ratio < 1.45  # +4 semitones is 1.26
    assert np.array_equal(_speak("mb-de1", text).audio, base.audio)


@needs_mbrola
def test_english_spelling_through_a_voice_that_lacks_its_diphones_is_refused():
    with pytest.raises(WavTokenizerError, match="mb-jp2: .* diphones missing"):
        _speak("mb-jp2", "It is a truth universally acknowledged, that a single man must be in want of a wife.")


def _mo_file(path, messages: dict[str, str]) -> None:
    """A gettext catalogue as msgfmt writes it (little-endian, no hash table)."""
    keys = sorted(messages)
    ids, strs = b"", b""
    id_entries, str_entries = [], []
    for key in keys:
        id_entries.append((len(key.encode()), len(ids)))
        ids += key.encode() + b"\0"
        str_entries.append((len(messages[key].encode()), len(strs)))
        strs += messages[key].encode() + b"\0"
    header = 7 * 4
    id_table = header
    str_table = id_table + 8 * len(keys)
    data = str_table + 8 * len(keys)
    out = struct.pack("<7I", 0x950412DE, 0, len(keys), id_table, str_table, 0, data + len(ids) + len(strs))
    out += b"".join(struct.pack("<2I", n, data + o) for n, o in id_entries)
    out += b"".join(struct.pack("<2I", n, data + len(ids) + o) for n, o in str_entries)
    path.write_bytes(out + ids + strs)


def test_native_text_keeps_plain_sentences_of_the_language_and_drops_placeholders_and_markup(tmp_path):
    folder = tmp_path / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    header = "Content-Type: text/plain; charset=UTF-8\n"
    kept = ["Die Datei konnte nicht geöffnet werden.", "Bitte wählen Sie einen anderen Ordner aus.",
            "Der Vorgang wurde vom Benutzer abgebrochen."]
    dropped = ["Datei %s nicht gefunden und so weiter", "Fehler in Zeile 12 der Datei gefunden",
               "<b>Achtung</b> die Datei ist sehr gross", "Wählen Sie \"Ja\" oder \"Nein\" bitte aus", "Zu kurz.",
               "Bitte --force angeben um fortzufahren jetzt", "Sortieren nach Zahl -n oder Zufall -R jetzt",
               "Die zentrale Region (Regio sieben) der Inseln"]
    messages = {"": header, **{f"m{i}": text for i, text in enumerate(kept + dropped)}}
    _mo_file(folder / "test.mo", messages)
    assert gettext.GNUTranslations(open(folder / "test.mo", "rb"))._catalog["m0"] == kept[0]  # a valid catalogue
    pools = native_text.sentence_pools("de", str(tmp_path))
    found = sorted(s for pool in pools.values() for s in pool)
    assert found == sorted(kept)
    assert {native_text.text_split(s) for s in kept} <= set(native_text.SPLIT_SHARES)
    assert all(s in pools[native_text.text_split(s)] for s in kept)  # each in the split its hash gives
    assert native_text.sentence_pools("ru", str(tmp_path)) == {"train": [], "validation": [], "test": []}


def test_text_in_another_script_with_latin_words_is_dropped():
    assert native_text._speakable("Не удалось открыть файл на диске", "ru")
    assert not native_text._speakable("Не удалось открыть файл config на диске", "ru")
    assert native_text._speakable("Impossible d'ouvrir le fichier demandé", "fr")
    assert not native_text._speakable("Impossible d' ouvrir le fichier demandé", "fr")
