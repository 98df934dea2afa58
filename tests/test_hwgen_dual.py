"""hwgen.dual.DualAccumulateStep (with its product stage) against ref.mac, and its limits."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from test_hwgen_blocks import comb

import ref
from hwgen.dual import DualAccumulateStep
from hwgen.params import DualParams, resolve_datapath
from hwgen.product import ProductStage
from hwgen.vectors import corner_codes


class StepWithProduct(wiring.Component):
    """ProductStage + DualAccumulateStep: codes in, the result code out (combinational)."""

    def __init__(self, cfg):
        self.cfg = cfg
        sig = {"z": In(cfg.acc_fmt.width), "a": In(cfg.in_fmt.width),
               "b": In(cfg.in_fmt.width), "out": Out(cfg.acc_fmt.width)}
        if cfg.rand_bits:
            sig["rand"] = In(cfg.rand_bits)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        m.submodules.prod = prod = ProductStage(self.cfg, "dual")
        m.submodules.step = step = DualAccumulateStep(self.cfg)
        m.d.comb += [prod.a.eq(self.a), prod.b.eq(self.b), step.z.eq(self.z),
                     step.product.eq(prod.product), self.out.eq(step.out)]
        if self.cfg.rand_bits:
            m.d.comb += step.rand.eq(self.rand)
        return m


def _check(spec, n, seed):
    cfg = ref.parse_mac(spec)
    rng = np.random.default_rng(seed)
    fi, fa = cfg.in_fmt, cfg.acc_fmt
    ci, cz = corner_codes(fi), corner_codes(fa)
    z = np.concatenate([rng.choice(cz, n // 2), rng.integers(0, 1 << fa.width, n - n // 2)])
    a = np.concatenate([rng.choice(ci, n // 2), rng.integers(0, 1 << fi.width, n - n // 2)])
    b = rng.integers(0, 1 << fi.width, n)
    words = rng.integers(0, 1 << max(cfg.rand_bits, 1), n)
    want = ref.mac(z, a, b, cfg, rand=words if cfg.rand_bits else None)
    vecs = [{"z": int(x), "a": int(y), "b": int(w), **({"rand": int(r)} if cfg.rand_bits else {})}
            for x, y, w, r in zip(z, a, b, words, strict=True)]
    got = [o["out"] for o in comb(StepWithProduct(cfg), vecs, ["out"])]
    bad = [i for i in range(n) if got[i] != int(want[i])]
    assert not bad, f"{spec}: {len(bad)} mismatches, first {vecs[bad[0]]}: " \
        f"want {int(want[bad[0]]):#x} got {got[bad[0]]:#x}"


@pytest.mark.parametrize(
    "spec",
    [
        "e5m2:e6m5:rn",
        "e5m2:e6m5:rz",
        "e5m2:e6m5:sr_lazy:4",
        "e5m2:e6m5:sr_eager:4",
        "e5m2:nosub:e6m5:nosub:sr_eager:8",
        "e5m2:e6m5:nosub:sr_lazy:2",  # subnormal products into a flushing accumulator
        "e4m3:fp16:sr_eager:12",
        "e4m3:nosub:bf16:nosub:rn",
        "e5m2:e6m5:fn:sr_eager:3",  # fn accumulator: overflow to NaN, the all-ones mantissa
        "e5m2:e6m5:none:rz",
        "e2m1:fn:e3m3:fn:sr_eager:2",
        "e5m2:bias=10:e6m5:fn:sr_lazy:1",
    ],
)
def test_dual_step_matches_ref(spec):
    _check(spec, 1200, seed=len(spec))


def test_subnormal_accumulator_near_emin():
    """Subnormal z against products at emin: the cases the raw-exponent trick moves around."""
    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    fa = cfg.acc_fmt
    subs = list(range(0, 32)) + [c | fa.sign_mask for c in range(32)]  # E = 0: zero, subnormals
    near = [int(ref.encode(v, cfg.in_fmt)) for v in (2.0**-15, 2.0**-16, 1.5 * 2.0**-15, 2.0**-14)]
    vecs, zs, As, Bs, Rs = [], [], [], [], []
    for zc in subs:
        for x in near:
            for y in (0x3C, 0xBC, 0x3E, 0x01, 0x81):
                for w in (0, 9, 0x3F):
                    zs.append(zc), As.append(x), Bs.append(y), Rs.append(w)
    want = ref.mac(np.array(zs), np.array(As), np.array(Bs), cfg, rand=np.array(Rs))
    vecs = [{"z": z, "a": a, "b": b, "rand": r} for z, a, b, r in zip(zs, As, Bs, Rs, strict=True)]
    got = [o["out"] for o in comb(StepWithProduct(cfg), vecs, ["out"])]
    assert got == [int(x) for x in want]


def test_limits_and_default():
    assert DualParams(ref.parse_mac("e5m2:e6m5:sr_eager:4")).limit() is None
    wide = ref.parse_mac("e4m3:e6m5:sr_eager:8")  # 8-bit products, 6-bit accumulator
    assert "no wider than the accumulator" in DualParams(wide).limit()
    tiny = ref.parse_mac("e5m2:fp16:rn")  # products down to 2**-32, FP16 stops at 2**-24
    assert "2**-32" in DualParams(tiny).limit() and "2**-24" in DualParams(tiny).limit()
    assert resolve_datapath(wide, None) == "single"
    assert resolve_datapath(ref.parse_mac("e5m2:e6m5:rn"), None) == "dual"
    with pytest.raises(ValueError, match="datapath='single'"):
        resolve_datapath(wide, "dual")
    with pytest.raises(ValueError, match="datapath must be one of"):
        resolve_datapath(wide, "triple")
