"""MacUnit in Amaranth's simulator: chains back to back, pipeline, built-in generator, ports."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Shape, UnusedElaboratable
from amaranth.sim import Simulator

import ref
from hwgen.mac import MacUnit
from hwgen.params import MacParams
from hwgen.vectors import Stream, make_stream

#: Units built only to inspect their signature are never elaborated: Amaranth's
#: public warning filter keeps them quiet (no private attributes). Components hold
#: reference cycles, so the tests collect them before they end, under the filter.
unelaborated_ok = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def unelaborated(unit):
    """A unit built only to inspect its signature (the test carries ``unelaborated_ok``)."""
    return unit


@pytest.fixture
def collect():
    """Collect this test's garbage (unused units) while its warning filter applies."""
    yield
    gc.collect()


def run_stream(dut, st, drive_rand):
    got = []

    async def tb(ctx):
        n = len(st.valid)
        for i in range(n + dut.latency + 1):
            if i < n:
                ctx.set(dut.in_valid, int(st.valid[i]))
                ctx.set(dut.in_first, int(st.first[i]))
                ctx.set(dut.a, int(st.a[i]))
                ctx.set(dut.b, int(st.b[i]))
                ctx.set(dut.c, int(st.c[i]))
                if drive_rand:
                    ctx.set(dut.rand, int(st.rand[i]))
            else:
                ctx.set(dut.in_valid, 0)
            await ctx.tick()
            if ctx.get(dut.out_valid):
                got.append(ctx.get(dut.acc))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return got


@pytest.mark.parametrize("datapath", ["dual", "single"])
@pytest.mark.parametrize(
    "spec,rand,pipeline,idle",
    [
        ("e5m2:e6m5:sr_eager:4", "port", 0, 0.0),
        ("e5m2:e6m5:sr_lazy:4", "port", 1, 0.1),
        ("e4m3:nosub:fp16:nosub:sr_eager:8", "prng", 2, 0.2),
        ("e4m3:bf16:rn", "port", 0, 0.0),
    ],
)
def test_mac_stream_matches_ref(spec, rand, pipeline, idle, datapath):
    cfg = ref.parse_mac(spec)
    st = make_stream(cfg, 400, seed=11, rand_mode=rand, prng_seed=5, idle=idle)
    dut = MacUnit(cfg, rand=rand, seed=5, pipeline=pipeline, datapath=datapath)
    assert dut.datapath == datapath
    got = run_stream(dut, st, rand == "port" and cfg.rand_bits > 0)
    want = [int(x) for x in st.expected[st.valid == 1]]
    assert len(got) == len(want)
    bad = [k for k in range(len(want)) if got[k] != want[k]]
    assert not bad, (
        f"{len(bad)} mismatches, first at op {bad[0]}: "
        f"expected {want[bad[0]]:#x} got {got[bad[0]]:#x}"
    )


@pytest.mark.parametrize(
    "spec",
    [
        "e5m2:e4m3:sr_eager:3",  # accumulator narrower than the product, fn + saturate
        "e5m2:e6m5:none:sr_eager:4",  # no specials: NaN -> +0, overflow saturates
        "e2m1:fn:e3m2:fn:sr_eager:5",  # tiny generic formats, fn accumulator overflows to NaN
        "e5m2:bias=10:e6m5:fn:rz",  # non-default bias
    ],
)
def test_other_formats_match_ref(spec):
    cfg = ref.parse_mac(spec)
    st = make_stream(cfg, 250, seed=3)
    got = run_stream(MacUnit(cfg), st, cfg.rand_bits > 0)  # the default datapath
    want = [int(x) for x in st.expected]
    assert got == want


@unelaborated_ok
def test_ports_and_widths(collect):
    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    members = unelaborated(MacUnit(cfg)).signature.members
    widths = {n: Shape.cast(m.shape).width for n, m in members.items()}
    assert widths == {
        "in_valid": 1,
        "in_first": 1,
        "a": 8,
        "b": 8,
        "c": 12,
        "rand": 6,
        "out_valid": 1,
        "acc": 12,
    }
    assert "rand" not in unelaborated(MacUnit(cfg, rand="prng")).signature.members
    assert "rand" not in unelaborated(MacUnit(ref.parse_mac("e5m2:e6m5:rn"))).signature.members
    assert (
        Shape.cast(
            unelaborated(MacUnit(ref.parse_mac("e4m3:fp16:sr_lazy:8")))
            .signature.members["rand"]
            .shape
        ).width
        == 8
    )
    assert unelaborated(MacUnit(cfg, pipeline=3)).latency == 4


@pytest.mark.parametrize(
    "kw",
    [{"rand": "lfsr"}, {"pipeline": -1}, {"pipeline": 99}, {"seed": -3}, {"datapath": "triple"}],
)
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        MacUnit(ref.parse_mac("e5m2:e6m5:sr_eager:4"), **kw)


def test_rejected_unit_leaves_no_unused_warning():
    """A rejected MacUnit is never created, so Amaranth has nothing to warn about."""
    gc.collect()  # earlier tests' garbage is not this test's business
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="no wider than the accumulator"):
            MacUnit(ref.parse_mac("e4m3:e6m5:sr_eager:8"), datapath="dual")
        gc.collect()
    assert not [w for w in seen if issubclass(w.category, UnusedElaboratable)]


@unelaborated_ok
def test_default_datapath(collect):
    assert unelaborated(MacUnit(ref.parse_mac("e5m2:e6m5:sr_eager:4"))).datapath == "dual"
    # outside the dual path's limits the default is the single path
    assert unelaborated(MacUnit(ref.parse_mac("e4m3:e6m5:sr_eager:8"))).datapath == "single"
    assert unelaborated(MacUnit(ref.parse_mac("e5m2:fp16:rn"))).datapath == "single"


def test_tiny_product_bits_below_the_window_reach_the_sticky():
    """BF16 x BF16 -> FP32, rn: a product below 2**emin whose last bit falls below the window.

    The product is the larger addend (the accumulator is 0 or a small subnormal);
    its guard bit is set and its only other bit below the guard is the one shifted
    out, so only the jammed sticky separates a tie from "above half".
    """
    cfg = ref.parse_mac("bf16:fp32:rn")
    fi, fa = cfg.in_fmt, cfg.acc_fmt
    top = MacParams(cfg).top
    guard = top - fa.man_bits - 1  # window bit of the guard on the subnormal grid
    lead = 14  # the product's leading bit lands here, its last bit (bit 0 of P) at -1
    zs, As, Bs = [], [], []
    for a in range(129, 256, 2):
        for b in range(129, 256, 2):
            P = a * b
            low = P & ((1 << (guard + 1)) - 1)
            if P >= 1 << 15 and (P >> (guard + 1)) & 1 and low == 1 and len(As) < 120:
                tot = fa.emin - (top - lead) - 15  # exponent of P's bit 0
                xa = tot // 2
                ca = int(ref.encode(a * 2.0**xa, fi))
                cb = int(ref.encode(b * 2.0 ** (tot - xa), fi))
                for zc in (0, 2, 0x80000002):
                    zs.append(zc)
                    As.append(ca)
                    Bs.append(cb)
    assert len(As) >= 60
    n = len(As)
    z, A, B = (np.array(x, dtype=np.int64) for x in (zs, As, Bs))
    want = ref.mac(z, A, B, cfg)
    one = np.ones(n, dtype=np.int64)
    st = Stream(one, one, A, B, z, 0 * one, z, want)
    assert run_stream(MacUnit(cfg), st, False) == [int(x) for x in want]
