"""What made an evaluation's numbers: the command, the package's commit, library versions, the processor and its
instruction sets, thread counts, the recogniser's settings, and a hash of every utterance's audio and text.
Evaluations are merged into one table only where all of it (but the command) agrees."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from ..errors import WavTokenizerError

LIBRARIES = ("torch", "torchaudio", "transformers", "numpy", "ctranslate2", "faster-whisper", "pystoi", "distillmos",
             "pesq", "pocketsphinx", "resemblyzer", "whisper-normalizer", "wavtokenizer-hf")
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "neon", "asimd")
NOT_COMPARED = ("command", "started")  # differ between any two runs; everything else must agree to merge


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def package_commit() -> str:
    """The git commit of this package's checkout, with `+dirty.HASH` when the package's files differ from it (HASH:
    of the diff and of untracked files in it, so two different sets of uncommitted changes never look alike); the
    installed version where the package is not a checkout."""
    root = Path(__file__).resolve().parents[2]
    git = lambda *args: subprocess.run(["git", *args], cwd=root, capture_output=True, check=True,  # noqa: E731
                                       timeout=30).stdout
    try:
        head = git("rev-parse", "HEAD").decode().strip()
        digest = hashlib.sha256(git("diff", "HEAD", "--", "wavtokenizer_hf"))
        untracked = git("ls-files", "--others", "--exclude-standard", "--", "wavtokenizer_hf").decode().split()
        for name in sorted(untracked):
            digest.update(name.encode() + (root / name).read_bytes())
        dirty = bool(untracked) or bool(git("diff", "HEAD", "--stat", "--", "wavtokenizer_hf").strip())
        return head + (f"+dirty.{digest.hexdigest()[:12]}" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"wavtokenizer-hf {_version('wavtokenizer-hf')}"


_COMMIT_AT_IMPORT: str | None = None


def commit_at_start() -> str:
    """`package_commit()` as it was when this module was first imported: the code the process runs, even when the
    checkout moves on during a long evaluation."""
    global _COMMIT_AT_IMPORT
    if _COMMIT_AT_IMPORT is None:
        _COMMIT_AT_IMPORT = package_commit()
    return _COMMIT_AT_IMPORT


def cpu() -> dict:
    """The processor's model name and which of `ISA_FLAGS` it has (Linux's /proc/cpuinfo; elsewhere the platform)."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            if key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {"model": model, "machine": platform.machine(), "isa": [f for f in ISA_FLAGS if f in flags]}


def collect(recognizer_settings: dict | None, extra: dict | None = None) -> dict:
    """The command, commit, versions, processor, threads and recogniser settings, plus `extra` (the evaluation's
    options and `utterance_hashes`)."""
    return {
        "command": " ".join(sys.argv),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit_at_start(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in LIBRARIES},
        "cpu": cpu(),
        "torch_threads": torch.get_num_threads(),
        "recognizer": recognizer_settings,
        **(extra or {}),
    }


def utterance_hashes(utterances) -> dict[str, dict]:
    """id -> SHA-256 of its 24 kHz float32 audio and of its reference text (None without text)."""
    return {u.id: {"audio": u.audio_sha256(), "text": u.text_sha256()} for u in utterances}


def model_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over a model's parameters and buffers (names and float32 values, in name order): the same weights give
    the same hash whatever file or folder they were loaded from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def differences(a: dict, b: dict) -> list[str]:
    """The fields (dotted) in which two provenances differ, `NOT_COMPARED` left out."""
    out = []
    for key in sorted(set(a) | set(b)):
        if key in NOT_COMPARED:
            continue
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict) and key != "utterances":
            out += [f"{key}.{sub}" for sub in differences(x, y)]
        elif x != y:
            out.append(key)
    return out


def require_same(a: dict | None, b: dict | None, what: str) -> None:
    """Raise unless two evaluations' provenances agree (each evaluation must carry one)."""
    if not a or not b:
        raise WavTokenizerError(f"cannot merge {what}: an evaluation without provenance (made before it was recorded) "
                                "cannot be shown to match; score both codecs in one run")
    fields = differences(a, b)
    if fields:
        detail = "; ".join(f"{f}: {_dig(a, f)!r} vs {_dig(b, f)!r}" for f in fields[:4] if f != "utterances")
        raise WavTokenizerError(f"cannot merge {what}: they differ in {', '.join(fields)}"
                                + (f" ({detail})" if detail else "") + "; score both codecs in one run")


def _dig(record: dict, dotted: str):
    for part in dotted.split("."):
        record = record.get(part) if isinstance(record, dict) else None
    return record


commit_at_start()  # at import, before any evaluation starts
