"""cocotb + Icarus regression of a generated :class:`hwgen.array.SystolicArray`.

Used by ``tests/test_array_cocotb.py``. The bench is
``tests/cocotb/array/array_bench.py``; each configuration builds in its own
folder. A workload is a list of products ``(M, K, N, k_tile)`` tiled onto the
array by :mod:`ref.array` (``k_tile`` None = whole K).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ref.config import parse_mac

from .regress import ROOT, simulate, simulator_missing_reason

__all__ = ["ArrayRegressConfig", "ARRAY_BENCH_DIR", "run_array_config", "work_string"]

ARRAY_BENCH_DIR = ROOT / "tests" / "cocotb" / "array"


@dataclass(frozen=True)
class ArrayRegressConfig:
    name: str
    mac: str
    rows: int
    cols: int
    work: tuple = field(default_factory=tuple)  # ((M, K, N, k_tile or None), ...)
    seed: int = 0
    pipeline: int = 0
    stall: float = 0.0
    #: Chains per PE (a tile has rows * interleave rows).
    interleave: int = 1
    #: Build the hardware from this spec instead (negative tests of the bench only).
    hw_mac: str | None = None
    #: Build the hardware with this generator seed instead (negative tests of the bench only).
    hw_seed: int | None = None


def work_string(work) -> str:
    return ";".join(f"{M}x{K}x{N}/{kt or 0}" for M, K, N, kt in work)


def run_array_config(rc: ArrayRegressConfig, build_dir, *, vseed: int = 1) -> dict:
    """Generate, build and simulate one array configuration; returns the bench's report."""
    from .array_export import array_to_verilog, build_array

    why = simulator_missing_reason()
    if why:
        raise ValueError(f"cannot run the array regression: {why}")
    if not rc.work:
        raise ValueError(f"configuration {rc.name!r} has no workload")
    bdir = Path(build_dir) / rc.name
    bdir.mkdir(parents=True, exist_ok=True)
    hw_seed = rc.seed if rc.hw_seed is None else rc.hw_seed
    arr = build_array(parse_mac(rc.hw_mac or rc.mac), rc.rows, rc.cols, hw_seed, rc.pipeline,
                      rc.interleave)
    top = f"array_{rc.name}"
    report = bdir / "report.json"
    env = {
        "SRMAC_MAC": rc.mac,
        "SRMAC_ROWS": str(rc.rows),
        "SRMAC_COLS": str(rc.cols),
        "SRMAC_SEED": str(rc.seed),
        "SRMAC_PIPELINE": str(rc.pipeline),
        "SRMAC_INTERLEAVE": str(rc.interleave),
        "SRMAC_WORK": work_string(rc.work),
        "SRMAC_VSEED": str(vseed),
        "SRMAC_STALL": str(rc.stall),
        "SRMAC_REPORT": str(report),
    }
    out = simulate(top, array_to_verilog(arr, top), bdir, "array_bench", ARRAY_BENCH_DIR, env,
                   {"macs": 0})
    out.update(name=rc.name)
    return out
