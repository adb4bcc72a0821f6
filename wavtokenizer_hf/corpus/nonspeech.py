"""Non-speech audio rendered from a seed, so a codec does not see speech only: short pieces of synthesised music
(several timbres, chords and melodies, percussion) and noises (white, pink, brown, bursts, hum)."""

from __future__ import annotations

import numpy as np

SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10], "pentatonic": [0, 2, 4, 7, 9]}


def _envelope(n: int, rate: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / rate
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def _note(freq: float, seconds: float, rate: int, timbre: str, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * rate)
    t = np.arange(n) / rate
    if timbre == "pluck":  # Karplus-Strong string
        period = max(2, int(rate / freq))
        block = rng.uniform(-1, 1, period)
        blocks = []
        for _ in range(n // period + 1):  # one period at a time: each pass low-passes the delay line
            blocks.append(block)
            block = 0.996 * 0.5 * (block + np.roll(block, -1))
        return np.concatenate(blocks)[:n]
    harmonics = {"sine": [1.0], "organ": [1.0, 0.5, 0.25, 0.12], "reed": [1.0, 0.0, 0.33, 0.0, 0.2, 0.0, 0.14],
                 "bell": [1.0, 0.6, 0.0, 0.4, 0.0, 0.0, 0.25]}[timbre]
    vibrato = 1 + 0.004 * np.sin(2 * np.pi * rng.uniform(4, 6) * t)
    tone = sum(a * np.sin(2 * np.pi * freq * (k + 1) * vibrato * t) for k, a in enumerate(harmonics) if a)
    decay = {"sine": 0.8, "organ": 2.0, "reed": 1.2, "bell": 0.5}[timbre]
    return tone * _envelope(n, rate, 0.01, decay)


def render_music(seconds: float, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A melody over chords with optional percussion; returns audio in [-1, 1] and a description."""
    n = int(seconds * rate)
    out = np.zeros(n)
    scale_name = str(rng.choice(list(SCALES)))
    scale = SCALES[scale_name]
    root = 48 + int(rng.integers(0, 12))
    tempo = float(rng.uniform(70, 160))
    beat = 60.0 / tempo
    melody_timbre, chord_timbre = (str(x) for x in rng.choice(["sine", "organ", "reed", "bell", "pluck"], 2))
    position = 0.0
    while position < seconds:
        degree = int(rng.integers(0, len(scale)))
        chord = [root + scale[(degree + k) % len(scale)] + 12 * ((degree + k) // len(scale)) for k in (0, 2, 4)]
        length = beat * int(rng.choice([2, 4]))
        start = int(position * rate)
        for midi in chord:
            note = 0.12 * _note(440 * 2 ** ((midi - 69) / 12), min(length, seconds - position), rate, chord_timbre, rng)
            out[start:start + len(note)] += note
        sub = 0.0
        while sub < length and position + sub < seconds:
            midi = root + 12 + scale[int(rng.integers(0, len(scale)))]
            dur = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            note = 0.3 * _note(440 * 2 ** ((midi - 69) / 12), min(dur, seconds - position - sub), rate, melody_timbre, rng)
            s = int((position + sub) * rate)
            out[s:s + len(note)] += note[: n - s]
            sub += dur
        position += length
    drums = bool(rng.integers(0, 2))
    if drums:
        for k in range(int(seconds / beat)):
            s = int(k * beat * rate)
            hit = rng.normal(0, 1, int(0.08 * rate)) * _envelope(int(0.08 * rate), rate, 0.001, 0.02)
            if k % 2 == 0:
                t = np.arange(int(0.15 * rate)) / rate
                hit = np.pad(hit, (0, len(t) - len(hit))) * 0.3 + np.sin(2 * np.pi * 60 * t * (1 - t)) * np.exp(-t / 0.05)
            out[s:s + len(hit)] += 0.3 * hit[: n - s]
    description = f"synth music: {scale_name} scale, {tempo:.0f} bpm, {melody_timbre} over {chord_timbre}" + (
        ", drums" if drums else "")
    return _normalize(out, rng), description


def render_noise(seconds: float, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    n = int(seconds * rate)
    kind = str(rng.choice(["white", "pink", "brown", "bursts", "hum"]))
    if kind in ("white", "pink", "brown"):
        spectrum = np.fft.rfft(rng.normal(0, 1, n))
        freqs = np.maximum(np.fft.rfftfreq(n, 1 / rate), 1.0)
        spectrum /= {"white": 1.0, "pink": np.sqrt(freqs), "brown": freqs}[kind]
        out = np.fft.irfft(spectrum, n)
    elif kind == "bursts":
        out = np.zeros(n)
        for _ in range(int(seconds * rng.uniform(2, 6))):
            s, length = int(rng.integers(0, n)), int(rng.uniform(0.01, 0.2) * rate)
            out[s:s + length] += rng.normal(0, 1, length)[: n - s] * _envelope(length, rate, 0.002, 0.05)[: n - s]
    else:
        t = np.arange(n) / rate
        base = float(rng.choice([50.0, 60.0]))
        out = sum(np.sin(2 * np.pi * base * k * t) / k for k in range(1, 8)) + 0.05 * rng.normal(0, 1, n)
    return _normalize(out, rng), f"noise: {kind}"


def _normalize(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    peak = float(np.abs(audio).max()) or 1.0
    return (audio / peak * rng.uniform(0.3, 0.9)).astype(np.float32)
