"""Stochastic rounding properties, enumerated over every random word (contract 2-3).

For SR quantization (``encode(..., "sr")``) and the SR MACs (``sr_lazy``,
``sr_eager``) each test feeds *all* 2**r values of R (and all 4 values of B
for eager) to the same operands, so expectations are exact averages, not
statistics:

* every result is one of the two neighbours of the exact value: its RZ code
  ``lo`` and the next code away from zero ``lo + 1`` (codes are sign-magnitude);
* the number of round-ups over all R is ``floor(f * 2**r)`` for lazy SR and SR
  quantization (``f`` = fraction of the exact value above ``lo``, in ulps), so
  the bias ``E[result] - x`` lies in ``(-2**-r, 0]`` ulp: toward zero;
* eager's bias over all (R, B) is below ``2**-r`` ulp in magnitude;
* eager equals lazy for every (R, B) on the close path (effective subtraction,
  ``|e1 - e2| <= 1``) and on far-path cases whose result exponent is the
  anchor (k = 0). The cases are derived here from the operands with exact
  rational arithmetic, not from ``ref``'s internals.
"""

from fractions import Fraction

import numpy as np
import pytest

import ref
from ref import BF16, E4M3, E5M2, E6M5, FP16, FloatFormat, MacConfig

# ---- exact helpers --------------------------------------------------------------


def floor_log2(q: Fraction) -> int:
    """floor(log2(q)) for a rational q > 0, exactly."""
    e = q.numerator.bit_length() - q.denominator.bit_length()
    while Fraction(2) ** e > q:
        e -= 1
    while Fraction(2) ** (e + 1) <= q:
        e += 1
    return e


def frac_values(codes, fmt):
    """Exact values (Fractions) of finite codes."""
    return [Fraction(float(v)) for v in ref.decode(np.asarray(codes), fmt)]


def next_code(codes, fmt):
    """The code one step away from zero (same sign): magnitude code + 1."""
    return np.asarray(codes) + 1


def ulp_of(codes, fmt):
    """Spacing of the grid just above |value(code)|: 2**(max(exponent field, 1) - bias - man_bits).

    From the format definition alone (also at the largest finite value, whose
    next code may be NaN or inf).
    """
    field = (np.asarray(codes) & fmt.mag_mask) >> fmt.man_bits
    return np.ldexp(1.0, np.maximum(field, 1) - fmt.bias - fmt.man_bits)


# ---- SR quantization ----------------------------------------------------------------

QFORMATS = [E5M2, E4M3, FP16, BF16, FloatFormat(3, 2), FloatFormat(4, 1, specials="fn")]


