"""Scaling report: the largest array each board holds, its resources, Fmax and peak MAC/s.

For one board and one MAC configuration, :func:`search_largest` looks for the
largest R x C array whose board build places and routes, probing shapes from
:func:`shapes` (near-square, ordered by PE count: 1x1, 1x2, 2x2, 2x3, 3x3 ...).
It is a bisection guided by a linear model of the resources per PE (logic
cells, DSP blocks, block RAMs): after a build that fits, the next probe is the
largest shape the model predicts to fit
(clamped strictly between the largest known fit and the smallest known misfit),
so a sweep usually needs three or four builds per board and rounding. A build
that does not fit fails early in nextpnr (at packing or initial placement),
so misfits are cheap.

A probe is any ``probe(rows, cols) -> Point``; :func:`board_probe` is the real
one: the full board build (:mod:`boards.fpga`: UART, operand memories,
protocol engine and the array) with ``nextpnr --report``, cached in a results
folder as ``result.json`` so that reruns parse instead of rebuilding.

Units: ``fmax_mhz`` is nextpnr's achieved Fmax of the array's clock, MHz (the
timing target is set above what the array reaches, so placement is
timing-driven); ``peak_gmacs`` = rows * cols * Fmax / 1e9, one MAC per PE per
cycle (the UART, not the array, limits a real board's throughput). ``rows`` x
``cols`` are PEs; with ``interleave`` L each runs L chains (the host sees an
(R*L) x C array), still one MAC per cycle.

The design of a build (:class:`Design`: pipeline, interleave, multipliers) is part of
its cache key and of its folder, so builds of different designs never mix.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ref import outputs
from ref.plotting import save_figure

from .registry import DEFAULT_INTERLEAVE, DEFAULT_PIPELINE, find_tool, get_board
from .toolchains import ecp5_synth_opts

__all__ = ["Point", "shapes", "search_largest", "board_probe", "cached_points", "START", "Design", "summary_rows", "write_csv",
           "write_markdown", "plot", "TARGET_MHZ", "POINT_COLUMNS", "SUMMARY_COLUMNS"]

#: nextpnr timing target of the array clock per FPGA family, MHz (above what an interleaved
#: array reaches: about 30 MHz on an iCE40 UP5K, 100 MHz on an ECP5).
TARGET_MHZ = {"ice40": 40.0, "ecp5": 125.0}

#: First size each search builds, per board: near the expected answer (an interleaved PE is
#: about 500-800 logic cells), so a search needs few builds.
START = {"icebreaker": (2, 3), "ulx3s-12f": (3, 4), "ulx3s-25f": (6, 6), "ulx3s-45f": (8, 8),
         "ulx3s-85f": (11, 11)}

#: Bumped when the board design or the flow changes: cached results of another version are
#: rebuilt. 2: the dual-path MAC, interleaved PEs, the design in the key. 3, 4: ECP5 flow with
#: -nowidelut; reply bytes and their CRC from registers.
CACHE_VERSION = 4


@dataclass(frozen=True)
class Design:
    """How the board's array is built: ``pipeline`` registers in front of each PE's loop,
    ``interleave`` chains per PE, ``mult`` (``"lut"`` or ``"dsp"``) for the multipliers."""

    pipeline: int = DEFAULT_PIPELINE
    interleave: int = DEFAULT_INTERLEAVE
    mult: str = "lut"

    @property
    def tag(self) -> str:
        """Folder name of this design's builds, e.g. ``L2-p1-lut``."""
        return f"L{self.interleave}-p{self.pipeline}-{self.mult}"


