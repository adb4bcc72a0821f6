"""lm.probes as a package: no import circle, the report reads results (not the runner), and a result is a dataclass
whose JSON part holds no in-memory objects."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import numpy as np

from lm.probes.codes import CodedSet
from lm.probes.result import ProbeResult, ProbeRow, json_summary

PROBES = Path(__file__).resolve().parents[1] / "lm" / "probes"


def probes_imports() -> dict[str, set[str]]:
    """Module -> the lm.probes modules it imports anywhere (top level or inside functions)."""
    modules = {p.stem for p in PROBES.glob("*.py")} - {"__init__"}
    graph = {}
    for name in modules:
        found = set()
        for node in ast.walk(ast.parse((PROBES / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    found |= {node.module} if node.module else {a.name for a in node.names}
                elif node.module and node.module.startswith("lm.probes."):
                    found.add(node.module.split(".")[2])
                elif node.module == "lm.probes":
                    found |= {a.name for a in node.names} & modules
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("lm.probes.")}
        graph[name] = found & modules
    return graph


def test_the_probes_modules_import_each_other_without_a_circle():
    graph = probes_imports()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import circle: {' -> '.join(path + (name,))}"
        if name not in done:
            for other in graph[name]:
                visit(other, path + (name,))
            done.add(name)

    for name in graph:
        visit(name, ())
    assert "runner" not in graph["report"] and "runner" not in graph["embeddings"]
    assert not any("runner" in imports for name, imports in graph.items() if name != "runner")


def test_a_probe_result_is_a_dataclass_whose_json_holds_only_plain_data():
    interval = {"value": np.float64(0.5), "low": 0.4, "high": 0.6, "bootstrap_shift": 0.0}
    row = ProbeRow("codec", "codec", None, 4, 10, 1, {"codebook_used": 0.5}, {"pnmi": interval}, {"pnmi": interval},
                   {"codes_seen": 2, "partners": {1: {"unit": "a"}}, "top_pairs": []},
                   heatmap_counts=np.ones((2, 4)), usage_counts=np.arange(4), word_pairs=[(1, "a")])
    coded = CodedSet("codec", [np.zeros(10, dtype=np.int64)], 75.0, 4, sampling_rate=24000, path=Path("codec"))
    result = ProbeResult("corpus", "test", 1.0, False, 5, 3, [row], "intervals", "fit", coded=[coded])
    summary = json_summary(result)
    json.dumps(summary, allow_nan=False)  # numpy scalars converted, no arrays or objects
    assert summary["reference"] == "codec" and "partners" not in summary["rows"][0]["word_association"]
    assert not any(key.startswith("_") for key in summary)
    assert {f.name for f in dataclasses.fields(CodedSet)} == {"name", "codes", "frame_rate", "codebook_size", "step",
                                                              "kind", "sampling_rate", "path"}  # no loaded codec
