"""The far paths of the dual-path accumulation step (combinational).

Far means: effective addition, or an effective subtraction whose addends are at
least two binades apart (or one apart with a subnormal smaller addend). Then the
exact sum is positive after the swap (no negation) and its leading one lies in
one of a few known places, so there is no normaliser.

Both far paths share the window of :class:`hwgen.params.DualParams`: the larger
significand ``big`` is placed so that the *anchor* (its own exponent for an
addition, one below for a subtraction) sits at bit ``anchor``; the smaller one
goes through one right shifter whose lost bits are jammed into bit 0. Bit 0 is
never a rounding position and ``big`` is zero there, so the jammed sum rounds
like the exact one (docs/design.md, section 6.2).

* :class:`EagerFarPath` (``sr_eager``): the random bits ``R`` sit in the zero
  tail of ``big`` just below the anchor's last kept bit, so the one adder
  computes ``Y = floor(X / w) + R`` directly (no 3:2 layer, no second adder).
  The leading one of ``Y`` is at the anchor or one or two bits above (``k``);
  the second stage adds ``B mod 2**k`` through a short increment.
* :class:`RoundingFarPath` (``rn``, ``rz``, ``sr_lazy``): the classic order: add,
  normalise (a 1-bit shift: the sum carried above the anchor or not), then round
  (:class:`hwgen.rounding.LazyRounder`: for SR an r-bit adder with ``R`` after
  the normalisation, then the increment).

Both return the significand ``M`` (``man_bits + 2`` bits, at most
``2**(man_bits + 1)``) as the code's mantissa field ``mant`` plus the
``offset`` of its exponent field above ``e_anchor - 1``: ``offset = k + M[man] +
2 M[man + 1]``, so the exponent field is ``e_anchor - 1 + offset``, picked from
precomputed candidates.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .params import bits_for
from .rounding import LazyRounder
from .shift import AlignShifter

__all__ = ["EagerFarPath", "RoundingFarPath", "far_window"]


def far_window(m, man: int, extra: int, width: int, big, small, amount, sub):
    """Place ``big`` at the anchor (one bit higher for a subtraction) and align ``small``.

    Returns ``(big_placed, small_jammed)``, both ``width`` bits: ``small`` shifted
    right by ``amount`` from the anchor, every lost bit OR-ed into bit 0.
    """
    lift = extra + 1  # the anchor's last kept bit
    big_p = Signal(width, name="big_placed")
    m.d.comb += big_p.eq(Mux(sub, big << (lift + 1), big << lift))
    m.submodules.align = al = AlignShifter(width, len(amount))
    m.d.comb += [al.value.eq(small << lift), al.amount.eq(amount)]
    return big_p, al.jammed


class _FarBase(wiring.Component):
    def __init__(self, man_bits: int, extra: int, width: int, amount_width: int, rand_bits: int):
        self.man_bits, self.extra, self.width = man_bits, extra, width
        p = man_bits + 1
        sig = {
            "big": In(p),
            "small": In(p),
            "amount": In(amount_width),
            "sub": In(1),
            "mant": Out(man_bits),
            "offset": Out(3),
            "low": Out(1),
        }
        if rand_bits:
            sig["rand"] = In(rand_bits)
        super().__init__(sig)

    def _finish(self, m, M, k):
        man = self.man_bits
        off = Signal(3, name="offset_sum")
        m.d.comb += [
            off.eq(k + M[man] + Cat(Const(0, 1), M[man + 1])),
            self.offset.eq(off),
            self.mant.eq(M[:man]),
        ]


class EagerFarPath(_FarBase):
    """Eager SR far path: ``R`` merged into the one significand adder, then the k stage.

    Members (In): ``big``, ``small`` (man_bits + 1 bits each, grid form);
    ``amount`` (right shift of ``small`` below the anchor: exponent difference
    minus ``sub``; amounts >= the window width shift everything into the jam bit);
    ``sub`` (effective subtraction); ``rand`` (r + 2 bits: ``R`` low, ``B`` above).
    Members (Out): ``mant`` (man_bits), ``offset`` (3 bits, see the module
    docstring), ``low`` (the sum lies below the anchor's binade: only possible
    when the anchor is ``emin``).
    """

    def __init__(self, man_bits: int, rbits: int, amount_width: int | None = None):
        self.rbits = rbits
        width = man_bits + rbits + 4
        super().__init__(man_bits, rbits, width, amount_width or bits_for(width), rbits + 2)

    def elaborate(self, platform):
        m = Module()
        man, r, w = self.man_bits, self.rbits, self.width
        a = man + r + 1
        big_p, small_j = far_window(m, man, r, w, self.big, self.small, self.amount, self.sub)
        R, B = self.rand[:r], self.rand[r : r + 2]
        y = Signal(w, name="far_sum")
        base = big_p | (R << 1)  # R fills the zero tail of big: wiring, no adder
        m.d.comb += y.eq(Mux(self.sub, base - small_j, base + small_j))
        yt = y[a - man :]  # floor(Y / 2**r): man + 3 bits
        k2, k1 = y[a + 2], y[a + 1]
        m1 = Signal(man + 2, name="m_k1")
        m2 = Signal(man + 2, name="m_k2")
        c2 = (yt[:2] + B)[2]  # (Y + B 2**r) carries past the two bits dropped for k = 2
        m.d.comb += [m1.eq(yt[1:] + (yt[0] & B[0])), m2.eq(yt[2:] + c2)]
        M = Signal(man + 2, name="m_far")
        k = Signal(2, name="k")
        m.d.comb += [
            M.eq(Mux(k2, m2, Mux(k1, m1, yt[: man + 1]))),
            k.eq(Mux(k2, 2, k1)),
            self.low.eq(~k2 & ~k1 & ~y[a]),
        ]
        self._finish(m, M, k)
        return m


class RoundingFarPath(_FarBase):
    """rn / rz / lazy SR far path: add, 1-bit normalisation, then round.

    Members as :class:`EagerFarPath`, except ``rand`` (r bits, mode "sr" only).
    """

    def __init__(self, man_bits: int, mode: str, rbits: int = 0, amount_width: int | None = None):
        if mode not in ("rn", "rz", "sr"):
            raise ValueError(f"unknown rounding mode {mode!r}")
        self.mode, self.rbits = mode, rbits
        extra = {"rn": 1, "rz": 0, "sr": rbits}[mode]
        width = man_bits + extra + 3
        super().__init__(
            man_bits, extra, width, amount_width or bits_for(width), rbits if mode == "sr" else 0
        )

    def elaborate(self, platform):
        m = Module()
        man, w = self.man_bits, self.width
        a = man + self.extra + 1
        big_p, small_j = far_window(
            m, man, self.extra, w, self.big, self.small, self.amount, self.sub
        )
        y = Signal(w, name="far_sum")
        m.d.comb += y.eq(Mux(self.sub, big_p - small_j, big_p + small_j))
        c = y[a + 1]  # the sum carried above the anchor
        m.submodules.round = rd = LazyRounder(w, man, self.mode, self.rbits)
        m.d.comb += rd.value.eq(Mux(c, y, y << 1))
        if self.mode == "sr":
            m.d.comb += rd.rand.eq(self.rand)
        m.d.comb += self.low.eq(~c & ~y[a])
        self._finish(m, rd.m, c)
        return m
