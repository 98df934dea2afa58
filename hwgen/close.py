"""The close path of the dual-path accumulation step (combinational).

Effective subtraction of two addends whose grid exponents differ by at most
one (and, when they differ, the smaller addend is normal). Both addends have
the accumulator's precision ``p``, so their exact difference fits ``p + 1``
bits: the alignment is a 1-bit multiplexer, the two subtractions (z - p and
p - z) run in parallel and the non-negative one is kept, then a short
leading-zero count and left shift normalise it (no further than ``emin``).

Rounding is needed only when nothing cancels; then only the guard bit (the
lowest of the ``p + 1``) is lost and the value is exact below it, so

* rn: up iff guard and the last kept bit (a tie: to even),
* rz: never,
* sr (SR_{p,r}): up iff guard and the top random bit (``floor(f 2**r) + R >= 2**r``
  with ``f = 1/2``),

and the increment runs on the un-normalised difference beside the leading-zero
count. The exponent of a result that did not cancel is the larger addend's
(``e_big``, or ``e_big + 1`` when the increment carries out), so the carry only
drives a multiplexer.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.formats import FloatFormat

from .params import bits_for
from .shift import Normaliser
from .stages import Cuts

__all__ = ["ClosePath", "overflow"]


def overflow(fmt: FloatFormat, efield, mant):
    """True when the magnitude code ``efield:mant`` exceeds ``fmt.max_code`` (Amaranth value).

    ``efield`` may be wider than the format's exponent field; ``mant`` has
    ``fmt.man_bits`` bits.
    """
    m = fmt.man_bits
    e_max, m_max = fmt.max_code >> m, fmt.max_code & ((1 << m) - 1)
    over = efield > e_max
    if m_max != (1 << m) - 1:  # "fn": the all-ones mantissa of the top binade is NaN
        over = over | ((efield == e_max) & (mant > m_max))
    return over


class ClosePath(wiring.Component):
    """``|z - p|`` rounded, for addends at most one binade apart (effective subtraction).

    Members (In): ``z_sig``, ``p_sig`` (precision bits each, grid form: hidden bit
    at the top, clear for a subnormal); ``z_small`` / ``p_small`` (that addend's
    grid exponent is one below the other's: it is shifted right by one; at most
    one is set); ``e_big`` (exp_width, the larger grid exponent, >= 1, at most one
    above the largest finite exponent field); ``rand_top`` (mode "sr" only: the
    top random bit).
    Members (Out): ``z_wins`` (|z| >= |p|: the result has z's sign); ``zero``
    (exact zero); ``below`` (non-zero result below ``2**emin``: subnormal, or
    flushed without subnormals); ``mant`` (man_bits) and ``efield`` (exp_width)
    of the magnitude code; ``ovf`` (that code exceeds the largest finite one).
    """

    def __init__(self, fmt: FloatFormat, mode: str, exp_width: int, *, cuts=()):
        if mode not in ("rn", "rz", "sr"):
            raise ValueError(f"unknown rounding mode {mode!r}")
        self.fmt, self.mode, self.exp_width = fmt, mode, exp_width
        self.cuts = tuple(cuts)  # loop boundaries registered inside (hwgen.stages)
        p = fmt.precision
        sig = {
            "z_sig": In(p),
            "p_sig": In(p),
            "z_small": In(1),
            "p_small": In(1),
            "e_big": In(exp_width),
            "z_wins": Out(1),
            "zero": Out(1),
            "below": Out(1),
            "mant": Out(fmt.man_bits),
            "efield": Out(exp_width),
            "ovf": Out(1),
        }
        if mode == "sr":
            sig["rand_top"] = In(1)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        cut = Cuts(m, self.cuts)
        f = self.fmt
        man, p = f.man_bits, f.precision
        w = p + 1  # the difference: p bits and the guard bit

        def place(sig, small):
            return Mux(small, Cat(sig, Const(0, 1)), Cat(Const(0, 1), sig))

        zc, pc = Signal(w, name="z_al"), Signal(w, name="p_al")
        m.d.comb += [zc.eq(place(self.z_sig, self.z_small)), pc.eq(place(self.p_sig, self.p_small))]
        rand_top = self.rand_top if self.mode == "sr" else Const(0, 1)
        s = cut("align", zc=zc, pc=pc, e_big=self.e_big, rand_top=rand_top)
        # Both orders at once: no negation after the subtraction.
        d_zp, d_pz = Signal(w + 1, name="z_minus_p"), Signal(w + 1, name="p_minus_z")
        m.d.comb += [d_zp.eq(s.zc - s.pc), d_pz.eq(s.pc - s.zc)]
        s = cut("add", d_zp=d_zp, d_pz=d_pz, e_big=s.e_big, rand_top=s.rand_top)
        s = cut("mid", **vars(s))
        e_big = s.e_big
        z_wins = ~s.d_zp[w]
        mag = Signal(w, name="diff")
        m.d.comb += mag.eq(Mux(z_wins, s.d_zp[:w], s.d_pz[:w]))

        lw = bits_for(w)
        if f.subnormals:
            # Normalise, at most e_big - 1 places (the result's exponent field stays >= 1).
            limit = Signal(lw, name="limit")
            m.d.comb += limit.eq(Mux(e_big > w, w, e_big - 1))
            m.submodules.norm = nrm = Normaliser(w, lw)
            m.d.comb += [nrm.value.eq(mag), nrm.limit.eq(limit)]
            normal = nrm.out[w - 1]
        else:
            # Without subnormals a result below 2**emin is flushed: no limit needed.
            m.submodules.norm = nrm = Normaliser(w)
            m.d.comb += nrm.value.eq(mag)
            normal = nrm.lzc < e_big
        zero = nrm.lzc == w

        # No cancellation: round the guard bit; the increment runs beside the LZC.
        keep = mag[w - 1]
        guard, lsb = mag[0], mag[1]
        if self.mode == "rn":
            up = keep & guard & lsb
        elif self.mode == "sr":
            up = keep & guard & s.rand_top
        else:
            up = Const(0, 1)
        inc = Signal(p + 1, name="rounded")
        m.d.comb += inc.eq(mag[1:] + up)
        carry = inc[p]
        mant = Signal(man, name="close_mant")
        m.d.comb += mant.eq(Mux(keep, inc[:man], nrm.out[1 : 1 + man]))

        ew = self.exp_width
        e_keep = Signal(ew, name="e_keep")
        e_norm = Signal(ew, name="e_norm")
        m.d.comb += [
            e_keep.eq(e_big + carry),
            e_norm.eq(Mux(normal, e_big - nrm.shift, 0)),
        ]
        # Overflow. Without cancellation the field is e_big or e_big + 1. After a
        # cancellation it is at most the largest finite field (e_big is at most one
        # above it, the shift at least one), so only "fn" can overflow there: the
        # all-ones mantissa of its top binade, reached from e_big = top + 1 by a shift of 1.
        o_keep = Mux(carry, overflow(f, e_big + 1, 0), overflow(f, e_big, mant))
        e_max = f.max_code >> man
        o_cancel = overflow(f, Mux((e_big == e_max + 1) & (nrm.shift == 1), e_max, 0), mant)
        s = cut("round", z_wins=z_wins, zero=zero, below=~normal & ~zero, mant=mant,
                efield=Mux(keep, e_keep, e_norm), ovf=Mux(keep, o_keep, o_cancel))
        m.d.comb += [self.z_wins.eq(s.z_wins), self.zero.eq(s.zero), self.below.eq(s.below),
                     self.mant.eq(s.mant), self.efield.eq(s.efield), self.ovf.eq(s.ovf)]
        return m