@dataclass
class Point:
    """One board build: did ``rows`` x ``cols`` fit, and what did it use.

    ``status``: ``"fits"``, ``"too big"`` (nextpnr could not place or route it),
    ``"timeout"``, ``"not built"`` (``srmac report --no-build`` and no cached build). Resource counts are nextpnr's (used / available); ``ffs`` is
    yosys's flip-flop count (iCE40 logic cells hold the flip-flops).
    """

    board: str
    spec: str
    rows: int
    cols: int
    status: str
    logic_cells: int = 0
    logic_cells_available: int = 0
    ffs: int = 0
    bram: int = 0
    bram_available: int = 0
    dsp: int = 0
    dsp_available: int = 0
    fmax_mhz: float | None = None
    build_s: float = 0.0
    message: str = ""
    interleave: int = 1
    pipeline: int = 0

    @property
    def fits(self) -> bool:
        return self.status == "fits"

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def lc_pct(self) -> float:
        return 100.0 * self.logic_cells / self.logic_cells_available if self.logic_cells_available else 0.0

    @property
    def peak_gmacs(self) -> float | None:
        return None if self.fmax_mhz is None else self.pes * self.fmax_mhz / 1e3

    def row(self) -> dict:
        d = asdict(self)
        d.update(pes=self.pes, lc_pct=round(self.lc_pct, 1),
                 peak_gmacs=None if self.peak_gmacs is None else round(self.peak_gmacs, 4))
        if d["fmax_mhz"] is not None:
            d["fmax_mhz"] = round(d["fmax_mhz"], 2)
        return d


POINT_COLUMNS = ["board", "spec", "rows", "cols", "interleave", "pipeline", "pes", "status",
                 "logic_cells", "logic_cells_available", "lc_pct", "ffs", "bram",
                 "bram_available", "dsp", "dsp_available", "fmax_mhz", "peak_gmacs", "build_s",
                 "message"]
SUMMARY_COLUMNS = ["board", "spec", "rows", "cols", "interleave", "pipeline", "pes",
                   "logic_cells",
                   "logic_cells_available", "lc_pct", "ffs", "bram", "dsp", "fmax_mhz",
                   "peak_gmacs", "next_shape", "next_status", "next_message", "builds"]


# ---- the size search ----------------------------------------------------------------------

def shapes(max_pes: int = 1024) -> list[tuple[int, int]]:
    """Near-square array shapes by PE count: (1,1), (1,2), (2,2), (2,3), (3,3) ... up to
    ``max_pes`` PEs (rows <= cols; both at most 255, the protocol's limit)."""
    out, n = [], 1
    while True:
        for shape in ((n, n), (n, n + 1)):
            if shape[0] * shape[1] > max_pes or shape[1] > 255:
                return out
            out.append(shape)
        n += 1


def parse_shape(text: str) -> tuple[int, int]:
    """``"3x4"`` -> (3, 4) (ValueError naming the bad text otherwise)."""
    try:
        r, c = (int(x) for x in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"array size {text!r} not understood: write ROWSxCOLS, e.g. 3x3") from None
    if not (1 <= r <= 255 and 1 <= c <= 255):
        raise ValueError(f"array size {text!r}: rows and cols must be in 1..255")
    return r, c


_RESOURCES = (("logic_cells", "logic_cells_available"), ("dsp", "dsp_available"),
              ("bram", "bram_available"))


def _predict(points: list[Point]) -> float | None:
    """PE count at which the first resource (logic cells, DSP or block RAM) runs out: per
    resource, a line through the two largest fitting builds (one build: through the origin,
    which overestimates the cost per PE and so underestimates the count)."""
    fit = sorted({p.pes: p for p in points if p.fits}.values(), key=lambda p: p.pes)
    if not fit:
        return None
    guesses = []
    for used, avail in _RESOURCES:
        b = fit[-1]
        total = getattr(b, avail)
        if not total or not getattr(b, used):
            continue
        if len(fit) == 1:
            guesses.append(b.pes * total / getattr(b, used))
            continue
        a = fit[-2]
        slope = (getattr(b, used) - getattr(a, used)) / (b.pes - a.pes)
        if slope > 0:
            guesses.append(b.pes + (total - getattr(b, used)) / slope)
    return min(guesses) if guesses else None


