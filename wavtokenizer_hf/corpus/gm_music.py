"""Music played on real sampled instruments: a seeded melody over chords (and drums) written as a MIDI file and
rendered by FluidSynth with Debian's General MIDI soundfont `fluid-soundfont-gm` (FluidR3_GM, MIT licence).

Optional: `available()` is False without the `fluidsynth` program or the soundfont (`make corpus-extras` installs
both where apt works); the corpus then keeps its own synthesised music only.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import WavTokenizerError

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
LICENCE = "FluidSynth with the FluidR3_GM soundfont (fluid-soundfont-gm, MIT licence); notes from the seed"
# General MIDI programs (0-based) with a clear pitch: pianos, chromatic percussion, organs, guitars, basses,
# strings, ensembles, brass, reeds, pipes, synth leads and pads
MELODIC_PROGRAMS = list(range(0, 96))
SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10], "pentatonic": [0, 2, 4, 7, 9]}
TICKS = 480  # per quarter note


def available() -> bool:
    return shutil.which("fluidsynth") is not None and SOUNDFONT.is_file()


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(events: list[tuple[int, bytes]], tempo_us: int) -> bytes:
    """A format-0 standard MIDI file from (absolute tick, message) pairs."""
    track = b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big")
    now = 0
    for tick, message in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80)):  # note-offs first
        track += _varlen(tick - now) + message
        now = tick
    track += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS) + b"MTrk" + struct.pack(">I", len(track)) + track


def compose(seconds: float, rng: np.random.Generator) -> tuple[bytes, str]:
    """A seeded piece: melody and chords on two GM instruments, drums on channel 10 half of the time."""
    bpm = int(rng.integers(70, 150))
    beats = int(np.ceil(seconds * bpm / 60))
    scale_name = str(rng.choice(list(SCALES)))
    scale, root = SCALES[scale_name], int(rng.integers(48, 60))
    melody_program, chord_program = (int(p) for p in rng.choice(MELODIC_PROGRAMS, 2, replace=False))
    events: list[tuple[int, bytes]] = [(0, bytes([0xC0, melody_program])), (0, bytes([0xC1, chord_program]))]

    def note(channel: int, pitch: int, start: int, length: int, velocity: int) -> None:
        events.append((start, bytes([0x90 | channel, pitch, velocity])))
        events.append((start + length, bytes([0x80 | channel, pitch, 0])))

    for bar in range(0, beats, 4):  # a triad per bar
        degree = int(rng.integers(0, len(scale)))
        for step in (0, 2, 4):
            index = degree + step
            pitch = root + scale[index % len(scale)] + 12 * (index // len(scale))
            note(1, pitch, bar * TICKS, 4 * TICKS, int(rng.integers(50, 80)))
    tick, end = 0, beats * TICKS
    while tick < end:  # melody in eighths to halves, an octave up
        length = int(rng.choice([TICKS // 2, TICKS, 2 * TICKS]))
        index = int(rng.integers(0, 2 * len(scale)))
        pitch = root + 12 + scale[index % len(scale)] + 12 * (index // len(scale))
        note(0, pitch, tick, length, int(rng.integers(70, 110)))
        tick += length
    drums = bool(rng.random() < 0.5)
    if drums:
        for beat in range(beats):
            note(9, 36 if beat % 2 == 0 else 38, beat * TICKS, TICKS // 4, 90)  # kick and snare
            note(9, 42, beat * TICKS + TICKS // 2, TICKS // 4, 60)  # hi-hat
    description = (f"General MIDI programs {melody_program} and {chord_program}{' with drums' if drums else ''}, "
                   f"{scale_name} at {bpm} bpm")
    return midi_file(events, int(60e6 / bpm)), description


def render(seconds: float, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """`seconds` of a seeded piece at `rate`, mono, peak-normalised to a random level; and its description."""
    midi, description = compose(seconds, rng)
    with tempfile.TemporaryDirectory() as tmp:
        midi_path, wav_path = Path(tmp) / "piece.mid", Path(tmp) / "piece.wav"
        midi_path.write_bytes(midi)
        command = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(rate), "-F", str(wav_path), str(SOUNDFONT),
                   str(midi_path)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not wav_path.exists():
            raise WavTokenizerError(f"fluidsynth failed: {result.stderr.strip()[-300:]}")
        audio, got = sf.read(wav_path, dtype="float32", always_2d=True)
    if got != rate:
        raise WavTokenizerError(f"fluidsynth wrote {got} Hz, asked for {rate} Hz")
    audio = audio.mean(axis=1)
    n = int(seconds * rate)
    audio = np.pad(audio[:n], (0, max(0, n - len(audio))))
    peak = float(np.abs(audio).max())
    level = 10 ** (rng.uniform(-12.0, -2.0) / 20)
    return (audio * (level / peak) if peak > 1e-6 else audio).astype(np.float32), description
