"""Unit tests of the MAC sub-blocks in Amaranth's simulator, against independent Python models."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

import ref
from hwgen.lzc import LeadingZeroCounter
from hwgen.pack import Packer
from hwgen.prng import Xorshift32Gen
from hwgen.rounding import EagerFarRounder, LazyRounder
from hwgen.shift import AlignShifter, Normaliser
from hwgen.unpack import ExactMultiplier, ProductUnit, Unpacker


def comb(dut, vectors, outputs):
    """Apply each dict of input values to a combinational ``dut``; return the output dicts."""
    results = []

    async def tb(ctx):
        for vec in vectors:
            for name, v in vec.items():
                ctx.set(getattr(dut, name), int(v))
            results.append({o: ctx.get(getattr(dut, o)) for o in outputs})

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    return results


@pytest.mark.parametrize("width", [1, 5, 8, 13])
def test_lzc_exhaustive_or_random(width):
    rng = np.random.default_rng(width)
    vals = range(1 << width) if width <= 8 else rng.integers(0, 1 << width, 400)
    vals = list(vals) + [0]
    out = comb(LeadingZeroCounter(width), [{"value": v} for v in vals], ["count"])
    for v, o in zip(vals, out, strict=True):
        assert o["count"] == width - int(v).bit_length(), v


def test_align_shifter_sticky():
    w = 12
    rng = np.random.default_rng(2)
    vecs = [
        {"value": int(v), "amount": int(s)}
        for v, s in zip(rng.integers(0, 1 << w, 500), rng.integers(0, 20, 500), strict=True)
    ]
    vecs += [{"value": 1, "amount": 12}, {"value": 0, "amount": 31}, {"value": 0xFFF, "amount": 0}]
    dut = AlignShifter(w, 5)
    for v, o in zip(vecs, comb(dut, vecs, ["out", "sticky", "jammed"]), strict=True):
        val, s = v["value"], v["amount"]
        q = val >> s if s < 64 else 0
        lost = val - (q << s) != 0
        assert (o["out"], o["sticky"]) == (q, int(lost)), v
        assert o["jammed"] == q | int(lost)


def test_normaliser_with_limit():
    w = 10
    rng = np.random.default_rng(3)
    vecs = [
        {"value": int(v), "limit": int(lim)}
        for v, lim in zip(
            rng.integers(0, 1 << w, 400) >> rng.integers(0, w, 400),
            rng.integers(0, 16, 400),
            strict=True,
        )
    ]
    dut = Normaliser(w, 4)
    for v, o in zip(vecs, comb(dut, vecs, ["out", "shift", "lzc"]), strict=True):
        lz = w - v["value"].bit_length()
        sh = min(lz, v["limit"])
        assert (o["lzc"], o["shift"], o["out"]) == (lz, sh, (v["value"] << sh) & ((1 << w) - 1)), v


def test_exact_multiplier_exhaustive():
    vecs = [{"a": a, "b": b} for a in range(16) for b in range(16)]
    for v, o in zip(vecs, comb(ExactMultiplier(4), vecs, ["prod"]), strict=True):
        assert o["prod"] == v["a"] * v["b"]


@pytest.mark.parametrize("fmt", [ref.E5M2, ref.E4M3, ref.parse_format("e5m2:nosub")])
def test_unpacker_matches_decode(fmt):
    codes = list(range(fmt.num_codes))
    out = comb(
        Unpacker(fmt, 10), [{"code": c} for c in codes], ["sign", "sig", "exp", "is_nan", "is_inf"]
    )
    vals = ref.decode(np.array(codes), fmt)
    for c, o, v in zip(codes, out, vals, strict=True):
        exp = o["exp"]  # signed port: the simulator returns a signed int
        assert o["is_nan"] == int(np.isnan(v)), c
        assert o["is_inf"] == int(np.isinf(v)), c
        if np.isfinite(v):
            assert (-1) ** o["sign"] * o["sig"] * 2.0**exp == v or (v == 0 and o["sig"] == 0), c


def test_product_unit_specials_and_values():
    fmt = ref.E5M2
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, 600)
    b = rng.integers(0, 256, 600)
    a[:4] = [0x7C, 0x00, 0x7E, 0x80]  # inf, +0, NaN, -0
    b[:4] = [0x00, 0xFC, 0x3C, 0x3C]
    out = comb(
        ProductUnit(fmt, 10),
        [{"a": x, "b": y} for x, y in zip(a, b, strict=True)],
        ["sign", "sig", "exp", "is_nan", "is_inf"],
    )
    with np.errstate(invalid="ignore"):
        want = ref.decode(a, fmt) * ref.decode(b, fmt)
    for o, w in zip(out, want, strict=True):
        exp = o["exp"]  # signed port: the simulator returns a signed int
        assert o["is_nan"] == int(np.isnan(w))
        assert o["is_inf"] == int(np.isinf(w))
        if np.isfinite(w):
            assert (-1) ** o["sign"] * o["sig"] * 2.0**exp == w


@pytest.mark.parametrize("mode,r", [("rn", 0), ("rz", 0), ("sr", 3)])
def test_lazy_rounder(mode, r):
    w, man = 10, 3
    rng = np.random.default_rng(5)
    vals = [int(v) for v in rng.integers(0, 1 << w, 500)]
    rands = [int(x) for x in rng.integers(0, 1 << max(r, 1), 500)]
    vecs = [
        {"value": v, **({"rand": x} if mode == "sr" else {})}
        for v, x in zip(vals, rands, strict=True)
    ]
    out = comb(LazyRounder(w, man, mode, r), vecs, ["m"])
    lo = w - 1 - man
    for v, o in zip(vecs, out, strict=True):
        x = v["value"] / 2**lo  # kept significand with its fraction
        k = int(np.floor(x))
        f = x - k
        if mode == "rz":
            want = k
        elif mode == "rn":
            want = k + (f > 0.5 or (f == 0.5 and k % 2 == 1))
        else:
            want = k + (int(np.floor(f * 2**r)) + v["rand"] >= 2**r)
        assert o["m"] == want, v


def test_eager_far_rounder():
    man, r = 3, 2
    rng = np.random.default_rng(6)
    ys = [int(y) for y in rng.integers(1 << (man + r - 1), 1 << (man + r + 3), 500)]
    bs = [int(b) for b in rng.integers(0, 4, 500)]
    vecs = [{"y": y, "b": b} for y, b in zip(ys, bs, strict=True)]
    for v, o in zip(vecs, comb(EagerFarRounder(man, r), vecs, ["k", "m"]), strict=True):
        k = max(0, v["y"].bit_length() - 1 - man - r)
        bk = v["b"] % (1 << k)
        assert (o["k"], o["m"]) == (k, (v["y"] + bk * 2**r) >> (r + k)), v


@pytest.mark.parametrize(
    "fmt,mode", [(ref.E6M5, "sr"), (ref.E4M3, "rn"), (ref.parse_format("e6m5:nosub:sat"), "rz")]
)
def test_packer_matches_encode(fmt, mode):
    # Values m * 2**(eg - man) for m in [0, 2**p] and grid exponents across the range.
    man = fmt.man_bits
    rng = np.random.default_rng(7)
    m = rng.integers(0, (1 << (man + 1)) + 1, 400)
    eg = rng.integers(fmt.emin, fmt.emax + 3, 400)
    sign = rng.integers(0, 2, 400)
    m = np.where(eg > fmt.emin, np.maximum(m, 1 << man), m)  # normal grid: m >= 2**man
    vecs = [
        {
            "sign": s,
            "m": mm,
            "eg": int(e),
            "flush": 0,
            "exact_zero": 0,
            "zero_sign": 0,
            "is_nan": 0,
            "is_inf": 0,
            "inf_sign": 0,
        }
        for s, mm, e in zip(sign, m, eg, strict=True)
    ]
    out = comb(Packer(fmt, mode, 10), vecs, ["code"])
    vals = (-1.0) ** sign * m * 2.0 ** (eg - man)
    # A representable-or-overflowing value: encode with rz is exact below max, and
    # shows the overflow rule of each mode through 'mode'.
    want = ref.encode(vals, fmt, "rz" if mode == "rz" else "rn")
    for v, o, w, x in zip(vecs, out, want, vals, strict=True):
        if abs(x) == 0 and v["m"] == 0:
            w = int(v["sign"]) << (fmt.width - 1)  # a non-zero sum rounded to zero keeps its sign
        assert o["code"] == w, (v, x)


def test_packer_specials():
    fmt = ref.E4M3  # fn + saturate: inf -> max, NaN -> 0x7F
    base = {"sign": 0, "m": 8, "eg": 0, "flush": 0, "exact_zero": 0, "zero_sign": 0, "inf_sign": 1}
    vecs = [
        dict(base, is_nan=1, is_inf=0),
        dict(base, is_nan=0, is_inf=1),
        dict(base, is_nan=0, is_inf=0, exact_zero=1, zero_sign=1),
        dict(base, is_nan=0, is_inf=0, flush=1, sign=1),
    ]
    out = comb(Packer(fmt, "sr", 10), vecs, ["code"])
    assert [o["code"] for o in out] == [0x7F, 0x80 | fmt.max_code, 0x80, 0x80]


@pytest.mark.parametrize("seed", [0, 12345])
def test_xorshift_matches_ref(seed):
    dut = Xorshift32Gen(seed)
    pattern = [1, 1, 0, 1, 0, 0, 1, 1, 1, 0] * 5
    words = []

    async def tb(ctx):
        for adv in pattern:
            ctx.set(dut.advance, adv)
            if adv:
                words.append(ctx.get(dut.word))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    g = ref.Xorshift32(seed, 0, 0)
    assert words == [g.next_word() for _ in words]
