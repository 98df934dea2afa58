"""Named formats, format strings and MAC configurations (contract section 1).

Expected numbers come from torch.finfo / numpy.finfo and from the IEEE / OCP
definitions written out here, never from ``ref`` itself.
"""

import numpy as np
import pytest
import torch

import ref
from ref import BF16, E4M3, E5M2, E6M5, FP16, FP32, FloatFormat, MacConfig, parse_format, parse_mac

# (format, torch dtype) pairs whose numbers torch.finfo knows.
TORCH_TWINS = [
    (E5M2, torch.float8_e5m2),
    (E4M3, torch.float8_e4m3fn),
    (FP16, torch.float16),
    (BF16, torch.bfloat16),
    (FP32, torch.float32),
]


@pytest.mark.parametrize("fmt,dtype", TORCH_TWINS, ids=lambda v: str(v))
def test_named_formats_match_torch_finfo(fmt, dtype):
    fi = torch.finfo(dtype)
    assert fmt.max_value == fi.max
    assert fmt.min_normal == fi.smallest_normal
    assert fmt.width == fi.bits
    # eps is the gap between 1 and the next value: 2**-man_bits.
    assert 2.0**-fmt.man_bits == fi.eps


@pytest.mark.parametrize("fmt,npt", [(FP16, np.float16), (FP32, np.float32)], ids=str)
def test_named_formats_match_numpy_finfo(fmt, npt):
    fi = np.finfo(npt)
    assert fmt.max_value == float(fi.max)
    assert fmt.min_normal == float(fi.smallest_normal)
    assert fmt.min_subnormal == float(fi.smallest_subnormal)
    assert fmt.emin == fi.minexp
    assert fmt.emax == fi.maxexp - 1
    assert fmt.man_bits == fi.nmant


def test_known_maxima_and_layouts():
    # E5M2: IEEE-style, max 1.75 * 2**15; E4M3 (OCP fn): 1.75 * 2**8 = 448.
    assert E5M2.max_value == 57344.0
    assert E4M3.max_value == 448.0
    assert FP16.max_value == 65504.0
    # E6M5: bias 31, top finite exponent field 62 -> 2**31, significand 63/32.
    assert E6M5.bias == 31 and E6M5.width == 12
    assert E6M5.max_value == (2 - 2**-5) * 2.0**31
    assert E6M5.min_subnormal == 2.0 ** (-30 - 5)
    assert BF16.max_value == (2 - 2**-7) * 2.0**127
    # Subnormal minima: 2**(emin - man_bits).
    assert E5M2.min_subnormal == 2.0**-16
    assert E4M3.min_subnormal == 2.0**-9
    assert BF16.min_subnormal == 2.0**-133


def test_special_codes_layout():
    assert (E5M2.inf_code, E5M2.nan_code) == (0x7C, 0x7E)
    assert (FP16.inf_code, FP16.nan_code) == (0x7C00, 0x7E00)
    assert (BF16.inf_code, BF16.nan_code) == (0x7F80, 0x7FC0)
    assert E4M3.inf_code is None and E4M3.nan_code == 0x7F and E4M3.max_code == 0x7E
    assert E4M3.has_nan and not E4M3.has_inf and E4M3.saturate
    none = FloatFormat(4, 3, specials="none")
    assert none.nan_code is None and none.inf_code is None and not none.has_nan
    assert none.max_code == 0x7F and none.max_value == 1.875 * 2.0**8


def test_decode_of_torch_special_bit_patterns():
    # torch's own bit patterns of NaN / inf decode to the same class in ref.
    for fmt, dtype, view in [
        (E5M2, torch.float8_e5m2, torch.uint8),
        (FP16, torch.float16, torch.int16),
    ]:
        t = torch.tensor([float("inf"), -float("inf"), 0.0, -0.0], dtype=dtype)
        codes = t.view(view).to(torch.int64) & (fmt.num_codes - 1)
        vals = ref.decode(codes.numpy(), fmt)
        assert list(vals[:2]) == [np.inf, -np.inf]
        assert vals[2] == 0 and not np.signbit(vals[2]) and np.signbit(vals[3])


@pytest.mark.parametrize(
    "name,expected",
    [
        ("e5m2", E5M2),
        ("E4M3", E4M3),
        ("e6m5", E6M5),
        ("fp16", FP16),
        ("bf16", BF16),
        ("fp32", FP32),
    ],
)
def test_parse_named(name, expected):
    assert parse_format(name) is expected
    assert parse_format(expected) is expected


def test_parse_generic_and_options():
    f = parse_format("e3m4")
    assert (f.exp_bits, f.man_bits, f.bias, f.specials, f.subnormals, f.saturate) == (
        3,
        4,
        3,
        "ieee",
        True,
        False,
    )
    g = parse_format("e6m5:nosub:sat")
    assert g == FloatFormat(6, 5, subnormals=False, saturate=True)
    h = parse_format("e4m3:nosat:bias=8")
    assert h == FloatFormat(4, 3, bias=8, specials="fn", saturate=False)
    assert parse_format("e5m2:none").specials == "none"
    assert parse_format("e4m3:ieee").specials == "ieee"
    with pytest.raises(ValueError, match="'nosub' and 'sub' both set subnormals"):
        parse_format("e6m5:nosub:sub")  # contradictory options: refused, not "last wins"
    # Whitespace and case do not matter.
    assert parse_format("  FP16 ") is FP16


SPEC_FORMATS = [
    E5M2,
    E4M3,
    E6M5,
    FP16,
    BF16,
    FP32,
    FloatFormat(2, 0, specials="fn"),
    FloatFormat(2, 1, specials="none"),
    FloatFormat(3, 1, bias=5, subnormals=False, specials="none", saturate=True),
    FloatFormat(11, 51),
    FloatFormat(16, 20, specials="fn"),
    FloatFormat(7, 9, bias=-3),
]


