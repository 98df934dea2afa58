"""Strict golden-model inputs and bounded formats (issues 17 item 3, 18 item 2).

Each test names the case it refuses (or the limit it proves), goes through the
public API a user calls (``ref.decode`` / ``encode`` / ``mac`` / ``matmul`` /
``dot``, ``FloatFormat``, ``parse_format`` / ``parse_mac``, the CLI), and
checks that the error is one line naming the bad value. Where a limit is
reached, the result at the limit is compared with the independent oracle
(tests/oracle.py), so the bound is not just a refusal.
"""

from __future__ import annotations

import math
import tracemalloc
import warnings
from fractions import Fraction

import numpy as np
import oracle
import pytest
import torch

import ref
from ref import E5M2, E6M5, FloatFormat, MacConfig, parse_format, parse_mac
from ref.array import ArrayModel, array_matmul
from ref.checks import MEMORY_ENV, InputTypeError, InsufficientMemoryError
from ref.formats import MAX_BIAS

RN = MacConfig(E5M2, E6M5, "rn")
LAZY = MacConfig(E5M2, E6M5, "sr_lazy", 4)
EAGER = MacConfig(E5M2, E6M5, "sr_eager", 4)
Z22 = np.zeros((2, 2), dtype=np.int64)


def refused(needle, fn, *args, exc=ValueError, **kw):
    """``fn(*args, **kw)`` raises ``exc`` with a one-line message containing ``needle``."""
    with pytest.raises(exc) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert needle in msg, f"message {msg!r} does not name {needle!r}"
    assert "\n" not in msg, f"message is not one line: {msg!r}"
    return msg


# ---- codes: integer dtypes within [0, 2**width) -------------------------------------------


@pytest.mark.parametrize("codes,needle", [
    (1.5, "1.5"), ([1.5], "1.5"), (np.array([3.0]), "3.0"), ([0, 2.5], "float64"),
    (torch.tensor([1.0]), "torch.float32"), (np.float32(60), "float32"),
])
def test_float_codes_refused(codes, needle):
    """ref.decode(1.5, fmt) used to decode a truncated code (issue 17)."""
    refused(needle, ref.decode, codes, E5M2, exc=InputTypeError)


@pytest.mark.parametrize("codes", [np.array([True, False]), torch.tensor([True]), True])
def test_bool_codes_refused(codes):
    refused("bool", ref.decode, codes, E5M2, exc=InputTypeError)


@pytest.mark.parametrize("codes,needle", [(None, "None"), ("60", "'60'"), (["a"], "'a'"),
                                          ([[1, 2], [3]], "rectangular")])
def test_none_string_and_ragged_codes_refused(codes, needle):
    refused(needle, ref.decode, codes, E5M2, exc=InputTypeError)


@pytest.mark.parametrize("codes", [[2**63], [2**70], np.array([2**64 - 1], dtype=np.uint64)])
def test_codes_beyond_int64_refused(codes):
    refused("out of range", ref.decode, codes, E5M2)


@pytest.mark.parametrize("codes", [[256], [-1], np.array([0, 300], np.int16)])
def test_codes_outside_the_format_refused(codes):
    refused("out of range", ref.decode, codes, E5M2)


def test_every_integer_dtype_accepted():
    want = ref.decode(np.arange(0, 128), E5M2)
    for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64):
        assert np.array_equal(ref.decode(np.arange(0, 128, dtype=dt), E5M2), want, equal_nan=True)
    for dt in (torch.uint8, torch.int16, torch.int32, torch.int64):
        got = ref.decode(torch.arange(0, 128, dtype=dt), E5M2).numpy()
        assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(ref.decode(list(range(128)), E5M2), want, equal_nan=True)
    assert ref.decode([], E5M2).shape == (0,)  # NumPy types [] as float64: no codes


@pytest.mark.parametrize("where", ["z", "a", "b"])
def test_float_codes_refused_by_mac(where):
    args = {"z": [0], "a": [0x3C], "b": [0x3C]}
    args[where] = [1.5]
    refused(f"{where} must be integers", ref.mac, args["z"], args["a"], args["b"], RN,
            exc=InputTypeError)


