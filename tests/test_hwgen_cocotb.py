"""cocotb + Icarus regression of the generated Verilog against the golden model.

Default (`make test`): every configuration of ``hwgen.regress.MATRIX`` with
10**4 operations (SRMAC_COCOTB_OPS overrides). Slow (`make regress`): 10**5.
Each configuration builds in its own folder under pytest's tmp dir.
"""

from __future__ import annotations

import gc
import os

import pytest

from hwgen.mac import MacUnit
from hwgen.regress import MATRIX, RegressConfig, run_config, simulator_missing_reason
from ref.cli import main

DEFAULT_OPS = int(os.environ.get("SRMAC_COCOTB_OPS", "10000"))
SLOW_OPS = 100_000


def _check(rc, ops, tmp_path_factory):
    why = simulator_missing_reason()
    if why:
        pytest.skip(why)
    res = run_config(rc, ops, tmp_path_factory.mktemp("cocotb"))
    details = "\n".join(res.get("details", []))
    assert res["mismatches"] == 0, f"{rc.name}: {res['mismatches']} mismatches\n{details}"
    assert res["passed"], f"{rc.name}: simulation failed\n{details}"
    assert res["ops"] >= ops


@pytest.mark.parametrize("rc", MATRIX, ids=[c.name for c in MATRIX])
def test_cocotb_matrix(rc, tmp_path_factory):
    _check(rc, DEFAULT_OPS, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("rc", MATRIX, ids=[c.name for c in MATRIX])
def test_cocotb_matrix_long(rc, tmp_path_factory):
    _check(rc, SLOW_OPS, tmp_path_factory)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_matrix_covers_the_issue():
    specs = [c.cfg for c in MATRIX]
    assert len(MATRIX) >= 16
    assert {c.in_fmt.name for c in specs} >= {"E5M2", "E4M3"}
    assert {c.acc_fmt.exp_bits * 100 + c.acc_fmt.man_bits for c in specs} >= {605, 510, 807}
    assert {c.rounding for c in specs} == {"rn", "rz", "sr_lazy", "sr_eager"}
    assert {c.rbits for c in specs if c.rbits} >= {1, 4, 8, 12}
    assert {c.acc_fmt.subnormals for c in specs} == {True, False}
    assert {c.rand for c in MATRIX} == {"port", "prng"}
    # both datapaths: the default (dual where it applies) and the single-path copy
    units = {c.name: MacUnit(c.cfg, datapath=c.datapath).datapath for c in MATRIX}
    assert {"dual", "single"} <= set(units.values())
    duals = [c.name for c in MATRIX if units[c.name] == "dual" and c.interleave == 1]
    assert {c.interleave for c in MATRIX} >= {1, 2, 4}
    assert len(duals) >= 12 and all(units[f"{n}_single"] == "single" for n in duals)
    del units
    gc.collect()  # the units above, under this test's warning filter


def test_bench_reports_a_mismatch(tmp_path):
    """Hardware built for rz, bench expecting rn: the bench must fail and name the operands."""
    if simulator_missing_reason():
        pytest.skip(simulator_missing_reason())
    rc = RegressConfig("neg_rz_vs_rn", "e5m2:e6m5:rn", hw_mac="e5m2:e6m5:rz")
    res = run_config(rc, 300, tmp_path)
    assert res["mismatches"] > 0 and not res["passed"]
    line = res["details"][0]
    for word in ("z=", "a=", "b=", "expected=", "actual="):
        assert word in line, line


def test_regress_cli(tmp_path, capsys):
    if simulator_missing_reason():
        pytest.skip(simulator_missing_reason())
    rc = main(
        ["regress", "--ops", "300", "--configs", "e5m2_e6m5_eager4", "--build-dir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "configuration" in out and "mismatches" in out
    row = [ln for ln in out.splitlines() if ln.startswith("e5m2_e6m5_eager4")][0].split()
    assert row[1] == "300" and row[2] == "0"
    assert main(["regress", "--configs", "nope"]) == 2
