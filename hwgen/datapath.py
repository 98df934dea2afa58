"""The accumulation step ``z' = round(z + p)``: accumulator code + exact product -> code.

Combinational; it is the body of the accumulation loop in :class:`hwgen.mac.MacUnit`.
Stages (each a sub-component): unpack z, normalise both addends (LZC + shift),
swap by exponent, align the smaller one (shift + sticky jam), add, then

* ``rn`` / ``rz`` / ``sr_lazy``: normalise the sum (LZC, limited at emin) and round;
* ``sr_eager``: far path: ``R`` enters the significand addition at the anchor
  (a 3:2 carry-save layer then one carry-propagate adder), the second stage
  adds ``B_k`` after the small k-normalisation; close path (effective
  subtraction, exponent difference <= 1): the lazy rounder on the exact sum;
* pack: overflow, flush, signed zeros, specials.

See :mod:`hwgen.params` for the window and why the jammed sum rounds like the
exact one.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.config import MacConfig

from .pack import Packer
from .params import MacParams, bits_for
from .product import product_layout
from .rounding import EagerFarRounder, LazyRounder
from .shift import AlignShifter, Normaliser
from .unpack import Unpacker

__all__ = ["AccumulateStep"]


def _clamp(m, value, limit: int, width: int, name: str):
    """An unsigned ``width``-bit signal = min(value, limit) for a non-negative signed value."""
    out = Signal(width, name=name)
    m.d.comb += out.eq(Mux(value >= limit, limit, value[:width]))
    return out


class AccumulateStep(wiring.Component):
    """One fused accumulation ``round(z + p)`` for ``cfg``.

    Members: ``z`` In(acc width), the accumulator code; ``product``
    In(product_layout(cfg, "single")), the normalised exact product; ``rand``
    In(cfg.rand_bits), SR only (R low, B above); ``out`` Out(acc width), the code
    of round(z + product).
    """

    def __init__(self, cfg: MacConfig):
        self.cfg = cfg
        self.p = p = MacParams(cfg)
        p.check()
        sig = {
            "z": In(cfg.acc_fmt.width),
            "product": In(product_layout(cfg, "single")),
            "out": Out(cfg.acc_fmt.width),
        }
        if cfg.rand_bits:
            sig["rand"] = In(cfg.rand_bits)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        p, cfg = self.p, self.cfg
        acc = cfg.acc_fmt
        man, emin = acc.man_bits, acc.emin
        T, W, EW = p.top, p.window, p.exp_width
        pa, pp = acc.precision, p.prod_width

        def S(width, name, sgn=False):
            return Signal(signed(width) if sgn else width, name=name)

        # ---- unpack z, normalise both addends, exponents of their leading ones
        m.submodules.unpack_z = uz = Unpacker(acc, EW)
        m.d.comb += uz.code.eq(self.z)
        prod = self.product
        m.submodules.norm_z = nz = Normaliser(pa)
        m.d.comb += nz.value.eq(uz.sig)
        ez, ep = S(EW, "ez", True), S(EW, "ep", True)
        m.d.comb += [ez.eq(uz.exp + (pa - 1) - nz.lzc), ep.eq(prod.exp)]
        zero_z, zero_p = uz.sig == 0, prod.zero
        zf = Cat(Const(0, T + 1 - pa), nz.out)  # leading one at bit T
        pf = Cat(Const(0, T + 1 - pp), prod.sig)  # normalised before the pipeline register

        # ---- swap: "big" has the larger exponent (a zero addend has exponent -inf)
        z_big = S(1, "z_big")
        m.d.comb += z_big.eq(~zero_z & (zero_p | (ez >= ep)))
        big, small = S(T + 1, "big"), S(T + 1, "small")
        e_big, e_small = S(EW, "e_big", True), S(EW, "e_small", True)
        zero_big, zero_small, s_big, s_small = (
            S(1, "zero_big"),
            S(1, "zero_small"),
            S(1, "s_big"),
            S(1, "s_small"),
        )
        m.d.comb += [
            big.eq(Mux(z_big, zf, pf)),
            small.eq(Mux(z_big, pf, zf)),
            e_big.eq(Mux(z_big, ez, ep)),
            e_small.eq(Mux(z_big, ep, ez)),
            zero_big.eq(Mux(z_big, zero_z, zero_p)),
            zero_small.eq(Mux(z_big, zero_p, zero_z)),
            s_big.eq(Mux(z_big, uz.sign, prod.sign)),
            s_small.eq(Mux(z_big, prod.sign, uz.sign)),
        ]
        eff_sub = s_big ^ s_small
        # e_ref = max(e_big, emin) sits at bit T: below emin both addends stay unnormalised.
        below = S(1, "below")
        m.d.comb += below.eq(zero_big | (e_big < emin))
        e_ref = S(EW, "e_ref", True)
        m.d.comb += e_ref.eq(Mux(below, emin, e_big))

        # ---- alignment
        sw = p.shift_width
        sh_big = _clamp(m, Mux(below & ~zero_big, e_ref - e_big, 0), W, sw, "sh_big")
        sh_small = _clamp(m, Mux(zero_small, W, e_ref - e_small), W, sw, "sh_small")
        m.submodules.align_big = ab = AlignShifter(W, sw)
        m.submodules.align_small = as_ = AlignShifter(W, sw)
        m.d.comb += [
            ab.value.eq(big),
            ab.amount.eq(sh_big),
            as_.value.eq(small),
            as_.amount.eq(sh_small),
        ]
        # At most one of the two loses bits (see hwgen.params): both jam into bit 0.
        big_al, small_j = ab.jammed, as_.jammed

        # ---- significand addition (exact up to the jammed bit)
        sum_ = S(W + 1, "sum", True)
        m.d.comb += sum_.eq(Mux(eff_sub, big_al - small_j, big_al + small_j))
        neg = sum_ < 0
        mag = S(W, "sum_mag")
        m.d.comb += mag.eq(Mux(neg, -sum_, sum_)[:W])
        exact_zero = mag == 0
        sign = Mux(neg, s_small, s_big)

        # ---- lazy path: normalise (at most down to emin) and round
        lw = bits_for(W)
        limit = _clamp(m, e_ref + 1 - emin, W, lw, "norm_limit")
        m.submodules.norm_sum = ns = Normaliser(W, lw)
        m.d.comb += [ns.value.eq(mag), ns.limit.eq(limit)]
        mode = cfg.grid_mode
        m.submodules.round = rd = LazyRounder(W, man, mode, p.r)
        m.d.comb += rd.value.eq(ns.out)
        if mode == "sr":
            m.d.comb += rd.rand.eq(self.rand[: p.r])
        m_res, eg = S(man + 2, "m_res"), S(EW, "eg", True)
        m.d.comb += [m_res.eq(rd.m), eg.eq(e_ref + 1 - ns.shift)]
        # The exact exponent floor(log2 |x|) decides the flush (subnormals off).
        e_exact = S(EW, "e_exact", True)
        m.d.comb += e_exact.eq(e_ref + 1 - ns.lzc)
        flush = Const(0, 1) if acc.subnormals else (~exact_zero & (e_exact < emin))

        if cfg.rounding == "sr_eager":
            m_res, eg = self._eager_far(
                m, p, big_al, small_j, eff_sub, e_big, e_small, e_ref, below, zero_small, m_res, eg
            )

        # ---- pack and specials
        m.submodules.pack = pk = Packer(acc, mode, EW)
        nan = uz.is_nan | prod.nan | (uz.is_inf & prod.inf & (uz.sign != prod.sign))
        m.d.comb += [
            pk.sign.eq(sign),
            pk.m.eq(m_res),
            pk.eg.eq(eg),
            pk.flush.eq(flush),
            pk.exact_zero.eq(exact_zero),
            pk.zero_sign.eq(uz.sign & prod.sign),
            pk.is_nan.eq(nan),
            pk.is_inf.eq((uz.is_inf | prod.inf) & ~nan),
            pk.inf_sign.eq(Mux(uz.is_inf, uz.sign, prod.sign)),
            self.out.eq(pk.code),
        ]
        return m

    def _eager_far(
        self,
        m,
        p,
        big_al,
        small_j,
        eff_sub,
        e_big,
        e_small,
        e_ref,
        below,
        zero_small,
        m_close,
        eg_close,
    ):
        """sr_eager: far path with R merged into the addition; returns the selected (m, eg)."""
        cfg = self.cfg
        man, r, emin = cfg.acc_fmt.man_bits, p.r, cfg.acc_fmt.emin
        T, W, EW = p.top, p.window, p.exp_width
        YW = W + 1  # bits 0 .. T+2
        # Anchor: e_big - 1 for an effective subtraction (if still >= emin), else e_ref.
        lo = Signal(name="anchor_lo")
        m.d.comb += lo.eq(eff_sub & ~below & (e_big > emin))
        R = self.rand[:r]
        B = self.rand[r : r + 2]
        rsh = Signal(YW, name="rand_aligned")
        m.d.comb += rsh.eq(Mux(lo, R << (T - 1 - man - r), R << (T - man - r)))
        # 3:2 carry-save layer: big + (+-small) + R, then one carry-propagate adder.
        small_w = Signal(YW, name="small_wide")
        addend = Signal(YW, name="small_signed")  # two's complement of small: ~small + 1 (cin)
        m.d.comb += [small_w.eq(small_j), addend.eq(Mux(eff_sub, ~small_w, small_w))]
        x, y, c = big_al, addend, rsh
        csa_s = Signal(YW, name="csa_sum")
        csa_c = Signal(YW, name="csa_carry")
        m.d.comb += [csa_s.eq(x ^ y ^ c), csa_c.eq(((x & y) | (x & c) | (y & c)) << 1)]
        ysum = Signal(YW, name="far_sum")
        m.d.comb += ysum.eq(csa_s + csa_c + eff_sub)
        m.submodules.round_far = rf = EagerFarRounder(man, r)
        yw = len(rf.y)
        m.d.comb += [
            rf.y.eq(Mux(lo, ysum[T - 1 - man - r :], ysum[T - man - r :])[:yw]),
            rf.b.eq(B),
        ]
        eg_far = Signal(signed(EW), name="eg_far")
        m.d.comb += eg_far.eq(e_ref - lo + rf.k)
        close = Signal(name="close")
        m.d.comb += close.eq(eff_sub & ~zero_small & (e_big - e_small <= 1))
        m_sel, eg_sel = Signal(man + 2, name="m_sel"), Signal(signed(EW), name="eg_sel")
        m.d.comb += [m_sel.eq(Mux(close, m_close, rf.m)), eg_sel.eq(Mux(close, eg_close, eg_far))]
        return m_sel, eg_sel
