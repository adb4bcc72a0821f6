"""Rebuild the test split of the reference 10-hour corpus (docs/corpus_build/) alone, as that build made it.

That build split each split's hours equally among its speakers, capping recorded speakers without handing the rest
to the others (the plan does that since commit 653a54c). Items draw their seeds (pitch, speed, noise floor) from one
generator in planning order, so the current share rule gives the test split other draws; this script plans with the
reference build's rule, then synthesises only the test split (`build_corpus(..., splits=("test",))`).

  python benchmarks/rebuild_reference_test_split.py --out runs/voices_test_ref

Checked against the hashes the earlier confirmation recorded (docs/evaluations/phone_teacher_candidate/test): on its
120 utterances every id and text is the same and 100 of 120 waveforms are identical; the 20 others are `slt` through
Flite and Festival, whose synthesis on this machine differs from the reference machine's.

A new test split of the same four unseen speakers, on sentences none of an earlier split's rows read (for a
confirmation once the earlier split's utterances have all been scored): another seed draws other sentences, pitch,
speed and noise, and `--unseen-by` leaves out every sentence of the given corpora.

  python benchmarks/rebuild_reference_test_split.py --seed 1 --unseen-by runs/voices_test_ref --out runs/voices_test_s1

More unseen speakers than the four (`--test-speakers`, in place of the catalogue's): voices no training corpus of
the shipped codec's lineage heard (the non-free MBROLA and RHVoice ones, left out of `--licence free` corpora).

  python benchmarks/rebuild_reference_test_split.py --seed 2 --unseen-by runs/voices_test_ref runs/voices_test_s1 \
      --test-speakers slt joe bdl mbrola-de5 mbrola-us2 mbrola-us3 evgeniy lyubov mbrola-fr4 --out runs/voices_test_wide
"""

import argparse
from pathlib import Path

from wavtokenizer_hf.corpus import builder, plan
from wavtokenizer_hf.errors import WavTokenizerError, run_script


def reference_shares(total: float, members: list[str], caps: dict[str, float]) -> dict[str, float]:
    """The reference build's rule: an equal share each, a recorded speaker capped at what exists."""
    share = total / max(len(members), 1)
    return {name: min(share, caps.get(name, float("inf"))) for name in members}


def sentences_of(corpora: list[Path]) -> frozenset[str]:
    """Every text of every split of the saved corpora (audio left undecoded)."""
    from datasets import load_from_disk

    texts: set[str] = set()
    for path in corpora:
        if not (path / "dataset_dict.json").exists():
            raise WavTokenizerError(f"--unseen-by {path}: not a saved corpus (no dataset_dict.json there)")
        for split in load_from_disk(str(path)).values():
            texts.update(text for text in split.select_columns(["text"])["text"] if text)
    return frozenset(texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/voices_test_ref"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="0: the reference build's split")
    parser.add_argument("--unseen-by", type=Path, nargs="*", default=[],
                        help="saved corpora whose sentences (every split's) no utterance of this split reads")
    parser.add_argument("--test-speakers", nargs="*", default=[],
                        help="the split's speakers instead of the catalogue's four (each with an English voice here)")
    args = parser.parse_args()
    plan._equal_shares = reference_shares
    builder.build_corpus(args.out, hours=10, seed=args.seed, jobs=args.jobs, splits=("test",), score_test=0,
                         exclude_texts=sentences_of(args.unseen_by), test_speakers=tuple(args.test_speakers))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_script(main)