def quant_inputs(fmt, n, rng):
    """float64 values strictly inside the finite range: random bits below the last kept bit."""
    e = rng.integers(fmt.emin - fmt.man_bits - 2, fmt.emax + 1, n)
    x = np.ldexp(rng.uniform(1.0, 2.0, n), e)
    x = np.minimum(x, fmt.max_value)
    x = x * rng.choice([-1.0, 1.0], n)
    # exact grid values and exact midpoints too
    grid = ref.decode(rng.integers(0, fmt.num_codes, n // 8), fmt)
    grid = grid[np.isfinite(grid)]
    mids = grid * (1 + 2.0 ** -(fmt.man_bits + 1))
    mids = mids[np.abs(mids) <= fmt.max_value]
    return np.concatenate([x, grid, mids, [0.0, -0.0]])


@pytest.mark.parametrize("r", [1, 3, 7])
@pytest.mark.parametrize("fmt", QFORMATS, ids=lambda f: f.name)
def test_sr_quantize_neighbours_and_exact_bias(fmt, r):
    rng = np.random.default_rng(fmt.width * 31 + r)
    x = quant_inputs(fmt, 3000 if r < 7 else 600, rng)
    n = x.size
    R = np.arange(1 << r)
    res = ref.encode(np.repeat(x, R.size), fmt, "sr", rbits=r, rand=np.tile(R, n)).reshape(
        n, R.size
    )
    lo = ref.encode(x, fmt, "rz")
    hi = next_code(lo, fmt)
    is_lo = res == lo[:, None]
    is_hi = res == hi[:, None]
    assert (is_lo | is_hi).all(), "SR result outside the two neighbours"
    lo_v = ref.decode(lo, fmt)
    ulp = ulp_of(lo, fmt)
    f = np.abs(x - lo_v) / ulp  # exact in float64 (x and lo_v share the binade)
    assert ((f >= 0) & (f < 1)).all()
    n_up = is_hi.sum(axis=1)
    # The contract: round up iff floor(f * 2**r) + R >= 2**r, so #up = floor(f * 2**r).
    assert np.array_equal(n_up, np.floor(f * 2**r).astype(np.int64))
    bias = n_up / 2**r - f  # in ulps, E[|result|] - |x|
    assert (bias <= 0).all() and (bias > -(2.0**-r)).all()
    # exact inputs never move
    exact = f == 0
    assert exact.sum() > 10 and (n_up[exact] == 0).all()


def test_sr_quantize_overflow_neighbour_is_inf_or_max():
    """Between max and max + ulp, E5M2 rounds up to inf; saturating E4M3 stays at max."""
    r = 4
    R = np.arange(16)
    for fmt, up_code in [(E5M2, E5M2.inf_code), (E4M3, E4M3.max_code)]:
        ulp = 2.0 ** (fmt.emax - fmt.man_bits)
        for f in [0.0, 0.03, 0.5, 0.97]:
            x = fmt.max_value + f * ulp
            res = ref.encode(np.full(16, x), fmt, "sr", rbits=r, rand=R)
            assert set(res.tolist()) <= {fmt.max_code, up_code}
            assert (res == up_code).sum() == (
                int(np.floor(f * 16)) if up_code != fmt.max_code else 16 * (f >= 0)
            )


def test_sr_quantize_seeded_draws_are_unbiased_enough():
    """With PRNG words (seed), P(up) matches floor(f * 2**r) / 2**r within sampling noise."""
    fmt, r, n = E4M3, 4, 40000
    x = np.full(n, 1.3)  # f = 0.4 ulp (ulp 0.125 at 1): floor(0.4*16)/16 = 6/16
    res = ref.encode(x, fmt, "sr", rbits=r, seed=12345)
    p = (ref.decode(res, fmt) > 1.3).mean()
    assert abs(p - 6 / 16) < 5 * np.sqrt(0.25 / n)


# ---- SR MACs -------------------------------------------------------------------------

MAC_FORMATS = [
    (E5M2, E6M5),
    (E4M3, FP16),
    (E5M2, FloatFormat(5, 4)),  # narrow accumulator: products are rounded too
    (E4M3, FloatFormat(6, 5, subnormals=False)),
]


def mac_operands(in_fmt, acc_fmt, n, rng):
    """Finite (z, a, b) codes: random, near-cancelling (close path) and carrying (far path)."""

    def finite_codes(fmt, m):
        c = rng.integers(0, fmt.num_codes, 4 * m)
        return c[np.isfinite(ref.decode(c, fmt))][:m]

    a = finite_codes(in_fmt, n)
    b = finite_codes(in_fmt, n)
    p = ref.decode(a, in_fmt) * ref.decode(b, in_fmt)
    kind = rng.integers(0, 4, n)
    u = np.exp2(rng.uniform(-2.5, 2.5, n))
    zv = np.select(
        [kind == 0, kind == 1, kind == 2], [-p * u, p * u, -p * rng.uniform(0.4, 2.2, n)], p
    )
    zv = np.clip(zv, -acc_fmt.max_value / 4, acc_fmt.max_value / 4)
    z = ref.encode(zv, acc_fmt, "rn")
    z = np.where(kind == 3, finite_codes(acc_fmt, n), z)
    z[:4] = ref.encode(np.array([0.0, -0.0, 0.0, -0.0]), acc_fmt)
    return z, a, b


def enumerate_mac(cfg, z, a, b):
    """Results of every operand triple for every random word: shape (n, 2**rand_bits)."""
    W = np.arange(1 << cfg.rand_bits)
    n = z.size
    out = ref.mac(
        np.repeat(z, W.size), np.repeat(a, W.size), np.repeat(b, W.size), cfg, rand=np.tile(W, n)
    )
    return out.reshape(n, W.size)


def exact_cases(cfg, z, a, b):
    """Per triple: exact sum x, its RZ / next codes and the eager path classification."""
    acc, inp = cfg.acc_fmt, cfg.in_fmt
    zf = frac_values(z, acc)
    af = frac_values(a, inp)
    bf = frac_values(b, inp)
    lo = ref.mac(z, a, b, cfg.replace(rounding="rz"))
    hi = next_code(lo, acc)
    lo_v = frac_values(lo, acc)
    out = []
    sz = (z >> (acc.width - 1)) & 1
    sp = ((a ^ b) >> (inp.width - 1)) & 1
    for i in range(z.size):
        x = zf[i] + af[i] * bf[i]
        p = af[i] * bf[i]
        # Input zeros read as zero, also for nosub formats (decode says so).
        e1 = floor_log2(abs(zf[i])) if zf[i] != 0 else None
        e2 = floor_log2(abs(p)) if p != 0 else None
        eff_sub = sz[i] != sp[i]
        far = not (eff_sub and e1 is not None and e2 is not None and abs(e1 - e2) <= 1)
        k0 = False
        if far and (e1 is not None or e2 is not None):
            e_big = max(e for e in (e1, e2) if e is not None)
            anchor = max(e_big - 1 if eff_sub else e_big, acc.emin)
            k0 = x != 0 and max(floor_log2(abs(x)), acc.emin) == anchor
        out.append(dict(x=x, lo_v=lo_v[i], far=far, k0=k0 or x == 0))
    return lo, hi, out


SR_CASES = [(fmts, r) for fmts in MAC_FORMATS for r in (1, 3)] + [(MAC_FORMATS[0], 6)]


@pytest.mark.parametrize("fmts,r", SR_CASES, ids=lambda v: str(v) if isinstance(v, int) else None)
def test_sr_macs_neighbours_bias_and_eager_equals_lazy(fmts, r):
    in_fmt, acc_fmt = fmts
    lazy = MacConfig(in_fmt, acc_fmt, "sr_lazy", r)
    eager = MacConfig(in_fmt, acc_fmt, "sr_eager", r)
    rng = np.random.default_rng(acc_fmt.width * 100 + in_fmt.width + r)
    z, a, b = mac_operands(in_fmt, acc_fmt, 500 if r < 6 else 150, rng)
    res_l = enumerate_mac(lazy, z, a, b)  # (n, 2**r): column = R
    res_e = enumerate_mac(eager, z, a, b)  # (n, 2**(r+2)): column = B * 2**r + R
    lo, hi, cases = exact_cases(lazy, z, a, b)
    nosub = not acc_fmt.subnormals

    n_close = n_k0 = n_carry = n_differ = 0
    for i, c in enumerate(cases):
        for res in (res_l[i], res_e[i]):
            assert set(res.tolist()) <= {lo[i], hi[i]}, (i, z[i], a[i], b[i])
        x = c["x"]
        if abs(x) > Fraction(acc_fmt.max_value) or (
            nosub and abs(x) < Fraction(acc_fmt.min_normal)
        ):
            continue  # overflow / flush: deterministic by the format rules
        ulp = Fraction(float(ulp_of(lo[i], acc_fmt)))
        f = abs(x - c["lo_v"]) / ulp
        assert 0 <= f < 1
        up_l = int((res_l[i] == hi[i]).sum())
        up_e = int((res_e[i] == hi[i]).sum())
        # lazy: exactly floor(f * 2**r) round-ups: bias in (-2**-r, 0] ulp, toward zero.
        assert up_l == (f * 2**r).__floor__(), (i, f)
        # eager: |E[result] - x| < 2**-r ulp, averaging over all R and B.
        bias_e = Fraction(up_e, 1 << (r + 2)) - f
        assert abs(bias_e) < Fraction(1, 1 << r), (i, f, up_e)
        if not c["far"]:
            n_close += 1
            assert (res_e[i] == np.tile(res_l[i], 4)).all(), ("close path", i)
        elif c["k0"]:
            n_k0 += 1
            assert (res_e[i] == np.tile(res_l[i], 4)).all(), ("far path, k = 0", i)
        else:
            n_carry += 1
            n_differ += not (res_e[i] == np.tile(res_l[i], 4)).all()
    # The classification is not vacuous: all three kinds occur.
    n = z.size
    assert n_close >= n // 25 and n_k0 >= n // 10 and n_carry >= 5, (n_close, n_k0, n_carry)
    if r >= 3:
        assert n_differ >= 1  # outside those cases eager is a different rounding


def test_eager_on_zero_accumulator():
    """A zero addend counts by its sign bit (design decision), and has exponent -inf (far path).

    +0 + p (p > 0): effective addition, anchor = e(p) = the result's exponent: k = 0, eager == lazy.
    -0 + p: effective subtraction, anchor = e(p) - 1 (unless clamped to emin), so the
    result lands one above the anchor (k >= 1): SR with more random bits, a different
    rounding than lazy, still between the neighbours and with bias below 2**-r ulp.
    """
    r = 3
    lazy = MacConfig(E5M2, FloatFormat(5, 1), "sr_lazy", r)
    eager = lazy.replace(rounding="sr_eager")
    a = np.arange(1, 0x78)  # finite positive E5M2 codes whose products stay in range
    b = np.full_like(a, int(ref.encode(1.25, E5M2)))
    zp = np.full_like(a, int(ref.encode(0.0, lazy.acc_fmt)))
    lp = enumerate_mac(lazy, zp, a, b)
    assert (enumerate_mac(eager, zp, a, b) == np.tile(lp, 4)).all()
    assert (lp != lp[:, :1]).any()  # 1.25 * a has 3 significant bits: some results do round

    zm = zp | (1 << (lazy.acc_fmt.width - 1))
    lm = enumerate_mac(lazy, zm, a, b)
    em = enumerate_mac(eager, zm, a, b)
    assert (lm == lp).all()  # -0 + p == +0 + p for lazy
    assert (em != np.tile(lm, 4)).any()
    lo, hi, cases = exact_cases(lazy, zm, a, b)
    for i, c in enumerate(cases):
        assert set(em[i].tolist()) <= {lo[i], hi[i]}
        f = abs(c["x"] - c["lo_v"]) / Fraction(float(ulp_of(lo[i], lazy.acc_fmt)))
        bias = Fraction(int((em[i] == hi[i]).sum()), 1 << (r + 2)) - f
        assert abs(bias) < Fraction(1, 1 << r)
        assert c["far"]
        if c["k0"]:  # tiny products: the anchor is clamped to emin, k = 0 again
            assert (em[i] == np.tile(lm[i], 4)).all()


@pytest.mark.slow
@pytest.mark.parametrize("r", [2, 4])
def test_sr_macs_exhaustive_small_formats(r):
    """Every (z, a, b) of e3m1 x e3m1 -> e4m2 and every random word."""
    in_fmt, acc_fmt = FloatFormat(3, 1), FloatFormat(4, 2)
    za = [c for c in range(acc_fmt.num_codes) if np.isfinite(ref.decode(c, acc_fmt))]
    ia = [c for c in range(in_fmt.num_codes) if np.isfinite(ref.decode(c, in_fmt))]
    Z, A, B = (v.ravel() for v in np.meshgrid(za, ia, ia, indexing="ij"))
    lazy = MacConfig(in_fmt, acc_fmt, "sr_lazy", r)
    eager = lazy.replace(rounding="sr_eager")
    res_l = enumerate_mac(lazy, Z, A, B)
    res_e = enumerate_mac(eager, Z, A, B)
    lo, hi, cases = exact_cases(lazy, Z, A, B)
    for i, c in enumerate(cases):
        assert set(res_l[i].tolist()) <= {lo[i], hi[i]} and set(res_e[i].tolist()) <= {lo[i], hi[i]}
        if abs(c["x"]) > Fraction(acc_fmt.max_value):
            continue
        ulp = Fraction(float(ulp_of(lo[i], acc_fmt)))
        f = abs(c["x"] - c["lo_v"]) / ulp
        assert int((res_l[i] == hi[i]).sum()) == (f * 2**r).__floor__()
        assert abs(Fraction(int((res_e[i] == hi[i]).sum()), 1 << (r + 2)) - f) < Fraction(1, 1 << r)
        if not c["far"] or c["k0"]:
            assert (res_e[i] == np.tile(res_l[i], 4)).all()
