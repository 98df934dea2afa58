"""Independent exact oracle of the arithmetic contract, sections 1-3.

Written from ``/work/shared/spec/arithmetic.md`` and the project decisions
(docs/design.md), not from ``ref/rounding.py`` / ``ref/mac.py`` /
``ref/codec.py``, so that the golden model can be checked code for code.
It reads only the six parameters of a ``FloatFormat`` (exp_bits, man_bits,
bias, subnormals, specials, saturate) and derives everything else itself.

Numbers are exact: a finite magnitude is the dyadic ``n * 2**q`` with Python
integers ``n >= 0`` and ``q`` (arbitrary size, so any format fits), and the
public helpers speak ``fractions.Fraction``. One scalar operation at a time;
slow but obviously right.

Public functions
----------------
``value_of(code, fmt)``            -> Fraction | "nan" | ("inf", sign)
``is_negative(code, fmt)``         -> sign bit (for signed zeros)
``round_value(x, fmt, mode, r, R)`` -> code (section 2; ``x`` a dyadic Fraction)
``encode_float(x, fmt, mode, r, R)`` -> code of a Python float (specials too)
``mac_oracle(z, a, b, cfg, rand_word)`` -> accumulator code (section 3)
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

__all__ = [
    "NAN",
    "Fmt",
    "fmt_info",
    "value_of",
    "is_negative",
    "round_value",
    "round_dyadic",
    "encode_float",
    "mac_oracle",
    "canonical_nan",
    "max_finite",
]

NAN = "nan"
_INF = "inf"


class Fmt:
    """Constants of one format, derived from the contract (section 1).

    ``E`` exponent bits, ``M`` mantissa bits, ``bias``; ``emin = 1 - bias``;
    ``max_n * 2**max_q`` is the largest finite magnitude.
    """

    def __init__(self, exp_bits, man_bits, bias, subnormals, specials, saturate):
        self.E, self.M = exp_bits, man_bits
        self.bias = bias
        self.sub = subnormals
        self.specials = specials
        self.sat = saturate
        self.emin = 1 - bias
        self.width = 1 + exp_bits + man_bits
        self.sign_bit = 1 << (exp_bits + man_bits)
        self.field_max = (1 << exp_bits) - 1
        M = man_bits
        if specials == "ieee":
            # Top exponent field is inf / NaN; max = all-ones mantissa one field below.
            top_field, top_man = self.field_max - 1, (1 << M) - 1
        elif specials == "fn":
            # Only the all-ones magnitude is NaN: max is the code just below it.
            if M == 0:
                top_field, top_man = self.field_max - 1, 0
            else:
                top_field, top_man = self.field_max, (1 << M) - 2
        else:
            top_field, top_man = self.field_max, (1 << M) - 1
        self.max_mag_code = (top_field << M) | top_man
        # top_field >= 1 always (E >= 2), so the max is normal.
        self.max_n = (1 << M) | top_man
        self.max_q = top_field - bias - M
        self.has_inf = specials == "ieee"
        self.has_nan = specials != "none"
        if specials == "ieee":
            self.nan_code = (self.field_max << M) | (1 << (M - 1))
            self.inf_code = self.field_max << M
        elif specials == "fn":
            self.nan_code = (1 << (exp_bits + M)) - 1
            self.inf_code = None
        else:
            self.nan_code = self.inf_code = None

    # ---- reading a code ---------------------------------------------------
    def read(self, code):
        """Decode ``code`` -> ("num", neg, n, q) | ("inf", neg) | ("nan",)."""
        code = int(code)
        if not 0 <= code < (1 << self.width):
            raise ValueError(f"code {code} out of range for a {self.width}-bit format")
        neg = bool(code & self.sign_bit)
        mag = code & (self.sign_bit - 1)
        field = mag >> self.M
        man = mag & ((1 << self.M) - 1)
        if self.specials == "ieee" and field == self.field_max:
            return ("inf", neg) if man == 0 else ("nan",)
        if self.specials == "fn" and mag == (self.sign_bit - 1):
            return ("nan",)
        if field == 0:
            if not self.sub:
                return ("num", neg, 0, 0)
            return ("num", neg, man, self.emin - self.M)
        return ("num", neg, (1 << self.M) | man, field - self.bias - self.M)

    # ---- writing a code ---------------------------------------------------
    def zero(self, neg):
        return self.sign_bit if neg else 0

    def max_code(self, neg):
        return self.max_mag_code | (self.sign_bit if neg else 0)

    def nan(self):
        return self.nan_code

    def inf(self, neg):
        """Code for an infinite result (section 1 + project decision)."""
        if self.has_inf:
            return self.inf_code | (self.sign_bit if neg else 0)
        if self.sat or self.specials == "none":
            return self.max_code(neg)
        return self.nan_code

    def overflow(self, neg):
        """Code for a finite result whose rounded magnitude exceeds max."""
        if self.sat or self.specials == "none":
            return self.max_code(neg)
        if self.has_inf:
            return self.inf_code | (self.sign_bit if neg else 0)
        return self.nan_code

    def exceeds_max(self, n, q):
        """``n * 2**q > max``."""
        return _cmp(n, q, self.max_n, self.max_q) > 0

    def pack(self, neg, n, q):
        """Code of the representable magnitude ``n * 2**q`` (<= max, on the grid)."""
        s = self.sign_bit if neg else 0
        if n == 0:
            return s
        e = n.bit_length() - 1 + q  # floor(log2)
        M = self.M
        if e < self.emin:
            shift = q - (self.emin - M)
            assert shift >= 0, "value below the subnormal grid"
            return s | (n << shift)
        shift = q - (e - M)
        sig = n << shift if shift >= 0 else _exact_rshift(n, -shift)
        field = e + self.bias
        assert 1 <= field <= self.field_max and (1 << M) <= sig < (2 << M)
        return s | (field << M) | (sig - (1 << M))


def _exact_rshift(n, s):
    assert n & ((1 << s) - 1) == 0, "value not on the format's grid"
    return n >> s


def _cmp(n1, q1, n2, q2):
    """Sign of ``n1*2**q1 - n2*2**q2`` for non-negative integers."""
    q = min(q1, q2)
    a, b = n1 << (q1 - q), n2 << (q2 - q)
    return (a > b) - (a < b)


@cache
def _fmt_cached(key):
    return Fmt(*key)


def fmt_info(fmt) -> Fmt:
    """The oracle's view of a ``ref.FloatFormat`` (only its six parameters are read)."""
    if isinstance(fmt, Fmt):
        return fmt
    return _fmt_cached(
        (fmt.exp_bits, fmt.man_bits, fmt.bias, fmt.subnormals, fmt.specials, fmt.saturate)
    )


