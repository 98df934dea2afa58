"""Property tests (hypothesis) of encode / decode on random formats.

* decode then encode is the identity on every canonical code (all three
  roundings: the value is exact); non-canonical codes map to their canonical
  twin (NaN payloads -> the canonical NaN; nosub's exponent-0 codes -> signed 0);
* decode(encode(x)) is a value of the format and re-encodes to the same code;
* rounding is monotonic: x <= y implies q(x) <= q(y) for rn, rz and sr with
  the same R.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ref
from ref import FloatFormat

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def formats(draw):
    exp_bits = draw(st.integers(2, 8))
    specials = draw(st.sampled_from(["ieee", "fn", "none"]))
    man_bits = draw(st.integers(1 if specials == "ieee" else 0, 9))
    default_bias = (1 << (exp_bits - 1)) - 1
    bias = draw(st.one_of(st.none(), st.integers(default_bias - 6, default_bias + 6)))
    return FloatFormat(
        exp_bits,
        man_bits,
        bias=bias,
        subnormals=draw(st.booleans()),
        specials=specials,
        saturate=draw(st.booleans()),
    )


def all_or_some_codes(fmt, seed):
    if fmt.width <= 13:
        return np.arange(fmt.num_codes)
    rng = np.random.default_rng(seed)
    special = [
        0,
        fmt.sign_mask,
        fmt.max_code,
        fmt.sign_mask | fmt.max_code,
        fmt.mag_mask,
        fmt.num_codes - 1,
    ]
    return np.unique(np.concatenate([rng.integers(0, fmt.num_codes, 8192), special]))


def canonical(codes, fmt):
    """The code that encode(decode(code)) must give, from the format definition."""
    codes = np.asarray(codes)
    sign = codes & fmt.sign_mask
    mag = codes & fmt.mag_mask
    efield = mag >> fmt.man_bits
    mfield = mag & fmt.man_mask
    out = codes.copy()
    if not fmt.subnormals:
        out = np.where(efield == 0, sign, out)  # reads as signed zero
    if fmt.specials == "ieee":
        out = np.where((efield == fmt.exp_field_max) & (mfield != 0), fmt.nan_code, out)
    elif fmt.specials == "fn":
        out = np.where(mag == fmt.mag_mask, fmt.nan_code, out)
    return out


@SETTINGS
@given(fmt=formats(), seed=st.integers(0, 2**32 - 1), r=st.integers(1, 12))
def test_decode_encode_round_trip(fmt, seed, r):
    codes = all_or_some_codes(fmt, seed)
    vals = ref.decode(codes, fmt)
    expect = canonical(codes, fmt)
    R = np.random.default_rng(seed).integers(0, 1 << r, codes.shape)
    for rounding, kw in [("rn", {}), ("rz", {}), ("sr", {"rbits": r, "rand": R})]:
        got = ref.encode(vals, fmt, rounding, **kw)
        assert np.array_equal(got, expect), (fmt, rounding, codes[got != expect][:5])
    # classes survive the round trip
    assert np.array_equal(np.isnan(vals), np.isnan(ref.decode(expect, fmt)))
    if fmt.has_nan:
        assert np.isnan(ref.decode(fmt.nan_code, fmt)) and fmt.nan_code in expect
    if fmt.has_inf:
        assert ref.decode(fmt.inf_code, fmt) == np.inf
        assert ref.decode(fmt.inf_code | fmt.sign_mask, fmt) == -np.inf
    # decode is an injective map on canonical finite codes (after +0 == -0)
    fin = np.isfinite(vals) & (expect == codes) & (vals != 0)
    assert np.unique(vals[fin]).size == fin.sum()


def sample_reals(fmt, rng, n=3000):
    """Values across the whole range of fmt: subnormals, normals, overflow, signs, zeros, ties."""
    lo = fmt.emin - fmt.man_bits - 3
    hi = fmt.emax + 3
    x = np.ldexp(rng.uniform(1, 2, n), rng.integers(lo, hi, n)) * rng.choice([-1.0, 1.0], n)
    grid = ref.decode(rng.integers(0, fmt.num_codes, n // 4), fmt)
    grid = grid[np.isfinite(grid)]
    ties = grid * (1 + 2.0 ** -(fmt.man_bits + 1))
    return np.concatenate([x, grid, ties, [0.0, -0.0, np.inf, -np.inf]])


def ordered_values(codes, fmt, x):
    """Decoded values; an overflow to NaN ("fn", no saturation) reads as +-inf by x's sign."""
    v = ref.decode(codes, fmt)
    return np.where(np.isnan(v) & (np.abs(x) > fmt.max_value), np.copysign(np.inf, x), v)


@SETTINGS
@given(
    fmt=formats(), seed=st.integers(0, 2**32 - 1), r=st.integers(1, 10), R=st.integers(0, 2**10 - 1)
)
def test_rounding_is_monotonic(fmt, seed, r, R):
    rng = np.random.default_rng(seed)
    x = np.sort(sample_reals(fmt, rng))
    R = R % (1 << r)
    for rounding, kw in [("rn", {}), ("rz", {}), ("sr", {"rbits": r, "rand": R})]:
        q = ordered_values(ref.encode(x, fmt, rounding, **kw), fmt, x)
        assert not np.isnan(q).any()
        with np.errstate(invalid="ignore"):  # inf - inf
            bad = np.flatnonzero(np.diff(q) < 0)
        assert bad.size == 0, (
            fmt,
            rounding,
            x[bad[:3]],
            x[bad[:3] + 1],
            q[bad[:3]],
            q[bad[:3] + 1],
        )


@SETTINGS
@given(
    fmt=formats(),
    x=st.floats(allow_nan=False, width=64),
    y=st.floats(allow_nan=False, width=64),
    r=st.integers(1, 8),
    R=st.integers(0, 255),
)
def test_monotonic_pairs(fmt, x, y, r, R):
    x, y = min(x, y), max(x, y)
    xs = np.array([x, y])
    R = R % (1 << r)
    for rounding, kw in [("rn", {}), ("rz", {}), ("sr", {"rbits": r, "rand": R})]:
        qx, qy = ordered_values(ref.encode(xs, fmt, rounding, **kw), fmt, xs)
        assert not (np.isnan(qx) or np.isnan(qy))
        assert qx <= qy, (rounding, x, y, qx, qy)


@SETTINGS
@given(
    fmt=formats(), x=st.floats(allow_nan=True, width=64), r=st.integers(1, 8), R=st.integers(0, 255)
)
def test_encode_of_decoded_value_is_identity(fmt, x, r, R):
    """Any rounding's result is a value of the format: encoding it again gives the same code."""
    if np.isnan(x) and not fmt.has_nan:
        with pytest.raises(ValueError, match="NaN"):
            ref.encode(x, fmt)
        return
    R = R % (1 << r)
    for rounding, kw in [("rn", {}), ("rz", {}), ("sr", {"rbits": r, "rand": R})]:
        c = ref.encode(x, fmt, rounding, **kw)
        v = ref.decode(c, fmt)
        for again in ("rn", "rz"):
            assert ref.encode(v, fmt, again) == c, (rounding, again, x, int(c))
        # and the rounding stays between the two neighbours of x in the format
        if np.isfinite(x) and np.isfinite(v):
            down = ref.decode(ref.encode(x, fmt, "rz"), fmt)
            assert abs(v) >= abs(down) or (abs(x) < fmt.min_normal and not fmt.subnormals)
