"""hwgen.far: the eager and the rounding far paths against independent exact models."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from test_hwgen_blocks import comb

from hwgen.far import EagerFarPath, RoundingFarPath


def exact_sum(man, extra, v):
    """X in window units (bit 0 = the jam position) as a Fraction, and the anchor bit."""
    lift = extra + 1
    z_big = v["z_big"]
    big, small = (v["z"], v["p"]) if z_big else (v["p"], v["z"])
    amount = v["shift_p"] if z_big else v["shift_z"]
    bigv = big << (lift + v["sub"])
    smallv = Fraction(small << lift, 1 << amount)
    return (bigv - smallv if v["sub"] else bigv + smallv), man + extra + 1


def eager_model(man, r, v):
    """Contract section 3, far path: Y = floor(X / w) + R, k, then B_k; returns the outputs."""
    x, a = exact_sum(man, r, v)
    R, B = v["rand"] % (1 << r), v["rand"] >> r
    y = int(x // 2) + R  # w is window bit 1
    k = max(0, y.bit_length() - 1 - (man + r))
    M = (y + (B % (1 << k)) * (1 << r)) >> (r + k)
    return {
        "mant": M % (1 << man),
        "offset": k + (M >> man & 1) + 2 * (M >> (man + 1) & 1),
        "low": int(2 * y < 1 << a),
    }


def rounding_model(man, mode, r, v):
    """Round X to man + 1 bits at its own binade (never below the anchor's): rn, rz or sr."""
    extra = {"rn": 1, "rz": 0, "sr": r}[mode]
    x, a = exact_sum(man, extra, v)
    c = int(x >= 1 << (a + 1))
    q = x / (1 << (a + c - man))  # in units of the kept last bit
    k, f = int(q), q - int(q)
    if mode == "rn":
        up = f > Fraction(1, 2) or (f == Fraction(1, 2) and k % 2)
    elif mode == "rz":
        up = False
    else:
        up = int(f * (1 << r)) + v["rand"] >= 1 << r
    M = k + up
    return {
        "mant": M % (1 << man),
        "offset": c + (M >> man & 1) + 2 * (M >> (man + 1) & 1),
        "low": int(x < 1 << a),
    }


def far_vectors(man, rand_bits, n, seed, *, amount_max):
    """Far-path inputs as the dual step presents them (sum never negative)."""
    rng = np.random.default_rng(seed)
    p = man + 1
    out = []
    while len(out) < n:
        z, q = (int(x) for x in rng.integers(0, 1 << p, 2))
        z_big, sub = int(rng.integers(0, 2)), int(rng.integers(0, 2))
        d = int(rng.integers(0, amount_max))
        big, small = (z, q) if z_big else (q, z)
        hidden = 1 << man
        if sub and (d < 2 and not (d == 1 and not small & hidden)) or (sub and not big & hidden):
            continue  # a close pair, or an impossible far subtraction
        if not big & hidden and (d > 0 or sub):
            continue  # a larger addend without hidden bit sits at emin: d = 0, addition
        amount = d - sub
        v = {"z": z, "p": q, "z_big": z_big, "sub": sub,
             "shift_p": amount if z_big else int(rng.integers(0, 64)),
             "shift_z": int(rng.integers(0, 64)) if z_big else amount,
             "rand": int(rng.integers(0, 1 << rand_bits)) if rand_bits else 0}
        if not rand_bits:
            del v["rand"]
        out.append(v)
    return out


@pytest.mark.parametrize("man,r", [(2, 1), (2, 3), (5, 4), (5, 8)])
def test_eager_far_path(man, r):
    vecs = far_vectors(man, r + 2, 1200, seed=man * 10 + r, amount_max=man + r + 8)
    got = comb(EagerFarPath(man, r, 6), vecs, ["mant", "offset", "low"])
    for v, g in zip(vecs, got, strict=True):
        assert g == eager_model(man, r, v), v


@pytest.mark.parametrize("man,mode,r", [(2, "rn", 0), (5, "rn", 0), (5, "rz", 0), (3, "sr", 2),
                                        (5, "sr", 4), (5, "sr", 8)])
def test_rounding_far_path(man, mode, r):
    vecs = far_vectors(man, r if mode == "sr" else 0, 1200, seed=man + r,
                       amount_max=man + r + 8)
    got = comb(RoundingFarPath(man, mode, r, 6), vecs, ["mant", "offset", "low"])
    for v, g in zip(vecs, got, strict=True):
        assert g == rounding_model(man, mode, r, v), v


def test_eager_k_never_two_and_model_can_fail():
    """k = 2 never happens with equal-precision addends; a lazy circuit fails the eager model."""
    man, r = 3, 2
    vecs = far_vectors(man, r + 2, 1500, seed=7, amount_max=man + r + 6)
    assert max(eager_model(man, r, v)["offset"] for v in vecs) <= 2
    lazy = comb(RoundingFarPath(man, "sr", r, 6),
                [{**v, "rand": v["rand"] % (1 << r)} for v in vecs], ["mant", "offset"])
    bad = sum(g != {k: eager_model(man, r, v)[k] for k in g}
              for v, g in zip(vecs, lazy, strict=True))
    assert bad > 20
