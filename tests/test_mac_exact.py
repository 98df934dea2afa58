"""Code-for-code check of ``ref.mac`` / ``ref.dot`` / ``ref.matmul`` against the exact oracle.

The oracle (``tests/oracle.py``) is written from the contract alone. Each
configuration gets 10**4 random MACs (half uniform over all codes, half biased
toward close path, carry-out, cancellation, far subtraction, overflow,
subnormals, zeros and specials) plus every combination of directed corner
operands, each with explicit random words. Larger sweeps are marked slow.
"""

from __future__ import annotations

import inspect
import random
import zlib
from fractions import Fraction

import numpy as np
import pytest
from oracle import fmt_info, mac_oracle, mac_value, round_dyadic, value_of

import ref

# At least 8 configurations: E5M2 / E4M3 inputs; E6M5, FP16, BF16 (and small)
# accumulators; subnormals on/off; saturation on/off; all modes; r from 1 to 12.
CONFIGS = [
    "e5m2:e6m5:rn",
    "e5m2:e6m5:rz",
    "e5m2:e6m5:sr_lazy:4",
    "e5m2:e6m5:sr_eager:4",
    "e5m2:nosub:e6m5:nosub:sr_eager:1",
    "e5m2:nosub:e6m5:nosub:sr_lazy:2",
    "e5m2:e6m5:sat:sr_eager:3",
    "e5m2:e6m5:nosub:sat:sr_eager:12",
    "e4m3:fp16:sr_eager:8",
    "e4m3:fp16:nosub:rn",
    "e4m3:bf16:sr_lazy:12",
    "e4m3:bf16:sat:rz",
    "e4m3:e6m5:nosub:sr_lazy:6",
    "e4m3:e6m5:sr_eager:5",
    "e5m2:fp16:sr_eager:10",
    "e5m2:bf16:sr_eager:7",
    "e5m2:e5m2:sr_eager:2",          # accumulator narrower than the products
    "e4m3:e4m3:nosat:sr_eager:9",    # fn accumulator that overflows to NaN
    "e4m3:e3m4:none:sr_eager:11",    # no specials: NaN -> +0, inf -> max
    "e5m2:e3m4:fn:rn",
    # Inputs wider than the accumulator. Eager k = 2 (two binades above the anchor)
    # needs effective subtraction and a product whose significand is within
    # 2**-(M_acc+1) of 2, so it never occurs for E5M2 or E4M3 products into E6M5.
    "bf16:e6m5:sr_eager:3",
    "fp16:e5m2:nosub:sr_eager:1",
]

N_FAST = 10_000
N_SLOW = 100_000


# ---- operand generators ------------------------------------------------------
def _exp_range(f):
    """(lowest, highest) floor(log2) of a non-zero finite value of oracle format f."""
    hi = f.max_n.bit_length() - 1 + f.max_q
    lo = f.emin - f.M if f.sub else f.emin
    return lo, hi


def _code_with_exp(f, neg, e, rnd, top_man=False):
    """A finite code of oracle format f with exponent ~e (clamped to the format)."""
    lo, hi = _exp_range(f)
    e = min(max(e, lo), hi)
    M = f.M
    if e >= f.emin:
        man = ((1 << M) - 1 - rnd.randrange(min(4, 1 << M))) if top_man else rnd.randrange(1 << M)
        mag = ((e + f.bias) << M) | man
    else:
        j = e - (f.emin - M)  # position of the leading one in a subnormal
        mag = (1 << j) | rnd.randrange(1 << j)
    mag = min(mag, f.max_mag_code)
    return mag | (f.sign_bit if neg else 0)


def _pair_with_product_exp(fi, t, neg, rnd, top_man=False):
    """Input codes a, b with exponent(a) + exponent(b) ~ t and sign(a*b) = neg."""
    lo, hi = _exp_range(fi)
    ea_lo, ea_hi = max(lo, t - hi), min(hi, t - lo)
    if ea_lo > ea_hi:
        ea_lo, ea_hi = lo, hi
    ea = rnd.randint(ea_lo, ea_hi)
    na = rnd.random() < 0.5
    a = _code_with_exp(fi, na, ea, rnd, top_man)
    b = _code_with_exp(fi, na != neg, t - ea, rnd, top_man)
    return a, b


def _product_exp(a, b, fi):
    ta, tb = fi.read(a), fi.read(b)
    n = ta[2] * tb[2]
    return n.bit_length() - 1 + ta[3] + tb[3] if n else None