def search_largest(probe: Callable[[int, int], Point], candidates: list[tuple[int, int]], *,
                   start: int = 0, max_builds: int | None = None,
                   on_point: Callable[[Point], None] | None = None,
                   ) -> tuple[Point | None, Point | None, list[Point]]:
    """The largest shape of ``candidates`` (ordered by cost) for which ``probe`` fits.

    ``start``: index of the first shape probed. Returns ``(best, next_up, points)``:
    the largest fitting point (None if none fits), the probe of the shape just above
    it (None if not probed: the list ended, or ``max_builds`` ran out) and every
    probe in order. Assumes fitting is monotone along ``candidates``. A ``"not built"``
    probe (cached results only) ends the search.
    """
    if not candidates:
        raise ValueError("no array sizes to search")
    lo, hi = -1, len(candidates)  # largest known fit, smallest known misfit
    by_index: dict[int, Point] = {}
    i = min(max(start, 0), len(candidates) - 1)
    while hi - lo > 1 and (max_builds is None or len(by_index) < max_builds):
        p = probe(*candidates[i])
        by_index[i] = p
        if on_point:
            on_point(p)
        if p.status == "not built":  # unknown (cached results only): the search ends here
            break
        if p.fits:
            lo = i
        else:
            hi = i
        if hi - lo <= 1:
            break
        guess = _predict(list(by_index.values()))
        if guess is not None and lo >= 0:
            j = max((k for k, s in enumerate(candidates) if s[0] * s[1] <= guess), default=0)
        elif hi == len(candidates) and lo >= 0:
            j = min(2 * lo + 1, hi - 1)  # no model: double
        else:
            j = (lo + hi) // 2
        i = min(max(j, lo + 1), hi - 1)
    points = list(by_index.values())
    up = points[-1] if points[-1].status == "not built" else by_index.get(lo + 1)
    return by_index.get(lo), up, points


# ---- the real probe: a board build ----------------------------------------------------------

# nextpnr log lines meaning "the design is larger than the device"
_TOO_BIG = ("no bels remaining", "unable to place", "failed to route", "not enough",
            "too many", "more than available", "exceeds", "insufficient")

_UTIL_KEYS = {  # family -> (logic cell, block RAM, DSP) names in nextpnr's utilisation
    "ice40": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP"),
    "ecp5": ("TRELLIS_COMB", "DP16KD", "MULT18X18D"),
}


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)


def overfull(log: str) -> str:
    """``"ICESTORM_LC 5570/5280"`` when nextpnr's utilisation (printed after packing) shows a
    resource used beyond what the device has, else ``""``."""
    over = [f"{name} {used}/{avail}" for name, used, avail in _UTIL_LINE.findall(log)
            if int(used) > int(avail)]
    return ", ".join(over)


def _run_script(build_dir: Path, timeout: float) -> tuple[int | str | None, float]:
    """Run Amaranth's build script in its own process group. Returns (exit code, or None on
    timeout, or the over-full resources when nextpnr's utilisation exceeds the device:
    the flow is stopped then, as nextpnr may search a long time before giving up; seconds)."""
    t0 = time.monotonic()
    tim = build_dir / "srmac_array.tim"
    with open(build_dir / "flow.log", "w") as log:
        proc = subprocess.Popen(["sh", "build_srmac_array.sh"], cwd=build_dir, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        code: int | str | None = None
        while True:
            try:
                code = proc.wait(timeout=2.0)
                break
            except subprocess.TimeoutExpired:
                over = overfull(tim.read_text(errors="replace")) if tim.exists() else ""
                if over or time.monotonic() - t0 > timeout:
                    os.killpg(proc.pid, signal.SIGTERM)  # the shell and the tool it runs
                    proc.wait()
                    code = over or None
                    break
    return code, time.monotonic() - t0


def _error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()]
    return lines[0][:200] if lines else ""


