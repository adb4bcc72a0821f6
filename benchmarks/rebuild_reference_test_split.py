"""Rebuild the test split of the reference 10-hour corpus (docs/corpus_build/) alone, as that build made it.

That build split each split's hours equally among its speakers, capping recorded speakers without handing the rest
to the others (the plan does that since commit 653a54c). Items draw their seeds (pitch, speed, noise floor) from one
generator in planning order, so the current share rule gives the test split other draws; this script plans with the
reference build's rule, then synthesises only the test split (`build_corpus(..., splits=("test",))`).

  python benchmarks/rebuild_reference_test_split.py --out runs/voices_test_ref

Checked against the hashes the earlier confirmation recorded (docs/evaluations/phone_teacher_candidate/test): on its
120 utterances every id and text is the same and 100 of 120 waveforms are identical; the 20 others are `slt` through
Flite and Festival, whose synthesis on this machine differs from the reference machine's.
"""

import argparse
from pathlib import Path

from wavtokenizer_hf.corpus import builder, plan
from wavtokenizer_hf.errors import run_script


def reference_shares(total: float, members: list[str], caps: dict[str, float]) -> dict[str, float]:
    """The reference build's rule: an equal share each, a recorded speaker capped at what exists."""
    share = total / max(len(members), 1)
    return {name: min(share, caps.get(name, float("inf"))) for name in members}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/voices_test_ref"))
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    plan._equal_shares = reference_shares
    builder.build_corpus(args.out, hours=10, seed=0, jobs=args.jobs, splits=("test",), score_test=0)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_script(main)
