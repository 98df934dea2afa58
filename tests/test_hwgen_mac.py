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
from hwgen.vectors import Stream, make_interleaved_stream, make_stream, random_finite

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


# ---- interleaved loops (MacUnit(interleave=L)) ----

@pytest.mark.parametrize(
    "spec,rand,pipeline,interleave,idle",
    [
        ("e5m2:e6m5:sr_eager:4", "port", 1, 2, 0.1),
        ("e5m2:e6m5:sr_lazy:4", "prng", 0, 3, 0.2),
        ("e5m2:nosub:e6m5:nosub:rn", "port", 2, 4, 0.3),
    ],
)
def test_interleaved_chains_match_ref(spec, rand, pipeline, interleave, idle):
    """L chains taking turns cycle by cycle, each its own stream (and generator), code for code."""
    cfg = ref.parse_mac(spec)
    st = make_interleaved_stream(cfg, 400, interleave, seed=7, rand_mode=rand, prng_seed=3,
                                 idle=idle)
    dut = MacUnit(cfg, rand=rand, seed=3, pipeline=pipeline, interleave=interleave)
    assert dut.latency == pipeline + interleave
    got = run_stream(dut, st, rand == "port" and cfg.rand_bits > 0)
    want = [int(x) for x in st.expected[st.valid == 1]]
    assert got == want


def test_every_cut_placement_is_a_valid_loop():
    """Any set of boundaries gives the same codes: each is a complete cut of the loop body.

    A value carried past a boundary without its register (here: the far path's B_0
    leaked around "add") mixes two chains, and the stream catches it.
    """
    from hwgen import stages

    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    st = make_interleaved_stream(cfg, 240, 3, seed=2, idle=0.1)
    want = [int(x) for x in st.expected[st.valid == 1]]
    for cuts in (("exp", "round"), ("align", "mid"), ("mid", "add")):
        assert run_stream(MacUnit(cfg, interleave=3, cuts=cuts), st, True) == want, cuts

    orig = stages.Cuts.__call__

    def leaky(self, name, **values):
        out = orig(self, name, **values)
        if name == "add" and "b0" in values and name in self.enabled:
            out.b0 = values["b0"]
        return out

    st2 = make_interleaved_stream(cfg, 240, 2, seed=2)
    want2 = [int(x) for x in st2.expected[st2.valid == 1]]
    try:
        stages.Cuts.__call__ = leaky
        got = run_stream(MacUnit(cfg, interleave=2, cuts=("add",)), st2, True)
    finally:
        stages.Cuts.__call__ = orig
    assert got != want2


@pytest.mark.parametrize("kw, msg", [
    ({"interleave": 0}, "interleave must be"),
    ({"interleave": 9}, "interleave must be"),
    ({"interleave": 2, "datapath": "single"}, "needs the dual datapath"),
    ({"interleave": 2, "cuts": ("add", "exp")}, "needs 1 loop cuts"),
    ({"interleave": 2, "cuts": ("middle",)}, "unknown loop cut"),
])
def test_bad_interleave(kw, msg):
    with pytest.raises(ValueError, match=msg):
        MacUnit(ref.parse_mac("e5m2:e6m5:sr_eager:4"), **kw)
    with pytest.raises(ValueError, match="needs the dual datapath"):
        MacUnit(ref.parse_mac("e4m3:e6m5:sr_eager:8"), interleave=2)


@unelaborated_ok
def test_interleaved_ports(collect):
    unit = unelaborated(MacUnit(ref.parse_mac("e5m2:e6m5:rn"), interleave=3, pipeline=1))
    widths = {n: Shape.cast(m.shape).width for n, m in unit.signature.members.items()}
    assert widths["chain"] == widths["out_chain"] == 2 and unit.latency == 4
    assert unit.cuts == stages_default(3)


def stages_default(L):
    from hwgen.stages import default_cuts

    return default_cuts(L)


@pytest.mark.parametrize("interleave,pipeline", [(1, 1), (2, 1), (3, 0), (4, 2)])
def test_load_mode_starts_chains_by_load(interleave, pipeline):
    """start="load": chains get their start value by a load at the loop's exit (no in_first);
    rounds of loads and operations, each chain checked against ref.mac step by step."""
    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    L, rng = interleave, np.random.default_rng(interleave)
    dut = MacUnit(cfg, pipeline=pipeline, interleave=L, start="load")
    assert "in_first" not in dut.signature.members
    rounds = []
    for _ in range(3):  # each round: load every chain, then K operations per chain
        K = int(rng.integers(1, 9))
        rounds.append((random_finite(cfg.acc_fmt, rng, L),
                       random_finite(cfg.in_fmt, rng, (K, L)), random_finite(cfg.in_fmt, rng, (K, L)),
                       rng.integers(0, 1 << cfg.rand_bits, (K, L))))
    got = []

    async def tb(ctx):
        for c0, A, B, W in rounds:
            loaded = set()
            while len(loaded) < L:  # idle cycles, loading the chain that leaves the loop
                chain = ctx.get(dut.load_chain) if L > 1 else 0
                ctx.set(dut.load, 1)
                ctx.set(dut.c, int(c0[chain]))
                loaded.add(chain)
                await ctx.tick()
            ctx.set(dut.load, 0)
            n = A.shape[0] * L
            for t in range(n + dut.latency + L):
                if t < n:
                    chain = ctx.get(dut.chain) if L > 1 else 0
                    k = t // L
                    # with L chains, one operation of each per round, in chain order
                    ctx.set(dut.in_valid, 1)
                    ctx.set(dut.a, int(A[k, chain]))
                    ctx.set(dut.b, int(B[k, chain]))
                    ctx.set(dut.rand, int(W[k, chain]))
                else:
                    ctx.set(dut.in_valid, 0)
                await ctx.tick()
                if ctx.get(dut.out_valid):
                    got.append((ctx.get(dut.out_chain) if L > 1 else 0, ctx.get(dut.acc)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    # the chain order is the hardware's (chain = cycle mod L): rebuild the expectations from it
    want, pos = [], 0
    for c0, A, B, W in rounds:
        z = [int(x) for x in c0]
        seen = [0] * L
        for _ in range(A.shape[0] * L):
            chain = got[pos][0]
            k = seen[chain]
            seen[chain] += 1
            z[chain] = int(ref.mac(z[chain], A[k, chain], B[k, chain], cfg, rand=W[k, chain]))
            want.append((chain, z[chain]))
            pos += 1
    assert got == want