def parse_build(build_dir: str | os.PathLike, family: str, board: str, spec: str, rows: int,
                cols: int, code: int | None, seconds: float) -> Point:
    """A :class:`Point` from a finished build folder (``code``: the script's exit status,
    None after a timeout, the over-full resources as a string). A failure outside nextpnr (yosys, ecppack) raises ToolError."""
    from hwgen.synth import ToolError, parse_nextpnr_report, parse_yosys_stat

    d = Path(build_dir)
    base = dict(board=board, spec=spec, rows=rows, cols=cols, build_s=round(seconds, 1))
    if code is None:
        return Point(status="timeout", message=f"no result after {seconds:.0f} s", **base)
    if isinstance(code, str):
        return Point(status="too big", message=f"over-full: {code}", **base)
    tim = d / "srmac_array.tim"
    if code != 0:
        log = tim.read_text(errors="replace") if tim.exists() else ""
        if not log:  # nextpnr never ran: yosys (or the script) failed
            flow = (d / "flow.log").read_text(errors="replace") if (d / "flow.log").exists() else ""
            raise ToolError(f"the {board} flow failed before place and route in {d}: "
                            f"{_error_line(flow) or 'see flow.log'}")
        if overfull(log):
            return Point(status="too big", message=f"over-full: {overfull(log)}", **base)
        if not (d / "report.json").exists() or any(s in log.lower() for s in _TOO_BIG):
            return Point(status="too big", message=_error_line(log), **base)
        raise ToolError(f"the {board} flow failed after place and route in {d}: see flow.log")
    report = json.loads((d / "report.json").read_text())
    util = report.get("utilization", {})
    lc, ram, dsp = (util.get(k, {}) for k in _UTIL_KEYS[family])
    parsed = parse_nextpnr_report(report, family)
    stat = parse_yosys_stat(json.loads((d / "stat.json").read_text()), family)
    return Point(status="fits", logic_cells=int(lc.get("used", 0)),
                 logic_cells_available=int(lc.get("available", 0)),
                 ffs=int(parsed["ffs"] if parsed["ffs"] is not None else stat["ffs"]),
                 bram=int(ram.get("used", 0)), bram_available=int(ram.get("available", 0)),
                 dsp=int(dsp.get("used", 0)), dsp_available=int(dsp.get("available", 0)),
                 fmax_mhz=parsed["fmax_mhz"], **base)


def _key(board, spec: str, kmax: int, design: Design) -> dict:
    key = {"version": CACHE_VERSION, "board": board.name, "spec": spec, "kmax": kmax,
           "target_mhz": TARGET_MHZ[board.family], "pipeline": design.pipeline,
           "interleave": design.interleave, "mult": design.mult}
    if board.family == "ecp5":  # the synthesis options of the ECP5 flow (-nowidelut)
        key["synth"] = ecp5_synth_opts(design.mult)
    return key


def _folder(results_dir, board, spec: str, design: Design) -> Path:
    return Path(results_dir) / board.name / spec.replace(":", "_") / design.tag


