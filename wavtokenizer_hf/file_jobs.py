"""Run one per-file job (encode, decode, reconstruct) over a file or a directory tree, with a progress bar and a
summary of what was done and what was skipped, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from .atomic import is_temporary
from .errors import WavTokenizerError


@dataclass
class JobSummary:
    done: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def report(self) -> str:
        lines = [
            f"done: {len(self.done)} file(s), skipped: {len(self.existing) + len(self.failed)} "
            f"({len(self.existing)} already written, {len(self.failed)} failed)"
        ]
        lines += [f"  skipped {path}: output exists (use --overwrite to redo it)" for path in self.existing]
        # errors already name their file; name it here only when they do not
        lines += [f"  failed {reason if reason.startswith(str(path)) else f'{path}: {reason}'}"
                  for path, reason in self.failed]
        return "\n".join(lines)


def output_path_for(input_path: Path, input_root: Path, output_root: Path, in_suffix: str, out_suffix: str) -> Path:
    relative = input_path.relative_to(input_root)
    name = relative.name[: -len(in_suffix)] if in_suffix and relative.name.endswith(in_suffix) else relative.stem
    return output_root / relative.parent / (name + out_suffix)


def run_job(
    job: Callable[[Path, Path], None],
    input_path: Path,
    output_path: Path,
    accepts: Callable[[Path], bool],
    in_suffix: str,
    out_suffix: str,
    overwrite: bool,
    desc: str,
) -> JobSummary:
    """Apply `job(input, output)` to one file, or to every accepted file under a directory (recursively).

    A single file's error is raised; in directory mode each failing file is skipped with its reason (any exception
    but an interrupt: a file that exhausts memory fails alone), and existing outputs are kept (so an interrupted run
    can simply be started again).
    """
    summary = JobSummary()
    if not input_path.exists():
        raise WavTokenizerError(f"input not found: {input_path}")
    if input_path.is_file():
        if output_path.is_dir():
            output_path = output_path / output_path_for(input_path, input_path.parent, Path(), in_suffix, out_suffix)
        job(input_path, output_path)
        summary.done.append(output_path)
        return summary

    if output_path.exists() and not output_path.is_dir():
        raise WavTokenizerError(f"input {input_path} is a directory, so the output {output_path} must be one too")
    files = sorted(p for p in input_path.rglob("*") if p.is_file() and accepts(p) and not is_temporary(p))
    if not files:
        raise WavTokenizerError(f"no input files found under {input_path}")
    targets = {path: output_path_for(path, input_path, output_path, in_suffix, out_suffix) for path in files}
    by_target: dict[Path, list[Path]] = {}
    for path, target in targets.items():
        by_target.setdefault(target, []).append(path)
    collisions = {t: paths for t, paths in by_target.items() if len(paths) > 1}
    if collisions:  # e.g. a.wav and a.flac: one would be skipped or silently replace the other
        listed = "; ".join(f"{', '.join(str(p.relative_to(input_path)) for p in paths)} -> {t.name}"
                           for t, paths in list(collisions.items())[:5])
        raise WavTokenizerError(f"{len(collisions)} output name(s) would be written by more than one input file "
                                f"({listed}); rename or move those inputs")
    for path in tqdm(files, desc=desc, unit="file"):
        target = targets[path]
        if target.exists() and not overwrite:
            summary.existing.append(path)
            continue
        try:
            job(path, target)
        except WavTokenizerError as err:
            summary.failed.append((path, str(err)))
        except Exception as err:  # noqa: BLE001 - memory, a CUDA error, a malformed file: this file fails, not the run
            summary.failed.append((path, f"{type(err).__name__}: {str(err).strip() or 'no message'}"))
        else:
            summary.done.append(target)
    return summary
