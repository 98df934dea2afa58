"""Shifters: the alignment shifter with sticky and the normaliser (combinational)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lzc import LeadingZeroCounter
from .params import bits_for

__all__ = ["AlignShifter", "Normaliser"]


class AlignShifter(wiring.Component):
    """Right shift with sticky: ``out = value >> amount``, ``sticky`` = a one was shifted out.

    Ports: ``value`` In(width), ``amount`` In(amount_width) (any amount >= width
    shifts everything out), ``out`` Out(width), ``sticky`` Out(1),
    ``jammed`` Out(width) = ``out | sticky`` (sticky OR-ed into bit 0).
    """

    def __init__(self, width: int, amount_width: int):
        self.width = width
        super().__init__(
            {
                "value": In(width),
                "amount": In(amount_width),
                "out": Out(width),
                "sticky": Out(1),
                "jammed": Out(width),
            }
        )

    def elaborate(self, platform):
        m = Module()
        w = self.width
        big = self.amount >= w
        amt = self.amount[: bits_for(w - 1)] if w > 1 else 0
        shifted = self.value >> amt
        # Bits below the shift amount: value & ((1 << amt) - 1).
        low_mask = ~(Const((1 << w) - 1, w) << amt)
        lost = (self.value & low_mask[:w]).any()
        m.d.comb += [
            self.out.eq(Mux(big, 0, shifted)),
            self.sticky.eq(Mux(big, self.value.any(), lost)),
            self.jammed.eq(self.out | self.sticky),
        ]
        return m


class Normaliser(wiring.Component):
    """Left shift that brings the leading one to the top bit, at most ``limit`` places.

    Ports: ``value`` In(width), ``limit`` In(limit_width) (``limit_width=0``: no
    limit), ``out`` Out(width) = ``value << shift``, ``shift`` Out = min(lzc, limit),
    ``lzc`` Out = leading zeros of ``value`` (``width`` for zero). The limit keeps a
    result on the subnormal grid (its exponent may not go below emin).
    """

    def __init__(self, width: int, limit_width: int = 0):
        self.width = width
        self.limit_width = limit_width
        cw = bits_for(width)
        sig = {"value": In(width), "out": Out(width), "shift": Out(cw), "lzc": Out(cw)}
        if limit_width:
            sig["limit"] = In(limit_width)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        m.submodules.lzc = lzc = LeadingZeroCounter(self.width)
        m.d.comb += lzc.value.eq(self.value)
        m.d.comb += self.lzc.eq(lzc.count)
        if self.limit_width:
            m.d.comb += self.shift.eq(Mux(lzc.count > self.limit, self.limit, lzc.count))
        else:
            m.d.comb += self.shift.eq(lzc.count)
        m.d.comb += self.out.eq((self.value << self.shift)[: self.width])
        return m
