"""hwgen.close.ClosePath against an independent integer model (exhaustive on small formats)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_hwgen_blocks import comb

import ref
from hwgen.close import ClosePath


def close_model(fmt, mode, z_sig, p_sig, z_small, p_small, e_big, rand):
    """The rounded |z - p| for addends at most one binade apart, from first principles.

    Units: 2**(e_big - bias - man - 1) (the window's guard bit). ``rand`` is a whole
    r-bit word for SR (so the claim "only its top bit matters" is tested too).
    Returns the ClosePath outputs as a dict.
    """
    man, p = fmt.man_bits, fmt.precision
    zv = z_sig * (1 if z_small else 2)
    pv = p_sig * (1 if p_small else 2)
    x = abs(zv - pv)
    out = {"z_wins": int(zv >= pv), "zero": int(x == 0)}
    if x == 0:
        return out
    lead = x.bit_length() - 1  # window bit p is e_big's hidden bit
    field = e_big - (p - lead)  # the exact result's exponent field
    below = field < 1
    grid = max(field, 1)
    lsb = p - (e_big - grid) - man  # window bit of the result's last kept bit
    num, den = (x, 1 << lsb) if lsb >= 0 else (x << -lsb, 1)
    k, rem = divmod(num, den)
    if mode == "rn":
        up = 2 * rem > den or (2 * rem == den and k % 2 == 1)
    elif mode == "rz":
        up = False
    else:
        r = 4  # the word's width; the close path sees only its top bit
        up = (rem << r) // den + rand >= 1 << r
    mant = k + up
    if mant == 1 << p:
        grid, mant = grid + 1, 1 << man
    efield = grid if mant >= 1 << man else 0
    out["below"] = int(below)
    if not (below and not fmt.subnormals):  # a flushed result's fields do not matter
        out["mant"] = mant & ((1 << man) - 1)
        out["efield"] = efield
        out["ovf"] = int((efield << man | (mant & ((1 << man) - 1))) > fmt.max_code)
    return out


def _vectors(fmt, mode):
    p = fmt.precision
    top = fmt.max_code >> fmt.man_bits  # largest finite exponent field
    e_bigs = sorted({1, 2, 3, top - 1, top, top + 1})
    rands = [0, 5, 8, 15] if mode == "sr" else [0]
    for z, q, align, e, rr in itertools.product(
        range(1 << p), range(1 << p), ("none", "z_small", "p_small"), e_bigs, rands
    ):
        hidden = 1 << (p - 1)
        # What the dual step can present: z at E >= 1 is normal; a subnormal or zero z
        # sits at E = 0 with its significand shifted up (even), so only as the smaller
        # addend of a pair at e_big = 1; the product has a clear hidden bit only at E = 1.
        at_zero = align == "z_small" and e == 1  # z at E = 0
        z_ok = (z % 2 == 0) if at_zero else bool(z & hidden)
        q_ok = q & hidden or (align != "p_small" and e == 1)
        if not (z_ok and q_ok) or (align == "p_small" and e < 2):
            continue
        if not fmt.subnormals and not z & hidden and z:
            continue  # no subnormal accumulator without subnormals
        yield {
            "z_sig": z,
            "p_sig": q,
            "z_small": int(align == "z_small"),
            "p_small": int(align == "p_small"),
            "e_big": e,
            **({"rand_top": rr >> 3} if mode == "sr" else {}),
        }, rr


@pytest.mark.parametrize(
    "spec,mode",
    [
        ("e3m2", "rn"),
        ("e3m2", "rz"),
        ("e3m2", "sr"),
        ("e3m2:nosub", "sr"),
        ("e3m3:fn", "rn"),
        ("e3m3:fn:nosub", "sr"),
    ],
)
def test_close_path_exhaustive(spec, mode):
    fmt = ref.parse_format(spec)
    vecs = list(_vectors(fmt, mode))
    assert len(vecs) > 250
    outs = ["z_wins", "zero", "below", "mant", "efield", "ovf"]
    got = comb(ClosePath(fmt, mode, 6), [v for v, _ in vecs], outs)
    for (v, rr), g in zip(vecs, got, strict=True):
        want = close_model(fmt, mode, v["z_sig"], v["p_sig"], v["z_small"], v["p_small"],
                           v["e_big"], rr)
        assert {k: g[k] for k in want} == want, (v, rr)


def test_close_path_random_e6m5_sr():
    fmt, rng = ref.E6M5, np.random.default_rng(1)
    vecs = []
    for _ in range(1500):
        z, q = (int(x) for x in rng.integers(32, 64, 2))
        align = rng.integers(0, 3)
        rr = int(rng.integers(0, 16))
        vecs.append(({"z_sig": z, "p_sig": q, "z_small": int(align == 1),
                      "p_small": int(align == 2), "e_big": int(rng.integers(2, 63)),
                      "rand_top": rr >> 3}, rr))
    got = comb(ClosePath(fmt, "sr", 7), [v for v, _ in vecs],
               ["z_wins", "zero", "below", "mant", "efield", "ovf"])
    for (v, rr), g in zip(vecs, got, strict=True):
        want = close_model(fmt, "sr", v["z_sig"], v["p_sig"], v["z_small"], v["p_small"],
                           v["e_big"], rr)
        assert {k: g[k] for k in want} == want, (v, rr)


def test_close_model_catches_a_wrong_rounding():
    """The model is not the circuit: a mode mix-up must show up as a mismatch."""
    fmt = ref.parse_format("e4m4")
    vecs = list(_vectors(fmt, "rn"))
    got = comb(ClosePath(fmt, "rz", 6), [v for v, _ in vecs], ["mant", "efield"])
    bad = sum(
        g != {k: w[k] for k in g}
        for (v, rr), g in zip(vecs, got, strict=True)
        if "efield" in (w := close_model(fmt, "rn", v["z_sig"], v["p_sig"], v["z_small"],
                                         v["p_small"], v["e_big"], rr))
    )
    assert bad > 20
