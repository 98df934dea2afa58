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
  The leading one of ``Y`` is at the anchor or one bit above (``k``; the
  contract's ``k = 2`` needs an addend wider than the accumulator, which the
  dual path never sees); for ``k = 1`` the second stage adds ``B_0`` through a
  short increment that never carries out.
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
from .stages import Cuts

__all__ = ["EagerFarPath", "RoundingFarPath", "far_window"]


def _align(m, sig, amount, lift: int, width: int, name: str):
    """``sig`` placed with its top bit at the anchor and shifted right by ``amount``.

    Returns ``(shifted, lost)``: ``width`` bits, and whether a one fell below bit 0.
    ``sig`` has only ``man + 1`` bits, so each window bit picks from at most that
    many, and bit ``i`` is lost iff ``amount > i + lift``.
    """
    sw = bits_for(width - 1)
    lo = amount[:sw]
    hi = amount[sw:].any() if len(amount) > sw else Const(0, 1)
    shifted, lost = Signal(width, name=f"{name}_shifted"), Signal(name=f"{name}_sticky")
    m.d.comb += [
        shifted.eq(Mux(hi, 0, (sig << lift) >> lo)),
        lost.eq(Cat(sig[i] & (hi | (lo > i + lift)) for i in range(len(sig))).any()),
    ]
    return shifted, lost


def far_window(m, extra: int, width: int, z, p, z_big, shift_p, shift_z, sub):
    """The larger addend at the anchor (one bit higher for a subtraction), the smaller aligned.

    ``shift_p`` (``shift_z``) is how far ``p`` (``z``) sits below the anchor when
    ``z`` (``p``) is the larger one. Both alignments run at once, each straight off
    its own exponent subtractor; ``z_big`` only picks between them afterwards.
    Returns ``(big_placed, small_jammed)``, both ``width`` bits, every bit the
    smaller addend lost OR-ed into bit 0.
    """
    lift = extra + 1  # the anchor's last kept bit
    big = Mux(z_big, z, p)
    big_p = Signal(width, name="big_placed")
    m.d.comb += big_p.eq(Mux(sub, big << (lift + 1), big << lift))
    sh_p, lost_p = _align(m, p, shift_p, lift, width, "p")
    sh_z, lost_z = _align(m, z, shift_z, lift, width, "z")
    jammed = Signal(width, name="small_jammed")
    m.d.comb += jammed.eq(Mux(z_big, sh_p | lost_p, sh_z | lost_z))
    return big_p, jammed


class _FarBase(wiring.Component):
    def __init__(self, man_bits: int, extra: int, width: int, amount_width: int, rand_bits: int,
                 cuts=()):
        self.man_bits, self.extra, self.width = man_bits, extra, width
        self.cuts = tuple(cuts)  # loop boundaries registered inside (hwgen.stages)
        p = man_bits + 1
        sig = {
            "z": In(p),
            "p": In(p),
            "z_big": In(1),
            "shift_p": In(amount_width),
            "shift_z": In(amount_width),
            "sub": In(1),
            "mant": Out(man_bits),
            "offset": Out(3),
            "low": Out(1),
        }
        if rand_bits:
            sig["rand"] = In(rand_bits)
        super().__init__(sig)


def add_sub(m, a, b, sub, width: int, name: str):
    """``a + b`` or ``a - b`` (``sub``) in ``width`` bits: one adder, ``b`` inverted, ``sub`` carried in."""
    out = Signal(width, name=name)
    inv = Signal(width, name=f"{name}_operand")
    m.d.comb += inv.eq(b ^ sub.replicate(width))
    m.d.comb += out.eq((Cat(Const(1, 1), a) + Cat(sub, inv))[1 : width + 1])
    return out


