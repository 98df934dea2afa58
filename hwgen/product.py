"""The exact product as it enters the accumulation loop: one ``data.StructLayout`` per datapath.

Everything here happens before the pipeline register, outside the loop:
decoding, the exact multiplier, the special-value rules and the normalisation
of the product (and, for the dual datapath, its biasing onto the
accumulator's grid). The loop then only sees the fields of :func:`product_layout`.

* ``single``: ``sig`` is the ``2 p_in``-bit product with its leading one at
  the top bit (0 for a zero product) and ``exp`` = floor(log2 |a*b|), signed.
* ``dual``: the product in the accumulator's *grid form* (see
  :class:`hwgen.params.DualParams`): ``exp`` is the biased exponent field,
  at least 1, and ``sig`` the accumulator-precision significand, its hidden bit
  clear when the product lies below ``2**emin`` (a zero product: ``exp`` 1,
  ``sig`` 0). Exact because :meth:`DualParams.limit` admits only
  configurations whose products all lie on the accumulator's grid.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ref.config import MacConfig

from .params import DualParams, MacParams, bits_for
from .shift import Normaliser
from .unpack import ExactMultiplier, Unpacker

__all__ = ["product_layout", "ProductStage"]


def product_layout(cfg: MacConfig, datapath: str) -> data.StructLayout:
    """The product's fields for ``datapath`` ("single" or "dual"); see the module docstring."""
    flags = {"sign": 1, "zero": 1, "nan": 1, "inf": 1}
    if datapath == "single":
        p = MacParams(cfg)
        return data.StructLayout({**flags, "sig": p.prod_width, "exp": signed(p.exp_width)})
    if datapath == "dual":
        d = DualParams(cfg)
        return data.StructLayout({**flags, "sig": d.precision, "exp": d.exp_width})
    raise ValueError(f"unknown datapath {datapath!r}")