def _special_codes(f):
    """Directed operand codes of oracle format f: zeros, extremes, specials."""
    s = f.sign_bit
    M = f.M
    one = (f.bias << M) if 0 < f.bias < f.field_max else (1 << M)
    codes = {0, s, one, one | s, f.max_mag_code, f.max_mag_code | s,
             max(f.max_mag_code - 1, 0), 1 << M, (1 << M) | s, ((1 << M) - 1) | (1 << M)}
    if M:
        codes |= {1, 1 | s, (1 << M) - 1, ((1 << M) - 1) | s}  # subnormals (zeros if nosub)
    if f.has_inf:
        codes |= {f.inf_code, f.inf_code | s, f.nan_code, f.nan_code | s, f.inf_code | 1}
    elif f.has_nan:
        codes |= {f.nan_code, f.nan_code | s}
    return sorted(codes)


KINDS = ("uniform", "close", "carry", "far", "cancel", "overflow", "subnormal", "zero", "special")
WEIGHTS = (50, 10, 8, 8, 8, 5, 6, 3, 2)


def _triple(kind, cfg, fi, fa, rnd):
    """One (z, a, b) triple of the given kind."""
    if kind == "uniform":
        return (rnd.randrange(1 << fa.width), rnd.randrange(1 << fi.width),
                rnd.randrange(1 << fi.width))
    r = cfg.rbits or 0
    pi_lo, pi_hi = _exp_range(fi)
    za_lo, za_hi = _exp_range(fa)
    t_lo, t_hi = max(2 * pi_lo, za_lo - 2), min(2 * pi_hi + 1, za_hi + 1)
    if t_lo > t_hi:
        t_lo, t_hi = 2 * pi_lo, 2 * pi_hi + 1
    sp = rnd.random() < 0.5
    if kind == "subnormal":
        t = rnd.randint(fa.emin - fa.M - 3, fa.emin + 1)
        a, b = _pair_with_product_exp(fi, t, sp, rnd)
        z = _code_with_exp(fa, rnd.random() < 0.5, rnd.randint(fa.emin - fa.M, fa.emin), rnd)
        return z, a, b
    if kind == "overflow":
        a, b = _pair_with_product_exp(fi, 2 * pi_hi + 1, sp, rnd, top_man=rnd.random() < 0.7)
        zneg = sp if rnd.random() < 0.85 else not sp
        z = max(fa.max_mag_code - rnd.randrange(4), 0) | (fa.sign_bit if zneg else 0)
        return z, a, b
    if kind == "special":
        si, sa = _special_codes(fi), _special_codes(fa)
        return rnd.choice(sa), rnd.choice(si), rnd.choice(si)
    t = rnd.randint(t_lo, t_hi)
    top = kind == "carry" or (kind == "far" and rnd.random() < 0.4)
    a, b = _pair_with_product_exp(fi, t, sp, rnd, top_man=top)
    tp = _product_exp(a, b, fi)
    tp = t if tp is None else tp
    if kind == "zero":
        which = rnd.randrange(3)
        zero = fi.sign_bit if rnd.random() < 0.5 else 0
        if which == 0:
            return (fa.sign_bit if rnd.random() < 0.5 else 0), a, b
        z = _code_with_exp(fa, rnd.random() < 0.5, tp + rnd.randint(-3, 3), rnd)
        return (z, zero, b) if which == 1 else (z, a, zero)
    if kind == "close":
        return _code_with_exp(fa, not sp, tp + rnd.randint(-1, 1), rnd), a, b
    if kind == "carry":
        return _code_with_exp(fa, sp, tp + rnd.randint(-1, 1), rnd, top_man=True), a, b
    if kind == "far":
        d = rnd.randint(2, fa.M + r + 4) * (1 if rnd.random() < 0.5 else -1)
        return _code_with_exp(fa, rnd.random() < 0.5, tp + d, rnd, top_man=top), a, b
    if kind == "cancel":
        ta, tb = fi.read(a), fi.read(b)
        # z = -(a*b) rounded to the accumulator, nudged by a few code steps.
        c = round_dyadic(not sp, ta[2] * tb[2], ta[3] + tb[3], fa, "rn")
        delta = rnd.choice((0, 0, 0, 1, -1, 2, -2))
        mag = min(max((c & (fa.sign_bit - 1)) + delta, 0), fa.max_mag_code)
        return mag | (c & fa.sign_bit), a, b
    raise AssertionError(kind)


