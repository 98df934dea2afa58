"""Leading-zero counter (combinational)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .params import bits_for

__all__ = ["LeadingZeroCounter"]


class LeadingZeroCounter(wiring.Component):
    """``count`` = number of zero bits above the leading one of ``value`` (``width`` if zero).

    Ports: ``value`` In(width), ``count`` Out(bits_for(width)).
    A binary tree of (all-zero, count) pairs: depth log2(width).
    """

    def __init__(self, width: int):
        if width < 1:
            raise ValueError(f"LeadingZeroCounter width must be >= 1, got {width}")
        self.width = width
        super().__init__({"value": In(width), "count": Out(bits_for(width))})

    def elaborate(self, platform):
        m = Module()
        # Leaves MSB first; padded below to a power of two with "one" bits, so an
        # all-zero value counts exactly `width` zeros before the padding.
        nodes = [(~self.value[i], None) for i in reversed(range(self.width))]
        while len(nodes) & (len(nodes) - 1):
            nodes.append((Const(0, 1), None))
        while len(nodes) > 1:
            nxt = []
            for (zh, ch), (zl, cl) in zip(nodes[0::2], nodes[1::2], strict=True):
                if ch is None:  # first level: one-bit count = "upper bit is zero"
                    c = zh
                else:
                    c = Mux(zh, Cat(cl, Const(1, 1)), Cat(ch, Const(0, 1)))
                nxt.append((zh & zl, c))
            nodes = nxt
        zero, cnt = nodes[0]
        if cnt is None:  # width 1
            cnt = zero
        # Without padding, an all-zero value needs the extra top bit of the count.
        m.d.comb += self.count.eq(Mux(zero, self.width, cnt))
        return m
