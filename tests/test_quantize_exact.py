"""Code-for-code check of ``ref.encode`` (contract section 2) against the exact oracle.

Random float64 values around each format's range (subnormals, ties, SR
boundaries, overflow, signed zeros, inf, NaN) are rounded with rn, rz and sr
(r = 1..12, explicit random words). The oracle itself is first checked against
the casts of numpy and torch (independent implementations of round to nearest).
"""

from __future__ import annotations

import math
import random
import zlib
from fractions import Fraction

import numpy as np
import pytest
from oracle import encode_float, fmt_info, value_of

import ref

FORMATS = ["e5m2", "e4m3", "e6m5", "fp16", "bf16", "fp32", "e3m4", "e6m5:nosub",
           "e5m2:sat", "e4m3:none"]
MODES = [("rn", None), ("rz", None)] + [("sr", r) for r in range(1, 13)]
N_FAST = 1500
N_SLOW = 50_000


def _ldexp(m, e):
    """m * 2**e as a float64, or None when it is not exactly representable / finite."""
    try:
        x = math.ldexp(m, e)
    except OverflowError:
        return None
    if math.isinf(x) or Fraction(x) != Fraction(m) * Fraction(2) ** e:
        return None
    return x


def _grid_float(f, code):
    """Value of a finite code as a float64 (None if not exact)."""
    v = value_of(code, f)
    if not isinstance(v, Fraction):
        return None
    try:
        x = float(v)
    except OverflowError:
        return None
    return x if not math.isinf(x) and Fraction(x) == v else None


def _finite_codes(f):
    """A random finite, non-zero magnitude code generator for oracle format f."""
    def pick(rnd):
        while True:
            c = rnd.randrange(1, f.max_mag_code + 1)
            if isinstance(value_of(c, f), Fraction) and value_of(c, f) != 0:
                return c
    return pick


def sample_values(fmt, n, r, seed):
    """float64 test values for ``fmt``: random magnitudes, grid points, ties, SR cut points,
    subnormal range, overflow, signed zeros and specials."""
    f = fmt_info(fmt)
    rnd = random.Random(seed)
    pick = _finite_codes(f)
    top = f.max_n.bit_length() - 1 + f.max_q
    lo_e, hi_e = max(f.emin - f.M - 4, -1070), min(top + 2, 1022)
    rr = r or 4
    out = [0.0, -0.0, math.inf, -math.inf, math.nan]
    maxv = _grid_float(f, f.max_mag_code)
    if maxv is not None:
        ulp_top = math.ldexp(1.0, top - f.M)
        for x in (maxv, maxv + ulp_top / 2, maxv + ulp_top, 2 * maxv, maxv + ulp_top / 4,
                  maxv + ulp_top * 3 / 4):
            out += [x, -x, math.nextafter(x, math.inf), math.nextafter(x, 0.0)]
    tiny = math.ldexp(1.0, f.emin - f.M)
    for x in (tiny, tiny / 2, tiny / 4, tiny * 3 / 4, tiny * 3 / 2, math.ldexp(1.0, f.emin),
              math.ldexp(1.0, f.emin) - tiny / 2, 5e-324, 1e-300, 1e300):
        out += [x, -x, math.nextafter(x, math.inf), math.nextafter(x, 0.0)]
    while len(out) < n:
        kind = rnd.random()
        neg = -1.0 if rnd.random() < 0.5 else 1.0
        if kind < 0.35:  # random magnitude, full 53-bit significand
            x = _ldexp(rnd.getrandbits(53) | (1 << 52), rnd.randint(lo_e, hi_e) - 52)
        elif kind < 0.45:  # subnormal range of the target format
            x = _ldexp(rnd.getrandbits(53) | (1 << 52), rnd.randint(f.emin - f.M - 2, f.emin) - 52)
        else:  # near the grid: exact points, ties, SR cut points j / 2**r of an ulp
            c = pick(rnd)
            g = _grid_float(f, c)
            if g is None:
                continue
            e = max(math.frexp(g)[1] - 1, f.emin)
            ulp = math.ldexp(1.0, e - f.M)
            if kind < 0.85:  # ties, cut points and their neighbours
                j = rnd.choice((0, 1 << (rr - 1), rnd.randrange(1 << rr), (1 << rr) - 1))
            else:
                j = rnd.randrange(1 << rr)
            x = g + ulp * j / (1 << rr)
            if rnd.random() < 0.3:
                x = math.nextafter(x, math.inf if rnd.random() < 0.5 else 0.0)
            if rnd.random() < 0.1:
                x = g + ulp / 2  # tie for rn
        if x is None or math.isinf(x):
            continue
        out.append(neg * x)
    return out[:max(n, 0)] if len(out) > n else out