def board_probe(board_name: str, cfg, results_dir: str | os.PathLike, *, kmax: int = 256,
                timeout: float = 3600.0, force: bool = False, build: bool = True,
                design: Design = Design()) -> Callable[[int, int], Point]:
    """``probe(rows, cols)``: build the array on board ``board_name`` in
    ``results_dir/<board>/<spec>/<design tag>/<R>x<C>/`` (reusing a cached ``result.json``
    of the same design unless ``force``) and return its :class:`Point`. ``build=False``:
    cached results only; a size without one is ``"not built"`` (counted as not fitting)."""

    board = get_board(board_name)
    for var, exe, pkg in board.tools:
        path = os.environ.get(var) or find_tool(exe)
        if not path:
            raise ValueError(f"{exe} not found: pip install {pkg}")
        os.environ.setdefault(var, path)
    spec = cfg.spec()
    target_hz = TARGET_MHZ[board.family] * 1e6
    key = _key(board, spec, kmax, design)
    extra = {"interleave": design.interleave, "pipeline": design.pipeline}

    def probe(rows: int, cols: int) -> Point:
        d = _folder(results_dir, board, spec, design) / f"{rows}x{cols}"
        cached = d / "result.json"
        want = {**key, "rows": rows, "cols": cols}
        if cached.exists() and not force:
            saved = json.loads(cached.read_text())
            if saved.get("key") == want:
                return Point(**{f.name: saved["point"][f.name] for f in fields(Point)
                                if f.name in saved["point"]})
        if not build:
            return Point(board.name, spec, rows, cols, "not built", **extra)
        opts = dict(pipeline=design.pipeline, interleave=design.interleave, mult=design.mult)
        board.check(cfg, rows, cols, seed=0, kmax=kmax, **opts)  # ValueError: bad configuration
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("report.json", "stat.json", "srmac_array.tim"):
            (d / stale).unlink(missing_ok=True)
        board.build(cfg, rows, cols, seed=0, kmax=kmax, build_dir=str(d), report=True,
                    execute=False, constraint_hz=target_hz, **opts)
        code, seconds = _run_script(d, timeout)
        point = parse_build(d, board.family, board.name, spec, rows, cols, code, seconds)
        point.interleave, point.pipeline = design.interleave, design.pipeline
        outputs.write_text(cached, json.dumps({"key": want, "point": asdict(point)}, indent=1))
        return point

    return probe


def cached_points(results_dir: str | os.PathLike, board_name: str, cfg, *,
                  kmax: int = 256, design: Design = Design()) -> list[Point]:
    """Every cached build of ``cfg`` and ``design`` on ``board_name`` in ``results_dir`` (any
    size; e.g. from an earlier ``--sizes`` run), smallest first."""

    board = get_board(board_name)
    key = _key(board, cfg.spec(), kmax, design)
    out = []
    for f in sorted(_folder(results_dir, board, cfg.spec(), design).glob("*/result.json")):
        saved = json.loads(f.read_text())
        got = dict(saved.get("key", {}))
        got.pop("rows", None), got.pop("cols", None)
        if got == key:
            out.append(Point(**{k.name: saved["point"][k.name] for k in fields(Point)
                                if k.name in saved["point"]}))
    return sorted(out, key=lambda p: (p.pes, p.rows))


# ---- tables and the plot ----------------------------------------------------------------------

def summary_rows(results: list[tuple[Point | None, Point | None, list[Point]]]) -> list[dict]:
    """One row per (board, spec): the largest fitting array and what was just above it."""
    rows = []
    for best, up, points in results:
        if not points:
            continue
        first = points[0]
        row = {"board": first.board, "spec": first.spec, "builds": len(points)}
        if best is not None:
            r = best.row()
            row.update({k: r[k] for k in SUMMARY_COLUMNS if k in r})
        row["next_shape"] = f"{up.rows}x{up.cols}" if up else ""
        row["next_status"] = up.status if up else ""
        row["next_message"] = up.message.removeprefix("over-full: ") if up else ""
        rows.append(row)
    return rows


def write_csv(path: str | os.PathLike, rows: list[dict], columns: list[str]) -> None:
    """``rows`` as CSV with ``columns``, written atomically (:func:`ref.outputs.write_csv`)."""
    outputs.write_csv(path, rows, columns)


def _fmt(v, nd=1) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}" if math.isfinite(v) else "-"
    return str(v)


_MD_COLUMNS = ("board", "MAC", "largest array", "chains/PE", "PEs", "logic cells", "FFs",
               "BRAM", "DSP", "Fmax (MHz)", "peak MAC/s", "next size up")


