"""The dual-path accumulation step ``z' = round(z + p)`` (combinational).

The loop body of :class:`hwgen.mac.MacUnit` with ``datapath="dual"``. Both
addends are in the accumulator's grid form (:class:`hwgen.params.DualParams`):
``z`` straight from its code (a subnormal ``z`` one binade down, at field 0, with
its significand shifted up), the product from the pipeline register, where it
arrived normalised and biased. Then, all in parallel:

* the exponent difference ``d = E_z - E_p`` picks the path and, for the far
  path, the larger addend and the alignment;
* :class:`hwgen.close.ClosePath` for an effective subtraction with ``|d| <= 1``
  (the smaller addend normal when ``|d| = 1``);
* :class:`hwgen.far.EagerFarPath` (``sr_eager``) or
  :class:`hwgen.far.RoundingFarPath` (``rn``, ``rz``, ``sr_lazy``) otherwise;
* the far path's possible exponent fields ``e_anchor - 1 + j`` and their
  overflow flags, so that the significand's carry only drives a multiplexer.

The split differs from the contract's close/far split for ``sr_eager``
(contract section 3, which uses floor(log2) exponents) only where one addend is
below ``2**emin``; there the eager window is anchored at ``emin``, the result
lies on the ``emin`` grid and eager SR equals lazy SR, so both paths give the
contract's result (docs/hardware.md). ``hwgen.formal`` proves this circuit
equal to the single-path one for every input.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.config import MacConfig

from .close import ClosePath
from .far import EagerFarPath, RoundingFarPath
from .pack import assemble
from .params import DualParams
from .product import product_layout
from .stages import BOUNDARIES, Cuts
from .unpack import Unpacker

__all__ = ["DualAccumulateStep"]


def _minus(m, a, b, cin, width: int, name: str):
    """``a + ~b + cin`` (= a - b - 1 + cin) in ``width`` bits: one adder, ``cin`` as its carry-in."""
    out = Signal(width, name=name)
    wide = Cat(Const(1, 1), a, Const(0, width - len(a))) + Cat(cin, ~Cat(b, Const(0, width - len(b))))
    m.d.comb += out.eq(wide[1 : width + 1])
    return out


class DualAccumulateStep(wiring.Component):
    """One fused accumulation ``round(z + p)`` for ``cfg`` through a close and a far path.

    Members: ``z`` In(acc width), the accumulator code; ``product``
    In(product_layout(cfg, "dual")), the product in grid form; ``rand``
    In(cfg.rand_bits), SR only (R low, B above); ``idle`` In(1), only with
    ``idle=True``: no operation, the product is taken as a zero of ``z``'s sign,
    so ``out`` is ``z`` itself (any code the loop produces; a non-canonical NaN or,
    without subnormals, a non-zero code with a zero exponent field comes out
    canonical); ``out`` Out(acc width), the code of round(z + product).

    ``cuts``: the loop boundaries (:data:`hwgen.stages.BOUNDARIES`) registered
    inside the step: with ``k`` of them ``out`` follows ``z``, ``product``, ``rand``
    and ``idle`` by ``k`` cycles, and ``k + 1`` independent operations are in flight
    (:class:`hwgen.mac.MacUnit` with ``interleave=k + 1``). Without cuts (the
    default) the step is combinational.
    """

    def __init__(self, cfg: MacConfig, *, cuts=(), idle: bool = False):
        self.cfg = cfg
        self.p = DualParams(cfg)
        self.p.check()
        self.cuts = tuple(c for c in BOUNDARIES if c in cuts)
        if len(self.cuts) != len(tuple(cuts)):
            raise ValueError(f"loop cuts must be distinct names of {BOUNDARIES}, got {cuts!r}")
        self.has_idle = bool(idle)
        sig = {
            "z": In(cfg.acc_fmt.width),
            "product": In(product_layout(cfg, "dual")),
            "out": Out(cfg.acc_fmt.width),
        }
        if cfg.rand_bits:
            sig["rand"] = In(cfg.rand_bits)
        if idle:
            sig["idle"] = In(1)
        super().__init__(sig)

    @property
    def latency(self) -> int:
        """Cycles from an operation's inputs to its ``out`` (the registered boundaries)."""
        return len(self.cuts)

    def elaborate(self, platform):
        m = Module()
        cut = Cuts(m, self.cuts)
        cfg, dp = self.cfg, self.p
        acc = cfg.acc_fmt
        man, ew, mode = acc.man_bits, dp.exp_width, cfg.grid_mode
        prod = self.product

        # ---- z straight from its code: exponent field E as it is. A subnormal z
        # (E = 0) is presented one binade below emin with its significand shifted up
        # one place (same value, still exact), so no max(E, 1) sits in front of the
        # exponent subtractors; the product, at E >= 1, is then always the larger.
        m.submodules.unpack_z = uz = Unpacker(acc, 2)  # sign and special flags only
        m.d.comb += uz.code.eq(self.z)
        e_field, mz = self.z[man : man + acc.exp_bits], self.z[:man]
        z_norm = Signal(name="z_normal")
        m.d.comb += z_norm.eq(e_field != 0)
        z_sub = Cat(Const(0, 1), mz) if acc.subnormals else Const(0, man + 1)
        z_sig, ez = Signal(man + 1, name="z_sig"), Signal(ew, name="ez")
        m.d.comb += [z_sig.eq(Mux(z_norm, Cat(mz, 1), z_sub)), ez.eq(e_field)]
        sz = uz.sign
        # The product; an idle step adds a zero of z's sign (grid form: E = 1, sig 0).
        p_sig, p_exp, sp = prod.sig, prod.exp, prod.sign
        p_zero, p_nan, p_inf = prod.zero, prod.nan, prod.inf
        if self.has_idle:
            idle = self.idle
            p_sig, p_exp = Mux(idle, 0, p_sig), Mux(idle, 1, p_exp)
            sp = Mux(idle, sz, sp)
            p_zero, p_nan, p_inf = p_zero | idle, p_nan & ~idle, p_inf & ~idle
        sub = Signal(name="eff_sub")
        m.d.comb += sub.eq(sz ^ sp)

        # ---- exponent difference: path, larger addend, alignment. Two subtractors
        # side by side, the effective subtraction as their carry-in:
        # d_zp = E_z - E_p - sub, d_pz = E_p - E_z - sub (ew + 1 bits, two's complement).
        d_zp = _minus(m, ez, p_exp, ~sub, ew + 1, "d_zp")
        d_pz = _minus(m, p_exp, ez, ~sub, ew + 1, "d_pz")
        z_ge = Signal(name="z_big")
        m.d.comb += z_ge.eq(~d_zp[ew])  # E_z >= E_p + sub (E_z = E_p under sub: close)
        # Under sub: d_zp = 0 iff E_z = E_p + 1, d_pz = 0 iff E_p = E_z + 1, d_zp = -1 iff equal.
        z_small, p_small = Signal(name="z_small"), Signal(name="p_small")
        m.d.comb += [z_small.eq(d_pz == 0), p_small.eq(d_zp == 0)]
        close = Signal(name="close")
        # Close: effective subtraction, |d| <= 1, the smaller addend normal when |d| = 1.
        # z at E >= 1 is normal; z at E = 0 (subnormal or zero, one binade down) with
        # the product at E = 1 is the old d = 0 case: close as well.
        m.d.comb += close.eq(sub & (d_zp.all() | z_small | (p_small & p_sig[man])))
        e_big = Signal(ew, name="e_big")
        m.d.comb += e_big.eq(Mux(z_ge, ez, p_exp))
        # Signs and special values, decided from the inputs, early.
        nan = uz.is_nan | p_nan | (uz.is_inf & p_inf & (sz != sp))
        rand = self.rand if cfg.rand_bits else Const(0, 1)

        # ---- boundary "exp": everything the paths and the encoding use from here on
        s = cut("exp", z_sig=z_sig, p_sig=p_sig, z_ge=z_ge, d_zp=d_zp, d_pz=d_pz, sub=sub,
                z_small=z_small, p_small=p_small, close=close, e_big=e_big, rand=rand,
                sign_far=Mux(z_ge, sz, sp), sign_z=sz, sign_p=sp, zero_sign=sz & sp,
                zero_far=(z_sig == 0) & p_zero, nan=nan, inf=(uz.is_inf | p_inf) & ~nan,
                inf_sign=Mux(uz.is_inf, sz, sp))

        # ---- far path
        if cfg.rounding == "sr_eager":
            far = EagerFarPath(man, dp.r, ew + 1, cuts=self.cuts)
        else:
            far = RoundingFarPath(man, mode, dp.r, ew + 1, cuts=self.cuts)
        m.submodules.far = far
        m.d.comb += [
            far.z.eq(s.z_sig),
            far.p.eq(s.p_sig),
            far.z_big.eq(s.z_ge),
            far.shift_p.eq(s.d_zp),  # |d| - sub for each order: both alignments at once
            far.shift_z.eq(s.d_pz),
            far.sub.eq(s.sub),
        ]
        if cfg.rand_bits:
            m.d.comb += far.rand.eq(s.rand)
        # The few possible exponent fields e_anchor - 1 + j and their overflow and
        # flush flags, ready before the significand: its offset only picks one.
        base = Signal(ew, name="e_anchor_m1")
        m.d.comb += base.eq(s.e_big - s.sub - 1)
        n_cand = 3 if cfg.rounding == "sr_eager" else 4  # eager: offset <= 2 (hwgen.far)
        eb = acc.exp_bits
        e_max, m_max = acc.max_code >> man, acc.max_code & ((1 << man) - 1)
        fn_top = m_max != (1 << man) - 1  # "fn": the all-ones mantissa of the top binade
        cands = {}
        for j in range(n_cand):
            cands[f"e{j}"] = base[:eb] + j  # the code's field; the flag sees the rest
            cands[f"over{j}"] = base > e_max - j
            if fn_top:
                cands[f"top{j}"] = base == e_max - j
        side = dict(close=s.close, sign_far=s.sign_far, sign_z=s.sign_z, sign_p=s.sign_p,
                    zero_sign=s.zero_sign, zero_far=s.zero_far, nan=s.nan, inf=s.inf,
                    inf_sign=s.inf_sign, at_emin=s.e_big == 1, **cands)

        # ---- close path
        m.submodules.close = cp = ClosePath(acc, mode, ew, cuts=self.cuts)
        m.d.comb += [
            cp.z_sig.eq(s.z_sig),
            cp.p_sig.eq(s.p_sig),
            cp.z_small.eq(s.z_small),
            cp.p_small.eq(s.p_small),
            cp.e_big.eq(s.e_big),
        ]
        if mode == "sr":
            m.d.comb += cp.rand_top.eq(s.rand[dp.r - 1])

        # ---- the side values travel with the paths through the later boundaries
        for name in BOUNDARIES[BOUNDARIES.index("exp") + 1 :]:
            side = vars(cut(name, **side))
        s = SimpleNamespace(**side)

        # ---- the far result's exponent field: its offset picks a precomputed candidate
        # (a multiplexer expression, not a combinational switch: see hwgen.array.select)
        e_far, ovf_far = Signal(eb, name="e_far"), Signal(name="ovf_far")
        e_sel, o_sel = side["e0"], side["over0"]
        if fn_top:
            o_sel = o_sel | (side["top0"] & (far.mant > m_max))
        for j in range(1, n_cand):
            over = side[f"over{j}"]
            if fn_top:
                over = over | (side[f"top{j}"] & (far.mant > m_max))
            # the last candidate also takes the offsets that never occur
            hit = far.offset == j if j < n_cand - 1 else far.offset >= j
            e_sel, o_sel = Mux(hit, side[f"e{j}"], e_sel), Mux(hit, over, o_sel)
        m.d.comb += [e_far.eq(e_sel), ovf_far.eq(o_sel)]
        flush_far = s.at_emin & (far.offset == 0)  # below 2**emin only from an addition at emin

        # ---- select and encode
        close = s.close
        sign = Mux(close, Mux(cp.z_wins, s.sign_z, s.sign_p), s.sign_far)
        mant = Mux(close, cp.mant, far.mant)
        efield = Mux(close, cp.efield, e_far)
        ovf = Mux(close, cp.ovf, ovf_far)
        exact_zero = Mux(close, cp.zero, s.zero_far)
        if acc.subnormals:
            flush = Const(0, 1)
        else:
            flush = Mux(close, cp.below, flush_far)
        m.d.comb += self.out.eq(
            assemble(
                acc,
                mode,
                Cat(mant, efield[: acc.exp_bits]),
                ovf,
                sign,
                flush,
                exact_zero,
                s.zero_sign,
                s.nan,
                s.inf,
                s.inf_sign,
            )
        )
        return m
