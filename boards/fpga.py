"""What every FPGA board build shares: the clock-divided board top and the YoWASP flow.

:class:`ClockedTop` wires :class:`boards.core.BoardTop` to a platform's
``uart`` resource on the board oscillator divided by ``clock_div`` (the
array's clock closes at a few tens of MHz on an iCE40 UP5K and below 100 MHz on an
ECP5: docs/scaling.md; the board oscillator divided down is always safe, and the UART at
115200 baud, not the array, limits the throughput anyway).

:func:`build_on` runs Amaranth's vendor flow for a platform with the YoWASP
tools (found next to this Python when the venv is not on PATH). ``report=True``
adds ``nextpnr --report report.json`` (utilisation and Fmax as JSON) and a
yosys ``stat -json`` (``stat.json``), which :mod:`boards.report` reads.
"""

from __future__ import annotations

import os
import shutil
import sys

from amaranth.hdl import ClockDomain, DomainRenamer, Elaboratable, Module, ResetSignal, Signal

from ref.config import MacConfig

from .core import BoardTop
from .toolchains import ECP5_TOOLS, ICE40_TOOLS, ecp5_synth_opts

__all__ = ["ClockedTop", "build_on", "ICE40_TOOLS", "ECP5_TOOLS", "BITSTREAM_NAME", "MULTS",
           "ecp5_synth_opts"]

#: Base name of every build product (``srmac_array.bin``, ``.bit``, ``.tim`` ...).
BITSTREAM_NAME = "srmac_array"

#: Where the PEs' significand multipliers go: logic cells or DSP blocks.
MULTS = ("lut", "dsp")


class ClockedTop(Elaboratable):
    """The board top on the ``clock_hz`` board clock divided by ``clock_div`` (1, 2, 4 or 8).

    ``constraint_hz``: the timing target given to nextpnr for the divided clock
    (default: the clock itself); :mod:`boards.report` asks for more so that
    placement is timing-driven and the reported Fmax is what the design can do.
    ``pipeline`` and ``interleave``: of the array's PEs (:class:`boards.core.BoardCore`).
    """

    #: A board's own oscillator (a subclass per board sets it); ``clock_hz=`` overrides it.
    board_clock_hz: int | None = None

    def __new__(cls, cfg, rows=2, cols=2, *, clock_hz=None, seed=0, kmax=256, baud=115_200,
                clock_div=4, constraint_hz=None, pipeline=0, interleave=1):
        # Check before the object exists: a refused top leaves no unused elaboratable.
        cls.validate(cfg, rows, cols, clock_hz=cls._clock(clock_hz), seed=seed, kmax=kmax,
                     baud=baud, clock_div=clock_div, pipeline=pipeline, interleave=interleave)
        return super().__new__(cls)

    @classmethod
    def _clock(cls, clock_hz):
        clock_hz = cls.board_clock_hz if clock_hz is None else clock_hz
        if clock_hz is None:
            raise ValueError(f"{cls.__name__} needs clock_hz= (the board's oscillator)")
        return clock_hz

    @staticmethod
    def validate(cfg, rows, cols, *, clock_hz, seed=0, kmax=256, baud=115_200, clock_div=4,
                 pipeline=0, interleave=1) -> str:
        """ValueError (one line) for a top that cannot be built; else a one-line description."""
        if clock_div not in (1, 2, 4, 8):
            raise ValueError(f"clock_div must be 1, 2, 4 or 8, got {clock_div!r}")
        core_hz = clock_hz // clock_div
        BoardTop.validate(cfg, rows, cols, seed=seed, kmax=kmax, divisor=round(core_hz / baud),
                          pipeline=pipeline, interleave=interleave)
        chains = f", {interleave} chains per PE ({rows * interleave}x{cols} to the host)" \
            if interleave > 1 else ""
        return (f"{rows}x{cols} array {cfg.spec()}{chains}, pipeline {pipeline}, PE seed {seed}, "
                f"KMAX {kmax}, core clock {core_hz / 1e6:g} MHz, UART {baud} baud")

    def __init__(self, cfg: MacConfig, rows: int = 2, cols: int = 2, *,
                 clock_hz: int | None = None, seed: int = 0, kmax: int = 256,
                 baud: int = 115_200, clock_div: int = 4, constraint_hz: float | None = None,
                 pipeline: int = 0, interleave: int = 1):
        self.clock_hz = self._clock(clock_hz) // clock_div
        self.clock_div = clock_div
        self.constraint_hz = constraint_hz
        divisor = round(self.clock_hz / baud)
        self.board = BoardTop(cfg, rows, cols, seed=seed, kmax=kmax, divisor=divisor,
                              pipeline=pipeline, interleave=interleave)
        self.baud = baud

    def elaborate(self, platform):
        m = Module()
        if self.clock_div == 1:
            m.submodules.board = board = self.board
            core_clk = None
        else:
            # "core" domain: a toggle-divided clock; its reset follows the board clock domain's
            # (none on an ECP5, whose "sync" domain is reset at configuration by GSR).
            m.domains.core = cd = ClockDomain("core")
            # The clock is a register (toggling every clock_div/2 cycles) so that its net
            # keeps the name the clock constraint refers to.
            half = self.clock_div // 2
            cnt = Signal(range(half))
            core_clk = Signal()
            with m.If(cnt == half - 1):
                m.d.sync += [cnt.eq(0), core_clk.eq(~core_clk)]
            with m.Else():
                m.d.sync += cnt.eq(cnt + 1)
            m.d.comb += [cd.clk.eq(core_clk), cd.rst.eq(ResetSignal("sync", allow_reset_less=True))]
            m.submodules.board = board = DomainRenamer("core")(self.board)
        if platform is not None:
            if core_clk is not None:
                platform.add_clock_constraint(core_clk, self.constraint_hz or self.clock_hz)
            uart = platform.request("uart", 0)
            m.d.comb += [board.rx.eq(uart.rx.i), uart.tx.o.eq(board.tx)]
        return m