def _rand_words(r, n, rnd):
    top = (1 << r) - 1
    return [0 if u < 0.05 else top if u < 0.1 else rnd.randrange(top + 1)
            for u in (rnd.random() for _ in range(n))]


def _describe(code, fmt):
    v = value_of(code, fmt)
    if isinstance(v, Fraction):
        v = float(v)
    return f"{code:#x} ({v})"


def check_encode(fmt, mode, r, values, words):
    f = fmt_info(fmt)
    if not f.has_nan:
        values = [x for x in values if not math.isnan(x)]
        words = words[: len(values)]
    x = np.array(values, dtype=np.float64)
    kw = {}
    if mode == "sr":
        kw = dict(rbits=r, rand=np.array(words, dtype=np.int64))
    got = np.asarray(ref.encode(x, fmt, mode, **kw))
    exp = np.array([encode_float(v, fmt, mode, r or 0, w if mode == "sr" else 0)
                    for v, w in zip(values, words, strict=True)], dtype=np.int64)
    assert got.shape == exp.shape
    bad = np.flatnonzero(got != exp)
    if bad.size:
        lines = [f"  x={values[i]!r} ({values[i].hex()}) rand={words[i]:#x} "
                 f"expected={_describe(int(exp[i]), fmt)} got={_describe(int(got[i]), fmt)}"
                 for i in bad[:8]]
        pytest.fail(f"encode to {fmt} {mode} r={r}: {bad.size}/{len(values)} differ:\n"
                    + "\n".join(lines))


@pytest.mark.parametrize("mode,r", MODES, ids=[m if r is None else f"sr{r}" for m, r in MODES])
@pytest.mark.parametrize("spec", FORMATS)
def test_encode_matches_oracle(spec, mode, r):
    fmt = ref.parse_format(spec)
    seed = zlib.crc32(f"{spec}:{mode}:{r}".encode())
    values = sample_values(fmt, N_FAST, r, seed)
    words = _rand_words(r or 1, len(values), random.Random(seed + 1))
    check_encode(fmt, mode, r, values, words)


@pytest.mark.parametrize("spec", FORMATS)
def test_quantize_is_value_of_oracle_code(spec):
    fmt = ref.parse_format(spec)
    values = [x for x in sample_values(fmt, 600, None, 9) if not math.isnan(x)]
    got = np.asarray(ref.quantize(np.array(values), fmt, "rn"))
    for x, q in zip(values, got.tolist(), strict=True):
        v = value_of(encode_float(x, fmt, "rn"), fmt)
        if isinstance(v, tuple):
            assert q == v[1] * math.inf, (x, q, v)
        else:
            assert Fraction(q) == v, (x, q, v)


def test_encode_nan_into_format_without_nan_raises():
    with pytest.raises(ValueError):
        ref.encode(np.array([1.0, math.nan]), ref.parse_format("e4m3:none"), "rn")


