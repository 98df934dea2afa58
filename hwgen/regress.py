"""The cocotb regression matrix: generate each MAC, build it with Icarus, run the bench.

Used by ``tests/test_hwgen_cocotb.py`` (pytest) and ``srmac regress``. Each
configuration gets its own build folder. The bench lives in
``tests/cocotb/mac_bench.py`` of the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ref.config import parse_mac

from .params import DualParams

__all__ = [
    "RegressConfig",
    "MATRIX",
    "BENCH_DIR",
    "simulator_missing_reason",
    "run_config",
    "run_matrix",
]

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "tests" / "cocotb"
TIMESCALE = ("1ns", "1ps")


@dataclass(frozen=True)
class RegressConfig:
    name: str
    mac: str
    rand: str = "port"
    seed: int = 0
    pipeline: int = 0
    idle: float = 0.0
    #: Build the hardware from this spec instead of ``mac`` (negative tests of the bench only).
    hw_mac: str | None = None
    #: The MAC's accumulation datapath: None = its default (dual where it applies), "single".
    datapath: str | None = None
    #: Chains interleaved through the loop (dual datapath only; 1: the one-cycle loop).
    interleave: int = 1

    @property
    def cfg(self):
        return parse_mac(self.mac)


def _c(name, mac, **kw):
    return RegressConfig(name, mac, **kw)


#: At least 16 configurations: E5M2 / E4M3 inputs; E6M5, FP16, BF16 accumulators;
#: rn, rz, sr_lazy, sr_eager; r in {1, 4, 8, 12}; subnormals on and off; both
#: random sources; pipeline stages and idle cycles.
MATRIX = [
    _c("e5m2_e6m5_rn", "e5m2:e6m5:rn"),
    _c("e5m2_e6m5_rz", "e5m2:e6m5:rz"),
    _c("e5m2_e6m5_lazy4", "e5m2:e6m5:sr_lazy:4"),
    _c("e5m2_e6m5_eager4", "e5m2:e6m5:sr_eager:4"),
    _c("e5m2_e6m5_eager1", "e5m2:e6m5:sr_eager:1"),
    _c("e5m2_e6m5_lazy1_nosub", "e5m2:nosub:e6m5:nosub:sr_lazy:1"),
    _c("e5m2_e6m5_eager4_nosub", "e5m2:nosub:e6m5:nosub:sr_eager:4"),
    _c(
        "e5m2_e6m5_eager4_prng_p2",
        "e5m2:e6m5:sr_eager:4",
        rand="prng",
        seed=7,
        pipeline=2,
        idle=0.1,
    ),
    _c("e5m2_fp16_eager8", "e5m2:fp16:sr_eager:8"),
    _c("e5m2_fp16_rz_nosub", "e5m2:fp16:nosub:rz"),
    _c("e5m2_bf16_lazy12", "e5m2:bf16:sr_lazy:12"),
    _c("e4m3_e6m5_eager8", "e4m3:e6m5:sr_eager:8"),
    _c("e4m3_fp16_rn", "e4m3:fp16:rn"),
    _c("e4m3_fp16_lazy12", "e4m3:fp16:sr_lazy:12"),
    _c("e4m3_fp16_eager12", "e4m3:fp16:sr_eager:12"),
    _c(
        "e4m3_fp16_lazy8_prng_p1", "e4m3:fp16:sr_lazy:8", rand="prng", seed=3, pipeline=1, idle=0.05
    ),
    _c("e4m3_bf16_eager4", "e4m3:bf16:sr_eager:4"),
    _c("e4m3_bf16_eager12_nosub", "e4m3:nosub:bf16:nosub:sr_eager:12"),
    _c("e4m3_bf16_rn_nosub", "e4m3:nosub:bf16:nosub:rn"),
]


def _with_single(configs):
    """Each configuration, then a ``<name>_single`` copy of every one whose default is dual.

    Both datapaths run the same bench against ``ref.mac``: the dual one by default,
    the single one for comparison (and for configurations outside the dual one's limits).
    """
    extra = [
        RegressConfig(f"{c.name}_single", c.mac, c.rand, c.seed, c.pipeline, c.idle,
                      c.hw_mac, "single", c.interleave)
        for c in configs
        if DualParams(c.cfg).limit() is None
    ]
    return list(configs) + extra


MATRIX = _with_single(MATRIX)

#: Interleaved loops (issue 12): L = 2 and 4 chains, both random sources, idle cycles.
MATRIX += [
    _c("e5m2_e6m5_eager4_x2_p1", "e5m2:e6m5:sr_eager:4", pipeline=1, idle=0.1, interleave=2),
    _c("e5m2_e6m5_lazy4_x2_prng", "e5m2:e6m5:sr_lazy:4", rand="prng", seed=5, interleave=2),
    _c("e5m2_e6m5_rn_x4_p2", "e5m2:e6m5:rn", pipeline=2, idle=0.2, interleave=4),
    _c("e5m2_e6m5_eager4_nosub_x4_prng", "e5m2:nosub:e6m5:nosub:sr_eager:4", rand="prng",
       seed=9, pipeline=1, idle=0.05, interleave=4),
    _c("e4m3_bf16_eager8_x3", "e4m3:bf16:sr_eager:8", pipeline=1, idle=0.1, interleave=3),
    _c("e4m3_fp16_rz_x2", "e4m3:fp16:rz", interleave=2),
]


def simulator_missing_reason() -> str | None:
    """Why the simulator cannot run (a one-line reason), or None when Icarus and cocotb are usable."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        return "Icarus Verilog (iverilog, vvp) not found on PATH: apt-get install iverilog"
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        return "cocotb is not installed: pip install 'srmac[hw]'"
    if not (BENCH_DIR / "mac_bench.py").exists():
        return f"bench {BENCH_DIR / 'mac_bench.py'} not found (run from a source checkout)"
    return None


def run_config(rc: RegressConfig, ops: int, build_dir: str | os.PathLike, *, seed: int = 1) -> dict:
    """Generate, build and simulate one configuration; returns the bench's report."""
    from .export import to_verilog
    from .mac import MacUnit

    why = simulator_missing_reason()
    if why:
        raise ValueError(f"cannot run the regression: {why}")
    # Absolute: the simulator runs with the build folder as its working directory.
    bdir = Path(build_dir).resolve() / rc.name
    bdir.mkdir(parents=True, exist_ok=True)
    hw_cfg = parse_mac(rc.hw_mac) if rc.hw_mac else rc.cfg
    unit = MacUnit(hw_cfg, rand=rc.rand, seed=rc.seed, pipeline=rc.pipeline, datapath=rc.datapath,
                   interleave=rc.interleave)
    top = f"mac_{rc.name}"
    text = to_verilog(unit, top)
    report = bdir / "report.json"
    env = {
        "SRMAC_MAC": rc.mac,
        "SRMAC_RAND": rc.rand,
        "SRMAC_SEED": str(rc.seed),
        "SRMAC_PIPELINE": str(rc.pipeline),
        "SRMAC_OPS": str(ops),
        "SRMAC_VSEED": str(seed),
        "SRMAC_IDLE": str(rc.idle),
        "SRMAC_INTERLEAVE": str(rc.interleave),
        "SRMAC_REPORT": str(report),
    }
    out = simulate(top, text, bdir, "mac_bench", BENCH_DIR, env, {"ops": 0})
    out.update(name=rc.name)
    return out


def simulate(top: str, verilog: str, bdir: Path, bench: str, bench_dir: Path, env: dict,
             empty: dict) -> dict:
    """Build ``verilog`` with Icarus and run the cocotb ``bench`` module on it.

    The bench writes its report (JSON) to ``env["SRMAC_REPORT"]``; returns it
    with ``seconds`` and ``passed`` (tests ran, none failed, no mismatch) added.
    ``empty`` holds the counters of a report the bench never wrote.
    """
    from cocotb_tools.runner import get_results, get_runner

    # The simulator runs in bdir: every path it is given must be absolute.
    bdir = Path(bdir).resolve()
    env = {**env, "SRMAC_REPORT": str(Path(env["SRMAC_REPORT"]).resolve())}
    src = bdir / f"{top}.v"
    if not src.exists() or src.read_text() != verilog:
        src.write_text(verilog)  # unchanged sources keep the runner's build cache
    report = Path(env["SRMAC_REPORT"])
    results_xml = bdir / "results.xml"
    for f in (report, results_xml):
        if f.exists():
            f.unlink()
    runner = get_runner("icarus")
    t0 = time.time()
    runner.build(sources=[src], hdl_toplevel=top, build_dir=bdir, timescale=TIMESCALE,
                 log_file=bdir / "build.log")
    # The runner passes this process's sys.path to the simulator's Python as PYTHONPATH.
    added = [p for p in (str(bench_dir), str(ROOT)) if p not in sys.path]
    sys.path[:0] = added
    try:
        runner.test(test_module=bench, hdl_toplevel=top, build_dir=bdir, test_dir=bdir,
                    extra_env=env, timescale=TIMESCALE, log_file=bdir / "sim.log",
                    results_xml=str(results_xml.resolve()))
    except SystemExit:
        pass  # the runner exits when a test fails; the report and results.xml say how
    finally:
        for p in added:
            sys.path.remove(p)
    seconds = time.time() - t0
    if report.exists():
        out = json.loads(report.read_text())
    else:
        out = {**empty, "mismatches": -1, "details": [f"no report: see {bdir / 'sim.log'}"]}
    try:
        n_tests, n_fail = get_results(results_xml)
    except RuntimeError:  # the simulator died before writing results
        n_tests, n_fail = 0, 1
    out.update(seconds=seconds,
               passed=n_tests > 0 and n_fail == 0 and out.get("mismatches") == 0)
    return out


def run_matrix(ops: int, *, names=None, build_dir="build/regress", seed: int = 1,
               on_result=None) -> list[dict]:
    """Run the configurations ``names`` (default: all of :data:`MATRIX`) one after another.

    ``on_result(report)`` is called as each configuration finishes (the CLI
    prints its row then). ``build_dir`` may be relative to the working directory.
    """
    known = {c.name: c for c in MATRIX}
    if names is not None:
        if not names:
            raise ValueError("no configuration named: give names, e.g. --configs e5m2_e6m5_rn "
                             "(`srmac regress --list` shows them)")
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"unknown configuration {bad[0]!r}; `srmac regress --list` shows them")
        chosen = [known[n] for n in names]
    else:
        chosen = MATRIX
    build_dir = Path(build_dir).resolve()
    results = []
    for rc in chosen:
        results.append(run_config(rc, ops, build_dir, seed=seed))
        if on_result is not None:
            on_result(results[-1])
    return results


#: The old name (it returned a reason when the simulator was *missing*), kept while other
#: branches still import it.
simulator_available = simulator_missing_reason