def _rand_words(cfg, n, rnd):
    """Explicit random words in [0, 2**rand_bits), with extra weight on 0 and all ones."""
    if not cfg.is_sr:
        return [0] * n
    top = (1 << cfg.rand_bits) - 1
    out = []
    for _ in range(n):
        u = rnd.random()
        out.append(0 if u < 0.04 else top if u < 0.08 else rnd.randrange(top + 1))
    return out


def random_cases(cfg, n, seed):
    fi, fa = fmt_info(cfg.in_fmt), fmt_info(cfg.acc_fmt)
    rnd = random.Random(seed)
    kinds = rnd.choices(KINDS, WEIGHTS, k=n)
    triples = [_triple(k, cfg, fi, fa, rnd) for k in kinds]
    return triples, _rand_words(cfg, n, rnd)


def directed_cases(cfg, seed):
    """Every (z, a, b) of directed codes, each with rand words 0, all ones and a random one."""
    fi, fa = fmt_info(cfg.in_fmt), fmt_info(cfg.acc_fmt)
    rnd = random.Random(seed)
    si, sa = _special_codes(fi), _special_codes(fa)
    words = [0]
    if cfg.is_sr:
        words = [0, (1 << cfg.rand_bits) - 1, None]
    triples, rw = [], []
    for z in sa:
        for a in si:
            for b in si:
                for w in words:
                    triples.append((z, a, b))
                    rw.append(rnd.randrange(1 << cfg.rand_bits) if w is None else w)
    return triples, rw


# ---- comparison ----------------------------------------------------------------
def _describe(code, fmt):
    v = value_of(code, fmt)
    if isinstance(v, Fraction):
        sign = "-" if code & fmt_info(fmt).sign_bit else ""
        v = f"{sign}{float(abs(v))!r}"
    return f"{code:#x} ({v})"


def check_mac(cfg, triples, words, trace=None):
    """Assert ``ref.mac`` equals the oracle code for code; returns the codes."""
    z = np.array([t[0] for t in triples], dtype=np.int64)
    a = np.array([t[1] for t in triples], dtype=np.int64)
    b = np.array([t[2] for t in triples], dtype=np.int64)
    rand = np.array(words, dtype=np.int64) if cfg.is_sr else None
    got = np.asarray(ref.mac(z, a, b, cfg, rand=rand))
    assert got.shape == z.shape and got.dtype == np.int64
    exp = np.array([mac_oracle(t[0], t[1], t[2], cfg, w, trace)
                    for t, w in zip(triples, words, strict=True)],
                   dtype=np.int64)
    bad = np.flatnonzero(got != exp)
    if bad.size:
        lines = []
        for i in bad[:6]:
            zi, ai, bi = triples[i]
            exact = mac_value(zi, ai, bi, cfg)
            lines.append(
                f"  z={_describe(zi, cfg.acc_fmt)} a={_describe(ai, cfg.in_fmt)} "
                f"b={_describe(bi, cfg.in_fmt)} rand={words[i]:#x} exact={exact} "
                f"expected={_describe(int(exp[i]), cfg.acc_fmt)} "
                f"got={_describe(int(got[i]), cfg.acc_fmt)}"
            )
        pytest.fail(f"{cfg.spec()}: {bad.size}/{len(triples)} MACs differ from the oracle:\n"
                    + "\n".join(lines))
    return exp


# ---- tests -----------------------------------------------------------------------
@pytest.mark.parametrize("spec", CONFIGS)
def test_mac_random(spec):
    cfg = ref.parse_mac(spec)
    triples, words = random_cases(cfg, N_FAST, seed=zlib.crc32(spec.encode()))
    check_mac(cfg, triples, words)


@pytest.mark.parametrize("spec", CONFIGS)
def test_mac_directed(spec):
    cfg = ref.parse_mac(spec)
    triples, words = directed_cases(cfg, seed=7)
    check_mac(cfg, triples, words)


def test_generators_reach_every_eager_path():
    """The biased operands really exercise close path, carry-out (k=1, 2), flush and specials."""
    seen = {}
    for spec in ("e5m2:e6m5:sr_eager:4", "e5m2:nosub:e6m5:nosub:sr_eager:1",
                 "e5m2:e5m2:nosub:sr_eager:2"):
        cfg = ref.parse_mac(spec)
        trace = []
        triples, words = random_cases(cfg, 4000, seed=11)
        check_mac(cfg, triples, words, trace)
        for t in trace:
            seen[t] = seen.get(t, 0) + 1
    for case in ("special", "zero", "flush", "close", "far0", "far1"):
        assert seen.get(case, 0) >= 5, f"path {case!r} hit {seen.get(case, 0)} times: {seen}"