@pytest.mark.parametrize("backend", ["auto", "fast", "reference"])
def test_float_codes_refused_by_matmul_and_dot(backend):
    refused("A must be integers", ref.matmul, Z22 + 0.5, Z22, RN, backend=backend,
            exc=InputTypeError)
    refused("C must be integers", ref.matmul, Z22, Z22, RN, C=np.full((2, 2), 1.0),
            backend=backend, exc=InputTypeError)
    refused("a must be integers", ref.dot, [1.0, 2.0], [1, 2], RN, backend=backend,
            exc=InputTypeError)
    refused("A must have an integer dtype", ref.matmul, torch.zeros(2, 2), torch.zeros(2, 2),
            RN, backend=backend, exc=InputTypeError)


def test_float_codes_refused_by_the_array_model():
    arr = ArrayModel(RN, 2, 2)
    refused("A must be integers", arr.run_tile, np.full((2, 3), 0.5), np.zeros((3, 2), int),
            exc=InputTypeError)
    refused("B must be integers", array_matmul, np.zeros((2, 3), int), np.full((3, 2), 1.5),
            RN, 2, 2, exc=InputTypeError)


# ---- values to encode: real numbers only ----------------------------------------------------


@pytest.mark.parametrize("x,needle", [
    (None, "None"), ("1.0", "'1.0'"), (["a", "b"], "'a'"), ([Fraction(1, 3)], "object"),
    (np.array([True]), "bool"), (True, "bool"),
])
def test_encode_refuses_what_is_not_a_real_number(x, needle):
    """ref.encode(None, fmt) used to return a NaN code (issue 17)."""
    refused(needle, ref.encode, x, E5M2, exc=InputTypeError)
    refused(needle, ref.quantize, x, E5M2, exc=InputTypeError)


@pytest.mark.parametrize("x", [np.array([1 + 2j]), np.array([1 + 0j]), torch.tensor([1 + 2j]),
                               1j])
