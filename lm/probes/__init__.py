"""Semantic alignment probes between codec codes and text units (phones, words, text tokens), with baselines and an
HTML report."""

from .labels import SILENCE, forced_alignment, labels_at_centres
from .metrics import FrameTable, bootstrap, codebook_metrics, contingency_metrics, mapping_accuracy, paired_bootstrap
from .report import write_report
from .result import ProbeResult, ProbeRow, TokenVocabulary, json_summary
from .runner import run_probes

__all__ = ["SILENCE", "FrameTable", "ProbeResult", "ProbeRow", "TokenVocabulary", "bootstrap", "codebook_metrics",
           "contingency_metrics", "forced_alignment", "json_summary", "labels_at_centres", "mapping_accuracy",
           "paired_bootstrap", "run_probes", "write_report"]