class EagerFarPath(_FarBase):
    """Eager SR far path: ``R`` merged into the one significand adder, then the k stage.

    Members (In): ``z``, ``p`` (man_bits + 1 bits each, grid form); ``z_big``
    (``z`` has the larger grid exponent); ``shift_p`` / ``shift_z`` (how far the
    smaller addend sits below the anchor: exponent difference minus ``sub``, for
    ``z`` larger / ``p`` larger; amounts >= the window width shift everything into
    the jam bit); ``sub`` (effective subtraction); ``rand`` (r + 2 bits: ``R`` low,
    ``B`` above).
    Members (Out): ``mant`` (man_bits), ``offset`` (3 bits, see the module
    docstring), ``low`` (the sum lies below the anchor's binade: only possible
    when the anchor is ``emin``).
    """

    def __init__(self, man_bits: int, rbits: int, amount_width: int | None = None, *, cuts=()):
        self.rbits = rbits
        width = man_bits + rbits + 3  # up to one carry above the anchor: k <= 1, see below
        super().__init__(man_bits, rbits, width, amount_width or bits_for(width), rbits + 2,
                         cuts)

    def elaborate(self, platform):
        m = Module()
        cut = Cuts(m, self.cuts)
        man, r, w = self.man_bits, self.rbits, self.width
        a = man + r + 1
        big_p, small_j = far_window(
            m, r, w, self.z, self.p, self.z_big, self.shift_p, self.shift_z, self.sub
        )
        R = self.rand[:r]
        base = big_p | (R << 1)  # R fills the zero tail of big: wiring, no adder
        s = cut("align", base=base, small=small_j, sub=self.sub, b0=self.rand[r])
        s = cut("mid", **vars(s))
        y = add_sub(m, s.base, s.small, s.sub, w, "far_sum")
        s = cut("add", y=y, b0=s.b0)
        y = s.y
        # Both addends have man + 1 bits, so in window units X <= 2**(a + 2) - 2**(r + 2)
        # and Y = X + 2 R < 2**(a + 2) - 2**(r + 1): the sum carries at most one place
        # above the anchor (the contract's k = 2 cannot happen here), and for k = 1,
        # floor(Y / 2**(r + 1)) <= 2**(man + 2) - 2, so adding B_0 never carries out.
        yt = y[a - man :]  # floor(Y / 2**r): man + 2 bits
        k1 = y[a + 1]
        # Second stage for k = 1: (Y + B_0 2**r) >> (r + 1), an increment beside the k decision.
        m1 = Signal(man + 1, name="m_k1")
        m.d.comb += m1.eq(yt[1:] + (yt[0] & s.b0))
        s = cut("round", mant=Mux(k1, m1[:man], yt[:man]),
                # offset = k + M[man] + 2 M[man + 1]: 2 for k = 1, the hidden bit for k = 0
                offset=Mux(k1, 2, yt[man]), low=~k1 & ~y[a])
        m.d.comb += [self.mant.eq(s.mant), self.offset.eq(s.offset), self.low.eq(s.low)]
        return m


class RoundingFarPath(_FarBase):
    """rn / rz / lazy SR far path: add, 1-bit normalisation, then round.

    Members as :class:`EagerFarPath`, except ``rand`` (r bits, mode "sr" only).
    """

    def __init__(self, man_bits: int, mode: str, rbits: int = 0, amount_width: int | None = None,
                 *, cuts=()):
        if mode not in ("rn", "rz", "sr"):
            raise ValueError(f"unknown rounding mode {mode!r}")
        self.mode, self.rbits = mode, rbits
        extra = {"rn": 1, "rz": 0, "sr": rbits}[mode]
        width = man_bits + extra + 3
        super().__init__(
            man_bits, extra, width, amount_width or bits_for(width), rbits if mode == "sr" else 0,
            cuts,
        )

    def elaborate(self, platform):
        m = Module()
        cut = Cuts(m, self.cuts)
        man, w = self.man_bits, self.width
        a = man + self.extra + 1
        big_p, small_j = far_window(
            m, self.extra, w, self.z, self.p, self.z_big, self.shift_p, self.shift_z, self.sub
        )
        rand = self.rand if self.mode == "sr" else Const(0, 1)
        s = cut("align", big=big_p, small=small_j, sub=self.sub, rand=rand)
        s = cut("mid", **vars(s))
        y = add_sub(m, s.big, s.small, s.sub, w, "far_sum")
        s = cut("add", y=y, rand=s.rand)
        y = s.y
        c = y[a + 1]  # the sum carried above the anchor
        m.submodules.round = rd = LazyRounder(w, man, self.mode, self.rbits)
        m.d.comb += rd.value.eq(Mux(c, y, y << 1))
        if self.mode == "sr":
            m.d.comb += rd.rand.eq(s.rand)
        M = rd.m
        s = cut("round", mant=M[:man],
                # offset = c + M[man] + 2 M[man + 1]
                offset=Mux(M[man + 1], 2 + c, c + M[man]), low=~c & ~y[a])
        m.d.comb += [self.mant.eq(s.mant), self.offset.eq(s.offset), self.low.eq(s.low)]
        return m