def test_encode_sr_extreme_words_on_ties():
    """SR of a value exactly j/2**r of an ulp above a grid point rounds up iff j + R >= 2**r."""
    fmt = ref.FP16
    f = fmt_info(fmt)
    for r in (1, 3, 7, 12):
        for j in range(0, 1 << r, max(1, (1 << r) // 16)):
            for R in (0, (1 << r) - 1 - j, (1 << r) - j, (1 << r) - 1):
                if not 0 <= R < (1 << r):
                    continue
                x = 1.5 + j * 2.0**-10 / (1 << r)
                got = int(np.asarray(ref.encode(np.array([x]), fmt, "sr", rbits=r,
                                                rand=np.array([R])))[0])
                base = 0x3E00  # 1.5 in FP16
                assert got == base + (1 if j + R >= (1 << r) else 0), (r, j, R, hex(got))
                assert got == encode_float(x, f, "sr", r, R)


# ---- the oracle against independent casts (round to nearest) ----------------------
def _float32_samples(n, seed):
    rng = np.random.default_rng(seed)
    mags = rng.standard_normal(n) * np.exp2(rng.integers(-40, 40, n).astype(np.float64))
    special = [0.0, -0.0, np.inf, -np.inf, 464.0, 465.0, 480.0, 57344.0, 61439.0, 61440.0,
               65519.0, 65520.0, 2.0**-17, 2.0**-18, 3 * 2.0**-18, 2.0**-7 * 0.5625,
               3.3895314e38, 3.4028235e38]
    return np.concatenate([mags, special]).astype(np.float32)


def _torch_cast(x32, dtype, view):
    torch = pytest.importorskip("torch")
    return torch.from_numpy(x32).to(dtype).view(view).numpy().astype(np.int64) & 0xFFFF


@pytest.mark.parametrize("name", ["e5m2", "e4m3", "fp16", "bf16", "fp32"])
def test_oracle_rn_matches_numpy_and_torch_casts(name):
    x32 = _float32_samples(4000, 5)
    if name == "fp16":
        with np.errstate(over="ignore"):
            exp = x32.astype(np.float16).view(np.uint16).astype(np.int64)
    elif name == "fp32":
        exp = x32.view(np.uint32).astype(np.int64)
    else:
        torch = pytest.importorskip("torch")
        dt = {"e5m2": torch.float8_e5m2, "e4m3": torch.float8_e4m3fn, "bf16": torch.bfloat16}[name]
        view = torch.uint8 if name != "bf16" else torch.int16
        exp = _torch_cast(x32, dt, view)
    fmt = ref.parse_format(name)
    got = np.array([encode_float(float(v), fmt, "rn") for v in x32.tolist()], dtype=np.int64)
    bad = np.flatnonzero(got != exp)
    assert bad.size == 0, [(float(x32[i]), hex(exp[i]), hex(got[i])) for i in bad[:5]]


@pytest.mark.parametrize("name,dtype", [("fp16", np.float16), ("fp32", np.float32)])
def test_oracle_values_match_numpy_decoding(name, dtype):
    fmt = ref.parse_format(name)
    rng = np.random.default_rng(3)
    width = fmt.width
    codes = np.arange(1 << 16) if width == 16 else rng.integers(0, 1 << 32, 20000)
    with np.errstate(invalid="ignore"):  # signalling NaNs
        vals = codes.astype(np.uint16 if width == 16 else np.uint32).view(dtype).astype(np.float64)
    for c, v in zip(codes.tolist(), vals.tolist(), strict=True):
        o = value_of(c, fmt)
        if o == "nan":
            assert math.isnan(v), c
        elif isinstance(o, tuple):
            assert v == o[1] * math.inf, c
        else:
            assert Fraction(v) == o and (math.copysign(1, v) < 0) == bool(c >> (width - 1)), c


@pytest.mark.slow
@pytest.mark.parametrize("mode,r", MODES, ids=[m if r is None else f"sr{r}" for m, r in MODES])
@pytest.mark.parametrize("spec", FORMATS)
def test_encode_matches_oracle_large(spec, mode, r):
    fmt = ref.parse_format(spec)
    seed = zlib.crc32(f"large:{spec}:{mode}:{r}".encode())
    values = sample_values(fmt, N_SLOW, r, seed)
    words = _rand_words(r or 1, len(values), random.Random(seed + 1))
    check_encode(fmt, mode, r, values, words)


@pytest.mark.parametrize("spec,mode,r", [("e5m2", "sr", 3), ("e4m3", "rn", None),
                                         ("e6m5:nosub", "rz", None)])
def test_encode_torch_tensors_match_oracle(spec, mode, r):
    torch = pytest.importorskip("torch")
    fmt = ref.parse_format(spec)
    values = sample_values(fmt, 1500, r, 17)
    words = _rand_words(r or 1, len(values), random.Random(18))
    kw = dict(rbits=r, rand=torch.tensor(words, dtype=torch.int64)) if mode == "sr" else {}
    got = ref.encode(torch.tensor(values, dtype=torch.float64), fmt, mode, **kw)
    assert isinstance(got, torch.Tensor)
    exp = [encode_float(v, fmt, mode, r or 0, w if mode == "sr" else 0)
           for v, w in zip(values, words, strict=True)]
    bad = [i for i, (g, e) in enumerate(zip(got.tolist(), exp, strict=True)) if g != e]
    assert not bad, [(values[i], words[i], exp[i], got.tolist()[i]) for i in bad[:5]]


def test_encode_seeded_uses_pe_n0_generators():
    """``encode(seed=s)``: element n (row-major) takes the first word of ``Xorshift32(s, n, 0)``."""
    fmt, r, seed = ref.E5M2, 5, 4242
    values = [x for x in sample_values(fmt, 600, r, 23) if not math.isnan(x)][:588]
    words = [ref.Xorshift32(seed, n, 0).next_word() & ((1 << r) - 1) for n in range(len(values))]
    got = np.asarray(ref.encode(np.array(values).reshape(21, 28), fmt, "sr", rbits=r, seed=seed))
    exp = [encode_float(v, fmt, "sr", r, w) for v, w in zip(values, words, strict=True)]
    assert got.ravel().tolist() == exp
