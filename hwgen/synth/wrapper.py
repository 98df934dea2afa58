"""The register-bounded serial-IO harness that makes a component's Fmax measurable."""

from __future__ import annotations

import re

from amaranth.back import rtlil as _rtlil
from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Elaboratable,
    Module,
    ResetSignal,
    Shape,
    Signal,
)
from amaranth.lib import wiring

__all__ = ["ShiftWrapper", "describe_wrapper_bit"]


# ---- the register-bounded wrapper --------------------------------------------


def _flat_members(dut):
    """(name, flow, width) of each port of a component; nested interfaces are refused."""
    ports = []
    for name, member in dut.signature.members.items():
        if not member.is_port:
            raise ValueError(
                f"port {name!r} of {type(dut).__name__} is an interface: "
                "synthesis needs a component with plain signal ports"
            )
        shape = Shape.cast(member.shape)
        ports.append((name, member.flow, shape.width))
    ins = [(n, w) for n, f, w in ports if f == wiring.In and w]
    outs = [(n, w) for n, f, w in ports if f == wiring.Out and w]
    return ins, outs


class ShiftWrapper(Elaboratable):
    """A register on every port bit of ``dut``; serial IO through five pins.

    Pins: ``sin`` (serial operand bits; every clock, the input chain shifts by
    one), ``load`` (copy the output registers into the output shift register,
    else shift it by one), ``sout`` (its bit 0), ``rst`` (registered, then the
    ``sync`` reset of the component), ``clk``.

    Registers, all in the one clock domain: ``wrap_in`` (``n_in`` bits: every
    input port, in signature order, concatenated LSB first), ``wrap_out_q``
    (``n_out`` bits: every output port captured each clock with no logic in
    front, so the component's output paths end on a plain register),
    ``wrap_out_sh`` (the output shift register) and ``wrap_rst``.
    """

    def __init__(self, dut):
        self.dut = dut
        self.inputs, self.outputs = _flat_members(dut)
        if not self.inputs or not self.outputs:
            raise ValueError(f"{type(dut).__name__} needs at least one input and one output port")
        self.n_in = sum(w for _, w in self.inputs)
        self.n_out = sum(w for _, w in self.outputs)
        self.sin, self.load, self.rst, self.sout = (
            Signal(name=n) for n in ("sin", "load", "rst", "sout")
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        # The pin's clock drives a reset-less domain that registers the reset pin:
        # the component's reset then starts on a flip-flop like every other input.
        m.domains.sync = ClockDomain("sync")
        m.domains.pin = ClockDomain("pin", reset_less=True)
        wrap_rst = Signal()
        m.d.comb += [ClockSignal("sync").eq(ClockSignal("pin")), ResetSignal("sync").eq(wrap_rst)]
        m.d.pin += wrap_rst.eq(self.rst)

        # keep: the names survive synthesis, so that path ends can be told apart.
        wrap_in = Signal(self.n_in, attrs={"keep": 1})
        m.d.pin += wrap_in.eq(Cat(self.sin, wrap_in[:-1]))
        m.d.comb += Cat(*(getattr(dut, n) for n, _ in self.inputs)).eq(wrap_in)

        wrap_out_q = Signal(self.n_out, attrs={"keep": 1})
        wrap_out_sh = Signal(self.n_out)
        m.d.pin += wrap_out_q.eq(Cat(*(getattr(dut, n) for n, _ in self.outputs)))
        with m.If(self.load):
            m.d.pin += wrap_out_sh.eq(wrap_out_q)
        with m.Else():
            m.d.pin += wrap_out_sh.eq(wrap_out_sh >> 1)
        m.d.comb += self.sout.eq(wrap_out_sh[0])
        return m

    def rtlil(self, name: str = "top") -> str:
        """RTLIL text of the wrapped design, top module ``name``."""
        pins = [self.sin, self.load, self.rst, self.sout]
        return _rtlil.convert(self, ports=[ClockSignal("pin"), *pins], name=name)

    def describe(self, label: str) -> str:
        """Translate ``wrap_in[k]`` / ``wrap_out_q[k]`` into ``in a[3]`` / ``out acc[5]``."""
        return describe_wrapper_bit(label, self.inputs, self.outputs)


def describe_wrapper_bit(label: str, inputs, outputs) -> str:
    """``wrap_in[k]`` -> ``in <port>[<bit>]``; ``wrap_out_q[k]`` -> ``out <port>[<bit>]``.

    ``inputs``/``outputs``: (name, width) lists in wrapper order. Other labels pass unchanged.
    """
    m = re.fullmatch(r"(wrap_in|wrap_out_q|wrap_out_sh)(?:\[(\d+)\])?", label)
    if not m:
        return label
    side = "in" if m.group(1) == "wrap_in" else "out"
    k = int(m.group(2) or 0)
    for n, w in inputs if side == "in" else outputs:
        if k < w:
            return f"{side} {n}[{k}]" if w > 1 else f"{side} {n}"
        k -= w
    return label