@pytest.mark.parametrize("spec", ["bf16:e5m2:sr_eager:1", "bf16:e4m3:nosub:sr_eager:3",
                                  "fp16:e5m2:sr_eager:2", "fp16:e6m5:sat:sr_eager:4"])
def test_eager_carry_two_positions(spec):
    """Far-path subtraction whose sum lands two binades above the anchor (k = 2): the
    product just below a power of two minus a small accumulator value (or a zero of the
    opposite sign: a zero addend counts by its sign bit), every rand word."""
    cfg = ref.parse_mac(spec)
    fi, fa = fmt_info(cfg.in_fmt), fmt_info(cfg.acc_fmt)
    rnd = random.Random(1)
    top = [((1 << fi.M) - 1 - i) for i in range(2)]
    triples = []
    for _ in range(40):
        ea, eb = rnd.randint(-3, 3), rnd.randint(-3, 3)
        neg = rnd.random() < 0.5
        a = ((ea + fi.bias) << fi.M) | rnd.choice(top) | (fi.sign_bit if neg else 0)
        b = ((eb + fi.bias) << fi.M) | rnd.choice(top)
        d = rnd.randint(2, fa.M + cfg.rbits + 12)
        z = _code_with_exp(fa, not neg, ea + eb + 1 - d, rnd)
        if rnd.random() < 0.2:
            z = 0 if neg else fa.sign_bit
        triples.append((z, a, b))
    words = list(range(1 << cfg.rand_bits))
    allt = [t for t in triples for _ in words]
    trace = []
    check_mac(cfg, allt, words * len(triples), trace)
    assert trace.count("far2") >= 5, {t: trace.count(t) for t in set(trace)}


def _floor_log2(x: Fraction) -> int:
    """Exact floor(log2(x)) for a positive Fraction."""
    e = x.numerator.bit_length() - x.denominator.bit_length()
    return e if x >= Fraction(2) ** e else e - 1


def _neighbours(z, a, b, cfg):
    """Codes of RZ and round-away of the exact sum (both in the accumulator format)."""
    fa = fmt_info(cfg.acc_fmt)
    v = mac_value(z, a, b, cfg)
    n, d = abs(v.numerator), v.denominator
    q = -(d.bit_length() - 1)
    rz = round_dyadic(v < 0, n, q, fa, "rz")
    # Round away from zero = RZ plus one ulp unless exact (SR with R = 2**r - 1, r large).
    up = round_dyadic(v < 0, n, q, fa, "sr", 62, (1 << 62) - 1)
    return rz, up


@pytest.mark.parametrize("spec", ["e5m2:e6m5:sr_eager:1", "e4m3:e6m5:nosub:sr_eager:3",
                                  "e5m2:e5m2:sr_eager:2", "e4m3:fp16:sr_eager:4"])
def test_sr_bias_below_2_pow_minus_r(spec):
    """Over all random words, each SR result is a neighbour of the exact sum and the mean
    error is below 2**-r ulp (contract section 3), for ref.mac on finite operands."""
    cfg = ref.parse_mac(spec)
    fa = fmt_info(cfg.acc_fmt)
    triples, _ = random_cases(cfg, 300, seed=3)
    words = np.arange(1 << cfg.rand_bits, dtype=np.int64)
    checked = 0
    for z, a, b in triples:
        v = mac_value(z, a, b, cfg)
        if v is None or v == 0:
            continue
        too_big = abs(v) >= fa.max_n * Fraction(2) ** fa.max_q
        if too_big or (not fa.sub and abs(v) < Fraction(2) ** fa.emin):
            continue  # overflow and flush are outside the bias statement
        got = np.asarray(ref.mac(np.full(words.shape, z), np.int64(a), np.int64(b), cfg, rand=words))
        rz, up = _neighbours(z, a, b, cfg)
        assert set(got.tolist()) <= {rz, up}, (spec, z, a, b, set(got.tolist()), rz, up)
        mean = sum(value_of(int(c), cfg.acc_fmt) for c in got) / len(words)
        ulp = Fraction(2) ** (max(_floor_log2(abs(v)), fa.emin) - fa.M)
        assert abs(mean - v) < ulp / 2**cfg.rbits, (spec, z, a, b, float(mean), float(v))
        checked += 1
    assert checked > 100


