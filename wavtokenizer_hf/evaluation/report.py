"""The evaluation as markdown: codecs side by side, each rate beside the originals' rate of the same kind (capped
with capped), the recogniser's spread, MOS only with the flags beside it, a breakdown by speaker, and paired
differences with bootstrap intervals."""

from __future__ import annotations

from ..listing import or_na
from .paired import paired_table

ROWS = [
    ("mel_distance", "mel L1 distance (log, within 60 dB of the reference's peak; lower is better; speech)", "{:.3f}"),
    ("nonspeech_mel_distance", "mel L1 distance on music and noise", "{:.3f}"),
    ("stft_distance", "multi-resolution STFT distance (lower is better)", "{:.3f}"),
    ("pesq_wb", "PESQ wide-band (1-4.6)", "{:.2f}"),
    ("stoi", "STOI (0-1)", "{:.3f}"),
    ("speaker_similarity", "speaker similarity (cosine of voice embeddings, 1 = same voice)", "{:.3f}"),
    ("vuv_f1", "voiced/unvoiced F1 (reference as truth)", "{:.3f}"),
    ("vuv_mcc", "voiced/unvoiced agreement (Matthews correlation)", "{:.3f}"),
    ("f0_gross_error", "F0 gross errors (unvoiced or > 50 cents off)", "{:.1%}"),
    ("f0_fine_rmse_cents", "F0 RMSE of the other frames, cents", "{:.1f}"),
    ("f0_rmse_cents", "F0 RMSE, cents (voiced in both)", "{:.1f}"),
    ("f0_spread_ratio", "F0 spread, output / reference (a buzz: ~0)", "{:.2f}"),
    ("phase_advance_error", "phase advance error per frame, radians (0 exact, 1.57 a frozen phase)", "{:.3f}"),
    ("mos", "DistillMOS (1-5; no reference: read with the flagged share)", None),
    ("wer", "WER on the reconstruction", "{:.1%}"),
    ("wer_ratio", "WER / the originals' WER", "{:.2f}x"),
    ("cer", "CER on the reconstruction", "{:.1%}"),
    ("cer_ratio", "CER / the originals' CER", "{:.2f}x"),
    ("wer_capped", "WER, each utterance's errors capped at its length", "{:.1%}"),
    ("wer_capped_ratio", "capped WER / the originals' capped WER", "{:.2f}x"),
    ("wer_capped_spread", "capped WER over the recogniser's perturbed readings (lowest-highest)", "spread"),
    ("cer_capped", "CER, each utterance's errors capped at its length", "{:.1%}"),
    ("cer_capped_ratio", "capped CER / the originals' capped CER", "{:.2f}x"),
    ("cer_capped_spread", "capped CER over the recogniser's perturbed readings (lowest-highest)", "spread"),
    ("flagged", "outputs flagged (silent, unvoiced, monotone, unrelated, no speech heard, length, dropout)",
     "{:.1%}"),
    ("codebook_used", "codebook entries used", "{:.1%}"),
    ("code_perplexity", "code perplexity", "{:.0f}"),
    ("bits_per_second", "bits per second", "{:.0f}"),
]
BY_SPEAKER = [("cer_capped", "capped CER", "{:.0%}"), ("stoi", "STOI", "{:.2f}"),
              ("speaker_similarity", "speaker sim.", "{:.2f}"), ("f0_gross_error", "F0 gross", "{:.0%}"),
              ("voiced_share", "voiced", "{:.0%}")]
MOS_BY_SPEAKER = ("mos", "DistillMOS", "{:.2f}")  # a column only where it was scored


def _cell(summary: dict, key: str, fmt: str | None) -> str:
    value = summary.get(key)
    if fmt is None:  # MOS: never without the share of outputs flagged as degenerate
        if value is None:
            return "n/a"
        return f"{value:.2f} ({or_na(summary.get('flagged'), '{:.0%}')} flagged)"
    if fmt == "spread":
        return "n/a" if not value else f"{value[0]:.1%}-{value[1]:.1%}"
    return or_na(value, fmt)


