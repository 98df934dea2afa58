"""ref/rounding.py, function by function, against exact integer arithmetic (NumPy and torch ops).

Each function is checked on edge values (0, powers of two, 2**53 +- 1 where
float64 rounding misleads, shifts past 63 bits) and on random int64 inputs,
against Python's exact integers and :class:`fractions.Fraction`. The same
inputs go through :class:`ref.backend.NumpyOps` and, when torch is installed,
:class:`ref.backend.TorchOps`, and must give the same integers.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from ref import E4M3, E5M2, E6M5, FP16, parse_format
from ref.backend import NumpyOps
from ref.rounding import bit_length, pack, round_to_grid, shift_right_floor, special_codes

RNG = np.random.default_rng(20261129)
EDGE = [0, 1, 2, 3, 7, 8, 2**31 - 1, 2**31, 2**52, 2**53 - 1, 2**53, 2**53 + 1, 2**54 - 1,
        2**61, 2**62 - 1]
SIGS = np.array(EDGE + RNG.integers(0, 2**62, 200).tolist()
                + [int(x) for x in 2 ** RNG.integers(0, 62, 50)], dtype=np.int64)


def _ops_list():
    out = [pytest.param(lambda a: NumpyOps(), lambda a: a, lambda x: np.asarray(x), id="numpy")]
    try:
        import torch

        from ref.backend import TorchOps
    except ImportError:  # the torch extra is not installed
        return out
    out.append(pytest.param(lambda a: TorchOps(a), torch.from_numpy,
                            lambda x: x.cpu().numpy(), id="torch"))
    return out


OPS = _ops_list()


@pytest.mark.parametrize("make_ops,to,back", OPS)
def test_bit_length_is_exact_above_2_53(make_ops, to, back):
    x = to(SIGS)
    got = back(bit_length(make_ops(x), x)).tolist()
    assert got == [int(s).bit_length() for s in SIGS.tolist()]


@pytest.mark.parametrize("make_ops,to,back", OPS)
def test_shift_right_floor_quotient_and_sticky(make_ops, to, back):
    shifts = np.array([-3, -1, 0, 1, 2, 5, 31, 52, 62, 63, 64, 100, 1000], dtype=np.int64)
    sig = np.repeat(SIGS[SIGS < 2**58], len(shifts))  # left shifts by <= 3 stay below 2**62
    s = np.tile(shifts, len(sig) // len(shifts))
    x, sx = to(sig), to(s)
    q, rem = shift_right_floor(make_ops(x), x, sx)
    for a, k, qq, rr in zip(sig.tolist(), s.tolist(), back(q).tolist(), back(rem).tolist(),
                            strict=True):
        if k >= 0:
            assert qq == a >> k and rr == (a % 2**k != 0), (a, k)
        else:
            assert qq == a << -k and not rr, (a, k)


def _exact(sig, exp):
    return Fraction(sig) * Fraction(2) ** exp


def _grid_neighbours(x: Fraction, fmt):
    """The two grid points of ``fmt``'s (unbounded-exponent) grid around x > 0, and the ulp."""
    e = max(math.floor(math.log2(x)), fmt.emin)
    # correct a float log2 error near powers of two
    while Fraction(2) ** e > x and e > fmt.emin:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    ulp = Fraction(2) ** (e - fmt.man_bits)
    lo = (x // ulp) * ulp
    return lo, lo + ulp, ulp


@pytest.mark.parametrize("fmt", [E5M2, E4M3, E6M5, FP16, parse_format("e5m2:nosub")],
                         ids=lambda f: f.spec())
@pytest.mark.parametrize("mode", ["rn", "rz", "sr"])
def test_round_to_grid_against_fractions(fmt, mode):
    n = 150
    sig = RNG.integers(1, 2**40, n).astype(np.int64)
    exp = RNG.integers(fmt.emin - 45, fmt.emax - 38, n).astype(np.int64)
    rbits = 3
    R = RNG.integers(0, 2**rbits, n).astype(np.int64)
    m, eg, e = round_to_grid(NumpyOps(), sig, exp, fmt, mode, rbits, R)
    for i in range(n):
        x = _exact(int(sig[i]), int(exp[i]))
        assert int(e[i]) == math.floor(math.log2(x)) or Fraction(2) ** int(e[i]) <= x < Fraction(
            2) ** (int(e[i]) + 1)
        lo, hi, ulp = _grid_neighbours(x, fmt)
        got = int(m[i]) * Fraction(2) ** (int(eg[i]) - fmt.man_bits)
        if mode == "rz":
            want = lo
        elif mode == "rn":
            d_lo, d_hi = x - lo, hi - x
            want = lo if d_lo < d_hi else hi if d_hi < d_lo else (
                lo if (lo / ulp) % 2 == 0 else hi)
        else:  # SR_{p,r}: up iff floor(f * 2**r) + R >= 2**r
            f = (x - lo) / ulp
            want = hi if math.floor(f * 2**rbits) + int(R[i]) >= 2**rbits else lo
        assert got == want, (fmt.spec(), mode, x, got, want)


def test_round_to_grid_sr_probability_is_floor_f_2r_over_2r():
    """Over all 2**r words, SR rounds up floor(f * 2**r) times (f: the fraction in ulps)."""
    fmt, r = E5M2, 4
    sig = np.array([0b1011_0111_0101], dtype=np.int64)  # 2935 * 2**-10 = 2.866...
    exp = np.array([-10], dtype=np.int64)
    ups = 0
    for word in range(2**r):
        m, _, _ = round_to_grid(NumpyOps(), sig, exp, fmt, "sr", r, np.array([word]))
        m_rz, _, _ = round_to_grid(NumpyOps(), sig, exp, fmt, "rz")
        ups += int(m[0] != m_rz[0])
    x = _exact(2935, -10)
    lo, _, ulp = _grid_neighbours(x, fmt)
    assert ups == math.floor((x - lo) / ulp * 2**r)


@pytest.mark.parametrize("mode", ["rn", "rz"])
def test_pack_overflow_flush_and_signed_zero(mode):
    ops = NumpyOps()
    fmt = E5M2  # max finite 57344 = 1.75 * 2**15, inf code 0x7c
    sign = np.array([0, 1, 0, 1, 0], dtype=np.int64)
    # 1.75*2**15 (max), 2**16 (overflow), 1.0, exact zero (sign kept), 2**-16 (min subnormal)
    m = np.array([7, 4, 4, 0, 1], dtype=np.int64)
    eg = np.array([15, 16, 0, fmt.emin, fmt.emin], dtype=np.int64)
    e = np.array([15, 16, 0, fmt.emin, -16], dtype=np.int64)
    zero = np.array([False, False, False, True, False])
    codes = pack(ops, fmt, sign, m, eg, e, exact_zero=zero, mode=mode).tolist()
    assert codes[0] == 0x7B
    assert codes[1] == (0xFB if mode == "rz" else 0xFC)  # -max under rz, -inf under rn
    assert codes[2] == 0x3C and codes[3] == 0x80 and codes[4] == 0x01
    nosub = parse_format("e5m2:nosub")
    flushed = pack(ops, nosub, sign, m, eg, e, exact_zero=zero, mode=mode).tolist()
    assert flushed[4] == 0x00 and flushed[:4] == codes[:4]


def test_pack_overflow_without_inf():
    ops = NumpyOps()
    one = np.array([0], dtype=np.int64)
    big_m, big_e = np.array([8], dtype=np.int64), np.array([9], dtype=np.int64)  # 2**9 > 448
    args = dict(exact_zero=np.array([False]), mode="rn")
    assert pack(ops, E4M3, one, big_m, big_e, big_e, **args).tolist() == [E4M3.max_code]  # saturating
    fn = parse_format("e4m3:nosat")
    assert pack(ops, fn, one, big_m, big_e, big_e, **args).tolist() == [fn.nan_code]


def test_special_codes_per_specials_kind():
    ops = NumpyOps()
    sign = np.array([0, 1, 0, 1], dtype=np.int64)
    nan = np.array([True, False, False, False])
    inf = np.array([False, True, True, False])
    codes = np.array([5, 5, 5, 5], dtype=np.int64)
    assert special_codes(ops, E5M2, sign, nan, inf, codes).tolist() == [
        E5M2.nan_code, 0x80 | E5M2.inf_code, E5M2.inf_code, 5]
    sat = E4M3  # OCP E4M3: no inf, saturating: inf -> signed max
    assert special_codes(ops, sat, sign, nan, inf, codes).tolist() == [
        sat.nan_code, 0x80 | sat.max_code, sat.max_code, 5]
    none = parse_format("e6m5:none")  # every code finite: NaN -> +0
    assert special_codes(ops, none, sign, nan, inf, codes).tolist() == [
        0, (1 << (none.width - 1)) | none.max_code, none.max_code, 5]


@pytest.mark.parametrize("fmt", [E5M2, E4M3], ids=lambda f: f.spec())
def test_round_to_grid_rn_ties_go_to_even(fmt):
    """Values exactly half-way between grid points (one bit below the last) round to even m."""
    p = fmt.precision
    sig = np.arange(2**p + 1, 2 ** (p + 1), 2, dtype=np.int64)  # odd (p+1)-bit integers: ties
    exp = np.zeros_like(sig)
    m, eg, _ = round_to_grid(NumpyOps(), sig, exp, fmt, "rn")
    for s, mm, g in zip(sig.tolist(), m.tolist(), eg.tolist(), strict=True):
        lo, hi = s - 1, s + 1  # the neighbours, on the grid of step 2 at this binade
        want = lo if (lo // 2) % 2 == 0 else hi
        assert mm * 2 ** (g - fmt.man_bits) == want, (s, mm, g)