CHAIN_CASES = [("e5m2:e6m5:sr_eager:4", 3, 4, 17), ("e4m3:fp16:sr_lazy:6", 2, 5, 9),
               ("e5m2:nosub:e6m5:nosub:sat:sr_eager:2", 4, 3, 12), ("e4m3:bf16:rn", 2, 2, 30),
               ("e5m2:e5m2:rz", 3, 3, 8)]


def _chain_oracle(cfg, A, B, C, word):
    M, K = A.shape
    N = B.shape[1]
    out = np.zeros((M, N), dtype=np.int64)
    for i in range(M):
        for j in range(N):
            z = int(C[i, j])
            for k in range(K):
                z = mac_oracle(z, int(A[i, k]), int(B[k, j]), cfg, word(i, j, k))
            out[i, j] = z
    return out


def _chain_operands(cfg, M, N, K, rnd):
    fi, fa = fmt_info(cfg.in_fmt), fmt_info(cfg.acc_fmt)
    # Mostly moderate finite values so that chains stay interesting, some uniform codes.
    def inp():
        if rnd.random() < 0.1:
            return rnd.randrange(1 << fi.width)
        return _code_with_exp(fi, rnd.random() < 0.5, rnd.randint(-4, 4), rnd)
    A = np.array([[inp() for _ in range(K)] for _ in range(M)], dtype=np.int64)
    B = np.array([[inp() for _ in range(N)] for _ in range(K)], dtype=np.int64)
    C = np.array([[_code_with_exp(fa, rnd.random() < 0.5, rnd.randint(-3, 6), rnd)
                   for _ in range(N)] for _ in range(M)], dtype=np.int64)
    return A, B, C


def _has_backends():
    return "backend" in inspect.signature(ref.matmul).parameters


def _chain_kwargs(backend):
    """``backend=`` for ref.matmul / ref.dot when the model has several (reference, fast)."""
    if backend == "default":
        return {}
    if not _has_backends():
        pytest.skip("ref.matmul has a single backend")
    return {"backend": backend}


def _check_chains(spec, M, N, K, backend):
    cfg = ref.parse_mac(spec)
    kw = _chain_kwargs(backend)
    rnd = random.Random(M * 1000 + N * 100 + K)
    A, B, C = _chain_operands(cfg, M, N, K, rnd)
    rand = None
    if cfg.is_sr:
        rand = np.array([[[rnd.randrange(1 << cfg.rand_bits) for _ in range(K)] for _ in range(N)]
                         for _ in range(M)], dtype=np.int64)
    word = (lambda i, j, k: int(rand[i, j, k])) if cfg.is_sr else (lambda i, j, k: 0)
    exp = _chain_oracle(cfg, A, B, C, word)
    got = np.asarray(ref.matmul(A, B, cfg, C, rand=rand, **kw))
    np.testing.assert_array_equal(got, exp, err_msg=f"matmul {spec} with C ({backend})")
    exp0 = _chain_oracle(cfg, A, B, np.zeros((M, N), dtype=np.int64), word)
    got0 = np.asarray(ref.matmul(A, B, cfg, rand=rand, **kw))
    np.testing.assert_array_equal(got0, exp0, err_msg=f"matmul {spec} from +0 ({backend})")
    # dot: the chain of row 0 x column 1, driven by that PE's explicit words.
    d = ref.dot(A[0], B[:, 1], cfg, np.int64(C[0, 1]),
                rand=None if rand is None else rand[0, 1], **kw)
    assert int(d) == int(exp[0, 1]), (spec, backend, int(d), int(exp[0, 1]))


def _check_seeded(spec, backend):
    """Without ``rand``, PE (i, j) takes word k+1 of ``Xorshift32(seed, i, j)``, masked."""
    cfg = ref.parse_mac(spec)
    kw = _chain_kwargs(backend)
    M, N, K, seed = 3, 2, 10, 1234
    A, B, C = _chain_operands(cfg, M, N, K, random.Random(5))
    gens = {(i, j): ref.Xorshift32(seed, i, j) for i in range(M) for j in range(N)}
    mask = (1 << cfg.rand_bits) - 1
    words = {(i, j, k): gens[i, j].next_word() & mask
             for i in range(M) for j in range(N) for k in range(K)}
    exp = _chain_oracle(cfg, A, B, C, lambda i, j, k: words[i, j, k])
    got = np.asarray(ref.matmul(A, B, cfg, C, seed=seed, **kw))
    np.testing.assert_array_equal(got, exp, err_msg=f"seeded matmul {spec} ({backend})")


