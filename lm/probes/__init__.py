"""Semantic alignment probes between codec codes and text units (phones, words, text tokens), with baselines and an
HTML report."""

from .labels import forced_alignment, labels_at_centres
from .metrics import FrameTable, bootstrap, codebook_metrics, contingency_metrics, mapping_accuracy
from .report import write_report
from .runner import json_summary, run_probes

__all__ = ["FrameTable", "bootstrap", "codebook_metrics", "contingency_metrics", "forced_alignment",
           "json_summary", "labels_at_centres", "mapping_accuracy", "run_probes", "write_report"]
