"""Rounding stages (combinational).

* :class:`LazyRounder`: rounds a *normalised* significand (leading one at the
  top bit, or lower for a subnormal result) by ``rn``, ``rz`` or ``sr``
  (SR_{p,r}: an r-bit adder after the normaliser, its carry rounds up).
* :class:`EagerFarRounder`: the second stage of the eager far path. The random
  bits ``R`` were already added into the significand sum at the anchor; this
  stage only picks ``k`` (0, 1, 2: how far the sum carried above the anchor)
  and adds the ``k`` extra random bits ``B`` before truncating.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LazyRounder", "EagerFarRounder"]


class LazyRounder(wiring.Component):
    """Round the ``width``-bit normalised ``value`` to ``man_bits + 1`` bits.

    Ports: ``value`` In(width) (leading one at bit width-1 for a normal
    result); ``rand`` In(rbits) (mode "sr" only); ``m`` Out(man_bits + 2): the
    kept significand plus the round-up increment (may carry to 2**(man_bits+1)).
    Modes: "rn" (ties to even; guard bit + sticky of everything below), "rz"
    (truncate), "sr" (round up iff the r bits below the kept ones plus R carry).
    """

    def __init__(self, width: int, man_bits: int, mode: str, rbits: int = 0):
        if mode not in ("rn", "rz", "sr"):
            raise ValueError(f"unknown rounding mode {mode!r}")
        extra = {"rn": 2, "rz": 0, "sr": rbits}[mode]
        if width < man_bits + 1 + extra:
            raise ValueError(f"LazyRounder width {width} too small for {man_bits} + {extra} bits")
        self.width, self.man_bits, self.mode, self.rbits = width, man_bits, mode, rbits
        sig = {"value": In(width), "m": Out(man_bits + 2)}
        if mode == "sr":
            sig["rand"] = In(rbits)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        w, man = self.width, self.man_bits
        lo = w - 1 - man  # bit index of the last kept bit
        kept = self.value[lo:w]
        if self.mode == "rz":
            up = Const(0, 1)
        elif self.mode == "rn":
            guard = self.value[lo - 1]
            sticky = self.value[: lo - 1].any()
            up = guard & (sticky | kept[0])
        else:
            r = self.rbits
            frac = self.value[lo - r : lo]
            up = (frac + self.rand)[r]  # carry out of the r-bit random addition
        m.d.comb += self.m.eq(kept + up)
        return m


class EagerFarRounder(wiring.Component):
    """Second stage of the eager far path.

    ``y`` In(man_bits + r + 4): the sum ``floor(X / w) + R`` in window units
    ``w = 2**(anchor - man_bits - r)``, read from bit 0 (its bit man_bits + r
    has the anchor's weight). ``b`` In(2): the extra random bits B.
    Outputs ``k`` Out(2) = max(0, floor(log2 y) - man_bits - r) and
    ``m`` Out(man_bits + 2) = (y + (B mod 2**k) * 2**r) >> (r + k).
    """

    def __init__(self, man_bits: int, rbits: int):
        self.man_bits, self.rbits = man_bits, rbits
        super().__init__(
            {
                "y": In(man_bits + rbits + 4),
                "b": In(2),
                "k": Out(2),
                "m": Out(man_bits + 2),
            }
        )

    def elaborate(self, platform):
        m = Module()
        man, r = self.man_bits, self.rbits
        anchor = man + r
        k2 = self.y[anchor + 2]
        k1 = self.y[anchor + 1]
        yt = self.y[r:]  # man + 4 bits: floor(y / 2**r)
        bk = Mux(k2, self.b, Mux(k1, self.b[0], 0))
        s = yt + bk
        m.d.comb += [
            self.k.eq(Mux(k2, 2, Mux(k1, 1, 0))),
            self.m.eq(Mux(k2, s[2:], Mux(k1, s[1:], s))[: man + 2]),
        ]
        return m