# The readable reference loop runs by default; the compiled backend (numba JIT,
# seconds of compilation per configuration) with the slow tests.
@pytest.mark.parametrize("spec,M,N,K", CHAIN_CASES)
def test_matmul_and_dot_match_oracle_chains(spec, M, N, K):
    _check_chains(spec, M, N, K, "reference" if _has_backends() else "default")


@pytest.mark.parametrize("spec", ["e5m2:e6m5:sr_eager:4", "e4m3:fp16:sr_lazy:3"])
def test_matmul_seeded_matches_oracle_with_pe_generators(spec):
    _check_seeded(spec, "reference" if _has_backends() else "default")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["default", "fast"])
@pytest.mark.parametrize("spec,M,N,K", CHAIN_CASES)
def test_matmul_and_dot_chains_other_backends(spec, M, N, K, backend):
    if backend == "fast":
        pytest.importorskip("numba")
    _check_chains(spec, M, N, K, backend)
    if ref.parse_mac(spec).is_sr:
        _check_seeded(spec, backend)


@pytest.mark.slow
@pytest.mark.parametrize("spec", CONFIGS)
def test_mac_random_large(spec):
    cfg = ref.parse_mac(spec)
    triples, words = random_cases(cfg, N_SLOW, seed=zlib.crc32(spec.encode()) + 1)
    check_mac(cfg, triples, words)


@pytest.mark.slow
@pytest.mark.parametrize("r", range(1, 13))
@pytest.mark.parametrize("base", ["e5m2:e6m5", "e4m3:fp16:nosub", "e5m2:nosub:e6m5:nosub:sat"])
@pytest.mark.parametrize("mode", ["sr_lazy", "sr_eager"])
def test_mac_every_r(base, mode, r):
    cfg = ref.parse_mac(f"{base}:{mode}:{r}")
    triples, words = random_cases(cfg, 20_000, seed=r)
    check_mac(cfg, triples, words)


@pytest.mark.parametrize("spec", ["e5m2:e6m5:sr_eager:4", "e4m3:fp16:nosub:sr_lazy:7",
                                  "e5m2:e3m4:fn:rn"])
def test_mac_torch_tensors_match_oracle(spec):
    """Torch int64 tensors in -> torch codes out, the same codes as the oracle."""
    torch = pytest.importorskip("torch")
    cfg = ref.parse_mac(spec)
    triples, words = random_cases(cfg, 3000, seed=21)
    z, a, b = (torch.tensor([t[i] for t in triples], dtype=torch.int64) for i in range(3))
    rand = torch.tensor(words, dtype=torch.int64) if cfg.is_sr else None
    got = ref.mac(z, a, b, cfg, rand=rand)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.int64
    exp = [mac_oracle(t[0], t[1], t[2], cfg, w) for t, w in zip(triples, words, strict=True)]
    bad = [i for i, (g, e) in enumerate(zip(got.tolist(), exp, strict=True)) if g != e]
    assert not bad, [(triples[i], words[i], exp[i], got.tolist()[i]) for i in bad[:5]]


@pytest.mark.parametrize("spec", ["e5m2:e6m5:sr_eager:3", "e4m3:bf16:sr_lazy:9"])
def test_mac_seeded_uses_pe_n0_generators(spec):
    """``mac(seed=s)``: element n (row-major) takes the first word of ``Xorshift32(s, n, 0)``."""
    cfg = ref.parse_mac(spec)
    triples, _ = random_cases(cfg, 600, seed=4)
    seed = 987654
    mask = (1 << cfg.rand_bits) - 1
    words = [ref.Xorshift32(seed, n, 0).next_word() & mask for n in range(len(triples))]
    z, a, b = (np.array([t[i] for t in triples], dtype=np.int64).reshape(20, 30) for i in range(3))
    got = np.asarray(ref.mac(z, a, b, cfg, seed=seed)).ravel()
    exp = [mac_oracle(t[0], t[1], t[2], cfg, w) for t, w in zip(triples, words, strict=True)]
    assert got.tolist() == exp
