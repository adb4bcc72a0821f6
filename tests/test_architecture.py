"""The import rules of docs/architecture.md."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

CORE = ["wavtokenizer_hf", "wavtokenizer_hf.cli", "wavtokenizer_hf.codec", "wavtokenizer_hf.inference",
        "wavtokenizer_hf.long_audio", "wavtokenizer_hf.tokenization", "wavtokenizer_hf.convert",
        "wavtokenizer_hf.file_jobs", "wavtokenizer_hf.default_codec", "wavtokenizer_hf.listing"]


def _imports(path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_the_tokenizing_core_imports_no_training_corpus_or_evaluation_module():
    script = (f"import importlib, sys\nfor name in {CORE!r}: importlib.import_module(name)\n"
              "print('\\n'.join(m for m in sys.modules if m.split('.')[:2][-1] in ('training', 'corpus', 'evaluation')"
              " and m.startswith('wavtokenizer_hf.')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == []


def test_scripts_are_thin():
    """Scripts parse arguments, call the packages and print: no classes, and short. The demo strings 14 stages
    together: one function each and one small context class."""
    for path in sorted((ROOT / "scripts").glob("*.py")):
        tree = ast.parse(path.read_text())
        classes = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        assert classes == (["Demo"] if path.name == "demo.py" else []), path.name
        limit = 360 if path.name == "demo.py" else 120
        assert len(path.read_text().splitlines()) <= limit, path.name


def test_the_packages_import_no_script_or_benchmark():
    offenders = []
    for package in ("wavtokenizer_hf", "lm"):
        for path in (ROOT / package).rglob("*.py"):
            bad = [n for n in _imports(path) if n.split(".")[0] in ("scripts", "benchmarks", "tests", "conftest")
                   or n.startswith("bench_")]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in bad]
    assert offenders == []