def _tool(exe: str) -> str:
    here = os.path.join(os.path.dirname(sys.executable), exe)
    return shutil.which(exe) or here


def build_on(platform, top, *, tools, build_dir: str, program: bool = False,
             report: bool = False, execute: bool = True, mult: str = "lut", **overrides):
    """Synthesise, place and route ``top`` on ``platform`` (an Amaranth platform instance).

    ``tools``: :data:`ICE40_TOOLS` or :data:`ECP5_TOOLS` (already-set environment
    variables win). ``report``: also write ``report.json`` (nextpnr, achieved Fmax
    even when the timing target is missed) and ``stat.json`` (yosys cell counts).
    ``mult``: ``"lut"`` maps the PEs' small significand multipliers to logic
    (``synth_ecp5 -nodsp``, with ``-nowidelut`` always on the ECP5: :func:`ecp5_synth_opts`; the iCE40 flow never uses its DSP blocks for them), ``"dsp"``
    lets yosys put them into DSP blocks (one MULT18X18D per PE on an ECP5).
    Returns Amaranth's build products; a failing tool raises
    ``subprocess.CalledProcessError`` (its log is ``<build_dir>/srmac_array.tim``).
    ``execute=False``: only write the files and the build script
    (``build_srmac_array.sh``) to ``build_dir``; returns Amaranth's build plan.
    """
    if mult not in MULTS:
        raise ValueError(f"mult must be one of {', '.join(MULTS)}, got {mult!r}")
    for var, exe, _ in tools:
        os.environ.setdefault(var, _tool(exe))
    if tools is ECP5_TOOLS:
        overrides.setdefault("synth_opts", ecp5_synth_opts(mult))
    if report:
        overrides.setdefault("nextpnr_opts", "--report report.json --timing-allow-fail")
        overrides.setdefault("script_after_synth", "tee -q -o stat.json stat -json")
    if not execute:
        plan = platform.build(top, name=BITSTREAM_NAME, do_build=False, **overrides)
        plan.extract(build_dir)
        return plan
    return platform.build(top, name=BITSTREAM_NAME, build_dir=build_dir, do_program=program,
                          **overrides)