def canonical_nan(fmt):
    return fmt_info(fmt).nan_code


def max_finite(fmt) -> Fraction:
    f = fmt_info(fmt)
    return Fraction(f.max_n) * Fraction(2) ** f.max_q


def _frac(n, q) -> Fraction:
    return Fraction(n << q) if q >= 0 else Fraction(n, 1 << -q)


def value_of(code, fmt):
    """Value of a code: a Fraction (zeros lose their sign: see :func:`is_negative`),
    ``"nan"``, or ``("inf", sign)`` with sign +1 / -1."""
    t = fmt_info(fmt).read(code)
    if t[0] == "nan":
        return NAN
    if t[0] == "inf":
        return (_INF, -1 if t[1] else 1)
    _, neg, n, q = t
    v = _frac(n, q)
    return -v if neg else v


def is_negative(code, fmt) -> bool:
    return bool(int(code) & fmt_info(fmt).sign_bit)


# ---- section 2: rounding ----------------------------------------------------
def _round_up(mode, k, rem, sh, r, R):
    """Round-up decision for ``|x| = (k + rem / 2**sh) * ulp`` (0 <= rem < 2**sh)."""
    if mode == "rz" or rem == 0:
        return 0
    if mode == "rn":
        twice = rem << 1
        half = 1 << sh
        return 1 if twice > half or (twice == half and k & 1) else 0
    if mode in ("sr", "sr_lazy"):
        # floor(f * 2**r) + R >= 2**r
        return 1 if ((rem << r) >> sh) + R >= (1 << r) else 0
    raise ValueError(f"unknown rounding mode {mode!r}")


