"""Code decoding and the exact multiplier (combinational)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.formats import FloatFormat

__all__ = ["Unpacker", "ExactMultiplier", "ProductUnit"]


class Unpacker(wiring.Component):
    """Split a code of ``fmt`` into sign, integer significand and LSB exponent.

    Ports: ``code`` In(fmt.width); ``sign`` Out(1); ``sig`` Out(fmt.precision)
    (hidden bit included; 0 for zeros, NaN, inf, and for subnormal codes when
    ``fmt.subnormals`` is False); ``exp`` Out(signed(exp_width)): the value is
    ``sig * 2**exp``; ``is_nan``, ``is_inf`` Out(1) per ``fmt.specials``.
    """

    def __init__(self, fmt: FloatFormat, exp_width: int):
        self.fmt = fmt
        super().__init__(
            {
                "code": In(fmt.width),
                "sign": Out(1),
                "sig": Out(fmt.precision),
                "exp": Out(signed(exp_width)),
                "is_nan": Out(1),
                "is_inf": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        man = f.man_bits
        mfield = self.code[:man] if man else Const(0, 1)
        efield = self.code[man : man + f.exp_bits]
        normal = efield != 0
        if f.specials == "ieee":
            top = efield == f.exp_field_max
            m.d.comb += [self.is_inf.eq(top & (mfield == 0)), self.is_nan.eq(top & (mfield != 0))]
        elif f.specials == "fn":
            m.d.comb += self.is_nan.eq(self.code[: f.width - 1] == f.mag_mask)
        special = self.is_nan | self.is_inf
        hidden = Const(1 << man, f.precision)
        sub = mfield if f.subnormals else 0
        m.d.comb += [
            self.sign.eq(self.code[f.width - 1]),
            self.sig.eq(Mux(special, 0, Mux(normal, hidden | mfield, sub))),
            self.exp.eq(Mux(normal, efield, 1) - (f.bias + man)),
        ]
        return m


class ExactMultiplier(wiring.Component):
    """Unsigned ``prod = a * b``: ``a``, ``b`` In(width), ``prod`` Out(2 * width). Exact."""

    def __init__(self, width: int):
        self.width = width
        super().__init__({"a": In(width), "b": In(width), "prod": Out(2 * width)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.prod.eq(self.a * self.b)
        return m


class ProductUnit(wiring.Component):
    """Exact product of two input-format codes, with IEEE special-value rules.

    Ports: ``a``, ``b`` In(fmt.width); ``sign`` Out(1) = sign(a) xor sign(b);
    ``sig`` Out(2 * precision); ``exp`` Out(signed(exp_width)) (value =
    ``sig * 2**exp``); ``is_nan`` (NaN operand, or inf * 0), ``is_inf`` Out(1).
    """

    def __init__(self, fmt: FloatFormat, exp_width: int):
        self.fmt = fmt
        self.exp_width = exp_width
        super().__init__(
            {
                "a": In(fmt.width),
                "b": In(fmt.width),
                "sign": Out(1),
                "sig": Out(2 * fmt.precision),
                "exp": Out(signed(exp_width)),
                "is_nan": Out(1),
                "is_inf": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.ua = ua = Unpacker(self.fmt, self.exp_width)
        m.submodules.ub = ub = Unpacker(self.fmt, self.exp_width)
        m.submodules.mul = mul = ExactMultiplier(self.fmt.precision)
        m.d.comb += [ua.code.eq(self.a), ub.code.eq(self.b), mul.a.eq(ua.sig), mul.b.eq(ub.sig)]
        zero_a = (ua.sig == 0) & ~ua.is_nan & ~ua.is_inf
        zero_b = (ub.sig == 0) & ~ub.is_nan & ~ub.is_inf
        nan = ua.is_nan | ub.is_nan | (ua.is_inf & zero_b) | (ub.is_inf & zero_a)
        m.d.comb += [
            self.sign.eq(ua.sign ^ ub.sign),
            self.sig.eq(mul.prod),
            self.exp.eq(ua.exp + ub.exp),
            self.is_nan.eq(nan),
            self.is_inf.eq((ua.is_inf | ub.is_inf) & ~nan),
        ]
        return m