def write_markdown(path: str | os.PathLike, summary: list[dict], command: str = "") -> str:
    """The summary as a markdown table (returned and written to ``path`` atomically)."""
    cells = []
    for r in summary:
        if r.get("rows"):
            size = f"{r['rows']}x{r['cols']}"
            lc = f"{r['logic_cells']} / {r['logic_cells_available']} ({r['lc_pct']:.0f} %)"
            macs = f"{r['peak_gmacs'] * 1e3:.0f} M" if r.get("peak_gmacs") is not None else "-"
        elif r.get("next_status") == "not built":
            size, lc, macs = "not measured", "-", "-"
        else:
            size, lc, macs = "none fits", "-", "-"
        up = f"{r['next_shape']}: {r['next_status']}" if r.get("next_shape") else "not built"
        if r.get("next_message"):
            up += f" ({r['next_message']})"
        cells.append({
            "board": r["board"], "MAC": r["spec"], "largest array": size,
            "chains/PE": _fmt(r.get("interleave")), "PEs": _fmt(r.get("pes")),
            "logic cells": lc, "FFs": _fmt(r.get("ffs")), "BRAM": _fmt(r.get("bram")),
            "DSP": _fmt(r.get("dsp")), "Fmax (MHz)": _fmt(r.get("fmax_mhz")), "peak MAC/s": macs,
            "next size up": up,
        })
    text = outputs.markdown_table(cells, _MD_COLUMNS) + "\n"
    if command:
        text += f"\nReproduce: `{command}`\n"
    outputs.write_text(path, text)
    return text


def _mac_label(spec: str) -> str:
    """``"e5m2:e6m5:sr_eager:4"`` -> ``"sr_eager:4"`` (the formats are the same in a report)."""
    return ":".join(spec.split(":")[2:]) or spec


def plot(path: str | os.PathLike, points: list[Point], summary: list[dict]) -> None:
    """Left: logic-cell use against PE count of every fitting build (colour: rounding, marker
    and line style: board). Right: peak MAC/s of the largest array per board and rounding."""
    from ref.plotting import subplots

    fig, (ax1, ax2) = subplots(1, 2, figsize=(11, 4.2))
    boards = list(dict.fromkeys(r["board"] for r in summary))
    macs = list(dict.fromkeys(r["spec"] for r in summary))
    colour = {m: f"C{i}" for i, m in enumerate(macs)}
    style = {b: ("-", "--", ":", "-.")[i % 4] for i, b in enumerate(boards)}
    marker = {b: ("o", "s", "^", "D")[i % 4] for i, b in enumerate(boards)}
    groups: dict[tuple[str, str], list[Point]] = {}
    for p in points:
        if p.fits:
            groups.setdefault((p.board, p.spec), []).append(p)
    for (board, spec), ps in sorted(groups.items()):
        ps.sort(key=lambda p: p.pes)
        ax1.plot([p.pes for p in ps], [p.lc_pct for p in ps], marker.get(board, "o"),
                 ls=style.get(board, "-"),
                 color=colour.get(spec), label=f"{board} {_mac_label(spec)}")
    ax1.axhline(100, color="grey", lw=0.8, ls="--")
    ax1.set_xlabel("PEs (rows x cols)")
    ax1.set_ylabel("logic cells used (% of the FPGA)")
    ax1.set_title("area of the whole board design")
    ax1.legend(fontsize=7)
    vals = [(r.get("peak_gmacs") or 0.0) * 1e3 for r in summary]
    bars = ax2.bar(range(len(vals)), vals,
                   color=[f"C{boards.index(r['board'])}" for r in summary])
    for b, r in zip(bars, summary, strict=True):
        if r.get("rows"):
            ax2.annotate(f"{r['rows']}x{r['cols']}\n{r['fmax_mhz']:.1f} MHz",
                         (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                         va="bottom", fontsize=7)
    ax2.set_xticks(range(len(vals)),
                   [f"{_mac_label(r['spec'])}\n{r['board']}" for r in summary], fontsize=7)
    ax2.set_ylabel("peak MAC/s (millions, log scale)")
    ax2.set_title("largest array: PEs x Fmax")
    if any(vals):
        ax2.set_yscale("log")
        ax2.set_ylim(min(v for v in vals if v) / 2, max(vals) * 4)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