def round_dyadic(neg, n, q, fmt, mode, r=0, R=0):
    """Code of ``(-1)**neg * n * 2**q`` rounded to ``fmt`` (section 2), n >= 0.

    ``mode``: "rn", "rz", "sr" (alias "sr_lazy"); ``R`` in [0, 2**r).
    A zero ``n`` gives the zero of sign ``neg`` (the caller applies the
    exact-zero-sum rule).
    """
    f = fmt_info(fmt)
    if n == 0:
        return f.zero(neg)
    e = n.bit_length() - 1 + q
    if e < f.emin:
        if not f.sub:
            return f.zero(neg)  # flush, decided on the exact value
        e = f.emin
    u = e - f.M  # ulp = 2**u
    if u <= q:
        k, rem, sh = n << (q - u), 0, 0
    else:
        sh = u - q
        k, rem = n >> sh, n & ((1 << sh) - 1)
    k += _round_up(mode, k, rem, sh, r, R)
    if k == 0:
        return f.zero(neg)
    if f.exceeds_max(k, u):
        if mode == "rz":
            return f.max_code(neg)  # RZ never overflows a finite value
        return f.overflow(neg)
    return f.pack(neg, k, u)


def _dyadic(x: Fraction):
    """(neg, n, q) of a dyadic rational ``x``."""
    x = Fraction(x)
    d = x.denominator
    if d & (d - 1):
        raise ValueError(f"oracle handles dyadic rationals only, got {x}")
    num = x.numerator
    return num < 0, abs(num), -(d.bit_length() - 1)


def round_value(x, fmt, mode="rn", r=0, R=0, *, negative=False):
    """Code of the real ``x`` (dyadic Fraction) rounded to ``fmt``.

    ``negative`` gives the sign of a zero ``x``.
    """
    neg, n, q = _dyadic(x)
    if n == 0:
        neg = negative
    return round_dyadic(neg, n, q, fmt, mode, r, R)


def encode_float(x: float, fmt, mode="rn", r=0, R=0):
    """Code of the Python float ``x`` (inf, NaN and -0.0 included)."""
    f = fmt_info(fmt)
    if math.isnan(x):
        if not f.has_nan:
            raise ValueError("NaN into a format without NaN")
        return f.nan_code
    if math.isinf(x):
        return f.inf(x < 0)
    neg = math.copysign(1.0, x) < 0
    return round_value(Fraction(x), fmt, mode, r, R, negative=neg)


# ---- section 3: the MAC -----------------------------------------------------
def _ilog2(n, q):
    """floor(log2(n * 2**q)) for n > 0."""
    return n.bit_length() - 1 + q


def _eager_magnitude(z, p, X, fa, r, R, B):
    """sr_eager magnitude (section 3, literal): (n, q, k) or None for the close path.

    ``z``, ``p``: (neg, n, q) of the addends x1 = z, x2 = a*b; ``X = (n, q)`` = |x1 + x2| > 0.
    """
    (s1, n1, q1), (s2, n2, q2) = z, p
    eff_sub = s1 != s2  # by sign bits, zeros included
    e1 = _ilog2(n1, q1) if n1 else None  # None = -inf
    e2 = _ilog2(n2, q2) if n2 else None
    if e1 is not None and e2 is not None:
        d = abs(e1 - e2)
        e_big = max(e1, e2)
    else:
        d = math.inf
        e_big = e1 if e2 is None else e2
    if eff_sub and d <= 1:
        return None  # close path: SR_{p,r} of X, as sr_lazy
    anchor = e_big - 1 if eff_sub else e_big
    anchor = max(anchor, fa.emin)
    s = anchor - fa.M - r  # w = 2**s
    nX, qX = X
    T = nX >> (s - qX) if s >= qX else nX << (qX - s)  # floor(X / w)
    Y = T + R
    k = max(0, _ilog2(Y, s) - anchor) if Y else 0
    assert k <= 2, "carry beyond two positions is impossible"
    Bk = B & ((1 << k) - 1)
    m = (Y + (Bk << r)) >> (r + k)
    return m, s + r + k, k


