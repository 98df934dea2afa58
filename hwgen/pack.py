"""Result encoding: overflow, flush-to-zero, signed zeros and special values."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.formats import FloatFormat

__all__ = ["Packer", "assemble"]


class Packer(wiring.Component):
    """Encode ``(-1)**sign * m * 2**(eg - man_bits)`` as a ``fmt`` code.

    Ports (In): ``sign``; ``m`` (man_bits + 2 bits, may equal 2**precision);
    ``eg`` signed(exp_width) grid exponent (>= emin); ``flush`` (exact value
    below 2**emin with subnormals off); ``exact_zero`` and ``zero_sign`` (the
    sign of an exact zero sum); ``is_nan``, ``is_inf``, ``inf_sign``.
    Out: ``code`` (fmt.width). Overflow gives max finite under ``rz``, a
    saturating format or specials "none"; else inf ("ieee") or NaN ("fn").
    """

    def __init__(self, fmt: FloatFormat, mode: str, exp_width: int):
        self.fmt, self.mode, self.exp_width = fmt, mode, exp_width
        super().__init__(
            {
                "sign": In(1),
                "m": In(fmt.man_bits + 2),
                "eg": In(signed(exp_width)),
                "flush": In(1),
                "exact_zero": In(1),
                "zero_sign": In(1),
                "is_nan": In(1),
                "is_inf": In(1),
                "inf_sign": In(1),
                "code": Out(fmt.width),
            }
        )

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        mw = self.exp_width + f.man_bits + 2
        # ((eg - emin) << man) + m: one formula for normals, subnormals and a carry.
        mag = Const(0, mw)
        mag = ((self.eg - f.emin) << f.man_bits)[:mw] + self.m
        mag = mag[:mw]
        overflow = mag > f.max_code
        m.d.comb += self.code.eq(
            assemble(f, self.mode, mag[: f.width - 1], overflow, self.sign, self.flush,
                     self.exact_zero, self.zero_sign, self.is_nan, self.is_inf, self.inf_sign)
        )
        return m


def assemble(fmt: FloatFormat, mode: str, mag, overflow, sign, flush, exact_zero, zero_sign,
             is_nan, is_inf, inf_sign):
    """The code of a rounded result (Amaranth value): specials, zeros, overflow, then ``mag``.

    ``mag``: the magnitude code (width - 1 bits) when it is in range; ``overflow``:
    it is not (the largest finite value under ``rz``, a saturating format or
    specials "none"; else inf or NaN); ``flush``: a non-zero value below 2**emin
    without subnormals (a zero of ``sign``); ``exact_zero`` with ``zero_sign``.
    """
    f = fmt
    if mode == "rz" or f.saturate or f.specials == "none":
        ovf = Cat(Const(f.max_code, f.width - 1), sign)
    elif f.specials == "ieee":
        ovf = Cat(Const(f.inf_code, f.width - 1), sign)
    else:
        ovf = Const(f.nan_code, f.width)
    zero = exact_zero | flush
    zsign = Mux(exact_zero, zero_sign, sign)
    finite = Mux(
        zero,
        Cat(Const(0, f.width - 1), zsign),
        Mux(overflow, ovf, Cat(mag, sign)),
    )
    if f.has_inf:
        inf = Cat(Const(f.inf_code, f.width - 1), inf_sign)
    elif f.saturate or not f.has_nan:
        inf = Cat(Const(f.max_code, f.width - 1), inf_sign)
    else:
        inf = Const(f.nan_code, f.width)
    nan = Const(f.nan_code if f.has_nan else 0, f.width)
    return Mux(is_nan, nan, Mux(is_inf, inf, finite))