def test_encode_refuses_complex_without_a_warning(x):
    """Complex inputs used to be cast to real with a ComplexWarning (issues 17, 18)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refused("complex", ref.encode, x, E5M2, exc=InputTypeError)
        refused("complex", ref.encode, x, E5M2, "sr", rbits=3, seed=1, exc=InputTypeError)


def test_complex_operands_refused_everywhere():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refused("complex", ref.decode, np.array([60 + 0j]), E5M2, exc=InputTypeError)
        refused("complex", ref.mac, [0], np.array([60 + 0j]), [60], RN, exc=InputTypeError)
        for backend in ("auto", "reference"):
            refused("complex", ref.matmul, Z22.astype(complex), Z22, RN, backend=backend,
                    exc=InputTypeError)
            refused("complex", ref.matmul, torch.zeros(2, 2, dtype=torch.complex64),
                    torch.zeros(2, 2, dtype=torch.int64), RN, backend=backend,
                    exc=InputTypeError)


def test_encode_integers_exact_up_to_2_53_and_refused_beyond():
    big = 2**53
    assert ref.encode(np.array([big]), "fp32", "rz") == ref.encode(float(big), "fp32", "rz")
    refused(str(big + 1), ref.encode, np.array([big + 1]), "fp32", "rz")
    refused(str(big + 1), ref.encode, torch.tensor([-(big + 1)]), "fp32", "rz")
    assert ref.encode([1, 2, 3], E5M2).tolist() == ref.encode([1.0, 2.0, 3.0], E5M2).tolist()


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="long double is float64 here")
def test_encode_refuses_long_doubles_float64_cannot_hold():
    x = np.longdouble(1) + np.longdouble(2) ** -60
    refused("float64", ref.encode, np.array([x]), "fp32", "rz")
    assert ref.encode(np.array([np.longdouble(1.5)]), E5M2) == 0x3E


# ---- random words, rbits, seeds, generator states ------------------------------------------


@pytest.mark.parametrize("rand", [[2.5], [1.0], np.array([True]), torch.tensor([3.0])])
def test_float_or_bool_rand_words_refused(rand):
    """A float rand word used to be truncated (issue 17)."""
    refused("rand", ref.encode, [1.1], E5M2, "sr", rbits=3, rand=rand, exc=InputTypeError)
    refused("rand", ref.mac, [0], [0x3D], [0x3D], LAZY, rand=rand, exc=InputTypeError)


def test_rand_words_outside_rand_bits_refused():
    refused("2**4", ref.mac, [0], [1], [1], LAZY, rand=[16])
    refused("2**6", ref.mac, [0], [1], [1], EAGER, rand=[64])
    refused("2**6", ref.matmul, Z22, Z22, EAGER, rand=np.full((2, 2, 2), 64))


def test_rand_given_without_sr_refused():
    refused("'rn'", ref.encode, [1.0], E5M2, "rn", rand=[1])
    refused("'rn'", ref.mac, [0], [1], [1], RN, rand=[1])


def test_rand_must_broadcast_to_the_output_without_enlarging_it():
    """A rand of the wrong shape used to broadcast the output to a larger shape (issue 18)."""
    refused("does not broadcast to the output shape (1,)", ref.mac, [0], [1], [1], LAZY,
            rand=np.ones((3, 1), int))
    refused("(2,)", ref.encode, [1.1, 1.2], E5M2, "sr", rbits=3, rand=np.ones((3, 2), int))
    refused("(2,)", ref.encode, torch.tensor([1.1, 1.2]), E5M2, "sr", rbits=3,
            rand=torch.ones(3, 2, dtype=torch.int64))
    # broadcasting *to* the output is fine: one word for all, or one per element
    assert ref.mac([0, 0], [0x3D, 0x3D], [0x3D], LAZY, rand=[5]).shape == (2,)
    assert ref.encode([1.1, 1.2], E5M2, "sr", rbits=3, rand=[[1, 2]][0]).shape == (2,)
    refused("rand must have shape (2, 2, 2)", ref.matmul, Z22, Z22, LAZY,
            rand=np.zeros((1, 1, 2), int))
    refused("rand must have shape (2,)", ref.dot, [1, 2], [1, 2], LAZY, rand=[1])


@pytest.mark.parametrize("rbits", [True, np.True_, 2.0, "3"])
def test_rbits_must_be_an_int_not_a_bool(rbits):
    """A bool used to be taken as rbits=1 (issue 17)."""
    needle = "bool" if isinstance(rbits, (bool, np.bool_)) else repr(rbits)
    refused(needle, ref.encode, [1.0], E5M2, "sr", rbits=rbits, exc=InputTypeError)
    refused(needle, MacConfig, E5M2, E6M5, "sr_lazy", rbits, exc=InputTypeError)
    assert MacConfig(E5M2, E6M5, "sr_lazy", np.int64(3)).rbits == 3


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_zero_generator_state_refused(backend):
    """state=np.zeros(...) used to give random words that are all 0 (issue 18)."""
    refused("(xorshift never leaves 0)", ref.matmul, Z22, Z22, LAZY, state=np.zeros((2, 2), int),
            backend=backend)
    st = np.full((2, 2), 5)
    st[1, 0] = 0
    refused("holds 0", ref.matmul, Z22, Z22, EAGER, state=st, backend=backend)
    refused("holds 4294967296", ref.matmul, Z22, Z22, LAZY, state=np.full((2, 2), 2**32),
            backend=backend)
    refused("holds -3", ref.matmul, Z22, Z22, LAZY, state=np.full((2, 2), -3), backend=backend)
    refused("state must be integers", ref.matmul, Z22, Z22, LAZY, state=np.full((2, 2), 5.0),
            backend=backend, exc=InputTypeError)
    refused("state must have shape (2, 2)", ref.matmul, Z22, Z22, LAZY,
            state=np.ones((1, 2), int), backend=backend)
    refused("holds 0", array_matmul, Z22, Z22, LAZY, 2, 2, state=np.zeros((2, 2), int))
    refused("bool", ref.Xorshift32, state=True)


def test_array_seed_is_a_32_bit_int():
    refused("seed", ArrayModel, LAZY, 2, 2, seed=True)
    refused("seed", ArrayModel, LAZY, 2, 2, seed=2**32)
    refused("rows", ArrayModel, LAZY, True, 2)


# ---- format flags and parameters ------------------------------------------------------------


@pytest.mark.parametrize("kw,needle", [
    (dict(saturate="false"), "'false'"), (dict(subnormals="no"), "'no'"),
    (dict(subnormals=1), "subnormals must be True or False, got 1"),
    (dict(saturate=None), "None"), (dict(specials="FN"), "'FN'"), (dict(specials=None), "None"),
    (dict(bias=True), "bool"), (dict(bias=15.0), "15.0"), (dict(name=5), "5"),
])
def test_format_flags_must_be_real_booleans(kw, needle):
    """FloatFormat(5, 2, saturate='false') used to build a saturating format (issue 17)."""
    refused(needle, FloatFormat, 5, 2, **kw)


def test_format_flags_accept_numpy_booleans_and_strings():
    f = FloatFormat(5, 2, saturate=np.True_, subnormals=np.False_, specials=np.str_("fn"))
    assert f.saturate is True and f.subnormals is False
    assert type(f.specials) is str and f == FloatFormat(5, 2, saturate=True, subnormals=False,
                                                        specials="fn")
    refused("bool", FloatFormat, True, 2)
    refused("bool", FloatFormat, 5, True)


# ---- format bounds: bias and every derived exponent -----------------------------------------


@pytest.mark.parametrize("bias", [MAX_BIAS + 1, -MAX_BIAS - 1, 2**32 + 15, 2**39, 2**61, -2**62])
def test_bias_outside_the_limit_refused(bias):
    """Biases whose exponents overflow int32 / meet the MAC's -2**40 marker / overflow encode."""
    msg = refused("-2**29..2**29", FloatFormat, 5, 2, bias=bias)
    assert str(bias) in msg
    refused("-2**29..2**29", parse_format, f"e5m2:bias={bias}")
    refused("-2**29..2**29", parse_mac, f"e5m2:bias={bias}:e6m5:rn")