def _read_product(a, b, fi):
    """(kind, ...) of the exact product of input codes ``a``, ``b``."""
    ta, tb = fi.read(a), fi.read(b)
    if ta[0] == "nan" or tb[0] == "nan":
        return ("nan",)
    neg = ta[1] != tb[1]
    if ta[0] == "inf" or tb[0] == "inf":
        other = tb if ta[0] == "inf" else ta
        if other[0] == "num" and other[2] == 0:
            return ("nan",)  # 0 * inf
        return ("inf", neg)
    return ("num", neg, ta[2] * tb[2], ta[3] + tb[3])


def mac_oracle(z, a, b, cfg, rand_word=0, trace=None):
    """Accumulator code of ``round(z + a*b)`` (section 3) for one MAC.

    ``cfg``: a ``ref.MacConfig`` (its in_fmt, acc_fmt, rounding, rbits are read).
    ``rand_word``: R in the low r bits, B in the next 2 (eager).
    ``trace``: optional list; the case taken is appended ("special", "zero",
    "flush", "round", "close", "far0", "far1", "far2"), for coverage checks.
    """
    t = _mac(z, a, b, cfg, rand_word)
    if trace is not None:
        trace.append(t[1])
    return t[0]


def _mac(z, a, b, cfg, rand_word):
    fi, fa = fmt_info(cfg.in_fmt), fmt_info(cfg.acc_fmt)
    mode = cfg.rounding
    r = cfg.rbits or 0
    R = rand_word & ((1 << r) - 1) if r else 0
    B = (rand_word >> r) & 3 if mode == "sr_eager" else 0
    tz = fa.read(z)
    tp = _read_product(a, b, fi)

    # Specials (IEEE 754 propagation), then the project's mapping into the accumulator.
    if tz[0] == "nan" or tp[0] == "nan" or (
        tz[0] == "inf" and tp[0] == "inf" and tz[1] != tp[1]
    ):
        return (fa.nan_code if fa.has_nan else fa.zero(False)), "special"
    if tz[0] == "inf" or tp[0] == "inf":
        neg = tz[1] if tz[0] == "inf" else tp[1]
        return fa.inf(neg), "special"

    _, sz, nz, qz = tz
    _, sp, np_, qp = tp
    q = min(qz, qp)
    S = (-1 if sz else 1) * (nz << (qz - q)) + (-1 if sp else 1) * (np_ << (qp - q))
    if S == 0:
        return fa.zero(sz and sp), "zero"  # +0 unless both addends are -0
    neg, n = S < 0, abs(S)
    if not fa.sub and _ilog2(n, q) < fa.emin:
        return fa.zero(neg), "flush"  # flush on the exact value
    if mode in ("rn", "rz", "sr_lazy"):
        return round_dyadic(neg, n, q, fa, mode, r, R), "round"
    if mode != "sr_eager":
        raise ValueError(f"unknown rounding {mode!r}")
    got = _eager_magnitude((sz, nz, qz), (sp, np_, qp), (n, q), fa, r, R, B)
    if got is None:
        return round_dyadic(neg, n, q, fa, "sr", r, R), "close"
    m, u, k = got
    path = f"far{k}"
    if m == 0:
        return fa.zero(neg), path
    if fa.exceeds_max(m, u):
        return fa.overflow(neg), path
    return fa.pack(neg, m, u), path


def mac_value(z, a, b, cfg):
    """Exact ``z + a*b`` as a Fraction, or None when a special is involved (for messages)."""
    fi, fa = fmt_info(cfg.in_fmt), fmt_info(cfg.acc_fmt)
    tz, tp = fa.read(z), _read_product(a, b, fi)
    if tz[0] != "num" or tp[0] != "num":
        return None
    return (-1 if tz[1] else 1) * _frac(tz[2], tz[3]) + (-1 if tp[1] else 1) * _frac(tp[2], tp[3])