class ProductStage(wiring.Component):
    """Exact product of two input codes, normalised into :func:`product_layout` form.

    Members: ``a``, ``b`` In(in_fmt.width), input-format codes; ``product``
    Out(product_layout(cfg, datapath)).
    """

    def __init__(self, cfg: MacConfig, datapath: str):
        self.cfg, self.datapath = cfg, datapath
        w = cfg.in_fmt.width
        super().__init__(
            {"a": In(w), "b": In(w), "product": Out(product_layout(cfg, datapath))}
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        fi = cfg.in_fmt
        ew = MacParams(cfg).exp_width
        pp = 2 * fi.precision
        man = fi.man_bits
        m.submodules.ua = ua = Unpacker(fi, 2)  # sign and special flags
        m.submodules.ub = ub = Unpacker(fi, 2)
        m.submodules.mul = mul = ExactMultiplier(fi.precision)
        m.d.comb += [ua.code.eq(self.a), ub.code.eq(self.b)]

        def fields(code):
            """Significand (hidden bit = exponent field non-zero), grid exponent max(E, 1),
            zero, and (exponent field, normal)."""
            e, mf = code[man : man + fi.exp_bits], code[:man] if man else Const(0, 0)
            normal = e != 0
            sig = Cat(mf if fi.subnormals else Mux(normal, mf, 0), normal)
            return sig, Cat(e[0] | ~normal, e[1:]), sig == 0, (e, normal)

        sig_a, e_a, zero_a, raw_a = fields(self.a)
        sig_b, e_b, zero_b, raw_b = fields(self.b)
        special = ua.is_nan | ua.is_inf | ub.is_nan | ub.is_inf
        nan = ua.is_nan | ub.is_nan | (ua.is_inf & zero_b) | (ub.is_inf & zero_a)
        out = self.product
        zero = Signal(name="zero")
        m.d.comb += [
            zero.eq((zero_a | zero_b) & ~special),
            out.sign.eq(ua.sign ^ ub.sign),
            out.zero.eq(zero),
            out.nan.eq(nan),
            out.inf.eq((ua.is_inf | ub.is_inf) & ~nan),
        ]
        # floor(log2 |a*b|) = E_a + E_b - 2 (bias + man) + (pp - 1) - lzc(product)
        lead = (pp - 1) - 2 * (fi.bias + man)
        if self.datapath == "dual":
            self._dual(m, (sig_a, *raw_a), (sig_b, *raw_b), zero, lead)
            return m

        m.d.comb += [mul.a.eq(sig_a), mul.b.eq(sig_b)]
        # Normalise: a general leading-zero count with subnormal inputs; without them
        # the product of two normal significands needs at most a 1-bit shift.
        if fi.subnormals:
            m.submodules.norm = nrm = Normaliser(pp)
            m.d.comb += nrm.value.eq(mul.prod)
            sig_n, lzc = nrm.out, nrm.lzc
        else:
            top = mul.prod[pp - 1]
            sig_n, lzc = Mux(top, mul.prod, mul.prod << 1)[:pp], ~top
        e_sum = Signal(ew, name="e_sum")
        m.d.comb += e_sum.eq(e_a + e_b)
        m.d.comb += [out.sig.eq(sig_n), out.exp.eq(e_sum - lzc + lead)]
        return m

    def _dual(self, m, a, b, zero, lead: int):
        """The product in grid form, its exponent computed beside the multiplier.

        ``a``, ``b``: (significand, exponent field, normal) of each operand. Each
        significand is normalised first (a subnormal operand's grid exponent, 1, drops
        by its leading zeros: a multiplexer, not a subtractor), so the product of the
        two has its leading one at bit ``pp - 1`` or ``pp - 2`` (``t``, its top bit),
        and its biased exponent is ``x + t`` with ``x`` a sum of the two operand
        exponents and a constant. ``x`` and ``x + 1`` are two such sums side by side;
        ``t`` only picks one.
        """
        cfg = self.cfg
        fi, acc = cfg.in_fmt, cfg.acc_fmt
        ew = MacParams(cfg).exp_width
        p, pp, man = fi.precision, 2 * fi.precision, fi.man_bits
        mul = m.submodules.mul
        exps = []
        for name, (sig, field, normal) in (("a", a), ("b", b)):
            if fi.subnormals:
                m.submodules[f"norm_{name}"] = nrm = Normaliser(p)
                m.d.comb += nrm.value.eq(sig)
                sig = nrm.out
                exp = Signal(signed(ew + 1), name=f"e_{name}_norm")
                m.d.comb += exp.eq(Mux(normal, field, 1 - nrm.lzc))
            else:
                exp = field  # a zero operand makes a zero product: its exponent is moot
            m.d.comb += getattr(mul, name).eq(sig)
            exps.append(exp)
        t = mul.prod[pp - 1]
        sig_n = Mux(t, mul.prod, mul.prod << 1)[:pp]
        # biased exponent of the product = x + t (lzc(product) = lz_a + lz_b + 1 - t)
        k = lead + acc.bias - 1
        x, x1 = Signal(signed(ew + 2), name="e_prod0"), Signal(signed(ew + 2), name="e_prod1")
        m.d.comb += [x.eq(exps[0] + exps[1] + k), x1.eq(exps[0] + exps[1] + (k + 1))]
        pa = DualParams(cfg).precision
        top_sig = Cat(Const(0, pa - pp), sig_n)  # leading one at the accumulator's hidden bit
        out = self.product
        # Below 2**emin (x + t < 1): shift onto the subnormal grid (exact: every product
        # lies on it), by 1 - x - t.
        below = Signal(name="below_emin")
        m.d.comb += below.eq(x[-1] | (~t & (x == 0)))
        lowest = 2 * (fi.emin - (man if fi.subnormals else 0))  # smallest floor(log2)
        max_shift = max(0, 1 - (lowest + acc.bias))
        if max_shift:
            amount = Signal(bits_for(max_shift), name="denorm_shift")
            low = x[: len(amount)]  # the shift needs only the low bits of -x or 1 - x
            m.d.comb += amount.eq(Mux(below, Mux(t, -low, 1 - low), 0))
            m.d.comb += out.sig.eq(Mux(zero, 0, top_sig >> amount))
        else:
            m.d.comb += out.sig.eq(Mux(zero, 0, top_sig))
        m.d.comb += out.exp.eq(Mux(zero | below, 1, Mux(t, x1, x)))