def test_issue_cases_of_unbounded_biases():
    # decode([0x3C], FloatFormat(5, 2, bias=2**32+15)) used to give 1.0
    refused("2**29", lambda: ref.decode([0x3C], FloatFormat(5, 2, bias=2**32 + 15)))
    # encode([1.0], FloatFormat(5, 2, bias=2**61)) used to return -2**63
    refused("2**29", lambda: ref.encode([1.0], FloatFormat(5, 2, bias=2**61)))
    # ref.mac with biases >= 2**39 used to return +inf for z + 0*b
    refused("2**29", lambda: MacConfig(FloatFormat(5, 2, bias=2**39), E6M5, "rn"))
    refused("bias=", parse_format, "e5m2:bias=" + "9" * 5000)  # int()'s digit limit: one line


def test_cli_quantize_with_a_huge_bias_exits_2(capsys):
    """`srmac quantize --fmt e5m2:bias=4611686018427387904 1.0` used to print 0x00 (issue 18)."""
    from ref.cli import main

    rc = main(["quantize", "--fmt", "e5m2:bias=4611686018427387904", "1.0"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and "4611686018427387904" in err and "2**29" in err


@pytest.mark.parametrize("bias", [MAX_BIAS, -MAX_BIAS])
@pytest.mark.parametrize("man_bits", [2, 52])
def test_encode_at_the_bias_limit(bias, man_bits):
    """At |bias| = 2**29 encode's int64 arithmetic still holds (a 52-bit mantissa too):
    bias 2**29 puts every non-zero float64 above the format (overflow: inf, or max under rz),
    bias -2**29 below it (a signed zero); 1.0 is checked against the oracle as well."""
    fmt = FloatFormat(10, man_bits, bias=bias)
    xs = np.array([0.0, -0.0, 1.0, -3.5, 5e-324, -1e300, np.inf, -np.inf])
    sign = np.signbit(xs).astype(np.int64) << (fmt.width - 1)
    for mode, kw in [("rn", {}), ("rz", {}), ("sr", {"rbits": 3, "rand": 7})]:
        got = ref.encode(xs, fmt, mode, **kw)
        if bias > 0:
            finite = fmt.max_code if mode == "rz" else fmt.inf_code
            want = sign | np.where(xs == 0, 0, np.where(np.isinf(xs), fmt.inf_code, finite))
        else:
            want = sign | np.where(np.isinf(xs), fmt.inf_code, 0)
        assert got.tolist() == want.tolist(), (fmt, mode)
        r, R = (3, 7) if mode == "sr" else (0, 0)
        assert int(got[2]) == oracle.encode_float(1.0, fmt, mode, r, R)


LIMIT_BIASES = [(MAX_BIAS, MAX_BIAS), (-MAX_BIAS, MAX_BIAS), (MAX_BIAS, -MAX_BIAS),
                (-MAX_BIAS, -MAX_BIAS)]


def limit_config(biases, rounding):
    return MacConfig(FloatFormat(5, 2, bias=biases[0]), FloatFormat(6, 5, bias=biases[1]),
                     rounding, 3 if rounding.startswith("sr") else None)


@pytest.mark.parametrize("rounding", ["rn", "rz", "sr_lazy", "sr_eager"])
@pytest.mark.parametrize("biases", LIMIT_BIASES)
def test_mac_at_the_bias_limit_adds_zero_exactly(biases, rounding):
    """z + a * 0 is z for every accumulator code (it used to be +inf from biases of 2**39:
    the zero product's exponent marker -2**40 collided with real exponents)."""
    cfg = limit_config(biases, rounding)
    acc = cfg.acc_fmt
    z = np.arange(acc.num_codes)
    a = np.resize(np.arange(cfg.in_fmt.num_codes), z.shape)
    a = np.where((a & cfg.in_fmt.mag_mask) == 0, 0x3C, a)  # finite non-zero a, any sign...
    a = np.where(np.isin(a & cfg.in_fmt.mag_mask, [0x7C, 0x7D, 0x7E, 0x7F]), 0x3C, a)
    w = np.resize(np.arange(1 << cfg.rand_bits), z.shape) if cfg.is_sr else None
    got = ref.mac(z, a, np.zeros_like(z), cfg, rand=w)
    sign_z, sign_p = z >> (acc.width - 1), a >> 7
    mag = z & acc.mag_mask
    expect = np.where(mag == 0, (sign_z & sign_p) << (acc.width - 1), z)  # +0 unless both -0
    top = acc.exp_field_max << acc.man_bits
    expect = np.where((mag > top), acc.nan_code, expect)  # NaN in: the canonical NaN
    assert np.array_equal(got, expect)


@pytest.mark.parametrize("biases", LIMIT_BIASES)
def test_mac_at_the_bias_limit_matches_the_oracle(biases):
    """A few MACs per extreme, against the oracle (exact, but slow at these exponents)."""
    for n, rounding in enumerate(["rn", "sr_eager"]):
        cfg = limit_config(biases, rounding)
        for z, a, b, w in [(0x3C0, 0x3D, 0x3D, 5), (0x001, 0x01, 0x01, 7)][n:n + 1]:
            assert int(ref.mac(z, a, b, cfg, rand=w if cfg.is_sr else None)) == \
                oracle.mac_oracle(z, a, b, cfg, w)


@pytest.mark.slow
@pytest.mark.parametrize("rounding", ["rn", "rz", "sr_lazy", "sr_eager"])
@pytest.mark.parametrize("biases", LIMIT_BIASES)
def test_mac_at_the_bias_limit_matches_the_oracle_many(biases, rounding):
    cfg = limit_config(biases, rounding)
    rng = np.random.default_rng(abs(biases[0]) % 97 + biases[1] % 89)
    z, a, b = (rng.integers(0, f.num_codes, 12) for f in (cfg.acc_fmt, cfg.in_fmt, cfg.in_fmt))
    w = rng.integers(0, 1 << cfg.rand_bits, 12) if cfg.is_sr else np.zeros(12, int)
    got = ref.mac(z, a, b, cfg, rand=w if cfg.is_sr else None)
    assert got.tolist() == [oracle.mac_oracle(int(z[n]), int(a[n]), int(b[n]), cfg, int(w[n]))
                            for n in range(12)]


def test_mac_config_refuses_an_exponent_span_beyond_int64():
    """Accumulator codes packed as ((e - emin) << man) + m must fit int64."""
    refused("64-bit", MacConfig, E5M2, FloatFormat(10, 52, bias=1_000_000), "rn")
    MacConfig(E5M2, FloatFormat(10, 52), "rn")  # the usual bias: fine


# ---- decode: formats whose values are not all float64 ---------------------------------------


@pytest.mark.parametrize("fmt", [FloatFormat(12, 3), FloatFormat(5, 2, bias=1074),
                                 FloatFormat(5, 2, bias=-994), FloatFormat(16, 10)])
def test_decode_refuses_formats_beyond_float64(fmt):
    msg = refused("outside float64", ref.decode, [0x3C], fmt)
    assert fmt.name in msg
    refused("outside float64", ref.quantize, [1.0], fmt)
    refused("outside float64", ref.decode, torch.tensor([1]), fmt)
    ref.encode([1.0, 1e300], fmt)  # encoding reads float64 values: fine


def test_decode_at_the_float64_limits_is_exact():
    lo = FloatFormat(5, 2, bias=1073)  # smallest subnormal 2**-1074
    assert ref.decode([1], lo)[0] == math.ldexp(1.0, -1074) and lo.fits_float64
    hi = FloatFormat(5, 2, bias=-993)  # largest finite 1.75 * 2**1023
    assert ref.decode([hi.max_code], hi)[0] == 1.75 * 2.0**1023 and hi.fits_float64
    assert ref.decode(torch.tensor([hi.max_code]), hi).item() == 1.75 * 2.0**1023
    wide = FloatFormat(11, 10)  # e11m10: values from 2**-1032 to 2**1024
    codes = np.arange(0, wide.num_codes, 97)
    vals = ref.decode(codes, wide)
    for c, v in zip(codes.tolist(), vals.tolist(), strict=True):
        o = oracle.value_of(c, wide)
        if isinstance(o, Fraction):
            assert Fraction(v) == o, hex(c)


def test_format_float_properties_never_raise():
    assert FloatFormat(12, 3).max_value == math.inf
    assert FloatFormat(12, 3).min_subnormal == 0.0
    assert not FloatFormat(12, 3).fits_float64 and E6M5.fits_float64


# ---- configurations -------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", ["e5m2:e6m5:rn", None, 5, E5M2])
def test_configs_are_type_checked(cfg):
    """A string or None as config used to end in an AttributeError deep inside (issue 17)."""
    for call in (lambda: ref.mac([0], [1], [1], cfg),
                 lambda: ref.matmul(Z22, Z22, cfg),
                 lambda: ref.matmul(Z22, Z22, cfg, backend="fast"),
                 lambda: ref.matmul(Z22, Z22, cfg, backend="reference"),
                 lambda: ref.dot([1], [1], cfg),
                 lambda: ArrayModel(cfg, 2, 2)):
        msg = refused("needs a MacConfig", call, exc=InputTypeError)
        if isinstance(cfg, str):
            assert "ref.parse_mac('e5m2:e6m5:rn')" in msg


@pytest.mark.parametrize("fmt", [None, 5, 2.5])
def test_format_arguments_are_type_checked(fmt):
    refused("format must be a FloatFormat", ref.decode, [0], fmt, exc=InputTypeError)
    refused("format must be a FloatFormat", ref.encode, [0.0], fmt, exc=InputTypeError)
    refused("format must be a FloatFormat", MacConfig, fmt, E6M5, exc=InputTypeError)
    refused("MacConfig or a spec string", parse_mac, fmt, exc=InputTypeError)


@pytest.mark.parametrize("text,needle", [
    ("e5m2:e6m5:rn:sr_eager:4", "two roundings ('rn' and 'sr_eager')"),
    ("e5m2:e6m5:sr_lazy:sr_eager:4", "two roundings"),
    ("e5m2:e6m5:sr:sr_lazy:3", "two roundings"),
])
def test_repeated_rounding_in_a_mac_spec_refused(text, needle):
    """parse_mac("e5m2:e6m5:rn:sr_eager:4") used to keep the last rounding (issue 18)."""
    refused(needle, parse_mac, text)


@pytest.mark.parametrize("text,needle", [
    ("e5m2:sat:nosat", "'sat' and 'nosat'"), ("e6m5:nosub:sub", "'nosub' and 'sub'"),
    ("e5m2:bias=3:bias=4", "both set bias"), ("e5m2:fn:none", "both set specials"),
])
def test_contradictory_format_options_refused(text, needle):
    refused(needle, parse_format, text)
    refused(needle, parse_mac, f"{text}:e6m5:rn")


# ---- devices and empty products -------------------------------------------------------------


def test_meta_device_refused():
    meta = torch.zeros(2, 2, dtype=torch.int64, device="meta")
    for backend in ("auto", "fast", "reference"):
        refused("'meta' device", ref.matmul, meta, meta, RN, backend=backend)
    refused("'meta' device", ref.decode, meta, E5M2)
    refused("'meta' device", ref.encode, torch.zeros(2, device="meta"), E5M2)
    refused("'meta' device", ref.mac, meta, meta, meta, RN)


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("cfg", [RN, LAZY, EAGER], ids=str)
def test_k_zero_gives_the_initial_accumulators(cfg, backend):
    C = torch.tensor([[0x3C0, 0x7E0, 5]])
    A = torch.zeros(1, 0, dtype=torch.int64)
    B = torch.zeros(0, 3, dtype=torch.int64)
    assert torch.equal(ref.matmul(A, B, cfg, C, backend=backend), C)
    assert torch.equal(ref.matmul(A, B, cfg, 7, backend=backend), torch.full((1, 3), 7))
    if cfg.is_sr:
        R = torch.zeros(1, 3, 0, dtype=torch.int64)
        assert torch.equal(ref.matmul(A, B, cfg, C, rand=R, backend=backend), C)


# ---- memory: an estimate before large allocations -------------------------------------------


def test_memory_estimate_refuses_int8_inputs_widened_beyond_the_memory(monkeypatch):
    """A 2 GiB int8 view widened to int64 plus temporaries needs far more than 2 GiB (issue 18).

    The inputs are broadcast views (no memory), so the test allocates nothing:
    the refusal must come before any conversion.
    """
    monkeypatch.setenv(MEMORY_ENV, "4G")
    big = np.broadcast_to(np.int8(0x3C), (2**31,))
    refused("decode of 2147483648 values needs about 160.0 GiB", ref.decode, big, E5M2,
            exc=InsufficientMemoryError)
    refused("4.0 GiB is available (SRMAC_MEMORY_LIMIT)", ref.encode,
            np.broadcast_to(np.float32(1), (2**31,)), E5M2, exc=InsufficientMemoryError)
    refused("ref.mac of 2147483648 elements", ref.mac, 0, big, 0x3C, RN,
            exc=InsufficientMemoryError)
    A = np.broadcast_to(np.int8(0), (100_000, 100_000))
    for backend in ("auto", "reference"):
        refused("ref.matmul of 100000x100000 by 100000x100000", ref.matmul, A, A, RN,
                backend=backend, exc=InsufficientMemoryError)
    with pytest.raises(MemoryError):  # also a MemoryError for callers that catch that
        ref.matmul(A, A, RN)


def test_memory_check_reads_the_machine_without_override(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    from ref.checks import available_memory

    avail, source = available_memory()
    assert avail > 0 and source in ("MemAvailable", "available pages")
    huge = np.broadcast_to(np.int8(0), (2**40,))  # 1 TiB of int8 codes, 80 TiB to decode
    refused(f"({source})", ref.decode, huge, E5M2, exc=InsufficientMemoryError)


def test_memory_limit_variable_is_checked(monkeypatch):
    monkeypatch.setenv(MEMORY_ENV, "lots")
    refused("SRMAC_MEMORY_LIMIT='lots'", ref.matmul, Z22, Z22, RN)
    monkeypatch.setenv(MEMORY_ENV, "1K")
    refused("SRMAC_MEMORY_LIMIT", ref.matmul, Z22, Z22, RN, exc=InsufficientMemoryError)


def _peak(fn):
    fn()  # warm caches (decode tables, JIT) outside the measurement
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("spec", ["e5m2:e6m5:sr_eager:4", "fp32:fp32:rn"])
@pytest.mark.parametrize("shape", [(200, 8, 200), (2, 600, 300), (1500, 40, 1)])
def test_matmul_estimate_is_above_the_measured_peak(spec, shape):
    from ref import fast
    from ref.chain import matmul_bytes, matmul_reference

    cfg = parse_mac(spec)
    M, K, N = shape
    rng = np.random.default_rng(M + K + N)
    A = rng.integers(0, cfg.in_fmt.num_codes, (M, K))
    B = rng.integers(0, cfg.in_fmt.num_codes, (K, N))
    est = matmul_bytes(cfg, M, K, N)
    runs = [lambda: matmul_reference(A, B, cfg, seed=1)]
    if fast.available(A):
        runs.append(lambda: fast.matmul(A, B, cfg, seed=1))
    for run in runs:
        assert _peak(run) < est


def test_elementwise_estimates_are_above_the_measured_peaks():
    from ref.codec import _DECODE_BYTES, _ENCODE_BYTES
    from ref.mac import _MAC_BYTES

    n = 50_000
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, n).astype(np.uint8)
    x = rng.normal(size=n)
    assert _peak(lambda: ref.decode(codes, E5M2)) < n * _DECODE_BYTES
    assert _peak(lambda: ref.encode(x, "fp32", "sr", rbits=8, seed=1)) < n * _ENCODE_BYTES
    z = rng.integers(0, 4096, n)
    assert _peak(lambda: ref.mac(z, codes, codes, EAGER, seed=1)) < n * _MAC_BYTES
