"""What a probe run returns: one row per codec or baseline, and the run's settings. In-memory pieces (the
utterances, the codes) stay attributes; `to_json` is the part `probe_results.json` holds."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .codes import CodedSet
from .data import ProbeUtterance


def _plain(value: Any) -> Any:
    """JSON-able copy: numpy scalars and arrays as Python numbers and lists, dict keys as strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class ProbeRow:
    """The metrics of one set of codes against the frame labels."""

    name: str
    kind: str  # codec | bpe (audio-BPE tokens as frame labels) | baseline
    step: int | None
    codebook_size: int
    frames: int
    utterances: int
    codebook: dict[str, float]  # codebook_used, code_entropy_bits, code_perplexity
    metrics: dict[str, dict] = field(default_factory=dict)  # name -> value, low, high, bootstrap_shift
    difference: dict[str, dict] = field(default_factory=dict)  # this row minus the reference row, paired
    word_association: dict | None = None
    token_association: dict | None = None
    heatmap_labels: list[str] = field(default_factory=list)
    heatmap_counts: np.ndarray | None = None  # labels x codes
    usage_counts: np.ndarray | None = None
    word_pairs: list[tuple[int, str]] = field(default_factory=list)  # (code, word) per frame inside words

    def to_json(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "step": self.step, "codebook_size": self.codebook_size,
               "frames": self.frames, "utterances": self.utterances, "metrics": self.metrics,
               "difference_to_reference": self.difference, **self.codebook}
        for key in ("word_association", "token_association"):
            value = getattr(self, key)
            if value is not None:
                out[key] = {k: v for k, v in value.items() if k != "partners"}
        return _plain(out)


@dataclass
class TokenVocabulary:
    """An acoustic BPE vocabulary applied to the reference codec's codes (`lm.probes.bpe`): its frame-level row's
    name, its tokens over the probed utterances, and its most frequent multi-code tokens (`top_tokens`)."""

    name: str
    path: str
    model_type: str
    vocab_size: int
    codebook_size: int
    tokens: int  # token occurrences over the probed utterances
    frames: int
    multi_code_frames: float  # share of the frames inside multi-code tokens
    within_one_phone: float  # share of the multi-code occurrences whose frames carry one label
    within_one_phone_chance: float  # the same for spans of their lengths at random places in their utterances
    top_tokens: list[dict] = field(default_factory=list)

    @property
    def codes_per_token(self) -> float:
        return self.frames / self.tokens if self.tokens else float("nan")

    def to_json(self) -> dict:
        return _plain({**dataclasses.asdict(self), "codes_per_token": self.codes_per_token})


@dataclass
class ProbeResult:
    """A probe run: settings, rows (the first is the reference the paired differences are taken to), notes."""

    source: str
    split: str
    seconds: float
    drop_silence: bool
    bootstrap_rounds: int
    null_draws: int
    rows: list[ProbeRow]
    intervals: str  # what the intervals are
    baseline_fit: str  # what the learned baselines were fitted on
    notes: list[str] = field(default_factory=list)
    lm_embeddings: dict | None = None
    audio_bpe: list[TokenVocabulary] = field(default_factory=list)
    probe_set: list[ProbeUtterance] = field(default_factory=list, repr=False)
    coded: list[CodedSet] = field(default_factory=list, repr=False)

    @property
    def utterances(self) -> int:
        return len(self.probe_set)

    @property
    def reference(self) -> str:
        return self.rows[0].name

    def to_json(self) -> dict:
        out = {"source": self.source, "split": self.split, "utterances": self.utterances, "seconds": self.seconds,
               "drop_silence": self.drop_silence, "bootstrap_rounds": self.bootstrap_rounds,
               "null_draws": self.null_draws, "reference": self.reference, "intervals": self.intervals,
               "baseline_fit": self.baseline_fit, "notes": list(self.notes),
               "rows": [row.to_json() for row in self.rows]}
        if self.lm_embeddings is not None:
            out["lm_embeddings"] = _plain(self.lm_embeddings)
        if self.audio_bpe:
            out["audio_bpe"] = [vocabulary.to_json() for vocabulary in self.audio_bpe]
        return _plain(out)

    def __getitem__(self, key: str) -> Any:
        warnings.warn("run_probes returns a ProbeResult: use its attributes or to_json()[key]", DeprecationWarning,
                      stacklevel=2)
        return self.to_json()[key]


def json_summary(result: ProbeResult) -> dict:
    """The result without arrays and in-memory objects (what `probe_results.json` holds)."""
    return result.to_json()