@pytest.mark.parametrize("fmt", SPEC_FORMATS, ids=lambda f: getattr(f, "name", None))
def test_spec_round_trip(fmt):
    again = parse_format(fmt.spec())
    assert again == fmt
    assert again.spec() == fmt.spec()
    d = fmt.to_dict()
    assert d["width"] == 1 + fmt.exp_bits + fmt.man_bits
    assert (
        FloatFormat(
            d["exp_bits"],
            d["man_bits"],
            bias=d["bias"],
            subnormals=d["subnormals"],
            specials=d["specials"],
            saturate=d["saturate"],
        )
        == fmt
    )


def test_derived_properties_of_generic_format():
    f = FloatFormat(3, 2, bias=2)
    assert f.precision == 3 and f.emin == -1 and f.exp_field_max == 7
    # ieee: top finite exponent field 6 -> 2**(6-2) * 1.75
    assert f.emax == 4 and f.max_value == 1.75 * 16
    assert f.num_codes == 64 and f.sign_mask == 32 and f.mag_mask == 31


# ---- MacConfig ----------------------------------------------------------------


def test_mac_config_fields_and_rand_bits():
    c = MacConfig("e5m2", "e6m5", "sr_eager", 4)
    assert c.in_fmt is E5M2 and c.acc_fmt is E6M5
    assert c.is_sr and c.rand_bits == 6
    assert MacConfig(E5M2, E6M5, "sr_lazy", 7).rand_bits == 7
    assert MacConfig(E5M2, E6M5, "rn").rand_bits == 0
    assert MacConfig(E5M2, E6M5, "rz", 0).rbits is None
    assert MacConfig(E5M2, E6M5, "rn").product_exact_in_acc  # the paper's E6M5 claim
    assert not MacConfig(E4M3, E5M2, "rn").product_exact_in_acc


def test_e6m5_holds_every_e5m2_product():
    """Brute force the claim of contract section 1: every finite E5M2 product is an E6M5 value."""
    codes = np.arange(256)
    vals = ref.decode(codes, E5M2)
    vals = vals[np.isfinite(vals)]
    prods = np.unique(np.abs(np.multiply.outer(vals, vals)).ravel())  # exact in float64
    back = ref.decode(ref.encode(prods, E6M5, "rz"), E6M5)
    assert np.array_equal(back, prods)


@pytest.mark.parametrize(
    "bad,needle",
    [
        (dict(rounding="sr_lazy"), "rbits"),
        (dict(rounding="sr_eager", rbits=0), "rbits=0"),
        (dict(rounding="sr_eager", rbits=31), "rbits=31"),
        (dict(rounding="rn", rbits=3), "rbits=3"),
        (dict(rounding="sr", rbits=3), "'sr'"),
        (dict(rounding="nearest"), "'nearest'"),
        (dict(rounding="sr_lazy", rbits=2.5), "2.5"),
    ],
)
def test_mac_config_rejects(bad, needle):
    with pytest.raises(ValueError) as exc:
        MacConfig("e5m2", "e6m5", **bad)
    assert needle in str(exc.value)


def test_mac_config_width_limits():
    with pytest.raises(ValueError, match="precision 27 \\+ rbits 30"):
        MacConfig("fp16", "e8m26", "sr_lazy", 30)  # 27 + 30 > 56
    with pytest.raises(ValueError, match="input precision 52"):
        MacConfig("e11m51", "e11m51", "rn")
    with pytest.raises(ValueError, match="needs 64 bits"):
        FloatFormat(11, 52)
    MacConfig("fp16", "e8m25", "sr_lazy", 30)  # 26 + 30 = 56: fine


MAC_SPECS = [
    "e5m2:e6m5:sr_eager:4",
    "e5m2:e6m5:sr_lazy:1",
    "e4m3:fp16:rn",
    "e4m3:bf16:rz",
    "e5m2:nosub:e6m5:nosub:sat:sr_lazy:8",
    "e3m2:bias=2:e7m9:fn:sr_eager:30",
]


@pytest.mark.parametrize("text", MAC_SPECS)
def test_parse_mac_round_trip(text):
    cfg = parse_mac(text)
    again = parse_mac(cfg.spec())
    assert again == cfg
    assert parse_mac(cfg) is cfg


def test_parse_mac_fields():
    cfg = parse_mac("e5m2:nosub:e6m5:nosub:sat:sr_lazy:8")
    assert cfg.in_fmt == FloatFormat(5, 2, subnormals=False)
    assert cfg.acc_fmt == FloatFormat(6, 5, subnormals=False, saturate=True)
    assert (cfg.rounding, cfg.rbits) == ("sr_lazy", 8)
    assert parse_mac("e5m2:e6m5:sr:3") == MacConfig(E5M2, E6M5, "sr_lazy", 3)
    assert parse_mac("fp32") == MacConfig(FP32, FP32, "rn")
    assert parse_mac("e4m3:fp16") == MacConfig(E4M3, FP16, "rn")


def test_replace_drops_rbits_for_rn():
    c = MacConfig(E5M2, E6M5, "sr_lazy", 4)
    assert c.replace(rounding="sr_eager") == MacConfig(E5M2, E6M5, "sr_eager", 4)
    assert c.replace(rounding="rn") == MacConfig(E5M2, E6M5, "rn")


@pytest.mark.parametrize(
    "n,r", [(1, 1), (4, 1), (5, 2), (16, 2), (17, 3), (4**10, 10), (4**10 + 1, 11)]
)
def test_required_rbits(n, r):
    # ceil(log2(n) / 2), at least 1 (El Arar et al.)
    assert ref.required_rbits(n) == r