def header(results: dict) -> str:
    """What the table was measured on, by what, and the originals' own scores."""
    original = results["original"]
    recognizer = results.get("recognizer") or "no recogniser"
    variants = (results.get("provenance") or {}).get("asr_variants")
    spread = original.get("wer_capped_spread")
    lines = [
        f"Test set: {results['utterances']} utterances, {results['seconds']} s; "
        f"{results.get('transcribed', 'transcripts not counted')}. "
        f"Original audio: WER {or_na(original['wer'], '{:.1%}')} (capped {or_na(original.get('wer_capped'), '{:.1%}')}"
        + (f", {spread[0]:.1%}-{spread[1]:.1%} over perturbed readings" if spread else "")
        + f"), CER {or_na(original.get('cer'), '{:.1%}')} (capped {or_na(original.get('cer_capped'), '{:.1%}')}), "
        f"MOS {or_na(original['mos'], '{:.2f}')}. WER and CER by {recognizer}"
        + (f", each utterance read once as is and {variants} times under inaudible perturbations" if variants else "")
        + ".",
    ]
    for note in results.get("test_set_notes") or []:
        lines.append(f"- test set: {note}")
    return "\n".join(lines)


def _speech_rows(results: dict, codec: str, members: set[str]) -> list[dict]:
    return [r for r in results["codecs"][codec]["per_utterance"] if r["id"] in members and r["kind"] == "speech"]


def speaker_table(results: dict, by: str = "speaker") -> str:
    """Per speaker (`by="source"`: per source), a few headline metrics for each codec (DistillMOS where it was
    scored), and the share of frames voiced in the originals beside each codec's (a codec that whispers a voice shows
    there); empty where there are fewer than two groups."""
    names = [n for n in results["codecs"] if n != "identity"]
    if not names:
        return ""
    other = "source" if by == "speaker" else "speaker"
    groups: dict[str, list[str]] = {}
    for uid, group in (results.get("groups") or {}).items():
        groups.setdefault(group.get(by) or group.get(other) or "(none)", []).append(uid)
    if len(groups) < 2:
        return ""
    from .runner import _mean, _pooled

    scored = any(r.get("mos") is not None for n in names for r in results["codecs"][n]["per_utterance"])
    columns = [*BY_SPEAKER, MOS_BY_SPEAKER] if scored else BY_SPEAKER
    head = [f"{label}: {name}" for name in names for _, label, _ in columns]
    lines = [f"By {by} (or {other} where there is no {by}):", "",
             f"| {by} | utterances | voiced: originals | " + " | ".join(head) + " |",
             "| --- | --- | --- |" + " --- |" * len(head)]
    for group in sorted(groups, key=lambda g: (-len(groups[g]), g)):
        members = set(groups[group])
        cells = [or_na(_mean([r.get("voiced_share_reference") for r in _speech_rows(results, names[0], members)]),
                       "{:.0%}")]
        for name in names:
            rows = _speech_rows(results, name, members)
            for key, _, fmt in columns:
                value = (_pooled(rows, "char_errors", "chars", capped=True) if key == "cer_capped"
                         else _mean([r.get(key) for r in rows]))
                cells.append(or_na(value, fmt))
        label = group.split(" (")[0].split(", ")[0]  # a corpus source names its licence after its program
        lines.append(f"| {label} | {len(members)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(results: dict) -> str:
    names = list(results["codecs"])
    lines = [header(results), "", "| metric | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for key, label, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(results["codecs"][n]["summary"], key, fmt) for n in names) + " |")
    table = "\n".join(lines) + "\n"
    by_speaker = speaker_table(results)
    codecs = [n for n in names if n != "identity"]
    return (table + ("\n" + by_speaker if by_speaker else "")
            + ("\n" + paired_table(results, codecs[0]) if len(codecs) > 1 else ""))
