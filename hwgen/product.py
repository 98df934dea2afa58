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
from .unpack import ProductUnit

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
        ew = MacParams(cfg).exp_width
        pp = 2 * cfg.in_fmt.precision
        m.submodules.unit = pu = ProductUnit(cfg.in_fmt, ew)
        m.submodules.norm = nrm = Normaliser(pp)
        m.d.comb += [pu.a.eq(self.a), pu.b.eq(self.b), nrm.value.eq(pu.sig)]
        out = self.product
        zero = Signal(name="zero")
        m.d.comb += [
            zero.eq((pu.sig == 0) & ~pu.is_nan & ~pu.is_inf),
            out.sign.eq(pu.sign),
            out.zero.eq(zero),
            out.nan.eq(pu.is_nan),
            out.inf.eq(pu.is_inf),
        ]
        # floor(log2 |a*b|) of a non-zero product.
        e_lead = Signal(signed(ew), name="e_lead")
        m.d.comb += e_lead.eq(pu.exp + (pp - 1) - nrm.lzc)
        if self.datapath == "single":
            m.d.comb += [out.sig.eq(nrm.out), out.exp.eq(e_lead)]
            return m

        d = DualParams(cfg)
        acc = cfg.acc_fmt
        pa = d.precision
        top = Cat(Const(0, pa - pp), nrm.out)  # leading one at the accumulator's hidden bit
        biased = Signal(signed(ew + 1), name="e_biased")
        m.d.comb += biased.eq(e_lead + acc.bias)
        # Below 2**emin: shift onto the subnormal grid (exact: every product lies on it).
        fi = cfg.in_fmt
        lowest = 2 * (fi.emin - (fi.man_bits if fi.subnormals else 0))  # smallest floor(log2)
        max_shift = max(0, 1 - (lowest + acc.bias))
        if max_shift:
            sw = bits_for(max_shift)
            amount = Signal(sw, name="denorm_shift")
            m.d.comb += amount.eq(Mux(biased < 1, 1 - biased, 0))
            m.d.comb += out.sig.eq(Mux(zero, 0, top >> amount))
        else:
            m.d.comb += out.sig.eq(Mux(zero, 0, top))
        m.d.comb += out.exp.eq(Mux(zero | (biased < 1), 1, biased))
        return m
