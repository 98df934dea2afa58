"""Readers of the tools' reports: yosys ``stat -json`` (area) and nextpnr ``--report`` (Fmax, critical path)."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["parse_yosys_stat", "parse_nextpnr_report"]


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


_REPO = str(Path(__file__).resolve().parents[2]) + os.sep


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
