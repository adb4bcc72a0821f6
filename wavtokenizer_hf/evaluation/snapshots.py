"""Quality against training time: score a codec run's stock-loadable snapshots (`run.export_every`) on one test set."""

from __future__ import annotations

from pathlib import Path

from ..errors import WavTokenizerError
from ..listing import read_jsonl
from .runner import CodecReconstructor, Utterance, evaluate

CURVE_METRICS = ("cer", "wer", "cer_capped", "wer_capped", "stoi", "mel_distance", "f0_gross_error", "vuv_f1", "vuv_mcc", "phase_advance_error",
                 "flagged", "codebook_used")


def _minutes_at(log_path: Path) -> dict[int, float]:
    """Minutes on the run's clock at each logged step (counted from the start of the run's latest session); a
    timed snapshot's export record (`run.export_every_minutes`) and the run's stop record win over the nearest
    logged step."""
    records = read_jsonl(log_path)
    minutes = {r["step"]: r["seconds"] / 60 for r in records if "step" in r and "seconds" in r}
    minutes.update({r["step"]: r["minutes"] for r in records if r.get("event") in ("export", "stop") and "minutes" in r})
    return minutes


def score_snapshots(run_dir: str | Path, utterances: list[Utterance], final_step: int | None = None,
                    with_asr: bool = True, asr_variants: int = 0) -> list[dict]:
    """One row per snapshot `run_dir/stepNNNNNNN` (and `run_dir/final` if `final_step` is given): step, minutes
    of training (from `log.jsonl`) and the metrics of `CURVE_METRICS` (the recogniser's CER and WER where one is
    installed, Whisper first; no MOS, no speaker similarity). Score on a validation split: `best_snapshot` picks
    from these rows."""
    run_dir = Path(run_dir)
    log_path = run_dir / "log.jsonl"
    if not log_path.exists():
        raise WavTokenizerError(f"{run_dir}: no log.jsonl; is this a codec training run?")
    snapshots = [(int(p.name[4:]), p) for p in sorted(run_dir.glob("step*")) if p.name[4:].isdigit()]
    if final_step is not None and (run_dir / "final").exists():
        snapshots.append((final_step, run_dir / "final"))
    if not snapshots:
        raise WavTokenizerError(f"{run_dir}: no snapshots (train with run.export_every=N)")
    minutes = _minutes_at(log_path)
    rows = []
    for step, path in snapshots:
        logged = [s for s in minutes if s <= step]
        summary = evaluate([CodecReconstructor(path, name=path.name)], utterances, with_asr=with_asr,
                           with_mos=False, asr_variants=asr_variants, with_speaker=False)["codecs"][path.name]["summary"]
        rows.append({"step": step, "minutes": minutes[max(logged)] if logged else None,
                     **{key: summary.get(key) for key in CURVE_METRICS}})
    return rows


def best_snapshot(rows: list[dict]) -> dict:
    """The row to keep: lowest capped CER (a frame-rate buzz or silence cannot lower it, and one recogniser loop
    cannot raise it past the utterance's length), then capped WER, then the later step; STOI where no recogniser
    scored the rows. The rows must come from a validation split, never from the test set reported afterwards."""
    if not rows:
        raise WavTokenizerError("no snapshot rows to choose from")
    if all(r.get("cer_capped") is not None for r in rows):
        return min(rows, key=lambda r: (r["cer_capped"], r["wer_capped"], -r["step"]))
    return max(rows, key=lambda r: (r.get("stoi") or 0.0, r["step"]))
