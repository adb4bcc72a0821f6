"""How much of each speaker's voicing a codec keeps, against the speaker's median F0, from one
`scripts/evaluate_codec.py` run and the corpus's `corpus_summary.json` (which records each speaker's median F0).

  python benchmarks/voicing_by_f0.py runs/wide_shipped --codec default_codec --corpus runs/voices_test_wide

Per speaker: median F0, utterances, capped CER of the originals and of the codec (when the run transcribed), voiced
frames of the originals and of the codec, and the share kept (codec over originals); then the median share kept by
F0 band (`--bands 100 150`: under 100 Hz, 100-150 Hz, 150 Hz and over).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import median

from wavtokenizer_hf.errors import WavTokenizerError, run_script


def speaker_rows(evaluation: dict, codec: str, median_f0: dict[str, float]) -> list[dict]:
    """One row per speaker with a known median F0 and voiced originals, sorted by that F0."""
    if codec not in evaluation["codecs"]:
        raise WavTokenizerError(f"no codec {codec!r} in this evaluation (it has {', '.join(evaluation['codecs'])})")
    originals = (evaluation.get("original") or {}).get("per_utterance") or {}
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in evaluation["codecs"][codec]["per_utterance"]:
        if row.get("voiced_share") is None or row.get("voiced_share_reference") is None:
            continue
        total = sums[row["speaker"]]
        total["utterances"] += 1
        total["voiced"] += row["voiced_share"]
        total["voiced_reference"] += row["voiced_share_reference"]
        original = originals.get(row["id"])
        if original is not None and row.get("chars"):
            total["chars"] += row["chars"]
            total["char_errors"] += min(row["char_errors"], row["chars"])
            total["original_char_errors"] += min(original["char_errors"], original["chars"])
    rows = []
    for speaker, total in sums.items():
        if speaker not in median_f0 or not total["voiced_reference"]:
            continue
        n = total["utterances"]
        rows.append({"speaker": speaker, "median_f0_hz": median_f0[speaker], "utterances": int(n),
                     "cer_capped_original": total["original_char_errors"] / total["chars"] if total["chars"] else None,
                     "cer_capped": total["char_errors"] / total["chars"] if total["chars"] else None,
                     "voiced_reference": total["voiced_reference"] / n, "voiced": total["voiced"] / n,
                     "voicing_kept": total["voiced"] / total["voiced_reference"]})
    return sorted(rows, key=lambda r: (r["median_f0_hz"], r["speaker"]))


def band_summary(rows: list[dict], edges: list[float]) -> list[dict]:
    """Median share of voicing kept per F0 band: below edges[0], [edges[0], edges[1]), ..., edges[-1] and over."""
    bounds = [float("-inf"), *sorted(edges), float("inf")]
    bands = []
    for low, high in zip(bounds, bounds[1:]):
        kept = [r["voicing_kept"] for r in rows if low <= r["median_f0_hz"] < high]
        bands.append({"low_hz": low, "high_hz": high, "speakers": len(kept),
                      "median_voicing_kept": median(kept) if kept else None})
    return bands


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluation", type=Path, help="a folder with evaluation.json, or the file")
    parser.add_argument("--codec", required=True)
    parser.add_argument("--corpus", type=Path, required=True, help="the saved corpus (its corpus_summary.json)")
    parser.add_argument("--bands", type=float, nargs="+", default=[100.0, 150.0], help="F0 band edges, Hz")
    args = parser.parse_args()
    path = args.evaluation / "evaluation.json" if args.evaluation.is_dir() else args.evaluation
    summary = args.corpus / "corpus_summary.json"
    for needed in (path, summary):
        if not needed.exists():
            raise WavTokenizerError(f"{needed}: not found")
    speakers = json.loads(summary.read_text())["speakers"]
    median_f0 = {name: info["median_f0_hz"] for name, info in speakers.items() if info.get("median_f0_hz")}
    rows = speaker_rows(json.loads(path.read_text()), args.codec, median_f0)
    if not rows:
        raise WavTokenizerError(f"no speaker of {path} has a median F0 in {summary}")
    print("| speaker (median F0) | utterances | capped CER: originals | capped CER: codec | voiced: originals | "
          "voiced: codec | voicing kept |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| `{r['speaker']}` ({r['median_f0_hz']:.0f} Hz) | {r['utterances']} | {_percent(r['cer_capped_original'])} "
              f"| {_percent(r['cer_capped'])} | {r['voiced_reference']:.0%} | {r['voiced']:.0%} | {r['voicing_kept']:.0%} |")
    print()
    for band in band_summary(rows, args.bands):
        print(f"- F0 [{band['low_hz']:.0f}, {band['high_hz']:.0f}) Hz: {band['speakers']} speakers, median voicing kept "
              f"{_percent(band['median_voicing_kept'])}")
    return 0


if __name__ == "__main__":
    run_script(main)
